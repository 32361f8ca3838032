/*
 * test_gc_concurrent — the cases that break a concurrent mark, run while
 * the collector marks with the world running (mgc.c): the program moves
 * pointers behind the marker's back.
 *
 *   hide:   take an object out of a heap field the marker may not have
 *           scanned yet, clear the field, and store the object into a node
 *           allocated during the mark (black, never scanned) — the classic
 *           lost object, caught only by the written-page rescan;
 *   stash:  keep an object only in a local variable (register or stack)
 *           across allocations, then put it back: caught by the root rescan
 *           at mark termination;
 *   big:    the same moves through a 256 KiB pointer array (a large object:
 *           only its written pages are rescanned; written all the time, it
 *           becomes hot, mwritewatch.c, and is left unprotected at times);
 *   atomic: objects kept only in ga_malloc_atomic memory are not retained
 *           (checked through a finalizer-free count of live ids is not
 *           possible; instead garbage volume keeps cycles frequent).
 *
 * Every node carries its id and a checksum; a node freed while reachable is
 * reused by later allocations and fails its check. Expected node counts per
 * thread are verified at the end. GOGC is low so that many cycles overlap
 * the moves; the test requires that some ran concurrently when the kernel
 * supports it (ga_read_stats reports it).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "goalloc.h"
#include "mgc.h"
#include "testutil.h"

#define NTHREADS 3
#define SLOTS_PER_THREAD 1024
#define BIG_SLOTS 32768 /* 256 KiB of pointers: a large object */

typedef struct node {
  struct node *next; /* chain within a slot */
  struct node *held; /* a node moved here by "hide" */
  uint64_t id, check;
} node;

static node **table;  /* NTHREADS * SLOTS_PER_THREAD heads, ga_malloc'd */
static node **big;    /* BIG_SLOTS, ga_malloc'd, large */
static long rounds;
static int phase;               /* one per policy of the write watch */
static long expected[NTHREADS]; /* nodes each thread holds, across phases */
static uint64_t nextids[NTHREADS];

static uint64_t check_of(const node *n) { return n->id * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995; }

static node *new_node(uint64_t id) {
  node *n = ga_malloc(sizeof *n);
  CHECK(n != NULL);
  n->next = n->held = NULL;
  n->id = id;
  n->check = check_of(n);
  return n;
}

static void verify(const node *n) {
  CHECKF(n->check == check_of(n), "node %p (id %llx) corrupted: collected while reachable?",
         (const void *)n, (unsigned long long)n->id);
}

/* Count and verify every node reachable from a chain (next and held). */
static long walk(const node *n) {
  long c = 0;
  for (; n != NULL; n = n->next) {
    verify(n);
    c++;
    if (n->held != NULL) c += walk(n->held);
  }
  return c;
}

static void garbage(rng_t *r, int n) {
  for (int i = 0; i < n; i++) {
    void *p = (rng_below(r, 4) == 0) ? ga_malloc_atomic(16 + rng_below(r, 200))
                                     : ga_malloc(16 + rng_below(r, 200));
    CHECK(p != NULL);
    memset(p, 0xab, 16); /* pointer-free pattern, retains nothing */
  }
}

static void *mutator(void *arg) {
  long t = (long)arg;
  rng_t r = {0x1234567ull + (uint64_t)t * 7919 + (uint64_t)phase * 104729};
  node **mine = table + t * SLOTS_PER_THREAD;
  long expect = expected[t];
  uint64_t nextid = nextids[t] ? nextids[t] : (uint64_t)t << 48;
  for (long step = 0; step < rounds; step++) {
    unsigned a = (unsigned)rng_below(&r, SLOTS_PER_THREAD);
    unsigned b = (unsigned)rng_below(&r, SLOTS_PER_THREAD);
    switch (rng_below(&r, 6)) {
    case 0: { /* grow a chain */
      node *n = new_node(nextid++);
      n->next = mine[a];
      mine[a] = n;
      expect++;
      break;
    }
    case 1: { /* hide: move the chain of a into a fresh node, clear a */
      node *w = mine[a];
      if (w == NULL) break;
      mine[a] = NULL;
      garbage(&r, 8); /* give the marker time to pass over mine[a] */
      node *n = new_node(nextid++);
      n->held = w;
      n->next = mine[b];
      mine[b] = n;
      expect++;
      break;
    }
    case 2: { /* stash: only a local holds the chain for a while */
      node *volatile w = mine[a];
      mine[a] = NULL;
      garbage(&r, 32);
      if (w != NULL) verify(w);
      mine[a] = w;
      break;
    }
    case 3: { /* big: swap through the large pointer array */
      unsigned k = (unsigned)(t * (BIG_SLOTS / NTHREADS) +
                              rng_below(&r, BIG_SLOTS / NTHREADS));
      node *w = mine[a];
      mine[a] = big[k];
      big[k] = w;
      break;
    }
    case 4: { /* drop a chain: garbage */
      if (rng_below(&r, 8) != 0) break;
      expect -= walk(mine[a]);
      mine[a] = NULL;
      break;
    }
    default:
      garbage(&r, 16);
      if (mine[a] != NULL) verify(mine[a]);
    }
  }
  /* Count what this thread owns: its slots and its share of big. */
  long have = 0;
  for (unsigned i = 0; i < SLOTS_PER_THREAD; i++) have += walk(mine[i]);
  for (unsigned k = (unsigned)(t * (BIG_SLOTS / NTHREADS));
       k < (unsigned)((t + 1) * (BIG_SLOTS / NTHREADS)); k++)
    have += walk(big[k]);
  CHECKF(have == expect, "thread %ld: %ld nodes reachable, %ld expected", t, have, expect);
  expected[t] = expect;
  nextids[t] = nextid;
  return NULL;
}

