/*
 * mgc.h — the collector's internal interface: threads and safe points
 * (thread.c), the cycle and pacer (mgc.c), marking (mgcmark.c), sweeping
 * (mgcsweep.c) and finalizers (mfinal.c).
 */
#ifndef GA_MGC_H
#define GA_MGC_H

#include <pthread.h>

#include "internal.h"

/* ---- threads and safe points (thread.c) -------------------------------- */

/* x86-64: 23 general registers; XMM0-15 (32 words), the upper halves of
 * YMM0-15 (32), of ZMM0-15 (64) and ZMM16-31 (128). */
#define GA_SIGREGS_MAX 288

typedef struct gthread {
  pthread_t tid;
  uintptr_t stack_hi;    /* top of the stack (exclusive) */
  uintptr_t stack_lo;    /* its lowest usable address (0: unknown) */
  _Atomic uintptr_t sp;  /* lowest live stack address while stopped */
  /* Stopped by the signal in the program's own code: its registers, copied
   * from the kernel's signal frame (thread.c stop_at_signal); else 0. */
  int nsigregs;
  uintptr_t sigregs[GA_SIGREGS_MAX];
  /* The stop (stop_epoch) this thread last acknowledged: the collector
   * counts a thread as stopped only for the stop under way, so a late or
   * repeated signal can never be taken for an answer to another stop. */
  _Atomic uint32_t ackEpoch;
  int nest;              /* ga_thread_register nesting */
  int dead;
  struct gthread *next, *prev;
} gthread;

/* > 0 while the thread is inside an allocator slow path: the collector's
 * stop signal is deferred to the end of it (see thread.c). */
extern __thread volatile int ga__mallocing
    __attribute__((tls_model("initial-exec")));
extern __thread volatile int ga__stopPending
    __attribute__((tls_model("initial-exec")));
/* Set when the heap crossed the trigger: the next slow-path exit collects. */
extern _Atomic int ga__gcWanted;

void ga__stop_self_pending(void);
void ga__gc_from_trigger(void);

GA_INLINE void ga__slow_enter(void) {
  ga__mallocing++;
  atomic_signal_fence(memory_order_seq_cst);
}
GA_INLINE void ga__slow_leave(void) {
  atomic_signal_fence(memory_order_seq_cst);
  if (--ga__mallocing == 0) {
    atomic_signal_fence(memory_order_seq_cst);
    if (GA_UNLIKELY(ga__stopPending)) ga__stop_self_pending();
    if (GA_UNLIKELY(atomic_load_explicit(&ga__gcWanted, memory_order_relaxed)))
      ga__gc_from_trigger();
  }
}

/* Zero some of the stack below the caller's frame, before a path that
 * leaves frames of goalloc's there while the thread is scanned (see
 * thread.c). */
void ga__clear_stack(void);
void ga__thread_init(void);
bool ga__thread_is_registered(void);
void ga__stop_the_world(void);   /* returns with the registry locked */
void ga__start_the_world(void);
void ga__for_each_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                        void *arg);
int ga__thread_count(void);
int ga__pthread_create_raw(pthread_t *t, const pthread_attr_t *attr,
                           void *(*fn)(void *), void *arg);

/* Is the collector part of this build/process? False in the malloc drop-in
 * (which defines ga__override_mode) and when GOGC=off at start. */
bool ga__collector_wanted(void);

/* ---- cycle and pacer (mgc.c) --------------------------------------------- */

extern _Atomic uint32_t ga__sweepgen_h; /* mheap.sweepgen */
/* Bytes allocated since the last mark, roughly (Go's heapLive). */
void ga__heapLive_add(intptr_t bytes);

/* ---- marking (mgcmark.c) ----------------------------------------------- */

/* Mark everything reachable from the roots (world stopped). Returns bytes
 * marked. */
uint64_t ga__gc_mark(int nworkers);
/* Mark obj and everything reachable from it (world stopped, during mark). */
void ga__gc_mark_from(uintptr_t obj, bool include_obj);
/* Data/BSS ranges of every loaded object, refreshed before each cycle. */
void ga__gc_refresh_data_roots(void);
/* Is p the base of a marked object? (world stopped) */
bool ga__gc_is_marked(uintptr_t p);
/* Every mcache (for the tiny blocks they hold). */
void ga__mcache_for_each(void (*fn)(mcache *c, void *arg), void *arg);
void ga__mcache_for_each_all(void (*fn)(mcache *c, void *arg), void *arg);

