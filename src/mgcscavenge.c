/*
 * mgcscavenge.c — the scavenger: giving free memory back to the operating
 * system (Go's mgcscavenge.go twin, with one rule Go does not have).
 *
 * What "released" means. A free page that the OS still backs costs RSS; a
 * released ("scavenged") page has been given back with MADV_DONTNEED and
 * costs nothing until it is touched again, when the kernel maps a fresh zero
 * page. The page allocator keeps one scavenged bit per free page
 * (mpagealloc.c); mheap relies on released pages reading as zero (a span made
 * only of them has needzero = 0 and calloc does not clear it), so this file
 * releases only with ga__sys_unused (MADV_DONTNEED, never MADV_FREE) and
 * marks pages scavenged only when the OS accepted the call.
 *
 * How much to keep: the goals. Three rules decide which free pages go back.
 *
 *  1. Idle memory (goalloc's rule, on by default). Free pages that nobody has
 *     touched for GOALLOC_SCAVENGE_DELAY_MS (1 s) are released by a
 *     background thread, so an idle process gives its memory back without
 *     calling anything: the complaint users file against every malloc ("my
 *     server used 2 GiB for one burst and kept it"). The delay is the
 *     hysteresis that keeps a busy process from thrashing: memory that is
 *     freed and allocated again every 100 ms is never idle for a second, so
 *     it is never released and never faulted back in.
 *  2. The collector's goal (Go's gcPercentGoal). When the collector reports a
 *     cycle (ga__scavenger_set_goal), the retained heap (in-use + free, not
 *     released) should not exceed the in-use heap at that cycle (the largest
 *     of the last four: goalloc's hysteresis) scaled by how the heap goal
 *     moved, plus 10 %: Go's retainExtraPercent. Extra memory
 *     goes back in the background, and on each heap growth the allocating
 *     thread releases min(growth, excess) at once (Go's eager scavenging).
 *  3. The memory limit (GOALLOC_MEMLIMIT, ga_set_memory_limit; Go's
 *     memoryLimitGoal). The background thread keeps the retained heap under
 *     95 % of the limit, and an allocation that takes it over the limit
 *     releases the excess itself before it returns. This rule is forced: it
 *     ignores the idle time and the huge-page rule below.
 * ga_release_memory() releases every free page at once (forced), after
 * folding in frees made by other threads (ga__mcentral_reclaimAll).
 *
 * Which pages first: Go's order, highest address first. The page allocator
 * hands out the lowest free pages first (address-ordered first fit), so high
 * free memory is the least likely to be reused soon. The walk goes down the
 * heap one 2 MiB region (an x86-64 huge page) at a time, using the page
 * allocator's scavenge index to jump between regions that hold free,
 * unscavenged pages (ga__pages_find_unscavenged), and releases a region's
 * free pages in runs of up to the whole region.
 *
 * Per-region bookkeeping (under the heap lock, updated by two hooks that
 * mheap calls when a span is allocated and freed):
 *   inUse     pages of the region in in-use spans
 *   lastFree  when a page of the region was last freed (monotonic ns)
 * A region is "idle" when now - lastFree >= delay: every free page in it has
 * been free at least that long (a page freed later would have moved
 * lastFree). Huge-page friendliness: a region more than half in use is left
 * alone by the idle rule (releasing its free part would split a huge page
 * that is mostly doing useful work, for little memory), and by the goal rule
 * when it is over 31/32 in use (Go's density threshold, 496 of 512 pages);
 * the memory limit and ga_release_memory ignore density.
 *
 * Releasing one run (Go's scavengeOne): under the heap lock take the run
 * (ga__pages_take_unscavenged_in marks it allocated so nobody can get it),
 * drop the lock, madvise, take the lock again and free the run as scavenged.
 * madvise never runs under the lock, so allocation is blocked by the
 * scavenger for the bookkeeping only (a few hundred ns per run).
 *
 * The background thread. Started lazily, the first time the heap grows past
 * its first 4 MiB chunk (a smaller heap has nothing worth giving back), from
 * the allocating thread after it has dropped the heap lock. In the malloc
 * drop-in pthread_create itself calls calloc, i.e. us, while the creating
 * thread is in the middle of a refill: for the duration of the call the
 * thread allocates from a private bootstrap cache, which is flushed at once,
 * so the refill in progress is never disturbed. The thread blocks every
 * signal, is not registered with the collector (it never touches an object)
 * and sleeps on a futex:
 *   - until the first idle region becomes due (lastFree + delay), when some
 *     region is waiting; otherwise for one delay while the heap is
 *     changing, or "long" when it is quiet, and then the next span free
 *     wakes it (one futex wake per quiet-to-busy transition, from the free
 *     path, after the heap lock is dropped). A free that leaves the heap
 *     over the limit or the goal wakes it too, at most once per round;
 *   - until the next fold of remote frees. Objects freed by a thread that
 *     does not own their span only set a bit (mfree.c), so a span emptied
 *     that way stays in mcentral until someone folds the bits in. With the
 *     collector off nobody else does, so every delay/4 while the heap is
 *     changing (backing off, doubling up to RECLAIM_MAX_INTERVAL, while it
 *     is not) the thread probes 64 random heap pages for a span in no cache
 *     with unfolded frees (about 6 us, under the heap lock), and if one is
 *     found and no span was
 *     allocated or freed since the last look (the program has stopped
 *     using the heap), calls ga__mcentral_reclaimAll. Folding while the program
 *     is busy would only hand spans it is about to refill from back to the
 *     page heap (measured: twice the allocation time of a program that
 *     frees and refills 256 MiB every 100 ms). For frees too scattered for
 *     the probe, and for programs that never stop, the thread also folds
 *     blindly every BLIND_FOLD_DELAYS delays, backing off while that finds
 *     nothing and never more often than 100 times the fold's cost.
 * Background work is paced to DUTY_PERCENT of one CPU while the program is
 * using the heap: after each WORK_SLICE_NS of releasing during which some
 * span was allocated or freed, the thread sleeps (100/DUTY - 1) times as
 * long. A program that is not touching the heap is not slowed by the
 * release, so it gets its memory back at full speed.
 * Measured on the development machine (a 2-CPU VM): madvise releases 4 KiB
 * pages at about 10 GiB/s when given 2 MiB at a time (80-110 ms per GiB);
 * refaulting the same GiB costs the program 450 ms, which is what the
 * one-second delay protects a busy program from. On the bench workloads the
 * thread itself uses 0.01-9 ms of CPU per run (at most 0.3 % of the run),
 * 1-20 wake-ups; GOALLOC_SHOW_STATS reports both.
 *
 * Trace (GOALLOC_TRACE=scav): after each round that released memory, one
 * line in Go's scavtrace format on stderr:
 *   scav <bg KiB> KiB work (bg), <eager KiB> KiB work (eager), <released KiB>
 *   KiB now, <in-use * 100 / retained>% util
 * with " (forced)" appended for ga_release_memory.
 *
 * Lock order: mcentral locks -> heap lock (reclaimAll), as everywhere. The
 * hooks run under the heap lock and never block; anything that may (thread
 * creation, madvise, futex wake) runs after mheap drops the lock.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mgc.h" /* ga__pthread_create_raw */
