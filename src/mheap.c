/*
 * mheap.c — the page heap (Go's mheap.go twin): arenas reserved from the OS,
 * the address -> span map, span allocation and freeing, and heap growth.
 *
 * Address space. The heap is reserved in 64 MiB arenas aligned to 64 MiB,
 * starting at Go's hint 0xc000000000 and growing upward, so that a heap of
 * any size stays one dense range when the OS allows it. Each arena has a
 * heapArena record, allocated off the heap and published in ga__arenas[]
 * (indexed by address >> 26) with a release store; entries never go back to
 * NULL. Arenas are mapped read-write only as the page allocator is grown over
 * them, in 4 MiB chunks; fresh chunks enter the page allocator as free and
 * "scavenged" (zero, costing no RSS).
 *
 * Span lookup is O(1): ga__spanOf(p) = ga__arenas[p>>26]->spans[page], and
 * for the 256 GiB span window from the first arena (where the heap is when
 * it stays dense) one flat map, ga__spanWindow.map[(p - base) >> 13], whose
 * slices the window's arenas use as their spans arrays. Every page of an
 * in-use span maps to it. Entries of free pages are stale (they
 * point to whatever span last held the page, or to ga__emptyspan), so a
 * lock-free reader checks the span's state (acquire) and range before using
 * it. mspan records are never unmapped (fixalloc), so a stale pointer is
 * always safe to read.
 *
 * Publication (Go's invariant 3): all span fields are written first, then
 * spans[] entries, then state = mSpanInUse with a release store.
 *
 * Zeroing: the page allocator reports how many allocated pages were
 * scavenged. Scavenged pages are fresh from mmap or were released with
 * MADV_DONTNEED, so they read as zero: a span made only of such pages has
 * needzero = 0 and calloc does not clear it again. (Go uses a per-arena
 * zeroedBase high-water mark instead and does not trust released pages;
 * never switch the OS layer to MADV_FREE without revisiting this.)
 *
 * Scavenger and statistics hooks (mgcscavenge.c): every span allocation and
 * free calls ga__scav_alloc_locked / ga__scav_free_locked under the lock
 * (per-class span counts, per-2-MiB-region use and last-free time); any
 * other path that frees pages should call the free hook too, or its pages
 * count as long idle. Work they ask for runs after the lock is dropped.
 *
 * Reclaim before growth: objects freed by threads that do not own their
 * span sit in span.freeBits until someone folds them in. Before growing the
 * heap, mheap asks every mcentral to fold them and free spans that became
 * empty (ga__mcentral_reclaimAll), at most once per quarter of the heap
 * grown, so the cost stays amortised O(1) per page.
 *
 * Locking: mheap.lock guards the page allocator, arena growth, the spans
 * map writes and the span/bitmap fixallocs. Lock order: mcentral -> mheap.
 */
#include <string.h>

#include "mgc.h"
#include "mpagealloc.h"

heapArena *_Atomic ga__arenas[GA_ARENA_L2_ENTRIES];
spanWindow ga__spanWindow;
/* Bounds of every address ever given to the heap: a quick filter for the
 * conservative scan (most words are not heap pointers). */
_Atomic uintptr_t ga__heapMin = UINTPTR_MAX, ga__heapMax = 0;

/* nelems 0 and allocCache 0 make every fast path fall through to the slow
 * path; state dead makes every pointer lookup on it fail. */
mspan ga__emptyspan;

#define ARENA_HINT_START ((uintptr_t)0xc000000000)

static struct {
  ga_mutex lock;
  fixalloc spanalloc;
  uintptr_t curArena, curArenaEnd; /* reserved, not yet given to pages */
  uintptr_t hint;                  /* where to try reserving next */
  /* counters (under lock) */
  uintptr_t pagesInUse;
  uintptr_t heapSys;
  uintptr_t spansInUse;
  uintptr_t largeInUse;
  uintptr_t grownSinceReclaim; /* pages grown since the last reclaim pass */
} mheap_;

/* heapSys - pagesInUse, in pages, for ga__mheap_freePagesHint (written
 * under the heap lock, read without it). */
static _Atomic uintptr_t freePagesHint;
static void update_free_hint(void) {
  uintptr_t sys = mheap_.heapSys / GA_PAGE_SIZE;
  atomic_store_explicit(&freePagesHint,
                        sys > mheap_.pagesInUse ? sys - mheap_.pagesInUse : 0,
                        memory_order_relaxed);
}

