/*
 * test_threads — multi-thread stress: 4 threads allocate objects of mixed
 * sizes, write a pattern, and pass them through shared mailboxes so that
 * most objects are freed by a thread other than the one that allocated them
 * (remote frees into owned, cached and uncached spans). Every object's
 * contents are verified before it is freed. >= 10 M operations by default.
 * Also run under ThreadSanitizer in CI.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "goalloc.h"
#include "testutil.h"

#define NTHREADS 4
#define MAILBOX 4096

typedef struct {
  unsigned char *p;
  size_t size;
  uint64_t seed;
} item_t;

static _Atomic(item_t *) mailbox[MAILBOX];
static long ops_per_thread;
static _Atomic long total_ops, total_remote;

static size_t pick(rng_t *r) {
  uint64_t k = rng_below(r, 100);
  if (k < 80) return 8 + rng_below(r, 256);
  if (k < 98) return 256 + rng_below(r, 4096);
  if (k < 99) return 4096 + rng_below(r, 32768);
  return 32769 + rng_below(r, 200000);
}

static void *worker(void *arg) {
  rng_t r = {0xabcdef12345ull * (uint64_t)(uintptr_t)arg + 17};
  item_t *local[256] = {0};
  long ops = 0, remote = 0;
  while (ops < ops_per_thread) {
    /* Allocate an item (the descriptor too comes from goalloc). */
    item_t *it = ga_malloc(sizeof *it);
    CHECK(it);
    it->size = pick(&r);
    it->p = (rng_below(&r, 2) ? ga_malloc : ga_malloc_atomic)(it->size);
    CHECK(it->p);
    it->seed = rng_next(&r);
    fill_pattern(it->p, it->size < 64 ? it->size : 64, it->seed);
    ops += 2;
    item_t *out;
    if (rng_below(&r, 4) == 0) {
      /* Keep some locally for a while (owner-path frees later). */
      unsigned slot = (unsigned)rng_below(&r, 256);
      out = local[slot];
      local[slot] = it;
    } else {
      /* Swap through a shared mailbox: whatever was there came from
       * another thread, most likely. */
      unsigned slot = (unsigned)rng_below(&r, MAILBOX);
      out = atomic_exchange(&mailbox[slot], it);
      remote++;
    }
    if (out) {
      CHECK(check_pattern(out->p, out->size < 64 ? out->size : 64, out->seed));
      ga_free(out->p);
      ga_free(out);
      ops += 2;
    }
  }
  for (int i = 0; i < 256; i++)
    if (local[i]) {
      CHECK(check_pattern(local[i]->p, local[i]->size < 64 ? local[i]->size : 64, local[i]->seed));
      ga_free(local[i]->p);
      ga_free(local[i]);
    }
  atomic_fetch_add(&total_ops, ops);
  atomic_fetch_add(&total_remote, remote);
  return NULL;
}

int main(void) {
  ops_per_thread = scaled(10000000) / NTHREADS;
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  long left = 0;
  for (int i = 0; i < MAILBOX; i++) {
    item_t *it = atomic_load(&mailbox[i]);
    if (!it) continue;
    CHECK(check_pattern(it->p, it->size < 64 ? it->size : 64, it->seed));
    ga_free(it->p);
    ga_free(it);
    left++;
  }
  /* Everything is free now: heap must be reusable and consistent. */
  for (int i = 0; i < 100000; i++) {
    void *p = ga_malloc(64);
    CHECK(p);
    ga_free(p);
  }
  printf("threads: ok (%ld operations, %ld cross-thread hand-offs, %ld left in mailboxes)\n",
         atomic_load(&total_ops), atomic_load(&total_remote), left);
  return 0;
}