/* Concurrent marking (world running between ga__gc_mark_start and
 * ga__gc_mark_terminate; see mgc.c). start: world stopped, greys the roots
 * (allocation stays white). concurrent: world running, drains and rescans
 * the written pages. terminate: world stopped, rescans written pages and
 * the roots, finishes; returns bytes marked. */
void ga__gc_mark_start(void);
void ga__gc_mark_concurrent(int nworkers);
/* Markers for a stop-the-world drain on every core: the CPU count, at
 * most 8. */
GA_INLINE int ga__gc_all_markers(void) {
  int n = ga__sys_ncpu();
  return n > 8 ? 8 : n;
}
uint64_t ga__gc_mark_terminate(int nworkers);
/* A mutator past the goal helps the running concurrent drain (see
 * mgcmark.c). False if there was none to join; then, if `wait`, it waits
 * a little for one. */
bool ga__gc_assist(bool wait);
/* Forget helper threads (fork child: they do not exist there). */
void ga__gc_mark_after_fork_child(void);
/* End n of goalloc's own threads (tids, joinable) that wait on *epoch and
 * return once they see *exitReq set after a wake; clears *exitReq again.
 * (solo.c stops them all for unshare and setns.) */
GA_INLINE void ga__threads_end(_Atomic int *exitReq, _Atomic uint32_t *epoch,
                               const pthread_t *tids, int n) {
  atomic_store_explicit(exitReq, 1, memory_order_release);
  atomic_fetch_add_explicit(epoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)epoch, INT32_MAX);
  for (int i = 0; i < n; i++) pthread_join(tids[i], NULL);
  atomic_store_explicit(exitReq, 0, memory_order_relaxed);
}

/* One background thread that waits on an epoch futex (the collector's
 * worker, the background sweeper, the finalizer runner): started at most
 * once until stopped, joinable, told to end through exitReq, which it reads
 * after each wake (ga__bgthread_exiting). thread.c. */
typedef struct ga_bgthread {
  _Atomic int started; /* a start was made; 0 again if it failed */
  _Atomic int alive;   /* tid runs */
  _Atomic int exitReq;
  pthread_t tid;
} ga_bgthread;
/* Start fn on t unless started; registered: through our pthread_create
 * (a thread that allocates and holds heap pointers), else unregistered.
 * True if it runs now. */
bool ga__bgthread_start(ga_bgthread *t, void *(*fn)(void *), bool registered);
/* End it, waking it through *epoch, and wait; true if it ran. */
bool ga__bgthread_stop(ga_bgthread *t, _Atomic uint32_t *epoch);
/* Fork child: the thread did not survive. */
void ga__bgthread_forget(ga_bgthread *t);
GA_INLINE bool ga__bgthread_exiting(ga_bgthread *t) {
  return atomic_load_explicit(&t->exitReq, memory_order_acquire) != 0;
}
GA_INLINE int ga__bgthread_alive(ga_bgthread *t) {
  return atomic_load_explicit(&t->alive, memory_order_acquire);
}
/* Helper threads alive; end them all (no mark may run: solo.c). */
int ga__gc_helpers(void);
void ga__gc_helpers_stop(void);
/* The collector's own threads (worker, helpers, background sweeper):
 * how many run, and end them all until next needed (solo.c). */
int ga__gc_threads(void);
void ga__gc_threads_stop(void);
/* Every thread goalloc runs now: the collector's, the finalizer runner,
 * the scavenger (solo.c). */
int ga__own_threads(void);
/* Threads of the process (/proc/self/status, no allocation), or -1. */
int ga__process_threads(void);
/* End them all; true if the finalizer runner was among them (start it
 * again with ga__final_runner_start). */
bool ga__own_threads_stop(void);

/* ---- write watch (mwritewatch.c) ---------------------------------------- */

void ga__ww_init(void);
bool ga__ww_enabled(void);
void ga__ww_register(uintptr_t lo, uintptr_t hi); /* heap lock held */
bool ga__ww_reset(void);  /* protect the heap: record stores from now on */
/* The cycle's end: lift the protection or keep it; `minor_next`: keep it
 * on the old objects' pages for a minor cycle (mwritewatch.c). */
