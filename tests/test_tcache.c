/*
 * test_tcache — the malloc drop-in's free cache (mtcache.c), linked with
 * libgoalloc-override.a: what it hands out, its bounds, what it does with
 * another thread's objects, its statistics, its drain at thread exit and
 * ga_thread_flush, the keys that keep bad frees detected (the cases of
 * test_badfree run against it as badfree_tc; here, the ones only a free
 * cache has), and GOALLOC_TCACHE=0.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "goalloc.h"
#include "internal.h"
#include "testutil.h"

static void *volatile sink;

/* The drop-in's malloc, calloc and free (this program is linked with
 * libgoalloc-override.a), through pointers the compiler cannot see
 * through: it knows what free means, and would warn of every use after
 * free here, which is the point of the test. */
static void *(*volatile tmalloc_p)(size_t) = malloc;
static void *(*volatile tcalloc_p)(size_t, size_t) = calloc;
static void (*volatile tfree_p)(void *) = free;
static void *tmalloc(size_t n) { return tmalloc_p(n); }
static void *tcalloc(size_t n, size_t m) { return tcalloc_p(n, m); }
static void tfree(void *p) { tfree_p(p); }

static ga_stats stats(void) {
  ga_stats st = {.version = GA_STATS_VERSION};
  CHECK(ga_read_stats(&st) == 0);
  return st;
}

static tcbin *bin_of(size_t size) {
  unsigned spc = (unsigned)ga__malloc_size_to_spc8[(size + 7) >> 3];
  return &ga__tls_cache->tc[spc];
}

/* The last objects freed come back first, newest first, and only up to the
 * bin's cap; past it frees go to the span. */
static void lifo_and_cap(void) {
  enum { N = 300 };
  void *p[N];
  for (size_t size = 16; size <= 1024; size += size / 2) {
    for (int i = 0; i < N; i++) p[i] = tmalloc(size);
    tcbin *b = bin_of(size);
    CHECKF(b->cap > 0 && b->cap < N, "size %zu: cap %u", size, b->cap);
    uint32_t cap = b->cap;
    for (int i = 0; i < N; i++) tfree(p[i]);
    CHECKF(b->count == cap, "size %zu: %u entries, cap %u", size, b->count, cap);
    CHECK(cap * ga__class_to_size[ga__malloc_size_to_class(size)] <= 64u << 10);
    /* Newest first: p[cap - 1], p[cap - 2], ... p[0]. */
    for (int i = (int)cap - 1; i >= 0; i--) {
      void *q = tmalloc(size);
      CHECKF(q == p[i], "size %zu: pop %d gave %p, not %p", size, i, q, p[i]);
      p[i] = q;
    }
    CHECK(b->top == 0);
    for (int i = 0; i < (int)cap; i++) tfree(p[i]);
    ga_thread_flush(); /* drains */
    CHECK(b->top == 0 && b->count == 0);
  }
  /* Over 1 KiB: no free cache. */
  CHECK(ga__tls_cache->tc[ga__malloc_size_to_class(1025) << 1].cap == 0);
  printf("  lifo and cap: ok\n");
}

/* A popped object carries no key; its contents up to the key word are the
 * program's, and calloc never takes from the free cache (its objects are
 * dirty). */
static void pop_clears_key(void) {
  uint64_t *p = tmalloc(64);
  for (int i = 0; i < 8; i++) p[i] = 0x1111111111111111ull * (uint64_t)(i + 1);
  tfree(p);
  CHECK(p[1] == ga__tcKey);
  uint64_t *q = tmalloc(64);
  CHECK(q == p && q[1] == 0);
  tfree(q);
  uint64_t *z = tcalloc(8, 8);
  for (int i = 0; i < 8; i++) CHECK(z[i] == 0);
  tfree(z);
  printf("  pop clears the key, calloc zeroes: ok\n");
}

static void *free_all(void *arg) {
  void **v = arg;
  for (int i = 0; v[i] != NULL; i++) tfree(v[i]);
  return NULL;
}

/* Another thread's frees never enter this thread's free cache (they would
 * put its objects on our cache lines), nor its own: they are remote. */
static void others_objects(void) {
  enum { N = 64 };
  void *v[N + 1];
  for (int i = 0; i < N; i++) v[i] = tmalloc(96);
  v[N] = NULL;
  tcbin *b = bin_of(96);
  uint32_t before = b->count;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_all, v) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(b->count == before);
  /* And the objects are free (through freeBits, for the span). */
  for (int i = 0; i < N; i++) CHECKF(!ga_owns(v[i]), "object %d still live", i);
  printf("  other threads' frees stay remote: ok\n");
}

/* A thread's free cache goes back when it exits; statistics count each pop
 * as a malloc and a free. */
