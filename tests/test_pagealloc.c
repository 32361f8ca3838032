/*
 * test_pagealloc.c — the page allocator (src/mpagealloc.c) driven directly
 * on fake address ranges, as Go's mpagealloc_test does: the allocator only
 * keeps bookkeeping and never touches the pages, so any chunk-aligned range
 * below 2^47 will do (nothing is mapped there).
 *
 * Each scenario starts from ga__pages_reset(). The random scenarios run
 * against a reference model (a byte per page, first fit by a linear scan)
 * and check the exact address of every allocation, the scavenged counts,
 * the scavenger's choice, the counters, and ga__pages_verify(). The last
 * scenario is a performance sanity check on a 32 GiB fragmented heap: it
 * prints timings but asserts only correctness.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpagealloc.h"
#include "os.h"

#define CHECK(c)                                                           \
  do {                                                                     \
    if (!(c)) {                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

#define CHECK_EQ(a, b)                                                        \
  do {                                                                        \
    uintptr_t a_ = (uintptr_t)(a), b_ = (uintptr_t)(b);                       \
    if (a_ != b_) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (0x%lx != 0x%lx)\n",     \
              __FILE__, __LINE__, #a, #b, (unsigned long)a_, (unsigned long)b_); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define PG ((uintptr_t)8192)
#define CHUNK ((uintptr_t)512)
#define CHUNK_BYTES (CHUNK * PG)
#define HEAP ((uintptr_t)0x100000000000) /* 2^44: a 16 GiB (L0) boundary */

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}
static uintptr_t rnd_in(uintptr_t lo, uintptr_t hi) { /* [lo, hi] */
  return lo + (uintptr_t)(rnd() % (hi - lo + 1));
}

static double now_ms(void) { return (double)ga__sys_nanotime() / 1e6; }

static void fresh(void) {
  ga__pages_reset();
  ga__pages_init();
  CHECK_EQ(ga__pages_total_count(), 0);
  CHECK_EQ(ga__pages_free_count(), 0);
}

static uintptr_t alloc(uintptr_t n, uintptr_t align, uintptr_t *scav) {
  uintptr_t s = 12345;
  uintptr_t p = ga__pages_alloc(n, align, &s);
  if (scav != NULL) *scav = s;
  return p;
}

/* ---- deterministic scenarios ------------------------------------------- */

static void test_basic(void) {
  fresh();
  uintptr_t s;
  CHECK_EQ(alloc(1, 1, &s), 0); /* empty heap */
  ga__pages_grow(HEAP, CHUNK);
  CHECK_EQ(ga__pages_total_count(), CHUNK);
  CHECK_EQ(ga__pages_free_count(), CHUNK);
  CHECK_EQ(ga__pages_scavenged_count(), CHUNK);
  CHECK_EQ(alloc(1, 1, &s), HEAP);
  CHECK_EQ(s, 1);
  CHECK_EQ(alloc(1, 1, &s), HEAP + PG);
  CHECK_EQ(alloc(3, 1, &s), HEAP + 2 * PG);
  CHECK_EQ(s, 3);
  ga__pages_free(HEAP, 1);
  CHECK_EQ(ga__pages_scavenged_count(), CHUNK - 5);
  CHECK_EQ(alloc(1, 1, &s), HEAP); /* first fit reuses the hole */
  CHECK_EQ(s, 0);                  /* freed pages are not scavenged */
  ga__pages_free(HEAP + PG, 1);
  CHECK_EQ(alloc(2, 1, &s), HEAP + 5 * PG); /* the 1-page hole is too small */
  CHECK_EQ(alloc(1, 1, &s), HEAP + PG);
  /* Fill the chunk exactly, then exhaustion returns 0. */
  uintptr_t left = ga__pages_free_count();
  CHECK_EQ(left, CHUNK - 7);
  CHECK_EQ(alloc(left + 1, 1, &s), 0);
  CHECK_EQ(alloc(left, 1, &s), HEAP + 7 * PG);
  CHECK_EQ(s, left);
  CHECK_EQ(ga__pages_free_count(), 0);
  CHECK_EQ(alloc(1, 1, &s), 0);
  CHECK_EQ(s, 0);
  CHECK(ga__pages_verify() == 0);
  /* Free everything again in pieces. */
  ga__pages_free(HEAP + 7 * PG, left);
  for (uintptr_t i = 0; i < 7; i++) ga__pages_free(HEAP + i * PG, 1);
  CHECK_EQ(ga__pages_free_count(), CHUNK);
  CHECK_EQ(alloc(CHUNK, 1, &s), HEAP);
  CHECK_EQ(s, 0); /* every page has been allocated once */
  CHECK(ga__pages_verify() == 0);
}

