/*
 * thread.c — the threads the collector knows about, and stopping the world.
 *
 * Registration. Every thread that may hold pointers into the collected heap
 * must be registered, so that it is stopped and its stack and registers are
 * scanned. The main thread is registered by a constructor; every thread
 * created with pthread_create is registered by our pthread_create, which
 * interposes the C library's (the program needs no call and cannot forget:
 * Boehm GC's most common crash, an unregistered thread, cannot happen).
 * Other threads call ga_thread_register / ga_thread_unregister.
 *
 * Stopping the world (Boehm's and Go's method, in C): the collector sends
 * SIGPWR to every registered thread but itself. The handler records where
 * the thread's stack ends and its registers (copied from the ucontext the
 * kernel put on that stack; see stop_at_signal), acknowledges, and sleeps
 * on a futex until the world restarts. A thread blocked in a system call
 * runs the handler too (the call is restarted afterwards), so it cannot
 * hold the collector up. Answers carry the stop's epoch (gthread.ackEpoch),
 * and a thread that has not answered after 10 ms is signalled again (see
 * RESEND_NS); a signal that arrives after its stop ended returns at once.
 *
 * Safe points. A thread inside an allocator slow path (ga__mallocing > 0)
 * may hold heap locks or be half-way through moving a span's window, so the
 * handler only sets ga__stopPending there and returns; the thread stops
 * itself when it leaves the slow path (ga__slow_leave). Fast paths are not
 * safe points by construction: they touch a single word, and keep the
 * object's address in a register (GA_KEEPALIVE), so stopping them anywhere
 * is harmless. The collector never holds a heap lock while it stops the
 * world, and stopped threads never hold one.
 *
 * Locks: reg_lock guards the registry; the collector holds it from stop to
 * start, so threads are not created or destroyed mid-collection.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/resource.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "mgc.h"

#define SIG_SUSPEND SIGPWR

__thread volatile int ga__mallocing __attribute__((tls_model("initial-exec")));
__thread volatile int ga__stopPending __attribute__((tls_model("initial-exec")));
static __thread gthread *self_ __attribute__((tls_model("initial-exec")));

static ga_mutex reg_lock;
static gthread *threads_; /* registered threads (doubly linked) */
static int nthreads_;

static _Atomic uint32_t stop_epoch;    /* bumped to request a stop */
static _Atomic uint32_t run_epoch;     /* == stop_epoch when running */
static _Atomic uint32_t nacks;         /* bumped by every acknowledgement:
                                          the collector's futex word */

/* ---- registry ------------------------------------------------------------ */

/* Records come from the heap's metadata allocator, under reg_lock. */
static fixalloc thread_records, start_records;

static gthread *record_alloc(void) {
  if (thread_records.size == 0) ga__fixalloc_init(&thread_records, sizeof(gthread));
  return ga__fixalloc_alloc(&thread_records); /* zeroed */
}

extern void *__libc_stack_end;

static void stack_bounds(gthread *t, bool is_main) {
  if (is_main) {
    /* pthread_getattr_np reads /proc for the main thread; the C library
     * already knows where its stack starts. */
    t->stack_hi = ((uintptr_t)__libc_stack_end + 4095) & ~(uintptr_t)4095;
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < t->stack_hi)
      t->stack_lo = t->stack_hi - rl.rlim_cur;
    return;
  }
  pthread_attr_t attr;
  void *addr;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      t->stack_hi = (uintptr_t)addr + size;
      t->stack_lo = (uintptr_t)addr;
    }
    pthread_attr_destroy(&attr);
  }
  if (t->stack_hi == 0) {
    int here;
    t->stack_hi = ((uintptr_t)&here + (1 << 20)) & ~(uintptr_t)4095; /* guess */
  }
}

static void register_self(bool is_main) {
  if (self_ != NULL) {
    self_->nest++;
    return;
  }
  ga_mutex_lock(&reg_lock);
  gthread *t = record_alloc();
  if (t == NULL) ga__throw("out of memory registering a thread");
  t->tid = pthread_self();
  t->nest = 1;
  stack_bounds(t, is_main);
  t->next = threads_;
  if (threads_) threads_->prev = t;
  threads_ = t;
  nthreads_++;
  self_ = t;
  ga__mcache_set_visible(true); /* a cache made before registering */
  ga_mutex_unlock(&reg_lock);
}

