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
 *   mcache      per-thread cache: the span each span class allocates from,
 *               plus a few spans per class that the thread filled and still
 *               owns ("parked"); no locks.
 *   mcentral    per-span-class pool of spans not in any cache, under a lock.
 *   mheap       owns the arenas, the page allocator and the span structs.
 *   owner       the mcache that currently caches a span, current or parked
 *               (NULL if none). Only the owner allocates from a span and
 *               frees into it without atomics; every other thread frees
 *               through `freeBits`.
 *   parked span a span its thread filled and keeps (mcache.c): still cached
 *               and owned, window and all, but not the one allocated from.
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
 *   mgcscavenge.c returning free memory to the OS (background thread)
 *   mstats.c     statistics             options.c    tunables (environment)
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
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* Background threads (collector, mark helpers, sweeper) sleep until an
 * epoch word moves past the value they last served (*seen), which is then
 * updated. A requester bumps the word and wakes them. */
GA_INLINE void ga__epoch_wait(_Atomic uint32_t *epoch, uint32_t *seen) {
  uint32_t e;
  while ((e = atomic_load_explicit(epoch, memory_order_acquire)) == *seen)
    ga__sys_futex_wait((uint32_t *)epoch, *seen);
  *seen = e;
}

/* ---- spans ------------------------------------------------------------ */

enum { mSpanDead = 0, mSpanInUse = 1 };
/* mspan.list: the kind of mcentral list, and (SPAN_LIST_SET) which of its
 * two sets (mcentral.swept). */
enum { SPAN_LIST_NONE = 0, SPAN_LIST_PARTIAL, SPAN_LIST_FULL, SPAN_LIST_KIND = 3,
       SPAN_LIST_SET = 4 };

struct mcache;

/* Field order is by cache line (records are 192 bytes, 64-byte aligned):
 *   line 0  everything malloc's and the owner's in-window free touch, the
 *           first half of what an out-of-window free does, and what a
 *           refill reads of each parked span it looks at: a free of a
 *           random object (churn) missed on three lines of the record
 *           before this order, on one or two now;
 *   line 1  the rest of an out-of-window free, remote frees, list links;
 *   line 2  slow paths, the collector, validators. */
