/*
 * mwritewatch.c — which heap pages were written since a given moment: the
 * dirty-page tracking that lets the collector mark while the program runs
 * (mgc.c). Go gets the same knowledge from its compiler's write barrier; a
 * C library cannot instrument stores, so it asks the kernel.
 *
 * Mechanism (Linux >= 6.7): every mapped heap range is registered with a
 * userfaultfd in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC).
 * ga__ww_reset write-protects the pages of the heap's pointer-holding
 * spans (those still protected since the last cycle are left as they
 * are: see ga__ww_stop, which keeps the protection between cycles when
 * the program writes little of the heap); the first store to a protected
 * 4 KiB page is resolved by the
 * kernel itself (no signal, no thread of ours involved: a minor fault, plus
 * an interrupt of every other CPU running the program for the TLB) and
 * leaves the page "written". Any page not protected counts as written: a
 * page with no memory yet gets an unprotected one on its first store, and
 * a populated page without the protection bit is reported as written.
 * ga__ww_scan asks PAGEMAP_SCAN for the written pages of the scan spans
 * and, when asked, write-protects them again in the same call, so that a
 * store after the scan is seen by the next one. Stores made by the kernel on the
 * program's behalf (read(2) into a heap buffer) are tracked alike.
 * Boehm GC's incremental mode gets the same from mprotect and SIGSEGV,
 * which breaks system calls that write to protected pages; soft-dirty bits
 * (Boehm's other source) are not built into every kernel (not this one).
 *
 * Minor cycles (mgc.c) rely on it between cycles too: a page that still
 * has its protection was not written since its marked objects were
 * scanned. So nothing here forgets that a page was written without a
 * rescan of its marked objects, except a major cycle's reset, which comes
 * after every mark was cleared.
 *
 * Unavailable (older kernel, seccomp, valgrind, GOALLOC_GC_CONCURRENT=0):
 * ga__ww_enabled() is false and the collector stops the world for the
 * whole mark, as before. After fork the child's mappings are no longer
 * registered (the kernel drops userfaultfd contexts without
 * UFFD_FEATURE_EVENT_FORK), so the child turns tracking off.
 *
 * Invariant: every heap page that holds objects is in a registered range
 * (ga__ww_register is called for each range the heap maps, under the heap
 * lock, before any span is carved from it). A page the scan does not report
 * was not written since it was last protected, and every page of a scan
 * span is protected or reported written from the reset on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mgc.h"
#include "options.h"

/* Kernel ABI newer than some distributions' headers (Linux 6.7). */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
      category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define WW_MAX_RANGES 512

static struct {
  int uffd, pagemap;
  _Atomic int enabled;
  ga_mutex lock; /* the range list (registration vs. reset/scan) */
  int nranges;
  struct { uintptr_t lo, hi; } ranges[WW_MAX_RANGES];
  /* The policy at the end of a cycle (ga__ww_stop), collector only. */
  bool kept;          /* the last cycle left its protection in place */
  bool keep;          /* this cycle will */
  unsigned probeIn;   /* lifting cycles left before keeping is tried again */
  int testPolicy;     /* 0 adaptive, 1 always lift, 2 always keep */
  /* The runs the last reset protected, for the rearming scan (off-heap:
   * a root scan of our data must not see heap addresses here). */
  struct run { uintptr_t lo, hi; } *snap;
  int nsnap;
  bool snapValid;     /* every run of the last reset is in snap */
  /* Heat (collector only, see heat_begin): the rearming scans of this
   * cycle so far, the pages that are hot, and the cycles until heat is
   * forgotten. */
  unsigned round;
  unsigned nhot;
  unsigned hotProbeIn;
} ww = {.uffd = -1, .pagemap = -1, .probeIn = 1}; /* the first cycle keeps */


bool ga__ww_enabled(void) {
  return atomic_load_explicit(&ww.enabled, memory_order_acquire) != 0;
}

static void ww_off(void) {
  atomic_store_explicit(&ww.enabled, 0, memory_order_release);
}

