/*
 * mgcsweep.c — sweeping (Go's mgcsweep.go twin): turning marks into
 * alloc bits, span by span, after each collection.
 *
 * sweepgen (h = ga__sweepgen_h, +2 per cycle, with the world stopped): a
 * span whose sweepgen is h-2 needs sweeping; h is swept. Every listed span
 * is in its mcentral's unswept set from mark termination until swept, and
 * is swept under that mcentral's lock, so "being swept" (Go's h-1) is the
 * lock itself. Goalloc needs no h+1 / h+3 states: spans in caches are swept
 * by the collector at mark termination, before any thread allocates again
 * (see below), so a cached span is never stale.
 *
 * Who sweeps (as in Go):
 *   1. lazily: mcentral.cacheSpan sweeps unswept spans as it takes them;
 *   2. in the background: one low-priority thread (bgsweep) sweeps the rest,
 *      yielding the CPU every 10 spans;
 *   3. in proportion to allocation (Go's deductSweepCredit): before a thread
 *      takes a span or a large object it sweeps enough pages that every
 *      page in use at the end of mark is swept before the heap reaches the
 *      next trigger. The pages-per-byte ratio is set at mark termination
 *      (Go's gcPaceSweeper);
 *   4. whatever is left is finished before the next cycle marks.
 *
 * Sweeping a span: fold in frees pending in freeBits, allocBits &=
 * the marks, clear the marks (before a minor cycle, mgc.c: only those of
 * slots no longer allocated), count what died. A span left empty goes back
 * to the heap (unless the caller wants to allocate from it).
 *
 * Cached spans at mark termination (world stopped; their owners are stopped
 * outside any slow path), current and parked: dead objects are added to
 * freeBits, exactly as if another thread had freed them, and the owner
 * folds them in at its next slow path. Their allocBits are not written: the
 * owner's free clears an allocBits bit with a plain load and store on its
 * fast path, and may have been stopped between the two.
 */
#include <sched.h>

#include "mgc.h"

_Atomic uint32_t ga__sweepgen_h;

static struct {
  _Atomic uintptr_t pagesSwept;      /* this cycle */
  _Atomic int64_t heapLiveBasis;
  _Atomic uint64_t pagesPerByteBits; /* double, as bits; 0 = off */
  _Atomic unsigned centralIndex;     /* where sweepone looks first */
  _Atomic uint32_t bgEpoch;          /* bumped to wake the background sweeper */
  ga_bgthread bg;                    /* the background sweeper */
} sw;

extern _Atomic int64_t ga__heapLive;

static double pagesPerByte(void) {
  uint64_t b = atomic_load_explicit(&sw.pagesPerByteBits, memory_order_relaxed);
  double d;
  __builtin_memcpy(&d, &b, sizeof d);
  return d;
}
static void setPagesPerByte(double d) {
  uint64_t b;
  __builtin_memcpy(&b, &d, sizeof d);
  atomic_store_explicit(&sw.pagesPerByteBits, b, memory_order_relaxed);
}

/* Tell memcheck about objects the collector freed (valgrind builds only). */
static inline void vg_dead(mspan *s, unsigned w, uint64_t dead) {
  (void)s;
  (void)w;
  if (!GA_VALGRIND_BUILD) return;
  while (dead) {
    unsigned i = w * 64 + (unsigned)__builtin_ctzll(dead);
    GA_VG_FREE((void *)(s->startAddr + i * s->elemsize));
    (void)i;
    dead &= dead - 1;
  }
}

bool ga__sweep_span_locked(mspan *s, bool preserve) {
  uint32_t h = atomic_load_explicit(&ga__sweepgen_h, memory_order_relaxed);
  if (atomic_load_explicit(&s->sweepgen, memory_order_relaxed) == h) return false;
  ga__span_collect(s);
  unsigned nw = (s->nelems + 63u) / 64u, freed = 0;
  /* No mark at all (a span whose objects all died): no mark bytes to read. */
  bool marked = atomic_load_explicit(&s->anyMarked, memory_order_relaxed);
  for (unsigned w = 0; w < nw; w++) {
    uint64_t a = ga__loadBits(&s->allocBits[w]);
    uint64_t m = marked ? ga__markWord(s, w) : 0;
    freed += (unsigned)ga__popcount64(a & ~m);
    vg_dead(s, w, a & ~m);
    ga__storeBits(&s->allocBits[w], a & m);
    /* Sticky: a mark stays only on an object that is still allocated
     * (one freed explicitly since it was marked loses it). */
    if (ga__gc_keepMarks) ga__markClearBits(s, w, m & ~a);
  }
  if (!ga__gc_keepMarks) ga__markClear(s);
  atomic_store_explicit(&s->sweepgen, h, memory_order_release);
  atomic_fetch_add_explicit(&sw.pagesSwept, s->npages, memory_order_relaxed);
  if (freed) {
    s->allocCount = (uint16_t)(s->allocCount - freed);
    s->needzero = 1;
    ga__stats_free(s->spanclass >> 1, freed,
                   (s->spanclass >> 1) == 0 ? s->elemsize : 0);
  }
  return s->allocCount == 0 && !preserve;
}

