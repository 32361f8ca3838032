/*
 * mbitmap.c — a span's bitmaps and the slow half of slot allocation (Go's
 * mbitmap.go twin): nextFreeIndex, refillAllocCache, and folding in frees
 * made by other threads.
 *
 * Each span has three bitmaps of ceil(nelems/64) words, carved together from
 * one off-heap block (pools of 1, 2, 4, 8, 16 words per map, under the heap
 * lock):
 *   allocBits   exact: bit i set <=> slot i is allocated (remote frees not yet
 *               folded in still count as allocated). Goalloc sets the bit at
 *               allocation time (Go does not, because Go never frees
 *               explicitly); this is what lets ga_free detect a double free
 *               with one bit test. Bits past nelems are always 0.
 *   gcmarkBits  the collector's mark bits.
 *   freeBits    remote frees: set by one atomic fetch-or from any thread,
 *               cleared only by ga__span_collect.
 *
 * allocCache is the complement of the allocBits word that holds freeindex,
 * shifted right so that bit 0 is slot freeindex: ctz finds the next free slot
 * (Go's trick). Slots below freeindex in the current window are all
 * allocated; the owner's free of such a slot rewinds freeindex to it, so the
 * window stays exact and a freed slot is reused at once (mcache-hot).
 */
#include "internal.h"

/* Pools of bitmap blocks, by words per map (1, 2, 4, 8, 16). */
#define NBITS_POOLS 5
static fixalloc bits_pool[NBITS_POOLS];

void ga__mheap_lock(void);
void ga__mheap_unlock(void);

void ga__bits_init(void) {
  for (int i = 0; i < NBITS_POOLS; i++)
    ga__fixalloc_init(&bits_pool[i], (size_t)3 * 8 * ((size_t)1 << i));
}

/* Heap lock held. */
void ga__span_allocBits(mspan *s) {
  unsigned nw = (s->nelems + 63u) / 64u, cls = 0;
  while ((1u << cls) < nw) cls++;
  _Atomic uint64_t *b = ga__fixalloc_alloc(&bits_pool[cls]); /* zeroed */
  s->bitsClass = (uint8_t)cls;
  if (b == NULL) {
    s->allocBits = s->gcmarkBits = s->freeBits = NULL;
    return;
  }
  s->allocBits = b;
  s->gcmarkBits = b + (1u << cls);
  s->freeBits = b + 2 * (1u << cls);
}

/* Heap lock held. */
void ga__span_freeBitsStorage(mspan *s) {
  ga__fixalloc_free(&bits_pool[s->bitsClass], (void *)s->allocBits);
}

void ga__span_refillAllocCache(mspan *s) {
  unsigned fi = s->freeindex;
  if (fi >= s->nelems) {
    s->allocCache = 0;
    return;
  }
  s->allocCache = ~ga__loadBits(&s->allocBits[fi >> 6]) >> (fi & 63);
}

void ga__span_rewind(mspan *s) {
  s->freeindex = 0;
  ga__span_refillAllocCache(s);
}

unsigned ga__span_nextFreeIndex(mspan *s) {
  unsigned fi = s->freeindex, n = s->nelems;
  if (fi >= n) return n;
  uint64_t cache = s->allocCache;
  while (cache == 0) {
    /* This window is used up: move to the next one. */
    fi = (fi + 64) & ~63u;
    if (fi >= n) {
      s->freeindex = (uint16_t)n;
      return n;
    }
    cache = ~ga__loadBits(&s->allocBits[fi >> 6]);
  }
  unsigned bit = (unsigned)__builtin_ctzll(cache);
  unsigned result = fi + bit;
  if (result >= n) {
    s->freeindex = (uint16_t)n;
    s->allocCache = 0;
    return n;
  }
  cache = (cache >> bit) >> 1;
  fi = result + 1;
  if ((fi & 63) == 0 && fi != n) cache = ~ga__loadBits(&s->allocBits[fi >> 6]);
  s->allocCache = cache;
  s->freeindex = (uint16_t)fi;
  return result;
}

unsigned ga__span_collect(mspan *s) {
  if (!atomic_load_explicit(&s->remotePending, memory_order_relaxed)) return 0;
  /* Clear the flag before draining the words: a free that lands after our
   * exchange of its word also sets the flag after this store (the exchange
   * and its fetch-or are ordered), so no free is left unflagged. */
  atomic_store_explicit(&s->remotePending, 0, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  unsigned nw = (s->nelems + 63u) / 64u, freed = 0;
  for (unsigned w = 0; w < nw; w++) {
    if (ga__loadBits(&s->freeBits[w]) == 0) continue;
    uint64_t x = atomic_exchange_explicit(&s->freeBits[w], 0,
                                          memory_order_acq_rel);
    uint64_t a = ga__loadBits(&s->allocBits[w]);
    if (GA_UNLIKELY(x & ~a)) {
      /* Freed by another thread, but not allocated any more: the owner freed
       * it too. Report the first such object. */
      unsigned i = w * 64 + (unsigned)__builtin_ctzll(x & ~a);
      uintptr_t obj = s->startAddr + i * s->elemsize;
      ga__bad_pointer("ga_free", (void *)obj,
                      "double free (freed by two threads)", 0);
    }
    ga__storeBits(&s->allocBits[w], a & ~x);
    freed += (unsigned)__builtin_popcountll(x);
  }
  if (freed) {
    s->allocCount = (uint16_t)(s->allocCount - freed);
    s->needzero = 1;
  }
  return freed;
}
