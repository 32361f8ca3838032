/*
 * large-alloc — big blocks (1..8 MiB) allocated, touched and freed by two
 * threads.
 *
 * Stands for: programs whose big buffers come and go — an image or video
 * frame decoded into a fresh buffer, a compressor's window, a database's sort
 * run, a server's large request bodies. Here the allocator's small-object
 * machinery does not matter; what does is how it gets big blocks from the
 * kernel and what it does with them when they are freed: unmap them at once
 * (every new block then page-faults in fresh, zeroed pages), keep them for
 * reuse (fast, but memory stays resident), or return them lazily
 * (madvise). Time and peak RSS together show which.
 *
 * T threads (default 2) each keep L blocks live (default 4); N times in all a
 * thread replaces a random one of its blocks: the old block is checked and
 * freed, a new one of 1..8 MiB (uniform in bytes, so not page-multiples) is
 * allocated — one in four with calloc, whose zeroes are checked — and touched.
 *
 * Touching writes one 8-byte word per 4 KiB of the block (its tag mixed with
 * the offset) and the block's last 8 bytes, not the whole block: that is
 * enough to make the kernel supply every page, which is the cost allocators
 * differ on (a fresh page is a fault and a 4 KiB clear in the kernel; a reused
 * one is neither). A memset of a 4.5 MiB average block would add ~0.3 ms per
 * block of pure memory bandwidth, the same for every allocator, and bury
 * those differences. The checks read the same words back before the free.
 *
 *   large-alloc N [T [L]]      N blocks allocated in total
 */
#include "../bench_common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MIN_SIZE ((size_t)1 << 20)
#define MAX_SIZE ((size_t)8 << 20)
#define STRIDE 4096

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} block;

static long per_thread, live;
static _Atomic uint64_t checksum;
static _Atomic long errors;

BENCH_INLINE uint64_t word_at(uint64_t tag, size_t off) {
    return tag ^ (off * BENCH_GOLDEN);
}

static void make(block *b, bench_rng *rng) {
    uint64_t tag = bench_rng_next(rng);
    size_t sz = bench_uniform(rng, MIN_SIZE, MAX_SIZE);
    int zeroed = (tag & 3) == 0;
    unsigned char *p = zeroed ? calloc(1, sz) : malloc(sz);
    if (!p) bench_oom(zeroed ? "calloc" : "malloc", sz);
    long bad = 0;
    for (size_t off = 0; off + 8 <= sz; off += STRIDE) {
        uint64_t w = word_at(tag, off);
        if (zeroed) {
            uint64_t z;
            memcpy(&z, p + off, 8);
            bad |= z != 0;
        }
        memcpy(p + off, &w, 8);
    }
    uint64_t last = bench_mix64(tag ^ sz);
    memcpy(p + sz - 8, &last, 8);
    if (bad) atomic_fetch_add(&errors, 1);
    b->p = p;
    b->size = sz;
    b->tag = tag;
}

static uint64_t destroy(block *b, long *bad) {
    uint64_t h = b->size;
    int wrong = 0;
    /* The last word was written after the stride words and may overlap the
     * last of them: that one is skipped (it holds part of the last word). */
    uint64_t last;
    memcpy(&last, b->p + b->size - 8, 8);
    wrong |= last != bench_mix64(b->tag ^ b->size);
    for (size_t off = 0; off + 8 <= b->size - 8; off += STRIDE) {
        uint64_t w;
        memcpy(&w, b->p + off, 8);
        wrong |= w != word_at(b->tag, off);
        h = (h ^ w) * 0x100000001B3ull;
    }
    h = (h ^ last) * 0x100000001B3ull;
    *bad += wrong;
    free(b->p);
    b->p = NULL;
    return bench_mix64(h);
}

static void *worker(void *argp) {
    uint64_t seed = *(uint64_t *)argp;
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    block *blocks = calloc((size_t)live, sizeof(block));
    if (!blocks) bench_oom("calloc", (size_t)live * sizeof(block));
    uint64_t sum = 0;
    long bad = 0;
    for (long i = 0; i < per_thread; i++) {
        block *b = &blocks[bench_rng_next(&rng) % (uint64_t)live];
        if (b->p) sum += destroy(b, &bad);
        make(b, &rng);
    }
    for (long i = 0; i < live; i++)
        if (blocks[i].p) sum += destroy(&blocks[i], &bad);
    free(blocks);
    atomic_fetch_add(&checksum, sum);
    atomic_fetch_add(&errors, bad);
    return NULL;
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 2000);
    long nthreads = bench_arg(argc, argv, 2, 2);
    live = bench_arg(argc, argv, 3, 4);
    if (nthreads < 1) nthreads = 1;
    if (live < 1) live = 1;
    per_thread = n / nthreads;

    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)nthreads);
    if (!seeds) bench_oom("malloc", 0);
    for (long t = 0; t < nthreads; t++) seeds[t] = (uint64_t)t + 77;

    double t0 = bench_now_ms();
    bench_run_threads(nthreads, worker, seeds, sizeof *seeds);
    free(seeds);
    return bench_report("large-alloc", per_thread * nthreads,
                        atomic_load(&checksum), atomic_load(&errors), t0);
}