static void test_chunks_and_large(void) {
  fresh();
  uintptr_t s;
  ga__pages_grow(HEAP, 16 * CHUNK); /* 64 MiB */
  CHECK_EQ(alloc(300, 1, &s), HEAP);
  CHECK_EQ(alloc(300, 1, &s), HEAP + 300 * PG); /* spans chunks 0 and 1 */
  CHECK_EQ(alloc(2000, 1, &s), HEAP + 600 * PG); /* spans chunks 1..5 */
  CHECK_EQ(s, 2000);
  CHECK(ga__pages_verify() == 0);
  ga__pages_free(HEAP + 300 * PG, 300);
  CHECK_EQ(alloc(301, 1, &s), HEAP + 2600 * PG); /* hole is 300 */
  CHECK_EQ(alloc(300, 1, &s), HEAP + 300 * PG);
  CHECK_EQ(s, 0);
  /* Free a long run straddling chunk boundaries and take it back whole. */
  ga__pages_free(HEAP + 600 * PG, 2000);
  CHECK_EQ(alloc(2000, 1, &s), HEAP + 600 * PG);
  /* Exhaustion with many pages still free, but not in one run. */
  uintptr_t rest = 16 * CHUNK - 2901;
  CHECK_EQ(ga__pages_free_count(), rest);
  CHECK_EQ(alloc(rest + 1, 1, &s), 0);
  CHECK_EQ(alloc(rest, 1, &s), HEAP + 2901 * PG);
  CHECK_EQ(alloc(1, 1, &s), 0);
  /* A run of thousands of pages over whole chunks in the middle. */
  ga__pages_free(HEAP + 1000 * PG, 5000);
  CHECK_EQ(alloc(5001, 1, &s), 0);
  CHECK_EQ(alloc(5000, 1, &s), HEAP + 1000 * PG);
  CHECK(ga__pages_verify() == 0);
}

static void test_alignment(void) {
  fresh();
  uintptr_t s;
  ga__pages_grow(HEAP, 4 * CHUNK);
  /* Only pages [64, 72) and [200, 2048) free. An aligned fit of 8 at 8
   * pages exists at 64 although no run of 8 + 8 - 1 = 15 starts there. */
  CHECK_EQ(alloc(4 * CHUNK, 1, &s), HEAP);
  ga__pages_free(HEAP + 64 * PG, 8);
  ga__pages_free(HEAP + 200 * PG, 2048 - 200);
  CHECK_EQ(alloc(8, 64, &s), HEAP + 64 * PG);
  ga__pages_free(HEAP + 64 * PG, 8);
  CHECK_EQ(alloc(8, 8, &s), HEAP + 64 * PG);
  ga__pages_free(HEAP + 64 * PG, 8);
  /* No 128-aligned page in [64, 72): the first fit is 256, then 384. */
  CHECK_EQ(alloc(8, 128, &s), HEAP + 256 * PG);
  CHECK_EQ(alloc(1, 128, &s), HEAP + 384 * PG);
  /* align 1 is plain first fit: 64. */
  CHECK_EQ(alloc(3, 1, &s), HEAP + 64 * PG);
  CHECK_EQ(alloc(5, 1, &s), HEAP + 67 * PG);
  CHECK_EQ(alloc(1, 1, &s), HEAP + 200 * PG);
  /* Chunk alignment: 512 (the run is [385, 2048)); 2048-aligned fits
   * nowhere (heap page 0 is taken and page 2048 is outside). */
  CHECK_EQ(alloc(512, 512, &s), HEAP + 512 * PG);
  CHECK_EQ(alloc(1, 2048, &s), 0);
  CHECK(ga__pages_verify() == 0);

  /* An aligned fit exists only in a run of exactly n pages. */
  fresh();
  ga__pages_grow(HEAP, 8 * CHUNK);
  CHECK_EQ(alloc(8 * CHUNK, 1, &s), HEAP);
  for (uintptr_t i = 0; i < 8 * CHUNK - 64; i += 64) ga__pages_free(HEAP + (i + 3) * PG, 40);
  ga__pages_free(HEAP + 4096 * PG - 32 * PG, 32); /* [4064, 4096) */
  CHECK_EQ(alloc(32, 32, &s), HEAP + 4064 * PG);
  CHECK(ga__pages_verify() == 0);
}