static void unregister_self(void) {
  gthread *t = self_;
  if (t == NULL) return;
  if (--t->nest > 0) return;
  ga__slow_enter();
  ga__mcache_releaseAll(ga__tls_cache);
  ga__slow_leave();
  ga_mutex_lock(&reg_lock); /* the collector holds it while the world is stopped */
  ga__mcache_set_visible(false);
  if (t->prev) t->prev->next = t->next; else threads_ = t->next;
  if (t->next) t->next->prev = t->prev;
  nthreads_--;
  self_ = NULL;
  ga__fixalloc_free(&thread_records, t);
  ga_mutex_unlock(&reg_lock);
}

void ga_thread_register(void) {
  ga__ensure_init();
  register_self(false);
}

void ga_thread_unregister(void) { unregister_self(); }

bool ga__thread_is_registered(void) { return self_ != NULL; }

/* ---- stopping ------------------------------------------------------------ */

/* The callee-saved registers of a thread about to be scanned, spilled into
 * its frame where the scan sees them: the scan starts at `lo`, the struct's
 * lowest word, so the jmp_buf above it is covered whatever the compiler's
 * frame layout. Zeroed first: setjmp fills only part of a jmp_buf (glibc
 * leaves its 128-byte signal mask alone), and the rest held whatever an
 * earlier, deeper call had left there. The conservative scan took those
 * stale words for roots: in gcbench a dead 12 MB tree, kept for another
 * cycle and traced in the final pause (7-9 ms pauses, live 48 MB where Go
 * finds 29-38). */
typedef struct {
  volatile uintptr_t lo;
  jmp_buf regs;
} spill_t;
#define SPILL_REGS(f)                 \
  do {                                \
    memset(&(f), 0, sizeof(f));       \
    __builtin_unwind_init();          \
    setjmp((f).regs);                 \
  } while (0)

/* Boehm GC's GC_clear_stack, for the paths where a thread waits for or runs
 * a collection (ga_collect, a cycle run in place, a wait past the goal):
 * the frames goalloc then has below the caller's are scanned (a cycle's
 * own; the waiting frames and their red zone where the stop signal finds
 * the thread), and the words they leave unwritten (spill slots, padding)
 * would otherwise still hold what an earlier, deeper call of the program
 * left there. Zeroing the space first keeps dead objects from being taken
 * for live (test_gc_stale fails without it). 8 KiB is more than those
 * frames take; skipped when the stack has not that much room to spare (or
 * its bounds are unknown). */
#define CLEAR_STACK_BYTES 8192
void GA_NOINLINE ga__clear_stack(void) {
  char buf[CLEAR_STACK_BYTES];
  gthread *t = self_;
  /* Only on the thread's own stack, with room to spare (a program that
   * runs on stacks of its own, coroutines, may be on a small one). */
  if (t == NULL || t->stack_lo == 0 || (uintptr_t)&buf[0] >= t->stack_hi ||
      (uintptr_t)&buf[0] < t->stack_lo + 4 * CLEAR_STACK_BYTES)
    return;
  memset(buf, 0, sizeof buf);
  __asm__ volatile("" : : "r"(buf) : "memory");
}

/* Record where this thread's scanned stack begins (lo), acknowledge, and
 * sleep until the world restarts. */
static void stop_wait(gthread *t, uint32_t epoch, uintptr_t lo) {
  atomic_store_explicit(&t->sp, lo, memory_order_release);
  /* A signal that arrives outside a stop (a repeat, see ga__stop_the_world)
   * acknowledges the stop already over and returns at once below. */
  atomic_store_explicit(&t->ackEpoch, epoch, memory_order_release);
  atomic_fetch_add_explicit(&nacks, 1, memory_order_acq_rel);
  ga__sys_futex_wake((uint32_t *)&nacks, 1);
  for (;;) {
    /* ">=", not "==": a stop that began outside a signal handler (a
     * deferred one) can be interrupted by the next cycle's signal, whose
     * nested stop returns only after the world restarted at a later epoch. */
    uint32_t r = atomic_load_explicit(&run_epoch, memory_order_acquire);
    if ((int32_t)(r - epoch) >= 0) break;
    ga__sys_futex_wait((uint32_t *)&run_epoch, r);
  }
}

