/*
 * gc_common.h — what the garbage-collector workloads (the .c files beside it) share.
 *
 * Each GC workload is one C file compiled twice from the same source, plus a
 * Go program (bench/gc/go/) that runs the same algorithm:
 *
 *   bench_<name>_goalloc  -DBENCH_GOALLOC: GC_ALLOC -> ga_malloc,
 *                         GC_ALLOC_ATOMIC -> ga_malloc_atomic, libgoalloc.a;
 *   bench_<name>_boehm    -DBENCH_BOEHM: GC_ALLOC -> GC_MALLOC,
 *                         GC_ALLOC_ATOMIC -> GC_MALLOC_ATOMIC, -lgc
 *                         (Boehm GC, default settings: GC_INIT(), then
 *                         GC_start_mark_threads() so that this single-threaded
 *                         program gets the parallel marking that Debian's
 *                         build has; nothing else is tuned);
 *   bench_<name>_go       the Go version, built by `go build`.
 *
 * No workload ever frees: the collector reclaims. Objects from GC_ALLOC are
 * scanned (they may hold pointers), GC_ALLOC_ATOMIC ones never are. GC_ALLOC
 * memory is not necessarily zeroed (ga_malloc does not clear, GC_MALLOC does):
 * the workloads write every word of the scanned objects they make, so no
 * stale word can be mistaken for a pointer.
 *
 * Report: bench_common.h's format (workload, allocator, ops, checksum,
 * errors, time_ms) plus four collector lines, printed identically by the Go
 * programs:
 *
 *   gc_collections: 73          collections during the run
 *   gc_pause_total_ms: 812.301  sum of the stop-the-world pauses
 *   gc_pause_max_ms: 33.120     the longest of them
 *   gc_pauses_seen: 73          how many pauses the maximum was taken over
 *                               (goalloc and Go keep the last 256 only)
 *
 * What a pause is, per implementation:
 *   goalloc  ga_read_stats: pause_total_ns and the pause_ns ring (the time
 *            the world is stopped: stop, mark, mark termination, restart);
 *   Boehm    GC_set_on_collection_event: from GC_EVENT_PRE_STOP_WORLD to
 *            GC_EVENT_POST_START_WORLD (the world is stopped, Boehm marks with
 *            its parallel markers, the world restarts), measured with
 *            clock_gettime; collections = GC_get_gc_no(). The whole collection
 *            (GC_EVENT_START..END, which adds the unmark/finish work done in
 *            the allocating thread) is printed as gc_collect_total_ms;
 *   Go       runtime.ReadMemStats: NumGC, PauseTotalNs, max of PauseNs.
 */
#ifndef BENCH_GC_COMMON_H
#define BENCH_GC_COMMON_H

#include "../bench_common.h"

#if defined(BENCH_GOALLOC)

#include "goalloc.h"
#define GC_IMPL "goalloc"
#define GC_ALLOC(n) ga_malloc(n)
#define GC_ALLOC_ATOMIC(n) ga_malloc_atomic(n)
static inline void gc_setup(void) {}

static void gc_print_stats(void) {
    static ga_stats st; /* big (the per-class table): keep it off the stack */
    memset(&st, 0, sizeof st);
    st.version = GA_STATS_VERSION;
    if (ga_read_stats(&st) != 0) {
        printf("gc_collections: -1\n");
        return;
    }
    uint64_t n = st.num_gc, seen = n < 256 ? n : 256, mx = 0;
    for (uint64_t i = 0; i < seen; i++)
        if (st.pause_ns[i] > mx) mx = st.pause_ns[i];
    printf("gc_collections: %llu\ngc_pause_total_ms: %.3f\ngc_pause_max_ms: %.3f\n"
           "gc_pauses_seen: %llu\n",
           (unsigned long long)n, st.pause_total_ns / 1e6, mx / 1e6,
           (unsigned long long)seen);
}

#elif defined(BENCH_BOEHM)

#define GC_THREADS 1
#include <gc.h>
#define GC_IMPL "boehm-gc"
#define GC_ALLOC(n) GC_MALLOC(n)
#define GC_ALLOC_ATOMIC(n) GC_MALLOC_ATOMIC(n)

static uint64_t gc_b_stop_ns, gc_b_start_ns;
static uint64_t gc_b_pauses, gc_b_pause_total, gc_b_pause_max, gc_b_collect_total;

static uint64_t gc_b_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Called by the collector with its allocation lock held. */
static void gc_b_on_event(GC_EventType e) {
    switch (e) {
    case GC_EVENT_START: gc_b_start_ns = gc_b_now_ns(); break;
    case GC_EVENT_END: gc_b_collect_total += gc_b_now_ns() - gc_b_start_ns; break;
    case GC_EVENT_PRE_STOP_WORLD: gc_b_stop_ns = gc_b_now_ns(); break;
    case GC_EVENT_POST_START_WORLD: {
        uint64_t d = gc_b_now_ns() - gc_b_stop_ns;
        gc_b_pauses++;
        gc_b_pause_total += d;
        if (d > gc_b_pause_max) gc_b_pause_max = d;
        break;
    }
    default: break;
    }
}

static inline void gc_setup(void) {
    GC_INIT();
    /* A single-threaded client gets Boehm's parallel marker threads only when
     * it asks (gc.h: GC_parallel is set "when client calls
     * GC_start_mark_threads() directly or starts the first non-main
     * thread"); goalloc and Go mark in parallel, so Boehm does too. */
    GC_start_mark_threads();
    GC_set_on_collection_event(gc_b_on_event);
}

static void gc_print_stats(void) {
    printf("gc_collections: %lu\ngc_pause_total_ms: %.3f\ngc_pause_max_ms: %.3f\n"
           "gc_pauses_seen: %llu\ngc_collect_total_ms: %.3f\ngc_markers: %d\n",
           (unsigned long)GC_get_gc_no(), gc_b_pause_total / 1e6,
           gc_b_pause_max / 1e6, (unsigned long long)gc_b_pauses,
           gc_b_collect_total / 1e6, GC_get_parallel() + 1);
}

#else
#error "compile a GC workload with -DBENCH_GOALLOC or -DBENCH_BOEHM"
#endif

static inline void *gc_alloc(size_t n) {
    void *p = GC_ALLOC(n);
    if (!p) bench_oom("GC_ALLOC", n);
    return p;
}

static inline void *gc_alloc_atomic(size_t n) {
    void *p = GC_ALLOC_ATOMIC(n);
    if (!p) bench_oom("GC_ALLOC_ATOMIC", n);
    return p;
}

/* The report (bench_common.h's lines plus the collector's); returns the
 * exit status (3 if anything did not verify). */
static int gc_report(const char *name, long ops, uint64_t checksum, long errors,
                     double t0) {
    double ms = bench_now_ms() - t0;
    printf("workload: %s\nallocator: %s\nops: %ld\nchecksum: %016llx\n"
           "errors: %ld\ntime_ms: %.3f\n",
           name, GC_IMPL, ops, (unsigned long long)checksum, errors, ms);
    gc_print_stats();
    fflush(stdout);
    if (errors) {
        fprintf(stderr, "FAIL: %s: %ld objects did not verify (memory corrupted "
                "or collected while reachable)\n", name, errors);
        return 3;
    }
    return 0;
}

#endif /* BENCH_GC_COMMON_H */