static void *churn_and_exit(void *arg) {
  (void)arg;
  enum { N = 2000 };
  void **p = tmalloc(sizeof(void *) * N);
  for (int r = 0; r < 50; r++) {
    for (int i = 0; i < N; i++) p[i] = tmalloc(16 + (size_t)(i % 60) * 16);
    for (int i = 0; i < N; i++) tfree(p[i]);
  }
  tfree(p);
  return NULL;
}
static void exit_drains(void) {
  ga_thread_flush();
  ga_stats s0 = stats();
  uint64_t live = s0.heap_objects, m0 = s0.mallocs;
  for (int k = 0; k < 4; k++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, churn_and_exit, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
  }
  ga_stats s1 = stats();
  uint64_t after = s1.heap_objects, m1 = s1.mallocs;
  /* Nothing the threads freed is live, in their free caches or anywhere. */
  CHECKF(after <= live + 8, "live objects %llu before, %llu after",
         (unsigned long long)live, (unsigned long long)after);
  CHECKF(m1 - m0 >= 4u * 50 * 2000, "mallocs counted: %llu",
         (unsigned long long)(m1 - m0));
  printf("  thread exit drains, pops counted: ok (%llu mallocs)\n",
         (unsigned long long)(m1 - m0));
}

/* A freed object handed out again by the span keeps the freed mark in its
 * key word until the program writes it: freeing it (by its thread or
 * another) is no double free. */
static void marked_but_live(void) {
  enum { N = 600 };
  void *p[N];
  for (int i = 0; i < N; i++) p[i] = tmalloc(48);
  for (int i = 0; i < N; i++) tfree(p[i]); /* past the cap: marked */
  int marked = 0;
  for (int i = 0; i < N; i++) {
    p[i] = tmalloc(48);
    marked += ((uint64_t *)p[i])[1] == ~ga__tcKey;
  }
  CHECKF(marked > 0, "no marked object handed out again");
  /* The first half (the first 128 of them popped: no mark) freed by another
   * thread, the rest by this one. */
  void *first = p[N / 2];
  p[N / 2] = NULL;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_all, p) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  p[N / 2] = first;
  for (int i = N / 2; i < N; i++) tfree(p[i]);
  /* Objects other threads freed are marked when their span takes them back
   * (ga__span_collect; here when the flush gives the spans back), so that
   * the owner's second free of one does not enter the free cache. */
  ga_thread_flush();
  for (int i = 0; i < N / 2; i++)
    CHECKF(((uint64_t *)p[i])[1] == ~ga__tcKey, "remotely freed %d has no mark", i);
  printf("  %d marked live objects freed: ok\n", marked);
}

/* ---- bad frees only a free cache has ---------------------------------- */

static void *free_one(void *p) {
  tfree(p);
  return NULL;
}
static void double_after_full(void) {
  /* The first free finds the bin full and goes to the span (marked); the
   * second finds room again. */
  enum { N = 200 };
  void *p[N], *x;
  for (int i = 0; i < N; i++) p[i] = tmalloc(128);
  x = tmalloc(128);
  for (int i = 0; i < N; i++) tfree(p[i]);
  tfree(x);
  sink = tmalloc(128);
  tfree(x);
}
static void double_cached_by_other(void) {
  /* In this thread's free cache, freed again by another thread. */
  void *x = tmalloc(64);
  tfree(x);
  pthread_t t;
  pthread_create(&t, NULL, free_one, x);
  pthread_join(t, NULL);
}
static void usable_size_cached(void) {
  void *x = tmalloc(64);
  tfree(x);
  sink = (void *)ga_usable_size(x);
}
static void double_after_drain(void) {
  void *x = tmalloc(64);
  tfree(x);
  ga_thread_flush();
  tfree(x);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "off") == 0) {
    /* GOALLOC_TCACHE=0: no free cache, and the one bad free it misses is
     * caught again. */
    CHECKF(!ga__tcOn, "GOALLOC_TCACHE=0 left the free cache on");
    void *p = tmalloc(64);
    tfree(p);
    CHECK(bin_of(64)->count == 0 && bin_of(64)->top == 0);
    printf("  GOALLOC_TCACHE=0: off: ok\n");
    return 0;
  }
  if (GA_VALGRIND_BUILD) {
    printf("tcache: skipped, the free cache is off in a valgrind build\n");
    return 77;
  }
  CHECKF(ga__tcOn, "the free cache is off in the drop-in");
  lifo_and_cap();
  pop_clears_key();
  others_objects();
  exit_drains();
  marked_but_live();
  expect_death("double free, first past a full bin", double_after_full, "double free");
  expect_death("double free, cached then remote", double_cached_by_other, "double free");
  expect_death("usable_size of a cached object", usable_size_cached, "already free");
  expect_death("double free after a drain", double_after_drain, "double free");

  setenv("GOALLOC_TCACHE", "0", 1);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "/proc/%d/exe off", (int)getpid());
  CHECK(system(cmd) == 0);
  printf("tcache: ok\n");
  return 0;
}
