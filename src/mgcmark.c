/*
 * mgcmark.c — marking (Go's mgcmark.go / mgcwork.go twin), conservative.
 *
 * Runs with the world stopped. Roots: every registered thread's stack from
 * its stop point up (which holds its registers: the signal frame's ucontext,
 * or a setjmp spill), the writable data/BSS segments of the executable and
 * every loaded library (found with dl_iterate_phdr before the stop, since
 * that takes the loader's lock), ranges added with ga_add_roots, the tiny
 * blocks the mcaches are filling, and the finalizer queue.
 *
 * Conservative: every 8-byte-aligned word that points into an allocated
 * object — its first byte or any interior byte — marks it. Objects from
 * ga_malloc (scan spans) are then scanned the same way; ga_malloc_atomic
 * objects (noscan spans) are marked and never scanned. "Allocated" is exact:
 * allocBits, and for a cached span's window the owner's allocCache (owners
 * are stopped, never inside a slow path).
 *
 * Work list: no recursion. Grey objects go on per-worker work buffers of
 * WB_CAP entries; full buffers are published to a global pool from which
 * idle workers take them (Go's workbufs, with a mutex instead of a lock-free
 * stack). Marking is parallel: the collecting thread plus ncpu-1 helper
 * threads. Termination: a worker that finds both its buffer and the pool
 * empty goes idle; when every worker is idle and the pool is empty, marking
 * is done. Mark bits are set with an atomic fetch-or, so two workers never
 * both scan an object.
 */
#define _GNU_SOURCE
#include <link.h>
#include <sched.h>
#include <string.h>

#include "mgc.h"

#if defined(GOALLOC_VALGRIND) && GOALLOC_VALGRIND
#include <valgrind/valgrind.h>
#define VG_SCAN_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define VG_SCAN_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define VG_SCAN_BEGIN() ((void)0)
#define VG_SCAN_END() ((void)0)
#endif

/* ---- heap range and object lookup --------------------------------------- */

/* The world is running (concurrent mark): read span state with acquire and
 * "allocated" through the window's seqlock, since owners are moving their
 * windows under us. */
static bool mark_concurrent;

/* "Is slot idx allocated?" with the world running. A span in no cache has
 * its truth in allocBits, which only frees change meanwhile (nobody
 * allocates from an uncached span; uncacheSpan writes the window back
 * before it clears `cache`). A cached span's window moves under us: read it
 * through the window's seqlock. The pointer being tested was read from
 * memory first: if it points to an object allocated from a cached span,
 * that span's `cache` was set before the object existed, so this load
 * (address-dependent on the pointer, and acquire) sees it set. */
static inline __attribute__((always_inline)) bool allocated_conc(mspan *s, uintptr_t idx) {
  if (atomic_load_explicit(&s->cache, memory_order_acquire) == NULL)
    return (ga__loadBits(&s->allocBits[idx >> 6]) >> (idx & 63)) & 1;
  return ga__span_isAllocatedAny(s, idx);
}

/* Mark the object containing p if it is allocated and not yet marked.
 * Returns the object base if it was newly marked and must be scanned. */
static inline __attribute__((always_inline)) uintptr_t
greyobject_t(uint64_t *bytes, uintptr_t p, uintptr_t *end, bool conc) {
  mspan *s = ga__spanOf(p);
  if (atomic_load_explicit(&s->state, conc ? memory_order_acquire
                                           : memory_order_relaxed) != mSpanInUse)
    return 0;
  uintptr_t off = p - s->startAddr;
  if (off >= s->npages * GA_PAGE_SIZE) return 0;
  uintptr_t idx = s->divMul ? ga__objIndex(s, off) : 0;
  if (idx >= s->nelems) return 0;
  _Atomic uint8_t *mb = &s->gcmarkBytes[idx];
  if (atomic_load_explicit(mb, memory_order_relaxed)) return 0;
  if (conc ? !allocated_conc(s, idx) : !ga__span_isAllocated(s, idx))
    return 0;
  /* A plain store: two markers that race here both scan the object (and
   * both count it: bytesMarked may run a little over, never under).
   * anyMarked first, then the mark (release): a rescan that reads
   * anyMarked 0 (acquire) could not have seen the mark either. */
  if (!atomic_load_explicit(&s->anyMarked, memory_order_relaxed))
    atomic_store_explicit(&s->anyMarked, 1, memory_order_relaxed);
  atomic_store_explicit(mb, 1, memory_order_release);
  *bytes += s->elemsize;
  if (s->spanclass & 1) return 0; /* noscan: black at once, never scanned */
  uintptr_t base = s->startAddr + idx * s->elemsize;
  *end = base + s->elemsize;
  return base;
}

