/*
 * mpagealloc.c — the page allocator (Go's pageAlloc, runtime/mpagealloc.go).
 *
 * What it owns
 * ------------
 * The free/allocated state of every 8 KiB heap page, whether each free page
 * has been returned to the OS ("scavenged"), and an index that finds a run of
 * free pages in roughly O(log heap) time. It never touches the pages it
 * describes and never asks the OS for them: mheap maps memory and calls
 * ga__pages_grow, the scavenger releases memory after
 * ga__pages_take_unscavenged. The caller holds the heap lock for every call.
 *
 * Structures
 * ----------
 * The user address space (addresses below 2^47 on x86-64 Linux) is cut into
 * 2^25 chunks of 512 pages (4 MiB). For each chunk:
 *
 *   chunks[c].alloc  512 bits, 1 = page allocated (or not part of the heap)
 *   chunks[c].scav   512 bits, 1 = page scavenged. Only free pages may have
 *                    it set: allocation clears it (see verify()).
 *
 * Above the chunks sits a radix tree of summaries with 5 levels, each level a
 * flat array indexed by address, reserved once (PROT_NONE) and committed as
 * the heap grows:
 *
 *   level   entries   one entry covers   largest count
 *   L0      2^13      16 GiB             2^21 pages
 *   L1      2^16       2 GiB             2^18
 *   L2      2^19     256 MiB             2^15
 *   L3      2^22      32 MiB             2^12
 *   L4      2^25       4 MiB (a chunk)   2^9     (the leaves)
 *
 * Entry i of level l has children 8i..8i+7 of level l+1: the 8 children are
 * 64 bytes, one cache line.
 *
 * Summary encoding (psum_t, a uint64): three counts of free pages in the
 * entry's range, 21 bits each — start (free run at the low end, bits 0-20),
 * max (longest free run anywhere, bits 21-41), end (free run at the high end,
 * bits 42-62). A count of 2^21 does not fit; it only happens for a completely
 * free L0 entry, which is encoded as bit 63 alone. A summary of 0 means "no
 * free page", which is also what every entry outside the heap holds, so the
 * tree needs no separate notion of "not grown".
 *
 * Merging 8 children of capacity C into their parent (merge()): start grows
 * while every child so far is completely free; max is the largest of the
 * children's max and of each run that crosses a boundary (running end + next
 * start); end is the last child's end, plus C for each completely free child
 * before it.
 *
 * Invariants
 * ----------
 *  1. Each leaf equals the summary of its chunk's alloc bitmap, and each inner
 *     entry equals the merge of its 8 children — after every call returns.
 *  2. search (Go's searchAddr, a page index): no free page lies below it.
 *     Allocation may move it up, free and grow move it down.
 *  3. No page is both allocated and scavenged.
 *  4. scavidx has bit c set iff chunk c holds a free, unscavenged page (and
 *     each upper level has bit i set iff word i below it is nonzero).
 *  5. free_pages, scav_pages and total_pages equal the bitmap popcounts.
 * ga__pages_verify() checks all five.
 *
 * Finding pages (find_level)
 * --------------------------
 * Address-ordered first fit. Scan the L0 entries from the one holding
 * `search` to the top of the heap, carrying the free run that ends at the
 * current position (run_base, run_len). For each entry, in address order:
 *   - summary 0: the run is broken;
 *   - if the carried run plus this entry's start fits the request, the answer
 *     is the (aligned) base of the carried run;
 *   - if the entry is completely free, the run grows by its capacity;
 *   - if the entry's max is large enough, descend into its 8 children (at a
 *     leaf, into the chunk's bitmap);
 *   - otherwise the run becomes the entry's end run.
 * Without alignment a descent cannot fail (the long run is inside the entry),
 * so a search reads at most the L0 span plus 8 entries per level plus one
 * bitmap: O(levels) cache lines.
 *
 * Alignment (align_pages = a > 1). A free run [s, e) holds an aligned fit of
 * n pages iff align_up(s, a) + n <= e, so the same walk finds the exact first
 * aligned fit, with two changes: a descent may now fail (the entry's long run
 * is misaligned), and entries whose capacity is <= a are never entered, since
 * their only aligned page is their first one, which the carried run already
 * covers. Failed descents are what an adversarial heap (many misaligned runs
 * of n..n+a-2 pages) can make linear, so they are budgeted: after
 * ALIGN_BUDGET failures the search gives up on exactness and does what Go's
 * allocSpan does — find a run of n + a - 1 pages (one O(log) search, which
 * always holds an aligned fit) and take its aligned part. Only if no such run
 * exists is the exact search repeated without budget, so that an aligned fit
 * is never missed; that search is linear in the number of misaligned
 * candidate runs, and happens only when the caller is about to grow the heap
 * anyway (mheap grows by n + a - 1 pages).
 *
 * Costs (h = levels = 5)
 * ----------------------
 *   alloc(n, 1)      O(h*8 + L0 span + bitmap search + n/64); the bitmap
 *                    search is 8 words * log2(min(n, 64)) shifts (1 word
 *                    scan for n = 1)
 *   alloc(n, a>1)    the same, plus at most ALIGN_BUDGET failed descents
 *                    (linear only when no run of n + a - 1 pages exists)
 *   free(n)          O(n/64 + chunks touched + h*8 per changed ancestor)
 *   grow(n)          O(n/64), plus one mprotect per metadata array
 *   take_unscavenged O(4 words of scavidx + 8 words + run/64)
 *   find_unscavenged O(scavidx levels + 8 words) per chunk the index names
 *                    at or below the bound (the _in variant adds run/64)
 *   verify           O(grown chunks * 16 words) + the scavidx bitmaps
 * update() walks up from the changed leaves and stops at the first level
 * where nothing changed, so a 1-page alloc or free usually touches 1-2 levels.
 * The L0 span is the number of 16 GiB entries between `search` and the top of
 * the heap: 1-3 for a contiguous heap; a heap split into far-apart regions
 * pays up to 2^13 8-byte reads (64 KiB) for a search that fails.
 *
 * Memory: the bitmaps (128 B per chunk) and summary levels are reserved
 * PROT_NONE (4 GiB + 293 MiB of address space, no memory) and committed by
 * ga__pages_grow for the chunks grown (about 136 B per 4 MiB of heap, in OS
 * pages), so a stray access outside the heap faults instead of reading zeros.
 * L0 (64 KiB) is committed whole because the search scans it across gaps.
 * The grown-chunk bitmap and scavidx (4.1 MiB) come from ga__sys_alloc
 * (lazily committed zero pages) because lookups may read them anywhere.
 */
