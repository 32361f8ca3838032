/*
 * test_stats.c — ga_read_stats under a multi-thread workload (src/mstats.c).
 *
 * Four threads allocate and free objects of every kind (small classes,
 * 8 KiB, large), hand objects to each other through a shared exchange (so
 * that many frees are cross-thread), and keep exact counts of what they did.
 * While they run, the main thread reads the statistics over and over and
 * checks the identities that hold at every instant:
 *   HeapIdle + HeapInuse == HeapSys,  HeapReleased <= HeapIdle,
 *   HeapObjects == Mallocs - Frees.
 * Then every worker calls ga_thread_flush and waits (alive) while the main
 * thread checks the exact ones against the workers' counts:
 *   Mallocs, Frees, HeapObjects == live objects, HeapAlloc == their slot
 *   bytes, TotalAlloc == every allocation's slot bytes, per class sums,
 *   HeapInuse == sum of spans * span bytes + large objects.
 * Then tiny allocations (counted as a malloc and a free, as Go does), and,
 * with the collector on, the GC fields after ga_collect.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

#include "goalloc.h"
#include "internal.h"

#define NTHREADS 4
#define SLOTS 4096
#define XCHG 1024

static long OPS;
static _Atomic(void *) xchg[XCHG]; /* a global: a root for the collector */
static pthread_barrier_t flushed, checked;
static _Atomic int finished; /* workers done with their operations */

typedef struct {
  int id;
  uint64_t allocs, frees, allocBytes;
} worker;

static size_t pick_size(rng_t *r) {
  uint64_t x = rng_next(r);
  if ((x & 255) == 0) return 40000 + (size_t)((x >> 8) % 100000); /* large */
  if ((x & 31) == 0) return 8192;
  return 16 + (size_t)((x >> 8) % 2033);
}

static void *work(void *arg) {
  worker *w = arg;
  rng_t r = {0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1)};
  void **v = ga_malloc(SLOTS * sizeof *v); /* scanned: roots for a collector */
  CHECK(v != NULL);
  memset(v, 0, SLOTS * sizeof *v);
  w->allocs++;
  w->allocBytes += ga_usable_size(v);
  for (long op = 0; op < OPS; op++) {
    size_t slot = (size_t)rng_below(&r, SLOTS);
    if (v[slot] != NULL) {
      ga_free(v[slot]); /* often another thread's object (via xchg) */
      w->frees++;
    }
    size_t sz = pick_size(&r);
    char *p = ga_malloc(sz);
    CHECK(p != NULL);
    p[0] = p[sz - 1] = (char)op;
    w->allocs++;
    w->allocBytes += ga_usable_size(p);
    v[slot] = p;
    if ((op & 3) == 0) /* trade with whoever left an object here */
      v[slot] = atomic_exchange(&xchg[rng_below(&r, XCHG)], v[slot]);
  }
  ga_thread_flush();
  atomic_fetch_add(&finished, 1);
  pthread_barrier_wait(&flushed);
  pthread_barrier_wait(&checked); /* stay alive (and hold v) during the check */
  for (size_t i = 0; i < SLOTS; i++) ga_free(v[i]);
  ga_free(v);
  return NULL;
}

static ga_stats rd(void) {
  ga_stats s;
  s.version = GA_STATS_VERSION;
  CHECK(ga_read_stats(&s) == 0);
  return s;
}

static void check_always(const ga_stats *s) {
  CHECKF(s->heap_idle + s->heap_inuse == s->heap_sys, "idle %llu + inuse %llu != sys %llu",
         (unsigned long long)s->heap_idle, (unsigned long long)s->heap_inuse,
         (unsigned long long)s->heap_sys);
  CHECK(s->heap_released <= s->heap_idle);
  CHECK(s->heap_objects == s->mallocs - s->frees);
  CHECK(s->total_alloc >= s->heap_alloc);
  CHECK(s->version == GA_STATS_VERSION);
}

