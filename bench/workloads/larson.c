/*
 * larson — a multi-threaded server where objects outlive the thread that
 * made them (after Larson and Krishnan's benchmark, written anew here).
 *
 * Stands for: a server whose worker threads each handle requests, allocate
 * the request's objects, hand them to shared structures, and whose objects
 * are later freed by whichever worker touches them next; workers come and go
 * (a thread pool that is resized, or one thread per connection). This is the
 * workload where per-thread caches must return memory freed by another thread
 * and where exiting threads must give their cached memory back.
 *
 * A shared table of S slots (atomic pointers, default 4096). T threads
 * (default 2) run at once; each does, K times: pick a random slot, make a new
 * object (8..1024 B, first and last 8 bytes written with its tag), and swap it
 * into the slot with one atomic exchange; the object that comes out — made by
 * any thread — is verified and freed. The run is split into R rounds
 * (default 8): at the end of a round the threads exit and fresh ones start,
 * on the same table. Afterwards every object still in the table is verified
 * and freed. Every object made is verified exactly once, and each thread's
 * objects come from its own fixed sequence, so the checksum (a sum of
 * per-object hashes) does not depend on the interleaving.
 *
 *   larson N [T [S [R]]]      N objects made in total
 */
#include "../bench_common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MIN_SIZE 8
#define MAX_SIZE 1024

static _Atomic(unsigned char *) *table;
static long nslots, per_thread;
static _Atomic uint64_t checksum;
static _Atomic long errors;

/* Objects carry their own tag and size: word 0 = tag, word 1 = size for
 * objects of 16 bytes or more; the last 8 bytes repeat the tag mixed with the
 * size. An 8..15 byte object holds the tag in its first word and its size is
 * recomputed from the tag. */
static size_t size_of_tag(uint64_t tag) {
    return MIN_SIZE + (size_t)((tag >> 32) % (MAX_SIZE - MIN_SIZE + 1));
}

static unsigned char *make(uint64_t tag) {
    size_t sz = size_of_tag(tag);
    unsigned char *p = malloc(sz);
    if (!p) bench_oom("malloc", sz);
    memcpy(p, &tag, 8);
    uint64_t tail = bench_mix64(tag ^ sz);
    memcpy(p + sz - 8, &tail, 8); /* overlaps word 0 when sz < 16: written after */
    if (sz < 16) memcpy(p, &tag, 8);
    return p;
}

/* Verify and free; returns the object's hash. */
static uint64_t finish(unsigned char *p, long *bad) {
    uint64_t tag;
    memcpy(&tag, p, 8);
    size_t sz = size_of_tag(tag);
    if (sz >= 16) {
        uint64_t tail;
        memcpy(&tail, p + sz - 8, 8);
        if (tail != bench_mix64(tag ^ sz)) (*bad)++;
    }
    free(p);
    return bench_mix64(tag + sz);
}

typedef struct {
    long id;
    uint64_t seed;
} worker_arg;

static void *worker(void *argp) {
    worker_arg *a = argp;
    bench_rng rng;
    bench_rng_seed(&rng, a->seed);
    uint64_t sum = 0;
    long bad = 0;
    for (long i = 0; i < per_thread; i++) {
        uint64_t r = bench_rng_next(&rng);
        /* Tags must be distinct across threads and rounds for the checksum to
         * mean anything: the low bits carry the seed. */
        uint64_t tag = (r & ~0xFFFFull) | (a->seed & 0xFFFF);
        unsigned char *p = make(tag);
        unsigned char *old = atomic_exchange_explicit(&table[r % (uint64_t)nslots], p,
                                                      memory_order_acq_rel);
        if (old) sum += finish(old, &bad);
    }
    atomic_fetch_add(&checksum, sum);
    atomic_fetch_add(&errors, bad);
    return NULL;
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 8000000);
    long nthreads = bench_arg(argc, argv, 2, 2);
    nslots = bench_arg(argc, argv, 3, 4096);
    long rounds = bench_arg(argc, argv, 4, 8);
    if (nthreads < 1) nthreads = 1;
    if (nslots < 1) nslots = 1;
    if (rounds < 1) rounds = 1;
    per_thread = n / (nthreads * rounds);

    table = calloc((size_t)nslots, sizeof *table);
    if (!table) bench_oom("calloc", (size_t)nslots * sizeof *table);
    worker_arg *args = malloc(sizeof(worker_arg) * (size_t)nthreads);
    if (!args) bench_oom("malloc", 0);

    double t0 = bench_now_ms();
    for (long r = 0; r < rounds; r++) {
        for (long t = 0; t < nthreads; t++) {
            args[t].id = t;
            args[t].seed = (uint64_t)(r * nthreads + t + 1);
        }
        bench_run_threads(nthreads, worker, args, sizeof *args);
    }
    uint64_t sum = 0;
    long bad = 0;
    for (long i = 0; i < nslots; i++) {
        unsigned char *p = atomic_load(&table[i]);
        if (p) sum += finish(p, &bad);
    }
    sum += atomic_load(&checksum);
    bad += atomic_load(&errors);
    free(table);
    free(args);
    return bench_report("larson", per_thread * nthreads * rounds, sum, bad, t0);
}