#include "mpagealloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

_Static_assert(sizeof(uintptr_t) == 8, "the page allocator assumes 64-bit");

/* ---- geometry ---------------------------------------------------------- */

#define PAGE_SHIFT 13                         /* 8 KiB pages */
#define CHUNK_PAGES_SHIFT 9                   /* 512 pages per chunk */
#define CHUNK_PAGES ((uintptr_t)1 << CHUNK_PAGES_SHIFT)
#define CHUNK_WORDS (CHUNK_PAGES / 64)        /* 8 bitmap words */
#define ADDR_BITS 47                          /* x86-64 Linux user space */
#define NCHUNKS_SHIFT (ADDR_BITS - PAGE_SHIFT - CHUNK_PAGES_SHIFT) /* 25 */
#define NCHUNKS ((uintptr_t)1 << NCHUNKS_SHIFT)
#define MAX_PAGE ((uintptr_t)1 << (ADDR_BITS - PAGE_SHIFT)) /* 2^34 pages */

#define LEVELS 5
#define LEAF (LEVELS - 1)
#define LEVEL_BITS 3 /* 8 children per entry: one 64-byte cache line */

_Static_assert(GA_PALLOC_CHUNK_PAGES == CHUNK_PAGES, "chunk size mismatch");
_Static_assert(NCHUNKS_SHIFT >= LEVEL_BITS * LEAF, "tree deeper than space");

/* log2 of the entries at level l, of the chunks below one entry, and of the
 * pages one entry covers (its capacity). */
static inline unsigned level_shift(int l) {
  return (unsigned)(LEVEL_BITS * (LEAF - l));
}
static inline uintptr_t level_entries(int l) {
  return NCHUNKS >> level_shift(l);
}
static inline unsigned level_cap_log(int l) {
  return CHUNK_PAGES_SHIFT + level_shift(l);
}

/* ---- summaries --------------------------------------------------------- */

typedef uint64_t psum_t;

#define SUM_BITS 21
#define SUM_MASK (((uint64_t)1 << SUM_BITS) - 1)
#define SUM_MAXFREE ((uint64_t)1 << 63) /* start = max = end = 2^21 */

_Static_assert(CHUNK_PAGES_SHIFT + LEVEL_BITS * LEAF == SUM_BITS,
               "an L0 entry must hold exactly 2^21 pages");

static inline psum_t sum_pack(uintptr_t st, uintptr_t mx, uintptr_t en) {
  if (mx == ((uintptr_t)1 << SUM_BITS)) return SUM_MAXFREE;
  return (psum_t)st | (psum_t)mx << SUM_BITS | (psum_t)en << (2 * SUM_BITS);
}

typedef struct {
  uintptr_t start, max, end;
} sum_t;

static inline sum_t sum_unpack(psum_t s) {
  sum_t r;
  if (s & SUM_MAXFREE) {
    r.start = r.max = r.end = (uintptr_t)1 << SUM_BITS;
  } else {
    r.start = (uintptr_t)(s & SUM_MASK);
    r.max = (uintptr_t)((s >> SUM_BITS) & SUM_MASK);
    r.end = (uintptr_t)((s >> (2 * SUM_BITS)) & SUM_MASK);
  }
  return r;
}

/* ---- state -------------------------------------------------------------- */

typedef struct {
  uint64_t alloc[CHUNK_WORDS]; /* 1 = allocated */
  uint64_t scav[CHUNK_WORDS];  /* 1 = scavenged; only on free pages */
} chunk_t;

/* scavidx: a 64-ary bit tree over chunks. Level 0 has one bit per chunk
 * (2^19 words), level k+1 one bit per word of level k, down to 2 words. */
#define SCAV_LEVELS 4
static inline uintptr_t scav_words(int k) {
  return NCHUNKS >> (6 * (k + 1));
}
_Static_assert((NCHUNKS >> (6 * SCAV_LEVELS)) == 2, "scavidx top is 2 words");

static struct {
  int ready;
  chunk_t *chunks;          /* [NCHUNKS], committed for grown chunks */
  psum_t *sum[LEVELS];      /* [level_entries(l)], committed likewise */
  uint64_t *grown;          /* [NCHUNKS/64] bit c = chunk c was grown */
  uint64_t *scavidx[SCAV_LEVELS]; /* invariant 4 */
  uintptr_t search;         /* page index; invariant 2 */
  uintptr_t lo_chunk;       /* lowest grown chunk (NCHUNKS if none) */
  uintptr_t end_chunk;      /* one past the highest grown chunk */
  uintptr_t free_pages;     /* free pages, scavenged or not */
  uintptr_t scav_pages;     /* free and scavenged pages */
  uintptr_t total_pages;    /* pages ever grown */
} pa;

#define CHUNKS_BYTES (NCHUNKS * sizeof(chunk_t))
#define GROWN_BYTES (NCHUNKS / 8)

static size_t scavidx_bytes(void) {
  size_t n = 0;
  for (int k = 0; k < SCAV_LEVELS; k++) n += scav_words(k) * sizeof(uint64_t);
  return n;
}

/* ---- small helpers ------------------------------------------------------ */

__attribute__((noreturn, cold)) static void fatal(const char *msg) {
  static const char pre[] = "goalloc: page allocator: ";
  ga__sys_write_err(pre, sizeof pre - 1);
  ga__sys_write_err(msg, strlen(msg));
  ga__sys_write_err("\n", 1);
  abort();
}