int main(void) {
  OPS = scaled(500000);
  ga_set_gc_percent(-1); /* exact counts: no collection frees anything */
  ga_stats s0 = rd();
  check_always(&s0);
  CHECK(s0.gc_percent == -1 || s0.gc_percent == 100); /* (collector's own setter) */

  pthread_barrier_init(&flushed, NULL, NTHREADS + 1);
  pthread_barrier_init(&checked, NULL, NTHREADS + 1);
  pthread_t t[NTHREADS];
  worker w[NTHREADS];
  memset(w, 0, sizeof w);
  for (int i = 0; i < NTHREADS; i++) {
    w[i].id = i;
    CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
  }
  /* While they run: the identities that hold at every instant. */
  long reads = 0;
  for (;;) {
    ga_stats s = rd();
    check_always(&s);
    reads++;
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    if (atomic_load(&finished) == NTHREADS) break;
  }
  pthread_barrier_wait(&flushed);

  /* Every worker has flushed: the exact identities. */
  uint64_t allocs = 0, frees = 0, allocBytes = 0, live = 0, liveBytes = 0;
  uint64_t largeLiveBytes = 0;
  for (int i = 0; i < NTHREADS; i++) {
    allocs += w[i].allocs;
    frees += w[i].frees;
    allocBytes += w[i].allocBytes;
  }
  live = allocs - frees;
  /* Walk every live object the workers hold: their slot arrays are not
   * reachable from here, so count through the exchange and the totals. */
  for (size_t i = 0; i < XCHG; i++) {
    void *p = atomic_load(&xchg[i]);
    if (p == NULL) continue;
    if (ga_usable_size(p) > 32768) largeLiveBytes += ga_usable_size(p);
  }
  ga_stats s = rd();
  check_always(&s);
  uint64_t byClassMallocs = 0, byClassFrees = 0, classBytes = 0, spanBytes = 0;
  for (unsigned c = 0; c < GA_STATS_NUM_CLASSES; c++) {
    const ga_class_stats *k = &s.by_size[c];
    CHECK(k->size == ga__class_to_size[c]);
    CHECK(k->mallocs >= k->frees);
    byClassMallocs += k->mallocs;
    byClassFrees += k->frees;
    if (c > 0) {
      classBytes += (k->mallocs - k->frees) * k->size;
      spanBytes += (uint64_t)k->spans * ga__class_to_npages[c] * 8192;
    }
  }
  printf("stats after %ld reads during the run: mallocs %llu frees %llu "
         "objects %llu heap_alloc %llu heap_inuse %llu spans %llu B large %llu\n",
         reads, (unsigned long long)s.mallocs, (unsigned long long)s.frees,
         (unsigned long long)s.heap_objects, (unsigned long long)s.heap_alloc,
         (unsigned long long)s.heap_inuse, (unsigned long long)spanBytes,
         (unsigned long long)s.by_size[0].spans);
  CHECKF(s.mallocs - s0.mallocs == allocs, "mallocs %llu, workers made %llu",
         (unsigned long long)(s.mallocs - s0.mallocs), (unsigned long long)allocs);
  CHECKF(s.frees - s0.frees == frees, "frees %llu, workers made %llu",
         (unsigned long long)(s.frees - s0.frees), (unsigned long long)frees);
  CHECKF(s.heap_objects - s0.heap_objects == live, "objects %llu, live %llu",
         (unsigned long long)(s.heap_objects - s0.heap_objects), (unsigned long long)live);
  CHECK(byClassMallocs == s.mallocs - s.tiny_allocs);
  CHECK(byClassFrees == s.frees - s.tiny_allocs);
  CHECKF(s.total_alloc - s0.total_alloc == allocBytes, "total_alloc %llu, made %llu",
         (unsigned long long)(s.total_alloc - s0.total_alloc),
         (unsigned long long)allocBytes);
  /* HeapAlloc: slot bytes of the live objects, by class and large. */
  uint64_t largeBytes = s.heap_alloc - classBytes;
  CHECK(s.heap_alloc >= classBytes);
  CHECK(largeBytes >= largeLiveBytes);
  CHECK(largeBytes % 8192 == 0);
  CHECK(s.by_size[0].spans == s.by_size[0].mallocs - s.by_size[0].frees);
  /* HeapInuse: every in-use span, small ones by class, large ones whole. */
  CHECKF(s.heap_inuse == spanBytes + largeBytes,
         "heap_inuse %llu != class spans %llu + large %llu",
         (unsigned long long)s.heap_inuse, (unsigned long long)spanBytes,
         (unsigned long long)largeBytes);
  (void)liveBytes;
  pthread_barrier_wait(&checked);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  for (size_t i = 0; i < XCHG; i++) ga_free(atomic_exchange(&xchg[i], NULL));

  /* Everything freed: no object left, every class balanced. */
  s = rd();
  check_always(&s);
  CHECKF(s.heap_objects == s0.heap_objects, "objects %llu after freeing all",
         (unsigned long long)s.heap_objects);
  CHECK(s.heap_alloc == s0.heap_alloc);

  /* Tiny objects: a malloc and a free each (Go's rule); the blocks they
   * share are the objects. */
  ga_stats a = rd();
  void *keep[1000];
  for (int i = 0; i < 1000; i++) keep[i] = ga_malloc_atomic(8);
  ga_stats b = rd(); /* the caller's own cache is counted without a flush */
  uint64_t blocks = b.heap_objects - a.heap_objects;
  CHECKF(b.tiny_allocs - a.tiny_allocs == 1000, "tiny %llu",
         (unsigned long long)(b.tiny_allocs - a.tiny_allocs));
  CHECK(b.mallocs - a.mallocs == 1000 + blocks);
  CHECK(b.frees - a.frees == 1000);
  CHECKF(blocks >= 500 && blocks <= 501, "%llu tiny blocks for 1000 8-byte objects",
         (unsigned long long)blocks);
  (void)keep;

  /* Version 1 callers get the prefix. */
  ga_stats v1;
  memset(&v1, 0xff, sizeof v1);
  v1.version = 1;
  CHECK(ga_read_stats(&v1) == 0);
  CHECK(v1.version == 1 && v1.heap_sys == b.heap_sys);
  CHECK(v1.pause_end[0] == UINT64_MAX); /* untouched past the v1 fields */
  /* Version 3 callers get everything up to the version 4 fields. */
  ga_stats v3;
  memset(&v3, 0xff, sizeof v3);
  v3.version = 3;
  CHECK(ga_read_stats(&v3) == 0);
  CHECK(v3.version == 3 && v3.heap_sys == b.heap_sys && v3.pause_max_ns != UINT64_MAX);
  CHECK(v3.num_minor_gc == UINT64_MAX); /* untouched past the v3 fields */
  ga_stats bad;
  bad.version = 99;
  CHECK(ga_read_stats(&bad) == -1);
  CHECK(ga_read_stats(NULL) == -1);

  /* The collector's fields, when there is a collector. */
  ga_set_gc_percent(100);
  for (int i = 0; i < 20000; i++) (void)!ga_malloc(100); /* garbage */
  ga_collect();
  s = rd();
  check_always(&s);
  printf("after ga_collect: %llu cycles, %llu ns of pauses, cpu fraction %.4f\n",
         (unsigned long long)s.num_gc, (unsigned long long)s.pause_total_ns,
         s.gc_cpu_fraction);
  if (s.num_gc > 0) {
    CHECK(s.pause_total_ns >= s.pause_ns[(s.num_gc + 255) % 256]);
    CHECK(s.gc_cpu_fraction >= 0 && s.gc_cpu_fraction <= 1);
  }

  FILE *f = tmpfile();
  CHECK(f != NULL);
  ga_print_stats(f);
  long len = ftell(f);
  CHECK(len > 200);
  fclose(f);
  printf("ok\n");
  return 0;
}
