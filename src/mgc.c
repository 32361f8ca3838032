/*
 * mgc.c — the collection cycle and its pacer (Go's mgc.go / mgcpacer.go
 * twin).
 *
 * A cycle (gc_cycle):
 *   1. finish sweeping the previous cycle (Go's finishsweep), refresh the
 *      data/BSS roots (dl_iterate_phdr takes the loader's lock, so it is done
 *      while the world still runs);
 *   2. stop the world (thread.c);
 *   3. mark from the roots, in parallel on all cores (mgcmark.c);
 *   4. mark termination: sweepgen += 2, sweep the spans in caches, make every
 *      other span unswept, pace the sweepers (mgcsweep.c), set the next goal;
 *   5. start the world; sweeping continues concurrently (lazily in mcentral,
 *      in the background, and in proportion to allocation); finalizers of
 *      unreachable objects run on their own thread (mfinal.c).
 * Marking is stop-the-world and conservative, so there is no write barrier
 * and no need to allocate black: no mutator runs while marking.
 *
 * Pacer (Go's GOGC semantics): after a cycle that found `marked` live bytes,
 * the goal is marked + marked * GOGC / 100, at least 4 MiB * GOGC / 100
 * (Go's heapMinimum). The memory limit (GOMEMLIMIT) caps the goal. heapLive
 * is Go's: bytes in objects allocated since the mark plus what the mark
 * found, counted a span at a time on refill (the refill's free slots are
 * counted as if filled, corrected when the span goes back). A cycle starts
 * when heapLive reaches the goal; the check happens only on span refills and
 * large allocations (never per object), and the cycle runs when the thread
 * leaves the slow path (a safe point).
 *
 * GOGC=off (or ga_set_gc_percent(-1)) disables automatic cycles; ga_collect
 * still runs one. ga_disable / ga_enable nest and block every cycle.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "mgc.h"
#include "options.h"

_Atomic int64_t ga__heapLive;
_Atomic int ga__gcWanted;

static struct {
  ga_mutex lock;            /* one cycle at a time */
  _Atomic int64_t trigger;  /* heapLive that starts a cycle */
  _Atomic int disabled;     /* ga_disable nesting */
  uint64_t heapMarked;      /* live bytes found by the last mark */
  uint64_t numgc;
  uint64_t gcCpuNs;         /* collector CPU time (wall x workers, roughly) */
  int64_t startNs;          /* process start, for gctrace */
  uint64_t lastGoal;         /* goal of the previous cycle (scavenger) */
} gc = {.trigger = 4 << 20};

/* Defined (as 1) only by the malloc drop-in, which runs with the collector
 * off: the process's other allocations are invisible to a collector. */
extern const int ga__override_mode __attribute__((weak));

bool ga__collector_wanted(void) { return &ga__override_mode == NULL; }

void ga__heapLive_add(intptr_t bytes) {
  if (!ga__collector_wanted()) return; /* the drop-in: nobody reads it */
  int64_t v = atomic_fetch_add_explicit(&ga__heapLive, bytes, memory_order_relaxed) + bytes;
  if (bytes > 0 && v >= atomic_load_explicit(&gc.trigger, memory_order_relaxed) &&
      ga__option_gogc() >= 0 &&
      ga__collector_wanted() && !atomic_load_explicit(&ga__gcWanted, memory_order_relaxed))
    atomic_store_explicit(&ga__gcWanted, 1, memory_order_relaxed);
}

/* Settings come from the options table (options.c), read at heap init. */
void ga__gc_init(void) {
  gc.startNs = ga__sys_nanotime();
  int pct = ga__option_gogc();
  int64_t min = (int64_t)(4 << 20) * (pct < 0 ? 100 : pct) / 100;
  gc.trigger = min < (1 << 20) ? (1 << 20) : min;
}

/* Go's commit(): the next goal from what this cycle marked. */
static int64_t heap_goal(uint64_t marked) {
  int pct = ga__option_gogc();
  int64_t goal;
  if (pct < 0) {
    goal = INT64_MAX;
  } else {
    goal = (int64_t)marked + (int64_t)marked * pct / 100;
    int64_t min = (int64_t)(4 << 20) * pct / 100;
    if (goal < min) goal = min;
    if (goal < (1 << 20)) goal = 1 << 20;
  }
  int64_t limit = ga__option_memlimit();
  if (limit != INT64_MAX) {
    /* Leave Go's headroom (3 %, at least 1 MiB) under the limit. */
    int64_t head = limit / 100 * 3;
    if (head < (1 << 20)) head = 1 << 20;
    int64_t lgoal = limit - head;
    if (lgoal < (int64_t)marked) lgoal = (int64_t)marked + (1 << 20);
    if (lgoal < goal) goal = lgoal;
  }
  return goal;
}

static double ms(int64_t ns) { return (double)ns / 1e6; }