static inline uintptr_t align_up(uintptr_t x, uintptr_t a) {
  return (x + a - 1) & ~(a - 1);
}

static inline int is_grown(uintptr_t c) {
  return (int)((pa.grown[c >> 6] >> (c & 63)) & 1);
}

/* Bits [lo, hi) of word w of a chunk bitmap (lo < hi, positions in pages). */
static inline uint64_t word_mask(unsigned w, unsigned lo, unsigned hi) {
  unsigned wlo = w * 64, s = lo > wlo ? lo - wlo : 0;
  unsigned e = hi < wlo + 64 ? hi - wlo : 64;
  uint64_t m = e - s == 64 ? ~(uint64_t)0 : (((uint64_t)1 << (e - s)) - 1);
  return m << s;
}

/* First free (0) / allocated (1) page at or after i in a chunk bitmap, or
 * CHUNK_PAGES if none. */
static inline unsigned next_zero(const uint64_t *b, unsigned i) {
  if (i >= CHUNK_PAGES) return CHUNK_PAGES;
  unsigned w = i >> 6;
  uint64_t x = ~b[w] & (~(uint64_t)0 << (i & 63));
  while (x == 0) {
    if (++w == CHUNK_WORDS) return CHUNK_PAGES;
    x = ~b[w];
  }
  return w * 64 + (unsigned)__builtin_ctzll(x);
}

static inline unsigned next_one(const uint64_t *b, unsigned i) {
  if (i >= CHUNK_PAGES) return CHUNK_PAGES;
  unsigned w = i >> 6;
  uint64_t x = b[w] & (~(uint64_t)0 << (i & 63));
  while (x == 0) {
    if (++w == CHUNK_WORDS) return CHUNK_PAGES;
    x = b[w];
  }
  return w * 64 + (unsigned)__builtin_ctzll(x);
}

/* Length of the longest run of 1 bits in x: each step shortens every run by
 * one, so this costs (longest run) iterations; callers skip it when the
 * popcount already cannot beat their best. */
static inline unsigned longest_ones(uint64_t x) {
  unsigned n = 0;
  while (x != 0) {
    x &= x >> 1;
    n++;
  }
  return n;
}

/* Reserve address space for a metadata array (no memory yet). */
static void *reserve(size_t size) {
  uintptr_t p = ga__sys_reserve(0, size, ga__sys_pagesize());
  if (p == 0) fatal("cannot reserve address space for metadata");
  return (void *)p;
}

/* Commit entries [i0, i1) of a reserved array (rounded out to OS pages;
 * committing a committed page again is harmless). */
static void commit(void *arr, size_t elem, uintptr_t i0, uintptr_t i1) {
  uintptr_t ps = ga__sys_pagesize();
  uintptr_t lo = ((uintptr_t)arr + i0 * elem) & ~(ps - 1);
  uintptr_t hi = ((uintptr_t)arr + i1 * elem + ps - 1) & ~(ps - 1);
  if (ga__sys_map(lo, hi - lo) != 0)
    fatal("out of memory committing page-allocator metadata");
}

/* ---- summaries of bitmaps and of children ------------------------------ */

/* Summary of one chunk's alloc bitmap. Cost: 8 words, plus a short loop per
 * partly free word that could hold a longer run than found so far. */
static psum_t leaf_sum(const uint64_t *b) {
  uintptr_t st = 0, en = 0, mx, cur = 0;
  unsigned w;
  for (w = 0; w < CHUNK_WORDS && b[w] == 0; w++) st += 64;
  if (w == CHUNK_WORDS) return sum_pack(CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES);
  st += (uintptr_t)__builtin_ctzll(b[w]);
  for (w = CHUNK_WORDS - 1; b[w] == 0; w--) en += 64;
  en += (uintptr_t)__builtin_clzll(b[w]);
  mx = st > en ? st : en;
  for (w = 0; w < CHUNK_WORDS; w++) {
    uint64_t x = b[w];
    if (x == 0) {
      cur += 64;
      continue;
    }
    cur += (uintptr_t)__builtin_ctzll(x); /* run crossing into this word */
    if (cur > mx) mx = cur;
    uint64_t f = ~x;
    if ((uintptr_t)__builtin_popcountll(f) > mx) {
      uintptr_t r = longest_ones(f);
      if (r > mx) mx = r;
    }
    cur = (uintptr_t)__builtin_clzll(x); /* run leaving this word */
  }
  if (cur > mx) mx = cur;
  return sum_pack(st, mx, en);
}

/* Merge 8 children of capacity 2^cap_log into their parent's summary. */
static psum_t merge(const psum_t *ch, unsigned cap_log) {
  const uintptr_t cap = (uintptr_t)1 << cap_log;
  uintptr_t st = 0, mx = 0, en = 0;
  int prefix_free = 1;
  for (int k = 0; k < 8; k++) {
    if (ch[k] == 0) {
      prefix_free = 0;
      en = 0;
      continue;
    }
    sum_t s = sum_unpack(ch[k]);
    if (prefix_free) {
      st += s.start;
      if (s.start != cap) prefix_free = 0;
    }
    if (en + s.start > mx) mx = en + s.start;
    if (s.max > mx) mx = s.max;
    en = s.start == cap ? en + cap : s.end;
  }
  return sum_pack(st, mx, en);
}

/* Recompute the leaves of chunks [c0, c1] from their bitmaps, then their
 * ancestors level by level, stopping at the first level where no entry
 * changed (everything above is then unchanged too). */
static void update(uintptr_t c0, uintptr_t c1) {
  int changed = 0;
  for (uintptr_t c = c0; c <= c1; c++) {
    psum_t s = leaf_sum(pa.chunks[c].alloc);
    if (s != pa.sum[LEAF][c]) {
      pa.sum[LEAF][c] = s;
      changed = 1;
    }
  }
  for (int l = LEAF - 1; l >= 0 && changed; l--) {
    const unsigned child_cap_log = level_cap_log(l + 1);
    c0 >>= LEVEL_BITS;
    c1 >>= LEVEL_BITS;
    changed = 0;
    for (uintptr_t i = c0; i <= c1; i++) {
      psum_t s = merge(&pa.sum[l + 1][i << LEVEL_BITS], child_cap_log);
      if (s != pa.sum[l][i]) {
        pa.sum[l][i] = s;
        changed = 1;
      }
    }
  }
}

