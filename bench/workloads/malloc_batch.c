/*
 * malloc-batch — the fast path when objects pile up before they are freed.
 *
 * Stands for: a phase of a program that builds a structure and then drops it
 * whole — the tokens of one input line, the nodes of one request's parse
 * tree, one frame's draw list. 1000 live objects at a time is more than one
 * span of any small size class holds, so this exercises span refill and the
 * return of freed slots to partially used spans, not just a one-slot ping-pong.
 *
 * One thread, batches of 1000 mallocs (sizes 8..512 uniform: a table of 4096
 * sizes drawn from a fixed xorshift sequence, cycled) followed by 1000 frees
 * in allocation order; one byte of each object is written at malloc and read
 * back before free.
 *
 *   malloc-batch N            N malloc+free pairs, rounded down to whole
 *                             batches (default 20e6)
 *   malloc-batch N baseline   the same loops with the allocator calls removed
 */
#include "../bench_common.h"

#define BATCH 1000

#define BATCH_LOOP(ALLOC, FREE)                                          \
    for (long b = 0; b < nbatch; b++) {                                  \
        for (int i = 0; i < BATCH; i++) {                                \
            size_t sz = sizes[k++ & (BENCH_SIZES - 1)];                  \
            unsigned char *p = ALLOC(sz);                                \
            if (__builtin_expect(p == NULL, 0)) bench_oom("malloc", sz); \
            p[0] = (unsigned char)sz;                                    \
            ptrs[i] = p;                                                 \
        }                                                                \
        BENCH_ESCAPE(ptrs);                                              \
        for (int i = 0; i < BATCH; i++) {                                \
            unsigned char *p = ptrs[i];                                  \
            sum += p[0];                                                 \
            FREE(p);                                                     \
        }                                                                \
    }

static unsigned char dummy[512] __attribute__((aligned(16)));

static inline unsigned char *dummy_alloc(size_t sz) {
    unsigned char *p = dummy;
    (void)sz;
    BENCH_OPAQUE(p);
    return p;
}
#define dummy_free(p) BENCH_ESCAPE(p)

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 20000000);
    int baseline = argc > 2 && strcmp(argv[2], "baseline") == 0;
    long nbatch = n / BATCH;
    static unsigned char *ptrs[BATCH];
    static uint16_t sizes[BENCH_SIZES];
    bench_size_table(sizes, 2, 8, 512);
    unsigned k = 0;
    uint64_t sum = 0;

    double t0 = bench_now_ms();
    if (baseline) {
        BATCH_LOOP(dummy_alloc, dummy_free)
    } else {
        BATCH_LOOP(malloc, free)
    }
    return bench_report(baseline ? "malloc-batch-baseline" : "malloc-batch",
                        nbatch * BATCH, bench_mix64(sum ^ (uint64_t)nbatch), 0, t0);
}