void ga__ww_stop(bool minor_next);
void ga__ww_testPolicy(int policy); /* tests: 0 adaptive, 1 always lift, 2 always keep */
bool ga__ww_keeping(void);          /* the last cycle kept its protection */
extern _Atomic bool ga__ww_kept;   /* the same, for mcentral (relaxed) */
intptr_t ga__ww_scan(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg,
                     bool rearm);
void ga__ww_after_fork_child(void);
/* A minor cycle begins: no reset (see mwritewatch.c). */
void ga__ww_begin_minor(void);
unsigned long ga__ww_hotSpans(void); /* big objects ever found hot (tests) */
/* mheap.c: span frees deferred while marking, done now. */
void ga__mheap_freeDeferred(void);
/* mheap.c: clear the marks of in-use spans whose sweepgen is not h. */
void ga__mheap_clearStaleMarks(uint32_t h);
void ga__mcentral_lockAll(void);
void ga__mcentral_unlockAll(void);
/* mheap.c: runs of pages of in-use scan spans (see there): all of them,
 * or only those the write watch protects (cold) or leaves open (hot). */
enum { GA_RUNS_ALL, GA_RUNS_COLD, GA_RUNS_HOT };
void ga__mheap_scanRuns(int which, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                        void *arg);
/* mheap.c: the lowest and highest heap addresses so far (arenas). */
extern _Atomic uintptr_t ga__heapMin, ga__heapMax;

/* ---- sweeping (mgcsweep.c) --------------------------------------------- */

/* At mark termination (world stopped): sweep every cached span now, make
 * every other listed span unswept (mcentral's set flip), and set the pacing
 * ratio. */
void ga__gc_sweep_start(uint64_t heapLive, uint64_t trigger);
/* Sticky marks (mgc.c, minor cycles) are possible: set once at heap init
 * (GOALLOC_GC_GENERATIONAL and the write watch). */
extern bool ga__gc_sticky;
/* The next cycle is expected to be minor: this cycle's sweep keeps the
 * marks of the objects it finds alive (a major cycle that follows anyway
 * clears every mark first). Set at mark termination, world stopped. */
extern bool ga__gc_keepMarks;
/* mheap.c: clear the marks of every in-use span (a major cycle, sticky). */
void ga__mheap_clearAllMarks(void);
/* mheap.c: runs of pages of in-use scan spans whose every slot is marked
 * (fn(lo, hi, arg), address order; heap lock taken). */
void ga__mheap_oldRuns(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
/* The last sweep left out some thread's cache (it is not registered), so
 * some span may still hold that cycle's marks (gc.lock held). */
extern bool ga__gc_staleMarks;
/* Sweep one span somewhere; false when nothing is left this cycle. */
bool ga__sweepone(void);
/* Sweep everything left (before the next cycle, and in ga_collect). */
void ga__finish_sweep(void);
/* Sweep s if it is unswept (mcentral lock held). Returns true if it was
 * freed back to the heap. */
bool ga__sweep_span_locked(mspan *s, bool preserve);
/* Go's deductSweepCredit: sweep in proportion to allocation. */
void ga__deductSweepCredit(uintptr_t spanBytes, uintptr_t callerSweepPages);
uintptr_t ga__unswept_spans(void);
void ga__bgsweep_start(void);
int ga__bgsweep_running(void);       /* its thread runs: 0 or 1 */
void ga__bgsweep_stop(void);         /* end it until the next cycle's end */
void ga__bgsweep_after_fork_child(void);

/* ---- finalizers (mfinal.c) --------------------------------------------- */

/* World stopped, after marking from the roots: keep what finalizable objects
 * point to alive, queue the finalizers of the unreachable ones. */
void ga__final_mark_referents(void);
void ga__final_queue_dead(void);
/* An object with a finalizer was freed explicitly: forget the finalizer. */
void ga__final_forget(uintptr_t obj);
/* Queued finalizers are roots until they have run. */
void ga__final_mark_queued(void);
void ga__final_wake(void);
/* The finalizer thread: alive (0 or 1); end it (false: none, or the caller
 * is that thread); start it again; forget it in a fork child. */
int ga__final_runner_alive(void);
bool ga__final_runner_stop(void);
void ga__final_runner_start(void);
void ga__final_after_fork_child(void);

#endif /* GA_MGC_H */
