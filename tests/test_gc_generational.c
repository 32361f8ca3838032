/*
 * test_gc_generational — minor cycles (sticky marks, mgc.c): objects that
 * survived a cycle keep their marks and are not traced again, so a young
 * object reachable only from an old one must be found through the pages
 * the program wrote since (the write watch's remembered set).
 *
 * With concurrent marking forced (re-executed with GOALLOC_GC_CONCURRENT=2,
 * since small heaps are otherwise marked stop-the-world, which is always a
 * major cycle) and minor cycles whenever possible
 * (GOALLOC_GC_GENERATIONAL=2), an old structure is built and made old by ga_collect. Then,
 * while automatic cycles run (most of them minor), young objects are hung
 * only from old ones:
 *   - from old nodes, rewired every round (their pages written again);
 *   - from old nodes freed explicitly and allocated again in between (a
 *     slot whose stale mark could hide a young object from the marker);
 *   - from a large old array of pointers (a span of its own);
 *   - from all of a wide set of old nodes at once, now and then: more
 *     marked objects on the written pages than one rescan pass queues
 *     (mgcmark.c RESCAN_QUEUE), so that the rest are scanned in place;
 * and every young object's contents are checked after the cycles: a young
 * object the collector missed is freed, its slot reused by the garbage
 * allocated meanwhile, and its pattern gone. Then the garbage: minor cycles
 * must keep the heap bounded while the test allocates 40 times its live
 * size, and the old structure, once dropped, must be reclaimed by the
 * next major cycle (ga_collect).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "goalloc.h"
#include "mgc.h"
#include "testutil.h"

#define NOLD 4096
#define NBIG 65536 /* pointers in the large old array: 512 KiB */
#define YSIZE 48
#define NWIDE 40000 /* old nodes all rewired at once: more than a rescan queues */

typedef struct onode {
  struct onode *self;
  void *child; /* the only reference to a young object */
  uint64_t seed;
} onode;

static onode **old;    /* NOLD old nodes */
static onode **wide;   /* NWIDE old nodes */
static void **big;     /* the large old array */
static uint64_t *bigseed;

static void *young(uint64_t seed) {
  void *y = ga_malloc(YSIZE);
  CHECK(y != NULL);
  fill_pattern(y, YSIZE, seed);
  return y;
}

static onode *new_onode(uint64_t seed) {
  onode *o = ga_malloc(sizeof *o);
  CHECK(o != NULL);
  o->self = o;
  o->seed = seed;
  o->child = young(seed);
  return o;
}

/* Garbage of the young objects' size class, so that a slot freed by
 * mistake is reused and overwritten. */
static void churn(long n) {
  for (long i = 0; i < n; i++) {
    void *g = ga_malloc(YSIZE);
    CHECK(g != NULL);
    memset(g, 0xa5, YSIZE);
  }
}

static uint64_t minors(void) {
  ga_stats st = {.version = GA_STATS_VERSION};
  CHECK(ga_read_stats(&st) == 0);
  return st.num_minor_gc;
}

static uint64_t heap_alloc(void) {
  ga_stats st = {.version = GA_STATS_VERSION};
  CHECK(ga_read_stats(&st) == 0);
  return st.heap_alloc;
}

static void verify(const char *when) {
  for (int i = 0; i < NOLD; i++) {
    CHECKF(old[i]->self == old[i], "%s: old node %d overwritten", when, i);
    CHECKF(check_pattern(old[i]->child, YSIZE, old[i]->seed),
           "%s: young object of old node %d lost (seed %llu)", when, i,
           (unsigned long long)old[i]->seed);
  }
  for (int k = 0; k < NBIG; k += 61)
    CHECKF(check_pattern(big[k], YSIZE, bigseed[k]), "%s: young object of big[%d] lost",
           when, k);
  for (int i = 0; i < NWIDE; i++)
    CHECKF(check_pattern(wide[i]->child, YSIZE, wide[i]->seed),
           "%s: young object of wide node %d lost", when, i);
}

