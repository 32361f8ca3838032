/*
 * mfree.c — explicit free and pointer validation. Go has no twin: Go frees
 * only by sweeping. goalloc lets C programs free, from any thread, and
 * checks every pointer it is given.
 *
 * Three paths:
 *   owner   the freeing thread's cache owns the object's span (the span it
 *           allocates from, or one it parked: see mcache.c). In the span's
 *           64-slot allocation window: set the object's allocCache bit, so
 *           nextFreeFast hands it out next. Elsewhere in the span: clear its
 *           allocBits bit with a plain load and store (only the owner writes
 *           a cached span's allocBits; the collector leaves them alone). No
 *           lock, no atomic RMW; 36 instructions in the window.
 *   remote  any other small object (another thread's span, an uncached
 *           span): one atomic fetch-or of the object's bit into
 *           span.freeBits (no lock), after free_remote's validation. The
 *           owner (or mcentral, for a span in no cache) folds the bits in
 *           when it next looks for room (ga__span_collect). A span
 *           whose objects are all free goes back to mheap when it is
 *           folded.
 *   large   a span of its own: one atomic fetch-or claims the free (so a
 *           concurrent double free is caught), then the pages go back to
 *           mheap under its lock.
 *
 * Validation (always on, fast path included): the pointer must map to an
 * in-use span, lie within it, be the first byte of a slot (the multiply-
 * and-shift index times elemsize must give it back) and that slot must be
 * allocated. Otherwise ga__bad_pointer says which rule failed, with the
 * address, and aborts. A double free is caught whether the first free was
 * by the owner or by another thread, and whatever the neighbours' states.
 * Not detectable by any allocator: freeing an object that has since been
 * freed and allocated again (the pointer is live again).
 *
 * Tiny objects (ga_malloc_atomic of < 16 bytes) share 16-byte blocks and are
 * not freed one by one: ga_free checks that the pointer is inside a live
 * tiny block and returns. The collector reclaims the block.
 */
#include <string.h>

#include "mgc.h"

static const char NOT_OURS[] =
    "invalid pointer: not allocated by goalloc (wild, stack or global address)";
static const char INTERIOR[] = "invalid pointer: points inside an object";
static const char DOUBLE_FREE[] = "double free: the object is already free";
static const char USE_AFTER_FREE[] =
    "use after free: the object is already free";
static const char FREED_SPAN[] =
    "double free or use after free: the memory here was freed";

/* Is slot idx of s live: allocated and not already freed through
 * freeBits? Exact from any thread (the window is read under its seqlock). */
static bool slot_live(mspan *s, uintptr_t idx) {
  uint64_t m = (uint64_t)1 << (idx & 63);
  if (ga__loadBits(&s->freeBits[idx >> 6]) & m) return false;
  return ga__span_isAllocatedAny(s, idx);
}

/* The in-use span containing address a, or NULL. */
static mspan *span_containing(uintptr_t a) {
  mspan *s = ga__spanOf(a);
  if (atomic_load_explicit(&s->state, memory_order_acquire) != mSpanInUse)
    return NULL;
  if (a < s->startAddr || a - s->startAddr >= s->npages * GA_PAGE_SIZE)
    return NULL;
  return s;
}

/* Classify pointer a for function fn: return its span if a is the start of
 * a live object (or inside a live tiny block), else report and abort. */
/* The name bad-free reports give the free function: "free" in the malloc
 * drop-in (which defines ga__override_free_name), "ga_free" otherwise. */
extern const char ga__override_free_name[] __attribute__((weak));
static const char *free_name(void) {
  return ga__override_free_name != NULL ? ga__override_free_name : "ga_free";
}

static mspan *checked_object(uintptr_t a, const char *fn, uintptr_t *idxp) {
  mspan *s = span_containing(a);
  if (s == NULL) {
    /* A stale map entry still describes the span that last held the page:
     * if it covered a, this is most likely a free of freed memory. */
    mspan *old = ga__spanOf(a);
    if (old != &ga__emptyspan && a >= old->startAddr &&
        a - old->startAddr < old->npages * GA_PAGE_SIZE)
      ga__bad_pointer(fn, (void *)a, FREED_SPAN, 0);
    ga__bad_pointer(fn, (void *)a, NOT_OURS, 0);
  }
  uintptr_t off = a - s->startAddr;
  uintptr_t idx = (s->spanclass >> 1) == 0 ? (off == 0 ? 0 : 1)
                                           : ga__objIndex(s, off);
  if ((s->spanclass >> 1) == 0 && off != 0) {
    if (!slot_live(s, 0)) ga__bad_pointer(fn, (void *)a, NOT_OURS, 0);
    ga__bad_pointer(fn, (void *)a, INTERIOR, s->startAddr);
  }
  if (idx >= s->nelems) ga__bad_pointer(fn, (void *)a, NOT_OURS, 0);
  uintptr_t base = s->startAddr + idx * s->elemsize;
  bool live = slot_live(s, idx);
  if (s->tiny) {
    if (!live)
      ga__bad_pointer(fn, (void *)a,
                      "invalid pointer: inside a tiny block that is not live",
                      0);
  } else if (base != a) {
    ga__bad_pointer(fn, (void *)a, live ? INTERIOR : NOT_OURS,
                    live ? base : 0);
  } else if (!live ||
             (ga__tcOn && GA_TC_KEYED(s->spanclass) && GA_TCKEY(a) == ga__tcKey)) {
    /* Allocated in the bitmap but held by a free cache (mtcache.c: only a
     * copy out of freed memory puts the key in a live object). */
    ga__bad_pointer(fn, (void *)a,
                    strcmp(fn, free_name()) == 0 ? DOUBLE_FREE : USE_AFTER_FREE, 0);
  }
  *idxp = idx;
  return s;
}