/* Sweep a span that sits in a cache (world stopped): dead objects go to
 * freeBits (fetch-or: a thread that is not registered may be freeing). */
static void sweep_cached(mspan *s, void *arg) {
  (void)arg;
  unsigned nw = (s->nelems + 63u) / 64u, w0 = s->freeindex >> 6;
  bool marked = atomic_load_explicit(&s->anyMarked, memory_order_relaxed);
  for (unsigned w = 0; w < nw; w++) {
    uint64_t m = marked ? ga__markWord(s, w) : 0;
    uint64_t fb = ga__loadBits(&s->freeBits[w]);
    uint64_t truth = w == w0
        ? ~ga__loadBits(&s->allocCache) & ga__windowValid(s, w)
        : ga__loadBits(&s->allocBits[w]);
    uint64_t dead = truth & ~m & ~fb;
    vg_dead(s, w, dead);
    if (dead) {
      atomic_fetch_or_explicit(&s->freeBits[w], dead, memory_order_relaxed);
      atomic_store_explicit(&s->remotePending, 1, memory_order_relaxed);
    }
    if (ga__gc_keepMarks) ga__markClearBits(s, w, m & ~(truth & ~fb));
  }
  if (!ga__gc_keepMarks) ga__markClear(s);
  atomic_store_explicit(&s->sweepgen, atomic_load(&ga__sweepgen_h), memory_order_relaxed);
}

static void sweep_cache_cb(mcache *c, void *arg) {
  ga__mcache_for_each_span(c, sweep_cached, arg);
}

void ga__gc_sweep_start(uint64_t heapLive, uint64_t trigger) {
  atomic_fetch_add_explicit(&ga__sweepgen_h, 2, memory_order_release);
  ga__mcache_for_each(sweep_cache_cb, NULL);
  /* Spans of the caches left out keep this cycle's marks: the next mark
   * must clear them (mgc.c begin_mark_phase). */
  ga__gc_staleMarks = ga__mcache_anyInvisible();
  ga__mcentral_startSweep();
  /* Go's gcPaceSweeper: all pages in use must be swept by the time the heap
   * has grown to the trigger (less 1 MiB of margin). */
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  atomic_store(&sw.pagesSwept, 0);
  int64_t distance = (int64_t)trigger - (int64_t)heapLive - (1 << 20);
  if (distance < GA_PAGE_SIZE) distance = GA_PAGE_SIZE;
  atomic_store(&sw.heapLiveBasis, (int64_t)heapLive);
  setPagesPerByte((double)hc.pagesInUse / (double)distance);
  atomic_store(&sw.centralIndex, 0);
  atomic_fetch_add_explicit(&sw.bgEpoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)&sw.bgEpoch, 1);
}

bool ga__sweepone(void) {
  for (;;) {
    unsigned i = atomic_load_explicit(&sw.centralIndex, memory_order_relaxed);
    if (i >= GA_NUM_CENTRALS) return false;
    if (ga__mcentral_sweepOne(i) != 0) return true;
    atomic_compare_exchange_weak(&sw.centralIndex, &i, i + 1);
  }
}

void ga__finish_sweep(void) {
  while (ga__sweepone()) {
  }
  setPagesPerByte(0);
}

uintptr_t ga__unswept_spans(void) { return ga__mcentral_unsweptCount(); }

void ga__deductSweepCredit(uintptr_t spanBytes, uintptr_t callerSweepPages) {
  double ratio = pagesPerByte();
  if (ratio == 0) return;
  int64_t live = atomic_load_explicit(&ga__heapLive, memory_order_relaxed);
  int64_t basisLive = atomic_load_explicit(&sw.heapLiveBasis, memory_order_relaxed);
  int64_t newLive = (int64_t)spanBytes + (live > basisLive ? live - basisLive : 0);
  int64_t target = (int64_t)(ratio * (double)newLive) - (int64_t)callerSweepPages;
  while (target > (int64_t)atomic_load_explicit(&sw.pagesSwept, memory_order_relaxed)) {
    if (!ga__sweepone()) {
      setPagesPerByte(0);
      break;
    }
  }
}

/* ---- background sweeper --------------------------------------------------- */

static void *bgsweep(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    ga__epoch_wait(&sw.bgEpoch, &seen);
    if (ga__bgthread_exiting(&sw.bg)) return NULL;
    int n = 0;
    while (ga__sweepone())
      if (++n % 10 == 0) sched_yield(); /* low priority: let mutators run */
  }
  return NULL;
}

void ga__bgsweep_start(void) { ga__bgthread_start(&sw.bg, bgsweep, false); }

int ga__bgsweep_running(void) { return ga__bgthread_alive(&sw.bg); }

/* End the thread (solo.c; no cycle runs); the next cycle's end starts it
 * again. A sweep in progress is finished first. */
void ga__bgsweep_stop(void) { ga__bgthread_stop(&sw.bg, &sw.bgEpoch); }

/* The thread did not survive the fork: the child starts its own. */
void ga__bgsweep_after_fork_child(void) { ga__bgthread_forget(&sw.bg); }
