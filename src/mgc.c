/*
 * mgc.c — the collection cycle and its pacer (Go's mgc.go / mgcpacer.go
 * twin).
 *
 * A cycle is run by the collector's own thread (gcBgWorker, started on the
 * first cycle), so the thread whose allocation crossed the trigger goes on
 * running, as in Go. With the kernel's write watch (mwritewatch.c) the mark
 * is mostly concurrent (Boehm, Demers and Shenker's "mostly parallel"
 * collection, with the kernel as the dirty-page oracle):
 *   1. finish sweeping the previous cycle (Go's finishsweep), refresh the
 *      data/BSS roots (dl_iterate_phdr takes the loader's lock, so it is done
 *      while the world still runs), write-protect the heap's scan spans
 *      (every store to them from here on is recorded);
 *   2. stop the world (short): ga__gcphase = GC_MARK (begin_mark_phase),
 *      grey the roots;
 *   3. start the world; mark concurrently on the collector's thread
 *      (ncpu/4 markers, at least one, as Go's 25 % rule): drain, rescan the
 *      marked objects on the pages written meanwhile (re-protecting those
 *      the reset protected), drain again, and once more if much was
 *      written (mgcmark.c ga__gc_mark_concurrent);
 *   4. stop the world (mark termination): rescan the pages written since
 *      that scan and the roots, drain with every core, settle finalizers;
 *      sweepgen += 2, sweep the spans in caches, make every other span
 *      unswept, pace the sweepers (mgcsweep.c), set the next goal; only then
 *      ga__gcphase = GC_OFF;
 *   5. start the world, unprotect the heap (or leave it protected for the
 *      next cycle, when the program writes little of it between cycles:
 *      mwritewatch.c ga__ww_stop); sweeping continues concurrently
 *      (lazily, in the background, in proportion to allocation); finalizers
 *      run on their own thread (mfinal.c).
 * Correctness: an object reachable at termination is reachable from a root
 * (rescanned at 4) through marked objects; a marked object either was
 * scanned after its last pointer store, or was stored into after its page
 * was protected (or its page was never protected, which counts as
 * written), so the page is reported and the object rescanned at 3 or 4 (a
 * page's report is consumed and re-protected before its rescan).
 * Allocation stays white (Go allocates black): objects the program
 * allocates during the mark are traced only if reachable at termination,
 * and most die young, so a fast allocator does not flood the rescans with
 * new objects. A span freed during the mark keeps its storage until the
 * end (mheap.c), so markers reading stale span records never write into
 * reused memory.
 * Minor cycles (generational, with sticky marks; GOALLOC_GC_GENERATIONAL):
 * with the write watch, when the next cycle is expected to be minor
 * (want_minor), sweeping keeps the marks of what it finds alive (a major
 * cycle that follows anyway clears every mark at step 1; otherwise the
 * sweep clears them, as before). A minor cycle keeps them:
 * an object that survived a cycle is old, is not traced again, and frees
 * nothing; the remembered set is the pages written since the last cycle
 * (its step 1 protects nothing: its first rescan at step 3 reports and
 * re-protects them, and rescans their marked objects), and the end of the
 * cycle before it (step 5) left protected only the spans whose every slot
 * is marked. The correctness argument above holds with "marked" including
 * the old objects: each was scanned after its page was last protected.
 * Old objects that died meanwhile are counted live until the next major
 * cycle, so minor cycles run only while they pay (want_minor).
 * Without the write watch (older kernels, valgrind, a fork child,
 * GOALLOC_GC_CONCURRENT=0), and when a stop-the-world mark would be short
 * anyway (want_concurrent), steps 2-4 are one stop-the-world mark.
 *
 * Pacer (Go's GOGC semantics): after a cycle that found `marked` live bytes,
 * the goal is marked + marked * GOGC / 100, at least 4 MiB * GOGC / 100
 * (Go's heapMinimum). The memory limit (GOMEMLIMIT) caps the goal. heapLive
 * is Go's: bytes in objects allocated since the mark plus what the mark
 * found, counted a span at a time on refill (the refill's free slots are
 * counted as if filled, corrected when the span goes back). A concurrent
 * cycle starts early enough that marking ends near the goal (commit); a
 * stop-the-world cycle starts at the goal. A thread that allocates past the
 * goal while a cycle marks helps it (Go's mark assist: it joins the running
 * drain); past the goal by 30 % of the runway (the goal less what the last
 * mark found) it waits for the cycle's end (HARD_PAST_GOAL). The check
 * happens only on span refills and large allocations (never per object),
 * when the thread leaves the slow path (a safe point).
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
_Atomic int ga__gcphase;

static struct {
  ga_mutex lock;            /* one cycle at a time */
  _Atomic int64_t trigger;  /* heapLive that starts a cycle */
  _Atomic int disabled;     /* ga_disable nesting */
  uint64_t heapMarked;      /* live bytes found by the last mark */
  uint64_t numgc;
  uint64_t gcCpuNs;         /* collector CPU time (wall x workers, roughly) */
  int64_t startNs;          /* process start, for gctrace */
  uint64_t lastGoal;         /* goal of the previous cycle (scavenger) */
  _Atomic int64_t goal;     /* heap goal of the cycle being paced */
  _Atomic int running;      /* a cycle is in progress */
  uint64_t markAlloc[2];    /* bytes allocated during the last concurrent
                               major [0] and minor [1] mark */
  double stwMarkRate;       /* bytes per ns, best stop-the-world mark so far */
  uint64_t lastHeapAtMark;  /* heapLive when the last cycle's mark began */
  uint64_t majorMarked;     /* live bytes found by the last major cycle */
  uint64_t prevMajorMarked; /* and by the one before */
  unsigned minors;          /* minor cycles since it */
  unsigned minorBackoff;    /* major cycles to run before the next minor */
  unsigned minorFails;      /* minor cycles in a row that did not pay */
  /* The collector's thread: requests and completions. */
  _Atomic uint32_t reqEpoch;  /* bumped with each request (worker waits) */
  _Atomic uint32_t doneEpoch; /* bumped after each cycle (requesters wait) */
  _Atomic uint32_t forcedReq; /* ga_collect calls so far */
  _Atomic uint32_t forcedDone;/* ga_collect calls a finished cycle covers */
  ga_bgthread worker;
} gc = {.trigger = 4 << 20, .goal = 4 << 20};

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

