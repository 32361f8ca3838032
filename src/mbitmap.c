/*
 * mbitmap.c — a span's bitmaps and the slow half of slot allocation (Go's
 * mbitmap.go twin): moving the 64-slot allocation window, and folding in
 * frees made through freeBits.
 *
 * Each span has two bitmaps of ceil(nelems/64) words and a byte map of as
 * many 64-byte groups, carved together from one off-heap block of exactly
 * that size (a pool per word count, 1 .. 32, under the heap lock):
 *   allocBits   bit i set <=> slot i is allocated. Exact, except that while a
 *               span is cached its current window's truth is ~allocCache
 *               (the fast paths only touch allocCache); syncWindow writes it
 *               back. Objects freed through freeBits but not yet folded in
 *               still count as allocated. Bits past nelems are always 0.
 *   gcmarkBytes the collector's marks, a byte per slot (plain stores from
 *               any number of markers: see mspan).
 *   freeBits    frees not yet folded in: set by one atomic fetch-or from any
 *               thread, cleared only by ga__span_collect.
 *
 * Invariants: allocCache is a subset of the window's slots that exist
 * (ga__windowValid); the only writers of a cached span's allocCache are its
 * thread's fast and slow paths (and, with the world stopped, nobody: the
 * collector reads it, never writes it).
 * While a span is cached, roomWords has the bit of every allocBits word
 * other than the window's that has a free slot (initRoom when the span is
 * cached, the owner's free outside the window, collect), so nextWindow finds
 * the next window without loading the words in between.
 */
#include "mgc.h"

/* Pools of bitmap blocks, one per number of words per map (1 .. 32), so
 * that a block is exactly as big as its span needs: 80 bytes per 64 slots.
 * Pools by powers of two (1, 2, 4, .. 32 words) gave the 24-byte class
 * (682 slots, 11 words) blocks of 1280 bytes instead of 880, 2.4 % of the
 * heap it fills (gcbench). */
#define NBITS_POOLS 32
static fixalloc bits_pool[NBITS_POOLS];
_Static_assert(64u * NBITS_POOLS >= GA_MAX_OBJS_PER_SPAN, "a bitmap pool for the biggest span");

void ga__mheap_lock(void);
void ga__mheap_unlock(void);

void ga__bits_init(void) {
  for (int i = 0; i < NBITS_POOLS; i++)
    ga__fixalloc_init(&bits_pool[i], (size_t)(2 * 8 + 64) * (size_t)(i + 1));
}

/* The pool of s's block: by its words per map (nelems >= 1, fixed for the
 * span's life). */
static fixalloc *pool_of(const mspan *s) { return &bits_pool[(s->nelems + 63u) / 64u - 1]; }

/* Heap lock held. */
void ga__span_allocBits(mspan *s) {
  unsigned nw = (s->nelems + 63u) / 64u;
  _Atomic uint64_t *b = ga__fixalloc_alloc(pool_of(s)); /* zeroed */
  if (b == NULL) {
    s->allocBits = s->freeBits = NULL;
    s->gcmarkBytes = NULL;
    return;
  }
  s->allocBits = b;
  s->freeBits = b + nw;
  s->gcmarkBytes = (_Atomic uint8_t *)(b + 2 * nw);
}

/* Heap lock held. */
void ga__span_freeBitsStorage(mspan *s) {
  ga__fixalloc_free(pool_of(s), (void *)s->allocBits);
}

/* Inlined into nextWindow, which runs about every second malloc in churn. */
static inline void load_window(mspan *s, unsigned w) {
  uint64_t valid = ga__windowValid(s, w);
  __atomic_store_n(&s->freeindex, (uint16_t)(w * 64), __ATOMIC_RELAXED);
  /* Only the slots that exist: the owner's free then needs no validity
   * test beyond the offset's (see ga_free). */
  unsigned left = s->nelems - w * 64u;
  s->windowBytes = (uint32_t)((left < 64 ? left : 64) * s->elemsize);
  s->windowAddr = s->startAddr + (uintptr_t)w * 64 * s->elemsize;
  ga__storeBits(&s->allocCache, ~ga__loadBits(&s->allocBits[w]) & valid);
}

void ga__span_loadWindow(mspan *s, unsigned w) { load_window(s, w); }

void ga__span_syncWindow(mspan *s) {
  if (s->nelems == 0) return;
  unsigned w = s->freeindex >> 6;
  ga__storeBits(&s->allocBits[w],
                ~ga__loadBits(&s->allocCache) & ga__windowValid(s, w));
}

void ga__span_initRoom(mspan *s) {
  unsigned nw = (s->nelems + 63u) / 64u;
  uint64_t room = 0;
  for (unsigned w = 0; w < nw; w++)
    if ((ga__loadBits(&s->allocBits[w]) & ga__windowValid(s, w)) !=
        ga__windowValid(s, w))
      room |= (uint64_t)1 << w;
  s->roomWords = room;
}

/* Words are tried in roomWords order after the window's, wrapping around:
 * the window moves forward through the span as in Go, and frees behind it
 * are found after the wrap. The bits of words other than the window's are
 * exact (only the window allocates, and its bit is dropped when it moves
 * on), but the word is loaded anyway, so a stale bit would only cost a
 * turn of the loop. */
