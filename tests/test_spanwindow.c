/*
 * test_spanwindow — the address -> span map is right on both sides of the
 * span window's edge (mheap.c: one flat map for the first 256 GiB from the
 * first arena, Go's two levels beyond). The window is shrunk to one arena
 * before the first allocation, so an ordinary test heap reaches past it.
 * Checked for small and large objects inside and outside the window:
 *   - ga_usable_size, ga_owns of the first and the last byte, contents;
 *   - the owner's free, a free from another thread, realloc;
 *   - the collector keeps what a global root reaches and frees the rest;
 *   - bad frees past the window are still caught: double free of a small
 *     object, an interior pointer into a large one, a pointer into the
 *     pages of a large one freed.
 * The test fails if no object landed outside the window (the far path would
 * not have been exercised).
 */
#include <pthread.h>
#include <stdint.h>

#include "mgc.h"
#include "testutil.h"

#define NSMALL 60000
#define NLARGE 40
#define HIDE ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

static void *small[NSMALL];
static size_t small_size[NSMALL];
static void *large[NLARGE];
static size_t large_size[NLARGE];
static void *volatile roots[NSMALL + NLARGE]; /* a global root for the collector */

static bool outside(const void *p) {
  uintptr_t off = (uintptr_t)p - atomic_load(&ga__spanWindow.base);
  return off >= atomic_load(&ga__spanWindow.bytes);
}

static void check_object(void *p, size_t n, uint64_t seed) {
  CHECK(ga_usable_size(p) >= n);
  CHECK(ga_owns(p));
  CHECK(ga_owns((char *)p + n - 1));
  /* Objects of 128 bytes or more: only the first and last 64 are written. */
  if (n < 128) {
    CHECK(check_pattern(p, n, seed));
    return;
  }
  CHECK(check_pattern(p, 64, seed));
  CHECK(check_pattern((char *)p + n - 64, 64, seed + 1));
}

static void fill_object(void *p, size_t n, uint64_t seed) {
  if (n < 128) {
    fill_pattern(p, n, seed);
    return;
  }
  fill_pattern(p, 64, seed);
  fill_pattern((char *)p + n - 64, 64, seed + 1);
}

static void *far_small(void) {
  for (int i = 0; i < NSMALL; i++)
    if (small[i] != NULL && outside(small[i])) return small[i];
  return NULL;
}

static void *far_large(void) {
  for (int i = 0; i < NLARGE; i++)
    if (large[i] != NULL && outside(large[i])) return large[i];
  return NULL;
}

static void double_free_far(void) {
  void *p = ga_malloc(48);
  while (!outside(p)) p = ga_malloc(48);
  ga_free(p);
  ga_free(p);
}
static void interior_far(void) { ga_free((char *)far_large() + 4096); }
static void freed_pages_far(void) {
  /* Inside a far large object's pages once they are free again. */
  char *p = far_large();
  ga_free(p);
  ga_free(p + 8192);
}

static void *free_remote(void *arg) {
  void **v = arg;
  for (int i = 0; v[i] != NULL; i++) ga_free(v[i]);
  return NULL;
}