int main(int argc, char **argv) {
  /* Minor cycles whenever possible (the automatic choice depends on how
   * much each one finds young), so that the cases below meet them. */
  if (getenv("GOALLOC_GC_GENERATIONAL") == NULL) {
    setenv("GOALLOC_GC_GENERATIONAL", "2", 1);
    unsetenv("GOALLOC_GC_CONCURRENT");
  }
  reexec_concurrent(argv);
  bool valgrind = under_valgrind();
  (void)argc;
  ga_set_gc_percent(50);
  old = ga_malloc(NOLD * sizeof *old);
  big = ga_malloc(NBIG * sizeof *big);
  bigseed = ga_malloc_atomic(NBIG * sizeof *bigseed);
  wide = ga_malloc(NWIDE * sizeof *wide);
  CHECK(old != NULL && big != NULL && bigseed != NULL && wide != NULL);
  uint64_t seed = 1;
  for (int i = 0; i < NOLD; i++) old[i] = new_onode(seed++);
  for (int i = 0; i < NWIDE; i++) wide[i] = new_onode(seed++);
  for (int k = 0; k < NBIG; k++) {
    bigseed[k] = seed++;
    big[k] = young(bigseed[k]);
  }
  ga_collect(); /* a major cycle: everything above is old now */
  uint64_t m0 = minors();

  rng_t r = {0x9e3779b97f4a7c15u};
  long rounds = scaled(400);
  for (long round = 0; round < rounds; round++) {
    /* Rewire: a young child for some old nodes. */
    for (int k = 0; k < 64; k++) {
      onode *o = old[rng_below(&r, NOLD)];
      o->seed = seed++;
      o->child = young(o->seed);
    }
    /* Free an old node and put a new one (likely in the same slot) in its
     * place, with a young child. */
    for (int k = 0; k < 8; k++) {
      int i = (int)rng_below(&r, NOLD);
      ga_free(old[i]);
      old[i] = new_onode(seed++);
    }
    /* Young objects hung from the large old array. */
    for (int k = 0; k < 64; k++) {
      int i = (int)rng_below(&r, NBIG);
      bigseed[i] = seed++;
      big[i] = young(bigseed[i]);
    }
    /* Now and then a young child for every wide node at once. */
    if (round % 50 == 25)
      for (int i = 0; i < NWIDE; i++) {
        wide[i]->seed = seed++;
        wide[i]->child = young(wide[i]->seed);
      }
    churn(2000);
    if ((round & 63) == 0) verify("during the rounds");
  }
  uint64_t nminor = minors() - m0;
  verify("after the rounds");
  /* Minor cycles need the write watch (a kernel with userfaultfd's
   * asynchronous write protection); without it every cycle is major. */
  if (ga__gc_sticky && ga__ww_enabled() && !valgrind && test_scale() >= 0.5 &&
      strcmp(getenv("GOALLOC_GC_GENERATIONAL"), "2") == 0)
    CHECKF(nminor >= 3, "only %llu minor collections", (unsigned long long)nminor);

  /* Young garbage: minor cycles alone keep the heap bounded. */
  uint64_t live = heap_alloc();
  uint64_t peak = 0;
  long n = (long)(40 * live / YSIZE);
  if (valgrind) n /= 50;
  for (long done = 0; done < n; done += 10000) {
    churn(10000);
    uint64_t h = heap_alloc();
    if (h > peak) peak = h;
  }
  CHECKF(peak < 4 * live, "heap %llu bytes with %llu live",
         (unsigned long long)peak, (unsigned long long)live);
  verify("after the garbage");

  /* Old garbage: a major cycle (ga_collect) reclaims the dropped
   * structure, minor cycles or not. */
  uint64_t before = heap_alloc();
  for (int i = 0; i < NOLD; i++) old[i] = NULL;
  for (int k = 0; k < NBIG; k++) big[k] = NULL;
  for (int i = 0; i < NWIDE; i++) wide[i] = NULL;
  ga_collect();
  uint64_t after = heap_alloc();
  uint64_t dropped = (uint64_t)(NOLD + NBIG) * 48;
  CHECKF(before - after >= dropped / 2, "a major cycle freed %llu of %llu bytes",
         (unsigned long long)(before > after ? before - after : 0),
         (unsigned long long)dropped);
  printf("gc_generational: ok (%llu minor collections; heap peak %llu KiB with %llu KiB "
         "live; major freed %llu KiB)\n",
         (unsigned long long)nminor, (unsigned long long)(peak >> 10),
         (unsigned long long)(live >> 10), (unsigned long long)((before - after) >> 10));
  return 0;
}
