/*
 * mstats.c — statistics (Go's mstats.go twin): one list of counters, kept
 * cheaply, read consistently, printed for people.
 *
 * Where each number comes from
 * ----------------------------
 *   by class    mallocs / frees: folded in when a span leaves a cache
 *               (ga__stats_uncache: objects allocated and freed while it was
 *               cached), when frees made through freeBits are folded into an
 *               uncached span (ga__stats_free), by sweeping, and on large
 *               allocations and frees. spans: +1/-1 from the heap hooks.
 *   heap        HeapSys, HeapInuse, HeapReleased from mheap and the page
 *               allocator, under the heap lock.
 *   collector   pushed at the end of each cycle (ga__stats_gc_cycle).
 *   scavenger   its own counters (ga__scav_counters).
 * Cost: nothing on the fast paths except the owner's free, which bumps the
 * span's localFrees; every counter here is touched on slow paths only
 * (relaxed atomic adds).
 *
 * Consistency and identities (asserted by tests/test_stats.c):
 *   HeapIdle + HeapInuse == HeapSys            always (HeapIdle is derived)
 *   HeapReleased <= HeapIdle                   always
 *   HeapObjects == Mallocs - Frees             by definition; and equal to
 *       the number of live objects once every thread but the caller has
 *       flushed its cache (ga_thread_flush or exit). The caller's own cache
 *       is counted at read time: ga_read_stats looks at the calling thread's
 *       cached spans, which only that thread may touch.
 *   HeapAlloc == sum over classes of (mallocs - frees) * size, plus large
 *       bytes; HeapInuse == sum over classes of spans * span bytes, plus the
 *       bytes of large objects (each large object is a span of its own).
 * Go counts tiny allocations as a malloc and an immediate free (the 16-byte
 * block they share is the object); so do we.
 *
 * Reading never stops the world (Go's ReadMemStats does): other threads'
 * cached spans are seen as of their last refill. It does fold in pending
 * remote frees (ga__mcentral_reclaimAll), which walks every span in no
 * cache: about 0.1 us per span, a few ms per GiB of small objects.
 *
 * Exit report: GOALLOC_SHOW_STATS=1 prints ga_print_stats to stderr from a
 * library destructor, except in the malloc drop-in, which prints its own
 * one-line summary (override.c).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mgc.h" /* ga__slow_enter: reading touches the caller's cache */
#include "options.h"

static struct {
  _Atomic uint64_t mallocs[GA_NUM_SIZE_CLASSES];
  _Atomic uint64_t frees[GA_NUM_SIZE_CLASSES];
  _Atomic uint64_t spans[GA_NUM_SIZE_CLASSES];
  _Atomic uint64_t largeBytesAlloc, largeBytesFree;
  _Atomic uint64_t tinyAllocs;
} st;

/* The collector's numbers, pushed once per cycle. */
static struct {
  ga_mutex lock;
  uint64_t numgc, numForced, numConcurrent, numMinor, pauseMax, pauseTotal, cpuNs, nextGC, lastGC;
  uint64_t pauseNs[256], pauseEnd[256];
} gcs;

/* ---- counting ----------------------------------------------------------- */

void ga__stats_uncache(mspan *s) {
  unsigned cl = s->spanclass >> 1;
  uint64_t frees = s->localFrees;
  uint64_t mallocs = (uint64_t)s->allocCount - s->allocCountBeforeCache + frees;
  if (mallocs) atomic_fetch_add_explicit(&st.mallocs[cl], mallocs, memory_order_relaxed);
  if (frees) atomic_fetch_add_explicit(&st.frees[cl], frees, memory_order_relaxed);
  s->localFrees = 0;
  s->allocCountBeforeCache = s->allocCount;
}

/* A free cache's pops: each was a free and a malloc of the class. */
void ga__stats_tcache(unsigned sizeclass, uint64_t pops) {
  atomic_fetch_add_explicit(&st.mallocs[sizeclass], pops, memory_order_relaxed);
  atomic_fetch_add_explicit(&st.frees[sizeclass], pops, memory_order_relaxed);
}

void ga__stats_free(unsigned sizeclass, uint64_t n, uint64_t bytes) {
  atomic_fetch_add_explicit(&st.frees[sizeclass], n, memory_order_relaxed);
  if (sizeclass == 0)
    atomic_fetch_add_explicit(&st.largeBytesFree, bytes, memory_order_relaxed);
}

