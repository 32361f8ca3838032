/*
 * test_gc_stale — words an earlier call left on the stack do not keep
 * garbage alive once the collector's own frames lie over them. A thread the
 * collector stops spills its registers into a frame of goalloc's (the stop
 * handler's, or the collecting thread's own); whatever part of that frame
 * goalloc does not write is stale stack, scanned as a root. glibc's setjmp
 * leaves 128 bytes of a jmp_buf unwritten: a dead object whose address an
 * earlier, deeper call had left there was kept (gcbench kept a dead 12 MB
 * tree that way, traced in a 7-9 ms final pause).
 *
 * The test leaves the address of a dead object in every word of 32 KiB of
 * stack below main's frame, then collects and checks that the object was
 * freed; a control first checks that an object held by a live local
 * survives (so the check can fail). It runs twice: with the collector's
 * own thread (the waiting main thread is stopped on the smeared stack) and,
 * re-executed with GOALLOC_GC_CONCURRENT=0, with the cycle run in place on
 * this thread (which scans its own stack from a spill of its own). Then a
 * second thread leaves a dead object's address under where the kernel will
 * put its signal frame, and spins in its own code while main collects; and
 * (what must stay a root) objects held only in a vector register of a
 * stopped thread (XMM, the upper half of YMM, ZMM16) survive.
 */
#include "testutil.h" /* first: it sets _GNU_SOURCE */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "goalloc.h"

#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifndef TSAN_BUILD
#define TSAN_BUILD 0
#endif

#define SMEAR_WORDS 4096
#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

static uintptr_t hidden; /* the object's address, not as a pointer */
static volatile uintptr_t sink;

/* Write p into every word of a big frame below the caller's, then return:
 * the words stay there, below the stack pointer, until later calls reuse
 * the space. */
static __attribute__((noinline)) void smear(uintptr_t p) {
  volatile uintptr_t a[SMEAR_WORDS];
  for (int i = 0; i < SMEAR_WORDS; i++) a[i] = p;
  sink = a[SMEAR_WORDS / 2] ^ MASK; /* not a root itself */
}

/* Allocate the object and leave its address in stale stack only. */
static __attribute__((noinline)) void plant(void) {
  unsigned char *x = ga_malloc(64);
  CHECK(x != NULL);
  fill_pattern(x, 64, 7);
  hidden = (uintptr_t)x ^ MASK;
  smear((uintptr_t)x);
}

static int alive(void) { return ga_owns((void *)(hidden ^ MASK)); }

/* A thread stopped by the signal while it runs its own code: the kernel
 * writes its signal frame below the interrupted stack pointer, over stale
 * words, and leaves parts of it unwritten. The spinner smears its stack,
 * clears the 1 KiB right below its frame (its red zone, which is scanned
 * as it may hold live words), and spins without calls until told to stop. */
static _Atomic int spin_state; /* 0 start, 1 planted and spinning, 2 stop */
static uintptr_t spin_hidden;

static __attribute__((noinline)) void clear_near(void) {
  uintptr_t a[128];
  memset(a, 0, sizeof a);
  __asm__ volatile("" : : "r"(a) : "memory");
}

static __attribute__((noinline)) void spin_planted(void) {
  unsigned char *x = ga_malloc(64);
  CHECK(x != NULL);
  spin_hidden = (uintptr_t)x ^ MASK;
  smear((uintptr_t)x);
  x = NULL;
  clear_near();
  atomic_store(&spin_state, 1);
  while (atomic_load_explicit(&spin_state, memory_order_relaxed) != 2) {
  }
}

static void *spinner(void *arg) {
  (void)arg;
  spin_planted();
  return NULL;
}

static __attribute__((noinline)) void control(void) {
  unsigned char *volatile held = ga_malloc(64);
  CHECK(held != NULL);
  hidden = (uintptr_t)held ^ MASK;
  for (int i = 0; i < 3; i++) ga_collect();
  CHECK(alive()); /* a live local keeps it: the check below can fail */
  CHECK(ga_owns(held));
}

#if defined(__x86_64__)
/* What must stay a root: a pointer held only in a vector register of a
 * thread stopped by the signal (glibc's memmove holds words that way while
 * it overwrites their memory). The holder decodes the address in
 * registers, puts it in one vector register, clears the others, and spins
 * in assembly until told to stop; the object must survive collections. */
static volatile int vec_state; /* 0 start, 1 held, 2 stop */
static uintptr_t vec_hidden;

static __attribute__((noinline)) uintptr_t vec_alloc(void) {
  unsigned char *x = ga_malloc(64);
  CHECK(x != NULL);
  fill_pattern(x, 64, 11);
  return (uintptr_t)x ^ MASK;
}

enum { VEC_XMM, VEC_YMM_HIGH, VEC_ZMM16 };