static uintptr_t greyobject(uint64_t *bytes, uintptr_t p, uintptr_t *end) {
  return mark_concurrent ? greyobject_t(bytes, p, end, true)
                         : greyobject_t(bytes, p, end, false);
}

/* ---- work buffers --------------------------------------------------------- */

#define WB_CAP 1022

typedef struct workbuf {
  struct workbuf *next;
  uintptr_t n;
  uintptr_t obj[WB_CAP]; /* pairs: base, end */
} workbuf;

static struct {
  ga_mutex lock;
  workbuf *full;   /* published work */
  workbuf *empty;  /* recycled buffers */
  _Atomic int nidle;
  int nworkers;    /* participants of the current drain (work.lock) */
  int active;      /* a drain that assists may join is running (work.lock) */
  _Atomic int done;
  _Atomic uint64_t bytesMarked;
} work;

static workbuf *wb_get_empty(void) {
  ga_mutex_lock(&work.lock);
  workbuf *b = work.empty;
  if (b) work.empty = b->next;
  ga_mutex_unlock(&work.lock);
  if (b == NULL) {
    b = ga__sys_alloc(sizeof(workbuf));
    if (b == NULL) ga__throw("out of memory for the mark work list");
  }
  b->n = 0;
  b->next = NULL;
  return b;
}

static _Atomic uint32_t drain_epoch; /* bumped when a drain starts or ends,
                                        and when work is published for an
                                        assist */
static _Atomic int assists_wanted; /* mutators waiting for work to help */
static _Atomic int assist_demand;  /* a mutator past the goal wants to help */

static void wb_publish(workbuf *b) {
  ga_mutex_lock(&work.lock);
  b->next = work.full;
  __atomic_store_n(&work.full, b, __ATOMIC_RELEASE); /* idle workers peek */
  ga_mutex_unlock(&work.lock);
  if (atomic_load_explicit(&assists_wanted, memory_order_relaxed) > 0) {
    atomic_fetch_add_explicit(&drain_epoch, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&drain_epoch, INT32_MAX);
  }
}

typedef struct gcw {
  workbuf *cur;
  uint64_t bytes;
  bool assist; /* a mutator's (ga__gc_assist): leaves instead of idling */
  /* A stop-the-world drain that started alone (recruit_helpers): helpers
   * it may still wake, and the objects it has scanned so far. */
  int recruit;
  unsigned long scans;
} gcw;

static inline void gcw_put1(gcw *g, uintptr_t base, uintptr_t end) {
  if (g->cur->n + 2 > WB_CAP) {
    wb_publish(g->cur);
    g->cur = wb_get_empty();
  }
  g->cur->obj[g->cur->n++] = base;
  g->cur->obj[g->cur->n++] = end;
}

/* Work is a range to scan. A big object goes on the list as oblets of
 * OBLET bytes (Go's oblets), so that other markers and assists can share
 * its scan: one worker scanning a 2.4 MB table of pointers in one go held
 * up gc-churn's program, blocked past its goal, for the whole scan. */
#define OBLET ((uintptr_t)128 << 10)

static void gcw_put_oblets(gcw *g, uintptr_t base, uintptr_t end) {
  for (; end - base > OBLET; base += OBLET) gcw_put1(g, base, base + OBLET);
  gcw_put1(g, base, end);
}

static inline void gcw_put(gcw *g, uintptr_t base, uintptr_t end) {
  if (GA_UNLIKELY(end - base > OBLET))
    gcw_put_oblets(g, base, end);
  else
    gcw_put1(g, base, end);
}

/* Scan [lo, hi) conservatively, greying what it points to. With the world
 * stopped the reads race with nothing, but ThreadSanitizer cannot see the
 * stop as synchronisation for stacks and cannot know which words are
 * pointers; with the world running (concurrent mark) they race by design
 * with the program's stores, which the write watch catches. These intended,
 * benign races of conservative scanning are exempted here and only here. */