bool ga__span_nextWindow(mspan *s) {
  unsigned w0 = s->freeindex >> 6;
  /* The window's own word is full: allocCache ran dry. */
  uint64_t room = s->roomWords & ~((uint64_t)1 << w0);
  bool found = false;
  ga__span_windowBegin(s);
  ga__span_syncWindow(s);
  while (room != 0) {
    /* Bits above w0 first (~((2 << 63) - 1) is 0: no bit above 63). */
    uint64_t above = room & ~(((uint64_t)2 << w0) - 1);
    unsigned w = (unsigned)__builtin_ctzll(above != 0 ? above : room);
    room &= ~((uint64_t)1 << w);
    if ((ga__loadBits(&s->allocBits[w]) & ga__windowValid(s, w)) !=
        ga__windowValid(s, w)) {
      load_window(s, w);
      found = true;
      break;
    }
  }
  s->roomWords = room;
  ga__span_windowEnd(s);
  return found;
}

void ga__span_recount(mspan *s) {
  unsigned nw = (s->nelems + 63u) / 64u, n = 0;
  for (unsigned w = 0; w < nw; w++)
    n += (unsigned)ga__popcount64(ga__loadBits(&s->allocBits[w]));
  s->allocCount = (uint16_t)n;
}

bool ga__span_isAllocatedAny(mspan *s, uintptr_t idx) {
  for (;;) {
    uint32_t q = atomic_load_explicit(&s->windowSeq, memory_order_acquire);
    if (q & 1) {
      __builtin_ia32_pause();
      continue;
    }
    bool cached = atomic_load_explicit(&s->cache, memory_order_relaxed) != NULL;
    unsigned fi = __atomic_load_n(&s->freeindex, __ATOMIC_RELAXED);
    uint64_t cache = ga__loadBits(&s->allocCache);
    uint64_t word = ga__loadBits(&s->allocBits[idx >> 6]);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->windowSeq, memory_order_relaxed) != q) continue;
    if (cached && (idx >> 6) == (uintptr_t)(fi >> 6))
      return !((cache >> (idx & 63)) & 1);
    return (word >> (idx & 63)) & 1;
  }
}

static GA_NOINLINE void collect_double_free(mspan *s, unsigned w, uint64_t bad) {
  unsigned i = w * 64 + (unsigned)__builtin_ctzll(bad);
  uintptr_t obj = s->startAddr + i * s->elemsize;
  ga__bad_pointer("ga_free", (void *)obj,
                  "double free: the object was freed twice (found when "
                  "folding frees made by other threads)",
                  0);
}

/* The objects of word w whose bits are in x were freed by other threads:
 * mark them freed for the free cache (mtcache.c), before they can be handed
 * out again, so that their owner's second free is checked in full. Here
 * rather than in the remote free: the owner writes these lines anyway when
 * it hands them out, the freeing thread had perhaps only read them (larson:
 * 6 % of its time when the remote free marked). */
static void mark_freed(mspan *s, unsigned w, uint64_t x) {
  uintptr_t base = s->startAddr + (uintptr_t)w * 64 * s->elemsize;
  for (; x != 0; x &= x - 1) GA_TCKEY(base + ga__ctz64(x) * s->elemsize) = ~ga__tcKey;
}

unsigned ga__span_collect(mspan *s) {
  if (!atomic_load_explicit(&s->remotePending, memory_order_relaxed)) return 0;
  /* Clear the flag before draining the words: a free that lands after our
   * exchange of its word sets the flag again after this store (the exchange
   * and its fetch-or are ordered), so no free is left unflagged. */
  atomic_store_explicit(&s->remotePending, 0, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  bool cached = atomic_load_explicit(&s->cache, memory_order_relaxed) != NULL;
  bool mark = ga__tcOn && GA_TC_KEYED(s->spanclass);
  unsigned nw = (s->nelems + 63u) / 64u, freed = 0, w0 = s->freeindex >> 6;
  for (unsigned w = 0; w < nw; w++) {
    if (ga__loadBits(&s->freeBits[w]) == 0) continue;
    uint64_t x = atomic_exchange_explicit(&s->freeBits[w], 0,
                                          memory_order_acq_rel);
    if (mark) mark_freed(s, w, x);
    if (cached && w == w0) {
      uint64_t cache = ga__loadBits(&s->allocCache);
      uint64_t allocated = ~cache & ga__windowValid(s, w);
      if (GA_UNLIKELY(x & ~allocated)) collect_double_free(s, w, x & ~allocated);
      ga__storeBits(&s->allocCache, cache | x);
    } else {
      uint64_t a = ga__loadBits(&s->allocBits[w]);
      if (GA_UNLIKELY(x & ~a)) collect_double_free(s, w, x & ~a);
      ga__storeBits(&s->allocBits[w], a & ~x);
      s->roomWords |= (uint64_t)1 << w; /* read only while cached */
    }
    freed += (unsigned)ga__popcount64(x);
  }
  if (freed) {
    s->needzero = 1;
    if (cached) {
      s->localFrees += freed; /* counted when the span leaves the cache */
    } else {
      s->allocCount = (uint16_t)(s->allocCount - freed);
      ga__stats_free(s->spanclass >> 1, freed, 0);
      ga__heapLive_add(-(intptr_t)freed * (intptr_t)s->elemsize);
    }
  }
  return freed;
}