/* ZMM16 is saved in an XSAVE component of its own (Hi16_ZMM). */
__attribute__((target("avx512f"), noinline)) static void hold_in_zmm16(uintptr_t h, uintptr_t m) {
  __asm__ volatile("xor %[m], %[h]\n\tvmovq %[h], %%xmm16\n\txor %[h], %[h]\n\t"
                   "movl $1, %[st]\n1:\tpause\n\tcmpl $2, %[st]\n\tjne 1b\n\t"
                   "vpxorq %%xmm16, %%xmm16, %%xmm16"
                   : [h] "+r"(h), [st] "+m"(vec_state) : [m] "r"(m) : "xmm16", "memory");
}

static void *vec_holder(void *arg) {
  int which = (int)(intptr_t)arg;
  uintptr_t h = vec_alloc(), m = MASK;
  vec_hidden = h;
  if (which == VEC_XMM) {
    __asm__ volatile("xor %[m], %[h]\n\tmovq %[h], %%xmm15\n\txor %[h], %[h]\n\t"
                     "movl $1, %[st]\n1:\tpause\n\tcmpl $2, %[st]\n\tjne 1b\n\t"
                     "pxor %%xmm15, %%xmm15"
                     : [h] "+r"(h), [st] "+m"(vec_state) : [m] "r"(m) : "xmm15", "memory");
  } else if (which == VEC_YMM_HIGH) { /* only in the upper half of YMM15 */
    __asm__ volatile("xor %[m], %[h]\n\tvpxor %%xmm15, %%xmm15, %%xmm15\n\t"
                     "vmovq %[h], %%xmm14\n\tvinserti128 $1, %%xmm14, %%ymm15, %%ymm15\n\t"
                     "vpxor %%xmm14, %%xmm14, %%xmm14\n\txor %[h], %[h]\n\t"
                     "movl $1, %[st]\n1:\tpause\n\tcmpl $2, %[st]\n\tjne 1b\n\t"
                     "vpxor %%xmm15, %%xmm15, %%xmm15\n\tvzeroupper"
                     : [h] "+r"(h), [st] "+m"(vec_state) : [m] "r"(m) : "xmm14", "xmm15", "memory");
  } else {
    hold_in_zmm16(h, m);
  }
  return NULL;
}

static void check_vector_root(int which, const char *name) {
  vec_state = 0;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, vec_holder, (void *)(intptr_t)which) == 0);
  while (vec_state != 1) sched_yield();
  for (int i = 0; i < 3; i++) ga_collect();
  unsigned char *x = (unsigned char *)(vec_hidden ^ MASK);
  CHECKF(ga_owns(x) && check_pattern(x, 64, 11),
         "an object held only in %s of a stopped thread was freed", name);
  vec_state = 2;
  CHECK(pthread_join(th, NULL) == 0);
}
#endif

int main(int argc, char **argv) {
  (void)argc;
  const char *mode = getenv("GOALLOC_GC_CONCURRENT");
  control();
  for (int round = 0; round < 20; round++) {
    plant();
    for (int i = 0; i < 2; i++) ga_collect();
    CHECKF(!alive(), "round %d: a dead object left only in stale stack was kept", round);
  }
  /* Threads stopped by the signal in their own code: the vector registers,
   * then the spinner. Not under valgrind, which delivers signals with
   * frames of its own making. */
  if (under_valgrind()) {
    printf("ok (GOALLOC_GC_CONCURRENT=%s; signal frame case skipped under valgrind)\n",
           mode ? mode : "default");
    return 0;
  }
  /* ThreadSanitizer holds a signal back until the thread next calls into
   * its runtime, which the holders' assembly loops never do. */
#if !TSAN_BUILD && defined(__x86_64__)
  check_vector_root(VEC_XMM, "XMM15");
  if (__builtin_cpu_supports("avx2")) check_vector_root(VEC_YMM_HIGH, "the upper half of YMM15");
  if (__builtin_cpu_supports("avx512f")) check_vector_root(VEC_ZMM16, "ZMM16");
#endif

  /* Elsewhere the signal frame is still scanned whole (thread.c). */
#if defined(__x86_64__)
  pthread_t th;
  CHECK(pthread_create(&th, NULL, spinner, NULL) == 0);
  while (atomic_load(&spin_state) != 1) sched_yield();
  for (int i = 0; i < 3; i++) ga_collect();
  CHECKF(!ga_owns((void *)(spin_hidden ^ MASK)),
         "a dead object left only in stale stack under a signal frame was kept");
  atomic_store(&spin_state, 2);
  CHECK(pthread_join(th, NULL) == 0);
#else
  (void)spinner;
#endif

  printf("ok (GOALLOC_GC_CONCURRENT=%s)\n", mode ? mode : "default");
  fflush(stdout);
  if (mode == NULL) { /* again, with every cycle run on this thread */
    setenv("GOALLOC_GC_CONCURRENT", "0", 1);
    execv("/proc/self/exe", argv);
    CHECKF(0, "execv: %s", strerror(errno));
  }
  return 0;
}
