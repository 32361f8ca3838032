/*
 * internal.h — goalloc's shared internal types and the inline fast paths.
 *
 * Glossary (Go's terms, fixed here once):
 *   page        8 KiB, the heap's unit (not the OS page).
 *   arena       64 MiB of address space, aligned to 64 MiB, with a heapArena
 *               record (page -> span map) kept off the heap.
 *   mspan       a run of pages: either `nelems` slots of one size class, or
 *               one large object (> 32 KiB).
 *   size class  1..67 (Go's table); class 0 marks a large span.
 *   span class  sizeclass<<1 | noscan; 136 of them. noscan spans hold objects
 *               that contain no pointers (ga_malloc_atomic).
 *   mcache      per-thread cache of one span per span class; no locks.
 *   mcentral    per-span-class pool of spans not in any cache, under a lock.
 *   mheap       owns the arenas, the page allocator and the span structs.
 *   owner       the mcache that currently caches a span (NULL if none). Only
 *               the owner allocates from a span and frees into it without
 *               atomics; every other thread frees through `freeBits`.
 *   remote free a free by a thread that does not own the span: one atomic
 *               fetch-or of the object's bit into span.freeBits, folded into
 *               allocBits later by whoever owns the span (or mcentral).
 *
 * Files and what they own (see ../docs or ARCHITECTURE.md):
 *   os_linux.c   system calls           mfixalloc.c  off-heap metadata pools
 *   mpagealloc.c free-page bookkeeping  mheap.c      arenas, spans, large
 *   mbitmap.c    span bitmaps, nextFreeIndex, remote-free collection
 *   mcentral.c   per-class span lists   mcache.c     per-thread caches
 *   malloc.c     the public allocation functions (mallocgc)
 *   mfree.c      explicit free and pointer validation
 *
 * Lock order: mcentral.lock -> mheap.lock -> fixalloc (under mheap.lock).
 * No lock is held across a system call that may block for long, except the
 * heap's mmap of new arenas (rare, bounded).
 */
#ifndef GA_INTERNAL_H
#define GA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goalloc.h"
#include "os.h"
#include "sizeclasses.h"

#define GA_LIKELY(x) __builtin_expect(!!(x), 1)
#define GA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GA_INLINE static inline __attribute__((always_inline))
#define GA_NOINLINE __attribute__((noinline))
#define GA_HIDDEN __attribute__((visibility("hidden")))

/* ---- constants ------------------------------------------------------- */

#define GA_ARENA_SHIFT 26                       /* 64 MiB arenas */
#define GA_ARENA_BYTES ((uintptr_t)1 << GA_ARENA_SHIFT)
#define GA_PAGES_PER_ARENA (GA_ARENA_BYTES / GA_PAGE_SIZE) /* 8192 */
#define GA_ADDR_BITS 47                          /* x86-64 user space */
#define GA_ARENA_L2_ENTRIES ((uintptr_t)1 << (GA_ADDR_BITS - GA_ARENA_SHIFT))
/* Largest request we accept: beyond this, size arithmetic could overflow and
 * no machine could back it anyway. */
#define GA_MAX_ALLOC ((size_t)1 << 46)
/* mcentral slot used for tiny blocks: they are 16-byte noscan slots like span
 * class 5, but kept in spans of their own so that ga_free can tell a tiny
 * block (shared, never freed piecewise) from a 16-byte object. */
#define GA_TINY_CENTRAL GA_NUM_SPAN_CLASSES
#define GA_NUM_CENTRALS (GA_NUM_SPAN_CLASSES + 1)
#define GA_TINY_SPAN_CLASS ((GA_TINY_SIZE_CLASS << 1) | 1)

/* ---- locks ------------------------------------------------------------ */

/* A futex mutex: 0 unlocked, 1 locked, 2 locked with waiters. Uncontended
 * lock/unlock is one CAS and one exchange. */
typedef struct ga_mutex {
  _Atomic uint32_t state;
} ga_mutex;

void ga__mutex_lock_slow(ga_mutex *m);

GA_INLINE void ga_mutex_lock(ga_mutex *m) {
  uint32_t z = 0;
  if (GA_LIKELY(atomic_compare_exchange_strong_explicit(
          &m->state, &z, 1, memory_order_acquire, memory_order_relaxed)))
    return;
  ga__mutex_lock_slow(m);
}

