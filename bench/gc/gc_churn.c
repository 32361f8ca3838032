/*
 * gc-churn — mixed-size churn over a live working set, with no free.
 *
 * Stands for: a long-running garbage-collected service in a steady state —
 * an interpreter's heap, a cache of parsed records with eviction — whose many
 * small objects (16 B .. 4 KiB, some holding pointers, some pointer-free
 * strings and numbers) are replaced at random, while one allocation in a
 * hundred is a big pointer-free buffer (64 KiB .. 1 MiB: a read buffer, a
 * decoded image) that lives briefly. The live set stays about constant, so
 * what is measured is how the collector paces itself (the big buffers bring
 * most of the bytes, the small objects most of the tracing), its pauses, and
 * how much memory it holds on to (peak RSS), not just the fast path.
 *
 *   gc_churn N [W]       N steps, W small slots (default 100000)
 *
 * Two kinds of objects, laid out the same way in the Go version (go/gc_churn):
 *   blob (pointer-free, GC_ALLOC_ATOMIC): S/8 words, w[0] = tag,
 *        w[k] = tag ^ k*golden. Big blobs (>= 64 KiB) are written and checked
 *        only at w[0], every 512th word (one per 4 KiB page) and the last word
 *        — a buffer that is only partly used; small ones in full.
 *   record (scanned, GC_ALLOC): S/16 pairs {pointer, word}; pair 0 = {NULL,
 *        tag}; pairs 1..min(4, S/16-1) point to the blob then in a random
 *        slot (with that blob's tag beside it) or are {NULL, 0} if that slot
 *        holds a record; the other pairs are {NULL, tag ^ k*golden}. A blob a
 *        record points to stays alive after its slot moves on, and must still
 *        hold its tag when the record is checked.
 * Sizes: small S = 16<<e plus uniform inside the band, P(e) = 2^-(e+1),
 * e = 0..8, capped at 4096, rounded down to 16 (mean ~100 B); one small in
 * three is a blob. Big: 1 % of steps, S uniform in a band 64K<<e, e = 0..3,
 * capped at 1 MiB; kept in a ring of 16 (each lives 1600 steps on average).
 *
 * Each step draws one number r. If r % 100 == 0 the oldest big blob in the
 * ring is checked and replaced; otherwise a random small slot's object is
 * checked in full (contents, and the tags of the blobs it points to) and
 * replaced. At the end every object still held is checked. The checksum
 * hashes what was read back; any mismatch counts as an error.
 */
#include "gc_common.h"

#define NLINKS 4
#define RING 16

typedef struct pair {
    uint64_t *p;
    uint64_t v;
} pair;

enum { EMPTY = 0, BLOB = 1, RECORD = 2 };

typedef struct slot {
    void *p;
    uint64_t tag;
    uint32_t size;
    uint32_t kind;
} slot;

static bench_rng rng;
static uint64_t hash;
static long errors;
static long W;
static slot *slots; /* W small slots, then RING big ones (GC-allocated, scanned) */

#define GOLDEN BENCH_GOLDEN
#define HMUL 0x100000001B3ull

static inline void eat(uint64_t v) { hash = (hash ^ v) * HMUL; }

/* Word positions written in a blob of n words: all, or sparse for big ones. */
static inline size_t blob_step(size_t n) { return n >= 8192 ? 512 : 1; }

static uint64_t *make_blob(size_t size, uint64_t tag) {
    size_t n = size / 8, step = blob_step(n);
    uint64_t *w = gc_alloc_atomic(size);
    for (size_t k = 0; k < n; k += step) w[k] = tag ^ (k * GOLDEN);
    w[n - 1] = tag ^ ((n - 1) * GOLDEN);
    return w;
}

static void check_blob(const uint64_t *w, size_t size, uint64_t tag) {
    size_t n = size / 8, step = blob_step(n);
    uint64_t diff = 0;
    for (size_t k = 0; k < n; k += step) {
        diff |= w[k] ^ (tag ^ (k * GOLDEN));
        eat(w[k]);
    }
    diff |= w[n - 1] ^ (tag ^ ((n - 1) * GOLDEN));
    eat(w[n - 1]);
    if (diff) errors++;
}