typedef struct mspan {
  /* ---- line 0 ---- */
  /* List link: an mcentral list (under its lock) or, while the span is
   * parked, its cache's parked ring (owner thread only). First, because a
   * freed record's first word holds fixalloc's free-list link, and the
   * fields below must survive for stale spans-map entries (mfree.c). */
  struct mspan *next;
  /* owner: the mcache holding this span (see cache), for the free fast
   * path, but NULL for tiny spans and spans with finalizers (their frees
   * take the slow path). Written only by the caching thread; read by
   * anyone. */
  _Atomic(struct mcache *) owner;

  /* The allocation window: 64 slots starting at freeindex (a multiple of
   * 64). allocCache bit k set <=> slot freeindex+k is free. This differs
   * from Go, whose allocCache is shifted so that bit 0 is the slot after the
   * last allocation: an absolute window lets the owner's free set a bit back
   * (the slot is reused at once) and lets the fast paths touch nothing but
   * this one word. While the span is cached, these fields belong to its
   * cache's thread; otherwise to whoever holds the mcentral lock. */
  _Atomic uint64_t allocCache; /* relaxed: plain moves, but readable by the
                                  collector and validators */
  uintptr_t windowAddr;  /* address of slot freeindex */
  /* For the owner's free in the window (Lemire's direct remainder, since
   * off < windowBytes < 2^32): with off = a - windowAddr, the 128-bit
   * product off * divMul64 has the slot in its high half, and its low half
   * is below divMul64 exactly when off is a multiple of elemsize. One
   * multiply where Go's divMul needs a second to check the remainder.
   * divMul64 = 2^64/elemsize + 1 (floor); windowBytes = elemsize times
   * the window's slots that exist (64, or fewer in a span's last window). */
  uint64_t divMul64;
  uintptr_t elemsize;    /* slot size; npages*8192 for a large span */
  uint32_t windowBytes;
  uint32_t localFrees;   /* owner fast-path frees since cached (stats) */
  uint16_t parkFrees;    /* (uint16_t)localFrees when parked (mcache.c) */
  uint16_t nelems;       /* slots in the span (1 for large) */
  uint8_t spanclass;     /* sizeclass<<1 | noscan */
  _Atomic uint8_t remotePending;  /* freeBits may be non-zero */

  /* ---- line 1 ---- */
  uintptr_t startAddr; /* first byte of the span (page aligned) */
  /* Bitmaps, one bit per slot, ceil(nelems/64) words each.
   * allocBits: allocated slots. Exact for every word but the cached window
   * (whose truth is ~allocCache). While the span is cached only its thread
   * writes it: in slow paths, and in the owner's free of an object outside
   * the window (a plain load and store, anywhere: so the collector, which
   * may stop the thread between the two, never writes a cached span's
   * allocBits, see mgcsweep.c). An uncached span's is written by the
   * mcentral lock holder and by the collector with the world stopped. Read
   * relaxed by anyone.
   * gcmarkBytes (line 2): the collector's marks for this cycle.
   * freeBits: objects freed by a thread that is not the owner, and objects
   * of a cached span the collector found dead: one atomic fetch-or from any
   * thread; folded into allocBits / allocCache by ga__span_collect. */
  _Atomic uint64_t *allocBits;
  /* While cached: bit w set for every allocBits word w, other than the
   * window's, that has a free slot (and perhaps for some that no longer
   * do: nextWindow checks the word and clears the bit). Set by the owner's
   * free outside the window and by ga__span_collect; so nextWindow finds the
   * next word with room by ctz instead of loading every allocBits word (in
   * churn, where each window has a free slot or two, the word scan was the
   * most of nextWindow's cost). Owner thread only; a span of at most 4096
   * slots (spans hold at most GA_MAX_OBJS_PER_SPAN, 2048). */
  uint64_t roomWords;
  _Atomic uint64_t *freeBits;
  struct mspan *prev;  /* list link, with next */
  uintptr_t npages;    /* span is [startAddr, startAddr + npages*8192) */
  uintptr_t limit;     /* end of object data: startAddr + nelems*elemsize */

  /* ---- line 2 ---- */
  /* cache: the mcache holding this span, current or parked, or NULL. */
  _Alignas(64) _Atomic(struct mcache *) cache;
  /* The collector's marks, a byte per slot (64 per allocBits word; 0 or
   * 1): markers set them with a plain store, no atomic RMW however many
   * mark at once (the lock prefix of a shared mark bitmap was 19 % of
   * binary-trees' time, perf), as Boehm GC's parallel marker does. */
  _Atomic uint8_t *gcmarkBytes;
  uint16_t freeindex;    /* first slot of the window */
  uint16_t allocCount;   /* allocated slots; exact while not cached (a
                            cached span's window lives in allocCache) */
  uint32_t divMul;       /* (2^32-1)/elemsize + 1: slot = off*divMul >> 32 */
  uint16_t allocCountBeforeCache;
  uint8_t needzero;      /* 1: free slots may hold old data */
  uint8_t tiny;          /* holds tiny blocks (see GA_TINY_CENTRAL) */
  uint8_t list;          /* SPAN_LIST_*: which mcentral list holds it */
  uint8_t specials;      /* an object here has a finalizer (mfinal.c) */
  _Atomic uint8_t state;          /* mSpanDead / mSpanInUse, set last */
  /* Seqlock over the window (cache, freeindex, allocBits of the window):
   * odd while the caching thread moves the window, so that another thread
   * validating a free reads a consistent picture (ga__span_isLive). */
  _Atomic uint32_t windowSeq;
  _Atomic uint32_t sweepgen; /* Go's meaning; see mgcsweep.c */
  /* 0 only while no mark byte is set (set before the first mark, cleared
   * with all of them): the rescan of written pages skips a span with no
   * mark, such as every span the program filled during the mark. In an
   * 8-byte word of its own: the collector writes it while the program
   * runs, and compilers read neighbouring small fields 8 bytes at a time
   * (ThreadSanitizer then reports the merged read as a race). */
  _Alignas(8) _Atomic uint8_t anyMarked;
} __attribute__((aligned(64))) mspan;