/* ---- scavenge index ----------------------------------------------------- */

static void scavidx_set(uintptr_t c, int on) {
  uintptr_t i = c;
  for (int k = 0; k < SCAV_LEVELS; k++) {
    uint64_t *w = &pa.scavidx[k][i >> 6];
    uint64_t old = *w, bit = (uint64_t)1 << (i & 63);
    *w = on ? old | bit : old & ~bit;
    if ((old != 0) == (*w != 0)) break; /* parent's bit is unchanged */
    i >>= 6;
  }
}

static inline int chunk_has_unscav(const chunk_t *ch) {
  uint64_t any = 0;
  for (unsigned w = 0; w < CHUNK_WORDS; w++) any |= ~ch->alloc[w] & ~ch->scav[w];
  return any != 0;
}

/* Highest chunk with a free, unscavenged page, or NCHUNKS. */
static uintptr_t scavidx_highest(void) {
  const uint64_t *top = pa.scavidx[SCAV_LEVELS - 1];
  uintptr_t i;
  if (top[1] != 0)
    i = 64 + 63 - (uintptr_t)__builtin_clzll(top[1]);
  else if (top[0] != 0)
    i = 63 - (uintptr_t)__builtin_clzll(top[0]);
  else
    return NCHUNKS;
  for (int k = SCAV_LEVELS - 2; k >= 0; k--) {
    uint64_t w = pa.scavidx[k][i];
    i = i * 64 + 63 - (uintptr_t)__builtin_clzll(w);
  }
  return i;
}

/* ---- marking ranges ----------------------------------------------------- */

enum mark_op {
  OP_ALLOC,     /* free -> allocated; clears scav, returns how many were set */
  OP_FREE,      /* allocated -> free, unscavenged */
  OP_FREE_SCAV, /* allocated -> free, scavenged */
  OP_TAKE,      /* free and unscavenged -> allocated (scavenger) */
};

/* Refresh chunk c's scavidx bit after op changed some of its pages: freeing
 * unscavenged pages always sets it, and allocating cannot set a clear one. */
static void scavidx_update(uintptr_t c, enum mark_op op) {
  int was = (int)((pa.scavidx[0][c >> 6] >> (c & 63)) & 1), has;
  if (op == OP_FREE)
    has = 1;
  else if ((op == OP_ALLOC || op == OP_TAKE) && !was)
    has = 0;
  else
    has = chunk_has_unscav(&pa.chunks[c]);
  if (has != was) scavidx_set(c, has);
}

/* Apply op to pages [p, p+n) (page indices; n > 0), then fix the summaries
 * and the scavenge index. Checks that every page is in the expected state. */
static uintptr_t mark_range(uintptr_t p, uintptr_t n, enum mark_op op) {
  const uintptr_t c0 = p >> CHUNK_PAGES_SHIFT;
  const uintptr_t c1 = (p + n - 1) >> CHUNK_PAGES_SHIFT;
  uintptr_t scav = 0;
  for (uintptr_t c = c0; c <= c1; c++) {
    chunk_t *ch = &pa.chunks[c];
    unsigned lo = c == c0 ? (unsigned)(p & (CHUNK_PAGES - 1)) : 0;
    unsigned hi = c == c1 ? (unsigned)((p + n - 1) & (CHUNK_PAGES - 1)) + 1
                          : (unsigned)CHUNK_PAGES;
    for (unsigned w = lo >> 6; w <= (hi - 1) >> 6; w++) {
      uint64_t m = word_mask(w, lo, hi);
      switch (op) {
      case OP_ALLOC:
        if (ch->alloc[w] & m) fatal("allocating pages that are not free");
        scav += (uintptr_t)__builtin_popcountll(ch->scav[w] & m);
        ch->scav[w] &= ~m;
        ch->alloc[w] |= m;
        break;
      case OP_TAKE:
        if ((ch->alloc[w] | ch->scav[w]) & m)
          fatal("taking pages that are not free and unscavenged");
        ch->alloc[w] |= m;
        break;
      case OP_FREE:
      case OP_FREE_SCAV:
        if ((ch->alloc[w] & m) != m) fatal("freeing pages that are not allocated");
        ch->alloc[w] &= ~m;
        if (op == OP_FREE_SCAV) ch->scav[w] |= m;
        break;
      }
    }
    scavidx_update(c, op);
  }
  update(c0, c1);
  return scav;
}

/* Check that [base, base + npages*8K) is page-aligned, nonempty and inside
 * grown chunks, before touching any metadata for it. */
static void check_range(uintptr_t base, uintptr_t npages, const char *what) {
  if (!pa.ready || npages == 0 || (base & (((uintptr_t)1 << PAGE_SHIFT) - 1)))
    fatal(what);
  uintptr_t p = base >> PAGE_SHIFT;
  if (p >= MAX_PAGE || npages > MAX_PAGE - p) fatal(what);
  for (uintptr_t c = p >> CHUNK_PAGES_SHIFT;
       c <= (p + npages - 1) >> CHUNK_PAGES_SHIFT; c++)
    if (!is_grown(c)) fatal(what);
}

/* ---- finding ------------------------------------------------------------ */

/* Failed descents an aligned search may make before falling back to Go's
 * n + a - 1 method. A failed leaf costs 8 words times log2(min(n, 64))
 * shifts (tens of nanoseconds), so this bounds the extra work at a few tens
 * of microseconds (test_pagealloc's align-budget case measures ~12 us for an
 * exhausted budget with n = 32 on the development machine); heaps of up to 64 chunks (256 MiB) can never
 * exhaust it (64 leaves + 9 inner entries), which keeps the tests exact. */