/* A stop at a safe point of goalloc's own (the end of a slow path), or
 * anywhere off x86-64: everything from the spill up is scanned. */
static GA_NOINLINE void stop_here(gthread *t) {
  uint32_t epoch = atomic_load_explicit(&stop_epoch, memory_order_acquire);
  spill_t f;
  SPILL_REGS(f);
  t->nsigregs = 0;
  stop_wait(t, epoch, (uintptr_t)&f.lo);
  __asm__ volatile("" : : "r"(&f) : "memory"); /* the spill lives until here */
}

/* Stopped by the signal while it ran the program's own code: the scan takes
 * the registers from the ucontext and the stack from the interrupted stack
 * pointer (less the 128-byte red zone, where a leaf function may keep
 * live words), not from this frame: the kernel's signal frame and the
 * handler's lie in between, and the words they leave unwritten (the state
 * components the CPU did not save, reserved fields, padding) still hold
 * whatever the program left there earlier (test_gc_stale's spinning
 * thread). Vector registers can hold pointers too (glibc's memmove keeps
 * the head and tail of an overlapping move in registers while its loop
 * overwrites them in memory): XMM0-15, and from the XSAVE area the upper
 * halves of YMM0-15 and ZMM0-15 and all of ZMM16-31, each only if its
 * component was saved (XSTATE_BV), at the offsets CPUID gives for the
 * standard format the kernel writes. */
#if defined(__x86_64__)
#include <cpuid.h>

enum { XS_SW_BYTES = 464, XS_HEADER = 512 }; /* offsets in the XSAVE area */
static const int xs_vector[] = {2, 6, 7};    /* YMM_Hi128, ZMM_Hi256, Hi16_ZMM */
static struct { uint32_t off, size; } xs_comp[8];

static void xsave_layout_init(void) {
  if (__get_cpuid_max(0, NULL) < 0xD) return;
  for (size_t k = 0; k < sizeof xs_vector / sizeof *xs_vector; k++) {
    unsigned a, b, c, d, i = (unsigned)xs_vector[k];
    __cpuid_count(0xD, i, a, b, c, d);
    xs_comp[i].size = a;
    xs_comp[i].off = b;
  }
  /* The architecture fixes these sizes (256, 512, 1024 bytes); a copy that
   * did not fit would drop roots, so never start with one that cannot. */
  uint32_t words = NGREG + 32;
  for (int i = 0; i < 8; i++) words += xs_comp[i].size / 8;
  if (words > GA_SIGREGS_MAX) ga__throw("XSAVE vector state larger than gthread.sigregs");
}

static int copy_words(uintptr_t *to, int n, const unsigned char *from, uint32_t bytes) {
  for (uint32_t o = 0; o + 8 <= bytes; o += 8, n++)
    memcpy(&to[n], from + o, 8);
  return n;
}

static void stop_at_signal(gthread *t, const ucontext_t *uc) {
  uint32_t epoch = atomic_load_explicit(&stop_epoch, memory_order_acquire);
  const greg_t *g = uc->uc_mcontext.gregs;
  int n = 0;
  for (int i = 0; i < NGREG; i++) t->sigregs[n++] = (uintptr_t)g[i];
  const unsigned char *fp = (const unsigned char *)uc->uc_mcontext.fpregs;
  if (fp != NULL) {
    uint32_t magic1 = 0, xsize = 0;
    uint64_t saved = 2; /* a legacy frame: the XMM registers are there */
    memcpy(&magic1, fp + XS_SW_BYTES, 4);
    if (magic1 == FP_XSTATE_MAGIC1) {
      memcpy(&xsize, fp + XS_SW_BYTES + 16, 4); /* _fpx_sw_bytes.xstate_size */
      memcpy(&saved, fp + XS_HEADER, 8);        /* XSTATE_BV */
    }
    if (saved & 2) n = copy_words(t->sigregs, n, fp + 160, 256); /* XMM0-15 */
    size_t nvec = magic1 == FP_XSTATE_MAGIC1 ? sizeof xs_vector / sizeof *xs_vector : 0;
    for (size_t k = 0; k < nvec; k++) {
      int i = xs_vector[k];
      if (((saved >> i) & 1) && xs_comp[i].size != 0 &&
          xs_comp[i].off + xs_comp[i].size <= xsize)
        n = copy_words(t->sigregs, n, fp + xs_comp[i].off, xs_comp[i].size);
    }
  }
  t->nsigregs = n;
  stop_wait(t, epoch, (uintptr_t)g[REG_RSP] - 128);
}
#else
static void xsave_layout_init(void) {}
static void stop_at_signal(gthread *t, const ucontext_t *uc) {
  (void)uc;
  stop_here(t); /* the signal frame is scanned whole */
}
#endif