/* ---- init ------------------------------------------------------------- */

_Atomic int ga__inited;
static _Atomic int init_state; /* 0 none, 1 running, 2 done */

void ga__mcache_init(void);
void ga__mcentral_init(void);
void ga__bits_init(void);
void ga__gc_init(void);

void ga__init_slow(void) {
  int expect = 0;
  if (atomic_compare_exchange_strong(&init_state, &expect, 1)) {
    ga__options_init(); /* the environment, once (options.c) */
    ga__pages_init();
    ga__fixalloc_init(&mheap_.spanalloc, sizeof(mspan));
    mheap_.hint = ARENA_HINT_START;
    ga__bits_init();
    ga__mcentral_init();
    ga__tc_init();
    ga__mcache_init();
    ga__gc_init();
    ga__ww_init(); /* after the options: GOALLOC_GC_CONCURRENT */
    ga__thread_init();
    atomic_store(&init_state, 2);
    atomic_store_explicit(&ga__inited, 1, memory_order_release);
    return;
  }
  while (atomic_load(&init_state) != 2) __builtin_ia32_pause();
}

/* ---- growth ----------------------------------------------------------- */

/* The window's size: GA_SPAN_WINDOW_BYTES, or less for test_spanwindow
 * (which must see heap beyond the window without 256 GiB of heap). */
static uintptr_t windowBytes = GA_SPAN_WINDOW_BYTES;
void ga__spanWindow_testBytes(uintptr_t bytes) { windowBytes = bytes; }

/* The first arena opens the span window there (heap lock held). */
static void span_window_open(uintptr_t base) {
  if (atomic_load_explicit(&ga__spanWindow.bytes, memory_order_relaxed) != 0) return;
  uintptr_t map = ga__sys_reserve_zero(windowBytes / GA_PAGE_SIZE * sizeof(uintptr_t));
  if (map == 0) return; /* no window: every lookup takes the two levels */
  ga__spanWindow.map = (_Atomic uintptr_t *)map;
  atomic_store_explicit(&ga__spanWindow.base, base, memory_order_relaxed);
  atomic_store_explicit(&ga__spanWindow.bytes, windowBytes, memory_order_release);
}

/* The spans array of the arena at a: its slice of the window's map, made
 * writable, or an array of its own outside the window. Zero either way:
 * every page maps to ga__emptyspan. */
static _Atomic uintptr_t *arena_spans(uintptr_t a) {
  size_t bytes = GA_PAGES_PER_ARENA * sizeof(uintptr_t);
  uintptr_t off = a - atomic_load_explicit(&ga__spanWindow.base, memory_order_relaxed);
  if (off < atomic_load_explicit(&ga__spanWindow.bytes, memory_order_relaxed)) {
    _Atomic uintptr_t *s = &ga__spanWindow.map[off >> GA_PAGE_SHIFT];
    return ga__sys_map((uintptr_t)s, bytes) == 0 ? s : NULL;
  }
  return ga__sys_alloc(bytes);
}

/* Publish heapArena records for every arena in [base, end). */
static bool arena_publish(uintptr_t base, uintptr_t end) {
  span_window_open(base);
  for (uintptr_t a = base; a < end; a += GA_ARENA_BYTES) {
    uintptr_t idx = a >> GA_ARENA_SHIFT;
    if (atomic_load_explicit(&ga__arenas[idx], memory_order_relaxed) != NULL)
      continue;
    heapArena *ha = ga__sys_alloc(sizeof(heapArena));
    if (ha == NULL) return false;
    ha->spans = arena_spans(a);
    if (ha->spans == NULL) {
      ga__sys_free(ha, sizeof(heapArena));
      return false;
    }
    atomic_store_explicit(&ga__arenas[idx], ha, memory_order_release);
  }
  return true;
}

/* Reserve at least `bytes` more address space (a multiple of 64 MiB) and
 * make it the current arena range. Heap lock held. */