#define ALIGN_BUDGET 256

#define NOTFOUND UINTPTR_MAX
#define ABORTED (UINTPTR_MAX - 1)

typedef struct {
  uintptr_t n, align;
  uint64_t align_mask;         /* bit i set iff i % align == 0 (align <= 64) */
  uintptr_t run_base, run_len; /* free run ending at the current position */
  long budget;                 /* failed descents left; < 0: unlimited */
  /* Go's "new searchAddr": no free page lies in [pa.search, bound). Set from
   * the first nonzero entry met (in address order), refined while the walk
   * descends into that entry; bound_done once it can no longer improve. */
  uintptr_t bound;
  int bound_done;
  int seen_free; /* some entry at or above search had free pages */
} finder;

static inline int fits(const finder *f, uintptr_t base, uintptr_t len) {
  return align_up(base, f->align) + f->n <= base + len;
}

/* Pages at which a run of k (1..64) free pages starts, for the 64 pages of
 * word w of a chunk bitmap; runs may continue into word w+1 but not past the
 * chunk. Each step doubles the run length checked: log2(k) shifts of a
 * 128-bit value. */
static inline uint64_t run_starts(const uint64_t *b, unsigned w, unsigned k) {
  __extension__ typedef unsigned __int128 u128;
  u128 x = (u128)~b[w];
  if (w + 1 < CHUNK_WORDS) x |= (u128)~b[w + 1] << 64;
  for (unsigned have = 1; have < k;) {
    unsigned sh = have < k - have ? have : k - have;
    x &= x >> sh;
    have += sh;
  }
  return (uint64_t)x;
}

/* First aligned fit lying entirely inside chunk c (the walk above handles
 * runs that cross its edges). Pages below pa.search are allocated, so the
 * scan starts there when it falls inside this chunk.
 *
 * Word-parallel, as Go's findBitRange: candidates are the aligned pages
 * where min(n, 64) free pages start (run_starts). For n <= 64 the first
 * candidate is the answer; for larger n a candidate is checked by measuring
 * its run and, if short, skipped to the run's end, so the cost is 8 words
 * times log2(min(n, 64)) plus one probe per free run of 64 or more pages. */
static uintptr_t find_in_chunk(finder *f, uintptr_t c) {
  const uint64_t *b = pa.chunks[c].alloc;
  const uintptr_t cbase = c << CHUNK_PAGES_SHIFT;
  const unsigned k = f->n < 64 ? (unsigned)f->n : 64;
  unsigned pos = 0;
  if (pa.search > cbase && pa.search < cbase + CHUNK_PAGES)
    pos = (unsigned)(pa.search - cbase);
  if (!f->bound_done) {
    f->bound = cbase + next_zero(b, pos);
    f->bound_done = 1;
  }
  if (f->n == 1 && f->align == 1) { /* the common case: first free page */
    unsigned p = next_zero(b, pos);
    return p < CHUNK_PAGES ? cbase + p : NOTFOUND;
  }
  while (pos < CHUNK_PAGES) {
    unsigned w = pos >> 6, p = CHUNK_PAGES;
    uint64_t from = ~(uint64_t)0 << (pos & 63);
    for (; w < CHUNK_WORDS; w++, from = ~(uint64_t)0) {
      uint64_t amask = f->align_mask;
      if (f->align > 64) /* cbase is 512-aligned and align <= 256 here */
        amask = ((w * 64) & (f->align - 1)) == 0 ? 1 : 0;
      uint64_t m = from & amask;
      if (m == 0) continue;
      m &= run_starts(b, w, k);
      if (m != 0) {
        p = w * 64 + (unsigned)__builtin_ctzll(m);
        break;
      }
    }
    if (p == CHUNK_PAGES) return NOTFOUND;
    if (f->n <= 64) return cbase + p;
    unsigned e = next_one(b, p);
    if (e - p >= f->n) return cbase + p;
    pos = e;
  }
  return NOTFOUND;
}

/* Walk entries [i0, i1) of level l in address order (see the essay). Returns
 * the page index found, NOTFOUND, or ABORTED (budget spent). */
static uintptr_t find_level(finder *f, int l, uintptr_t i0, uintptr_t i1) {
  const unsigned cap_log = level_cap_log(l);
  const uintptr_t cap = (uintptr_t)1 << cap_log;
  for (uintptr_t i = i0; i < i1; i++) {
    psum_t ps = pa.sum[l][i];
    if (ps == 0) {
      f->run_len = 0;
      continue;
    }
    const uintptr_t node = i << cap_log;
    sum_t s = sum_unpack(ps);
    f->seen_free = 1;
    if (!f->bound_done) {
      if (node > f->bound) f->bound = node;
      if (s.start != 0) f->bound_done = 1; /* page `node` itself is free */
    }
    if (f->run_len == 0) f->run_base = node;
    if (s.start != 0 && fits(f, f->run_base, f->run_len + s.start))
      return align_up(f->run_base, f->align);
    if (s.start == cap) {
      f->run_len += cap;
      continue;
    }
    if (s.max >= f->n && cap > f->align) {
      uintptr_t r = l == LEAF ? find_in_chunk(f, i)
                              : find_level(f, l + 1, i << LEVEL_BITS,
                                           (i << LEVEL_BITS) + 8);
      if (r != NOTFOUND) return r;
      if (f->budget >= 0 && f->budget-- == 0) return ABORTED;
    }
    f->bound_done = 1;
    f->run_base = node + cap - s.end;
    f->run_len = s.end;
  }
  return NOTFOUND;
}

static uintptr_t search_tree(finder *f, uintptr_t n, uintptr_t align,
                             long budget) {
  f->n = n;
  f->align = align;
  f->align_mask = 0;
  for (unsigned i = 0; i < 64 && align <= 64; i += (unsigned)align)
    f->align_mask |= (uint64_t)1 << i;
  f->run_base = f->run_len = 0;
  f->budget = budget;
  f->bound = pa.search;
  f->bound_done = 0;
  f->seen_free = 0;
  const unsigned l0 = level_cap_log(0);
  uintptr_t end_page = pa.end_chunk << CHUNK_PAGES_SHIFT;
  return find_level(f, 0, pa.search >> l0, ((end_page - 1) >> l0) + 1);
}

