/*
 * test_gc_ns_solo — unshare(CLONE_NEWUSER) in a collected program whose only
 * other threads are goalloc's (solo.c).
 *
 * The kernel refuses to move a process with two threads into a new user
 * namespace (EINVAL). With the collector on, goalloc runs its worker, mark
 * helpers, background sweeper, finalizer runner and scavenger. The wrapper
 * must stop them, let the call succeed with the caller alone, and the
 * collector must work afterwards: finalizers run (the runner restarts),
 * garbage is reclaimed (worker, helpers and sweeper restart), live data is
 * intact.
 *
 * Where a thread that is not goalloc's runs (ThreadSanitizer's), the kernel
 * refuses the call anyway: the test then stops goalloc's threads as the
 * wrapper would, without the call, and checks the rest, so that the stop
 * and the restarts run under ThreadSanitizer (.ci/tsan-tests). Skipped (77)
 * where user namespaces are forbidden (EPERM and the like).
 */
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "goalloc.h"
#include "mgc.h"

#define NLIVE 200000 /* 64-byte nodes: about 13 MiB live */
#define NFIN 1000

typedef struct node {
  struct node *next;
  uint64_t id;
  char pad[48];
} node;

static node *volatile head; /* a root: the data segment */
static _Atomic int finalized[2];

static void fin(void *obj, void *arg) {
  (void)obj;
  atomic_fetch_add(&finalized[(uintptr_t)arg], 1);
  CHECK(ga_malloc(100) != NULL); /* finalizers may allocate */
}

static int threads(void) { return ga__process_threads(); }

__attribute__((noinline)) static void build_live(void) {
  for (uint64_t i = 0; i < NLIVE; i++) {
    node *n = ga_malloc(sizeof *n);
    CHECK(n != NULL);
    n->id = i;
    n->next = head;
    head = n;
  }
}

__attribute__((noinline)) static void make_finalizable(int batch) {
  for (int i = 0; i < NFIN; i++) {
    node *n = ga_malloc(sizeof *n);
    CHECK(n != NULL);
    CHECK(ga_set_finalizer(n, fin, (void *)(uintptr_t)batch) == 0);
  }
}

__attribute__((noinline)) static void make_garbage(long bytes) {
  for (long b = 0; b < bytes; b += 256) {
    char *p = ga_malloc(256);
    CHECK(p != NULL);
    p[0] = (char)b;
  }
}

/* Collect until 95 % of batch's finalizers ran (conservative roots may pin
 * a few), at most about 2 s. */
static int await_finalizers(int batch) {
  for (int round = 0; round < 400; round++) {
    ga_collect();
    usleep(5000);
    if (atomic_load(&finalized[batch]) >= NFIN * 95 / 100 && round > 4) break;
  }
  return atomic_load(&finalized[batch]);
}

static void check_live(void) {
  uint64_t n = 0, sum = 0;
  for (node *p = head; p != NULL; p = p->next) n++, sum += p->id;
  CHECKF(n == NLIVE && sum == (uint64_t)NLIVE * (NLIVE - 1) / 2,
         "live list: %llu nodes, sum %llu", (unsigned long long)n,
         (unsigned long long)sum);
}

int main(void) {
  build_live();
  make_finalizable(0);
  make_garbage(64L << 20);
  int before = await_finalizers(0);
  int own = ga__own_threads(), all = threads();
  printf("before: %d threads, %d of them goalloc's (collector %d, finalizer runner %d, "
         "scavenger %d); finalized %d/%d\n",
         all, own, ga__gc_threads(), ga__final_runner_alive(), ga__scavenger_running(),
         before, NFIN);
  CHECK(before >= NFIN * 95 / 100);
  CHECKF(own > 0, "no goalloc thread runs: the test would test nothing");
  int foreign = all - own - 1;
  if (foreign == 0) {
    int r = unshare(CLONE_NEWUSER);
    int err = errno;
    if (r != 0 && (err == EPERM || err == ENOSPC || err == EUSERS || err == ENOSYS)) {
      printf("gc_ns_solo: skipped (unshare(CLONE_NEWUSER): %s: user namespaces "
             "not allowed here)\n", strerror(err));
      return 77;
    }
    printf("unshare(CLONE_NEWUSER): %s; then %d threads, %d of them goalloc's\n",
           r == 0 ? "ok" : strerror(err), threads(), ga__own_threads());
    CHECKF(r == 0, "unshare(CLONE_NEWUSER) failed: %s", strerror(err));
  } else {
    printf("%d threads not goalloc's (ThreadSanitizer's?): no unshare, the "
           "wrapper's stop only\n", foreign);
    if (ga__own_threads_stop()) ga__final_runner_start();
  }
  /* Only the finalizer runner starts again at once. */
  CHECK(ga__gc_threads() == 0 && !ga__scavenger_running());
  CHECK(threads() == 1 + foreign + ga__final_runner_alive());

  /* The collector works as before: finalizers run, garbage goes, the live
   * list is intact, the threads are back. */
  make_finalizable(1);
  make_garbage(64L << 20);
  int later = await_finalizers(1);
  check_live();
  ga_stats st = {.version = GA_STATS_VERSION};
  CHECK(ga_read_stats(&st) == 0);
  printf("after: finalized %d/%d; heap in use %.1f MiB; %d threads, %d goalloc's\n",
         later, NFIN, (double)st.heap_inuse / (1 << 20), threads(), ga__own_threads());
  CHECK(later >= NFIN * 95 / 100);
  CHECK(st.heap_inuse < (uint64_t)64 << 20); /* 13 MiB live, 128 MiB allocated */
  CHECK(ga__own_threads() > 0);
  printf("gc_ns_solo: ok\n");
  return 0;
}
