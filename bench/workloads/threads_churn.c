/*
 * threads-churn — more threads than cores, each churning its own small
 * objects.
 *
 * Stands for: a thread-per-connection server or a worker pool sized for I/O
 * rather than for the CPU count (8 threads on a 2-core machine), where every
 * thread keeps a private working set of small objects — request headers,
 * parsed tokens, session records — and replaces them all the time. Threads
 * are preempted in the middle of allocator calls, so an allocator that
 * serialises small allocations behind a lock, or shares structures between
 * threads on its fast path, pays for it here; one with per-thread caches
 * should scale with the cores it has.
 *
 * T threads (default 8) each own a table of W objects (default 4096), sizes
 * 16..256 B uniform. Each thread fills its table, then N/T times replaces a
 * random one of its objects: the old object is verified in full and freed,
 * a new one is made and filled with a pattern derived from its tag. At the
 * end every object is verified and freed. Every thread draws from its own
 * fixed sequence, so the checksum (a sum of per-object hashes of what was
 * read back) does not depend on scheduling.
 *
 *   threads-churn N [T [W]]      N replacements in total
 */
#include "../bench_common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MIN_SIZE 16
#define MAX_SIZE 256

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} slot;

static long per_thread, working_set;
static _Atomic uint64_t checksum;
static _Atomic long errors;

typedef struct {
    uint64_t seed;
} worker_arg;

static void make(slot *s, bench_rng *rng) {
    uint64_t tag = bench_rng_next(rng);
    size_t sz = MIN_SIZE + (size_t)((tag >> 32) % (MAX_SIZE - MIN_SIZE + 1));
    unsigned char *p = malloc(sz);
    if (!p) bench_oom("malloc", sz);
    bench_fill(p, sz, tag);
    s->p = p;
    s->size = sz;
    s->tag = tag;
}

static uint64_t destroy(slot *s, long *bad) {
    int b = 0;
    uint64_t h = bench_verify(s->p, s->size, s->tag, &b);
    *bad += b;
    free(s->p);
    s->p = NULL;
    return h;
}

static void *worker(void *argp) {
    worker_arg *a = argp;
    bench_rng rng;
    bench_rng_seed(&rng, a->seed);
    /* The table itself comes from the allocator under test too: a thread's
     * bookkeeping is part of its working set. */
    slot *slots = malloc(sizeof(slot) * (size_t)working_set);
    if (!slots) bench_oom("malloc", sizeof(slot) * (size_t)working_set);
    uint64_t sum = 0;
    long bad = 0;
    for (long i = 0; i < working_set; i++) make(&slots[i], &rng);
    for (long i = 0; i < per_thread; i++) {
        slot *s = &slots[bench_rng_next(&rng) % (uint64_t)working_set];
        sum += destroy(s, &bad);
        make(s, &rng);
    }
    for (long i = 0; i < working_set; i++) sum += destroy(&slots[i], &bad);
    free(slots);
    atomic_fetch_add(&checksum, sum);
    atomic_fetch_add(&errors, bad);
    return NULL;
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 8000000);
    long nthreads = bench_arg(argc, argv, 2, 8);
    working_set = bench_arg(argc, argv, 3, 4096);
    if (nthreads < 1) nthreads = 1;
    if (working_set < 1) working_set = 1;
    per_thread = n / nthreads;

    worker_arg *args = malloc(sizeof(worker_arg) * (size_t)nthreads);
    if (!args) bench_oom("malloc", 0);
    for (long t = 0; t < nthreads; t++) args[t].seed = (uint64_t)(t + 1) * 7919;

    double t0 = bench_now_ms();
    bench_run_threads(nthreads, worker, args, sizeof *args);
    free(args);
    return bench_report("threads-churn", per_thread * nthreads,
                        atomic_load(&checksum), atomic_load(&errors), t0);
}
