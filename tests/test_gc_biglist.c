/*
 * test_gc_biglist — marking uses an explicit work list, not recursion: a
 * singly linked list of 10 million nodes (one root at its head) is marked
 * completely, on a thread with a small stack, and every node survives.
 */
#include <pthread.h>
#include <stdint.h>

#include "goalloc.h"
#include "testutil.h"

typedef struct node {
  struct node *next;
  uint64_t v;
} node;

static node *head;
static long n;

static void *run(void *arg) {
  (void)arg;
  node *prev = NULL;
  for (long i = 0; i < n; i++) {
    node *x = ga_malloc(sizeof *x);
    CHECK(x);
    x->v = (uint64_t)i * 2654435761u;
    x->next = prev;
    prev = x;
  }
  head = prev;
  prev = NULL;
  ga_collect(); /* marks the whole chain from one pointer */
  ga_collect();
  long count = 0;
  for (node *x = head; x; x = x->next, count++) CHECK(x->v == (uint64_t)(n - 1 - count) * 2654435761u);
  CHECK(count == n);
  return NULL;
}

int main(void) {
  n = scaled(10000000);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 * 1024); /* recursion would overflow this */
  pthread_t t;
  CHECK(pthread_create(&t, &a, run, NULL) == 0);
  pthread_join(t, NULL);
  ga_stats st = {.version = GA_STATS_VERSION};
  ga_read_stats(&st);
  uint64_t maxp = 0;
  for (int i = 0; i < 256; i++)
    if (st.pause_ns[i] > maxp) maxp = st.pause_ns[i];
  CHECK(st.num_gc >= 2);
  printf("gc_biglist: ok (%ld nodes marked, %llu collections, max pause %.1f ms)\n", n,
         (unsigned long long)st.num_gc, maxp / 1e6);
  return 0;
}
