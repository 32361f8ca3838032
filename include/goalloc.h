/*
 * goalloc.h — the public interface of goalloc, the Go runtime's memory
 * allocator and garbage collector rebuilt as a C library.
 *
 * Every function here is thread-safe and may be called from any thread; no
 * initialisation call is needed. Usable from C and C++.
 *
 * Memory model in one paragraph: objects live in spans of 8 KiB pages; each
 * span holds objects of one size class (68 classes, objects up to 32 KiB);
 * larger objects get whole pages of their own. Every thread keeps a cache of
 * one span per class and allocates from it with no lock and no atomic
 * read-modify-write. An object allocated with ga_malloc may hold pointers;
 * one allocated with ga_malloc_atomic promises not to (Go's "noscan").
 *
 * Errors: allocation failures return NULL with errno = ENOMEM. A bad free
 * (a pointer goalloc did not return, an interior pointer, a double free) is
 * never silent: goalloc prints what was wrong and the address on stderr and
 * aborts the process, as glibc does.
 */
#ifndef GOALLOC_H
#define GOALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GA_API __attribute__((visibility("default")))
#define GA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define GA_API
#define GA_MALLOC_ATTR
#endif

/*
 * ga_malloc: allocate `size` bytes that may hold pointers.
 * Alignment (Go's): 16 bytes for every request of 16 bytes or more except
 * 17..24, 8 bytes for those and for smaller ones. 8 is all that any C type
 * of 17..24 bytes needs (a type's size is a multiple of its alignment), and
 * the 24-byte class keeps such objects (two pointers and two ints, a list
 * cell with a key) a quarter smaller than a 32-byte slot would. When a
 * request of that size must be 16-aligned (a flexible array after a
 * 16-aligned member), use ga_aligned_alloc(16, size). The malloc drop-in
 * (libgoalloc-override) keeps glibc's rule instead: 16 for every request of
 * 16 bytes or more.
 * ga_malloc(0) returns a unique pointer that can be freed (as glibc does).
 * Returns NULL with errno = ENOMEM if the size is impossible or memory is out.
 * The contents are not initialised.
 */
GA_API GA_MALLOC_ATTR void *ga_malloc(size_t size);

/*
 * ga_malloc_atomic: allocate `size` bytes that will never hold pointers into
 * the goalloc heap (strings, numbers, pixel data). The collector never scans
 * them. Requests under 16 bytes are packed into shared 16-byte blocks (Go's
 * tiny allocator): such objects are 8-byte aligned if they are 8 bytes or
 * more, otherwise aligned to the largest power of two (2 or 4) that divides
 * their size; 16 bytes or more are aligned as ga_malloc's.
 *
 * Tiny objects cannot be freed one by one: ga_free of a tiny object (one
 * from ga_malloc_atomic with size < 16) checks that it points into a live
 * tiny block and otherwise does nothing; the block is reclaimed by the
 * collector once every object in it is unreachable. With the collector off,
 * use ga_malloc (or sizes >= 16) for pointer-free data that must be freed.
 */
GA_API GA_MALLOC_ATTR void *ga_malloc_atomic(size_t size);

/*
 * ga_calloc: n * size zeroed bytes (may hold pointers). NULL with
 * errno = ENOMEM if n * size overflows. Memory known to be zero (fresh from
 * the operating system) is not cleared again.
 */
GA_API GA_MALLOC_ATTR void *ga_calloc(size_t n, size_t size);

/*
 * ga_realloc: resize the object at p to `size` bytes, keeping its contents up
 * to the smaller of the two sizes. Stays in place while the object's size
 * class still fits the new size (and is not more than twice too large);
 * otherwise moves it. ga_realloc(NULL, n) is ga_malloc(n); ga_realloc(p, 0)
 * frees p and returns NULL (glibc's behaviour). On failure returns NULL with
 * errno = ENOMEM and p is untouched. An object from ga_malloc_atomic stays
 * pointer-free.
 */
GA_API void *ga_realloc(void *p, size_t size);

/*
 * ga_aligned_alloc: `size` bytes aligned to `align`, which must be a power of
 * two (any power of two up to 1 GiB is accepted). NULL with errno = EINVAL
 * for a bad alignment, ENOMEM when out of memory. Free with ga_free.
 */