/* Heap init (before the first arena is mapped). */
void ga__ww_init(void) {
  if (!ga__option_get(GA_OPT_GC_CONCURRENT) || !ga__collector_wanted()) return;
#if GA_VALGRIND_BUILD
  if (RUNNING_ON_VALGRIND) return; /* valgrind knows no userfaultfd */
#endif
  int saved = errno;
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) goto out;
  /* Not UFFD_FEATURE_WP_UNPOPULATED: protecting pages that have no memory
   * yet would fill the page tables of the whole heap with markers at every
   * reset (measured: most of the collector thread's system time on
   * gcbench). An unpopulated page needs no protection: the first store
   * gives it a fresh page without the protection bit, which PAGEMAP_SCAN
   * reports as written like any other. */
  struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC};
  if (ioctl(fd, UFFDIO_API, &api) != 0 || !(api.features & UFFD_FEATURE_WP_ASYNC)) {
    close(fd);
    goto out;
  }
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) {
    close(fd);
    goto out;
  }
  /* PAGEMAP_SCAN itself is 6.7+: probe it on an empty range. */
  struct pm_scan_arg a = {.size = sizeof a, .start = 0, .end = 0};
  if (ioctl(pm, PAGEMAP_SCAN, &a) < 0) {
    close(pm);
    close(fd);
    goto out;
  }
  ww.uffd = fd;
  ww.pagemap = pm;
  atomic_store_explicit(&ww.enabled, 1, memory_order_release);
  ga__gc_sticky = ga__option_get(GA_OPT_GC_GENERATIONAL) != 0;
out:
  errno = saved;
}

/* The heap mapped [lo, hi) (heap lock held). A range that cannot be
 * registered turns tracking off for good: a page we cannot watch would make
 * concurrent marking unsafe. */
void ga__ww_register(uintptr_t lo, uintptr_t hi) {
  if (!ga__ww_enabled()) return;
  ga_mutex_lock(&ww.lock);
  int saved = errno;
  struct uffdio_register r = {.range = {lo, hi - lo}, .mode = UFFDIO_REGISTER_MODE_WP};
  if (ioctl(ww.uffd, UFFDIO_REGISTER, &r) != 0) {
    ww_off();
  } else if (ww.nranges > 0 && ww.ranges[ww.nranges - 1].hi == lo) {
    ww.ranges[ww.nranges - 1].hi = hi;
  } else if (ww.nranges < WW_MAX_RANGES) {
    ww.ranges[ww.nranges].lo = lo;
    ww.ranges[ww.nranges].hi = hi;
    ww.nranges++;
  } else {
    ww_off();
  }
  errno = saved;
  ga_mutex_unlock(&ww.lock);
}

/* Write-protect the pages of the heap's in-use scan spans (mheap.c walks
 * them): from now on every store to them is recorded. Other pages are left
 * alone: a free page or a pointer-free span's needs no watching until it
 * holds objects that might be marked, and an unprotected page that is
 * written counts as written anyway (no protection bit), so a page this
 * misses is only reported when it need not be. Allocation during the mark
 * lands in such pages mostly (mcentral.c prefers fresh spans then), which
 * spares the program a fault per page. False if the kernel refused
 * (tracking is then off). */
/* Runs of scan spans, merged across gaps of up to MERGE_GAP bytes (free or
 * pointer-free pages in between are then protected and scanned too):
 * every protecting ioctl flushes the TLB of every CPU running the program,
 * by interrupt, so thousands of small runs (a heap where pointer-free and
 * pointer-holding spans alternate) cost far more than a few pages
 * protected needlessly (measured on gc-churn: a quarter of all CPU time
 * went to those interrupts before merging). But a free page protected is a
 * fault when the program allocates there during the mark (binary-trees:
 * 150k faults with no merging, 240k merging across 512 KiB): 64 KiB. */
#define MERGE_GAP ((uintptr_t)8 << 13)

#define KEEP_PROBE_EVERY 16