/* Everything the owner fast path does not handle: NULL, frees by other
 * threads and outside the owner's window, large and tiny objects, and bad
 * pointers (reported, never ignored). */
static void free_checked(uintptr_t a) {
  uintptr_t idx;
  mspan *s = checked_object(a, free_name(), &idx);
  if (s->tiny) return; /* freed with its block, by the collector */
  if (s->specials) ga__final_forget(a);
  uint64_t m = (uint64_t)1 << (idx & 63);
  uint64_t old = atomic_fetch_or_explicit(&s->freeBits[idx >> 6], m,
                                          memory_order_acq_rel);
  if (old & m) ga__bad_pointer(free_name(), (void *)a, DOUBLE_FREE, 0);
  GA_VG_FREE((void *)a);
  if ((s->spanclass >> 1) == 0) {
    ga__stats_free(0, 1, s->elemsize);
    ga__heapLive_add(-(intptr_t)s->elemsize);
    ga__mcentral_freeLarge(s);
    return;
  }
  /* Unconditional plain store (not an RMW): see ga__span_collect. */
  atomic_store_explicit(&s->remotePending, 1, memory_order_release);
  ga__mcentral_hintFull(s);
}

/* Is a the start of a slot of the small span s, and which (*idxp)? The
 * high half of (a - startAddr) * divMul64 is at least the offset over
 * elemsize, so idx < nelems bounds the offset below the span's end and
 * below 2^32, where the low half's test (below divMul64 exactly for a
 * multiple of elemsize) is exact: whatever a was, even for a stale
 * spans-map entry. One multiply, no division. */
static inline bool slot_start(const mspan *s, uintptr_t a, uintptr_t *idxp) {
  unsigned __int128 q = (unsigned __int128)(a - s->startAddr) * s->divMul64;
  *idxp = (uintptr_t)(q >> 64);
  return *idxp < s->nelems && (uint64_t)q < s->divMul64;
}

/* The common case of free_slow: a small object of another thread's span,
 * or of a span in no cache (larson, xthread). The same rules as
 * checked_object, in the order that needs the fewest loads and with the
 * window slot test of the owner's path (divMul64), but without telling
 * which rule failed: on any failure, or a concurrent double free that the
 * fetch-or shows, free_checked looks again and reports. xthread's remote
 * free took 187 instructions through checked_object, 136 through here. */
static inline bool free_remote(uintptr_t a) {
  mspan *s = ga__spanOf(a);
  if (atomic_load_explicit(&s->state, memory_order_acquire) != mSpanInUse ||
      (s->spanclass >> 1) == 0 || (s->tiny | s->specials))
    return false;
  uintptr_t idx;
  if (!slot_start(s, a, &idx)) return false;
  uint64_t m = (uint64_t)1 << (idx & 63);
  if ((ga__loadBits(&s->freeBits[idx >> 6]) & m) ||
      !ga__span_isAllocatedAny(s, idx))
    return false;
  /* In a free cache (mtcache.c): free_checked reports it. (Marked freed
   * when its span takes it back: ga__span_collect.) */
  if (ga__tcOn && GA_TC_KEYED(s->spanclass) && GA_TCKEY(a) == ga__tcKey)
    return false;
  uint64_t old = atomic_fetch_or_explicit(&s->freeBits[idx >> 6], m,
                                          memory_order_acq_rel);
  if (old & m) return false; /* freed meanwhile: free_checked reports it */
  GA_VG_FREE((void *)a);
  /* Unconditional plain store (not an RMW): see ga__span_collect. */
  atomic_store_explicit(&s->remotePending, 1, memory_order_release);
  ga__mcentral_hintFull(s);
  return true;
}

void ga__free_slow(uintptr_t a) {
  if (a == 0) return;
  ga__slow_enter();
  if (!free_remote(a)) free_checked(a);
  ga__slow_leave();
}