GA_INLINE void ga_mutex_unlock(ga_mutex *m) {
  if (GA_UNLIKELY(atomic_exchange_explicit(&m->state, 0,
                                           memory_order_release) == 2))
    ga__sys_futex_wake((uint32_t *)&m->state, 1);
}

/* ---- spans ------------------------------------------------------------ */

enum { mSpanDead = 0, mSpanInUse = 1 };
enum { SPAN_LIST_NONE = 0, SPAN_LIST_PARTIAL, SPAN_LIST_FULL };

struct mcache;

typedef struct mspan {
  struct mspan *next, *prev; /* mcentral list links (under its lock) */

  uintptr_t startAddr; /* first byte of the span (page aligned) */
  uintptr_t npages;    /* span is [startAddr, startAddr + npages*8192) */
  uintptr_t elemsize;  /* slot size; npages*8192 for a large span */
  uintptr_t limit;     /* end of object data: startAddr + nelems*elemsize */

  /* Allocation state. While the span is cached these belong to the owner
   * and are touched with plain loads and stores; otherwise they are guarded
   * by the mcentral lock. */
  uint64_t allocCache;  /* ~allocBits from freeindex on: bit0 = freeindex */
  uint16_t freeindex;   /* scan cursor: slots below it are not offered */
  uint16_t nelems;      /* slots in the span (1 for large) */
  uint16_t allocCount;  /* allocated slots (remote frees not yet folded in
                           still count) */
  uint8_t spanclass;    /* sizeclass<<1 | noscan */
  uint8_t needzero;     /* 1: free slots may hold old data */
  uint32_t divMul;      /* (2^32-1)/elemsize + 1: slot = off*divMul >> 32 */
  uint8_t tiny;         /* holds tiny blocks (see GA_TINY_CENTRAL) */
  uint8_t list;         /* SPAN_LIST_*: which mcentral list holds it */
  uint8_t bitsClass;    /* which metadata pool the bitmaps came from */
  _Atomic uint8_t state;          /* mSpanDead / mSpanInUse, set last */
  _Atomic uint8_t remotePending;  /* freeBits may be non-zero */

  /* The mcache that caches this span, or NULL. Written only by that cache's
   * thread (when caching and uncaching); read by anyone. */
  _Atomic(struct mcache *) owner;

  /* Bitmaps, one bit per slot, ceil(nelems/64) words each.
   * allocBits: exact set of allocated slots (as the owner sees them); written
   * only by the owner (or under the mcentral lock), read relaxed by others.
   * gcmarkBits: the collector's marks for this cycle.
   * freeBits: objects freed by threads that do not own the span, set with
   * one atomic fetch-or; folded into allocBits by ga__span_collect. */
  _Atomic uint64_t *allocBits;
  _Atomic uint64_t *gcmarkBits;
  _Atomic uint64_t *freeBits;

  _Atomic uint32_t sweepgen; /* Go's meaning; see mgcsweep when it lands */
  uint16_t allocCountBeforeCache;
} mspan;

/* The span every empty mcache slot and every unused spans-map entry points
 * to: nelems 0, allocCache 0, no owner. Lets the fast paths skip NULL tests. */
extern mspan ga__emptyspan;

/* heapArena: metadata for one 64 MiB arena, off the heap. */
typedef struct heapArena {
  mspan *spans[GA_PAGES_PER_ARENA]; /* page -> span; stale for free pages */
  uint8_t pageInUse[GA_PAGES_PER_ARENA / 8];
  uint8_t pageMarks[GA_PAGES_PER_ARENA / 8];
} heapArena;

/* Arena map: index = address >> 26 (masked to 47-bit user space). */
extern heapArena *_Atomic ga__arenas[GA_ARENA_L2_ENTRIES];

/* spanOf: the span whose pages contain p, or &ga__emptyspan / NULL-arena.
 * May be stale for free pages: callers must check state and range. */
GA_INLINE mspan *ga__spanOf(uintptr_t p) {
  heapArena *ha = atomic_load_explicit(
      &ga__arenas[(p >> GA_ARENA_SHIFT) & (GA_ARENA_L2_ENTRIES - 1)],
      memory_order_acquire);
  if (GA_UNLIKELY(ha == NULL)) return &ga__emptyspan;
  return ha->spans[(p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)];
}