GA_API GA_MALLOC_ATTR void *ga_aligned_alloc(size_t align, size_t size);

/*
 * ga_free: release an object returned by any of the functions above, from any
 * thread. ga_free(NULL) does nothing. A pointer that goalloc did not return,
 * an interior pointer, or an object already freed aborts the process with a
 * message on stderr. (One race cannot be caught by any allocator: a free
 * that overlaps the object's reuse after an earlier free.)
 */
GA_API void ga_free(void *p);

/*
 * ga_usable_size: the number of bytes usable at p (the size of its slot,
 * at least what was asked for). 0 for NULL. Aborts like ga_free for a
 * pointer that is not a live goalloc object.
 */
GA_API size_t ga_usable_size(const void *p);

/*
 * ga_owns: 1 if p points into a live goalloc object (anywhere inside it),
 * 0 otherwise. Never aborts; meant for debugging and for code that mixes
 * allocators.
 */
GA_API int ga_owns(const void *p);

/*
 * ga_thread_flush: give this thread's cached spans back to the shared heap
 * now (it happens by itself when the thread exits). Useful before a thread
 * goes idle for a long time.
 */
GA_API void ga_thread_flush(void);

/* ---- the collector -------------------------------------------------------
 * libgoalloc collects garbage by default (GOGC = 100, as Go and Boehm GC):
 * objects that no thread stack, register, global variable, registered root
 * range or other reachable object points to (conservatively: any aligned
 * word holding an address inside the object counts) are freed. ga_free stays
 * valid for objects you know are dead. Threads created with pthread_create
 * are registered automatically (goalloc interposes pthread_create); so is
 * the main thread. The malloc drop-in (libgoalloc-override) runs with the
 * collector off. Memory from ga_malloc_atomic is never scanned: pointers
 * stored only there do not keep objects alive. Neither do pointers stored
 * only in memory goalloc does not know (the C library's malloc, mmap):
 * register such ranges with ga_add_roots. */

/* Run a full collection now and finish its sweep before returning. Does
 * nothing while collection is disabled (ga_disable). */
GA_API void ga_collect(void);

/* Go's GOGC: collect when the heap has grown by percent % over what the last
 * collection found live. Negative turns automatic collection off. Returns
 * the previous value. The initial value comes from GOALLOC_GOGC (default
 * 100; "off" = -1). */
GA_API int ga_set_gc_percent(int percent);

/* Go's GOMEMLIMIT: a soft limit in bytes on the heap; the collector runs
 * more often as the heap approaches it. A negative value only queries.
 * Returns the previous limit (INT64_MAX = none). Initial value from
 * GOALLOC_MEMLIMIT (bytes, with an optional K/M/G/T suffix). */
GA_API int64_t ga_set_memory_limit(int64_t limit);

/* Disable / re-enable collection; calls nest. */
GA_API void ga_disable(void);
GA_API void ga_enable(void);

/* Add / remove [lo, hi) as a root range: words in it that point into the
 * heap keep objects alive. */
GA_API void ga_add_roots(void *lo, void *hi);
GA_API void ga_remove_roots(void *lo, void *hi);

/* Register / unregister the calling thread with the collector (nesting).
 * Only for threads not created with pthread_create (e.g. clone, or threads
 * that existed before libgoalloc was loaded). */
GA_API void ga_thread_register(void);
GA_API void ga_thread_unregister(void);

/* Call fn(obj, arg) once, on a finalizer thread, after obj (the start of an
 * object from ga_malloc/ga_malloc_atomic) is found unreachable. Objects
 * obj points to stay alive until then. fn may allocate. fn == NULL removes
 * the finalizer. ga_free(obj) also removes it. Returns 0, or -1 if obj is
 * not the start of a live object (or a tiny object). */
GA_API int ga_set_finalizer(void *obj, void (*fn)(void *obj, void *arg),
                            void *arg);

/* ---- returning memory to the OS ------------------------------------------
 * Free memory goes back to the operating system by itself: a background
 * thread releases free pages that have not been used for a second
 * (GOALLOC_SCAVENGE_DELAY_MS), keeps the heap under the memory limit, and,
 * with the collector on, near its goal (see docs/tuning.md). */

