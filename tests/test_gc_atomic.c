/*
 * test_gc_atomic — ga_malloc_atomic memory is never scanned: objects whose
 * only pointers live in atomic objects are collected (their finalizers run),
 * while the same pointers in a ga_malloc object keep them alive.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "goalloc.h"
#include "testutil.h"

#define N 200
static _Atomic int finalized_hidden, finalized_visible;
static void **hidden_box, **visible_box;

static void fin(void *obj, void *arg) {
  (void)obj;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

__attribute__((noinline)) static void fill(void) {
  for (int i = 0; i < N; i++) {
    void *a = ga_malloc(64), *b = ga_malloc(64);
    CHECK(ga_set_finalizer(a, fin, (void *)&finalized_hidden) == 0);
    CHECK(ga_set_finalizer(b, fin, (void *)&finalized_visible) == 0);
    hidden_box[i] = a;
    visible_box[i] = b;
  }
}

int main(void) {
  hidden_box = ga_malloc_atomic(N * sizeof(void *));
  visible_box = ga_malloc(N * sizeof(void *));
  fill();
  for (int round = 0; round < 50 && atomic_load(&finalized_hidden) < N * 9 / 10; round++) {
    ga_collect();
    usleep(10000);
  }
  printf("hidden finalized %d/%d, visible finalized %d/%d\n", atomic_load(&finalized_hidden), N,
         atomic_load(&finalized_visible), N);
  /* Conservative scanning may keep a stray few alive; nearly all must go. */
  CHECK(atomic_load(&finalized_hidden) >= N * 9 / 10);
  CHECK(atomic_load(&finalized_visible) == 0);
  for (int i = 0; i < N; i++) CHECK(ga_owns(visible_box[i]));
  printf("gc_atomic: ok\n");
  return 0;
}