#include "mpagealloc.h"
#include "options.h"

/* ---- constants -------------------------------------------------------- */

#define REGION_SHIFT 21                          /* 2 MiB: a huge page */
#define REGION_BYTES ((uintptr_t)1 << REGION_SHIFT)
#define REGION_PAGES (REGION_BYTES / GA_PAGE_SIZE) /* 256 */
#define REGIONS_PER_ARENA (GA_ARENA_BYTES / REGION_BYTES) /* 32 */

/* Density limits (pages in use in a region) above which a region is left
 * alone: the idle rule's "mostly in use", and Go's 496/512 for the goal. */
#define DENSE_IDLE (REGION_PAGES / 2)
#define DENSE_GOAL (REGION_PAGES * 31 / 32)

/* The background thread starts when the heap grows past this. */
#define START_BYTES ((uint64_t)GA_PALLOC_CHUNK_BYTES)

/* Background pacing: this share of one CPU, in slices of this much work. */
#define DUTY_PERCENT 10
#define WORK_SLICE_NS 1000000LL

/* Regions the walk may skip per heap-lock hold: each skip is a scavenge
 * index lookup (tens of ns), so a hold stays under ~10 us. */
#define SKIPS_PER_HOLD 64

/* Remote-free folding: longest back-off; at most 1 % of the time; a fold
 * without a hint every this many delays (about 1 % of the time of a program
 * that keeps refilling from the spans a fold returns to the heap: measured
 * with a 256 MiB heap freed and refilled every 100 ms). */
#define RECLAIM_MAX_INTERVAL (64LL * 1000000000)
#define RECLAIM_COST_FACTOR 100
#define BLIND_FOLD_DELAYS 16

/* Pages sampled per probe for unfolded remote frees (about 6 us). */
#define PROBE_SAMPLES 64

/* Never sleep less than this (bounds wake-ups with a tiny delay setting). */
#define MIN_SLEEP_NS 10000000LL

#define NS_PER_MS 1000000LL

/* ---- state -------------------------------------------------------------- */

typedef struct region {
  int64_t lastFree; /* monotonic ns of the last page freed here */
  uint32_t inUse;   /* pages in in-use spans */
  uint32_t pad;
} region;

typedef struct region_arena {
  region r[REGIONS_PER_ARENA];
} region_arena;

/* THREAD_STOPPED: stopped on request (ga__scavenger_stop); the next span
 * the heap hands out starts it again (ga__scav_after_alloc, which runs with
 * no lock held: pthread_create allocates). */
enum { THREAD_NONE = 0, THREAD_STARTING, THREAD_RUNNING, THREAD_FAILED, THREAD_STOPPED };
enum mode { MODE_IDLE, MODE_GOAL, MODE_FORCE };

