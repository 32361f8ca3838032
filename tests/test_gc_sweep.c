/*
 * test_gc_sweep — sweeping invariants and the pacer's controls:
 * ga_collect leaves no unswept span; spans left unswept after an automatic
 * cycle are all swept before the next cycle marks (lazily, in the
 * background, by sweep credit); sweeping frees what died and keeps what
 * lives; GOGC off stops automatic cycles; ga_disable/ga_enable nest.
 */
#include <stdint.h>
#include <unistd.h>

#include "mgc.h"
#include "testutil.h"

static void *live[5000];

static uint64_t numgc(void) {
  ga_stats st = {.version = GA_STATS_VERSION};
  ga_read_stats(&st);
  return st.num_gc;
}

int main(void) {
  rng_t r = {5};
  for (int i = 0; i < 5000; i++) {
    live[i] = ga_malloc(16 + rng_below(&r, 600));
    fill_pattern(live[i], 16, (uint64_t)i);
  }
  /* Lots of garbage across many classes, then a full collection. */
  for (int i = 0; i < 200000; i++) {
    char *g = ga_malloc(16 + rng_below(&r, 4000));
    g[0] = 1;
  }
  ga_collect();
  CHECKF(ga__unswept_spans() == 0, "%lu unswept after ga_collect", (unsigned long)ga__unswept_spans());
  for (int i = 0; i < 5000; i++) CHECK(check_pattern(live[i], 16, (uint64_t)i));

  /* Automatic cycles: allocation-driven. Watch the unswept count: the next
   * cycle must never start with spans left (the collector throws if so). */
  uint64_t before = numgc();
  for (int i = 0; i < 2000000; i++) {
    char *g = ga_malloc(16 + rng_below(&r, 1000));
    g[0] = 1;
  }
  uint64_t after = numgc();
  printf("automatic cycles during churn: %llu\n", (unsigned long long)(after - before));
  CHECK(after > before);
  /* The background sweeper finishes on its own. */
  for (int i = 0; i < 200 && ga__unswept_spans() != 0; i++) usleep(10000);
  CHECKF(ga__unswept_spans() == 0, "background sweeper left %lu spans", (unsigned long)ga__unswept_spans());
  for (int i = 0; i < 5000; i++) CHECK(check_pattern(live[i], 16, (uint64_t)i));

  /* GOGC off: no automatic cycle. */
  int old = ga_set_gc_percent(-1);
  CHECK(old == 100);
  /* A cycle the churn triggered may still be running on the collector's
   * thread: ga_collect returns after it (and its own cycle). */
  ga_collect();
  before = numgc();
  for (int i = 0; i < 1000000; i++) {
    char *g = ga_malloc(64);
    g[0] = 1;
  }
  CHECK(numgc() == before);
  ga_collect(); /* still runs on request */
  CHECK(numgc() == before + 1);
  CHECK(ga_set_gc_percent(100) == -1);

  /* ga_disable nests; ga_collect does nothing while disabled. */
  ga_disable();
  ga_disable();
  ga_collect(); /* runs none, but returns after any cycle under way */
  before = numgc();
  ga_collect();
  ga_enable();
  ga_collect();
  CHECK(numgc() == before);
  ga_enable();
  ga_collect();
  CHECK(numgc() == before + 1);
  printf("gc_sweep: ok\n");
  return 0;
}
