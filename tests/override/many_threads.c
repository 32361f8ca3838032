/*
 * many_threads — create and join 100 000 short threads without growing, for
 * the override tests (run.sh threads). An ordinary C program; with and
 * without libgoalloc-override it must print the same line.
 *
 * Threads run two at a time. Each allocates a spread of sizes (small classes
 * and one large object), frees most of them, and leaves one object for the
 * main thread to free after it has exited (a free into a span whose cache
 * is gone). A thread's cache must go back to the heap when it exits: the
 * resident set after the last thread may not exceed the one measured after
 * the first 10 000 by more than GROWTH_LIMIT. The figures go to stderr; the
 * verdict to stdout.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 100000
#define WARMUP 10000
#define GROWTH_LIMIT (16u << 20)

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * sysconf(_SC_PAGESIZE);
}

static void *short_lived(void *arg) {
  uintptr_t n = (uintptr_t)arg;
  void *p[12];
  for (int i = 0; i < 11; i++) {
    p[i] = malloc((size_t)16 << (i % 11)); /* 16 B .. 16 KiB */
    if (p[i] == NULL) abort();
    memset(p[i], (int)n, 16);
  }
  p[11] = malloc(100000 + n % 1000); /* large */
  if (p[11] == NULL) abort();
  for (int i = 1; i < 12; i++) free(p[i]);
  return p[0]; /* freed by main, after this thread is gone */
}

int main(void) {
  long rss_warm = 0;
  for (uintptr_t i = 0; i < NTHREADS; i += 2) {
    pthread_t a, b;
    void *ra, *rb;
    if (pthread_create(&a, NULL, short_lived, (void *)i) != 0 ||
        pthread_create(&b, NULL, short_lived, (void *)(i + 1)) != 0) {
      printf("pthread_create failed at thread %lu\n", (unsigned long)i);
      return 1;
    }
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    free(ra);
    free(rb);
    if (i + 2 == WARMUP) rss_warm = rss_bytes();
  }
  long rss_end = rss_bytes();
  fprintf(stderr, "many_threads: RSS after %d threads %.1f MiB, after %d %.1f MiB\n",
          WARMUP, rss_warm / 1048576.0, NTHREADS, rss_end / 1048576.0);
  if (rss_end > rss_warm + (long)GROWTH_LIMIT) {
    printf("%d threads: RSS grew by %.1f MiB\n", NTHREADS,
           (rss_end - rss_warm) / 1048576.0);
    return 1;
  }
  printf("%d threads created and joined, RSS did not grow\n", NTHREADS);
  return 0;
}