void ga__stats_large_alloc(uint64_t bytes) {
  atomic_fetch_add_explicit(&st.mallocs[0], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st.largeBytesAlloc, bytes, memory_order_relaxed);
}

void ga__stats_tiny(uint64_t n) {
  atomic_fetch_add_explicit(&st.tinyAllocs, n, memory_order_relaxed);
}

void ga__stats_span_locked(unsigned sizeclass, int delta) {
  atomic_fetch_add_explicit(&st.spans[sizeclass], (uint64_t)(int64_t)delta,
                            memory_order_relaxed);
}

void ga__stats_gc_cycle(const ga_gc_cycle_stats *c) {
  uint64_t end = (uint64_t)ga__sys_walltime();
  ga_mutex_lock(&gcs.lock);
  uint64_t i = gcs.numgc % 256;
  gcs.pauseNs[i] = c->pause_ns;
  gcs.pauseEnd[i] = end;
  gcs.numgc++;
  gcs.numForced += c->forced;
  gcs.numConcurrent += c->concurrent;
  gcs.numMinor += c->minor;
  if (c->pause_ns > gcs.pauseMax) gcs.pauseMax = c->pause_ns;
  gcs.pauseTotal += c->pause_ns;
  gcs.cpuNs += c->cpu_ns;
  gcs.nextGC = c->next_gc;
  gcs.lastGC = end;
  ga_mutex_unlock(&gcs.lock);
}

/* ---- reading ------------------------------------------------------------ */

/* Add what the calling thread's cache has allocated and freed since its
 * spans were cached (what ga__stats_uncache would add if they left now),
 * after folding in frees other threads made into them. Only the owning
 * thread may touch these fields, and we are it (inside a slow path). */
struct own_counts {
  uint64_t *mallocs, *frees;
};

static void add_own_span(mspan *s, void *arg) {
  struct own_counts *oc = arg;
  if (s->nelems == 0) return;
  ga__span_collect(s);
  unsigned nw = (s->nelems + 63u) / 64u, w0 = s->freeindex >> 6;
  uint64_t n = 0;
  for (unsigned w = 0; w < nw; w++) {
    uint64_t bits = w == w0
        ? ~ga__loadBits(&s->allocCache) & ga__windowValid(s, w)
        : ga__loadBits(&s->allocBits[w]);
    n += (uint64_t)ga__popcount64(bits);
  }
  unsigned cl = s->spanclass >> 1;
  oc->mallocs[cl] += n - s->allocCountBeforeCache + s->localFrees;
  oc->frees[cl] += s->localFrees;
}

static void add_own_cache(uint64_t *mallocs, uint64_t *frees, uint64_t *tiny) {
  mcache *c = ga__tls_cache;
  if (c == &ga__emptycache) return;
  struct own_counts oc = {mallocs, frees};
  ga__mcache_for_each_span(c, add_own_span, &oc); /* current and parked */
  for (unsigned i = 0; i < GA_NUM_SPAN_CLASSES; i++) {
    mallocs[i >> 1] += c->tc[i].pops;
    frees[i >> 1] += c->tc[i].pops;
  }
  *tiny += c->tinyAllocs;
}