/* More misaligned candidates than the search's budget (see ALIGN_BUDGET in
 * mpagealloc.c): 400 chunks each with a free run [3, 43) that holds no
 * 32-aligned fit of 32. Over budget, the search takes the aligned part of the
 * first run of 32 + 32 - 1 = 63 pages; without such a run it must still find
 * the only aligned fit. */
static void test_align_budget(void) {
  fresh();
  uintptr_t s;
  const uintptr_t nc = 400;
  ga__pages_grow(HEAP, nc * CHUNK);
  CHECK_EQ(alloc(nc * CHUNK, 1, &s), HEAP);
  for (uintptr_t c = 0; c < nc; c++) ga__pages_free(HEAP + (c * CHUNK + 3) * PG, 40);
  ga__pages_free(HEAP + (300 * CHUNK + 100) * PG, 63);
  ga__pages_free(HEAP + (399 * CHUNK + 64) * PG, 32);
  double t0 = now_ms();
  CHECK_EQ(alloc(32, 32, &s), HEAP + (300 * CHUNK + 128) * PG);
  double t1 = now_ms();
  CHECK_EQ(alloc(32, 32, &s), HEAP + (399 * CHUNK + 64) * PG);
  double t2 = now_ms();
  CHECK_EQ(alloc(32, 32, &s), 0);
  double t3 = now_ms();
  CHECK_EQ(alloc(40, 1, &s), HEAP + 3 * PG); /* align 1 unaffected */
  CHECK(ga__pages_verify() == 0);
  printf("  align budget: over budget %.3f ms, exhaustive hit %.3f ms, "
         "exhaustive miss %.3f ms (%lu chunks)\n",
         t1 - t0, t2 - t1, t3 - t2, (unsigned long)nc);
}

static void test_huge_alignment(void) {
  fresh();
  uintptr_t s;
  const uintptr_t GiB = (uintptr_t)1 << 30, GP = GiB / PG; /* 131072 pages */
  /* A 3 GiB heap starting 4 MiB after a 1 GiB boundary. */
  ga__pages_grow(HEAP + CHUNK_BYTES, 3 * GP);
  CHECK_EQ(alloc(1, GP, &s), HEAP + GiB);
  CHECK_EQ(alloc(GP, GP, &s), HEAP + 2 * GiB);
  CHECK_EQ(s, GP);
  CHECK_EQ(alloc(GP, GP, &s), 0); /* [3 GiB, 4 GiB) ends 4 MiB short */
  CHECK_EQ(alloc(1, 1, &s), HEAP + CHUNK_BYTES);
  CHECK(ga__pages_verify() == 0);

  /* Exactly one aligned 1 GiB run and no run of 2 GiB - 1 page: must not
   * fail. The heap is [16 GiB - 1 GiB, 16 GiB + 1 GiB) around an L0 edge with
   * one page taken in the first GiB. */
  fresh();
  ga__pages_grow(HEAP - GiB, 2 * GP);
  CHECK_EQ(alloc(1, 1, &s), HEAP - GiB);
  CHECK_EQ(alloc(1, 1, &s), HEAP - GiB + PG);
  CHECK_EQ(alloc(GP, GP, &s), HEAP);
  ga__pages_free(HEAP, GP);
  /* And with the free run split across the two L0 entries. */
  CHECK_EQ(alloc(GP / 2, 1, &s), HEAP - GiB + 2 * PG);
  CHECK_EQ(alloc(GP, GP, &s), HEAP);
  CHECK(ga__pages_verify() == 0);
}