_Static_assert(sizeof(mspan) == 192, "mspan: three cache lines");
_Static_assert(offsetof(mspan, remotePending) < 64 &&
                   offsetof(mspan, startAddr) == 64 &&
                   offsetof(mspan, cache) == 128,
               "mspan: the fast paths' fields in line 0");

/* Circular, doubly linked span lists through mspan.next/prev (mcentral's
 * lists, a cache's parked spans); *head is the oldest, insert at the tail.
 * The caller keeps whatever lock or ownership guards the list. */
GA_INLINE void ga__spanlist_insert(mspan **head, mspan *s) {
  if (*head == NULL) {
    s->next = s->prev = s;
    *head = s;
    return;
  }
  mspan *h = *head;
  s->next = h;
  s->prev = h->prev;
  h->prev->next = s;
  h->prev = s;
}

GA_INLINE void ga__spanlist_remove(mspan **head, mspan *s) {
  if (s->next == s) {
    *head = NULL;
  } else {
    s->prev->next = s->next;
    s->next->prev = s->prev;
    if (*head == s) *head = s->next;
  }
  s->next = s->prev = NULL;
}

/* The span every empty mcache slot and every unused spans-map entry points
 * to: nelems 0, allocCache 0, no owner. Lets the fast paths skip NULL tests. */
extern GA_HIDDEN mspan ga__emptyspan;

/* Spans-map entries hold (s - &ga__emptyspan) << 16, so that a zero entry
 * (memory never written: a fresh arena, the span window's untouched pages)
 * means ga__emptyspan with no test on the lookup; and below that, the page's
 * index in its span (bits 8..15, 255 for any page past the 255th) and the
 * span class (bits 0..7). The owner's free (mfree.c) takes both from the
 * entry it has already loaded: the free cache's bin and the object's offset
 * in its span, without waiting for the span record. */
#define GA_ENTRY_SHIFT 16
GA_INLINE mspan *ga__spanFromEntry(uintptr_t e) {
  return (mspan *)((uintptr_t)&ga__emptyspan +
                   (uintptr_t)((intptr_t)e >> GA_ENTRY_SHIFT));
}
GA_INLINE uintptr_t ga__spanEntry(const mspan *s, uintptr_t page) {
  return ((uintptr_t)s - (uintptr_t)&ga__emptyspan) << GA_ENTRY_SHIFT |
         (page < 255 ? page : 255) << 8 | s->spanclass;
}
/* The offset of address a in its span, from a's spans-map entry: exact for
 * a span's first 255 pages (every small span). */
GA_INLINE uintptr_t ga__entryOffset(uintptr_t e, uintptr_t a) {
  return (e >> 8 & 255) << GA_PAGE_SHIFT | (a & (GA_PAGE_SIZE - 1));
}

/* heapArena: metadata for one 64 MiB arena, off the heap. */
typedef struct heapArena {
  /* page -> span entry (above); stale for free pages. Read without locks
   * (relaxed: a plain load), written under the heap lock. Points into the
   * span window's map for an arena inside the window, else to an array of
   * the arena's own. */
  _Atomic uintptr_t *spans;
  /* Every page of an in-use span that may hold pointers (a scan span):
   * the write watch's protected runs, read without the heap lock
   * (ga__mheap_scanRuns); written under it. */
  _Atomic uint64_t pageScan[GA_PAGES_PER_ARENA / 64];
  /* The write watch's heat (mwritewatch.c, collector thread only): pages
   * reported written by the first rearming scan of this cycle (warm), and
   * pages it leaves unprotected (hot). */
  _Atomic uint64_t pageWarm[GA_PAGES_PER_ARENA / 64];
  _Atomic uint64_t pageHot[GA_PAGES_PER_ARENA / 64];
} heapArena;

/* Arena map: index = address >> 26 (masked to 47-bit user space). */
extern heapArena *_Atomic ga__arenas[GA_ARENA_L2_ENTRIES];

/* The arena holding address p, or NULL (acquire: its record is complete). */
GA_INLINE heapArena *ga__arenaOf(uintptr_t p) {
  return atomic_load_explicit(&ga__arenas[(p >> GA_ARENA_SHIFT) & (GA_ARENA_L2_ENTRIES - 1)],
                              memory_order_acquire);
}
/* The index of p's page in its arena (spans, and the per-page bitmaps). */
GA_INLINE uintptr_t ga__arenaPage(uintptr_t p) {
  return (p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1);
}

