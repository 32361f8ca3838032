/*
 * test_reuse — memory is reused: RSS stays flat over 100 M allocations and
 * frees of a fixed-size working set, single-threaded, and again with a
 * second thread freeing half of the objects (remote frees must be folded
 * back in, not leaked).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "goalloc.h"
#include "testutil.h"

#define WS 20000

static void *slots[WS];

static size_t size_of(rng_t *r) { return 8 + rng_below(r, 2048); }

static void churn(long ops, rng_t *r) {
  for (long i = 0; i < ops; i++) {
    unsigned k = (unsigned)rng_below(r, WS);
    if (slots[k]) ga_free(slots[k]);
    size_t n = size_of(r);
    slots[k] = ga_malloc(n);
    CHECK(slots[k]);
    ((char *)slots[k])[0] = 1;
    ((char *)slots[k])[n - 1] = 1;
  }
}

/* Two threads: each allocates into a shared ring, the other frees. */
#define RING 8192
static _Atomic(void *) ring[RING];
static long xops;
static void *xworker(void *arg) {
  rng_t r = {(uint64_t)(uintptr_t)arg * 7919 + 1};
  for (long i = 0; i < xops; i++) {
    size_t n = size_of(&r);
    void *p = ga_malloc(n);
    CHECK(p);
    memset(p, 2, n < 32 ? n : 32);
    void *old = atomic_exchange(&ring[rng_below(&r, RING)], p);
    if (old) ga_free(old);
  }
  return NULL;
}

int main(void) {
  rng_t r = {42};
  long total = scaled(100000000);
  churn(total / 100, &r); /* warm up: reach the steady state */
  size_t before = rss_bytes();
  churn(total - total / 100, &r);
  size_t after = rss_bytes();
  printf("single thread: %ld ops, RSS %zu KiB -> %zu KiB\n", total, before >> 10, after >> 10);
  CHECKF(after <= before + (8u << 20), "RSS grew by %zu KiB", (after - before) >> 10);
  for (int i = 0; i < WS; i++) ga_free(slots[i]), slots[i] = NULL;

  xops = scaled(20000000) / 2;
  pthread_t t[2];
  long warm = xops;
  xops = warm / 20;
  for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, xworker, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  before = rss_bytes();
  xops = warm;
  for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, xworker, (void *)(i + 2));
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  after = rss_bytes();
  printf("two threads, cross frees: %ld ops, RSS %zu KiB -> %zu KiB\n", 2 * warm, before >> 10, after >> 10);
  CHECKF(after <= before + (16u << 20), "RSS grew by %zu KiB", (after - before) >> 10);
  printf("reuse: ok\n");
  return 0;
}