/* ---- heat -----------------------------------------------------------------
 *
 * A page the program writes all the time (a big table of pointers updated
 * at random: gc-churn's slot table, a hash map, a cache) is reported
 * written by every scan, and each protection costs it a fault with a TLB
 * interrupt: after the reset, after each rearming scan of the mark, and
 * between cycles when the protection is kept. Its marked objects are
 * rescanned at every round and in the final pause anyway, since it is
 * written in each of those windows too. gc-churn took 120k such faults a
 * run on the 586 pages of its slot table, 60 % of all its write faults,
 * and its program spent about 40 % of its time in fault handling (perf).
 * So the pages of a big object (HOT_MIN_PAGES or more) written in both
 * rearming scans of a cycle become hot: neither the reset nor the first
 * rearming scan protects them again, only the second, the mark's last
 * (mgcmark.c runs two at most), so that the final pause rescans only what
 * is written after it; since an unprotected page counts as written, every
 * scan reports them and their marked objects are always rescanned. That
 * leaves one fault a hot page a cycle. Correctness does not depend on
 * heat: every scan still covers hot pages.
 *
 * Heat is per span, recorded per 8 KiB page in the arenas' pageWarm and
 * pageHot bitmaps. Whole big objects, not single pages: the pages of the
 * table that were written in the short window between the two scans were
 * scattered, and hot pages amid cold ones split the protected runs (gc-
 * churn: 45k ioctls a run instead of 18k, 1.17x the time). A hot span the
 * program has stopped writing costs a needless rescan each round, so heat
 * is bounded (HOT_MAX pages, 4 MiB) and forgotten every HOT_PROBE_EVERY
 * cycles, when every page is protected again and heat is learnt afresh. */
#define HOT_MAX 512u
#define HOT_PROBE_EVERY 16u
#define HOT_MIN_PAGES 16u

static void for_each_arena(void (*fn)(heapArena *ha)) {
  uintptr_t min = atomic_load(&ga__heapMin) & ~(GA_ARENA_BYTES - 1);
  uintptr_t max = atomic_load(&ga__heapMax);
  for (uintptr_t a = min; a < max; a += GA_ARENA_BYTES) {
    heapArena *ha = ga__arenaOf(a);
    if (ha != NULL) fn(ha);
  }
}

static void clear_warm(heapArena *ha) {
  for (unsigned w = 0; w < GA_PAGES_PER_ARENA / 64; w++)
    atomic_store_explicit(&ha->pageWarm[w], 0, memory_order_relaxed);
}

static void clear_hot(heapArena *ha) {
  for (unsigned w = 0; w < GA_PAGES_PER_ARENA / 64; w++)
    atomic_store_explicit(&ha->pageHot[w], 0, memory_order_relaxed);
}

/* A cycle's watch begins (a reset, or a minor cycle's start). */
static void heat_begin(void) {
  ww.round = 0;
  for_each_arena(clear_warm);
  if (ww.hotProbeIn == 0 || --ww.hotProbeIn == 0) {
    if (ww.nhot > 0) for_each_arena(clear_hot);
    ww.nhot = 0;
    ww.hotProbeIn = HOT_PROBE_EVERY;
  }
}

static _Atomic unsigned long hotSpans; /* ever made hot (tests) */

unsigned long ga__ww_hotSpans(void) { return atomic_load(&hotSpans); }

/* Make every page of s hot (its pages hold one big object). */
static void span_hot(mspan *s) {
  if (ww.nhot + s->npages > HOT_MAX) return;
  atomic_fetch_add_explicit(&hotSpans, 1, memory_order_relaxed);
  for (uintptr_t p = s->startAddr, e = p + s->npages * GA_PAGE_SIZE; p < e; p += GA_PAGE_SIZE) {
    heapArena *ha = ga__arenaOf(p);
    uintptr_t i = ga__arenaPage(p);
    atomic_fetch_or_explicit(&ha->pageHot[i / 64], (uint64_t)1 << (i % 64),
                             memory_order_relaxed);
  }
  ww.nhot += (unsigned)s->npages;
}