static struct {
  /* Under the heap lock. */
  region_arena **arenas;  /* [GA_ARENA_L2_ENTRIES], mapped on first use */
  char *bump;             /* region_arena records are carved from here */
  size_t bumpLeft;
  bool broken;            /* metadata could not be mapped: idle rule off */
  uintptr_t seenPages;    /* ga__pages_total_count() at the last hook */
  uintptr_t pendingGrowth;/* pages grown, not yet seen by after_alloc */

  _Atomic uint64_t events;   /* span allocations and frees (activity) */
  _Atomic uintptr_t heapLo, heapHi; /* bounds of every span allocated */
  _Atomic int thread;        /* THREAD_* */
  _Atomic int exitRequested; /* ga__scavenger_stop: the thread returns */
  pthread_t tid;             /* joinable, for ga__scavenger_stop */
  _Atomic uint32_t wake;     /* futex word, bumped by every wake-up */
  _Atomic int sleepingLong;  /* the thread sleeps with no region waiting
                                and a quiet heap: a span free wakes it */
  _Atomic int kicked;        /* a free has woken the thread this round */
  _Atomic uint64_t goal;     /* retained-bytes goal from the collector */
  _Atomic int unusedFailed;  /* the OS refused MADV_DONTNEED once */

  /* Counters for statistics and the trace. */
  _Atomic uint64_t bgBytes, eagerBytes, forcedBytes;
  _Atomic uint64_t madvises, workNs, reclaims, reclaimNs;
  _Atomic uint64_t rounds, threadCpuNs; /* background thread: rounds, CPU */
  _Atomic uint64_t traceBg, traceEager;
} sc;

/* The background thread's own state. */
static struct {
  int64_t nextCheck, checkInterval;         /* probe for remote frees */
  int64_t nextBlindFold, blindInterval;     /* fold without a hint */
  uint64_t lastEvents;                      /* at the last probe */
  uint64_t eventsAtSleep;                   /* when the last sleep began */
  uint64_t rng;
} bg;

void ga__mheap_lock(void);
void ga__mheap_unlock(void);

static int64_t delay_ns(void) {
  return ga__option_get(GA_OPT_SCAVENGE_DELAY_MS) * NS_PER_MS;
}

/* ---- per-region records (heap lock) ------------------------------------- */

static region *region_of(uintptr_t addr, bool create) {
  if (sc.broken) return NULL;
  if (sc.arenas == NULL) {
    if (!create) return NULL;
    sc.arenas = ga__sys_alloc(GA_ARENA_L2_ENTRIES * sizeof(region_arena *));
    if (sc.arenas == NULL) {
      sc.broken = true;
      return NULL;
    }
  }
  uintptr_t ai = (addr >> GA_ARENA_SHIFT) & (GA_ARENA_L2_ENTRIES - 1);
  region_arena *ra = sc.arenas[ai];
  if (ra == NULL) {
    if (!create) return NULL;
    if (sc.bumpLeft < sizeof(region_arena)) {
      size_t chunk = 64 * 1024; /* 128 arenas = 8 GiB of heap per mmap */
      sc.bump = ga__sys_alloc(chunk);
      if (sc.bump == NULL) {
        sc.broken = true;
        return NULL;
      }
      sc.bumpLeft = chunk;
    }
    ra = (region_arena *)sc.bump; /* zero: inUse 0, lastFree long ago */
    sc.bump += sizeof(region_arena);
    sc.bumpLeft -= sizeof(region_arena);
    sc.arenas[ai] = ra;
  }
  return &ra->r[(addr >> REGION_SHIFT) & (REGIONS_PER_ARENA - 1)];
}

/* Apply a span's pages to the regions they cover: +npages on allocation,
 * -npages (and lastFree = now) on free. */
static void note_pages(uintptr_t base, uintptr_t npages, bool alloc,
                       int64_t now) {
  uintptr_t end = base + npages * GA_PAGE_SIZE;
  while (base < end) {
    uintptr_t rend = (base & ~(REGION_BYTES - 1)) + REGION_BYTES;
    if (rend > end) rend = end;
    uint32_t n = (uint32_t)((rend - base) / GA_PAGE_SIZE);
    region *r = region_of(base, true);
    if (r == NULL) return;
    if (alloc) {
      r->inUse += n;
    } else {
      r->inUse -= n;
      r->lastFree = now;
    }
    base = rend;
  }
}

/* Bytes retained (mapped and not released; Go's heapRetained) and bytes of
 * free pages not yet released. Heap lock held. */
static uint64_t retained_locked(void) {
  return (uint64_t)(ga__pages_total_count() - ga__pages_scavenged_count()) *
         GA_PAGE_SIZE;
}
static uint64_t unscav_locked(void) {
  return (uint64_t)(ga__pages_free_count() - ga__pages_scavenged_count()) *
         GA_PAGE_SIZE;
}

/* ---- heap hooks (mheap.c) ----------------------------------------------- */

static void note_growth_locked(void) {
  uintptr_t total = ga__pages_total_count();
  if (total > sc.seenPages) {
    sc.pendingGrowth += total - sc.seenPages;
    sc.seenPages = total;
  }
}