static void run_mutators(void) {
  pthread_t th[NTHREADS];
  for (long t = 0; t < NTHREADS; t++)
    CHECK(pthread_create(&th[t], NULL, mutator, (void *)t) == 0);
  for (int t = 0; t < NTHREADS; t++) CHECK(pthread_join(th[t], NULL) == 0);
}

int main(int argc, char **argv) {
  reexec_concurrent(argv);
  (void)argc;
  rounds = (long)(400000 / 3 * test_scale()); /* per phase */
  if (rounds < 700) rounds = 700;
  ga_set_gc_percent(20); /* many cycles, each overlapping the moves */
  table = ga_calloc(NTHREADS * SLOTS_PER_THREAD, sizeof(node *));
  big = ga_calloc(BIG_SLOTS, sizeof(node *));
  CHECK(table != NULL && big != NULL);
  ga_stats before = {.version = GA_STATS_VERSION};
  ga_read_stats(&before);
  /* The write watch either lifts its protection after a cycle or keeps it
   * for the next (mwritewatch.c): both, then the adaptive choice. */
  static const struct { int policy; const char *name; } policies[] = {
      {2, "keep"}, {1, "lift"}, {0, "adaptive"}};
  for (phase = 0; phase < 3; phase++) {
    ga__ww_testPolicy(policies[phase].policy);
    ga_stats ps = {.version = GA_STATS_VERSION};
    ga_read_stats(&ps);
    run_mutators();
    ga_stats pe = {.version = GA_STATS_VERSION};
    ga_read_stats(&pe);
    /* A policy that was never applied tested nothing. */
    if (policies[phase].policy != 0 && pe.num_concurrent_gc > ps.num_concurrent_gc)
      CHECKF(ga__ww_keeping() == (policies[phase].policy == 2),
             "%s: the watch did not %s its protection", policies[phase].name,
             policies[phase].name);
  }
  /* Heat needs the big array written in both rearming scans of a mark: on
   * a loaded machine (ctest -j, another job) the mutators may not run in
   * those windows in a whole run (1-7 hot spans a run with four busy loops
   * beside it). More adaptive phases, until it has happened. */
  bool watched = ga__ww_enabled() && test_scale() >= 0.5;
  for (int extra = 0; watched && ga__ww_hotSpans() == 0 && extra < 10; extra++, phase++) {
    ga__ww_testPolicy(0);
    run_mutators();
  }
  ga_collect();
  long total = 0;
  for (unsigned i = 0; i < NTHREADS * SLOTS_PER_THREAD; i++) total += walk(table[i]);
  for (unsigned k = 0; k < BIG_SLOTS; k++) total += walk(big[k]);
  ga_stats after = {.version = GA_STATS_VERSION};
  ga_read_stats(&after);
  uint64_t cycles = after.num_gc - before.num_gc;
  uint64_t conc = after.num_concurrent_gc - before.num_concurrent_gc;
  uint64_t want = test_scale() < 0.5 ? 2 : 10; /* valgrind runs a fiftieth */
  CHECKF(cycles >= want, "only %llu collections", (unsigned long long)cycles);
  if (getenv("GOALLOC_TEST_REQUIRE_CONCURRENT") != NULL)
    CHECKF(conc * 2 >= cycles, "%llu of %llu collections concurrent",
           (unsigned long long)conc, (unsigned long long)cycles);
  uint64_t minor = after.num_minor_gc - before.num_minor_gc;
  /* Minor cycles (sticky marks) run whenever the write watch works. */
  if (ga__gc_sticky && ga__ww_enabled() && test_scale() >= 0.5)
    CHECKF(minor > 0, "no minor collection in %llu", (unsigned long long)cycles);
  /* The big array, written all the time, is hot (left unprotected) at
   * times whenever the write watch works: the moves through it ran then. */
  unsigned long hot = ga__ww_hotSpans();
  if (watched)
    CHECKF(hot > 0, "the big array was never hot in %llu collections",
           (unsigned long long)cycles);
  printf("gc_concurrent: ok (%ld nodes verified, %llu collections, %llu concurrent, "
         "%llu minor, %lu times hot, max pause %.2f ms)\n",
         total, (unsigned long long)cycles, (unsigned long long)conc,
         (unsigned long long)minor, hot, (double)after.pause_max_ns / 1e6);
  return 0;
}