/* [lo, hi) was reported written by rearming scan number ww.round. */
static void heat_note(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t p = lo & ~(uintptr_t)(GA_PAGE_SIZE - 1); p < hi; p += GA_PAGE_SIZE) {
    heapArena *ha = ga__arenaOf(p);
    if (ha == NULL) continue;
    uintptr_t i = ga__arenaPage(p);
    uint64_t m = (uint64_t)1 << (i % 64);
    _Atomic uint64_t *warm = &ha->pageWarm[i / 64];
    uint64_t wv = atomic_load_explicit(warm, memory_order_relaxed);
    if (ww.round == 1) {
      atomic_store_explicit(warm, wv | m, memory_order_relaxed);
      continue;
    }
    if (!(wv & m) ||
        (atomic_load_explicit(&ha->pageHot[i / 64], memory_order_relaxed) & m))
      continue;
    mspan *s = ga__spanOf(p);
    if (atomic_load_explicit(&s->state, memory_order_acquire) == mSpanInUse &&
        s->npages >= HOT_MIN_PAGES && s->divMul == 0 &&
        p - s->startAddr < s->npages * GA_PAGE_SIZE)
      span_hot(s);
  }
}

/* Does [lo, hi) hold a hot page? (Cold runs are not merged across one,
 * which would protect it.) */
static bool any_hot(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t p = lo; p < hi; p += GA_PAGE_SIZE) {
    heapArena *ha = ga__arenaOf(p);
    uintptr_t i = ga__arenaPage(p);
    if (ha != NULL &&
        (atomic_load_explicit(&ha->pageHot[i / 64], memory_order_relaxed) >> (i % 64)) & 1)
      return true;
  }
  return false;
}

typedef struct {
  void (*fn)(uintptr_t lo, uintptr_t hi, void *arg);
  void *arg;
  uintptr_t lo, hi;
  bool cold;
} merge_ctx;

static void merge_run(uintptr_t lo, uintptr_t hi, void *arg) {
  merge_ctx *m = arg;
  if (m->hi > m->lo && lo - m->hi <= MERGE_GAP &&
      !(m->cold && ww.nhot > 0 && any_hot(m->hi, lo))) {
    m->hi = hi;
    return;
  }
  if (m->hi > m->lo) m->fn(m->lo, m->hi, m->arg);
  m->lo = lo;
  m->hi = hi;
}

static void for_each_merged_run(int which, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                                void *arg) {
  merge_ctx m = {fn, arg, 0, 0, which == GA_RUNS_COLD};
  ga__mheap_scanRuns(which, merge_run, &m);
  if (m.hi > m.lo) fn(m.lo, m.hi, arg);
}

#define SNAP_MAX 8192

/* Start recording runs into snap (collector only: the snap buffer is its
 * own; the reset, a minor cycle's first scan and the sticky stop fill it). */
static void snap_begin(void) {
  if (ww.snap == NULL) ww.snap = ga__sys_alloc(SNAP_MAX * sizeof *ww.snap);
  ww.nsnap = 0;
  ww.snapValid = ww.snap != NULL;
}

/* Remember a run (collector only: the snap buffer is its own). */
static void snap_add(uintptr_t lo, uintptr_t hi) {
  if (ww.snap != NULL && ww.nsnap < SNAP_MAX) {
    ww.snap[ww.nsnap].lo = lo;
    ww.snap[ww.nsnap].hi = hi;
    ww.nsnap++;
  } else {
    ww.snapValid = false;
  }
}