static bool arena_reserve(uintptr_t bytes) {
  /* At the hint if possible (a contiguous heap keeps the arena map and the
   * page allocator's summaries dense), else anywhere; later hints continue
   * after wherever we landed. */
  uintptr_t hint = mheap_.hint;
  if (hint + bytes < hint || ((hint + bytes) >> GA_ADDR_BITS) != 0) hint = 0;
  uintptr_t p = ga__sys_reserve(hint, bytes, GA_ARENA_BYTES);
  if (p == 0 || ((p + bytes - 1) >> GA_ADDR_BITS) != 0) return false;
  if (!arena_publish(p, p + bytes)) return false;
  if (p < atomic_load(&ga__heapMin)) atomic_store(&ga__heapMin, p);
  if (p + bytes > atomic_load(&ga__heapMax)) atomic_store(&ga__heapMax, p + bytes);
  mheap_.hint = p + bytes;
  if (p == mheap_.curArenaEnd && p != 0) { /* contiguous: extend */
    mheap_.curArenaEnd = p + bytes;
    return true;
  }
  if (mheap_.curArenaEnd > mheap_.curArena) {
    /* Not contiguous: hand the rest of the old range to the page allocator
     * now so that it is not lost (it is whole chunks). */
    uintptr_t n = mheap_.curArenaEnd - mheap_.curArena;
    if (ga__sys_map(mheap_.curArena, n) == 0) {
      ga__ww_register(mheap_.curArena, mheap_.curArena + n);
      ga__pages_grow(mheap_.curArena, n / GA_PAGE_SIZE);
      mheap_.heapSys += n;
      update_free_hint();
    }
  }
  mheap_.curArena = p;
  mheap_.curArenaEnd = p + bytes;
  return true;
}

/* Go's mheap.grow: add at least npages to the page allocator, in whole
 * 4 MiB chunks. Heap lock held. */
static bool mheap_grow(uintptr_t npages) {
  uintptr_t chunks = (npages + GA_PALLOC_CHUNK_PAGES - 1) / GA_PALLOC_CHUNK_PAGES;
  uintptr_t bytes = chunks * GA_PALLOC_CHUNK_BYTES;
  if (mheap_.curArenaEnd - mheap_.curArena < bytes &&
      !arena_reserve((bytes + GA_ARENA_BYTES - 1) & ~(GA_ARENA_BYTES - 1)))
    return false;
  uintptr_t base = mheap_.curArena;
  if (ga__sys_map(base, bytes) != 0) return false;
  ga__ww_register(base, base + bytes);
  mheap_.curArena += bytes;
  ga__pages_grow(base, bytes / GA_PAGE_SIZE);
  mheap_.heapSys += bytes;
  update_free_hint();
  mheap_.grownSinceReclaim += bytes / GA_PAGE_SIZE;
  return true;
}

/* ---- span allocation -------------------------------------------------- */

/* A span's pages come into use (in_use: each spans-map entry points to s)
 * or go out of it; either way the pageScan bits of a scan span's pages
 * follow. Out of use, the entries keep s (stale, see ga__spanOf: free's
 * diagnostics name freed memory by it) but lose the span class, so that
 * the free cache's push (mfree.c), which trusts the entry's class, never
 * takes an address in a dead span. Heap lock held. */
static void map_pages(mspan *s, bool in_use) {
  bool scan = !(s->spanclass & 1); /* pointer-free pages are never protected */
  uintptr_t p = s->startAddr, end = p + s->npages * GA_PAGE_SIZE;
  for (; p < end; p += GA_PAGE_SIZE) {
    heapArena *ha = ga__arenaOf(p);
    uintptr_t i = ga__arenaPage(p);
    uintptr_t e = ga__spanEntry(s, (p - s->startAddr) >> GA_PAGE_SHIFT);
    atomic_store_explicit(&ha->spans[i], in_use ? e : e & ~(uintptr_t)255,
                          memory_order_relaxed);
    if (!scan) continue;
    _Atomic uint64_t *w = &ha->pageScan[i / 64];
    uint64_t m = (uint64_t)1 << (i % 64), v = atomic_load_explicit(w, memory_order_relaxed);
    atomic_store_explicit(w, in_use ? v | m : v & ~m, memory_order_relaxed);
  }
}

/* Should allocation fold remote frees in before growing? Once per quarter
 * of the heap (at least 4 MiB) grown since the last pass. */
static bool want_reclaim(void) {
  uintptr_t q = mheap_.pagesInUse / 4;
  if (q < GA_PALLOC_CHUNK_PAGES) q = GA_PALLOC_CHUNK_PAGES;
  return mheap_.grownSinceReclaim >= q;
}