static pair *make_record(size_t size, uint64_t tag) {
    size_t n = size / 16, k;
    pair *r = gc_alloc(size);
    r[0].p = NULL;
    r[0].v = tag;
    for (k = 1; k < n && k <= NLINKS; k++) {
        const slot *s = &slots[bench_uniform(&rng, 0, (size_t)W - 1)];
        if (s->kind == BLOB) {
            r[k].p = s->p;
            r[k].v = s->tag;
        } else {
            r[k].p = NULL;
            r[k].v = 0;
        }
    }
    for (; k < n; k++) {
        r[k].p = NULL;
        r[k].v = tag ^ (k * GOLDEN);
    }
    return r;
}

static void check_record(const pair *r, size_t size, uint64_t tag) {
    size_t n = size / 16, k;
    uint64_t diff = (uint64_t)(uintptr_t)r[0].p | (r[0].v ^ tag);
    eat(r[0].v);
    for (k = 1; k < n && k <= NLINKS; k++) {
        if (r[k].p) {
            diff |= r[k].p[0] ^ r[k].v; /* the blob it points to is intact */
            eat(r[k].p[0]);
        } else {
            diff |= r[k].v;
        }
        eat(r[k].v);
    }
    for (; k < n; k++) {
        diff |= (uint64_t)(uintptr_t)r[k].p | (r[k].v ^ (tag ^ (k * GOLDEN)));
        eat(r[k].v);
    }
    if (diff) errors++;
}

static void check_slot(const slot *s) {
    if (s->kind == BLOB) check_blob(s->p, s->size, s->tag);
    else if (s->kind == RECORD) check_record(s->p, s->size, s->tag);
    eat(s->size);
}

static size_t small_size(uint64_t r) {
    unsigned e = (unsigned)__builtin_ctzll((r >> 8) | (1ull << 8)); /* 0..8 */
    size_t lo = (size_t)16 << e;
    size_t sz = lo + (size_t)((r >> 24) % lo);
    if (sz > 4096) sz = 4096;
    return sz & ~(size_t)15;
}

static size_t big_size(uint64_t r) {
    unsigned e = (unsigned)((r >> 8) & 3);
    size_t lo = (size_t)65536 << e;
    size_t sz = lo + (size_t)((r >> 24) % lo);
    if (sz > 1048576) sz = 1048576;
    return sz & ~(size_t)15;
}

static void make_small(slot *s, uint64_t r) {
    size_t sz = small_size(r);
    uint64_t tag = bench_rng_next(&rng);
    if ((r >> 40) % 3 == 0) {
        s->p = make_blob(sz, tag);
        s->kind = BLOB;
    } else {
        s->p = make_record(sz, tag);
        s->kind = RECORD;
    }
    s->tag = tag;
    s->size = (uint32_t)sz;
}

static void make_big(slot *s, uint64_t r) {
    size_t sz = big_size(r);
    uint64_t tag = bench_rng_next(&rng);
    s->p = make_blob(sz, tag);
    s->kind = BLOB;
    s->tag = tag;
    s->size = (uint32_t)sz;
}

int main(int argc, char **argv) {
    gc_setup();
    long n = bench_arg(argc, argv, 1, 1000000);
    W = bench_arg(argc, argv, 2, 100000);
    if (W < 1) W = 1;
    bench_rng_seed(&rng, 42);
    double t0 = bench_now_ms();

    slots = gc_alloc((size_t)(W + RING) * sizeof(slot));
    for (long i = 0; i < W + RING; i++) {
        slots[i].p = NULL;
        slots[i].tag = 0;
        slots[i].size = 0;
        slots[i].kind = EMPTY;
    }
    for (long i = 0; i < W; i++) make_small(&slots[i], bench_rng_next(&rng));

    long ring = 0;
    for (long i = 0; i < n; i++) {
        uint64_t r = bench_rng_next(&rng);
        slot *s;
        if (r % 100 == 0) {
            s = &slots[W + ring];
            ring = (ring + 1) % RING;
            check_slot(s);
            make_big(s, r);
        } else {
            s = &slots[bench_uniform(&rng, 0, (size_t)W - 1)];
            check_slot(s);
            make_small(s, r);
        }
    }
    for (long i = 0; i < W + RING; i++) check_slot(&slots[i]);
    BENCH_ESCAPE(slots);
    return gc_report("gc-churn", n, bench_mix64(hash), errors, t0);
}
