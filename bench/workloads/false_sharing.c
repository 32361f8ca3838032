/*
 * false-sharing — do threads get small objects out of each other's cache
 * lines?
 *
 * Stands for: threads that each keep a few small, hot, private objects —
 * counters, per-connection state, a work item's accumulator — and update them
 * in tight loops. If the allocator placed objects of two threads in the same
 * 64-byte line, every write by one core invalidates the line in the other
 * core's cache and the loops run tens of times slower, although the program
 * shares nothing. Two ways this happens (Berger et al., Hoard, 2000):
 *   active: the allocator carves objects requested at the same time by two
 *           threads out of one line (a shared heap, a shared free list);
 *   passive: thread A's objects are handed to thread B, B frees them, and
 *           B's next allocations reuse those slots — next to A's objects —
 *           because frees go to the freeing thread's cache.
 * Both are exercised; the workload also counts how many of its objects share
 * a line with another thread's object, so the report can show the cause next
 * to the time.
 *
 * T threads (default 2), each pinned to its own CPU when there are enough, so
 * that they really run at the same time. Before they start, the main thread
 * allocates T*K/2 objects in one go and deals them out in turn (object j to
 * thread j mod T) — a dispatcher handing out work items. Then each thread
 *   1. (active) allocates K/2 objects of 8..64 B while the others do too;
 *   2. (passive) frees the K/2 objects it was dealt (after checking them),
 *      and allocates K/2 new ones of the same sizes;
 *   3. waits for all threads, then hammers its K objects: passes over all of
 *      them, incrementing the first word of each (a volatile load and store),
 *      until it has done N increments. Every object is written every ~K
 *      cycles, so a line shared with another thread is fought over for the
 *      whole phase, whatever the two threads' relative pace; unshared, the
 *      loop runs from L1 at about one increment per cycle.
 * Every object is filled with a pattern when it is made; at the end the main
 * thread checks each object (word 0 must be its pattern plus its increments,
 * the rest the pattern), frees it, and counts the objects that share a 64-byte
 * line with another thread's object. That count depends on addresses (and for
 * the active phase on timing), so it is reported as its own line
 * `shared_objects:` (and on stderr), never mixed into the checksum.
 *
 *   false-sharing N [T [K]]     N increments per thread
 */
#include "../bench_common.h"
#include <pthread.h>
#include <sched.h>

#define MIN_SIZE 8
#define MAX_SIZE 64
#define LINE 64
#define MAX_THREADS 64
#define MAX_K 1024

/* A thread's objects. The pointer tables are read in the hot loop, so each
 * thread's record starts on its own line and is not allocated by the
 * allocator under test: only the objects themselves can share lines. */
typedef struct {
    _Alignas(LINE) unsigned char *p[MAX_K];
    size_t size[MAX_K];
    uint64_t tag[MAX_K];
    unsigned char *dealt[MAX_K / 2];
    size_t dealt_size[MAX_K / 2];
    uint64_t dealt_tag[MAX_K / 2];
    uint64_t sum;             /* hashes of the dealt objects it checked */
    long bad;
    int id;
} thread_state;

static thread_state ts[MAX_THREADS];
static long nthreads, nobj, per_thread;
static pthread_barrier_t start_work;

static size_t size_of_tag(uint64_t tag) {
    return MIN_SIZE + (size_t)((tag >> 32) % (MAX_SIZE - MIN_SIZE + 1));
}

static unsigned char *make(size_t sz, uint64_t tag) {
    unsigned char *p = malloc(sz);
    if (!p) bench_oom("malloc", sz);
    bench_fill(p, sz, tag);
    return p;
}

static void *worker(void *argp) {
    thread_state *s = argp;
    bench_pin_to_cpu(s->id);
    bench_rng rng;
    bench_rng_seed(&rng, 1000 + (uint64_t)s->id);
    long half = nobj / 2, i;

    /* 1. active: everyone allocates at once. */
    for (i = 0; i < half; i++) {
        s->tag[i] = bench_rng_next(&rng);
        s->size[i] = size_of_tag(s->tag[i]);
        s->p[i] = make(s->size[i], s->tag[i]);
    }
    /* 2. passive: free what the dispatcher made, reuse the sizes. */
    for (long j = 0; j < half; j++) {
        int b = 0;
        s->sum += bench_verify(s->dealt[j], s->dealt_size[j], s->dealt_tag[j], &b);
        s->bad += b;
        free(s->dealt[j]);
    }
    for (long j = 0; j < half; j++, i++) {
        s->tag[i] = bench_rng_next(&rng);
        s->size[i] = s->dealt_size[j];
        s->p[i] = make(s->size[i], s->tag[i]);
    }

    /* 3. hammer: pass after pass, one increment of word 0 of every object. */
    pthread_barrier_wait(&start_work);
    long passes = per_thread / nobj;
    unsigned char *const *p = s->p;
    for (long v = 0; v < passes; v++)
        for (long j = 0; j < nobj; j++) {
            volatile uint64_t *c = (volatile uint64_t *)p[j];
            *c = *c + 1;
        }
    return NULL;
}