mspan *ga__mheap_alloc(uintptr_t npages, uintptr_t align_pages, unsigned spc,
                       bool tiny) {
  uintptr_t scav = 0, base;
  ga_mutex_lock(&mheap_.lock);
  base = ga__pages_alloc(npages, align_pages, &scav);
  if (base == 0 && want_reclaim()) {
    mheap_.grownSinceReclaim = 0;
    ga_mutex_unlock(&mheap_.lock);
    ga__mcentral_reclaimAll(); /* takes mcentral locks, then ours */
    ga_mutex_lock(&mheap_.lock);
    base = ga__pages_alloc(npages, align_pages, &scav);
  }
  if (base == 0) {
    if (npages + align_pages < npages || !mheap_grow(npages + align_pages - 1)) {
      ga_mutex_unlock(&mheap_.lock);
      return NULL;
    }
    base = ga__pages_alloc(npages, align_pages, &scav);
    if (base == 0) ga__throw("page allocator failed after heap growth");
  }
  mspan *s = ga__fixalloc_alloc(&mheap_.spanalloc);
  if (s == NULL) {
    ga__pages_free(base, npages);
    ga_mutex_unlock(&mheap_.lock);
    return NULL;
  }
  unsigned cl = spc >> 1;
  s->startAddr = base;
  s->npages = npages;
  s->spanclass = (uint8_t)spc;
  if (cl == 0) {
    s->elemsize = npages * GA_PAGE_SIZE;
    s->nelems = 1;
    s->divMul = 0;
  } else {
    s->elemsize = ga__class_to_size[cl];
    s->nelems = ga__class_to_nelems[cl];
    s->divMul = ga__class_to_divmagic[cl];
  }
  s->divMul64 = UINT64_MAX / s->elemsize + 1;
  s->windowBytes = 0; /* set with each window (load_window) */
  s->limit = base + s->elemsize * s->nelems;
  s->tiny = tiny;
  s->needzero = scav != npages;
  s->allocCount = 0;
  s->list = SPAN_LIST_NONE;
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->cache, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->remotePending, 0, memory_order_relaxed);
  atomic_store_explicit(&s->sweepgen, atomic_load(&ga__sweepgen_h),
                        memory_order_relaxed);
  s->specials = 0;
  atomic_store_explicit(&s->anyMarked, 0, memory_order_relaxed); /* bits zeroed */
  ga__span_allocBits(s);
  if (s->allocBits == NULL) {
    ga__fixalloc_free(&mheap_.spanalloc, s);
    ga__pages_free(base, npages);
    ga_mutex_unlock(&mheap_.lock);
    return NULL;
  }
  ga__span_loadWindow(s, 0);
  map_pages(s, true);
  atomic_store_explicit(&s->state, mSpanInUse, memory_order_release);
  mheap_.pagesInUse += npages;
  update_free_hint();
  mheap_.spansInUse++;
  if (cl == 0) mheap_.largeInUse++;
  bool scav_work = ga__scav_alloc_locked(s); /* stats, scavenger (mgcscavenge.c) */
  ga_mutex_unlock(&mheap_.lock);
  if (GA_UNLIKELY(scav_work)) ga__scav_after_alloc();
  GA_VG_NOACCESS((void *)base, npages * GA_PAGE_SIZE);
  return s;
}

/* The pages, bitmaps and record of a dead span go back (heap lock held). */
static bool freeSpan_locked(mspan *s) {
  map_pages(s, false);
  mheap_.pagesInUse -= s->npages;
  update_free_hint();
  mheap_.spansInUse--;
  if ((s->spanclass >> 1) == 0) mheap_.largeInUse--;
  ga__pages_free(s->startAddr, s->npages);
  bool scav_wake = ga__scav_free_locked(s); /* stats, scavenger */
  ga__span_freeBitsStorage(s);
  ga__fixalloc_free(&mheap_.spanalloc, s);
  return scav_wake;
}

/* While the collector marks concurrently (ga__gcphase), a marker may be
 * reading any span record it found through the spans map, and may set a
 * byte in its gcmarkBytes. A span freed then is marked dead at once (the
 * markers and the free validators ignore it from here on), but its pages,
 * bitmaps and record are kept until marking is over, so that no marker
 * ever writes a mark into storage that has become another span's. */
static mspan *deferredFree; /* linked through next */