static inline __attribute__((always_inline)) void
scanblock_t(gcw *g, uintptr_t lo, uintptr_t hi, bool conc) {
  uintptr_t min = atomic_load_explicit(&ga__heapMin, memory_order_relaxed);
  uintptr_t max = atomic_load_explicit(&ga__heapMax, memory_order_relaxed);
  lo = (lo + 7) & ~(uintptr_t)7;
  for (uintptr_t q = lo; q + 8 <= hi; q += 8) {
    uintptr_t v = *(const uintptr_t *)q;
    /* A conservative scan reads words nobody initialised; memcheck would
     * carry that "undefined" into the marks (valgrind builds only). */
    GA_VG_DEFINED(&v, sizeof v);
    if (v - min >= max - min) continue;
    uintptr_t end, base = greyobject_t(&g->bytes, v, &end, conc);
    if (base != 0) gcw_put(g, base, end);
  }
}

__attribute__((no_sanitize("thread")))
static void scanblock(gcw *g, uintptr_t lo, uintptr_t hi) {
  if (mark_concurrent)
    scanblock_t(g, lo, hi, true);
  else
    scanblock_t(g, lo, hi, false);
}

/* Go's balance(): if some worker is idle and nothing is published, give it
 * the older half of our buffer (the entries nearest the roots, which lead to
 * the most work). */
static void balance(gcw *g) {
  workbuf *cur = g->cur;
  uintptr_t half = (cur->n / 4) * 2; /* keep pairs together */
  workbuf *b = wb_get_empty();
  memcpy(b->obj, cur->obj, half * sizeof(uintptr_t));
  b->n = half;
  memmove(cur->obj, cur->obj + half, (cur->n - half) * sizeof(uintptr_t));
  cur->n -= half;
  wb_publish(b);
}

static void recruit_helpers(gcw *g);
#define RECRUIT_SCANS 8192

static void drain(gcw *g) {
  for (;;) {
    unsigned k = 0;
    /* Marking is memory-bound (perf: ~90 % of scanblock is the load of an
     * object's first word). Popped objects go through a small FIFO: each is
     * prefetched when it enters and scanned PF_DEPTH pops later, by which
     * time its cache line has arrived (Boehm's mark loop does the same). */
    enum { PF_DEPTH = 16 };
    uintptr_t pf_base[PF_DEPTH], pf_end[PF_DEPTH];
    unsigned pf_n = 0, pf_head = 0;
    for (;;) {
      if (g->cur->n > 0) {
        uintptr_t end = g->cur->obj[--g->cur->n];
        uintptr_t base = g->cur->obj[--g->cur->n];
        __builtin_prefetch((void *)base);
        unsigned slot = (pf_head + pf_n) % PF_DEPTH;
        pf_base[slot] = base;
        pf_end[slot] = end;
        if (++pf_n < PF_DEPTH) continue;
      } else if (pf_n == 0) {
        break;
      }
      uintptr_t base = pf_base[pf_head], end = pf_end[pf_head];
      pf_head = (pf_head + 1) % PF_DEPTH;
      pf_n--;
      scanblock(g, base, end);
      if ((++k & 63) == 0 && GA_UNLIKELY(g->recruit > 0) && g->cur->n >= 4 &&
          (g->scans += 64) >= RECRUIT_SCANS)
        recruit_helpers(g);
      if ((k & 63) == 0 && g->cur->n >= 16 &&
          __atomic_load_n(&work.full, __ATOMIC_RELAXED) == NULL) {
        if (atomic_load_explicit(&work.nidle, memory_order_relaxed) > 0) {
          balance(g);
        } else if (atomic_load_explicit(&assists_wanted, memory_order_relaxed) > 0 ||
                   atomic_load_explicit(&assist_demand, memory_order_relaxed)) {
          balance(g);
        }
      }
    }
    /* Local work done: take published work, or go idle. */
    ga_mutex_lock(&work.lock);
    for (;;) {
      if (work.full != NULL) {
        workbuf *b = work.full;
        __atomic_store_n(&work.full, b->next, __ATOMIC_RELAXED);
        g->cur->next = work.empty; /* recycle our empty one */
        work.empty = g->cur;
        g->cur = b;
        break;
      }
      if (atomic_load_explicit(&work.done, memory_order_acquire)) {
        ga_mutex_unlock(&work.lock);
        return;
      }
      if (g->assist) {
        /* A mutator never waits for work here: it leaves, and the drain
         * ends if everyone left is idle. */
        work.nworkers--;
        if (work.nidle == work.nworkers)
          atomic_store_explicit(&work.done, 1, memory_order_release);
        ga_mutex_unlock(&work.lock);
        return;
      }
      work.nidle++;
      if (work.nidle == work.nworkers) {
        atomic_store_explicit(&work.done, 1, memory_order_release);
        ga_mutex_unlock(&work.lock);
        return;
      }
      ga_mutex_unlock(&work.lock);
      /* Wait for work or the end, without holding the lock; yield the CPU
       * once the wait is not short (an assisting mutator holding the work
       * may need this core). */
      for (unsigned spin = 0; !atomic_load_explicit(&work.done, memory_order_acquire) &&
                              __atomic_load_n(&work.full, __ATOMIC_ACQUIRE) == NULL;
           spin++) {
        if (spin < 256)
          __builtin_ia32_pause();
        else
          sched_yield();
      }
      ga_mutex_lock(&work.lock);
      work.nidle--;
    }
    ga_mutex_unlock(&work.lock);
  }
}