int main(void) {
  ga__spanWindow_testBytes(GA_ARENA_BYTES);
  ga_set_gc_percent(-1);
  rng_t r = {0x5eed1234};

  /* Interleave large and small so that small spans, too, are carved past
   * the first arena. */
  int ns = 0;
  for (int l = 0; l < NLARGE; l++) {
    large_size[l] = (size_t)(1 + rng_below(&r, 6)) << 20;
    large[l] = ga_malloc(large_size[l]);
    CHECK(large[l] != NULL);
    fill_object(large[l], large_size[l], 1000 + (uint64_t)l);
    for (int k = 0; k < NSMALL / NLARGE; k++, ns++) {
      small_size[ns] = 8 + rng_below(&r, 1017);
      small[ns] = ga_malloc(small_size[ns]);
      CHECK(small[ns] != NULL);
      fill_object(small[ns], small_size[ns], (uint64_t)ns);
    }
  }
  int far_s = 0, far_l = 0;
  for (int i = 0; i < NSMALL; i++) far_s += outside(small[i]);
  for (int i = 0; i < NLARGE; i++) far_l += outside(large[i]);
  printf("outside the window: %d of %d small, %d of %d large objects\n", far_s,
         NSMALL, far_l, NLARGE);
  CHECKF(far_s > 0 && far_l > 0 && far_s < NSMALL,
         "the heap must straddle the window's edge (window %#lx bytes at %#lx)",
         (unsigned long)atomic_load(&ga__spanWindow.bytes),
         (unsigned long)atomic_load(&ga__spanWindow.base));

  for (int i = 0; i < NSMALL; i++) check_object(small[i], small_size[i], (uint64_t)i);
  for (int i = 0; i < NLARGE; i++) check_object(large[i], large_size[i], 1000 + (uint64_t)i);

  /* Bad frees past the window, each in a forked child. */
  expect_death("double free past the window", double_free_far, "double free");
  expect_death("interior pointer past the window", interior_far, "inside an object");
  expect_death("freed pages past the window", freed_pages_far, "the memory here was freed");

  /* Free a third here, a third from another thread, realloc the rest. */
  static void *remote[NSMALL / 3 + 2];
  int nr = 0;
  for (int i = 0; i < NSMALL; i++) {
    if (i % 3 == 0) {
      ga_free(small[i]);
      small[i] = NULL;
    } else if (i % 3 == 1) {
      remote[nr++] = small[i];
      small[i] = NULL;
    } else {
      size_t n = small_size[i] * 2 + 1;
      void *q = ga_realloc(small[i], n);
      CHECK(q != NULL);
      size_t keep = small_size[i] < 128 ? small_size[i] : 64;
      CHECK(check_pattern(q, keep, (uint64_t)i));
      small_size[i] = n;
      small[i] = q;
      fill_object(q, n, (uint64_t)i);
    }
  }
  remote[nr] = NULL;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_remote, remote) == 0);
  CHECK(pthread_join(t, NULL) == 0);

  /* The collector: what the global root reaches survives, the rest (half
   * of the large objects, dropped here) is freed. */
  /* Dropped objects are remembered masked, out of the scanner's sight. */
  static uintptr_t dropped[NLARGE];
  int nd = 0;
  for (int i = 0; i < NLARGE; i += 2) {
    dropped[nd++] = (uintptr_t)large[i] ^ HIDE;
    large[i] = NULL;
  }
  int nroot = 0;
  for (int i = 0; i < NSMALL; i++)
    if (small[i]) roots[nroot++] = small[i];
  for (int i = 0; i < NLARGE; i++)
    if (large[i]) roots[nroot++] = large[i];
  ga_stats st = {.version = GA_STATS_VERSION};
  ga_set_gc_percent(100);
  ga_collect();
  ga_read_stats(&st);
  /* Conservative: a stale copy on the stack may keep an object or two. */
  CHECKF(st.heap_objects >= (uint64_t)nroot && st.heap_objects <= (uint64_t)nroot + 2,
         "after the collection %llu objects are live, %d are reachable",
         (unsigned long long)st.heap_objects, nroot);
  int kept = 0;
  for (int i = 0; i < nd; i++) kept += ga_owns((void *)(dropped[i] ^ HIDE));
  CHECKF(kept <= 2, "%d of %d dropped large objects survived the collection", kept, nd);
  for (int i = 0; i < NSMALL; i++)
    if (small[i]) check_object(small[i], small_size[i], (uint64_t)i);
  for (int i = 0; i < NLARGE; i++)
    if (large[i]) check_object(large[i], large_size[i], 1000 + (uint64_t)i);
  CHECK(far_small() != NULL || far_large() != NULL);

  for (int i = 0; i < nroot; i++) roots[i] = NULL;
  for (int i = 0; i < NSMALL; i++) if (small[i]) ga_free(small[i]);
  for (int i = 0; i < NLARGE; i++) if (large[i]) ga_free(large[i]);
  printf("spanwindow: ok\n");
  return 0;
}