static void protect_run(uintptr_t lo, uintptr_t hi, void *arg) {
  bool *ok = arg;
  snap_add(lo, hi);
  if (!*ok) return;
  struct uffdio_writeprotect wp = {.range = {lo, hi - lo}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
  if (ioctl(ww.uffd, UFFDIO_WRITEPROTECT, &wp) != 0) *ok = false;
}

/* Pages of the scan runs, and their written pages re-protected, for the
 * policy below. */
typedef struct {
  bool failed;
  uintptr_t pages, written;
} rearm_ctx;

static void scan_run(uintptr_t lo, uintptr_t hi, void *arg);

static void rearm_run(uintptr_t lo, uintptr_t hi, void *arg);

/* A cycle that left the protection in place (below) needs only the pages
 * written since protected again: one PAGEMAP_SCAN that re-protects what it
 * reports, where a full protect would rewrite every entry. */
bool ga__ww_reset(void) {
  if (!ga__ww_enabled()) return false;
  ga_mutex_lock(&ww.lock);
  int saved = errno;
  bool ok = true;
  snap_begin();
  heat_begin();
  if (ww.kept) {
    rearm_ctx r = {false, 0, 0};
    for_each_merged_run(GA_RUNS_COLD, rearm_run, &r);
    ok = !r.failed;
    /* Keep again while under 40 % of the watched pages were written
     * between cycles (measured: gc-churn 13 % in the median, gcbench and
     * binary-trees more than half). A cycle that probes keeping after
     * lifting ones overstates it (the pages written at the end of the
     * last mark and the spans allocated during it count too: gc-churn
     * 25-33 %), so the bar is not lower: at a quarter gc-churn, once its
     * marks were shared with assists, probed and went back to lifting
     * most of the time, and lifting costs it two walks of the whole heap's
     * page tables a cycle (against the tree before assists: 1.09x the
     * time at a quarter, 0.97x at 40 %, 7 rounds each). */
    ww.keep = ww.testPolicy == 2 || (ww.testPolicy == 0 && r.written * 5 < r.pages * 2);
    if (!ww.keep) ww.probeIn = KEEP_PROBE_EVERY;
  } else {
    for_each_merged_run(GA_RUNS_COLD, protect_run, &ok);
    ww.keep = ww.testPolicy == 2 || (ww.testPolicy == 0 && --ww.probeIn == 0);
  }
  if (!ok) ww_off();
  errno = saved;
  ga_mutex_unlock(&ww.lock);
  return ok;
}

/* The end of a cycle's watch: lift the protection, or keep it for the
 * next cycle. Kept, a page is protected again at the next reset only if it
 * was written meanwhile, but every first store to a protected page between
 * cycles is a fault (no interrupt then: no protect call is in progress).
 * Lifted, the program writes freely, and the next reset protects every
 * page again. Which is cheaper depends on how much of the heap the program
 * writes between cycles: a heap of long-lived objects that a few
 * allocations churn through (gc-churn, whose large objects are written
 * once) is best kept, a heap that is mostly young objects built and
 * dropped (gcbench, binary-trees) best lifted (kept, gcbench took 537k
 * faults instead of 59k). The reset after a kept cycle measures it and
 * decides (above); a lifting policy tries keeping again every
 * KEEP_PROBE_EVERY cycles, since a program's phases change.
 *
 * Lifting is one ioctl per registered range (the heap's mappings, merged
 * where adjacent: usually one), not one per run of scan spans: each call
 * ends with a TLB flush, an interrupt of every other CPU running the
 * program, and while a call is in progress every write fault the program
 * takes flushes too (the kernel's "flush pending" rule for uffd-wp), and
 * the program is running and allocating into the protected spans it has
 * just swept. Per run (~160 on gcbench) that was half of the collector
 * thread's time in the kernel, and the mutator's faults meanwhile about a
 * sixth of its own (perf). Walking the page tables of free pages too costs
 * little, and it lifts the protection of spans freed since the reset,
 * which would otherwise fault once more when reused. */
static void lift(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo) return;
  struct uffdio_writeprotect wp = {.range = {lo, hi - lo}, .mode = 0};
  if (ioctl(ww.uffd, UFFDIO_WRITEPROTECT, &wp) != 0) ww_off();
}

static void note_old_run(uintptr_t lo, uintptr_t hi, void *arg) {
  (void)arg;
  snap_add(lo, hi);
}

/* Sticky marks (minor cycles, mgc.c): the pages of spans whose every slot
 * is marked stay protected, so that the next minor cycle rescans only
 * those the program writes; everything else is lifted (it will be
 * allocated into, and counts as written then). The snap buffer holds the
 * runs meanwhile: the next cycle's first rearming scan rebuilds it.
 * (ga__ww_testPolicy's "keep" and "lift" still apply: a minor cycle is
 * correct whatever is protected, only slower.) */