/* ---- helper threads ------------------------------------------------------- */

static _Atomic uint32_t helper_epoch; /* bumped to start a mark phase */
static _Atomic int helpers_running;
/* Helper threads alive, and their ids (joinable: ga__gc_helpers_stop).
 * Atomic only for ga__gc_helpers' reader on another thread; started and
 * stopped by one thread at a time (the one running the cycle, or solo.c's
 * caller with no cycle possible). */
#define MAX_HELPERS 8
static _Atomic int nhelpers;
static pthread_t helper_tids[MAX_HELPERS];
static _Atomic int helpers_exit;

/* A helper thread's or an assist's share of a drain, with a buffer of its
 * own, returned empty at the end. */
static void drain_as_participant(bool assist) {
  gcw g = {.cur = wb_get_empty(), .assist = assist};
  VG_SCAN_BEGIN();
  drain(&g);
  VG_SCAN_END();
  atomic_fetch_add(&work.bytesMarked, g.bytes);
  ga_mutex_lock(&work.lock);
  g.cur->next = work.empty;
  work.empty = g.cur;
  ga_mutex_unlock(&work.lock);
}

static void *mark_helper(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    ga__epoch_wait(&helper_epoch, &seen);
    if (atomic_load_explicit(&helpers_exit, memory_order_acquire)) return NULL;
    drain_as_participant(false);
    atomic_fetch_sub_explicit(&helpers_running, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&helpers_running, 1);
  }
  return NULL;
}

static void start_helpers(int want) {
  int n = atomic_load_explicit(&nhelpers, memory_order_relaxed);
  while (n < want && n < MAX_HELPERS) {
    if (ga__pthread_create_raw(&helper_tids[n], NULL, mark_helper, NULL) != 0) break;
    atomic_store_explicit(&nhelpers, ++n, memory_order_release);
  }
}

int ga__gc_helpers(void) { return atomic_load_explicit(&nhelpers, memory_order_acquire); }

/* No mark may be running (solo.c stops the collector's worker first, and
 * its caller is the only other thread). */
void ga__gc_helpers_stop(void) {
  int n = atomic_load_explicit(&nhelpers, memory_order_acquire);
  if (n == 0) return;
  ga__threads_end(&helpers_exit, &helper_epoch, helper_tids, n);
  atomic_store_explicit(&nhelpers, 0, memory_order_release);
}

/* ---- roots ---------------------------------------------------------------- */

#define MAX_ROOTS 4096
typedef struct { uintptr_t lo, hi; } range_t;

static range_t data_roots[MAX_ROOTS];
static int ndata_roots;
static range_t user_roots[MAX_ROOTS];
static int nuser_roots;
static ga_mutex roots_lock;

static void add_range(range_t *v, int *n, uintptr_t lo, uintptr_t hi) {
  if (hi <= lo || *n >= MAX_ROOTS) return;
  v[(*n)++] = (range_t){lo, hi};
}

/* Add [lo, hi) minus the arena map (16 MiB of pointers to metadata, never
 * to objects: not worth scanning every cycle). */