static void test_discontiguous(void) {
  fresh();
  uintptr_t s;
  /* Two regions 64 TiB apart (different L0 entries, thousands between). */
  const uintptr_t far = (uintptr_t)0x500000000000;
  ga__pages_grow(far, 2 * CHUNK);
  CHECK_EQ(alloc(1, 1, &s), far);
  ga__pages_grow(HEAP, CHUNK); /* below: search must come down */
  CHECK_EQ(alloc(1, 1, &s), HEAP);
  CHECK_EQ(alloc(CHUNK, 1, &s), far + PG); /* no room in the low region */
  CHECK_EQ(alloc(CHUNK - 1, 1, &s), HEAP + PG);
  CHECK_EQ(alloc(CHUNK, 1, &s), 0); /* runs never bridge the hole */
  CHECK_EQ(alloc(CHUNK - 1, 1, &s), far + (CHUNK + 1) * PG);
  CHECK_EQ(alloc(1, 1, &s), 0);
  ga__pages_free(far + 5 * PG, 10);
  ga__pages_free(HEAP + 100 * PG, 1);
  CHECK_EQ(alloc(2, 1, &s), far + 5 * PG);
  CHECK_EQ(alloc(1, 1, &s), HEAP + 100 * PG);
  /* Adjacent grows join into one run. */
  ga__pages_grow(HEAP + CHUNK_BYTES, CHUNK);
  ga__pages_grow(HEAP + 2 * CHUNK_BYTES, CHUNK);
  CHECK_EQ(alloc(CHUNK + 10, 1, &s), HEAP + CHUNK_BYTES);
  CHECK(ga__pages_verify() == 0);
}

static void test_scavenger(void) {
  fresh();
  uintptr_t s, b;
  ga__pages_grow(HEAP, 4 * CHUNK);
  CHECK_EQ(ga__pages_take_unscavenged(8, &b), 0); /* all scavenged */
  CHECK_EQ(alloc(4 * CHUNK, 1, &s), HEAP);
  CHECK_EQ(ga__pages_scavenged_count(), 0);
  ga__pages_free(HEAP + 10 * PG, 5);
  ga__pages_free(HEAP + 500 * PG, 30); /* crosses into chunk 1 */
  ga__pages_free(HEAP + 1500 * PG, 3);
  /* Highest first, at most max pages, taken from the top of the run. */
  CHECK_EQ(ga__pages_take_unscavenged(2, &b), 2);
  CHECK_EQ(b, HEAP + 1501 * PG);
  CHECK_EQ(ga__pages_free_count(), 5 + 30 + 1);
  ga__pages_free_scavenged(b, 2);
  CHECK_EQ(ga__pages_scavenged_count(), 2);
  CHECK_EQ(ga__pages_take_unscavenged(64, &b), 1);
  CHECK_EQ(b, HEAP + 1500 * PG);
  ga__pages_free_scavenged(b, 1);
  CHECK_EQ(ga__pages_take_unscavenged(64, &b), 30); /* across the chunk edge */
  CHECK_EQ(b, HEAP + 500 * PG);
  CHECK(ga__pages_verify() == 0);
  ga__pages_free_scavenged(b, 30);
  CHECK_EQ(ga__pages_take_unscavenged(64, &b), 5);
  CHECK_EQ(b, HEAP + 10 * PG);
  ga__pages_free_scavenged(b, 5);
  CHECK_EQ(ga__pages_take_unscavenged(64, &b), 0);
  CHECK_EQ(ga__pages_scavenged_count(), 38);
  /* Allocating over scavenged and unscavenged pages reports the split. */
  ga__pages_free(HEAP + 15 * PG, 1);
  CHECK_EQ(alloc(6, 1, &s), HEAP + 10 * PG);
  CHECK_EQ(s, 5);
  CHECK_EQ(ga__pages_scavenged_count(), 33);
  CHECK(ga__pages_verify() == 0);
}

/* ---- random operations against a model ---------------------------------- */

enum { M_UNGROWN = 0, M_FREE = 1, M_ALLOC = 2 };

typedef struct {
  uintptr_t base; /* page index of model page 0 (chunk aligned) */
  uintptr_t npages;
  uint8_t *st, *scav;
  uintptr_t nfree, nscav, ntotal;
} model_t;