/* One line of one object, for the sharing count. */
typedef struct {
    uintptr_t line;
    int thread;
    int obj; /* index into the flat list of all objects */
} line_ref;

static int by_line(const void *a, const void *b) {
    const line_ref *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->thread - y->thread;
}

/* How many objects share a line with an object of another thread. */
static long count_shared(long *shared_active, long *shared_passive) {
    long total = nthreads * nobj, nrefs = 0, shared = 0;
    line_ref *refs = malloc(sizeof(line_ref) * (size_t)total * 2);
    unsigned char *mark = calloc((size_t)total, 1);
    if (!refs || !mark) bench_oom("malloc", (size_t)total);
    for (int t = 0; t < nthreads; t++)
        for (long i = 0; i < nobj; i++) {
            uintptr_t a = (uintptr_t)ts[t].p[i];
            for (uintptr_t l = a / LINE; l <= (a + ts[t].size[i] - 1) / LINE; l++)
                refs[nrefs++] = (line_ref){l, t, (int)(t * nobj + i)};
        }
    qsort(refs, (size_t)nrefs, sizeof *refs, by_line);
    for (long i = 0, j; i < nrefs; i = j) {
        for (j = i; j < nrefs && refs[j].line == refs[i].line; j++) {}
        if (refs[i].thread != refs[j - 1].thread) /* sorted: >1 thread in the run */
            for (long k = i; k < j; k++) mark[refs[k].obj] = 1;
    }
    *shared_active = *shared_passive = 0;
    for (long o = 0; o < total; o++) {
        if (!mark[o]) continue;
        shared++;
        if (o % nobj < nobj / 2) (*shared_active)++;
        else (*shared_passive)++;
    }
    free(refs);
    free(mark);
    return shared;
}

int main(int argc, char **argv) {
    per_thread = bench_arg(argc, argv, 1, 200000000);
    nthreads = bench_arg(argc, argv, 2, 2);
    nobj = bench_arg(argc, argv, 3, 64);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nobj < 2) nobj = 2;
    if (nobj > MAX_K) nobj = MAX_K;
    nobj &= ~1L;
    long half = nobj / 2;
    pthread_barrier_init(&start_work, NULL, (unsigned)nthreads);

    double t0 = bench_now_ms();
    /* The dispatcher: T*K/2 objects in one go, dealt out in turn. */
    bench_rng rng;
    bench_rng_seed(&rng, 999);
    for (long j = 0; j < nthreads * half; j++) {
        thread_state *s = &ts[j % nthreads];
        long k = j / nthreads;
        s->dealt_tag[k] = bench_rng_next(&rng);
        s->dealt_size[k] = size_of_tag(s->dealt_tag[k]);
        s->dealt[k] = make(s->dealt_size[k], s->dealt_tag[k]);
    }
    for (int t = 0; t < nthreads; t++) ts[t].id = t;
    bench_run_threads(nthreads, worker, ts, sizeof ts[0]);

    long shared_active, shared_passive;
    long shared = count_shared(&shared_active, &shared_passive);

    /* Check and free: word 0 of every object was incremented once a pass. */
    uint64_t sum = 0;
    long bad = 0;
    uint64_t incs = (uint64_t)(per_thread / nobj);
    for (int t = 0; t < nthreads; t++) {
        thread_state *s = &ts[t];
        sum += s->sum;
        bad += s->bad;
        for (long i = 0; i < nobj; i++) {
            uint64_t *w = (uint64_t *)s->p[i];
            uint64_t w0 = w[0];
            if (w0 - incs != s->tag[i]) bad++;
            w[0] = s->tag[i]; /* the pattern's word 0, so the rest verifies */
            int b = 0;
            sum += bench_verify(s->p[i], s->size[i], s->tag[i], &b) + w0;
            bad += b;
            free(s->p[i]);
        }
    }
    pthread_barrier_destroy(&start_work);
    printf("shared_objects: %ld\n", shared);
    fprintf(stderr, "false-sharing: %ld of %ld objects share a %d-byte line with "
            "another thread's object (%ld allocated concurrently, %ld reusing "
            "slots freed by their thread)\n", shared, nthreads * nobj, LINE,
            shared_active, shared_passive);
    return bench_report("false-sharing", (per_thread / nobj) * nobj * nthreads, sum,
                        bad, t0);
}