static void add_data_range(uintptr_t lo, uintptr_t hi) {
  uintptr_t xlo = (uintptr_t)ga__arenas;
  uintptr_t xhi = xlo + GA_ARENA_L2_ENTRIES * sizeof(void *);
  if (hi <= xlo || lo >= xhi) {
    add_range(data_roots, &ndata_roots, lo, hi);
    return;
  }
  add_range(data_roots, &ndata_roots, lo, xlo);
  add_range(data_roots, &ndata_roots, xhi, hi);
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    add_data_range(lo, lo + ph->p_memsz);
  }
  return 0;
}

void ga__gc_refresh_data_roots(void) {
  ga_mutex_lock(&roots_lock);
  ndata_roots = 0;
  dl_iterate_phdr(phdr_cb, NULL);
  ga_mutex_unlock(&roots_lock);
}

void ga_add_roots(void *lo, void *hi) {
  ga_mutex_lock(&roots_lock);
  add_range(user_roots, &nuser_roots, (uintptr_t)lo, (uintptr_t)hi);
  ga_mutex_unlock(&roots_lock);
}

void ga_remove_roots(void *lo, void *hi) {
  ga_mutex_lock(&roots_lock);
  for (int i = 0; i < nuser_roots; i++)
    if (user_roots[i].lo == (uintptr_t)lo && user_roots[i].hi == (uintptr_t)hi) {
      user_roots[i] = user_roots[--nuser_roots];
      break;
    }
  ga_mutex_unlock(&roots_lock);
}

static void scan_stack_cb(uintptr_t lo, uintptr_t hi, void *arg) {
  scanblock(arg, lo, hi);
}

static void grey_tiny_cb(mcache *c, void *arg) {
  if (c->tiny != 0) {
    gcw *g = arg;
    uintptr_t end, base = greyobject(&g->bytes, c->tiny, &end);
    if (base) gcw_put(g, base, end);
  }
}

/* The collector's own single-threaded entry, used for finalizer referents
 * and queued finalizer objects (world stopped). */
static gcw *cur_gcw;

void ga__gc_mark_from(uintptr_t obj, bool include_obj) {
  gcw *g = cur_gcw;
  if (include_obj) {
    uintptr_t end, base = greyobject(&g->bytes, obj, &end);
    if (base) gcw_put(g, base, end);
  } else {
    /* Scan the object's contents without marking it (Go's span roots for
     * finalizers: its referents live, the object itself not yet). */
    uintptr_t base;
    mspan *s = ga__findObject(obj, &base);
    if (s != NULL && !(s->spanclass & 1)) scanblock(g, base, base + s->elemsize);
  }
}

bool ga__gc_is_marked(uintptr_t p) {
  mspan *s = ga__spanOf(p);
  if (atomic_load_explicit(&s->state, memory_order_relaxed) != mSpanInUse) return false;
  uintptr_t off = p - s->startAddr;
  if (off >= s->npages * GA_PAGE_SIZE) return false;
  uintptr_t idx = s->divMul ? ga__objIndex(s, off) : 0;
  if (idx >= s->nelems) return false;
  return ga__isMarked(s, idx);
}

/* Mutator assists (Go's gcAssistAlloc): a thread that allocated past the
 * goal while the collector marks joins the running drain instead of
 * sleeping until the cycle ends. */
static _Atomic int assists_active;

/* A stop-the-world drain that was to run alone (mgc.c's stw_workers: a live
 * heap under 32 MB) wakes the helpers after all once it has scanned
 * RECRUIT_SCANS objects (0.2-0.4 ms) with work in hand: the program is
 * stopped, so their cores are idle, and a short mark never pays for the
 * wake-up. That covers every mark without the write watch (older kernels,
 * valgrind, GOALLOC_GC_CONCURRENT=0), where binary-trees' and gcbench's
 * 16 MB marks took 19 ms on one core: 10 ms with a helper on two, 0.70x
 * the run's time, gc-churn 0.82x (7 interleaved rounds, 2026-11-26); and a
 * concurrent collector's stop-the-world cycle whose live heap was
 * underestimated (binary-trees after its 33 MB stretch tree: 4 MB live
 * where 0.1 MB was expected, 4.5 ms on one core). ncpu - 1 helpers, as
 * stw_workers asks for big heaps. */
