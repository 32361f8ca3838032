/*
 * malloc.c — allocation (Go's malloc.go / mallocgc twin): the public
 * ga_malloc family.
 *
 * A request takes one of three paths, as in Go:
 *   1. tiny   ga_malloc_atomic of 1..15 bytes: packed into the thread's
 *             current 16-byte tiny block (Go's tiny / tinyoffset /
 *             tinyAllocs). Only pointer-free data goes here, so a block kept
 *             alive by one small object wastes at most 16 bytes.
 *   2. small  up to 32 KiB: size -> size class by table lookup, then
 *             nextFreeFast on the thread's cached span of that class; on a
 *             miss, mcache.nextFree (refill from mcentral).
 *   3. large  over 32 KiB: a span of its own, straight from mheap. Go's cut
 *             is 32 KiB - 8 because scan objects over 512 B carry an 8-byte
 *             type header; goalloc's collector is conservative and keeps no
 *             headers, so the cut is exactly 32 KiB.
 *
 * Alignment: Go's. Every object of 16 bytes or more is 16-byte aligned,
 * except those of 17..24 bytes, which get Go's 24-byte class and 8-byte
 * alignment: all a C type of that size can need, since a type's size is a
 * multiple of its alignment (ga_aligned_alloc(16, n) gives 16 when a
 * request of that size must have it). Span bases are page aligned and every
 * other class from 16 bytes up is a multiple of 16. The class matters to a
 * collected heap: a node of two pointers and two ints takes 24 bytes
 * instead of 32 (gcbench's trees: 0.89x the time, peak RSS 100 MiB instead
 * of 138). The malloc drop-in keeps glibc's guarantee instead, 16 for every
 * request of 16 bytes or more (GCC vectorises on it): the lookup table
 * starts out sending 17..24 bytes to the 32-byte class, and libgoalloc
 * switches that entry when it is loaded (ga__use_go_classes). Tiny objects
 * of 8..15 bytes are aligned to 8 inside their block (Go aligns 12 to 4),
 * smaller ones follow Go's 4/2 rules.
 *
 * The fast paths (ga_malloc, ga_malloc_atomic for >= 16 bytes) take no lock
 * and no atomic read-modify-write: about 20 instructions on a hit.
 *
 * Zeroing: a span whose pages were fresh (never used, or released to the OS)
 * has needzero = 0 until its first free; calloc only clears when needzero.
 *
 * Errors: impossible sizes and out-of-memory give NULL with errno = ENOMEM
 * and leave the heap unchanged.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "mgc.h"

/* libgoalloc is loaded (not the drop-in, whose first allocations precede
 * every constructor): 17..24 bytes take Go's 24-byte class. Constructors
 * run before the program's threads exist, so no fast path reads the entry
 * while it changes; an allocation made earlier (another library's
 * constructor) got a 32-byte slot, which is as good to free. */
__attribute__((constructor)) static void ga__use_go_classes(void) {
  if (ga__collector_wanted())
    ga__malloc_size_to_spc8[3] = (uint8_t)(ga__size_to_class8[3] << 1);
}

static void *fail_nomem(void) {
  errno = ENOMEM;
  return NULL;
}

/* Large objects: a span of whole pages of their own (Go's allocLarge). */
static uintptr_t alloc_large(size_t size, unsigned noscan, uintptr_t align_pages,
                             mspan **out) {
  ga__ensure_init();
  if (size > GA_MAX_ALLOC) return 0;
  uintptr_t npages = (size + GA_PAGE_SIZE - 1) >> GA_PAGE_SHIFT;
  ga__slow_enter();
  /* Large allocations pay sweep credit first, less their own pages (Go). */
  ga__deductSweepCredit(npages * GA_PAGE_SIZE, npages);
  mspan *s = ga__mheap_alloc(npages, align_pages, noscan, false);
  uintptr_t p = 0;
  if (s != NULL) {
    ga__storeBits(&s->allocBits[0], 1);
    ga__storeBits(&s->allocCache, 0);
    s->allocCount = 1;
    s->limit = s->startAddr + size;
    ga__stats_large_alloc(s->elemsize);
    ga__mcentral_listLarge(s);
    ga__heapLive_add((intptr_t)s->elemsize);
    *out = s;
    p = s->startAddr;
  }
  GA_KEEPALIVE(p);
  ga__slow_leave();
  return p;
}

/* Small object of span class spc from the calling thread's cache. */
static inline uintptr_t alloc_small(unsigned spc) {
  uintptr_t p = ga__nextFreeFast(ga__tls_cache->alloc[spc]);
  if (GA_UNLIKELY(p == 0)) p = ga__mcache_nextFree(spc);
  return p;
}

