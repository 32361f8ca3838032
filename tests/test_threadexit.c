/*
 * test_threadexit — a thread's cache goes back when it exits: spans it held
 * are returned to mcentral (and to mheap when empty), objects it left alive
 * can be freed later by others, and creating and joining many threads does
 * not make the heap grow.
 */
#include <pthread.h>
#include <stdint.h>

#include "internal.h"
#include "testutil.h"

static void *keep[64];

static void *short_lived(void *arg) {
  long n = (long)(uintptr_t)arg;
  void *p[20];
  for (int i = 0; i < 20; i++) {
    p[i] = ga_malloc((size_t)(16 << (i % 10)));
    CHECK(p[i]);
    memset(p[i], (int)n, 16);
  }
  for (int i = 1; i < 20; i++) ga_free(p[i]);
  /* Leave one object alive for main to free after we are gone. */
  keep[n % 64] = p[0];
  return NULL;
}

static uintptr_t pages_in_use(void) {
  ga_heap_counters c;
  ga__mheap_counters(&c);
  return c.pagesInUse;
}

int main(void) {
  long nthreads = scaled(20000);
  for (long i = 0; i < 200; i++) { /* warm up */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_lived, (void *)(uintptr_t)i) == 0);
    pthread_join(t, NULL);
    ga_free(keep[i % 64]);
  }
  uintptr_t before = pages_in_use();
  size_t rss_before = rss_bytes();
  for (long i = 0; i < nthreads; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, short_lived, (void *)(uintptr_t)i) == 0);
    pthread_join(t, NULL);
    /* The thread is gone: its leftover object is freed by us (a remote
     * free into a span that is back in mcentral). */
    CHECK(((unsigned char *)keep[i % 64])[0] == (unsigned char)i);
    ga_free(keep[i % 64]);
  }
  uintptr_t after = pages_in_use();
  size_t rss_after = rss_bytes();
  printf("%ld threads: pages in use %lu -> %lu, RSS %zu KiB -> %zu KiB\n", nthreads,
         (unsigned long)before, (unsigned long)after, rss_before >> 10, rss_after >> 10);
  /* Without the release every thread would strand 10 spans (>= 10 pages). */
  CHECKF(after <= before + 64, "heap grew by %lu pages", (unsigned long)(after - before));
  CHECKF(rss_after <= rss_before + (8u << 20), "RSS grew");

  /* ga_thread_flush gives the calling thread's spans back too. */
  void *p = ga_malloc(3000);
  ga_free(p);
  uintptr_t with_cache = pages_in_use();
  ga_thread_flush();
  ga__mcentral_reclaimAll();
  CHECKF(pages_in_use() < with_cache, "flush returned nothing (%lu -> %lu)",
         (unsigned long)with_cache, (unsigned long)pages_in_use());
  p = ga_malloc(3000); /* and the thread can allocate again */
  CHECK(p);
  ga_free(p);
  printf("threadexit: ok\n");
  return 0;
}
