/*
 * malloc-pairs — the allocator's fast path, nothing else.
 *
 * Stands for: the short-lived temporary of real C code — a buffer malloc'd at
 * the top of a function and freed at its end (a formatted string, a parser
 * node thrown away, a request struct), where the same size class is reused
 * at once and every call hits the thread cache.
 *
 * One thread, N malloc+free pairs, sizes 8..512 bytes uniform (a table of
 * 4096 sizes drawn from a fixed xorshift sequence, cycled); the last byte of
 * each object is written and read back.
 *
 *   malloc-pairs N            N pairs (default 20e6)
 *   malloc-pairs N baseline   the same loop with the allocator calls removed
 *                             (the callgrind mode subtracts it to get the
 *                             allocator's own instructions per pair)
 */
#include "../bench_common.h"

/* The loop once, so that the measured and the baseline loop are the same code
 * but for the two allocator calls. */
#define PAIRS_LOOP(ALLOC, FREE)                                  \
    for (long i = 0; i < n; i++) {                               \
        size_t sz = sizes[i & (BENCH_SIZES - 1)];               \
        unsigned char *p = ALLOC(sz);                            \
        if (__builtin_expect(p == NULL, 0)) bench_oom("malloc", sz); \
        p[sz - 1] = (unsigned char)sz;                           \
        BENCH_ESCAPE(p);                                         \
        sum += p[sz - 1];                                        \
        FREE(p);                                                 \
    }

static unsigned char dummy[512] __attribute__((aligned(16)));

static inline unsigned char *dummy_alloc(size_t sz) {
    unsigned char *p = dummy;
    (void)sz;
    BENCH_OPAQUE(p);
    return p;
}
#define dummy_free(p) ((void)(p))

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 20000000);
    int baseline = argc > 2 && strcmp(argv[2], "baseline") == 0;
    static uint16_t sizes[BENCH_SIZES];
    bench_size_table(sizes, 1, 8, 512);
    uint64_t sum = 0;

    double t0 = bench_now_ms();
    if (baseline) {
        PAIRS_LOOP(dummy_alloc, dummy_free)
    } else {
        PAIRS_LOOP(malloc, free)
    }
    /* sum is the total of (size mod 256): allocator-independent. */
    return bench_report(baseline ? "malloc-pairs-baseline" : "malloc-pairs",
                        n, bench_mix64(sum ^ (uint64_t)n), 0, t0);
}