static void old_runs(void) {
  snap_begin();
  if (ww.snap != NULL) ga__mheap_oldRuns(note_old_run, NULL);
}

/* ww.lock held; the old runs are in snap (old_runs). */
static void stop_sticky(void) {
  bool all = !ww.snapValid; /* too many runs: lift everything */
  for (int i = 0; i < ww.nranges && ga__ww_enabled(); i++) {
    uintptr_t lo = ww.ranges[i].lo, hi = ww.ranges[i].hi, at = lo;
    for (int k = 0; !all && k < ww.nsnap; k++) {
      if (ww.snap[k].hi <= lo || ww.snap[k].lo >= hi) continue;
      lift(at, ww.snap[k].lo > at ? ww.snap[k].lo : at);
      at = ww.snap[k].hi;
    }
    lift(at, hi);
  }
  ww.nsnap = 0;
  ww.snapValid = false;
}

void ga__ww_stop(bool minor_next) {
  if (!ga__ww_enabled()) return;
  /* The old runs come from the heap's span records, under the heap lock,
   * which must never be taken inside ww.lock (ga__ww_register takes
   * ww.lock under the heap lock); the snap buffer is the collector's own. */
  ga_mutex_lock(&ww.lock);
  bool sticky = minor_next && ww.testPolicy == 0;
  ga_mutex_unlock(&ww.lock);
  if (sticky) old_runs();
  ga_mutex_lock(&ww.lock);
  int saved = errno;
  if (sticky) {
    ww.kept = false;
    atomic_store_explicit(&ga__ww_kept, false, memory_order_relaxed);
    stop_sticky();
    errno = saved;
    ga_mutex_unlock(&ww.lock);
    return;
  }
  ww.kept = ww.keep;
  atomic_store_explicit(&ga__ww_kept, ww.kept, memory_order_relaxed);
  for (int i = 0; !ww.keep && i < ww.nranges; i++) {
    struct uffdio_writeprotect wp = {
        .range = {ww.ranges[i].lo, ww.ranges[i].hi - ww.ranges[i].lo}, .mode = 0};
    if (ioctl(ww.uffd, UFFDIO_WRITEPROTECT, &wp) != 0) ww_off();
  }
  errno = saved;
  ga_mutex_unlock(&ww.lock);
}

/* Call fn(lo, hi, arg) for every run of written pages of the heap's in-use
 * scan spans (only they can hold marked objects that need a rescan; the
 * runs are walked afresh, so spans born since the reset are included),
 * and, if `rearm`, protect them again (a page protected again faults again
 * on its next store: the collector rearms only when it needs to know about
 * later stores alone, and never protects free or pointer-free pages, which
 * the program fills without faults). A rearming scan covers only the runs
 * the last reset protected: the spans made since hold what the program
 * allocates during the mark, mostly young objects it is still filling, and
 * protected again each of their pages would fault (gcbench, with marks
 * that overlap most of its allocation: 418k faults instead of 97k, 1.15 s
 * instead of 0.76). Never protected, they count as written, so the final
 * scan reports them and the few marked objects on them are rescanned
 * then. Returns the number of 4 KiB pages reported, or -1 if the kernel
 * refused (the caller must then treat every page as written: tracking is
 * off). One scan at a time (the collector). */
typedef struct {
  void (*fn)(uintptr_t lo, uintptr_t hi, void *arg);
  void *arg;
  bool rearm, failed;
  intptr_t pages;
} scan_ctx;