static void fill(ga_stats *out) {
  ga__ensure_init();
  ga__slow_enter();
  /* Fold frees made by other threads into spans in no cache (Go's
   * ReadMemStats stops the world and flushes instead): the counts then
   * describe every free made before this call, except frees into spans
   * other threads still cache. */
  ga__mcentral_reclaimAll();
  memset(out, 0, sizeof *out);
  out->version = GA_STATS_VERSION;
  uint64_t m[GA_NUM_SIZE_CLASSES], f[GA_NUM_SIZE_CLASSES];
  for (unsigned c = 0; c < GA_NUM_SIZE_CLASSES; c++) {
    m[c] = atomic_load_explicit(&st.mallocs[c], memory_order_relaxed);
    f[c] = atomic_load_explicit(&st.frees[c], memory_order_relaxed);
  }
  uint64_t tiny = atomic_load_explicit(&st.tinyAllocs, memory_order_relaxed);
  add_own_cache(m, f, &tiny);
  /* Inside the slow-path region too: it takes the heap lock, and a thread
   * stopped while holding it would block the collector's root marking
   * (which walks the caches under that lock) for good. */
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  ga__slow_leave();
  for (unsigned c = 0; c < GA_NUM_SIZE_CLASSES; c++) {
    out->by_size[c].size = ga__class_to_size[c];
    out->by_size[c].mallocs = m[c];
    out->by_size[c].frees = f[c];
    out->by_size[c].spans =
        (size_t)atomic_load_explicit(&st.spans[c], memory_order_relaxed);
    out->mallocs += m[c];
    out->frees += f[c];
    if (c > 0) {
      out->total_alloc += m[c] * ga__class_to_size[c];
      out->heap_alloc += (m[c] - f[c]) * ga__class_to_size[c];
    }
  }
  uint64_t lb = atomic_load_explicit(&st.largeBytesAlloc, memory_order_relaxed);
  uint64_t lf = atomic_load_explicit(&st.largeBytesFree, memory_order_relaxed);
  out->total_alloc += lb;
  out->heap_alloc += lb - lf;
  out->tiny_allocs = tiny;
  out->heap_objects = out->mallocs - out->frees;
  out->mallocs += tiny; /* Go: a tiny allocation is a malloc and a free */
  out->frees += tiny;
  out->heap_sys = hc.heapSys;
  out->heap_inuse = (uint64_t)hc.pagesInUse * GA_PAGE_SIZE;
  out->heap_released = hc.heapReleased;
  out->heap_idle = out->heap_sys - out->heap_inuse;

  ga_mutex_lock(&gcs.lock);
  out->num_gc = gcs.numgc;
  out->num_forced_gc = gcs.numForced;
  out->num_concurrent_gc = gcs.numConcurrent;
  out->num_minor_gc = gcs.numMinor;
  out->pause_max_ns = gcs.pauseMax;
  out->pause_total_ns = gcs.pauseTotal;
  memcpy(out->pause_ns, gcs.pauseNs, sizeof out->pause_ns);
  memcpy(out->pause_end, gcs.pauseEnd, sizeof out->pause_end);
  out->last_gc = gcs.lastGC;
  out->next_gc = gcs.nextGC;
  uint64_t cpu = gcs.cpuNs;
  ga_mutex_unlock(&gcs.lock);
  /* Go's GCCPUFraction: collector CPU over all CPUs' time since start. */
  int64_t elapsed = ga__sys_nanotime() - ga__options_init_ns;
  if (elapsed > 0)
    out->gc_cpu_fraction = (double)cpu / ((double)elapsed * ga__sys_ncpu());

  ga_scav_counters sc;
  ga__scav_counters(&sc);
  out->scav_bg_bytes = sc.bgBytes;
  out->scav_eager_bytes = sc.eagerBytes;
  out->scav_forced_bytes = sc.forcedBytes;
  out->scav_madvises = sc.madvises;
  out->scav_ns = sc.workNs;
  out->gc_percent = ga__option_gogc();
  out->memory_limit = ga__option_memlimit();
}

int ga_read_stats(ga_stats *out) {
  if (out == NULL) return -1;
  if (out->version == GA_STATS_VERSION) {
    fill(out);
    return 0;
  }
  if (out->version >= 1 && out->version <= 3) { /* that version's fields */
    ga_stats full;
    fill(&full);
    size_t end = out->version == 1   ? offsetof(ga_stats, pause_end)
                 : out->version == 2 ? offsetof(ga_stats, num_concurrent_gc)
                                     : offsetof(ga_stats, num_minor_gc);
    memcpy((char *)out + sizeof out->version, (char *)&full + sizeof full.version,
           end - sizeof full.version);
    return 0;
  }
  return -1;
}

/* ---- printing ----------------------------------------------------------- */

/* "12.3 MiB" style, into buf. */
static const char *human(char *buf, size_t n, uint64_t bytes) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  unsigned u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, n, "%llu B", (unsigned long long)bytes);
  else
    snprintf(buf, n, "%.1f %s", v, unit[u]);
  return buf;
}

/* Resident set size now, from /proc/self/statm (open/read: no stdio, no
 * allocation). 0 if unavailable. */