typedef struct {
  uintptr_t page, n; /* model page index */
} block_t;

static uintptr_t m_find(const model_t *m, uintptr_t n, uintptr_t a) {
  uintptr_t i = 0;
  while (i < m->npages) {
    while (i < m->npages && m->st[i] != M_FREE) i++;
    uintptr_t s = i;
    while (i < m->npages && m->st[i] == M_FREE) i++;
    uintptr_t b = (((m->base + s) + a - 1) & ~(a - 1)) - m->base;
    if (i > s && b + n <= i) return b;
  }
  return UINTPTR_MAX;
}

static void m_set(model_t *m, uintptr_t p, uintptr_t n, int state, int scav) {
  for (uintptr_t i = p; i < p + n; i++) {
    if (m->st[i] == M_FREE) m->nfree--;
    if (m->st[i] == M_FREE && m->scav[i]) m->nscav--;
    m->st[i] = (uint8_t)state;
    m->scav[i] = (uint8_t)scav;
    if (state == M_FREE) m->nfree++;
    if (state == M_FREE && scav) m->nscav++;
  }
}

static void m_check_counters(const model_t *m) {
  CHECK_EQ(ga__pages_free_count(), m->nfree);
  CHECK_EQ(ga__pages_scavenged_count(), m->nscav);
  CHECK_EQ(ga__pages_total_count(), m->ntotal);
}

/* Grow a random ungrown run of up to 4 chunks; returns 0 if none left. */
static int m_grow_random(model_t *m) {
  uintptr_t nchunks = m->npages / CHUNK, start = rnd_in(0, nchunks - 1);
  for (uintptr_t k = 0; k < nchunks; k++) {
    uintptr_t c = (start + k) % nchunks;
    if (m->st[c * CHUNK] != M_UNGROWN) continue;
    uintptr_t len = 1, want = rnd_in(1, 4);
    while (len < want && c + len < nchunks && m->st[(c + len) * CHUNK] == M_UNGROWN)
      len++;
    ga__pages_grow((m->base + c * CHUNK) * PG, len * CHUNK);
    m_set(m, c * CHUNK, len * CHUNK, M_FREE, 1);
    m->ntotal += len * CHUNK;
    return 1;
  }
  return 0;
}