/* Go's commit(): the next goal from what this cycle marked, with a runway
 * of GOGC percent of `basis` (the live heap: `marked`, or after a minor
 * cycle the last major cycle's, since what a minor cycle counts live
 * includes whatever died among the old objects). */
static int64_t heap_goal(uint64_t marked, uint64_t basis) {
  int pct = ga__option_gogc();
  int64_t goal;
  if (pct < 0) {
    goal = INT64_MAX;
  } else {
    goal = (int64_t)marked + (int64_t)basis * pct / 100;
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

/* Go's format: heap when the cycle started -> when the mark ended -> what
 * the mark found live. */
static void print_trace(uint64_t n, int64_t start, int64_t stw, int64_t mark,
                        int64_t term, uint64_t before, uint64_t atend, uint64_t marked,
                        int64_t goal, int workers, bool forced, bool minor) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  double frac = cpu > 0 ? (double)gc.gcCpuNs / 1e9 / cpu : 0;
  if (frac > 1) frac = 1;
  fprintf(stderr,
          "gc %llu @%.3fs %.0f%%: %.3f+%.3f+%.3f ms clock, %.3f+%.3f ms cpu, "
          "%llu->%llu->%llu MB, %lld MB goal, %d threads, %d P%s%s\n",
          (unsigned long long)n, (double)(start - gc.startNs) / 1e9, frac * 100,
          ms(stw), ms(mark), ms(term), ms(mark) * workers, ms(term),
          (unsigned long long)(before >> 20), (unsigned long long)(atend >> 20),
          (unsigned long long)(marked >> 20), (long long)(goal >> 20),
          ga__thread_count(), workers, forced ? " (forced)" : "",
          minor ? " (minor)" : "");
}

/* Markers: the stop-the-world phases use every core once the heap is big
 * enough to pay for waking helpers (measured when marks were atomic
 * bits: binary-trees with 2 MiB live ran faster with one marker); below
 * that a mark starts alone and wakes them if it turns out long (mgcmark.c
 * recruit_helpers). The concurrent phase leaves the program three quarters
 * of the cores (Go's 25 %). */
static int stw_workers(void) {
  if (gc.heapMarked < (32u << 20)) return 1;
  return ga__gc_all_markers();
}
static int concurrent_workers(void) {
  if (gc.heapMarked < (32u << 20)) return 1;
  int n = ga__sys_ncpu() / 4;
  return n < 1 ? 1 : n > 8 ? 8 : n;
}

/* Concurrent or stop-the-world? A concurrent mark costs the program a
 * fault (and, on most machines, an interrupt of the collector's CPU) per
 * protected page it writes, and the collector page-table walks: it pays
 * when the pause it saves is long enough. A heap that a stop-the-world
 * mark gets through in under CONC_MIN_PAUSE is marked stop-the-world. The
 * estimate is the live heap expected (expected_live) at the best mark rate
 * of the stop-the-world marks so far. It was 4 ms while each concurrent
 * cycle unprotected the heap run by run (gc-churn, 3 ms pauses, ran twice
 * as long concurrently); with one unprotecting call per range, gc-churn
 * runs as fast either way (interleaved, 3 rounds: 1.15-1.35 s both) and
 * its longest pause is 0.7-1.2 ms concurrently against 3-7 ms. */
#define CONC_MIN_PAUSE_NS 1000000
static bool want_concurrent(uint64_t live) {
  if (!ga__ww_enabled()) return false;
  if (ga__option_get(GA_OPT_GC_CONCURRENT) >= 2) return true;
  /* Until a stop-the-world mark was measured: 2 bytes per ns, about what
   * this machine's marks of small pointer-dense objects achieve. */
  double rate = gc.stwMarkRate > 0 ? gc.stwMarkRate : 2.0;
  return (double)live / rate >= CONC_MIN_PAUSE_NS;
}

/* At the start of a cycle: the live heap it will find, estimated as the
 * heap now times the live fraction the last cycle found (a heap that
 * doubled since, as a growing program's does, likely holds twice as much). */
static uint64_t expected_live(void) {
  int64_t now = atomic_load(&ga__heapLive);
  /* Past the goal (a burst of big objects arrived before the cycle could
   * start) is no sign of a bigger live heap. */
  int64_t goal = atomic_load(&gc.goal);
  if (now > goal) now = goal;
  if (now <= 0) return gc.heapMarked;
  /* The first cycle knows nothing yet: the whole heap may be live (the
   * program has only been building so far). */
  if (gc.lastHeapAtMark == 0)
    return (uint64_t)now > gc.heapMarked ? (uint64_t)now : gc.heapMarked;
  double frac = (double)gc.heapMarked / (double)gc.lastHeapAtMark;
  if (frac > 1) frac = 1;
  uint64_t est = (uint64_t)((double)now * frac);
  return est > gc.heapMarked ? est : gc.heapMarked;
}

/* Pace the next cycle from what this one found live (gc.lock held). A
 * concurrent cycle must start early enough that marking ends before the
 * heap reaches the goal: Go's pacer estimates how much the program
 * allocates during a mark; here it is simply what it allocated during the
 * last one of the kind expected next (gc.markAlloc: a minor cycle's mark
 * is short, and pacing a major one from it started the major one late:
 * gcbench's heap ran 13 MB past its goal), plus a quarter, kept between
 * 5 % and 95 % of the runway (Go keeps 70-95 % and lets assists absorb the
 * rest: a marker that cannot keep up with the program's allocation here
 * simply starts earlier, up to right after the previous cycle, and assists
 * do the rest). */
static int64_t commit(uint64_t live, uint64_t basis, bool concurrent, bool minor_next) {
  gc.heapMarked = live;
  int64_t goal = heap_goal(live, basis);
  int64_t trigger = goal;
  if (concurrent && goal != INT64_MAX && goal > (int64_t)live) {
    int64_t runway = goal - (int64_t)live;
    int64_t alloc = (int64_t)gc.markAlloc[minor_next];
    int64_t early = alloc + alloc / 4;
    if (early > runway / 20 * 19) early = runway / 20 * 19;
    if (early < runway / 20) early = runway / 20;
    trigger = goal - early;
  }
  atomic_store(&ga__heapLive, (int64_t)live);
  atomic_store(&gc.goal, goal);
  atomic_store(&gc.trigger, trigger);
  return goal;
}

/* The world is stopped, but threads that are not registered run on, and
 * their caches were not swept at the last mark termination: a span such a
 * cache held then kept that cycle's marks (it is "stale": sweepgen
 * behind), and a stale mark would stop this cycle from scanning a live
 * object. Clear every stale span's marks (mheap.c) and enter GC_MARK with
 * every mcentral locked, so that a concurrent uncacheSpan either finished
 * before (and cleared its span's marks itself, mcentral.c) or sees GC_MARK
 * and leaves them (they are this cycle's from here on). The phase ends
 * only after the sweep has started (gc_cycle_locked). */
bool ga__gc_staleMarks;
bool ga__gc_sticky;
bool ga__gc_keepMarks;

static void begin_mark_phase(void) {
  ga__mcentral_lockAll();
  atomic_store(&ga__gcphase, GC_MARK);
  /* A walk of every span record (a cache miss each: 2 ms of this pause on
   * a 150 MB heap), so only when a cache escaped the last sweep. Kept
   * marks are never stale: a major cycle cleared them all before this,
   * and a minor one keeps them. */
  if (ga__gc_staleMarks && !ga__gc_keepMarks)
    ga__mheap_clearStaleMarks(atomic_load(&ga__sweepgen_h));
  ga__mcentral_unlockAll();
}

/* Set on the thread running a cycle: its own allocations (the finalizer
 * queue's, the cycle's bookkeeping) leave slow paths too, and must not
 * assist or wait for the cycle they are part of (ga__gc_from_trigger). */
static __thread bool in_cycle;
static void gc_cycle_body(bool forced);

/* One cycle, gc.lock held, run by the collector's thread (or, without the
 * write watch, possibly by the thread that triggered it). */
static void gc_cycle_locked(bool forced) {
  in_cycle = true;
  gc_cycle_body(forced);
  in_cycle = false;
}

/* Minor or major? A minor cycle needs the write watch, and marks
 * concurrently (it is mostly the first rescan of the pages written since
 * the last cycle). It stops being worth it when what the old objects hold
 * has grown by MINOR_GROWTH since the last major cycle: they are counted
 * live, dead or not, so the heap goal grows with them. */
#define MINOR_GROWTH 16
#define MAX_MINORS 16
/* A minor cycle that found more young survivors than MINOR_PAYS of the
 * old heap saved little tracing (the old part is small beside them) and
 * costs memory (they stay until a major cycle, dead or not): the next
 * MINOR_BACKOFF cycles are major, twice as many after each minor cycle
 * that fails again, up to MAX_BACKOFF (gc-churn, whose slot table is
 * rewritten all the time, never pays: peak RSS 87 MiB instead of 78 with
 * a fixed backoff of 8, where 1 minor cycle in 8 was a failed probe). */
#define MINOR_PAYS 32
#define MINOR_BACKOFF 8
#define MAX_BACKOFF 256 /* MINOR_BACKOFF << 5 */
/* And only while the live heap is steady: the last two major cycles found
 * it within STEADY of each other. A growing program's young objects
 * mostly survive (they are what it is building), and a minor cycle there
 * only moves its cycles (gcbench building its 50 MB stretch tree: peak
 * RSS 108 MiB in 2 runs of 6, against 77-87). */
#define STEADY 8
static bool want_minor(bool forced, bool concurrent) {
  if (!ga__gc_sticky || forced || !concurrent || gc.majorMarked == 0 ||
      gc.minors >= MAX_MINORS)
    return false;
  if (ga__option_get(GA_OPT_GC_GENERATIONAL) >= 2) return true;
  bool steady = gc.majorMarked <= gc.prevMajorMarked + gc.prevMajorMarked / STEADY;
  return steady && gc.minorBackoff == 0 &&
         gc.heapMarked < gc.majorMarked + gc.majorMarked / MINOR_GROWTH;
}

static void gc_cycle_body(bool forced) {
  int64_t t0 = ga__sys_nanotime();
  ga__finish_sweep();
  ga__gc_refresh_data_roots();
  bool concurrent = want_concurrent(expected_live());
  /* The last sweep kept the marks only if it expected a minor cycle. */
  bool minor = ga__gc_keepMarks && want_minor(forced, concurrent);
  if (minor) {
    ga__ww_begin_minor();
  } else {
    if (ga__gc_keepMarks) ga__mheap_clearAllMarks();
    concurrent = concurrent && ga__ww_reset();
  }
  uint64_t before = (uint64_t)atomic_load(&ga__heapLive);
  int workers = stw_workers();
  int cworkers = concurrent_workers();

  int64_t t1 = ga__sys_nanotime();
  ga__stop_the_world();
  ga__finish_sweep(); /* spans swept concurrently since: none may be left */
  begin_mark_phase();
  uint64_t atmark = (uint64_t)atomic_load(&ga__heapLive);
  uint64_t marked;
  int64_t t2, t3, t4;
  if (concurrent) {
    ga__gc_mark_start();
    t2 = ga__sys_nanotime();
    ga__start_the_world();
    ga__gc_mark_concurrent(cworkers);
    t3 = ga__sys_nanotime();
    ga__stop_the_world();
    /* Every core: the final drain traces what is young and reachable. */
    workers = ga__gc_all_markers();
    marked = ga__gc_mark_terminate(workers);
  } else {
    t2 = t3 = ga__sys_nanotime();
    marked = ga__gc_mark(workers);
    int64_t markNs = ga__sys_nanotime() - t3;
    /* The best rate seen: a mark slowed once (the machine was busy) must
     * not tip the choice (want_concurrent). */
    double rate = markNs > 0 ? (double)marked / (double)markNs : 0;
    if (marked > (1u << 20) && rate > gc.stwMarkRate) gc.stwMarkRate = rate;
  }
  uint64_t now = (uint64_t)atomic_load(&ga__heapLive);
  /* A minor cycle marked only what is young: the old objects are live as
   * far as it knows (what they hold was counted by an earlier cycle). */
  uint64_t live = minor ? gc.heapMarked + marked : marked;
  if (minor) {
    gc.minors++;
    if (marked > gc.majorMarked / MINOR_PAYS) {
      gc.minorBackoff = MINOR_BACKOFF << gc.minorFails;
      if ((MINOR_BACKOFF << gc.minorFails) < MAX_BACKOFF) gc.minorFails++;
    } else {
      gc.minorFails = 0;
    }
  } else {
    gc.prevMajorMarked = gc.majorMarked;
    gc.majorMarked = live;
    gc.minors = 0;
    if (gc.minorBackoff > 0) gc.minorBackoff--;
  }
  gc.lastHeapAtMark = atmark;
  if (concurrent) gc.markAlloc[minor] = now > atmark ? now - atmark : 0;
  bool minor_next = want_minor(false, true);
  int64_t goal = commit(live, minor ? gc.majorMarked : live, want_concurrent(live), minor_next);
  ga__gc_keepMarks = minor_next;
  ga__gc_sweep_start(live, (uint64_t)atomic_load(&gc.trigger));
  /* Only now (see begin_mark_phase): a stale span uncached before the
   * sweep started keeps this cycle's marks and is swept with them. */
  atomic_store(&ga__gcphase, GC_OFF);
  atomic_store(&ga__gcWanted, 0);
  /* The heap in use now, before any sweeper frees a span: the most this
   * cycle had in use, which the next one will need again (the scavenger's
   * goal; read once the world runs, the background sweeper had already
   * freed part of it, and the scavenger released pages that the program
   * faulted back in before the next cycle). */
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  t4 = ga__sys_nanotime();
  ga__start_the_world();
  if (concurrent) ga__ww_stop(minor_next);
  ga__mheap_freeDeferred();

  uint64_t n = ++gc.numgc;
  uint64_t pause = (uint64_t)(t2 - t1) + (uint64_t)(t4 - t3);
  uint64_t cpu = (uint64_t)(t1 - t0) + (uint64_t)(t2 - t1) +
                 (uint64_t)(t3 - t2) * (uint64_t)(concurrent ? cworkers : workers) +
                 (uint64_t)(t4 - t3) * (uint64_t)workers;
  gc.gcCpuNs += cpu;
  uint64_t lastGoal = gc.lastGoal;
  gc.lastGoal = (uint64_t)goal;
  ga__stats_gc_cycle(&(ga_gc_cycle_stats){
      .pause_ns = pause, .cpu_ns = cpu, .next_gc = (uint64_t)goal, .forced = forced,
      .concurrent = concurrent, .minor = minor});
  ga__scavenger_set_goal((uint64_t)hc.pagesInUse * GA_PAGE_SIZE,
                         ga__option_gogc() < 0 ? 0 : (uint64_t)goal, lastGoal);
  ga__bgsweep_start();
  ga__final_wake();
  if (ga__option_trace(GA_TRACE_GC))
    print_trace(n, t0, t2 - t1, t3 - t2, t4 - t3, before, now, live, goal,
                concurrent ? cworkers : workers, forced, minor);
}

/* How far past the goal, in percent of the runway, a thread may allocate
 * while a cycle marks before it waits for the cycle's end. gc-churn, whose
 * 64 KiB-1 MiB buffers bring 40 MB into a 5 ms mark, ran past its goal by
 * a quarter at 50 %: peak RSS 86-89 MiB against Go's 87. At 30 %: 80 MiB,
 * 1.59x Boehm GC's speed instead of 1.84x (7 interleaved rounds); gcbench
 * 0.97x the time and 120 MiB instead of 145, binary-trees 1.02x and 55 MiB
 * instead of 67 (5-7 rounds). At 0 % gc-churn took 1.67x the time. */
#define HARD_PAST_GOAL 30

/* Should an automatic cycle run now? */
static bool wanted(void) {
  return !atomic_load(&gc.disabled) && ga__option_gogc() >= 0 &&
         atomic_load(&ga__heapLive) >= atomic_load(&gc.trigger);
}

/* ---- the collector's thread ------------------------------------------------ */

static void *gc_bg_worker(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    ga__epoch_wait(&gc.reqEpoch, &seen);
    if (ga__bgthread_exiting(&gc.worker)) return NULL;
    for (;;) {
      uint32_t fr = atomic_load(&gc.forcedReq);
      bool forced = fr != atomic_load(&gc.forcedDone);
      ga_mutex_lock(&gc.lock);
      bool run = forced ? !atomic_load(&gc.disabled) : wanted();
      if (run) {
        atomic_store(&gc.running, 1);
        gc_cycle_locked(forced);
        atomic_store(&gc.running, 0);
      }
      ga_mutex_unlock(&gc.lock);
      if (forced) atomic_store(&gc.forcedDone, fr);
      atomic_fetch_add_explicit(&gc.doneEpoch, 1, memory_order_release);
      ga__sys_futex_wake((uint32_t *)&gc.doneEpoch, INT32_MAX);
      /* A trigger is served once; ga_collect calls made meanwhile each get
       * a cycle that starts after them. */
      if (!forced && atomic_load(&gc.forcedReq) == atomic_load(&gc.forcedDone)) break;
    }
  }
  return NULL;
}

