/*
 * test_scanruns — the runs of scan pages that the write watch protects and
 * scans (ga__mheap_scanRuns, from the arenas' pageScan bitmaps) are exactly
 * the pages of in-use spans that may hold pointers:
 *   - every page of every live ga_malloc object (small or large) lies in a
 *     run: a page left out would be neither protected nor rescanned, and a
 *     pointer stored there during a concurrent mark would be missed;
 *   - every page in a run belongs to an in-use span that may hold pointers
 *     (nothing pointer-free, nothing freed);
 *   - runs are sorted, disjoint and maximal (no two touch);
 *   - the write watch's selection (mwritewatch.c heat): with some pages
 *     marked hot, the cold runs and the hot runs are disjoint, hold
 *     exactly the hot pages apart, and together are all the runs.
 * Checked after a mix of scan and pointer-free objects of every size, after
 * freeing a part of them, and again after the freed spans were reused.
 */
#include <stdint.h>

#include "mgc.h"
#include "testutil.h"

#define N 6000

typedef struct {
  uintptr_t lo[65536], hi[65536];
  int n;
} runs_t;

static runs_t runs;

static void collect(uintptr_t lo, uintptr_t hi, void *arg) {
  runs_t *r = arg;
  CHECK(r->n < 65536);
  r->lo[r->n] = lo;
  r->hi[r->n] = hi;
  r->n++;
}

static bool covered(uintptr_t a) {
  int lo = 0, hi = runs.n - 1;
  while (lo <= hi) { /* runs are sorted: binary search */
    int mid = (lo + hi) / 2;
    if (a < runs.lo[mid]) hi = mid - 1;
    else if (a >= runs.hi[mid]) lo = mid + 1;
    else return true;
  }
  return false;
}

static runs_t cold, hot;

static bool in(const runs_t *r, uintptr_t a) {
  for (int i = 0; i < r->n; i++)
    if (a >= r->lo[i] && a < r->hi[i]) return true;
  return false;
}

static void set_hot(uintptr_t p, bool on) {
  heapArena *ha = ga__arenaOf(p);
  uintptr_t i = ga__arenaPage(p);
  uint64_t m = (uint64_t)1 << (i % 64);
  if (on) atomic_fetch_or(&ha->pageHot[i / 64], m);
  else atomic_fetch_and(&ha->pageHot[i / 64], ~m);
}

static void *objs[N];
static bool scan[N];
static size_t sizes[N];

static void check_runs(const char *when) {
  runs.n = 0;
  ga__mheap_scanRuns(GA_RUNS_ALL, collect, &runs);
  CHECKF(runs.n > 0, "%s: no runs", when);
  for (int i = 0; i < runs.n; i++) {
    CHECKF(runs.lo[i] < runs.hi[i] && runs.lo[i] % GA_PAGE_SIZE == 0 &&
               runs.hi[i] % GA_PAGE_SIZE == 0,
           "%s: run %d malformed", when, i);
    if (i > 0)
      CHECKF(runs.lo[i] > runs.hi[i - 1], "%s: runs %d and %d overlap or touch", when,
             i - 1, i);
    for (uintptr_t p = runs.lo[i]; p < runs.hi[i]; p += GA_PAGE_SIZE) {
      mspan *s = ga__spanOf(p);
      CHECKF(s != &ga__emptyspan && atomic_load(&s->state) == mSpanInUse &&
                 p >= s->startAddr && p < s->startAddr + s->npages * GA_PAGE_SIZE,
             "%s: page %p of a run is in no live span", when, (void *)p);
      CHECKF(!(s->spanclass & 1), "%s: page %p of a run is pointer-free", when,
             (void *)p);
    }
  }
  for (int i = 0; i < N; i++) {
    if (objs[i] == NULL || !scan[i]) continue;
    uintptr_t a = (uintptr_t)objs[i];
    for (uintptr_t p = a & ~(uintptr_t)(GA_PAGE_SIZE - 1); p < a + sizes[i]; p += GA_PAGE_SIZE)
      CHECKF(covered(p), "%s: page %p of a live scan object of %zu bytes is in no run",
             when, (void *)p, sizes[i]);
  }
}