static void suspend_handler(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)si;
  int saved = errno;
  gthread *t = self_;
  if (t != NULL) {
    if (ga__mallocing > 0)
      ga__stopPending = 1; /* stop at the end of the slow path */
    else
      stop_at_signal(t, uc);
  }
  errno = saved;
}

void ga__stop_self_pending(void) {
  ga__stopPending = 0;
  if (self_ != NULL) stop_here(self_);
}

void ga__thread_init(void) {
  xsave_layout_init();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = suspend_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(SIG_SUSPEND, &sa, NULL);
}

/* Stop every registered thread but the caller. Returns with reg_lock held.
 * The caller must hold no heap lock. */
/* A thread that has not answered within RESEND_NS gets the signal again.
 * The kernel does not lose signals, but ThreadSanitizer's runtime defers a
 * signal that arrives outside an intercepted blocking call and can leave it
 * undelivered while the thread then blocks (seen in CI: the main thread in
 * pthread_join held up test_gc_concurrent's first stop for good); a repeat
 * that arrives during the blocking call is delivered at once. */
#define RESEND_NS 10000000

static bool all_stopped(uint32_t epoch, bool resend) {
  bool all = true;
  for (gthread *t = threads_; t != NULL; t = t->next) {
    if (t == self_ || t->dead ||
        atomic_load_explicit(&t->ackEpoch, memory_order_acquire) == epoch)
      continue;
    all = false;
    if (!resend) break;
    if (pthread_kill(t->tid, SIG_SUSPEND) != 0) t->dead = 1;
  }
  return all;
}

void ga__stop_the_world(void) {
  ga_mutex_lock(&reg_lock);
  /* sp is cleared before the epoch moves: a repeated signal handled from
   * here on either answers the old stop (ignored) or truly stops for this
   * one, and in both cases stores sp before its answer. */
  for (gthread *t = threads_; t != NULL; t = t->next)
    if (t != self_) atomic_store_explicit(&t->sp, 0, memory_order_relaxed);
  uint32_t epoch = atomic_fetch_add_explicit(&stop_epoch, 1, memory_order_acq_rel) + 1;
  for (gthread *t = threads_; t != NULL; t = t->next)
    if (t != self_ && pthread_kill(t->tid, SIG_SUSPEND) != 0) t->dead = 1;
  int64_t sent = ga__sys_nanotime();
  for (;;) {
    uint32_t n = atomic_load_explicit(&nacks, memory_order_acquire);
    int64_t now = ga__sys_nanotime();
    bool resend = now - sent >= RESEND_NS;
    if (all_stopped(epoch, resend)) break;
    if (resend) sent = now;
    ga__sys_futex_wait_ns((uint32_t *)&nacks, n, RESEND_NS);
  }
}

void ga__start_the_world(void) {
  atomic_store_explicit(&run_epoch,
                        atomic_load_explicit(&stop_epoch, memory_order_relaxed),
                        memory_order_release);
  ga__sys_futex_wake((uint32_t *)&run_epoch, INT32_MAX);
  ga_mutex_unlock(&reg_lock);
}

/* Visit every registered thread's stack range [lo, hi) (world stopped; the
 * caller's own thread included, from its current frame). */
