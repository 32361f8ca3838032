/*
 * mstats.c — allocation statistics (Go's mstats.go twin): one list of
 * counters, kept cheaply and read consistently.
 *
 * Cost: nothing on the fast paths except the owner's free, which bumps the
 * span's localFrees. Counts are folded into the per-class totals below when
 * a span leaves a cache (ga__stats_uncache), when frees made through
 * freeBits are folded into an uncached span, and on large allocations, so
 * every counter is touched only on slow paths (atomic adds there).
 *
 * Identity: mallocs[c] - frees[c] equals the objects of class c in spans
 * that are not cached, plus, for cached spans, their objects when they were
 * cached. After every cache is flushed, Mallocs - Frees == HeapObjects.
 */
#include <string.h>
#include <sys/resource.h>

#include "internal.h"

static struct {
  _Atomic uint64_t mallocs[GA_NUM_SIZE_CLASSES];
  _Atomic uint64_t frees[GA_NUM_SIZE_CLASSES];
  _Atomic uint64_t largeBytesAlloc, largeBytesFree;
  _Atomic uint64_t tinyAllocs;
} st;

void ga__stats_uncache(mspan *s) {
  unsigned cl = s->spanclass >> 1;
  uint64_t frees = s->localFrees;
  uint64_t mallocs = (uint64_t)s->allocCount - s->allocCountBeforeCache + frees;
  if (mallocs) atomic_fetch_add_explicit(&st.mallocs[cl], mallocs, memory_order_relaxed);
  if (frees) atomic_fetch_add_explicit(&st.frees[cl], frees, memory_order_relaxed);
  s->localFrees = 0;
  s->allocCountBeforeCache = s->allocCount;
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

void ga__gc_stats(uint64_t *numgc, uint64_t *pauseTotal, uint64_t *pauses,
                  double *cpuFraction, uint64_t *nextGC);

void ga__stats_tiny(uint64_t n) {
  atomic_fetch_add_explicit(&st.tinyAllocs, n, memory_order_relaxed);
}

int ga_read_stats(ga_stats *out) {
  if (out == NULL || out->version != GA_STATS_VERSION) return -1;
  ga__ensure_init();
  memset((char *)out + sizeof out->version, 0, sizeof *out - sizeof out->version);
  ga_heap_counters hc;
  ga__mheap_counters(&hc);
  for (unsigned c = 0; c < GA_NUM_SIZE_CLASSES; c++) {
    uint64_t m = atomic_load_explicit(&st.mallocs[c], memory_order_relaxed);
    uint64_t f = atomic_load_explicit(&st.frees[c], memory_order_relaxed);
    out->by_size[c].size = ga__class_to_size[c];
    out->by_size[c].mallocs = m;
    out->by_size[c].frees = f;
    out->mallocs += m;
    out->frees += f;
    if (c > 0) {
      out->total_alloc += m * ga__class_to_size[c];
      out->heap_alloc += (m - f) * ga__class_to_size[c];
    }
  }
  uint64_t lb = atomic_load_explicit(&st.largeBytesAlloc, memory_order_relaxed);
  uint64_t lf = atomic_load_explicit(&st.largeBytesFree, memory_order_relaxed);
  out->total_alloc += lb;
  out->heap_alloc += lb - lf;
  out->tiny_allocs = atomic_load_explicit(&st.tinyAllocs, memory_order_relaxed);
  out->heap_objects = out->mallocs - out->frees;
  out->heap_sys = hc.heapSys;
  out->heap_inuse = (uint64_t)hc.pagesInUse * GA_PAGE_SIZE;
  out->heap_released = hc.heapReleased;
  out->heap_idle = out->heap_sys - out->heap_inuse;
  /* The collector's figures (mgc.c). */
  ga__gc_stats(&out->num_gc, &out->pause_total_ns, out->pause_ns,
               &out->gc_cpu_fraction, &out->next_gc);
  return 0;
}

void ga_print_stats(FILE *f) {
  ga_stats s;
  s.version = GA_STATS_VERSION;
  ga_read_stats(&s);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  fprintf(f,
          "goalloc: mallocs %llu, frees %llu, live objects %llu, "
          "heap alloc %.1f MiB, total alloc %.1f MiB\n"
          "goalloc: heap sys %.1f MiB, in use %.1f MiB, idle %.1f MiB, "
          "released %.1f MiB, peak RSS %.1f MiB, collections %llu\n",
          (unsigned long long)s.mallocs, (unsigned long long)s.frees,
          (unsigned long long)s.heap_objects, s.heap_alloc / 1048576.0,
          s.total_alloc / 1048576.0, s.heap_sys / 1048576.0,
          s.heap_inuse / 1048576.0, s.heap_idle / 1048576.0,
          s.heap_released / 1048576.0, ru.ru_maxrss / 1024.0,
          (unsigned long long)s.num_gc);
}