void ga__mheap_freeSpan(mspan *s) {
  ga_mutex_lock(&mheap_.lock);
  if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse)
    ga__throw("freeSpan of a span not in use");
  atomic_store_explicit(&s->state, mSpanDead, memory_order_release);
  if (atomic_load_explicit(&ga__gcphase, memory_order_relaxed) != GC_OFF) {
    s->next = deferredFree;
    deferredFree = s;
    ga_mutex_unlock(&mheap_.lock);
    return;
  }
  bool scav_wake = freeSpan_locked(s);
  ga_mutex_unlock(&mheap_.lock);
  if (GA_UNLIKELY(scav_wake)) ga__scavenger_wake();
}

/* Marking is over (ga__gcphase is GC_OFF): free what was deferred. */
void ga__mheap_freeDeferred(void) {
  bool scav_wake = false;
  ga_mutex_lock(&mheap_.lock);
  mspan *s = deferredFree;
  deferredFree = NULL;
  while (s != NULL) {
    mspan *next = s->next;
    scav_wake |= freeSpan_locked(s);
    s = next;
  }
  ga_mutex_unlock(&mheap_.lock);
  if (scav_wake) ga__scavenger_wake();
}

/* Free pages the heap holds (released ones included), read without the
 * lock: a hint for the allocator's choices, never exact. */
uintptr_t ga__mheap_freePagesHint(void) {
  return atomic_load_explicit(&freePagesHint, memory_order_relaxed);
}

/* Call fn on every in-use span, in address order, by walking the spans
 * map from each span's first page (heap lock held: clearStaleMarks,
 * clearAllMarks, oldRuns). Exempt from TSan: the span records it reads are also read
 * by markers and validators that take no lock. */
__attribute__((no_sanitize("thread")))
static void walk_spans(void (*fn)(mspan *s, void *arg), void *arg) {
  uintptr_t min = atomic_load(&ga__heapMin), max = atomic_load(&ga__heapMax);
  for (uintptr_t a = min; a < max; a += GA_ARENA_BYTES) {
    heapArena *ha = ga__arenaOf(a);
    if (ha == NULL) continue;
    for (uintptr_t i = 0; i < GA_PAGES_PER_ARENA;) {
      mspan *sp = ga__spanFromEntry(atomic_load_explicit(&ha->spans[i], memory_order_relaxed));
      if (sp == &ga__emptyspan ||
          atomic_load_explicit(&sp->state, memory_order_acquire) != mSpanInUse ||
          sp->startAddr != a + i * GA_PAGE_SIZE || sp->npages == 0) {
        i++;
        continue;
      }
      fn(sp, arg);
      i += sp->npages;
    }
  }
}

static void clear_if_stale(mspan *s, void *arg) {
  if (atomic_load_explicit(&s->sweepgen, memory_order_relaxed) == *(uint32_t *)arg) return;
  ga__markClear(s);
}

/* The collector, at mark start (every mcentral locked): a span whose
 * sweepgen is behind h was cached by a thread the collector does not stop
 * when the last mark ended, so it was not swept and still has that mark's
 * bits. Clear them (see mgc.c begin_mark_phase). */
void ga__mheap_clearStaleMarks(uint32_t h) {
  ga_mutex_lock(&mheap_.lock);
  walk_spans(clear_if_stale, &h);
  ga_mutex_unlock(&mheap_.lock);
}

static void clear_marks(mspan *s, void *arg) {
  (void)arg;
  ga__markClear(s);
}

/* A major cycle with sticky marks, before it marks (world running, sweep
 * finished: nothing else writes marks now). Every span was swept under its
 * mcentral's lock, but the sweep's end is seen through a relaxed counter
 * (mgcsweep.c ga__sweepone): taking each lock once orders the sweepers'
 * reads of the marks before this clear (ThreadSanitizer reported the
 * background sweeper's read against the memset, 1 run in about 10 of
 * test_gc_stress). */
void ga__mheap_clearAllMarks(void) {
  ga__mcentral_lockAll();
  ga__mcentral_unlockAll();
  ga_mutex_lock(&mheap_.lock);
  walk_spans(clear_marks, NULL);
  ga_mutex_unlock(&mheap_.lock);
}

typedef struct {
  void (*fn)(uintptr_t lo, uintptr_t hi, void *arg);
  void *arg;
  uintptr_t lo, hi;
} old_ctx;

/* A scan span all of whose slots are marked: nothing will be allocated in
 * it until one is freed. */