/* Lowest page index of an aligned run of n free pages (see the essay for
 * when an aligned result may not be the lowest), or NOTFOUND. Moves
 * pa.search up as far as the walk proved no free page lies below. */
static uintptr_t find(uintptr_t n, uintptr_t align) {
  const uintptr_t end_page = pa.end_chunk << CHUNK_PAGES_SHIFT;
  if (pa.search >= end_page) return NOTFOUND;
  finder f;
  uintptr_t p = search_tree(&f, n, align, align > 1 ? ALIGN_BUDGET : -1);
  if (p == ABORTED) {
    p = search_tree(&f, n + align - 1, 1, -1);
    if (p != NOTFOUND)
      p = align_up(p, align);
    else
      p = search_tree(&f, n, align, -1);
  }
  if (p == NOTFOUND && !f.seen_free)
    pa.search = end_page; /* nothing free at or above search */
  else if (p != NOTFOUND && f.bound == p)
    pa.search = p + n; /* the first free page is being allocated */
  else if (f.bound > pa.search)
    pa.search = f.bound;
  return p;
}

/* Take the run of free, unscavenged pages that ends at page `top`, at most
 * max_pages long, extending it downwards a word at a time across chunk
 * edges; mark it taken and return (its base in *base) its length. */
static uintptr_t take_unscav_run_ending_at(uintptr_t top, uintptr_t max_pages,
                                          uintptr_t *base) {
  uintptr_t len = 0, pg = top;
  for (;;) {
    uintptr_t cc = pg >> CHUNK_PAGES_SHIFT;
    if (!is_grown(cc)) break;
    const chunk_t *x = &pa.chunks[cc];
    unsigned bit = (unsigned)(pg & 63), wi = (unsigned)((pg & 511) >> 6);
    uint64_t v = (~x->alloc[wi] & ~x->scav[wi]) << (63 - bit);
    uintptr_t run = ~v == 0 ? 64 : (uintptr_t)__builtin_clzll(~v);
    if (run > max_pages - len) run = max_pages - len;
    len += run;
    if (len == max_pages || run < bit + 1 || pg < run) break;
    pg -= run;
  }
  const uintptr_t lo = top - len + 1;
  mark_range(lo, len, OP_TAKE);
  pa.free_pages -= len;
  if (base != NULL) *base = lo << PAGE_SHIFT;
  return len;
}

/* ---- the contract (mpagealloc.h) --------------------------------------- */

void ga__pages_init(void) {
  if (pa.ready) return;
  pa.chunks = reserve(CHUNKS_BYTES);
  for (int l = 0; l < LEVELS; l++)
    pa.sum[l] = reserve(level_entries(l) * sizeof(psum_t));
  commit(pa.sum[0], sizeof(psum_t), 0, level_entries(0));
  pa.grown = ga__sys_alloc(GROWN_BYTES);
  uint64_t *sx = ga__sys_alloc(scavidx_bytes());
  if (pa.grown == NULL || sx == NULL) fatal("cannot map metadata");
  for (int k = 0; k < SCAV_LEVELS; k++) {
    pa.scavidx[k] = sx;
    sx += scav_words(k);
  }
  pa.search = MAX_PAGE;
  pa.lo_chunk = NCHUNKS;
  pa.end_chunk = 0;
  pa.ready = 1;
}

void ga__pages_reset(void) {
  if (!pa.ready) return;
  ga__sys_free(pa.chunks, CHUNKS_BYTES);
  for (int l = 0; l < LEVELS; l++)
    ga__sys_free(pa.sum[l], level_entries(l) * sizeof(psum_t));
  ga__sys_free(pa.grown, GROWN_BYTES);
  ga__sys_free(pa.scavidx[0], scavidx_bytes());
  memset(&pa, 0, sizeof pa);
}

void ga__pages_grow(uintptr_t base, uintptr_t npages) {
  ga__pages_init();
  if (base == 0 || (base & (GA_PALLOC_CHUNK_BYTES - 1)) || npages == 0 ||
      npages % CHUNK_PAGES != 0)
    fatal("grow: range is not whole chunks");
  const uintptr_t c0 = base >> (PAGE_SHIFT + CHUNK_PAGES_SHIFT);
  const uintptr_t nc = npages >> CHUNK_PAGES_SHIFT;
  if (c0 >= NCHUNKS || nc > NCHUNKS - c0) fatal("grow: range beyond 2^47");
  const uintptr_t c1 = c0 + nc; /* exclusive */
  for (uintptr_t c = c0; c < c1; c++)
    if (is_grown(c)) fatal("grow: range already grown");

  commit(pa.chunks, sizeof(chunk_t), c0, c1);
  for (int l = 1; l < LEVELS; l++)
    commit(pa.sum[l], sizeof(psum_t), c0 >> level_shift(l),
           ((c1 - 1) >> level_shift(l)) + 1);
  for (uintptr_t c = c0; c < c1; c++) {
    pa.grown[c >> 6] |= (uint64_t)1 << (c & 63);
    memset(pa.chunks[c].alloc, 0, sizeof pa.chunks[c].alloc);
    memset(pa.chunks[c].scav, 0xff, sizeof pa.chunks[c].scav);
  }
  update(c0, c1 - 1);

  pa.free_pages += npages;
  pa.scav_pages += npages;
  pa.total_pages += npages;
  if (c0 < pa.lo_chunk) pa.lo_chunk = c0;
  if (c1 > pa.end_chunk) pa.end_chunk = c1;
  if ((c0 << CHUNK_PAGES_SHIFT) < pa.search) pa.search = c0 << CHUNK_PAGES_SHIFT;
}