static void scan_run(uintptr_t lo, uintptr_t hi, void *arg) {
  scan_ctx *c = arg;
  enum { VEC = 256 };
  struct page_region vec[VEC];
  uintptr_t start = lo;
  while (start < hi && !c->failed) {
    struct pm_scan_arg a = {.size = sizeof a,
                            .flags = c->rearm ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
                            .start = start,
                            .end = hi,
                            .vec = (uintptr_t)vec,
                            .vec_len = VEC,
                            .category_mask = PAGE_IS_WRITTEN,
                            .return_mask = PAGE_IS_WRITTEN};
    long n = ioctl(ww.pagemap, PAGEMAP_SCAN, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      c->failed = true;
      return;
    }
    for (long k = 0; k < n; k++) {
      c->pages += (intptr_t)((vec[k].end - vec[k].start) >> 12);
      if (c->rearm && ww.round > 0) heat_note((uintptr_t)vec[k].start, (uintptr_t)vec[k].end);
      c->fn((uintptr_t)vec[k].start, (uintptr_t)vec[k].end, c->arg);
    }
    if (a.walk_end <= start) break; /* no progress: the kernel is done */
    start = (uintptr_t)a.walk_end;
  }
}

static void snap_and_scan(uintptr_t lo, uintptr_t hi, void *arg) {
  snap_add(lo, hi);
  scan_run(lo, hi, arg);
}

/* A minor cycle starts with no reset: the pages written since the last
 * cycle are its remembered set, reported (and protected again) by the
 * first rearming scan of its mark, which therefore covers every scan run
 * (ga__ww_scan). */
void ga__ww_begin_minor(void) { /* collector only */
  ww.snapValid = false;
  heat_begin();
}

static void nothing(uintptr_t lo, uintptr_t hi, void *arg) {
  (void)lo, (void)hi, (void)arg;
}

static void rearm_run(uintptr_t lo, uintptr_t hi, void *arg) {
  rearm_ctx *r = arg;
  if (r->failed) return;
  snap_add(lo, hi);
  scan_ctx c = {nothing, NULL, true, false, 0};
  scan_run(lo, hi, &c);
  r->failed = c.failed;
  r->pages += (hi - lo) >> 12;
  r->written += (uintptr_t)c.pages;
}

intptr_t ga__ww_scan(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg,
                     bool rearm) {
  if (!ga__ww_enabled()) return -1;
  int saved = errno;
  scan_ctx c = {fn, arg, rearm, false, 0};
  if (rearm) ww.round++;
  if (rearm && ww.snapValid) {
    for (int i = 0; i < ww.nsnap && !c.failed; i++) scan_run(ww.snap[i].lo, ww.snap[i].hi, &c);
  } else if (rearm) {
    /* A minor cycle's first scan, with no reset before it: every scan run,
     * remembered for the rounds after it (see ga__ww_begin_minor). The
     * snap buffer is the collector's own (no lock: the callback marks, and
     * must not hold up the heap's growth, which takes ww.lock). */
    snap_begin();
    for_each_merged_run(GA_RUNS_COLD, snap_and_scan, &c);
  } else {
    for_each_merged_run(GA_RUNS_ALL, scan_run, &c);
  }
  if (rearm && ww.nhot > 0 && !c.failed) {
    /* Hot pages: reported (unprotected, they count as written), and
     * protected again only by the mark's last rearming scan, so that the
     * final pause rescans only what is written after it (measured on
     * gc-churn, 9 rounds: the median total pause 31 ms a run instead of
     * 53, longest 0.54 ms instead of 0.96, for one fault a hot page a
     * cycle; 0.90x the time of no heat instead of 0.87x). */
    scan_ctx h = {fn, arg, ww.round >= 2, false, 0};
    ga__mheap_scanRuns(GA_RUNS_HOT, scan_run, &h);
    c.failed = h.failed;
    c.pages += h.pages;
  }
  errno = saved;
  if (c.failed) {
    ww_off();
    return -1;
  }
  return c.pages;
}

_Atomic bool ga__ww_kept;

bool ga__ww_keeping(void) {
  ga_mutex_lock(&ww.lock);
  bool kept = ww.kept;
  ga_mutex_unlock(&ww.lock);
  return kept;
}

void ga__ww_testPolicy(int policy) {
  ga_mutex_lock(&ww.lock);
  ww.testPolicy = policy;
  if (policy) ww.keep = policy == 2;
  ga_mutex_unlock(&ww.lock);
}

/* fork child: the kernel did not copy our registrations. */
void ga__ww_after_fork_child(void) {
  ww_off();
  atomic_store_explicit(&ww.lock.state, 0, memory_order_relaxed);
}