/* Does the heap hold more than the limit or the goal allows? Heap lock. */
static bool over_goals_locked(bool grew) {
  if (unscav_locked() == 0) return false;
  uint64_t ret = retained_locked();
  int64_t limit = ga__option_memlimit();
  if (limit != INT64_MAX && ret > (uint64_t)limit) return true;
  uint64_t goal = atomic_load_explicit(&sc.goal, memory_order_relaxed);
  return grew && goal != 0 && ret > goal;
}

bool ga__scav_alloc_locked(mspan *s) {
  ga__stats_span_locked(s->spanclass >> 1, 1);
  atomic_store_explicit(&sc.events,
                        atomic_load_explicit(&sc.events, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  note_pages(s->startAddr, s->npages, true, 0);
  uintptr_t end = s->startAddr + s->npages * GA_PAGE_SIZE;
  if (s->startAddr < atomic_load_explicit(&sc.heapLo, memory_order_relaxed) ||
      atomic_load_explicit(&sc.heapHi, memory_order_relaxed) == 0)
    atomic_store_explicit(&sc.heapLo, s->startAddr, memory_order_relaxed);
  if (end > atomic_load_explicit(&sc.heapHi, memory_order_relaxed))
    atomic_store_explicit(&sc.heapHi, end, memory_order_relaxed);
  note_growth_locked();
  bool grew = sc.pendingGrowth != 0;
  int thread = atomic_load_explicit(&sc.thread, memory_order_relaxed);
  if (thread == THREAD_STOPPED) return true; /* start it again */
  if (grew && thread == THREAD_NONE &&
      (uint64_t)ga__pages_total_count() * GA_PAGE_SIZE > START_BYTES)
    return true;
  if (over_goals_locked(grew)) return true;
  sc.pendingGrowth = 0;
  return false;
}

/* Is the retained heap over what the background thread aims for (95 % of
 * the limit, or the collector's goal)? Heap lock held. */
static bool over_bg_goals_locked(void) {
  uint64_t ret = retained_locked();
  int64_t limit = ga__option_memlimit();
  if (limit != INT64_MAX && ret > (uint64_t)limit / 100 * 95) return true;
  uint64_t goal = atomic_load_explicit(&sc.goal, memory_order_relaxed);
  return goal != 0 && ret > goal + GA_PAGE_SIZE;
}

bool ga__scav_free_locked(mspan *s) {
  ga__stats_span_locked(s->spanclass >> 1, -1);
  atomic_store_explicit(&sc.events,
                        atomic_load_explicit(&sc.events, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  note_pages(s->startAddr, s->npages, false, ga__sys_nanotime());
  /* Wake the thread if it sleeps with nothing pending, or if this free
   * leaves memory to release for the limit or the goal; at most once per
   * round of the thread (kicked is cleared when a round starts). */
  if ((atomic_load_explicit(&sc.sleepingLong, memory_order_relaxed) ||
       over_bg_goals_locked()) &&
      atomic_load_explicit(&sc.thread, memory_order_relaxed) == THREAD_RUNNING &&
      !atomic_exchange_explicit(&sc.kicked, 1, memory_order_relaxed))
    return true;
  return false;
}

void ga__scavenger_wake(void) {
  atomic_fetch_add_explicit(&sc.wake, 1, memory_order_release);
  if (atomic_load_explicit(&sc.thread, memory_order_acquire) == THREAD_RUNNING)
    ga__sys_futex_wake((uint32_t *)&sc.wake, 1);
}

/* ---- releasing ---------------------------------------------------------- */

static void pace_sleep(int64_t ns) {
  uint32_t never = 0; /* nobody wakes this word: a plain timed sleep */
  int64_t until = ga__sys_nanotime() + ns;
  for (int64_t left = ns; left > 0; left = until - ga__sys_nanotime())
    ga__sys_futex_wait_ns(&never, 0, left);
}

/* Release up to `want` bytes of free pages, highest first, under the rules
 * of `mode` (see the essay). With paced set, keeps to DUTY_PERCENT of a CPU.
 * For MODE_IDLE, *due receives the earliest time a region skipped for being
 * too recently used becomes idle (unchanged if none). Returns bytes
 * released. Called without the heap lock. */
static uint64_t scavenge(uint64_t want, enum mode mode, bool paced,
                         int64_t *due) {
  if (want == 0 || atomic_load_explicit(&sc.unusedFailed, memory_order_relaxed))
    return 0;
  const int64_t delay = delay_ns();
  uint64_t done = 0;
  int64_t slice = 0, work = 0;
  uintptr_t cursor = (uintptr_t)1 << GA_ADDR_BITS;
  unsigned skips = 0;
  uint64_t events = atomic_load_explicit(&sc.events, memory_order_relaxed);
  ga__mheap_lock();
  int64_t now = ga__sys_nanotime();
  while (done < want) {
    uintptr_t p = ga__pages_find_unscavenged(cursor);
    if (p == 0) break;
    uintptr_t rbase = p & ~(REGION_BYTES - 1);
    if (mode != MODE_FORCE) {
      region *r = region_of(p, false);
      uint32_t inUse = r ? r->inUse : 0;
      int64_t last = r ? r->lastFree : 0;
      bool ok;
      if (mode == MODE_GOAL) {
        ok = inUse < DENSE_GOAL;
      } else {
        ok = r != NULL && inUse <= DENSE_IDLE && now - last >= delay;
        if (r != NULL && inUse <= DENSE_IDLE && !ok && due && last + delay < *due)
          *due = last + delay;
      }
      if (!ok) {
        cursor = rbase;
        if (++skips % SKIPS_PER_HOLD == 0) {
          ga__mheap_unlock();
          ga__mheap_lock();
          now = ga__sys_nanotime();
        }
        continue;
      }
    }
    uintptr_t maxp = REGION_PAGES;
    if (want - done < (uint64_t)maxp * GA_PAGE_SIZE)
      maxp = (uintptr_t)((want - done + GA_PAGE_SIZE - 1) / GA_PAGE_SIZE);
    uintptr_t base, n = ga__pages_take_unscavenged_in(rbase, p + GA_PAGE_SIZE,
                                                      maxp, &base);
    if (n == 0) { /* cannot happen: p itself qualifies */
      cursor = rbase;
      continue;
    }
    ga__mheap_unlock();
    int64_t t0 = ga__sys_nanotime();
    int bad = ga__sys_unused(base, n * GA_PAGE_SIZE);
    int64_t t1 = ga__sys_nanotime();
    ga__mheap_lock();
    if (bad) {
      /* mlock'ed memory, most likely: the pages keep their contents, so
       * they go back as ordinary free pages and we stop trying. */
      ga__pages_free(base, n);
      atomic_store_explicit(&sc.unusedFailed, 1, memory_order_relaxed);
      if (ga__option_verbose() > 0) {
        static const char msg[] =
            "goalloc: the OS refused MADV_DONTNEED (locked memory?); "
            "free memory will not be returned\n";
        ga__sys_write_err(msg, sizeof msg - 1);
      }
      break;
    }
    ga__pages_free_scavenged(base, n);
    atomic_fetch_add_explicit(&sc.madvises, 1, memory_order_relaxed);
    done += (uint64_t)n * GA_PAGE_SIZE;
    cursor = base;
    now = ga__sys_nanotime();
    work += now - t0;
    slice += t1 - t0;
    if (paced && slice >= WORK_SLICE_NS) {
      /* Pace only while the program is using the heap: an idle program
       * gets its memory back at full speed. */
      uint64_t ev = atomic_load_explicit(&sc.events, memory_order_relaxed);
      if (ev != events) {
        ga__mheap_unlock();
        pace_sleep(slice * (100 / DUTY_PERCENT - 1));
        ga__mheap_lock();
        now = ga__sys_nanotime();
      }
      events = atomic_load_explicit(&sc.events, memory_order_relaxed);
      slice = 0;
    }
  }
  ga__mheap_unlock();
  atomic_fetch_add_explicit(&sc.workNs, (uint64_t)work, memory_order_relaxed);
  return done;
}

/* ---- trace ---------------------------------------------------------------- */

static void trace_line(bool forced) {
  uint64_t bgk = atomic_exchange(&sc.traceBg, 0);
  uint64_t eagerk = atomic_exchange(&sc.traceEager, 0);
  if ((bgk | eagerk) == 0 && !forced) return;
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  uint64_t retained = hc.heapSys - hc.heapReleased;
  uint64_t inuse = (uint64_t)hc.pagesInUse * GA_PAGE_SIZE;
  char buf[200];
  int n = snprintf(buf, sizeof buf,
                   "scav %llu KiB work (bg), %llu KiB work (eager), %llu KiB now, "
                   "%llu%% util%s\n",
                   (unsigned long long)(bgk >> 10), (unsigned long long)(eagerk >> 10),
                   (unsigned long long)(hc.heapReleased >> 10),
                   (unsigned long long)(retained ? inuse * 100 / retained : 0),
                   forced ? " (forced)" : "");
  if (n > 0) ga__sys_write_err(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void account(uint64_t bytes, bool eager) {
  if (bytes == 0) return;
  atomic_fetch_add_explicit(eager ? &sc.eagerBytes : &sc.bgBytes, bytes,
                            memory_order_relaxed);
  if (ga__option_trace(GA_TRACE_SCAV))
    atomic_fetch_add_explicit(eager ? &sc.traceEager : &sc.traceBg, bytes,
                              memory_order_relaxed);
}

/* ---- the goals ------------------------------------------------------------ */

/* Work for the memory limit and the collector's goal; background (paced,
 * aiming under 95 % of the limit) or eager (on an allocating thread, the
 * excess over the limit, and min(growth, excess) over the goal). */
static uint64_t meet_goals(bool eager, uintptr_t growth_pages) {
  ga__mheap_lock();
  uint64_t ret = retained_locked(), unscav = unscav_locked();
  ga__mheap_unlock();
  if (unscav == 0) return 0;
  uint64_t released = 0;
  int64_t limit = ga__option_memlimit();
  if (limit != INT64_MAX) {
    uint64_t target = eager ? (uint64_t)limit : (uint64_t)limit / 100 * 95;
    if (ret > target) {
      uint64_t n = scavenge(ret - target, MODE_FORCE, !eager, NULL);
      released += n;
      ret -= n;
    }
  }
  uint64_t goal = atomic_load_explicit(&sc.goal, memory_order_relaxed);
  if (goal != 0 && ret > goal + GA_PAGE_SIZE) {
    uint64_t want = ret - goal;
    if (eager) {
      uint64_t g = (uint64_t)growth_pages * GA_PAGE_SIZE;
      if (want > g) want = g;
    }
    released += scavenge(want, MODE_GOAL, !eager, NULL);
  }
  return released;
}

#define INUSE_CYCLES 4

void ga__scavenger_set_goal(uint64_t heap_inuse, uint64_t heap_goal,
                            uint64_t last_heap_goal) {
  uint64_t goal = 0;
  /* The largest in-use heap of the last INUSE_CYCLES cycles, not the last
   * one's (Go's): a heap whose peak varies from cycle to cycle would
   * otherwise see the pages a bigger cycle needs released after a smaller
   * one and faulted back in (gc-churn released 133 MiB over a run this way,
   * for no lower peak RSS). The ring is the collector's (gc.lock). */
  static uint64_t recent[INUSE_CYCLES];
  static unsigned next;
  recent[next++ % INUSE_CYCLES] = heap_inuse;
  for (unsigned i = 0; i < INUSE_CYCLES; i++)
    if (recent[i] > heap_inuse) heap_inuse = recent[i];
  if (heap_goal != 0 && last_heap_goal != 0 && heap_goal != UINT64_MAX) {
    /* Go's gcPaceScavenger: lastHeapInUse * heapGoal / lastHeapGoal, plus
     * retainExtraPercent (10 %), rounded up to a page. */
    double g = (double)heap_inuse * ((double)heap_goal / (double)last_heap_goal);
    g += g / 10;
    goal = ((uint64_t)g + GA_PAGE_SIZE - 1) & ~(uint64_t)(GA_PAGE_SIZE - 1);
    if (goal == 0) goal = GA_PAGE_SIZE;
  }
  atomic_store_explicit(&sc.goal, goal, memory_order_relaxed);
  if (goal != 0) ga__scavenger_wake();
}

/* ---- the background thread ------------------------------------------------ */

/* Is there a span, in no cache, holding frees not yet folded in? Looks at
 * PROBE_SAMPLES random pages of the heap through the spans map (a stale
 * entry, for a free page, is harmless: records are never unmapped, and the
 * answer is only a hint). After a burst of frees nearly every page answers yes; a
 * handful of scattered remote frees may be missed, and the blind fold on
 * the back-off schedule finds them. Cost: one cache miss per sample. */
static bool probe_remote_frees(void) {
  uintptr_t lo = atomic_load_explicit(&sc.heapLo, memory_order_relaxed);
  uintptr_t hi = atomic_load_explicit(&sc.heapHi, memory_order_relaxed);
  if (hi <= lo) return false;
  uintptr_t npages = (hi - lo) / GA_PAGE_SIZE;
  bool found = false;
  /* Under the heap lock, which orders us after the spans-map writes (a
   * lock-free read would do on x86, but would be a data race in C11). */
  ga__mheap_lock();
  for (int i = 0; i < PROBE_SAMPLES && !found; i++) {
    bg.rng ^= bg.rng << 13; /* xorshift64 */
    bg.rng ^= bg.rng >> 7;
    bg.rng ^= bg.rng << 17;
    mspan *sp = ga__spanOf(lo + (bg.rng % npages) * GA_PAGE_SIZE);
    found = atomic_load_explicit(&sp->state, memory_order_acquire) == mSpanInUse &&
            atomic_load_explicit(&sp->remotePending, memory_order_relaxed) &&
            atomic_load_explicit(&sp->cache, memory_order_relaxed) == NULL;
  }
  ga__mheap_unlock();
  return found;
}

/* Fold frees made by non-owners into mcentral's spans, so that spans they
 * emptied reach the page heap (and, a delay later, the OS). See the essay
 * for the schedule. */
static void reclaim_remote_frees(int64_t now, int64_t delay) {
  uint64_t ev = atomic_load_explicit(&sc.events, memory_order_relaxed);
  bool quiet = ev == bg.lastEvents;
  bg.lastEvents = ev;
  bool hinted = probe_remote_frees();
  int64_t base = delay / 4 < MIN_SLEEP_NS ? MIN_SLEEP_NS : delay / 4;
  if (!quiet || hinted)
    bg.checkInterval = base;
  else if (bg.checkInterval < RECLAIM_MAX_INTERVAL)
    bg.checkInterval *= 2;
  bg.nextCheck = now + bg.checkInterval;
  if (!(hinted && quiet) && now < bg.nextBlindFold) return;

  int64_t t0 = ga__sys_nanotime();
  uintptr_t pages = ga__mcentral_reclaimAll();
  int64_t cost = ga__sys_nanotime() - t0;
  atomic_fetch_add_explicit(&sc.reclaims, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&sc.reclaimNs, (uint64_t)cost, memory_order_relaxed);
  bg.lastEvents = atomic_load_explicit(&sc.events, memory_order_relaxed);
  /* The blind fold: every BLIND_FOLD_DELAYS delays, doubling while it finds
   * nothing, and at least 100 times its cost apart (<= 1 % of a CPU). */
  int64_t blind = delay * BLIND_FOLD_DELAYS < base ? base : delay * BLIND_FOLD_DELAYS;
  if (pages != 0 || bg.blindInterval < blind)
    bg.blindInterval = blind;
  else if (bg.blindInterval < RECLAIM_MAX_INTERVAL)
    bg.blindInterval *= 2;
  if (bg.blindInterval < cost * RECLAIM_COST_FACTOR)
    bg.blindInterval = cost * RECLAIM_COST_FACTOR;
  bg.nextBlindFold = now + bg.blindInterval;
  if (pages != 0) bg.nextCheck = now + base;
}

static void *scavenger_main(void *arg) {
  (void)arg;
  int64_t delay = delay_ns(), now = ga__sys_nanotime();
  bg.rng = (uint64_t)now | 1;
  bg.checkInterval = delay / 4 < MIN_SLEEP_NS ? MIN_SLEEP_NS : delay / 4;
  bg.blindInterval = delay * BLIND_FOLD_DELAYS < bg.checkInterval
                         ? bg.checkInterval : delay * BLIND_FOLD_DELAYS;
  bg.nextCheck = now + bg.checkInterval;
  bg.nextBlindFold = now + bg.blindInterval;
  for (;;) {
    /* Any wake-up from here on ends the coming sleep at once. */
    uint32_t seq = atomic_load_explicit(&sc.wake, memory_order_acquire);
    atomic_store_explicit(&sc.kicked, 0, memory_order_relaxed);
    atomic_store_explicit(&sc.sleepingLong, 0, memory_order_relaxed);
    delay = delay_ns();
    now = ga__sys_nanotime();
    if (now >= bg.nextCheck) reclaim_remote_frees(now, delay);
    account(meet_goals(false, 0), false);
    int64_t due = INT64_MAX;
    account(scavenge(UINT64_MAX, MODE_IDLE, true, &due), false);
    if (ga__option_trace(GA_TRACE_SCAV)) trace_line(false);
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
      atomic_store_explicit(&sc.threadCpuNs,
                            (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec,
                            memory_order_relaxed);
    atomic_fetch_add_explicit(&sc.rounds, 1, memory_order_relaxed);

    /* Sleep until a waiting region is due or the next check for remote
     * frees. With no region waiting: if the heap changed since the last
     * sleep began (a free may have come after its region was looked at),
     * look again within one delay; if it did not, sleep "long", and the next
     * span free wakes the thread. Decided under the heap lock, so that a
     * free after the decision sees sleepingLong, and one before it changed
     * events. (Waking on every free of a busy heap instead would wake the
     * thread for nearly every span a collector's sweep frees: measured at
     * 1500 times a second on gcbench.) */
    int64_t until = due < bg.nextCheck ? due : bg.nextCheck;
    ga__mheap_lock();
    uint64_t ev = atomic_load_explicit(&sc.events, memory_order_relaxed);
    bool changed = ev != bg.eventsAtSleep;
    bg.eventsAtSleep = ev;
    if (due == INT64_MAX) {
      if (changed) {
        int64_t soon = ga__sys_nanotime() + (delay < MIN_SLEEP_NS ? MIN_SLEEP_NS : delay);
        if (soon < until) until = soon;
      } else {
        atomic_store_explicit(&sc.sleepingLong, 1, memory_order_relaxed);
      }
    }
    ga__mheap_unlock();
    int64_t left = until - ga__sys_nanotime();
    if (left < MIN_SLEEP_NS) left = MIN_SLEEP_NS;
    if (!atomic_load_explicit(&sc.exitRequested, memory_order_acquire))
      ga__sys_futex_wait_ns((uint32_t *)&sc.wake, seq, left);
    if (atomic_load_explicit(&sc.exitRequested, memory_order_acquire)) return NULL;
  }
}

static void after_fork_child(void) {
  /* The thread did not survive the fork: the next growth starts another. */
  atomic_store(&sc.thread, THREAD_NONE);
  atomic_store(&sc.sleepingLong, 0);
}

bool ga__scavenger_running(void) {
  return atomic_load_explicit(&sc.thread, memory_order_acquire) == THREAD_RUNNING;
}

/* Stop the thread and wait for it to end (unshare and setns: solo.c; the
 * kernel refuses to move a process with a second thread into a new user
 * namespace). It starts again with the next span the heap hands out. The
 * caller must hold no heap or mcentral lock. */
bool ga__scavenger_stop(void) {
  int expect = THREAD_RUNNING;
  /* STARTING while it stops: nobody starts or wakes it meanwhile. */
  if (!atomic_compare_exchange_strong(&sc.thread, &expect, THREAD_STARTING)) return false;
  ga__threads_end(&sc.exitRequested, &sc.wake, &sc.tid, 1);
  atomic_store(&sc.thread, THREAD_STOPPED);
  return true;
}

/* Private cache for the allocations pthread_create makes on our behalf (see
 * the essay): the calling thread may be half-way through a refill of the
 * very class they need. */
static mcache boot_cache = {
    .alloc = {[0 ... GA_NUM_CENTRALS - 1] = &ga__emptyspan},
};

/* Create the thread, or fail for good. Never called with a heap lock held. */
static void start_thread(void) {
  int expect = THREAD_NONE;
  if (!atomic_compare_exchange_strong(&sc.thread, &expect, THREAD_STARTING)) {
    expect = THREAD_STOPPED;
    if (!atomic_compare_exchange_strong(&sc.thread, &expect, THREAD_STARTING)) return;
  }
  if (!ga__option_get(GA_OPT_SCAVENGE)) {
    atomic_store(&sc.thread, THREAD_FAILED); /* disabled: never retried */
    return;
  }
  static _Atomic int atfork_done;
  mcache *saved = ga__tls_cache;
  ga__tls_cache = &boot_cache;

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
  pthread_attr_t attr;
  pthread_t t;
  int err = -1;
  if (pthread_attr_init(&attr) == 0) {
    pthread_attr_setstacksize(&attr, 256 * 1024); /* joinable: see stop */
    err = ga__pthread_create_raw(&t, &attr, scavenger_main, NULL);
    if (err == 0) sc.tid = t;
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0 && !atomic_exchange(&atfork_done, 1))
    pthread_atfork(NULL, NULL, after_fork_child); /* may malloc: boot cache */

  ga__mcache_releaseAll(&boot_cache);
  ga__tls_cache = saved;
  atomic_store(&sc.thread, err == 0 ? THREAD_RUNNING : THREAD_FAILED);
  if (ga__option_verbose() > 0) {
    char buf[120];
    int n = snprintf(buf, sizeof buf,
                     err == 0 ? "goalloc: scavenger started (delay %lld ms)\n"
                              : "goalloc: could not start the scavenger thread (%lld)\n",
                     err == 0 ? (long long)ga__option_get(GA_OPT_SCAVENGE_DELAY_MS)
                              : (long long)err);
    if (n > 0) ga__sys_write_err(buf, (size_t)n);
  }
}

void ga__scav_after_alloc(void) {
  ga__mheap_lock();
  uintptr_t growth = sc.pendingGrowth;
  sc.pendingGrowth = 0;
  ga__mheap_unlock();
  int thread = atomic_load_explicit(&sc.thread, memory_order_relaxed);
  if (thread == THREAD_STOPPED || (thread == THREAD_NONE && growth != 0)) start_thread();
  uint64_t n = meet_goals(true, growth);
  account(n, true);
  if (n != 0 && ga__option_trace(GA_TRACE_SCAV)) ga__scavenger_wake();
}

/* ---- public --------------------------------------------------------------- */

size_t ga_release_memory(void) {
  ga__ensure_init();
  /* A slow-path region: the caller must not be stopped holding the heap
   * or an mcentral lock, which the collector takes with the world
   * stopped. */
  ga__slow_enter();
  ga__mcentral_reclaimAll();
  uint64_t n = scavenge(UINT64_MAX, MODE_FORCE, false, NULL);
  ga__slow_leave();
  atomic_fetch_add_explicit(&sc.forcedBytes, n, memory_order_relaxed);
  if (ga__option_trace(GA_TRACE_SCAV)) {
    atomic_fetch_add_explicit(&sc.traceEager, n, memory_order_relaxed);
    trace_line(true);
  }
  return (size_t)n;
}

void ga__scav_counters(ga_scav_counters *out) {
  out->bgBytes = atomic_load_explicit(&sc.bgBytes, memory_order_relaxed);
  out->eagerBytes = atomic_load_explicit(&sc.eagerBytes, memory_order_relaxed);
  out->forcedBytes = atomic_load_explicit(&sc.forcedBytes, memory_order_relaxed);
  out->madvises = atomic_load_explicit(&sc.madvises, memory_order_relaxed);
  out->workNs = atomic_load_explicit(&sc.workNs, memory_order_relaxed);
  out->reclaims = atomic_load_explicit(&sc.reclaims, memory_order_relaxed);
  out->reclaimNs = atomic_load_explicit(&sc.reclaimNs, memory_order_relaxed);
  out->goal = atomic_load_explicit(&sc.goal, memory_order_relaxed);
  out->rounds = atomic_load_explicit(&sc.rounds, memory_order_relaxed);
  out->threadCpuNs = atomic_load_explicit(&sc.threadCpuNs, memory_order_relaxed);
  out->running = atomic_load_explicit(&sc.thread, memory_order_relaxed) == THREAD_RUNNING;
}
