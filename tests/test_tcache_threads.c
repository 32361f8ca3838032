/*
 * test_tcache_threads — the drop-in's free cache (mtcache.c) under threads,
 * in a form ThreadSanitizer can watch (CI runs it there): this program
 * defines ga__override_mode itself, so the core library it links runs as
 * the drop-in does (collector off, free cache on) while libc keeps its own
 * malloc, which TSan replaces. Threads call the drop-in's malloc and free
 * (ga__malloc_tc, ga__free_tc) directly.
 *
 * 4 threads each keep 512 objects of 16..1100 B (most with a free cache,
 * some above it), replace them at random, and hand every fourth one to a
 * shared mailbox from which any thread takes and frees it: own frees enter
 * the free cache, others' are remote and come back through the fold, which
 * marks them. Every object's contents are checked before it is freed.
 * Threads exit and are replaced 4 times (their bins are drained), and the
 * main thread checks that every object is freed at the end (statistics).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "goalloc.h"
#include "internal.h"
#include "testutil.h"

/* The drop-in's marker (override.c defines it there). */
const int ga__override_mode = 1;

#define NTHREADS 4
#define LIVE 512
#define MAILBOX 1024

typedef struct {
  size_t size;
  uint64_t seed;
} hdr_t;

static _Atomic(unsigned char *) mailbox[MAILBOX];
static long ops_per_thread;
static _Atomic long total_ops, total_cached;

static unsigned char *make(rng_t *r) {
  size_t size = 16 + rng_below(r, 1085);
  unsigned char *p = ga__malloc_tc(size);
  CHECK(p != NULL);
  hdr_t h = {size, r->s};
  memcpy(p, &h, sizeof h);
  fill_pattern(p + sizeof h, size - sizeof h, h.seed);
  return p;
}

static void destroy(unsigned char *p) {
  hdr_t h;
  memcpy(&h, p, sizeof h);
  CHECKF(h.size >= 16 && h.size <= 1100, "object %p: size %zu", (void *)p, h.size);
  CHECKF(check_pattern(p + sizeof h, h.size - sizeof h, h.seed),
         "object %p (%zu B) corrupted", (void *)p, h.size);
  ga__free_tc(p);
}

static void *worker(void *arg) {
  rng_t r = {0x9e3779b97f4a7c15ull * (uint64_t)(uintptr_t)arg + 5};
  unsigned char *live[LIVE];
  for (int i = 0; i < LIVE; i++) live[i] = make(&r);
  long cached = 0;
  for (long op = 0; op < ops_per_thread; op++) {
    unsigned i = (unsigned)rng_below(&r, LIVE);
    unsigned char *old = live[i];
    live[i] = make(&r);
    if (op % 4 == 0) {
      /* To the mailbox; free whatever was there (any thread's). */
      unsigned char *prev = atomic_exchange(&mailbox[rng_below(&r, MAILBOX)], old);
      if (prev != NULL) destroy(prev);
    } else {
      destroy(old);
    }
    const tcbin *b = &ga__tls_cache->tc[(ga__malloc_size_to_class(100) << 1)];
    cached += b->top != 0;
  }
  for (int i = 0; i < LIVE; i++) destroy(live[i]);
  atomic_fetch_add(&total_ops, ops_per_thread);
  atomic_fetch_add(&total_cached, cached);
  return NULL;
}

int main(void) {
  ga__free_tc(ga__malloc_tc(64)); /* the heap starts: ga__tcOn is read */
  CHECKF(ga__tcOn == !GA_VALGRIND_BUILD, "free cache %s", ga__tcOn ? "on" : "off");
  ops_per_thread = scaled(400000);
  for (int round = 0; round < 4; round++) {
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
      CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1 + round * NTHREADS)) == 0);
    for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
  }
  for (int i = 0; i < MAILBOX; i++) {
    unsigned char *p = atomic_exchange(&mailbox[i], NULL);
    if (p != NULL) destroy(p);
  }
  ga_thread_flush();
  ga_stats st = {.version = GA_STATS_VERSION};
  CHECK(ga_read_stats(&st) == 0);
  /* Every object made was freed: the workers' free caches went back when
   * they exited, and the statistics count each pop as a malloc and a free. */
  CHECKF(st.heap_objects == 0, "%llu objects still live (mallocs %llu, frees %llu)",
         (unsigned long long)st.heap_objects, (unsigned long long)st.mallocs,
         (unsigned long long)st.frees);
  CHECK(st.mallocs >= (uint64_t)atomic_load(&total_ops));
  CHECKF(!ga__tcOn || atomic_load(&total_cached) > 0, "the free cache was never used");
  printf("tcache_threads: ok (%ld operations, %llu mallocs)\n",
         atomic_load(&total_ops), (unsigned long long)st.mallocs);
  return 0;
}