static void note_old(mspan *s, void *arg) {
  old_ctx *c = arg;
  if (s->spanclass & 1) return;
  unsigned nw = (s->nelems + 63u) / 64u;
  unsigned n = 0;
  for (unsigned w = 0; w < nw; w++) n += (unsigned)ga__popcount64(ga__markWord(s, w));
  if (n < s->nelems || s->nelems == 0) return;
  uintptr_t lo = s->startAddr, hi = lo + s->npages * GA_PAGE_SIZE;
  if (lo == c->hi) {
    c->hi = hi;
    return;
  }
  if (c->hi > c->lo) c->fn(c->lo, c->hi, c->arg);
  c->lo = lo;
  c->hi = hi;
}

void ga__mheap_oldRuns(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  old_ctx c = {fn, arg, 0, 0};
  ga_mutex_lock(&mheap_.lock);
  walk_spans(note_old, &c);
  ga_mutex_unlock(&mheap_.lock);
  if (c.hi > c.lo) fn(c.lo, c.hi, arg);
}

/* Call fn on each maximal run of pages [lo, hi) held by in-use spans that
 * may hold pointers (scan spans) — all of them, or only those the write
 * watch keeps protected (GA_RUNS_COLD) or leaves open (GA_RUNS_HOT, its
 * pageHot bits) — in address order, from the pageScan
 * bitmaps: 128 words per arena, where a walk of the spans map read every
 * span record (a cache miss each: 2-4 % of binary-trees' and gcbench's
 * time, once per concurrent cycle). Without the heap lock: a span missed or
 * seen by the racy read only costs the write watch a rescan (it treats an
 * unprotected page as written). */
void ga__mheap_scanRuns(int which, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                        void *arg) {
  uintptr_t min = atomic_load(&ga__heapMin) & ~(GA_ARENA_BYTES - 1);
  uintptr_t max = atomic_load(&ga__heapMax);
  uintptr_t lo = 0, hi = 0; /* the run being extended */
  for (uintptr_t a = min; a < max; a += GA_ARENA_BYTES) {
    heapArena *ha = ga__arenaOf(a);
    if (ha == NULL) continue;
    for (unsigned w = 0; w < GA_PAGES_PER_ARENA / 64; w++) {
      uint64_t bits = atomic_load_explicit(&ha->pageScan[w], memory_order_relaxed);
      if (which != GA_RUNS_ALL) {
        uint64_t hot = atomic_load_explicit(&ha->pageHot[w], memory_order_relaxed);
        bits &= which == GA_RUNS_HOT ? hot : ~hot;
      }
      while (bits != 0) {
        unsigned b = (unsigned)__builtin_ctzll(bits);
        uint64_t rest = ~(bits >> b); /* zero-filled from the top: not 0 unless b == 0 */
        unsigned len = rest == 0 ? 64 : (unsigned)__builtin_ctzll(rest);
        uintptr_t plo = a + ((uintptr_t)w * 64 + b) * GA_PAGE_SIZE;
        uintptr_t phi = plo + (uintptr_t)len * GA_PAGE_SIZE;
        if (plo == hi) {
          hi = phi;
        } else {
          if (hi > lo) fn(lo, hi, arg);
          lo = plo;
          hi = phi;
        }
        bits = b + len >= 64 ? 0 : bits & ~((((uint64_t)1 << len) - 1) << b);
      }
    }
  }
  if (hi > lo) fn(lo, hi, arg);
}

void ga__mheap_counters(ga_heap_counters *out) {
  ga_mutex_lock(&mheap_.lock);
  out->pagesInUse = mheap_.pagesInUse;
  out->heapSys = mheap_.heapSys;
  out->heapReleased = ga__pages_scavenged_count() * GA_PAGE_SIZE;
  out->spansInUse = mheap_.spansInUse;
  out->largeInUse = mheap_.largeInUse;
  ga_mutex_unlock(&mheap_.lock);
}

/* The bitmap pools live in mbitmap.c but are only touched under our lock. */
void ga__mheap_lock(void) { ga_mutex_lock(&mheap_.lock); }
void ga__mheap_unlock(void) { ga_mutex_unlock(&mheap_.lock); }
void ga__mheap_resetLockAfterFork(void) {
  atomic_store_explicit(&mheap_.lock.state, 0, memory_order_relaxed);
}