/* objIndex: slot number of offset `off` within a small span (no division). */
GA_INLINE uintptr_t ga__objIndex(const mspan *s, uintptr_t off) {
  return (uintptr_t)(((uint64_t)off * s->divMul) >> 32);
}

GA_INLINE uint64_t ga__loadBits(_Atomic uint64_t *w) {
  return atomic_load_explicit(w, memory_order_relaxed);
}
GA_INLINE void ga__storeBits(_Atomic uint64_t *w, uint64_t v) {
  atomic_store_explicit(w, v, memory_order_relaxed);
}

/* nextFreeFast (Go's, as the seed describes it): count trailing zeros of the
 * 64-bit allocCache to find the next free slot in the current 64-slot window;
 * give up (return 0) when the window is exhausted, so that the slow path can
 * refill the cache from allocBits. About 15 instructions.
 * Unlike Go, allocation also sets the slot's allocBit, so that allocBits is
 * exact at all times: explicit free and double-free detection rely on it. */
GA_INLINE uintptr_t ga__nextFreeFast(mspan *s) {
  uint64_t cache = s->allocCache;
  if (GA_UNLIKELY(cache == 0)) return 0;
  unsigned bit = (unsigned)__builtin_ctzll(cache);
  unsigned result = s->freeindex + bit;
  if (GA_LIKELY(result < s->nelems)) {
    unsigned freeidx = result + 1;
    if (GA_UNLIKELY((freeidx & 63) == 0 && freeidx != s->nelems)) return 0;
    s->allocCache = (cache >> bit) >> 1; /* bit may be 63: no shift by 64 */
    s->freeindex = (uint16_t)freeidx;
    s->allocCount++;
    _Atomic uint64_t *w = &s->allocBits[result >> 6];
    ga__storeBits(w, ga__loadBits(w) | ((uint64_t)1 << (result & 63)));
    return s->startAddr + result * s->elemsize;
  }
  return 0;
}

/* ---- mcache ----------------------------------------------------------- */

typedef struct mcache {
  mspan *alloc[GA_NUM_CENTRALS]; /* span per span class; [136] = tiny */
  uintptr_t tiny;                /* current tiny block, or 0 */
  uintptr_t tinyoffset;          /* next free byte in it */
  uint64_t tinyAllocs;           /* tiny objects packed (stats) */
  uint64_t localFrees;           /* owner-path frees (stats) */
  struct mcache *nextFree;       /* free-list link for reuse */
} mcache;

extern mcache ga__emptycache;
extern __thread mcache *ga__tls_cache __attribute__((tls_model("initial-exec")));

/* The calling thread's cache, or &ga__emptycache before its first refill. */
GA_INLINE mcache *ga__getcache(void) { return ga__tls_cache; }

/* Refill c->alloc[ci] (ci: span class or GA_TINY_CENTRAL) and return the
 * address of a fresh slot from it, or 0 if out of memory. Creates the
 * thread's cache on first use (then c is replaced by the real cache). */
uintptr_t ga__mcache_nextFree(unsigned ci);
/* Give every cached span back to mcentral (thread exit, ga_thread_flush). */
void ga__mcache_releaseAll(mcache *c);

/* ---- mcentral --------------------------------------------------------- */

typedef struct mcentral {
  ga_mutex lock;
  uint8_t spanclass;
  uint8_t tiny;
  mspan *partial;  /* spans with free slots (may have pending remote frees) */
  mspan *full;     /* spans with no free slot when last looked at */
  uintptr_t nspans;
} mcentral;

/* Take a span with at least one free slot for cache c; NULL = out of memory. */
mspan *ga__mcentral_cacheSpan(unsigned ci, mcache *c);
/* Return a span from a cache (its owner is the calling thread). */
void ga__mcentral_uncacheSpan(mspan *s);
/* Fold remote frees into every span not in a cache; free empty spans.
 * Returns pages given back to the heap. */
uintptr_t ga__mcentral_reclaimAll(void);

/* ---- mheap ------------------------------------------------------------ */

/* Allocate a span of npages pages, aligned to align_pages pages, for span
 * class spc (class 0 = large). Returns NULL when out of memory. */
