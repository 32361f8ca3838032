/*
 * solo.c — unshare and setns for a process whose only other threads are
 * goalloc's own. Both libraries (libgoalloc and the malloc drop-in) export
 * these two wrappers.
 *
 * The kernel lets only a single-threaded process enter a new user namespace
 * (unshare(CLONE_NEWUSER), setns into one) or setns into a mount namespace;
 * otherwise the call fails with EINVAL. goalloc runs threads of its own:
 * the scavenger, once the heap passes 4 MiB; and with the collector on, its
 * worker, the mark helpers, the background sweeper and the finalizer
 * runner. Each of these, with no wrapper, would make such a call fail in a
 * program that has no thread of its own.
 *
 * The wrapper makes the call first. On EINVAL, if every thread of the
 * process but the caller is goalloc's (/proc/self/status against the
 * counts the modules keep), it ends them all, then retries. pthread_join
 * returns a moment before the kernel drops a thread from the group, so
 * EINVAL is retried for up to 10 ms. A program with threads of its own
 * gets EINVAL, as it would without goalloc, and goalloc's threads are left
 * alone. That check also makes the stop safe: no other thread can be
 * asking the collector for a cycle meanwhile. Without /proc only the
 * scavenger is stopped.
 *
 * Restarts: the worker with the next cycle request, the helpers with the
 * next parallel mark, the sweeper at the next cycle's end, the scavenger
 * when the heap next hands out a span, the finalizer runner at once (here)
 * if it ran.
 *
 * Not covered: a program that makes the system call itself
 * (syscall(SYS_unshare, ...)) bypasses the wrapper.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mgc.h"

#define SOLO_EXPORT __attribute__((visibility("default")))

/* The process's threads, from /proc/self/status, without allocating; -1 if
 * it cannot be read (no /proc). */
int ga__process_threads(void) {
  char buf[2048];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *t = strstr(buf, "\nThreads:");
  return t != NULL ? atoi(t + 9) : -1;
}

int ga__own_threads(void) {
  return ga__gc_threads() + ga__final_runner_alive() + (ga__scavenger_running() ? 1 : 0);
}

/* The order matters. The finalizer runner first: a finalizer may call
 * ga_collect and wait for the collector's worker, which must still be
 * there to serve it. Then the worker, which may be in a cycle that starts
 * helpers and the sweeper, then those. The scavenger last: finalizers and
 * cycles may get it going again. */
bool ga__own_threads_stop(void) {
  bool runner = ga__final_runner_stop();
  ga__gc_threads_stop();
  ga__scavenger_stop();
  return runner;
}

static long solo_syscall(long nr, long a, long b) {
  long r = syscall(nr, a, b);
  if (r == 0 || errno != EINVAL) return r;
  int own = ga__own_threads(), all = ga__process_threads();
  bool runner = false;
  if (own == 0 || (all >= 0 && all != own + 1)) {
    errno = EINVAL;
    return r;
  }
  if (all >= 0) {
    runner = ga__own_threads_stop();
  } else if (!ga__scavenger_stop()) {
    /* No /proc to count with: the scavenger alone, whose stop is safe
     * whatever else runs (the collector's is not: see the top of the file). */
    errno = EINVAL;
    return r;
  }
  for (int tries = 0;; tries++) {
    r = syscall(nr, a, b);
    if (r == 0 || errno != EINVAL || tries >= 100) break;
    usleep(100);
  }
  int err = errno;
  if (runner) ga__final_runner_start();
  errno = err;
  return r;
}

/* Only these flags need a single thread (CLONE_THREAD, CLONE_SIGHAND and
 * CLONE_VM ask the kernel to unshare what threads share). */
#define NS_SOLO_UNSHARE (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)

SOLO_EXPORT int unshare(int flags) {
  if (flags & NS_SOLO_UNSHARE) return (int)solo_syscall(SYS_unshare, flags, 0);
  return (int)syscall(SYS_unshare, flags);
}

/* nstype 0 accepts a namespace of any type: it may be either. */
SOLO_EXPORT int setns(int fd, int nstype) {
  if (nstype == 0 || (nstype & (CLONE_NEWUSER | CLONE_NEWNS)))
    return (int)solo_syscall(SYS_setns, fd, nstype);
  return (int)syscall(SYS_setns, fd, nstype);
}
