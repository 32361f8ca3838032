/*
 * os_linux.c — the OS layer for Linux (see os.h for each primitive's
 * contract). Owns every mmap/munmap/madvise/futex/write the heap makes.
 * Invariant: nothing here allocates from the goalloc heap or from libc's
 * malloc, so these primitives work before, during and after heap init and
 * inside the malloc drop-in.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uintptr_t ga__sys_reserve(uintptr_t hint, size_t size, size_t align) {
  int saved = errno;
  /* First try exactly at the hint: a contiguous heap keeps the arena map and
   * the page allocator's summaries dense. */
  if (hint != 0) {
    void *p = mmap((void *)hint, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      if ((uintptr_t)p == hint) {
        errno = saved;
        return hint;
      }
      munmap(p, size);
    }
  }
  /* Anywhere: over-reserve by `align` and trim both ends. */
  size_t len = size + align;
  void *p = mmap(NULL, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  if (p == MAP_FAILED) return 0;
  uintptr_t start = (uintptr_t)p;
  uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
  if (aligned > start) munmap(p, aligned - start);
  uintptr_t end = start + len, aend = aligned + size;
  if (end > aend) munmap((void *)aend, end - aend);
  return aligned;
}

uintptr_t ga__sys_reserve_zero(size_t size) {
  int saved = errno;
  void *p = mmap(NULL, size, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  return p == MAP_FAILED ? 0 : (uintptr_t)p;
}

int ga__sys_map(uintptr_t p, size_t size) {
  int saved = errno;
  int r = mprotect((void *)p, size, PROT_READ | PROT_WRITE);
  errno = saved;
  return r == 0 ? 0 : -1;
}

int ga__sys_unused(uintptr_t p, size_t size) {
  int saved = errno;
  /* MADV_DONTNEED, never MADV_FREE: the heap relies on released pages
   * reading as zero (calloc does not clear them again). */
  int r = madvise((void *)p, size, MADV_DONTNEED);
  errno = saved;
  return r == 0 ? 0 : -1;
}

void *ga__sys_alloc(size_t size) {
  int saved = errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  return p == MAP_FAILED ? NULL : p;
}

void ga__sys_free(void *p, size_t size) {
  int saved = errno;
  munmap(p, size);
  errno = saved;
}

void ga__sys_write_err(const char *msg, size_t len) {
  int saved = errno;
  while (len > 0) {
    ssize_t n = write(2, msg, len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    msg += n;
    len -= (size_t)n;
  }
  errno = saved;
}

int64_t ga__sys_nanotime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

size_t ga__sys_pagesize(void) {
  static size_t cached;
  if (cached == 0) cached = (size_t)sysconf(_SC_PAGESIZE);
  return cached;
}

int ga__sys_ncpu(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

#if defined(__SANITIZE_THREAD__)
#define GA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GA_TSAN 1
#endif
#endif

void ga__sys_futex_wait(uint32_t *addr, uint32_t val) {
#ifdef GA_TSAN
  /* ThreadSanitizer runs a signal handler only when the thread enters a
   * call it intercepts; a raw futex loop would never let the collector's
   * stop signal in. Every caller loops, so a short sleep is a valid wait. */
  (void)addr;
  (void)val;
  usleep(20);
  return;
#endif
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
  errno = saved;
}

void ga__sys_futex_wait_ns(uint32_t *addr, uint32_t val, int64_t timeout_ns) {
  if (timeout_ns <= 0) return;
#ifdef GA_TSAN
  /* As above: a mutator past the heap's hard limit waits here in a loop
   * for the cycle to end, and the cycle cannot stop the world until the
   * stop signal gets in (a hang seen in CI's TSan run). A timed wait may
   * return early; a signal cuts the sleep short. */
  (void)addr;
  (void)val;
  usleep(timeout_ns >= 1000000 ? 1000 : (useconds_t)(timeout_ns / 1000 + 1));
  return;
#endif
  int saved = errno;
  struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                        .tv_nsec = timeout_ns % 1000000000};
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
  errno = saved;
}

int64_t ga__sys_walltime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ga__sys_futex_wake(uint32_t *addr, int n) {
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
  errno = saved;
}
