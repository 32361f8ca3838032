/*
 * test_gc_stress — a multi-threaded mutator while the collector runs: 4
 * threads rewire a shared random graph (replacing edges with fresh nodes,
 * dropping subgraphs, reading neighbours), so collections happen while
 * pointers move between threads, registers, stacks and the heap. Every node
 * carries a checksum of its contents, verified whenever it is read and over
 * the whole reachable graph at the end. Also run under ThreadSanitizer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "goalloc.h"
#include "testutil.h"

#define NTHREADS 4
#define ROOTS 1024
#define DEG 4

typedef struct gnode {
  _Atomic(struct gnode *) edge[DEG];
  uint64_t id;
  uint64_t check;
  unsigned char data[32];
} gnode;

static _Atomic(gnode *) roots[ROOTS];
static long steps_per_thread;
static _Atomic long reads, writes;

static uint64_t sum_of(const gnode *n) {
  uint64_t h = n->id * 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 32; i++) h = (h ^ n->data[i]) * 0x100000001b3ull;
  return h;
}

static gnode *new_node(rng_t *r) {
  gnode *n = ga_malloc(sizeof *n);
  CHECK(n);
  n->id = rng_next(r);
  for (int i = 0; i < 32; i++) n->data[i] = (unsigned char)(n->id >> (i % 8));
  for (int i = 0; i < DEG; i++) atomic_store_explicit(&n->edge[i], NULL, memory_order_relaxed);
  n->check = sum_of(n);
  return n;
}

static void verify(const gnode *n) {
  CHECKF(n->check == sum_of(n), "node %p corrupted", (const void *)n);
}

static void *mutator(void *arg) {
  rng_t r = {(uint64_t)(uintptr_t)arg * 0x12345 + 1};
  long rd = 0, wr = 0;
  for (long s = 0; s < steps_per_thread; s++) {
    unsigned k = (unsigned)rng_below(&r, ROOTS);
    gnode *n = atomic_load(&roots[k]);
    if (n == NULL || rng_below(&r, 50) == 0) {
      /* Replace the root with a fresh little subgraph. */
      gnode *m = new_node(&r);
      for (int i = 0; i < DEG; i++)
        if (rng_below(&r, 2)) atomic_store(&m->edge[i], new_node(&r));
      atomic_store(&roots[k], m);
      wr++;
      continue;
    }
    /* Walk a few edges, verifying, then rewire one. */
    for (int depth = 0; depth < 4 && n; depth++) {
      verify(n);
      rd++;
      gnode *next = atomic_load(&n->edge[rng_below(&r, DEG)]);
      if (next == NULL || rng_below(&r, 4) == 0) {
        int e = (int)rng_below(&r, DEG);
        gnode *target = rng_below(&r, 2) ? new_node(&r) : atomic_load(&roots[rng_below(&r, ROOTS)]);
        atomic_store(&n->edge[e], target);
        wr++;
        break;
      }
      n = next;
    }
    if (rng_below(&r, 200) == 0) {
      /* Some pointer-free garbage too. */
      char *junk = ga_malloc_atomic(16 + rng_below(&r, 3000));
      junk[0] = 1;
    }
  }
  atomic_fetch_add(&reads, rd);
  atomic_fetch_add(&writes, wr);
  return NULL;
}

static long walk_all(void) {
  /* Verify everything reachable (bounded depth-first with an explicit stack). */
  enum { MAXS = 1 << 20 };
  static gnode *stack[MAXS];
  long seen = 0;
  for (int k = 0; k < ROOTS; k++) {
    int sp = 0;
    gnode *n = atomic_load(&roots[k]);
    if (n) stack[sp++] = n;
    int budget = 64;
    while (sp > 0 && budget-- > 0) {
      gnode *x = stack[--sp];
      verify(x);
      seen++;
      for (int i = 0; i < DEG && sp < MAXS; i++) {
        gnode *y = atomic_load(&x->edge[i]);
        if (y) stack[sp++] = y;
      }
    }
  }
  return seen;
}

int main(void) {
  steps_per_thread = scaled(400000);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, mutator, (void *)i) == 0);
  /* The main thread forces collections as well as the pacer's. */
  for (int i = 0; i < 20; i++) {
    ga_collect();
    usleep(5000);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  ga_collect();
  long seen = walk_all();
  ga_stats st = {.version = GA_STATS_VERSION};
  ga_read_stats(&st);
  uint64_t maxp = 0;
  for (int i = 0; i < 256; i++) if (st.pause_ns[i] > maxp) maxp = st.pause_ns[i];
  printf("gc_stress: ok (%ld reads, %ld writes, %ld nodes verified at the end, %llu collections, "
         "max pause %.2f ms, heap in use %llu KiB)\n",
         atomic_load(&reads), atomic_load(&writes), seen, (unsigned long long)st.num_gc, maxp / 1e6,
         (unsigned long long)(st.heap_inuse >> 10));
  CHECK(st.num_gc >= 20);
  return 0;
}