static void recruit_helpers(gcw *g) {
  int want = g->recruit;
  g->recruit = 0;
  start_helpers(want);
  int nh = ga__gc_helpers(); /* every helper wakes on the epoch */
  if (nh == 0) return;
  ga_mutex_lock(&work.lock);
  work.nworkers += nh; /* this worker is busy: the drain cannot end here */
  ga_mutex_unlock(&work.lock);
  balance(g);
  atomic_store_explicit(&helpers_running, nh, memory_order_release);
  atomic_fetch_add_explicit(&helper_epoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)&helper_epoch, INT32_MAX);
}

/* Run the parallel drain with the helpers until no grey object is left.
 * `joinable`: assists may join (concurrent phase). */
static void drain_parallel_j(gcw *g, int nworkers, bool joinable) {
  if (nworkers > 1) start_helpers(nworkers - 1);
  int nh = nworkers > 1 ? ga__gc_helpers() : 0;
  ga_mutex_lock(&work.lock);
  work.nworkers = nh + 1;
  work.nidle = 0;
  atomic_store(&work.done, 0);
  work.active = joinable;
  ga_mutex_unlock(&work.lock);
  atomic_store_explicit(&assist_demand, 0, memory_order_relaxed);
  if (joinable) {
    atomic_fetch_add_explicit(&drain_epoch, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&drain_epoch, INT32_MAX);
  }
  if (nh > 0) {
    /* Share the roots' work before the helpers start looking. */
    if (g->cur->n > 0) {
      wb_publish(g->cur);
      g->cur = wb_get_empty();
    }
    atomic_store_explicit(&helpers_running, nh, memory_order_release);
    atomic_fetch_add_explicit(&helper_epoch, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&helper_epoch, INT32_MAX);
  }
  if (nh == 0 && !joinable) {
    g->recruit = ga__gc_all_markers() - 1;
    g->scans = 0;
  }
  drain(g);
  g->recruit = 0;
  int r;
  while ((r = atomic_load_explicit(&helpers_running, memory_order_acquire)) > 0)
    ga__sys_futex_wait((uint32_t *)&helpers_running, (uint32_t)r);
  if (joinable) {
    ga_mutex_lock(&work.lock);
    work.active = 0;
    ga_mutex_unlock(&work.lock);
    while ((r = atomic_load_explicit(&assists_active, memory_order_acquire)) > 0)
      ga__sys_futex_wait((uint32_t *)&assists_active, (uint32_t)r);
    atomic_fetch_add_explicit(&drain_epoch, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&drain_epoch, INT32_MAX);
  }
}

static void drain_parallel(gcw *g, int nworkers) { drain_parallel_j(g, nworkers, false); }

/* Join the running concurrent drain, if any, until it is done. The caller
 * is a mutator at a safe point; it cannot be stopped while it holds grey
 * objects (ga__mallocing), and a drain only ends when every participant's
 * buffer is empty. Returns false if there was no drain to join (then it
 * waits, briefly, for one to start). */
bool ga__gc_assist(bool wait) {
  uint32_t e = atomic_load_explicit(&drain_epoch, memory_order_acquire);
  ga__mallocing++;
  atomic_signal_fence(memory_order_seq_cst);
  ga_mutex_lock(&work.lock);
  /* Marks are bytes set with plain stores: any number of markers may run. */
  bool join = work.active && !atomic_load(&work.done) && work.full != NULL;
  if (join) {
    work.nworkers++;
    atomic_fetch_add(&assists_active, 1);
  }
  ga_mutex_unlock(&work.lock);
  if (join) {
    drain_as_participant(true);
    atomic_fetch_sub_explicit(&assists_active, 1, memory_order_release);
    ga__sys_futex_wake((uint32_t *)&assists_active, 1);
  }
  atomic_signal_fence(memory_order_seq_cst);
  if (--ga__mallocing == 0 && ga__stopPending) ga__stop_self_pending();
  if (!join) {
    /* Ask the markers to share work from now on (until this drain ends),
     * and, if told to, wait a little for it (or for the next drain, or the
     * cycle's end, which bump drain_epoch too). */
    atomic_store_explicit(&assist_demand, 1, memory_order_relaxed);
    if (wait) {
      atomic_fetch_add(&assists_wanted, 1);
      ga__sys_futex_wait_ns((uint32_t *)&drain_epoch, e, 100000);
      atomic_fetch_sub(&assists_wanted, 1);
    }
  }
  return join;
}