mspan *ga__mheap_alloc(uintptr_t npages, uintptr_t align_pages, unsigned spc,
                       bool tiny);
/* Return a span's pages to the heap. */
void ga__mheap_freeSpan(mspan *s);

typedef struct ga_heap_counters {
  uintptr_t pagesInUse;  /* pages in in-use spans */
  uintptr_t heapSys;     /* bytes of address space given to the page alloc */
  uintptr_t heapReleased;
  uintptr_t spansInUse;
  uintptr_t largeInUse;  /* large spans in use */
} ga_heap_counters;
void ga__mheap_counters(ga_heap_counters *out);

/* ---- bitmaps (mbitmap.c) ---------------------------------------------- */

/* Go's nextFreeIndex: the next free slot at or after freeindex, advancing
 * freeindex and the cache; nelems if the span is full. */
unsigned ga__span_nextFreeIndex(mspan *s);
/* Load allocCache for the window containing freeindex. */
void ga__span_refillAllocCache(mspan *s);
/* Fold remote frees (freeBits) into allocBits. Caller owns the span or holds
 * its mcentral lock. Aborts on a remote double free. Returns slots freed. */
unsigned ga__span_collect(mspan *s);
/* Restart allocation from slot 0 (after frees below freeindex). */
void ga__span_rewind(mspan *s);
/* Bitmap storage for a span of nelems slots (under the heap lock). */
void ga__span_allocBits(mspan *s);
void ga__span_freeBitsStorage(mspan *s);

/* ---- fixalloc (mfixalloc.c) ------------------------------------------ */

/* Fixed-size off-heap allocator for metadata (Go's fixalloc): never returns
 * memory to the OS, so pointers to freed records stay dereferenceable (the
 * spans map may hold stale span pointers). Not thread-safe: callers lock. */
typedef struct fixalloc {
  size_t size;
  void *list;       /* free records */
  uintptr_t chunk;  /* bump region */
  size_t nchunk;
  size_t inuse;     /* bytes in use (stats) */
  size_t sys;       /* bytes mapped (stats) */
} fixalloc;

void ga__fixalloc_init(fixalloc *f, size_t size);
void *ga__fixalloc_alloc(fixalloc *f); /* zeroed; NULL if the OS refuses */
void ga__fixalloc_free(fixalloc *f, void *p);

/* ---- init and errors -------------------------------------------------- */

extern _Atomic int ga__inited;
void ga__init_slow(void);
GA_INLINE void ga__ensure_init(void) {
  if (GA_UNLIKELY(!atomic_load_explicit(&ga__inited, memory_order_acquire)))
    ga__init_slow();
}

/* Report a bad pointer passed by the user (which function, what was wrong,
 * the address) and abort. */
__attribute__((noreturn, cold)) void ga__bad_pointer(const char *fn,
                                                     const void *p,
                                                     const char *what,
                                                     uintptr_t objbase);
/* Report an internal fatal error (heap corruption, impossible state). */
__attribute__((noreturn, cold)) void ga__throw(const char *what);
/* Format helper: append hex of v to buf, returns new end. */
char *ga__fmt_hex(char *buf, uintptr_t v);
char *ga__fmt_str(char *buf, const char *s);

/* Find the live object containing p. Returns its span and sets *base, or
 * returns NULL if p is not inside a live goalloc object. */
mspan *ga__findObject(uintptr_t p, uintptr_t *base);

/* ---- valgrind --------------------------------------------------------- */

#if defined(GOALLOC_VALGRIND) && GOALLOC_VALGRIND
#include <valgrind/memcheck.h>
#define GA_VALGRIND_BUILD 1
#define GA_VG_MALLOC(p, n, z) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, (z))
#define GA_VG_FREE(p) VALGRIND_FREELIKE_BLOCK((p), 0)
#define GA_VG_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define GA_VG_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define GA_VALGRIND_BUILD 0
#define GA_VG_MALLOC(p, n, z) ((void)0)
#define GA_VG_FREE(p) ((void)0)
#define GA_VG_NOACCESS(p, n) ((void)0)
#define GA_VG_DEFINED(p, n) ((void)0)
#endif

#endif /* GA_INTERNAL_H */