static uint64_t rss_now(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++; /* skip the size field */
  uint64_t pages = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) pages = pages * 10 + (uint64_t)(*p - '0');
  return pages * ga__sys_pagesize();
}

void ga_print_stats(FILE *f) {
  ga_stats s;
  s.version = GA_STATS_VERSION;
  ga_read_stats(&s);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  char a[32], b[32], c[32], d[32], e[32];
  fprintf(f, "goalloc statistics\n");
  fprintf(f, "  heap:      %s allocated in %llu objects; %s in use, %s idle "
             "(%s released), %s mapped\n",
          human(a, sizeof a, s.heap_alloc), (unsigned long long)s.heap_objects,
          human(b, sizeof b, s.heap_inuse), human(c, sizeof c, s.heap_idle),
          human(d, sizeof d, s.heap_released), human(e, sizeof e, s.heap_sys));
  fprintf(f, "  totals:    %llu mallocs (%llu tiny), %llu frees, %s allocated "
             "over the run\n",
          (unsigned long long)s.mallocs, (unsigned long long)s.tiny_allocs,
          (unsigned long long)s.frees, human(a, sizeof a, s.total_alloc));
  uint64_t last = s.num_gc ? s.pause_ns[(s.num_gc + 255) % 256] : 0;
  fprintf(f, "  collector: %llu cycles (%llu forced), pauses %.3f ms total, "
             "%.3f ms last, %.2f%% of CPU, next at %s\n",
          (unsigned long long)s.num_gc, (unsigned long long)s.num_forced_gc,
          s.pause_total_ns / 1e6, last / 1e6, s.gc_cpu_fraction * 100,
          s.next_gc >= (uint64_t)INT64_MAX || s.next_gc == 0
              ? "-" : human(a, sizeof a, s.next_gc));
  ga_scav_counters sc;
  ga__scav_counters(&sc);
  fprintf(f, "  scavenger: %s released in the background, %s on allocation, "
             "%s by ga_release_memory; %llu calls, %.3f ms; %llu folds of "
             "remote frees, %.3f ms; thread %s, %llu rounds, %.3f ms CPU\n",
          human(a, sizeof a, s.scav_bg_bytes), human(b, sizeof b, s.scav_eager_bytes),
          human(c, sizeof c, s.scav_forced_bytes),
          (unsigned long long)s.scav_madvises, s.scav_ns / 1e6,
          (unsigned long long)sc.reclaims, sc.reclaimNs / 1e6,
          sc.running ? "running" : "not started", (unsigned long long)sc.rounds,
          sc.threadCpuNs / 1e6);
  fprintf(f, "  process:   RSS %s now, %s peak\n", human(a, sizeof a, rss_now()),
          human(b, sizeof b, (uint64_t)ru.ru_maxrss * 1024));
  fprintf(f, "  settings: ");
  for (int o = 0; o < GA_OPT_COUNT; o++) {
    char buf[96];
    ga__option_format((ga_option)o, buf, sizeof buf);
    fprintf(f, " %s", buf);
  }
  fprintf(f, "\n  by size class (classes with activity):\n"
             "    class     size    spans      mallocs        frees         live\n");
  for (unsigned cl = 0; cl < GA_NUM_SIZE_CLASSES; cl++) {
    const ga_class_stats *k = &s.by_size[cl];
    if (k->mallocs == 0 && k->spans == 0) continue;
    if (cl == 0)
      fprintf(f, "    large        -");
    else
      fprintf(f, "    %5u %8zu", cl, k->size);
    fprintf(f, " %8zu %12llu %12llu %12llu\n", k->spans,
            (unsigned long long)k->mallocs, (unsigned long long)k->frees,
            (unsigned long long)(k->mallocs - k->frees));
  }
}

/* ---- GOALLOC_SHOW_STATS --------------------------------------------------- */

extern const int ga__override_mode __attribute__((weak));

__attribute__((destructor)) static void show_stats_at_exit(void) {
  if (&ga__override_mode != NULL) return; /* override.c prints its own */
  if (!atomic_load_explicit(&ga__inited, memory_order_acquire)) return;
  if (ga__option_get(GA_OPT_SHOW_STATS)) {
    fflush(stdout);
    ga_print_stats(stderr);
  }
}