/* The owner's free of an object of its span with a key word (mtcache.c),
 * a slot start at offset off: in a free cache (free_checked reports the
 * double free), or marked freed. A freed object handed out again keeps
 * its mark until the program writes that word, so this is its first free
 * as often as a second one: the exact check decides, and a live object
 * enters the free cache after all. */
/* Push a onto bin b, which holds n < cap entries (the key says: in a free
 * cache). n is passed, not reloaded: the key's store may alias it. */
GA_INLINE void tc_push(tcbin *b, uintptr_t a, uint32_t n) {
  GA_TCKEY(a) = ga__tcKey;
  b->slots[n] = b->top;
  b->count = n + 1;
  b->top = a;
}

static GA_NOINLINE void free_keyed(uintptr_t a, mspan *s, uintptr_t off) {
  if (GA_TCKEY(a) == ga__tcKey || !ga__span_isAllocated(s, ga__objIndex(s, off))) {
    ga__free_slow(a);
    return;
  }
  tcbin *b = &ga__tls_cache->tc[s->spanclass];
  tc_push(b, a, b->count);
}

/* The owner's free. If the object lies in the current 64-slot window, set
 * its allocCache bit (it is handed out again next); elsewhere in the span
 * clear its allocBits bit and set its word's roomWords bit (for
 * nextWindow). Either way after checking that it is the start of a slot
 * that exists, is allocated, and was not already freed through freeBits.
 * No lock, no atomic RMW; 36 instructions in the window (callgrind).
 * Anything else goes to free_slow, which reports what is wrong.
 *
 * The plain load and store of allocBits need no slow-path region: only the
 * owner writes a cached span's allocBits (the collector puts what it finds
 * dead in freeBits instead, mgcsweep.c), and GA_KEEPALIVE keeps the object
 * visible to the collector until the store is done, so that it is never
 * both freed here and found dead. */
GA_INLINE void free_fast(void *p, bool tc) {
  uintptr_t a = (uintptr_t)p;
  uintptr_t e = ga__spanEntryOf(a);
  mcache *c = ga__tls_cache;
  mspan *s = ga__spanFromEntry(e);
  bool owned = atomic_load_explicit(&s->owner, memory_order_relaxed) == c;
  /* The free cache (mtcache.c): an object of a span the thread owns (never
   * another thread's: handing that out here would put this thread's
   * objects on that thread's cache lines, false-sharing's 7x) of a class
   * that has one, while its bin has room. Bin and offset come from the
   * entry (its class is 0 for a dead span), so the checks read no span
   * record but its first line (owner, remotePending): the object must be
   * the start of a slot that exists, and carry no key (a key sends it to
   * free_keyed). */
  tcbin *b = &c->tc[e & 255];
  uint32_t n = tc ? b->count : 0;
  if (tc && GA_LIKELY(n < b->cap) && GA_LIKELY(owned) &&
      /* Frees by other threads wait in freeBits (unmarked until folded):
       * the owner path checks them. */
      !atomic_load_explicit(&s->remotePending, memory_order_relaxed)) {
    uintptr_t off = ga__entryOffset(e, a);
    if (GA_UNLIKELY(off >= b->limit ||
                    (uint64_t)(off * s->divMul64) >= s->divMul64))
      goto slow;
    if (GA_UNLIKELY((GA_TCKEY(a) ^ ga__tcKey) + 1 <= 1)) {
      free_keyed(a, s, off);
      return;
    }
    tc_push(b, a, n);
    return;
  }
  if (GA_LIKELY(owned)) {
    /* A full bin, or a class without one. With a bin, the object goes to
     * its span marked freed, so that a second free of it does not enter
     * the bin. */
    uint64_t mark = tc && b->cap != 0 ? ~ga__tcKey : 0;
    uintptr_t off = a - s->windowAddr;
    /* Slot in the high half, slot start iff the low half < divMul64. */
    unsigned __int128 q = (unsigned __int128)off * s->divMul64;
    if (GA_LIKELY(off < s->windowBytes && (uint64_t)q < s->divMul64)) {
      unsigned bit = (unsigned)(q >> 64);
      uint64_t cache = ga__loadBits(&s->allocCache);
      /* The slot exists (windowBytes covers only those), so it is allocated
       * iff its allocCache bit is clear, unless it was freed through
       * freeBits: pending only with remotePending set (collect relies on
       * it too), so the freeBits word is read only then. */
      if (GA_UNLIKELY(atomic_load_explicit(&s->remotePending, memory_order_relaxed)) &&
          ((ga__loadBits(&s->freeBits[s->freeindex >> 6]) >> bit) & 1))
        goto slow;
      if (GA_LIKELY(!((cache >> bit) & 1))) {
        if (mark) {
          /* In a free cache (allocated in the bitmap): free_checked. */
          if (GA_UNLIKELY(GA_TCKEY(a) == ga__tcKey)) goto slow;
          GA_TCKEY(a) = mark;
        }
        GA_VG_FREE(p);
        ga__storeBits(&s->allocCache, cache | (uint64_t)1 << bit);
        GA_KEEPALIVE(a); /* see ga__nextFreeFast */
        s->localFrees++;
        return;
      }
    } else {
      /* Outside the window (a slot of the window's word passed the test
       * above). */
      uintptr_t idx;
      if (GA_LIKELY(slot_start(s, a, &idx))) {
        unsigned bit = (unsigned)(idx & 63), word = (unsigned)(idx >> 6);
        _Atomic uint64_t *w = &s->allocBits[word];
        uint64_t bits = ga__loadBits(w);
        if (GA_UNLIKELY(atomic_load_explicit(&s->remotePending, memory_order_relaxed)) &&
            ((ga__loadBits(&s->freeBits[word]) >> bit) & 1))
          goto slow;
        if (GA_LIKELY((bits >> bit) & 1)) {
          if (mark) {
            if (GA_UNLIKELY(GA_TCKEY(a) == ga__tcKey)) goto slow;
            GA_TCKEY(a) = mark;
          }
          GA_VG_FREE(p);
          ga__storeBits(w, bits & ~((uint64_t)1 << bit));
          s->roomWords |= (uint64_t)1 << word; /* for nextWindow */
          GA_KEEPALIVE(a);
          s->localFrees++;
          return;
        }
      }
    }
  }
slow:
  ga__free_slow(a);
}