static void print_trace(uint64_t n, int64_t start, int64_t stw, int64_t mark,
                        int64_t term, uint64_t before, uint64_t atmark, uint64_t marked,
                        int64_t goal, int workers, bool forced) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  double frac = cpu > 0 ? (double)gc.gcCpuNs / 1e9 / cpu : 0;
  if (frac > 1) frac = 1;
  fprintf(stderr,
          "gc %llu @%.3fs %.0f%%: %.3f+%.3f+%.3f ms clock, %.3f+%.3f ms cpu, "
          "%llu->%llu->%llu MB, %lld MB goal, %d threads, %d P%s\n",
          (unsigned long long)n, (double)(start - gc.startNs) / 1e9, frac * 100,
          ms(stw), ms(mark), ms(term), ms(mark) * workers, ms(term),
          (unsigned long long)(before >> 20), (unsigned long long)(atmark >> 20),
          (unsigned long long)(marked >> 20), (long long)(goal >> 20),
          ga__thread_count(), workers, forced ? " (forced)" : "");
}

/* One cycle. Returns false if none ran (disabled, or not needed). */
static bool gc_cycle(bool forced) {
  if (!ga__collector_wanted()) return false;
  ga__ensure_init();
  bool temp_registered = false;
  if (!ga__thread_is_registered()) {
    ga_thread_register(); /* the collector scans its own stack too */
    temp_registered = true;
  }
  ga_mutex_lock(&gc.lock);
  if (atomic_load(&gc.disabled) ||
      (!forced && atomic_load(&ga__heapLive) < atomic_load(&gc.trigger))) {
    ga_mutex_unlock(&gc.lock);
    if (temp_registered) ga_thread_unregister();
    return false;
  }
  /* Parallel marking pays for waking helpers and for atomic mark bits; it
   * wins only on big heaps (measured: binary-trees with 2 MiB live ran
   * faster with one marker). */
  int workers = 1;
  if (gc.heapMarked >= (32u << 20)) {
    workers = ga__sys_ncpu();
    if (workers > 8) workers = 8;
  }
  int64_t t0 = ga__sys_nanotime();
  ga__finish_sweep();
  ga__gc_refresh_data_roots();
  uint64_t before = (uint64_t)atomic_load(&ga__heapLive);
  int64_t t1 = ga__sys_nanotime();
  ga__stop_the_world();
  ga__finish_sweep(); /* spans swept concurrently since: none may be left */
  uint64_t atmark = (uint64_t)atomic_load(&ga__heapLive);
  int64_t t2 = ga__sys_nanotime();
  uint64_t marked = ga__gc_mark(workers);
  int64_t t3 = ga__sys_nanotime();
  gc.heapMarked = marked;
  int64_t goal = heap_goal(marked);
  atomic_store(&ga__heapLive, (int64_t)marked);
  atomic_store(&gc.trigger, goal);
  ga__gc_sweep_start(marked, (uint64_t)goal);
  atomic_store(&ga__gcWanted, 0);
  int64_t t4 = ga__sys_nanotime();
  ga__start_the_world();
  uint64_t n = ++gc.numgc;
  uint64_t pause = (uint64_t)(t4 - t1);
  gc.gcCpuNs += (uint64_t)(t1 - t0) + (uint64_t)(t2 - t1) +
                (uint64_t)(t3 - t2) * (uint64_t)workers + (uint64_t)(t4 - t3);
  uint64_t lastGoal = gc.lastGoal;
  gc.lastGoal = (uint64_t)goal;
  ga_mutex_unlock(&gc.lock);
  ga__stats_gc_cycle(&(ga_gc_cycle_stats){
      .pause_ns = pause,
      .cpu_ns = (uint64_t)(t1 - t0) + (uint64_t)(t2 - t1) +
                (uint64_t)(t3 - t2) * (uint64_t)workers + (uint64_t)(t4 - t3),
      .next_gc = (uint64_t)goal,
      .forced = forced});
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  ga__scavenger_set_goal((uint64_t)hc.pagesInUse * GA_PAGE_SIZE,
                         ga__option_gogc() < 0 ? 0 : (uint64_t)goal, lastGoal);
  ga__bgsweep_start();
  ga__final_wake();
  if (ga__option_trace(GA_TRACE_GC))
    print_trace(n, t0, t2 - t1, t3 - t2, t4 - t3, before, atmark, marked, goal, workers,
                forced);
  if (temp_registered) ga_thread_unregister();
  return true;
}

void ga__gc_from_trigger(void) {
  int one = 1;
  if (atomic_compare_exchange_strong(&ga__gcWanted, &one, 0)) gc_cycle(false);
}

void ga_collect(void) {
  if (!ga__collector_wanted()) return;
  if (gc_cycle(true)) ga__finish_sweep();
}

/* ga_set_gc_percent / ga_set_memory_limit (options.c) changed a setting:
 * recompute the goal from what the last cycle marked (Go's commit). */
void ga__gc_pacer_changed(void) {
  if (!ga__collector_wanted()) return;
  ga__ensure_init();
  ga_mutex_lock(&gc.lock);
  atomic_store(&gc.trigger, heap_goal(gc.heapMarked));
  ga_mutex_unlock(&gc.lock);
  if (atomic_load(&ga__heapLive) >= atomic_load(&gc.trigger) && ga__option_gogc() >= 0)
    atomic_store(&ga__gcWanted, 1);
}

void ga_disable(void) { atomic_fetch_add(&gc.disabled, 1); }
void ga_enable(void) {
  if (atomic_fetch_sub(&gc.disabled, 1) <= 0) {
    atomic_fetch_add(&gc.disabled, 1);
    ga__throw("ga_enable without a matching ga_disable");
  }
}