int main(void) {
  ga_disable(); /* explicit frees only: the spans stay as we made them */
  rng_t r = {0xC0FFEE};
  for (int i = 0; i < N; i++) {
    uint64_t k = rng_next(&r);
    /* Mostly small, some up to 32 KiB, a few large (40 KiB .. 1 MiB). */
    sizes[i] = k % 100 < 90 ? 16 + k % 512 : k % 100 < 98 ? 1024 + k % 31000 : 40960 + k % 1000000;
    scan[i] = (k >> 40) % 3 != 0;
    objs[i] = scan[i] ? ga_malloc(sizes[i]) : ga_malloc_atomic(sizes[i]);
    CHECK(objs[i] != NULL);
    memset(objs[i], 0x5A, sizes[i]);
  }
  check_runs("after allocating");
  for (int i = 0; i < N; i += 2) { /* free half: whole spans go back */
    ga_free(objs[i]);
    objs[i] = NULL;
  }
  ga_thread_flush(); /* empty spans back to the heap */
  check_runs("after freeing half");
  for (int i = 0; i < N; i += 2) { /* reuse the pages, the other way round */
    scan[i] = !scan[i];
    objs[i] = scan[i] ? ga_malloc(sizes[i]) : ga_malloc_atomic(sizes[i]);
    CHECK(objs[i] != NULL);
  }
  check_runs("after reusing");

  /* Heat: mark the pages of every third live scan object hot (and, as the
   * bitmaps allow, a free page: the runs must still hold only scan pages). */
  runs_t *all = &runs;
  int nhot = 0;
  for (int i = 0; i < N; i += 3) {
    if (!scan[i]) continue;
    uintptr_t a = (uintptr_t)objs[i];
    for (uintptr_t p = a & ~(uintptr_t)(GA_PAGE_SIZE - 1); p < a + sizes[i]; p += GA_PAGE_SIZE) {
      set_hot(p, true);
      nhot++;
    }
  }
  CHECK(nhot > 0);
  ga__mheap_scanRuns(GA_RUNS_COLD, collect, &cold);
  ga__mheap_scanRuns(GA_RUNS_HOT, collect, &hot);
  CHECK(hot.n > 0 && cold.n > 0);
  for (int i = 0; i < all->n; i++)
    for (uintptr_t p = all->lo[i]; p < all->hi[i]; p += GA_PAGE_SIZE) {
      heapArena *ha = ga__arenaOf(p);
      uintptr_t k = ga__arenaPage(p);
      bool h = (atomic_load(&ha->pageHot[k / 64]) >> (k % 64)) & 1;
      CHECKF(in(&hot, p) == h && in(&cold, p) == !h,
             "page %p (hot %d) is in the hot runs %d times, the cold runs %d", (void *)p, h,
             in(&hot, p), in(&cold, p));
    }
  for (int i = 0; i < hot.n; i++)
    CHECKF(in(all, hot.lo[i]) && in(all, hot.hi[i] - 1), "hot run %d is no scan run", i);
  for (int i = 0; i < cold.n; i++)
    CHECKF(in(all, cold.lo[i]) && in(all, cold.hi[i] - 1), "cold run %d is no scan run", i);
  for (int i = 0; i < N; i += 3) {
    if (!scan[i]) continue;
    uintptr_t a = (uintptr_t)objs[i];
    for (uintptr_t p = a & ~(uintptr_t)(GA_PAGE_SIZE - 1); p < a + sizes[i]; p += GA_PAGE_SIZE)
      set_hot(p, false);
  }
  for (int i = 0; i < N; i++) ga_free(objs[i]);
  printf("scanruns: ok (%d runs at the end; %d hot pages: %d hot runs, %d cold)\n", runs.n,
         nhot, hot.n, cold.n);
  return 0;
}