/* ---- the mark phases ------------------------------------------------------ */

static gcw markg; /* the collecting thread's buffer, across phases */

static void mark_begin(void) {
  markg.cur = wb_get_empty();
  markg.bytes = 0;
  cur_gcw = &markg;
  atomic_store(&work.bytesMarked, 0);
}

static uint64_t mark_end(void) {
  ga_mutex_lock(&work.lock);
  markg.cur->next = work.empty;
  work.empty = markg.cur;
  ga_mutex_unlock(&work.lock);
  cur_gcw = NULL;
  return markg.bytes + atomic_load(&work.bytesMarked);
}

/* Grey everything the roots point to (world stopped). */
static void mark_roots(gcw *g) {
  VG_SCAN_BEGIN();
  for (int i = 0; i < ndata_roots; i++) scanblock(g, data_roots[i].lo, data_roots[i].hi);
  for (int i = 0; i < nuser_roots; i++) scanblock(g, user_roots[i].lo, user_roots[i].hi);
  ga__for_each_stack(scan_stack_cb, g);
  ga__mcache_for_each(grey_tiny_cb, g);
  ga__final_mark_queued();
  /* Finalizable objects keep what they point to alive (not themselves). */
  ga__final_mark_referents();
  VG_SCAN_END();
}

/* Drain, then settle the finalizers (world stopped). */
static void mark_finish(gcw *g, int nworkers) {
  VG_SCAN_BEGIN();
  drain_parallel(g, nworkers);
  /* Finalizable objects found unreachable: resurrect them for one more
   * cycle and queue their finalizers; mark what they reach. */
  ga__final_queue_dead();
  drain_parallel(g, 1);
  VG_SCAN_END();
}

uint64_t ga__gc_mark(int nworkers) {
  mark_begin();
  mark_roots(&markg);
  mark_finish(&markg, nworkers);
  return mark_end();
}

void ga__gc_mark_start(void) {
  mark_begin();
  mark_roots(&markg);
}

/* Rescan the marked objects that overlap the written pages [lo, hi): a
 * pointer stored into an object after it was scanned is found here. The
 * first RESCAN_QUEUE of a pass go on the work list, not scanned here, so
 * that the drain after this shares them with assists (concurrent) or every
 * core (final pause): gc-churn's slot table, written all over, took a
 * single thread 1.2 ms a cycle to rescan, while its program waited past
 * the goal (a pass queues up to 70k objects there). The rest are scanned
 * here: queued, every marked object on the written pages of a heap being
 * built (gcbench's, binary-trees': up to 550k in one pass) took 256-512
 * work buffers, 2-4 MiB that stay with the process, where 4 had done.
 * Exact "allocated" with the world stopped, through allocated_conc while it runs
 * (a marked slot freed since is skipped, not scanned for garbage). Pages of
 * objects allocated during the mark are written but hold no marked object
 * unless one was traced: a span with no mark at all is skipped whole
 * (anyMarked), else a mark word at a time. */
typedef struct {
  gcw *g;
  bool conc;
  long queued; /* objects put on the work list by this pass */
} rescan_ctx;

#define RESCAN_QUEUE (64 * (WB_CAP / 2)) /* 64 work buffers, 512 KiB */

static void rescan_object(rescan_ctx *rc, uintptr_t base, uintptr_t end) {
  if (rc->queued < RESCAN_QUEUE) {
    rc->queued++;
    gcw_put(rc->g, base, end);
  } else {
    scanblock(rc->g, base, end);
  }
}