/* The span window: one flat spans map for the 256 GiB of address space
 * from the heap's first arena (mheap.c), so that spanOf of a heap pointer
 * is one load that depends on p, not two (ga__arenas, then the arena's
 * spans): the free fast path's latency, 10 % of malloc-pairs' time. The map
 * is reserved readable and zero (the shared zero page, no memory), and the
 * 64 KiB slice of each arena becomes writable when the arena is published.
 * bytes is 0 until the first arena exists (release store after map and
 * base), so every lookup then takes the two-level path. */
#define GA_SPAN_WINDOW_BYTES ((uintptr_t)1 << 38)
typedef struct spanWindow {
  _Atomic uintptr_t base;
  _Atomic uintptr_t bytes;
  _Atomic uintptr_t *map;
} spanWindow;
extern GA_HIDDEN spanWindow ga__spanWindow;
/* Tests only, before the first allocation: a smaller window. */
void ga__spanWindow_testBytes(uintptr_t bytes);

/* spanOf: the span whose pages contain p, or &ga__emptyspan. May be stale
 * for free pages: callers must check state and range. Outside the window,
 * the two levels (inline: a call here would cost the free fast path a
 * saved register). */
GA_INLINE uintptr_t ga__spanEntryOf(uintptr_t p) {
  uintptr_t bytes = atomic_load_explicit(&ga__spanWindow.bytes, memory_order_acquire);
  uintptr_t off = p - atomic_load_explicit(&ga__spanWindow.base, memory_order_relaxed);
  if (GA_LIKELY(off < bytes))
    return atomic_load_explicit(&ga__spanWindow.map[off >> GA_PAGE_SHIFT],
                                memory_order_relaxed);
  heapArena *ha = ga__arenaOf(p);
  if (ha == NULL) return 0;
  return atomic_load_explicit(&ha->spans[ga__arenaPage(p)], memory_order_relaxed);
}
GA_INLINE mspan *ga__spanOf(uintptr_t p) { return ga__spanFromEntry(ga__spanEntryOf(p)); }

/* objIndex: slot number of offset `off` within a small span (no division). */
GA_INLINE uintptr_t ga__objIndex(const mspan *s, uintptr_t off) {
  return (uintptr_t)(((uint64_t)off * s->divMul) >> 32);
}

GA_INLINE uint64_t ga__loadBits(const _Atomic uint64_t *w) {
  return atomic_load_explicit(w, memory_order_relaxed);
}
GA_INLINE void ga__storeBits(_Atomic uint64_t *w, uint64_t v) {
  atomic_store_explicit(w, v, memory_order_relaxed);
}

/* Keep p in a register up to here, and order the stores after: a thread
 * stopped by the collector anywhere inside a fast path then has the object's
 * address in its saved registers, so the conservative scan sees the object
 * the path is allocating or freeing (Go gets the same from mallocgc being
 * non-preemptible). No instruction is emitted. */