static bool worker_request(void) {
  if (!ga__bgthread_alive(&gc.worker)) {
    /* Under the lock: a second caller waits for the first one's start
     * instead of running its cycle here. */
    ga_mutex_lock(&gc.lock);
    bool alive = ga__bgthread_start(&gc.worker, gc_bg_worker, false);
    ga_mutex_unlock(&gc.lock);
    if (!alive) return false;
  }
  atomic_fetch_add_explicit(&gc.reqEpoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)&gc.reqEpoch, 1);
  return true;
}

/* Without the write watch a cycle stops the world from start to end: run
 * it right here (the caller's own stack is then scanned as a root too). */
static bool gc_cycle_here(bool forced) {
  bool temp_registered = false;
  if (!ga__thread_is_registered()) {
    ga_thread_register();
    temp_registered = true;
  }
  ga__clear_stack(); /* the cycle's frames lie below, on the scanned stack */
  ga_mutex_lock(&gc.lock);
  bool run = forced ? !atomic_load(&gc.disabled) : wanted();
  if (run) gc_cycle_locked(forced);
  ga_mutex_unlock(&gc.lock);
  if (temp_registered) ga_thread_unregister();
  return run;
}

void ga__gc_from_trigger(void) {
  if (in_cycle) return; /* the collector itself: it never waits for itself */
  int one = 1;
  if (!atomic_compare_exchange_strong(&ga__gcWanted, &one, 0)) return;
  if (!ga__collector_wanted()) return;
  ga__ensure_init();
  if (!ga__ww_enabled()) {
    gc_cycle_here(false);
    return;
  }
  if (atomic_load(&gc.running)) {
    /* A cycle is marking: past the goal, wait for it rather than let the
     * heap run away from a marker that cannot keep up. */
    int64_t goal = atomic_load(&gc.goal);
    if (atomic_load(&ga__heapLive) >= goal && !atomic_load(&gc.disabled)) {
      /* Help while there is published work. Past the goal by
       * HARD_PAST_GOAL of the runway, stop allocating until the cycle ends
       * (helping whenever there is work): the marker cannot keep up. */
      int64_t hard = goal + (goal - (int64_t)gc.heapMarked) * HARD_PAST_GOAL / 100;
      uint32_t since = atomic_load(&gc.doneEpoch);
      ga__clear_stack(); /* it may be stopped (and scanned) while it waits */
      while (atomic_load(&gc.running) && atomic_load(&gc.doneEpoch) == since) {
        bool over = atomic_load(&ga__heapLive) >= hard;
        if (!ga__gc_assist(over) && !over) break;
      }
    }
    return;
  }
  if (!worker_request()) gc_cycle_here(false);
}