static void test_random(uint64_t seed, uintptr_t window_chunks, int ops) {
  fresh();
  rng_state = seed;
  model_t m;
  /* The window straddles the 16 GiB boundary at HEAP. */
  m.base = (HEAP - 8 * CHUNK_BYTES) / PG;
  m.npages = window_chunks * CHUNK;
  m.st = calloc(m.npages, 1);
  m.scav = calloc(m.npages, 1);
  m.nfree = m.nscav = m.ntotal = 0;
  block_t *blocks = malloc(sizeof(block_t) * (size_t)(ops + 1));
  block_t taken[8];
  int nblocks = 0, ntaken = 0;
  CHECK(m.st && m.scav && blocks);
  for (int g = 0; g < 3; g++) m_grow_random(&m);
  uintptr_t nalloc = 0, nfail = 0, naligned = 0, nscav_taken = 0;

  for (int op = 0; op < ops; op++) {
    uint64_t r = rnd() % 100;
    if (r < 50) {
      uint64_t q = rnd() % 100;
      uintptr_t n = q < 60 ? rnd_in(1, 8)
                  : q < 85 ? rnd_in(9, 128)
                  : q < 96 ? rnd_in(129, 1100)
                           : rnd_in(1100, 4000);
      uintptr_t a = 1;
      q = rnd() % 100;
      if (q >= 70) a = (uintptr_t)1 << rnd_in(1, 8);
      if (q >= 95) a = (uintptr_t)1 << rnd_in(9, 13);
      uintptr_t want = m_find(&m, n, a), s;
      uintptr_t got = alloc(n, a, &s);
      if (want == UINTPTR_MAX) {
        CHECK_EQ(got, 0);
        nfail++;
        if (rnd() % 4 == 0) m_grow_random(&m); /* the caller grows */
      } else {
        CHECK_EQ(got, (m.base + want) * PG);
        uintptr_t sc = 0;
        for (uintptr_t i = want; i < want + n; i++) sc += m.scav[i];
        CHECK_EQ(s, sc);
        m_set(&m, want, n, M_ALLOC, 0);
        blocks[nblocks++] = (block_t){want, n};
        nalloc++;
        naligned += a > 1;
      }
    } else if (r < 88) {
      if (nblocks == 0) continue;
      int k = (int)(rnd() % (uint64_t)nblocks);
      block_t b = blocks[k];
      blocks[k] = blocks[--nblocks];
      /* Sometimes free only a part (spans may be split by the caller). */
      if (b.n > 2 && rnd() % 4 == 0) {
        uintptr_t cut = rnd_in(1, b.n - 1);
        blocks[nblocks++] = (block_t){b.page + cut, b.n - cut};
        b.n = cut;
      }
      ga__pages_free((m.base + b.page) * PG, b.n);
      m_set(&m, b.page, b.n, M_FREE, 0);
    } else if (r < 98) {
      /* Scavenger: take the highest free unscavenged run. */
      if (ntaken == 8 || (ntaken > 0 && rnd() % 2)) {
        block_t t = taken[--ntaken];
        ga__pages_free_scavenged((m.base + t.page) * PG, t.n);
        m_set(&m, t.page, t.n, M_FREE, 1);
      } else {
        uintptr_t max = rnd_in(1, 700), top = m.npages, b;
        while (top > 0 && !(m.st[top - 1] == M_FREE && !m.scav[top - 1])) top--;
        uintptr_t len = 0;
        while (len < max && top - len > 0 && m.st[top - len - 1] == M_FREE &&
               !m.scav[top - len - 1])
          len++;
        uintptr_t got = ga__pages_take_unscavenged(max, &b);
        CHECK_EQ(got, len);
        if (len > 0) {
          CHECK_EQ(b, (m.base + top - len) * PG);
          m_set(&m, top - len, len, M_ALLOC, 0);
          taken[ntaken++] = (block_t){top - len, len};
          nscav_taken += len;
        }
      }
    } else {
      m_grow_random(&m);
    }
    m_check_counters(&m);
    if (op % 500 == 0) CHECK(ga__pages_verify() == 0);
  }
  CHECK(ga__pages_verify() == 0);
  /* Drain: free everything and check that the heap is one piece again. */
  while (ntaken > 0) {
    block_t t = taken[--ntaken];
    ga__pages_free_scavenged((m.base + t.page) * PG, t.n);
    m_set(&m, t.page, t.n, M_FREE, 1);
  }
  while (nblocks > 0) {
    block_t b = blocks[--nblocks];
    ga__pages_free((m.base + b.page) * PG, b.n);
    m_set(&m, b.page, b.n, M_FREE, 0);
  }
  m_check_counters(&m);
  CHECK_EQ(ga__pages_free_count(), ga__pages_total_count());
  CHECK(ga__pages_verify() == 0);
  printf("  random seed %llu: %d ops in %lu chunks: %lu allocs (%lu aligned), "
         "%lu failed, %lu pages scavenged\n",
         (unsigned long long)seed, ops, (unsigned long)window_chunks,
         (unsigned long)nalloc, (unsigned long)naligned, (unsigned long)nfail,
         (unsigned long)nscav_taken);
  free(blocks);
  free(m.st);
  free(m.scav);
}

/* ---- performance sanity: a 32 GiB heap full of 1-page holes ------------- */

