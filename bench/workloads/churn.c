/*
 * churn — single-thread mixed-size churn over a live working set.
 *
 * Stands for: a long-running program whose heap is a steady state of objects
 * of many sizes being replaced at random — an interpreter's heap, a cache
 * with eviction, a compiler's symbol and IR objects. Most objects are small
 * and a few are large (a skewed distribution, as measured in real programs),
 * every object is written when it is made and read when it dies, and the
 * live set stays roughly constant, so what is measured is allocation plus
 * fragmentation (peak RSS) under steady churn, not just the fast path.
 *
 * A table of W slots (default 16384) is filled, then N times a random slot is
 * replaced: its object is verified and freed, and a new one is made. Sizes
 * are 8 B .. 64 KiB: a power-of-two band 8<<e with P(e) = 2^-(e+1), e = 0..13,
 * then uniform inside the band (mean ~ 90 B; one object in ~1000 is >= 8 KiB).
 * One allocation in 8 is a calloc (checked to be zero before it is filled);
 * one replacement in 16 instead reallocs the slot's object to a new size (its
 * old prefix checked after the move). Every object is filled with a pattern
 * derived from its tag and checked in full before it is freed; the checksum
 * hashes what was read back.
 *
 *   churn N [W]
 */
#include "../bench_common.h"

typedef struct {
    unsigned char *p;
    size_t size;
    uint64_t tag;
} slot;

static bench_rng rng;
static uint64_t checksum;
static long errors;

static size_t draw_size(void) {
    uint64_t r = bench_rng_next(&rng);
    unsigned e = (unsigned)__builtin_ctzll(r | (1ull << 13)); /* 0..13, P = 2^-(e+1) */
    size_t lo = (size_t)8 << e;
    size_t sz = lo + (size_t)((r >> 20) % lo);
    return sz > 65536 ? 65536 : sz;
}

static void make(slot *s) {
    size_t sz = draw_size();
    uint64_t tag = bench_rng_next(&rng);
    unsigned char *p;
    if ((tag & 7) == 0) {
        p = calloc(1, sz);
        if (!p) bench_oom("calloc", sz);
        for (size_t i = 0; i < sz; i++)
            if (p[i] != 0) { errors++; break; }
    } else {
        p = malloc(sz);
        if (!p) bench_oom("malloc", sz);
    }
    bench_fill(p, sz, tag);
    s->p = p;
    s->size = sz;
    s->tag = tag;
}

static void destroy(slot *s) {
    int bad = 0;
    checksum += bench_verify(s->p, s->size, s->tag, &bad);
    errors += bad;
    free(s->p);
    s->p = NULL;
}

static void resize(slot *s) {
    size_t nsz = draw_size();
    size_t keep = nsz < s->size ? nsz : s->size;
    unsigned char *q = realloc(s->p, nsz);
    if (!q) bench_oom("realloc", nsz);
    int bad = 0;
    checksum += bench_verify(q, keep & ~(size_t)7, s->tag, &bad);
    errors += bad;
    uint64_t tag = bench_rng_next(&rng);
    bench_fill(q, nsz, tag);
    s->p = q;
    s->size = nsz;
    s->tag = tag;
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 4000000);
    long w = bench_arg(argc, argv, 2, 16384);
    if (w < 1) w = 1;
    bench_rng_seed(&rng, 3);
    slot *slots = calloc((size_t)w, sizeof(slot));
    if (!slots) bench_oom("calloc", (size_t)w * sizeof(slot));

    double t0 = bench_now_ms();
    for (long i = 0; i < w; i++) make(&slots[i]);
    for (long i = 0; i < n; i++) {
        uint64_t r = bench_rng_next(&rng);
        slot *s = &slots[r % (uint64_t)w];
        if (((r >> 40) & 15) == 0) {
            resize(s);
        } else {
            destroy(s);
            make(s);
        }
    }
    for (long i = 0; i < w; i++) destroy(&slots[i]);
    free(slots);
    return bench_report("churn", n, checksum, errors, t0);
}