/* The malloc drop-in's free (and operator delete): the free cache's. */
void ga__free_tc(void *p) { free_fast(p, true); }

/* libgoalloc's free never meets a free cache; in the drop-in (a program
 * linked with libgoalloc-override.a may call it) it is the drop-in's free,
 * so that every free to a span while the free cache is on is marked. */
void ga_free(void *p) {
  if (GA_UNLIKELY(ga__tcOn)) {
    ga__free_tc(p);
    return;
  }
  free_fast(p, false);
}

/* Is a the start of a live object in a span the calling thread owns? The
 * owner's free checks, without freeing: only the owner changes the window
 * and allocBits of its spans, so both are exact here; with frees from other
 * threads pending (remotePending) the answer is left to checked_object. */
static inline mspan *owned_object(uintptr_t a) {
  mspan *s = ga__spanOf(a);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) != ga__tls_cache ||
      atomic_load_explicit(&s->remotePending, memory_order_relaxed))
    return NULL;
  uintptr_t idx;
  return slot_start(s, a, &idx) && ga__span_isAllocated(s, idx) &&
                 !(ga__tcOn && GA_TC_KEYED(s->spanclass) &&
                   GA_TCKEY(a) == ga__tcKey) /* mtcache.c */
             ? s
             : NULL;
}

size_t ga__object_size(const void *p, mspan **sp) {
  uintptr_t idx, a = (uintptr_t)p;
  /* realloc's common case (realloc-grow: 160 instructions of validation per
   * call through checked_object, which must also serve other threads). */
  mspan *s = owned_object(a);
  if (GA_LIKELY(s != NULL)) {
    *sp = s;
    return s->elemsize;
  }
  s = checked_object(a, "ga_realloc", &idx);
  *sp = s;
  if (s->tiny) {
    /* The block is shared: only the room to its end is known. */
    return s->startAddr + idx * s->elemsize + s->elemsize - a;
  }
  return s->elemsize;
}

size_t ga_usable_size(const void *p) {
  if (p == NULL) return 0;
  uintptr_t idx, a = (uintptr_t)p;
  mspan *s = owned_object(a);
  if (GA_LIKELY(s != NULL)) {
    GA_VG_DEFINED(p, s->elemsize);
    return s->elemsize;
  }
  s = checked_object(a, "ga_usable_size", &idx);
  if (s->tiny) return s->startAddr + idx * s->elemsize + s->elemsize - a;
  /* The caller may now use the whole slot: tell memcheck so. */
  GA_VG_DEFINED(p, s->elemsize);
  return s->elemsize;
}

mspan *ga__findObject(uintptr_t p, uintptr_t *base) {
  mspan *s = span_containing(p);
  if (s == NULL) return NULL;
  uintptr_t off = p - s->startAddr;
  uintptr_t idx = (s->spanclass >> 1) == 0 ? 0 : ga__objIndex(s, off);
  if (idx >= s->nelems || p >= s->limit || !slot_live(s, idx)) return NULL;
  *base = s->startAddr + idx * s->elemsize;
  return s;
}

int ga_owns(const void *p) {
  uintptr_t base;
  return ga__findObject((uintptr_t)p, &base) != NULL;
}
