/*
 * test_gc_unregistered — objects allocated by a thread the collector does
 * not stop (one that called ga_thread_unregister) stay correct across
 * collections. Such a thread's cache is not swept at mark termination, so
 * its span keeps the mark bits of that cycle; the next cycle must not take
 * those stale marks for its own (it would then never scan the object, and
 * free what only that object points to). mgc.c begin_mark_phase and
 * mcentral.c uncacheSpan keep this from happening.
 *
 * The unregistered thread allocates holders and parks them in a global
 * array (its stack is not a root); the main thread hangs a checked payload
 * on each holder and forgets it; several collections later, with the freed
 * slots reused, every payload must be intact.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "goalloc.h"
#include "testutil.h"

#define N 200
#define PAYLOAD 48

typedef struct holder {
  uint64_t *payload;
  uint64_t id;
} holder;

static holder *volatile holders[N]; /* a root: data/BSS */
static _Atomic int allocated, done;

static void *unregistered(void *arg) {
  (void)arg;
  ga_thread_unregister(); /* from here on the collector does not stop us */
  for (int i = 0; i < N; i++) {
    holder *h = ga_malloc(sizeof *h);
    CHECK(h != NULL);
    h->payload = NULL;
    h->id = (uint64_t)i;
    holders[i] = h;
  }
  atomic_store(&allocated, 1);
  /* Keep the span cached (invisible) while the main thread collects. */
  while (!atomic_load(&done)) usleep(1000);
  ga_thread_register();
  return NULL;
}

static uint64_t word(int i, int k) { return (uint64_t)i * 0x9e3779b97f4a7c15ull + (uint64_t)k; }

int main(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, unregistered, NULL) == 0);
  while (!atomic_load(&allocated)) usleep(1000);
  for (int i = 0; i < N; i++) {
    uint64_t *p = ga_malloc(PAYLOAD);
    CHECK(p != NULL);
    for (int k = 0; k < PAYLOAD / 8; k++) p[k] = word(i, k);
    holders[i]->payload = p;
  }
  /* Collections with garbage in between, so that anything freed by mistake
   * is reused with other contents. */
  for (int round = 0; round < 6; round++) {
    ga_collect();
    for (int j = 0; j < 20000; j++) {
      uint64_t *g = ga_malloc(PAYLOAD);
      CHECK(g != NULL);
      memset(g, 0xee, PAYLOAD);
    }
  }
  for (int i = 0; i < N; i++) {
    CHECK(holders[i]->id == (uint64_t)i);
    for (int k = 0; k < PAYLOAD / 8; k++)
      CHECKF(holders[i]->payload[k] == word(i, k),
             "payload %d word %d overwritten: freed while reachable", i, k);
  }
  atomic_store(&done, 1);
  CHECK(pthread_join(t, NULL) == 0);
  printf("gc_unregistered: ok (%d holders from an unregistered thread, 6 collections)\n", N);
  return 0;
}
