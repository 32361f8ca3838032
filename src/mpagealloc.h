/*
 * mpagealloc.h — the page allocator's contract (Go's pageAlloc): which 8 KiB
 * heap pages are free, found fast with a radix tree of free-run summaries, and
 * which free pages have been returned to the OS ("scavenged").
 *
 * The page allocator only does bookkeeping: it never touches the pages
 * themselves and never calls the OS for them (the scavenger and mheap do).
 * Locking: every function requires the heap lock (mheap.lock); the allocator
 * has no lock of its own.
 *
 * Invariants:
 *  - A page is in exactly one state: not-yet-grown (not part of the heap),
 *    allocated, or free. Free pages are additionally scavenged or not.
 *  - Newly grown pages are free and scavenged (fresh from mmap = released).
 *  - Summaries are updated after every bitmap change; no free page lies below
 *    searchAddr (address-ordered first fit).
 */
#ifndef GA_MPAGEALLOC_H
#define GA_MPAGEALLOC_H

#include <stdint.h>

#define GA_PALLOC_CHUNK_PAGES 512u               /* pages per chunk (4 MiB) */
#define GA_PALLOC_CHUNK_BYTES (512u * 8192u)

/* One-time setup (reserves the summary arrays; idempotent). */
void ga__pages_init(void);

/* Add [base, base + npages*8192) to the heap as free, scavenged pages.
 * base and npages are multiples of a chunk (4 MiB / 512 pages). */
void ga__pages_grow(uintptr_t base, uintptr_t npages);

/* Allocate the lowest-addressed run of npages free pages whose base is a
 * multiple of align_pages*8192 (align_pages a power of two; 1 = any).
 * Returns the base, or 0 if no such run exists (the caller grows the heap).
 * (With align_pages > 1 on a heap with hundreds of misaligned candidate runs
 * below the answer, the search stops being exact and returns the aligned
 * part of the first run of npages + align_pages - 1 pages, as Go does; it
 * never returns 0 while an aligned run exists. See mpagealloc.c.)
 * *scav receives how many of the allocated pages were scavenged (their
 * scavenged bits are cleared). */
uintptr_t ga__pages_alloc(uintptr_t npages, uintptr_t align_pages,
                          uintptr_t *scav);

/* Free an allocated run (pages keep scavenged = 0). */
void ga__pages_free(uintptr_t base, uintptr_t npages);

/* Scavenger support (Go's scavengeOne): find the highest-addressed run of
 * free, unscavenged pages, at most max_pages long, and mark it allocated so
 * that nobody takes it while the caller releases it to the OS without the
 * lock. Returns npages found (0 = none) and its base in *base. The caller
 * then calls ga__pages_free_scavenged on the same range. */
uintptr_t ga__pages_take_unscavenged(uintptr_t max_pages, uintptr_t *base);

/* Free a run taken with ga__pages_take_unscavenged, now marked scavenged. */
void ga__pages_free_scavenged(uintptr_t base, uintptr_t npages);

/* The scavenger's walk from high addresses to low: the address of the
 * highest free, unscavenged page below `below`, or 0 if there is none. */
uintptr_t ga__pages_find_unscavenged(uintptr_t below);

/* ga__pages_take_unscavenged restricted to [lo, hi): take the highest run of
 * free, unscavenged pages that lies inside [lo, hi), at most max_pages long.
 * Returns npages (0 = none there) and its base in *base; the caller frees it
 * with ga__pages_free_scavenged (or ga__pages_free if the OS refused). */
uintptr_t ga__pages_take_unscavenged_in(uintptr_t lo, uintptr_t hi,
                                        uintptr_t max_pages, uintptr_t *base);

/* Counters, for statistics and tests. */
uintptr_t ga__pages_free_count(void);       /* free pages (incl. scavenged) */
uintptr_t ga__pages_scavenged_count(void);  /* free pages that are scavenged */
uintptr_t ga__pages_total_count(void);      /* pages ever grown */

/* Test support: check every summary against the bitmaps and the searchAddr
 * invariant; returns 0 if consistent, otherwise prints what is wrong to
 * stderr and returns -1. Expensive. */
int ga__pages_verify(void);

/* Test support: forget every grown range, all counters and all metadata
 * (its memory is returned to the OS), as if ga__pages_init had never run.
 * Only for tests that drive the allocator on fake address ranges. */
void ga__pages_reset(void);

#endif /* GA_MPAGEALLOC_H */