/* Go's tiny allocator. noscan, 1 <= size < 16. */
static uintptr_t alloc_tiny(size_t size) {
  mcache *c = ga__tls_cache;
  uintptr_t off = c->tinyoffset;
  if (size >= 8)
    off = (off + 7) & ~(uintptr_t)7;
  else if ((size & 3) == 0)
    off = (off + 3) & ~(uintptr_t)3;
  else if ((size & 1) == 0)
    off = (off + 1) & ~(uintptr_t)1;
  if (off + size <= GA_TINY_SIZE && c->tiny != 0) {
    c->tinyoffset = off + size;
    c->tinyAllocs++;
    return c->tiny + off;
  }
  uintptr_t block = ga__nextFreeFast(c->alloc[GA_TINY_CENTRAL]);
  if (block == 0) {
    block = ga__mcache_nextFree(GA_TINY_CENTRAL);
    if (block == 0) return 0;
    c = ga__tls_cache; /* may have been created just now */
  }
  c->tinyAllocs++;
  GA_VG_MALLOC((void *)block, GA_TINY_SIZE, 0);
  /* Keep whichever block has more room left (Go's rule). */
  if (size < c->tinyoffset || c->tiny == 0) {
    c->tiny = block;
    c->tinyoffset = size;
  }
  return block;
}

/* Everything that is not a small-object cache hit (Go's mallocgc). */
static GA_NOINLINE void *mallocgc(size_t size, unsigned noscan) {
  uintptr_t p;
  if (size == 0) size = 1; /* a unique, freeable pointer, like glibc */
  if (size > GA_MAX_SMALL_SIZE) {
    mspan *s;
    p = alloc_large(size, noscan, 1, &s);
  } else if (noscan && size < GA_TINY_SIZE) {
    p = alloc_tiny(size); /* annotated per block, not per object */
    return p ? (void *)p : fail_nomem();
  } else {
    p = alloc_small((ga__malloc_size_to_class(size) << 1) | noscan);
  }
  if (p == 0) return fail_nomem();
  GA_VG_MALLOC((void *)p, size, 0);
  return (void *)p;
}

/* A small request of span class spc (> 1: not size 0) whose cached window
 * is used up: straight to the refill, without mallocgc's size tests and
 * second class lookup (in churn, where the window runs dry every second
 * malloc, that layer was a tenth of the slow path). */
static GA_NOINLINE void *malloc_refill(size_t size, unsigned spc) {
  (void)size; /* for memcheck only */
  uintptr_t p = ga__mcache_nextFree(spc);
  if (p == 0) return fail_nomem();
  GA_VG_MALLOC((void *)p, size, 0);
  return (void *)p;
}

/* The small-object fast path shared by ga_malloc and ga_malloc_atomic: a
 * table lookup, then a hit in the thread's cached span (about 20
 * instructions); a used-up window goes to malloc_refill, anything else to
 * mallocgc. tc: the malloc drop-in's entry points (ga__malloc_tc) look in
 * the thread's free cache first; libgoalloc's never do (its collector never
 * runs with one), and pay nothing for it. */
GA_INLINE void *malloc_fast(size_t size, unsigned noscan, bool tc) {
  /* size 0 maps to span class 0|noscan, whose cache slot is always the empty
   * span: it falls through to mallocgc with no extra test here. */
  if (GA_LIKELY(size <= GA_SMALL_SIZE_MAX - 8)) {
    unsigned spc = (unsigned)ga__malloc_size_to_spc8[(size + 7) >> 3] | noscan;
    mcache *c = ga__tls_cache;
    tcbin *b = &c->tc[spc];
    uintptr_t p = tc ? b->top : 0;
    if (tc && p != 0) {
      /* The thread's last free of the class (mtcache.c). Its key goes, so
       * that no live object carries it: a store, not a check (a load of a
       * cold object here would hold up the malloc: malloc-batch 1.19x). */
      uint32_t n = b->count;
      uintptr_t next = b->slots[n - 1];
      b->top = next;
      b->count = n - 1;
      GA_TCKEY(p) = 0;
      b->pops++;
      return (void *)p;
    }
    mspan *s = c->alloc[spc];
    uint64_t cache = ga__loadBits(&s->allocCache);
    if (GA_LIKELY(cache != 0)) {
      uintptr_t p = ga__takeSlot(s, cache);
      GA_VG_MALLOC((void *)p, size, 0);
      return (void *)p;
    }
    if (GA_LIKELY(spc > 1)) return malloc_refill(size, spc);
  }
  return mallocgc(size, noscan);
}

void *ga_malloc(size_t size) { return malloc_fast(size, 0, false); }