uintptr_t ga__pages_alloc(uintptr_t npages, uintptr_t align_pages,
                          uintptr_t *scav) {
  if (scav != NULL) *scav = 0;
  if (align_pages == 0) align_pages = 1;
  if (align_pages & (align_pages - 1)) fatal("alloc: alignment not a power of 2");
  if (npages == 0 || npages > pa.free_pages || align_pages >= MAX_PAGE)
    return 0;
  uintptr_t p = find(npages, align_pages);
  if (p == NOTFOUND) return 0;
  uintptr_t s = mark_range(p, npages, OP_ALLOC);
  pa.free_pages -= npages;
  pa.scav_pages -= s;
  if (scav != NULL) *scav = s;
  return p << PAGE_SHIFT;
}

void ga__pages_free(uintptr_t base, uintptr_t npages) {
  check_range(base, npages, "free: range is not inside the heap");
  uintptr_t p = base >> PAGE_SHIFT;
  mark_range(p, npages, OP_FREE);
  pa.free_pages += npages;
  if (p < pa.search) pa.search = p;
}

uintptr_t ga__pages_take_unscavenged(uintptr_t max_pages, uintptr_t *base) {
  if (base != NULL) *base = 0;
  if (!pa.ready || max_pages == 0) return 0;
  uintptr_t c = scavidx_highest();
  if (c == NCHUNKS) return 0;
  const chunk_t *ch = &pa.chunks[c];
  unsigned w = CHUNK_WORDS;
  uint64_t cand;
  do {
    w--;
    cand = ~ch->alloc[w] & ~ch->scav[w];
  } while (cand == 0 && w > 0);
  if (cand == 0) fatal("scavenge index names a chunk with nothing to scavenge");
  const uintptr_t top = (c << CHUNK_PAGES_SHIFT) + w * 64 + 63 -
                        (uintptr_t)__builtin_clzll(cand);
  return take_unscav_run_ending_at(top, max_pages, base);
}

void ga__pages_free_scavenged(uintptr_t base, uintptr_t npages) {
  check_range(base, npages, "free_scavenged: range is not inside the heap");
  uintptr_t p = base >> PAGE_SHIFT;
  mark_range(p, npages, OP_FREE_SCAV);
  pa.free_pages += npages;
  pa.scav_pages += npages;
  if (p < pa.search) pa.search = p;
}

/* Highest chunk <= c whose scavidx bit is set, or NCHUNKS: climb while the
 * word holding the position has no set bit at or below it, then descend. */
static uintptr_t scavidx_highest_le(uintptr_t c) {
  uintptr_t i = c;
  int k = 0;
  for (;;) {
    uint64_t w = pa.scavidx[k][i >> 6] & (~(uint64_t)0 >> (63 - (i & 63)));
    if (w != 0) {
      i = (i & ~(uintptr_t)63) + 63 - (uintptr_t)__builtin_clzll(w);
      break;
    }
    if ((i >> 6) == 0) return NCHUNKS;
    if (k == SCAV_LEVELS - 1) { /* the top level: the word before, whole */
      i = (i & ~(uintptr_t)63) - 1;
      continue;
    }
    i = (i >> 6) - 1; /* every bit of the words up to this one, one level up */
    k++;
  }
  for (; k > 0; k--) {
    uint64_t w = pa.scavidx[k - 1][i];
    i = i * 64 + 63 - (uintptr_t)__builtin_clzll(w);
  }
  return i;
}

/* Highest free, unscavenged page index < hi, or NOTFOUND. Visits one chunk
 * bitmap per chunk that the scavenge index names at or below hi. */
static uintptr_t find_unscav_below(uintptr_t hi) {
  if (!pa.ready || hi == 0) return NOTFOUND;
  uintptr_t p = hi - 1;
  if (p >= MAX_PAGE) p = MAX_PAGE - 1;
  for (;;) {
    uintptr_t c = scavidx_highest_le(p >> CHUNK_PAGES_SHIFT);
    if (c == NCHUNKS) return NOTFOUND;
    if (c < (p >> CHUNK_PAGES_SHIFT)) p = (c << CHUNK_PAGES_SHIFT) + CHUNK_PAGES - 1;
    const chunk_t *ch = &pa.chunks[c];
    unsigned w = (unsigned)((p & (CHUNK_PAGES - 1)) >> 6);
    uint64_t cand = ~ch->alloc[w] & ~ch->scav[w] &
                    (~(uint64_t)0 >> (63 - (p & 63)));
    while (cand == 0 && w > 0) {
      w--;
      cand = ~ch->alloc[w] & ~ch->scav[w];
    }
    if (cand != 0)
      return (c << CHUNK_PAGES_SHIFT) + w * 64 + 63 -
             (uintptr_t)__builtin_clzll(cand);
    if (c == 0) return NOTFOUND;
    p = (c << CHUNK_PAGES_SHIFT) - 1; /* nothing at or below p here */
  }
}

uintptr_t ga__pages_find_unscavenged(uintptr_t below) {
  uintptr_t p = find_unscav_below(below >> PAGE_SHIFT);
  return p == NOTFOUND ? 0 : p << PAGE_SHIFT;
}

uintptr_t ga__pages_take_unscavenged_in(uintptr_t lo, uintptr_t hi,
                                        uintptr_t max_pages, uintptr_t *base) {
  if (base != NULL) *base = 0;
  if (max_pages == 0 || hi <= lo) return 0;
  const uintptr_t lop = lo >> PAGE_SHIFT;
  const uintptr_t top = find_unscav_below(hi >> PAGE_SHIFT);
  if (top == NOTFOUND || top < lop) return 0;
  if (max_pages > top - lop + 1) max_pages = top - lop + 1;
  return take_unscav_run_ending_at(top, max_pages, base);
}

uintptr_t ga__pages_free_count(void) { return pa.free_pages; }
uintptr_t ga__pages_scavenged_count(void) { return pa.scav_pages; }
uintptr_t ga__pages_total_count(void) { return pa.total_pages; }

/* ---- verification ------------------------------------------------------- */