/* ga_release_memory: give every free page back to the OS now (after folding
 * in frees made by other threads), as Go's debug.FreeOSMemory does minus the
 * collection (call ga_collect first for that). Returns the bytes released.
 * Memory given back reads as zero when it is next allocated. */
GA_API size_t ga_release_memory(void);

/* ---- statistics --------------------------------------------------------
 * Go's MemStats, in goalloc's words. The calling thread's own counts are
 * always included; counts of other threads' cached spans are folded in when
 * those spans go back to the heap (refill, thread exit, ga_thread_flush, or
 * a collection), so Mallocs - Frees == HeapObjects == the number of live
 * objects holds exactly once every other thread has flushed, and
 * approximately otherwise. HeapIdle + HeapInuse == HeapSys always. */
#include <stdint.h>
#include <stdio.h>

#define GA_STATS_VERSION 4
#define GA_STATS_NUM_CLASSES 68

typedef struct ga_class_stats {
  size_t size;    /* slot size of the class (0 = large objects) */
  uint64_t mallocs;
  uint64_t frees;
  size_t spans;   /* spans of this class in use */
} ga_class_stats;

typedef struct ga_stats {
  unsigned version;       /* set to GA_STATS_VERSION before the call */
  uint64_t heap_alloc;    /* bytes of allocated objects (slot sizes) */
  uint64_t total_alloc;   /* cumulative bytes allocated */
  uint64_t heap_sys;      /* bytes of heap address space mapped */
  uint64_t heap_idle;     /* bytes in free spans (incl. released) */
  uint64_t heap_inuse;    /* bytes in spans in use */
  uint64_t heap_released; /* bytes returned to the OS */
  uint64_t heap_objects;  /* live objects */
  uint64_t mallocs;       /* cumulative objects allocated */
  uint64_t frees;         /* cumulative objects freed (explicitly or by GC) */
  uint64_t tiny_allocs;   /* tiny objects packed (counted in mallocs too) */
  uint64_t num_gc;        /* completed collections */
  uint64_t pause_total_ns;
  uint64_t pause_ns[256]; /* recent pauses, circular at num_gc % 256 */
  double gc_cpu_fraction; /* fraction of CPU time spent in the collector */
  uint64_t next_gc;       /* heap goal of the next collection (bytes) */
  ga_class_stats by_size[GA_STATS_NUM_CLASSES];
  /* ---- version 2 ---- */
  uint64_t pause_end[256];   /* when each recent pause ended (Unix ns),
                                circular like pause_ns */
  uint64_t last_gc;          /* Unix ns at the end of the last collection */
  uint64_t num_forced_gc;    /* collections started by ga_collect */
  uint64_t scav_bg_bytes;    /* released by the background scavenger */
  uint64_t scav_eager_bytes; /* released by allocations (limit, heap goal) */
  uint64_t scav_forced_bytes;/* released by ga_release_memory */
  uint64_t scav_madvises;    /* release system calls made */
  uint64_t scav_ns;          /* time spent releasing (all threads) */
  int64_t gc_percent;        /* GOGC in effect (-1 = off) */
  int64_t memory_limit;      /* memory limit in effect (INT64_MAX = none) */
  /* ---- version 3 ---- */
  uint64_t num_concurrent_gc; /* collections that marked with the world
                                 running (two short pauses each) */
  uint64_t pause_max_ns;      /* longest pause of any collection (a cycle's
                                 pause is the sum of its stops) */
  /* ---- version 4 ---- */
  uint64_t num_minor_gc;      /* minor collections: objects that survived an
                                 earlier cycle were not traced again */
} ga_stats;

/* ga_read_stats: fill *st (st->version must be GA_STATS_VERSION, or 1, 2 or 3
 * for the fields of that version). Returns 0, or -1 if the version is not
 * supported. */
GA_API int ga_read_stats(ga_stats *st);

/* ga_print_stats: a human-readable summary of ga_read_stats. */
GA_API void ga_print_stats(FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* GOALLOC_H */
