/*
 * test_gc_final — finalizers run exactly once, after their object is
 * unreachable, on another thread with the world running (they may allocate);
 * objects reachable only from a finalizable object stay alive (and intact)
 * until its finalizer has run; ga_free drops a finalizer; bad arguments are
 * refused.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "goalloc.h"
#include "testutil.h"

#define N 1000

typedef struct obj {
  struct obj *child;
  uint64_t id;
} obj;

static _Atomic int runs[N];
static _Atomic int child_ok, allocs_in_finalizer;
static void *volatile keep_alive;

static void fin(void *p, void *arg) {
  obj *o = p;
  int i = (int)(uintptr_t)arg;
  CHECK(o->id == (uint64_t)i);
  atomic_fetch_add(&runs[i], 1);
  /* What o points to is still alive and intact. */
  if (o->child && o->child->id == (uint64_t)i + 1000000) atomic_fetch_add(&child_ok, 1);
  /* Finalizers may allocate (and even trigger collections). */
  void *q = ga_malloc(100 + i);
  CHECK(q);
  memset(q, 1, 100 + (size_t)i);
  atomic_fetch_add(&allocs_in_finalizer, 1);
}

static _Atomic int never;
static void never_fin(void *p, void *arg) {
  (void)p;
  (void)arg;
  atomic_fetch_add(&never, 1);
}

__attribute__((noinline)) static void make(void) {
  for (int i = 0; i < N; i++) {
    obj *o = ga_malloc(sizeof *o);
    o->id = (uint64_t)i;
    o->child = ga_malloc(sizeof *o); /* reachable only through o */
    o->child->child = NULL;
    o->child->id = (uint64_t)i + 1000000;
    CHECK(ga_set_finalizer(o, fin, (void *)(uintptr_t)i) == 0);
  }
  /* A finalizer that must not run: the object is freed explicitly. */
  obj *f = ga_malloc(sizeof *f);
  CHECK(ga_set_finalizer(f, never_fin, NULL) == 0);
  ga_free(f);
  /* And one that must not run because the object stays reachable. */
  obj *k = ga_malloc(sizeof *k);
  CHECK(ga_set_finalizer(k, never_fin, NULL) == 0);
  keep_alive = k;
}

int main(void) {
  /* Refused: not an object start, not ours. */
  char *p = ga_malloc(64);
  CHECK(ga_set_finalizer(p + 8, fin, NULL) == -1);
  int local = 0;
  CHECK(ga_set_finalizer(&local, fin, NULL) == -1);
  make();
  int total = 0;
  for (int round = 0; round < 200; round++) {
    ga_collect();
    usleep(2000);
    total = 0;
    for (int i = 0; i < N; i++) total += atomic_load(&runs[i]) > 0;
    if (total >= N * 95 / 100 && round > 10) break;
  }
  /* A few more cycles: nobody may run twice. */
  for (int round = 0; round < 5; round++) ga_collect(), usleep(2000);
  int twice = 0;
  for (int i = 0; i < N; i++) twice += atomic_load(&runs[i]) > 1;
  printf("finalized %d/%d, twice %d, children intact %d, finalizer allocations %d, wrongly run %d\n",
         total, N, twice, atomic_load(&child_ok), atomic_load(&allocs_in_finalizer), atomic_load(&never));
  CHECK(twice == 0);
  CHECK(total >= N * 95 / 100); /* conservative roots may pin a few */
  CHECK(atomic_load(&child_ok) == total);
  CHECK(atomic_load(&never) == 0);
  CHECK(ga_owns((void *)keep_alive));
  printf("gc_final: ok\n");
  return 0;
}