void ga_collect(void) {
  if (!ga__collector_wanted()) return;
  ga__ensure_init();
  if (!ga__ww_enabled() || (!ga__bgthread_alive(&gc.worker) && !worker_request())) {
    if (gc_cycle_here(true)) ga__finish_sweep();
    return;
  }
  /* The collector's thread runs a cycle that starts after this call (one
   * already marking may have missed objects that died just now). The
   * caller's stack is a root while it waits: registered for that. */
  bool temp_registered = false;
  if (!ga__thread_is_registered()) {
    ga_thread_register();
    temp_registered = true;
  }
  ga__clear_stack(); /* it is stopped (and scanned) while it waits */
  uint32_t mine = atomic_fetch_add(&gc.forcedReq, 1) + 1;
  atomic_fetch_add_explicit(&gc.reqEpoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)&gc.reqEpoch, 1);
  for (;;) {
    uint32_t d = atomic_load_explicit(&gc.doneEpoch, memory_order_acquire);
    if ((int32_t)(atomic_load(&gc.forcedDone) - mine) >= 0) break;
    ga__sys_futex_wait((uint32_t *)&gc.doneEpoch, d);
  }
  if (temp_registered) ga_thread_unregister();
  ga__finish_sweep();
}

/* ga_set_gc_percent / ga_set_memory_limit (options.c) changed a setting:
 * recompute the goal from what the last cycle marked (Go's commit). */