void ga__for_each_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                        void *arg) {
  spill_t f;
  SPILL_REGS(f);
  for (gthread *t = threads_; t != NULL; t = t->next) {
    uintptr_t lo = t == self_ ? (uintptr_t)&f.lo
                              : atomic_load_explicit(&t->sp, memory_order_acquire);
    if (lo == 0 || t->dead || lo >= t->stack_hi) continue;
    if (t != self_ && t->nsigregs > 0)
      fn((uintptr_t)t->sigregs, (uintptr_t)(t->sigregs + t->nsigregs), arg);
    fn(lo, t->stack_hi, arg);
  }
  __asm__ volatile("" : : "r"(&f) : "memory");
}

int ga__thread_count(void) { return nthreads_; }

/* ---- pthread_create interposition ----------------------------------------- */

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
                                  void *(*)(void *), void *);

typedef struct start_rec {
  void *(*fn)(void *);
  void *arg;
} start_rec;

static void start_rec_free(start_rec *r) {
  ga_mutex_lock(&reg_lock);
  ga__fixalloc_free(&start_records, r);
  ga_mutex_unlock(&reg_lock);
}

static void cleanup_unregister(void *unused) {
  (void)unused;
  unregister_self();
}

static void *thread_start(void *p) {
  start_rec *r = p;
  void *(*fn)(void *) = r->fn;
  void *arg = r->arg;
  register_self(false);
  start_rec_free(r);
  void *ret;
  pthread_cleanup_push(cleanup_unregister, NULL);
  ret = fn(arg);
  pthread_cleanup_pop(1);
  return ret;
}

static pthread_create_fn real_pthread_create(void) {
  static _Atomic(pthread_create_fn) real;
  pthread_create_fn f = atomic_load_explicit(&real, memory_order_acquire);
  if (f == NULL) {
    f = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (f == NULL) ga__throw("cannot find the C library's pthread_create");
    atomic_store_explicit(&real, f, memory_order_release);
  }
  return f;
}

int ga__pthread_create_raw(pthread_t *t, const pthread_attr_t *attr,
                           void *(*fn)(void *), void *arg) {
  return real_pthread_create()(t, attr, fn, arg);
}

bool ga__bgthread_start(ga_bgthread *t, void *(*fn)(void *), bool registered) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&t->started, &expect, 1))
    return ga__bgthread_alive(t);
  int err = registered ? pthread_create(&t->tid, NULL, fn, NULL)
                       : ga__pthread_create_raw(&t->tid, NULL, fn, NULL);
  if (err != 0) {
    atomic_store(&t->started, 0); /* the next call tries again */
    return false;
  }
  atomic_store_explicit(&t->alive, 1, memory_order_release);
  return true;
}

bool ga__bgthread_stop(ga_bgthread *t, _Atomic uint32_t *epoch) {
  if (!ga__bgthread_alive(t)) return false;
  ga__threads_end(&t->exitReq, epoch, &t->tid, 1);
  atomic_store(&t->alive, 0);
  atomic_store(&t->started, 0);
  return true;
}

void ga__bgthread_forget(ga_bgthread *t) {
  atomic_store(&t->alive, 0);
  atomic_store(&t->exitReq, 0);
  atomic_store(&t->started, 0);
}

__attribute__((visibility("default"))) int pthread_create(
    pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  if (!ga__collector_wanted()) return real_pthread_create()(t, attr, fn, arg);
  ga__ensure_init();
  ga_mutex_lock(&reg_lock);
  if (start_records.size == 0) ga__fixalloc_init(&start_records, sizeof(start_rec));
  start_rec *r = ga__fixalloc_alloc(&start_records);
  ga_mutex_unlock(&reg_lock);
  if (r == NULL) return EAGAIN;
  r->fn = fn;
  r->arg = arg;
  int err = real_pthread_create()(t, attr, thread_start, r);
  if (err != 0) start_rec_free(r);
  return err;
}

__attribute__((constructor)) static void register_main_thread(void) {
  if (!ga__collector_wanted()) return;
  ga__ensure_init();
  /* Usually the main thread; if the library is loaded later (dlopen) from
   * another thread, that thread. */
  register_self(getpid() == (pid_t)syscall(SYS_gettid));
}