__attribute__((no_sanitize("thread")))
static void rescan_written(uintptr_t lo, uintptr_t hi, void *arg) {
  rescan_ctx *rc = arg;
  uintptr_t p = lo;
  while (p < hi) {
    mspan *s = ga__spanOf(p);
    uintptr_t next_page = (p & ~(uintptr_t)(GA_PAGE_SIZE - 1)) + GA_PAGE_SIZE;
    if (atomic_load_explicit(&s->state, memory_order_acquire) != mSpanInUse ||
        p < s->startAddr || p - s->startAddr >= s->npages * GA_PAGE_SIZE) {
      p = next_page;
      continue;
    }
    uintptr_t send = s->startAddr + s->npages * GA_PAGE_SIZE;
    uintptr_t b = hi < send ? hi : send;
    if (!(s->spanclass & 1) && atomic_load_explicit(&s->anyMarked, memory_order_acquire)) {
      if (s->divMul == 0) { /* large: only the written part can be new */
        if (ga__isMarked(s, 0) &&
            (rc->conc ? allocated_conc(s, 0) : ga__span_isAllocated(s, 0)))
          rescan_object(rc, p, b);
      } else {
        uintptr_t i = ga__objIndex(s, p - s->startAddr);
        uintptr_t last = ga__objIndex(s, b - 1 - s->startAddr);
        if (last >= s->nelems) last = (uintptr_t)s->nelems - 1;
        uint64_t word = 0;
        uintptr_t wi = UINTPTR_MAX; /* the 64 slots whose marks are in word */
        for (; i <= last && i < s->nelems; i++) {
          if ((i >> 6) != wi) {
            wi = i >> 6;
            word = ga__markWord(s, (unsigned)wi);
          }
          uint64_t mw = word >> (i & 63);
          if (mw == 0) { /* nothing marked up to the end of this word */
            i |= 63;
            continue;
          }
          if (!(mw & 1)) continue;
          if (!(rc->conc ? allocated_conc(s, i) : ga__span_isAllocated(s, i)))
            continue;
          uintptr_t base = s->startAddr + i * s->elemsize;
          rescan_object(rc, base, base + s->elemsize);
        }
      }
    }
    p = b;
  }
}

/* The concurrent phase: drain from the roots greyed at the start; rescan
 * the marked objects on the pages written meanwhile, re-protecting those
 * the reset protected (mwritewatch.c), so that the final pause only
 * rescans what is written after this; drain
 * what that found (twice, when the first round found much). If the write
 * watch fails here, the final pause sees it fail too and rescans
 * everything (rescan_all).
 * Earlier versions ran several rounds, each ending with a brief stop to
 * grey the roots again, so that young objects still held were traced before
 * the final pause. Most of those were dead by the end of the mark, and as
 * floating garbage they raised the next heap goal (measured: peak RSS of
 * binary-trees 63 MiB with one round, 78 with two, 111 with four; gcbench
 * 136 / 160 / 189 MiB), while the final pause they saved is a parallel
 * drain of what is young and reachable at that moment. */
void ga__gc_mark_concurrent(int nworkers) {
  mark_concurrent = true;
  VG_SCAN_BEGIN();
  drain_parallel_j(&markg, nworkers, true);
  rescan_ctx rc = {&markg, true, 0};
  /* A second round when the first found much written: what the final
   * pause rescans is then only what was written during the second
   * (gc-churn, whose slot table is written all the time: 95th percentile
   * of the final pause 0.47-0.67 ms with one round, 0.30-0.38 with two;
   * binary-trees and gcbench, which write little of their old heap,
   * unchanged, and no slower). */
  for (int round = 0; round < 2; round++) {
    rc.queued = 0;
    intptr_t written = ga__ww_scan(rescan_written, &rc, true);
    drain_parallel_j(&markg, nworkers, true);
    if (written < 64) break;
  }
  VG_SCAN_END();
  mark_concurrent = false;
}

/* Tracking failed mid-cycle: every page may have been written. */
static void rescan_all(rescan_ctx *rc) {
  uintptr_t lo = atomic_load(&ga__heapMin), hi = atomic_load(&ga__heapMax);
  for (uintptr_t a = lo; a < hi; a += GA_ARENA_BYTES) {
    if (ga__arenaOf(a) != NULL) rescan_written(a, a + GA_ARENA_BYTES, rc);
  }
}

uint64_t ga__gc_mark_terminate(int nworkers) {
  rescan_ctx rc = {&markg, false, 0};
  VG_SCAN_BEGIN();
  /* No rearming: the heap is unprotected right after this pause. */
  if (ga__ww_scan(rescan_written, &rc, false) < 0) rescan_all(&rc);
  VG_SCAN_END();
  mark_roots(&markg);
  mark_finish(&markg, nworkers);
  return mark_end();
}

void ga__gc_mark_after_fork_child(void) {
  atomic_store(&nhelpers, 0);
  atomic_store(&helpers_running, 0);
  atomic_store(&work.lock.state, 0);
}