static int verify_fail(const char *what, uintptr_t a, uintptr_t b) {
  char buf[256], *e = buf;
  static const char pre[] = "goalloc: pages verify: ";
  memcpy(e, pre, sizeof pre - 1);
  e += sizeof pre - 1;
  size_t n = strlen(what);
  if (n > 160) n = 160;
  memcpy(e, what, n);
  e += n;
  uintptr_t v[2] = {a, b};
  for (int k = 0; k < 2; k++) {
    char tmp[16];
    int t = 0;
    uintptr_t x = v[k];
    do {
      tmp[t++] = "0123456789abcdef"[x & 15];
      x >>= 4;
    } while (x != 0);
    *e++ = ' ';
    *e++ = '0';
    *e++ = 'x';
    while (t > 0) *e++ = tmp[--t];
  }
  *e++ = '\n';
  ga__sys_write_err(buf, (size_t)(e - buf));
  return -1;
}

int ga__pages_verify(void) {
  if (!pa.ready) return 0;
  int bad = 0;
  uintptr_t nfree = 0, nscav = 0, ntotal = 0;
  /* Grown chunks: bitmaps against leaves, counters, invariants 2 and 3. */
  for (uintptr_t c = pa.lo_chunk; c < pa.end_chunk; c++) {
    if (pa.grown[c >> 6] == 0) {
      c |= 63;
      continue;
    }
    if (!is_grown(c)) continue;
    const chunk_t *ch = &pa.chunks[c];
    ntotal += CHUNK_PAGES;
    for (unsigned w = 0; w < CHUNK_WORDS; w++) {
      nfree += (uintptr_t)__builtin_popcountll(~ch->alloc[w]);
      nscav += (uintptr_t)__builtin_popcountll(~ch->alloc[w] & ch->scav[w]);
      if (ch->alloc[w] & ch->scav[w])
        bad |= verify_fail("allocated page marked scavenged (chunk, word)", c, w);
    }
    psum_t want = leaf_sum(ch->alloc);
    if (pa.sum[LEAF][c] != want)
      bad |= verify_fail("leaf summary (chunk, want)", c, want);
    const uintptr_t cbase = c << CHUNK_PAGES_SHIFT;
    if (pa.search > cbase) {
      unsigned lim = pa.search - cbase >= CHUNK_PAGES
                         ? (unsigned)CHUNK_PAGES
                         : (unsigned)(pa.search - cbase);
      unsigned z = next_zero(ch->alloc, 0);
      if (z < lim)
        bad |= verify_fail("free page below searchAddr (page, search)",
                           cbase + z, pa.search);
    }
    if (chunk_has_unscav(ch) != (int)((pa.scavidx[0][c >> 6] >> (c & 63)) & 1))
      bad |= verify_fail("scavenge index bit (chunk, has)", c,
                         (uintptr_t)chunk_has_unscav(ch));
  }
  if (nfree != pa.free_pages)
    bad |= verify_fail("free count (counted, kept)", nfree, pa.free_pages);
  if (nscav != pa.scav_pages)
    bad |= verify_fail("scavenged count (counted, kept)", nscav, pa.scav_pages);
  if (ntotal != pa.total_pages)
    bad |= verify_fail("total count (counted, kept)", ntotal, pa.total_pages);

  /* Inner entries above grown chunks (invariant 1); leaves of chunks that
   * were never grown but share a parent with grown ones must be 0. */
  if (pa.end_chunk > pa.lo_chunk) {
    for (uintptr_t c = pa.lo_chunk & ~(uintptr_t)7; c < pa.end_chunk; c += 8) {
      uint64_t g = (pa.grown[c >> 6] >> (c & 63)) & 0xff;
      if (g == 0) continue;
      for (unsigned k = 0; k < 8; k++)
        if (!(g >> k & 1) && pa.sum[LEAF][c + k] != 0)
          bad |= verify_fail("leaf of an ungrown chunk is not 0 (chunk, sum)",
                             c + k, pa.sum[LEAF][c + k]);
    }
    for (int l = LEAF - 1; l >= 0; l--) {
      const unsigned sh = level_shift(l);
      uintptr_t prev = UINTPTR_MAX;
      for (uintptr_t c = pa.lo_chunk; c < pa.end_chunk; c++) {
        if (pa.grown[c >> 6] == 0) {
          c |= 63;
          continue;
        }
        if (!is_grown(c) || (c >> sh) == prev) continue;
        uintptr_t i = prev = c >> sh;
        psum_t want = merge(&pa.sum[l + 1][i << LEVEL_BITS], level_cap_log(l + 1));
        if (pa.sum[l][i] != want)
          bad |= verify_fail("inner summary (level<<32|index, want)",
                             (uintptr_t)l << 32 | i, want);
      }
    }
    /* Every L0 entry outside the grown extent must be 0. */
    for (uintptr_t i = 0; i < level_entries(0); i++) {
      uintptr_t first = i << level_shift(0), last = first + (1u << level_shift(0));
      if ((last <= pa.lo_chunk || first >= pa.end_chunk) && pa.sum[0][i] != 0)
        bad |= verify_fail("L0 entry outside the heap is not 0 (index, sum)", i,
                           pa.sum[0][i]);
    }
  }

  /* The scavenge index names only grown chunks, and its upper levels
   * summarize the lower ones (invariant 4). */
  for (uintptr_t i = 0; i < scav_words(0); i++)
    if (pa.scavidx[0][i] & ~pa.grown[i])
      bad |= verify_fail("scavenge index names an ungrown chunk (word, bits)", i,
                         pa.scavidx[0][i] & ~pa.grown[i]);
  for (int k = 1; k < SCAV_LEVELS; k++)
    for (uintptr_t i = 0; i < scav_words(k - 1); i++) {
      int want = pa.scavidx[k - 1][i] != 0;
      int got = (int)((pa.scavidx[k][i >> 6] >> (i & 63)) & 1);
      if (want != got)
        bad |= verify_fail("scavenge index inner bit (level<<32|index, want)",
                           (uintptr_t)k << 32 | i, (uintptr_t)want);
    }
  return bad ? -1 : 0;
}