#define GA_KEEPALIVE(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Trailing zeros of x != 0. GCC widens __builtin_ctzll's int result with a
 * sign extension and clears the destination first (a false dependency that
 * BMI1's tzcnt has on some cores): two of malloc's ~20 instructions. tzcnt
 * runs as bsf on a CPU without BMI1, which gives the same result for x != 0. */
GA_INLINE uintptr_t ga__ctz64(uint64_t x) {
#if defined(__x86_64__)
  uintptr_t n;
  __asm__("tzcnt %1, %0" : "=r"(n) : "r"(x) : "cc");
  return n;
#else
  return (uintptr_t)__builtin_ctzll(x);
#endif
}

/* Bits set in x. Without -mpopcnt (the baseline x86-64 has no POPCNT
 * instruction) __builtin_popcountll is a call into libgcc; sweeping and
 * recounting call it per bitmap word (0.4 % of gcbench's samples). */
GA_INLINE unsigned ga__popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* nextFreeFast (Go's, as the seed describes it): count trailing zeros of the
 * 64-bit allocCache to find a free slot in the current 64-slot window; 0
 * when the window is used up, so that the slow path can move the window or
 * refill. About 9 instructions: the only store is allocCache. */
/* Take the lowest free slot of the window; cache (== s->allocCache) != 0. */
GA_INLINE uintptr_t ga__takeSlot(mspan *s, uint64_t cache) {
  uintptr_t bit = ga__ctz64(cache);
  uintptr_t p = s->windowAddr + bit * s->elemsize;
  GA_KEEPALIVE(p);
  ga__storeBits(&s->allocCache, cache & (cache - 1));
  return p;
}

GA_INLINE uintptr_t ga__nextFreeFast(mspan *s) {
  uint64_t cache = ga__loadBits(&s->allocCache);
  if (GA_UNLIKELY(cache == 0)) return 0;
  return ga__takeSlot(s, cache);
}

/* ---- mcache ----------------------------------------------------------- */

/* The free cache (mtcache.c): per span class, a LIFO of objects the thread
 * freed, handed out again by its next mallocs of the class. One line for
 * all malloc touches of it (malloc-batch paid 16 % of its malloc time for
 * a counter on another line). */
typedef struct tcbin {
  /* The newest entry, or 0 (empty): what malloc returns, one load away. */
  uintptr_t top;
  /* The older entries: slots[1 .. count), and slots[0] == 0 (so that a pop
   * of the last entry reloads top = 0 with no test). */
  uintptr_t *slots;
  uint32_t count;    /* next free index in slots (0 or 1 while top == 0) */
  uint16_t cap;      /* entries slots can take (0: the class has none) */
  uint16_t limit;    /* nelems * size of the class: the end of its slots */
  uint64_t pops;     /* mallocs it served (stats: each a free and a malloc) */
} tcbin;
_Static_assert(sizeof(tcbin) == 32, "tcbin: a power of two");
/* Entries of all bins of a cache together: the sum of the caps (mtcache.c,
 * which checks it), 30 KB, allocated only when the free cache is on. */
#define GA_TC_SLOTS 3730

typedef struct mcache {
  mspan *alloc[GA_NUM_CENTRALS]; /* span per span class; [136] = tiny */
  tcbin tc[GA_NUM_SPAN_CLASSES];
  /* Parked spans (mcache.c): per class, a ring (mspan.next/prev) and its
   * length; the bytes of all of them. */
  mspan *parked[GA_NUM_CENTRALS];
  uint16_t nparked[GA_NUM_CENTRALS];
  uintptr_t parkedBytes;
  uintptr_t tiny;                /* current tiny block, or 0 */
  uintptr_t tinyoffset;          /* next free byte in it */
  uint64_t tinyAllocs;           /* tiny objects packed (stats) */
  struct mcache *nextAll;        /* list of every live mcache */
  /* Its thread is registered (stopped by the collector): only then does the
   * collector sweep the cache's spans in place and grey its tiny block. A
   * thread that allocates after unregistering (in a TLS destructor, say)
   * keeps running during a collection, so its cache is left alone; its
   * spans are swept when they leave the cache (a cycle late, never early). */
  _Atomic int gcVisible;
  uintptr_t *tcslots; /* tc's entries, right after the record, or NULL */
} mcache;

/* The free cache's key word of an object (mtcache.c): its second word, in
 * classes of 16 bytes and up (the free cache's). Not the first: a program
 * that writes an object's first bytes and then frees it would have the
 * free's load of the key wait on those stores (store forwarding fails from
 * a narrower store). */
typedef uint64_t __attribute__((may_alias)) ga_word;
#define GA_TCKEY(a) (*(ga_word *)((a) + 8))
/* Does span class spc have objects with a key word? */
#define GA_TC_KEYED(spc) (((spc) >> 1) >= 2)

/* The free cache's keys (mtcache.c): the key word of an object held by a
 * free cache is ga__tcKey; of one freed to its span while the free cache is
 * on, ~ga__tcKey (no partial write turns one into the other). Random, and
 * neither 0 nor ~0. */
extern GA_HIDDEN uint64_t ga__tcKey;
/* Is the free cache on (the malloc drop-in, GOALLOC_TCACHE=1)? */
extern GA_HIDDEN bool ga__tcOn;
void ga__tc_init(void);
/* The bytes a cache record takes after the mcache for its free cache, and
 * a new cache's free cache (heap lock held). */
size_t ga__tc_cacheBytes(void);
void ga__tc_initCache(mcache *c);
/* The malloc drop-in's malloc and free: ga_malloc and ga_free with the free
 * cache (malloc.c, mfree.c). */
void *ga__malloc_tc(size_t size);
void ga__free_tc(void *p);
/* ga_free's every path but the owner's fast ones (mfree.c): frees through
 * freeBits, from any thread, after the exact checks. */
GA_NOINLINE void ga__free_slow(uintptr_t a);
/* Give back every object c's free caches hold (c's thread). */
void ga__tc_drain(mcache *c);

extern mcache ga__emptycache;
extern __thread mcache *ga__tls_cache __attribute__((tls_model("initial-exec")));

/* The calling thread's cache, or &ga__emptycache before its first refill. */
GA_INLINE mcache *ga__getcache(void) { return ga__tls_cache; }

/* Refill c->alloc[ci] (ci: span class or GA_TINY_CENTRAL) and return the
 * address of a fresh slot from it, or 0 if out of memory. Creates the
 * thread's cache on first use (then c is replaced by the real cache). */
uintptr_t ga__mcache_nextFree(unsigned ci);
/* Mark the calling thread's cache (if any) visible to the collector or not:
 * called by thread registration. */
void ga__mcache_set_visible(bool visible);
/* Does any thread's cache escape the collector (its thread is not
 * registered, so its spans are not swept in place)? */
bool ga__mcache_anyInvisible(void);
/* Give every cached span back to mcentral (thread exit, ga_thread_flush). */
void ga__mcache_releaseAll(mcache *c);
/* Call fn on every span c caches, current and parked. Only c's thread, or
 * the collector with c's thread stopped (outside slow paths). */
void ga__mcache_for_each_span(mcache *c, void (*fn)(mspan *s, void *arg),
                              void *arg);

/* ---- mcentral --------------------------------------------------------- */

typedef struct mcentral {
  ga_mutex lock;
  uint8_t spanclass;
  uint8_t tiny;
  /* Two sets of lists, Go's: [swept] holds the spans swept this cycle,
   * [swept ^ 1] those not yet swept; mark termination flips `swept`. */
  mspan *partial[2]; /* spans with free slots (may have pending remote frees) */
  mspan *full[2];    /* spans with no free slot when last looked at */
  uint8_t swept;
  uintptr_t nspans;
  uint32_t fullSkips; /* cacheSpan calls that skipped the full list */
} mcentral;

/* Per mcentral (index: span class, or GA_TINY_CENTRAL): set when a thread
 * freed into a span that no cache holds, which may be on the full list;
 * cacheSpan looks through that list only then (and now and then anyway: a
 * free racing with the span's return from a cache may miss setting it).
 * A plain store, and only when clear: remote frees make no other write to
 * shared memory. */
extern _Atomic uint8_t ga__mcentral_fullHint[GA_NUM_CENTRALS];
GA_INLINE void ga__mcentral_hintFull(const mspan *s) {
  if (atomic_load_explicit(&s->cache, memory_order_relaxed) != NULL) return;
  _Atomic uint8_t *h = &ga__mcentral_fullHint[s->tiny ? GA_TINY_CENTRAL : s->spanclass];
  if (!atomic_load_explicit(h, memory_order_relaxed))
    atomic_store_explicit(h, 1, memory_order_release);
}
/* Take a span with at least one free slot for cache c; NULL = out of memory. */
mspan *ga__mcentral_cacheSpan(unsigned ci, mcache *c);
/* Return a span from a cache (its owner is the calling thread). */
void ga__mcentral_uncacheSpan(mspan *s);
/* Fold remote frees into every span not in a cache; free empty spans.
 * Returns pages given back to the heap. */
uintptr_t ga__mcentral_reclaimAll(void);
/* Large spans are listed in mcentral 0/1 so that sweeping finds them. */
void ga__mcentral_listLarge(mspan *s);
void ga__mcentral_freeLarge(mspan *s);
/* Sweeping (see mgcsweep.c). */
void ga__mcentral_startSweep(void);
uintptr_t ga__mcentral_sweepOne(unsigned i);
uintptr_t ga__mcentral_unsweptCount(void);
void ga__mcentral_markSpecial(mspan *s);

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
uintptr_t ga__mheap_freePagesHint(void);

/* ---- bitmaps (mbitmap.c) ---------------------------------------------- */

/* Slots of window w that exist. */
GA_INLINE uint64_t ga__windowValid(const mspan *s, unsigned w) {
  unsigned left = s->nelems - w * 64u;
  return left >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << left) - 1);
}
/* Make window w current: load allocCache from allocBits[w]. */
void ga__span_loadWindow(mspan *s, unsigned w);
/* Write the current window back into allocBits (allocCache stays). */
void ga__span_syncWindow(mspan *s);
/* Set roomWords from allocBits (a span entering a cache). */
void ga__span_initRoom(mspan *s);
/* The current window is used up: commit it and load the next window that
 * has a free slot (the next in roomWords after the window's, wrapping
 * around). false if the span is full. */