void ga__gc_pacer_changed(void) {
  if (!ga__collector_wanted()) return;
  ga__ensure_init();
  ga_mutex_lock(&gc.lock);
  uint64_t live = gc.heapMarked;
  int64_t heapLive = atomic_load(&ga__heapLive);
  commit(live, live, want_concurrent(live), want_minor(false, true));
  atomic_store(&ga__heapLive, heapLive); /* commit resets it; keep the count */
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

/* fork: no cycle may be half-way when the address space is copied (the
 * child has none of the collector's threads). Taken before the heap locks. */
void ga__gc_fork_prepare(void) { ga_mutex_lock(&gc.lock); }
void ga__gc_fork_parent(void) { ga_mutex_unlock(&gc.lock); }
void ga__gc_fork_child(void) {
  atomic_store(&gc.lock.state, 0);
  ga__bgthread_forget(&gc.worker);
  atomic_store(&gc.running, 0);
  ga__ww_after_fork_child();
  ga__gc_mark_after_fork_child();
  ga__bgsweep_after_fork_child();
  ga__final_after_fork_child();
}

/* The collector's threads that run now: the worker, the mark helpers and
 * the background sweeper (solo.c, which must know that every thread of the
 * process but the caller is ours before it stops them). */
int ga__gc_threads(void) {
  return ga__bgthread_alive(&gc.worker) + ga__gc_helpers() + ga__bgsweep_running();
}

/* End them and wait until they have (unshare and setns: solo.c). Each
 * starts again when next needed: the worker with the next request, the
 * helpers with the next parallel mark, the sweeper at the next cycle's end.
 * The worker goes first: it may be in a cycle, which starts helpers and the
 * sweeper; it finishes that cycle, then sees the request. */
void ga__gc_threads_stop(void) {
  ga__bgthread_stop(&gc.worker, &gc.reqEpoch);
  ga__gc_helpers_stop();
  ga__bgsweep_stop();
}