void *ga__malloc_tc(size_t size) { return malloc_fast(size, 0, true); }

void *ga_malloc_atomic(size_t size) {
  /* Under 16 bytes: the tiny allocator (in mallocgc). */
  if (GA_UNLIKELY(size < GA_TINY_SIZE)) return mallocgc(size, 1);
  return malloc_fast(size, 1, false);
}

void *ga_calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) return fail_nomem();
  if (total == 0) total = 1;
  uintptr_t p;
  mspan *s;
  if (total > GA_MAX_SMALL_SIZE) {
    p = alloc_large(total, 0, 1, &s);
  } else {
    unsigned spc = ga__malloc_size_to_class(total) << 1;
    p = alloc_small(spc);
    s = ga__tls_cache->alloc[spc]; /* the span the slot came from */
  }
  if (p == 0) return fail_nomem();
  GA_VG_MALLOC((void *)p, total, 1);
  /* Owner frees since the span was cached are counted, not flagged. */
  if (s->needzero | (s->localFrees != 0)) memset((void *)p, 0, total);
  return (void *)p;
}

/* Slot size of the live object at p (which must be its start). */
size_t ga__object_size(const void *p, mspan **sp);

void *ga_realloc(void *p, size_t size) {
  if (p == NULL) return ga_malloc(size);
  if (size == 0) {
    ga_free(p);
    return NULL;
  }
  mspan *s;
  size_t have = ga__object_size(p, &s); /* aborts on a bad pointer */
  unsigned noscan = s->spanclass & 1;
  /* In place while the slot still fits and is not more than twice too big
   * (shrinking further moves the object so the memory can be reused), and
   * is aligned as a new object of that size would be: 24-byte slots are
   * 8-aligned at every other index, and 16 bytes need 16. */
  if (size <= have && (size > have / 2 || have <= GA_TINY_SIZE) &&
      (((uintptr_t)p & 15) == 0 || size != 16) &&
      !GA_VALGRIND_BUILD) /* memcheck tracks sizes: always move under it */
    return p;
  /* Growing: a small object gets an eighth more room, so that a buffer
   * grown a few bytes at a time (appending to a string or an array) moves
   * about as often through Go's fine size classes (16-byte steps up to 256
   * B) as through mimalloc's or tcmalloc's coarser ones. */
  size_t want = size;
  if (size > have && size <= GA_MAX_SMALL_SIZE) {
    want = size + size / 8;
    if (want > GA_MAX_SMALL_SIZE) want = GA_MAX_SMALL_SIZE;
  }
  void *q = noscan ? ga_malloc_atomic(want) : ga_malloc(want);
  if (q == NULL) return NULL;
  size_t copy = have < size ? have : size;
  /* The whole slot is ours to read, but memcheck only knows the size that
   * was asked for: tell it, then take it back after the free. */
  GA_VG_DEFINED(p, copy);
  memcpy(q, p, copy);
  ga_free(p);
  if (!s->tiny) GA_VG_NOACCESS(p, copy);
  return q;
}

void *ga_aligned_alloc(size_t align, size_t size) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  if (size > GA_MAX_ALLOC) return fail_nomem();
  if (align <= 16) {
    /* Every class is a multiple of 8; every multiple of 16 is 16-aligned
     * (only 17..24 bytes are not). */
    size_t n = size < align ? align : size;
    return ga_malloc(align == 16 ? (n + 15) & ~(size_t)15 : n);
  }
  if (size == 0) size = 1;
  uintptr_t p = 0;
  if (align <= GA_PAGE_SIZE) {
    /* A class whose size is a multiple of align has every slot aligned,
     * since spans start on a page boundary. Powers of two up to 32 KiB are
     * classes, so one is always found for a small enough request. */
    size_t want = (size + align - 1) & ~(align - 1);
    if (want <= GA_MAX_SMALL_SIZE) {
      unsigned cl = ga__malloc_size_to_class(want);
      while (cl < GA_NUM_SIZE_CLASSES && ga__class_to_size[cl] % align != 0)
        cl++;
      if (cl < GA_NUM_SIZE_CLASSES) {
        p = alloc_small(cl << 1);
        if (p == 0) return fail_nomem();
        GA_VG_MALLOC((void *)p, size, 0);
        return (void *)p;
      }
    }
  }
  mspan *s;
  uintptr_t align_pages = align > GA_PAGE_SIZE ? align / GA_PAGE_SIZE : 1;
  /* Large spans are whole pages; a large request below 32 KiB is fine. */
  p = alloc_large(size, 0, align_pages, &s);
  if (p == 0) return fail_nomem();
  GA_VG_MALLOC((void *)p, size, 0);
  return (void *)p;
}