bool ga__span_nextWindow(mspan *s);
/* Recount allocCount from allocBits (window synced first if cached). */
void ga__span_recount(mspan *s);
/* Fold freeBits into allocBits (and into allocCache for the window of a
 * cached span). Caller is the caching thread in a slow path, holds the
 * mcentral lock of an uncached span, or is the collector with the world
 * stopped. Aborts on a double free. Returns slots freed. */
unsigned ga__span_collect(mspan *s);
/* Is slot idx allocated right now? Exact for the caching thread, an
 * mcentral lock holder, or the collector with the world stopped. */
GA_INLINE bool ga__span_isAllocated(const mspan *s, uintptr_t idx) {
  if (atomic_load_explicit(&s->cache, memory_order_relaxed) != NULL &&
      (idx >> 6) == (uintptr_t)(s->freeindex >> 6))
    return !((ga__loadBits(&s->allocCache) >> (idx & 63)) & 1);
  return (ga__loadBits(&s->allocBits[idx >> 6]) >> (idx & 63)) & 1;
}
/* The mark bytes of slots [64w, 64w + 64) as a bit mask, like an
 * allocBits word (bytes past nelems are always 0). */
GA_INLINE uint64_t ga__markWord(const mspan *s, unsigned w) {
  const uint8_t *b = (const uint8_t *)&s->gcmarkBytes[(uintptr_t)w * 64];
#if defined(__SSE2__)
  uint64_t m = 0;
  for (unsigned k = 0; k < 4; k++) {
    __m128i v = _mm_loadu_si128((const __m128i *)(b + 16 * k));
    unsigned z = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
    m |= (uint64_t)(~z & 0xffffu) << (16 * k);
  }
  return m;
#else
  uint64_t m = 0;
  for (unsigned k = 0; k < 64; k++) m |= (uint64_t)(b[k] != 0) << k;
  return m;
#endif
}
GA_INLINE bool ga__isMarked(const mspan *s, uintptr_t idx) {
  return atomic_load_explicit(&s->gcmarkBytes[idx], memory_order_relaxed) != 0;
}
/* Clear every mark of s (its owner, an mcentral lock holder, or the
 * collector). */