static void test_perf(int ops) {
  fresh();
  rng_state = 42;
  const uintptr_t N = (uintptr_t)4 << 20; /* 4 Mi pages = 32 GiB */
  uint64_t *used = calloc(N / 64, 8);     /* model: 1 = allocated */
  uint64_t *orig = calloc(N / 64, 8);     /* allocated by the setup */
  block_t *blocks = malloc(sizeof(block_t) * (size_t)ops);
  CHECK(used && orig && blocks);
#define BIT(v, i) (((v)[(i) >> 6] >> ((i) & 63)) & 1)
#define SET(v, i) ((v)[(i) >> 6] |= (uint64_t)1 << ((i) & 63))
#define CLR(v, i) ((v)[(i) >> 6] &= ~((uint64_t)1 << ((i) & 63)))
  uintptr_t s;
  double t0 = now_ms();
  ga__pages_grow(HEAP, N);
  CHECK_EQ(alloc(N, 1, &s), HEAP);
  CHECK_EQ(s, N);
  double t1 = now_ms();
  for (uintptr_t i = 0; i < N; i += 2) ga__pages_free(HEAP + i * PG, 1);
  for (uintptr_t i = 1; i < N; i += 2) {
    SET(used, i);
    SET(orig, i);
  }
  double t2 = now_ms();
  CHECK(ga__pages_verify() == 0);
  double t3 = now_ms();
  uintptr_t nfree = N / 2, hint = 0, nok = 0, nzero = 0;
  for (int op = 0; op < ops; op++) {
    uint64_t r = rnd() % 100;
    if (r < 60) {
      uintptr_t n = 1, a = 1;
      if (r >= 40) n = rnd_in(2, 16);
      if (r >= 52) a = (uintptr_t)1 << rnd_in(1, 6);
      if (r >= 58) n = rnd_in(100, 3000);
      uintptr_t got = alloc(n, a, &s);
      if (n == 1 && a == 1) { /* first fit is the lowest free page */
        while (hint < N && BIT(used, hint)) hint++;
        CHECK_EQ(got, hint < N ? HEAP + hint * PG : 0);
      }
      if (got == 0) {
        nzero++;
        continue;
      }
      uintptr_t p = (got - HEAP) / PG;
      CHECK(got % (a * PG) == 0 && p + n <= N);
      for (uintptr_t i = p; i < p + n; i++) {
        CHECK(!BIT(used, i));
        SET(used, i);
      }
      nfree -= n;
      blocks[nok++] = (block_t){p, n};
    } else if (r < 80) {
      /* Free one of the setup's pages: joins holes into longer runs. */
      uintptr_t i = rnd_in(0, N / 2 - 1) * 2 + 1;
      if (!BIT(orig, i)) continue;
      CLR(orig, i);
      CLR(used, i);
      ga__pages_free(HEAP + i * PG, 1);
      nfree++;
      if (i < hint) hint = i;
    } else {
      if (nok == 0) continue;
      uintptr_t k = (uintptr_t)(rnd() % nok);
      block_t b = blocks[k];
      blocks[k] = blocks[--nok];
      for (uintptr_t i = b.page; i < b.page + b.n; i++) CLR(used, i);
      ga__pages_free(HEAP + b.page * PG, b.n);
      nfree += b.n;
      if (b.page < hint) hint = b.page;
    }
    if (op % 1000 == 0) {
      uintptr_t base, got = ga__pages_take_unscavenged(16, &base);
      if (got > 0) ga__pages_free_scavenged(base, got);
    }
  }
  double t4 = now_ms();
  CHECK_EQ(ga__pages_free_count(), nfree);
  CHECK(ga__pages_verify() == 0);
  printf("  perf: 32 GiB heap: grow+alloc %.1f ms, %lu 1-page frees %.1f ms "
         "(%.0f ns each), verify %.1f ms\n",
         t1 - t0, (unsigned long)(N / 2), t2 - t1, (t2 - t1) * 1e6 / (double)(N / 2),
         t3 - t2);
  printf("  perf: %d mixed ops on the fragmented heap: %.1f ms (%.0f ns/op), "
         "%lu allocations failed\n",
         ops, t4 - t3, (t4 - t3) * 1e6 / ops, (unsigned long)nzero);
  free(blocks);
  free(used);
  free(orig);
}

int main(int argc, char **argv) {
  (void)argv;
  double t0 = now_ms();
  test_basic();
  test_chunks_and_large();
  test_alignment();
  test_align_budget();
  test_huge_alignment();
  test_discontiguous();
  test_scavenger();
  printf("  deterministic scenarios: ok\n");
  int ops = argc > 1 ? 60000 : 15000;
  test_random(1, 24, ops);
  test_random(2, 48, ops);
  test_random(3, 8, ops);
  test_perf(100000);
  ga__pages_reset();
  printf("test_pagealloc: ok (%.0f ms)\n", now_ms() - t0);
  return 0;
}