GA_INLINE void ga__markClear(mspan *s) {
  if (!atomic_load_explicit(&s->anyMarked, memory_order_relaxed)) return;
  memset((void *)s->gcmarkBytes, 0, ((s->nelems + 63u) & ~63u));
  atomic_store_explicit(&s->anyMarked, 0, memory_order_relaxed);
}
/* Clear the marks of the slots of word w whose bits are set in `bits`. */
GA_INLINE void ga__markClearBits(mspan *s, unsigned w, uint64_t bits) {
  for (; bits != 0; bits &= bits - 1)
    atomic_store_explicit(&s->gcmarkBytes[w * 64u + (unsigned)__builtin_ctzll(bits)], 0,
                          memory_order_relaxed);
}
/* Same, from any thread: reads the window under its seqlock. */
bool ga__span_isAllocatedAny(mspan *s, uintptr_t idx);
/* Bracket every change of a span's window or cache owner. */
GA_INLINE void ga__span_windowBegin(mspan *s) {
  uint32_t q = atomic_load_explicit(&s->windowSeq, memory_order_relaxed);
  atomic_store_explicit(&s->windowSeq, q + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}
GA_INLINE void ga__span_windowEnd(mspan *s) {
  uint32_t q = atomic_load_explicit(&s->windowSeq, memory_order_relaxed);
  atomic_store_explicit(&s->windowSeq, q + 1, memory_order_release);
}
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

/* ---- statistics (mstats.c) ------------------------------------------ */

/* Fold a span's cache-time counts into the class totals (mcentral lock). */
void ga__stats_uncache(mspan *s);
/* n objects of sizeclass freed outside any cache (bytes: large only). */
void ga__stats_free(unsigned sizeclass, uint64_t n, uint64_t bytes);
void ga__stats_large_alloc(uint64_t bytes);
void ga__stats_tiny(uint64_t n);
void ga__stats_tcache(unsigned sizeclass, uint64_t pops);

/* ==== scavenger, statistics hooks and options (issue 6) ==================
 * mgcscavenge.c, mstats.c, options.c (options.h has the option accessors).
 * This block is maintained with those files. */

/* Heap hooks, called by mheap.c with the heap lock held, after a span's
 * pages were allocated / before its record is recycled on free. A true
 * result asks the caller to call the function named, after unlocking. */
bool ga__scav_alloc_locked(mspan *s);  /* true: ga__scav_after_alloc() */
bool ga__scav_free_locked(mspan *s);   /* true: ga__scavenger_wake() */
void ga__scav_after_alloc(void);       /* start the thread; eager release */
void ga__scavenger_wake(void);         /* re-read goals and settings now */
bool ga__scavenger_stop(void);         /* end the thread until a span is made */
bool ga__scavenger_running(void);      /* its thread runs now */

/* The collector, at the end of each cycle (Go's gcPaceScavenger): the
 * retained heap should come down to heap_inuse * heap_goal / last_heap_goal
 * plus 10 %. heap_goal 0 (or UINT64_MAX) = no goal (GOGC=off). */
void ga__scavenger_set_goal(uint64_t heap_inuse, uint64_t heap_goal,
                            uint64_t last_heap_goal);

typedef struct ga_scav_counters {
  uint64_t bgBytes, eagerBytes, forcedBytes; /* released, cumulative */
  uint64_t madvises, workNs;                 /* calls, time spent releasing */
  uint64_t reclaims, reclaimNs;              /* remote-free folds, their time */
  uint64_t goal;                             /* collector's goal, 0 = none */
  uint64_t rounds, threadCpuNs;              /* background thread's work */
  bool running;                              /* background thread started */
} ga_scav_counters;
void ga__scav_counters(ga_scav_counters *out);

/* Spans of a size class in use: +1 / -1 (heap lock held; from the hooks). */
void ga__stats_span_locked(unsigned sizeclass, int delta);

/* The collector, at the end of each cycle (Go's MemStats GC fields). */
typedef struct ga_gc_cycle_stats {
  uint64_t pause_ns; /* stop-the-world time of this cycle */
  uint64_t cpu_ns;   /* CPU time the collector used, all threads */
  uint64_t next_gc;  /* heap goal of the next cycle, bytes */
  bool forced;       /* started by ga_collect */
  bool concurrent;   /* marked with the world running */
  bool minor;        /* old objects kept their marks (mgc.c) */
} ga_gc_cycle_stats;
void ga__stats_gc_cycle(const ga_gc_cycle_stats *c);

/* Read the environment (options.c); heap init calls it first. */
void ga__options_init(void);
extern int64_t ga__options_init_ns; /* ga__sys_nanotime() at that moment */
/* ==== end of issue 6 block ============================================== */

/* ---- collector phase ----------------------------------------------------- */

/* GC_MARK while the collector marks with the world running (mgc.c): span
 * records and bitmaps are not recycled then (mheap.c). Changed only with
 * the world stopped. */
enum { GC_OFF = 0, GC_MARK = 1 };
extern _Atomic int ga__gcphase;

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
