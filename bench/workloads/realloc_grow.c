/*
 * realloc-grow — buffers grown by realloc a few bytes at a time.
 *
 * Stands for: C code that builds strings and arrays by appending — a line
 * reader growing its buffer per chunk read, a JSON or SQL text assembled
 * piece by piece, a vector grown by one element at a time, a log record built
 * with repeated asprintf-and-append. Much real code reallocs on every append
 * instead of doubling a capacity, so realloc's in-place growth (a size class
 * with room, a neighbour that is free, mremap for big blocks) decides whether
 * the program copies each buffer once or thousands of times.
 *
 * B buffers (default 256) are in progress at once. Each has a target length:
 * 16 B..4 KiB (15 in 16), 4..64 KiB (~1 in 16) or 64 KiB..1 MiB (1 in 512).
 * N times, a random buffer is grown by 1..64 bytes with realloc (the first
 * step is realloc(NULL, n)); the last bytes written before the call are
 * checked after it (a move must carry the contents), then the new bytes are
 * appended. A buffer that reaches its target is checked in full; one in four
 * is first shrunk by realloc to half its length (shrink-to-fit after a
 * truncation) and its prefix checked; then it is freed and the slot starts a
 * new buffer. Byte i of a buffer tagged t is a function of t and i, so every
 * check reads back real contents; the checksum hashes them.
 *
 *   realloc-grow N [B]       N growth steps
 */
#include "../bench_common.h"

typedef struct {
    unsigned char *p;
    size_t len, target;
    uint64_t tag;
} buffer;

static bench_rng rng;
static uint64_t checksum;
static long errors;

BENCH_INLINE unsigned char byte_at(uint64_t tag, size_t i) {
    return (unsigned char)((tag >> ((i & 7) * 8)) + (i >> 3) * 0x9D);
}

static void start(buffer *b) {
    uint64_t r = bench_rng_next(&rng);
    unsigned u = (unsigned)(r & 1023);
    size_t lo, hi;
    if (u < 2) { lo = 64 << 10; hi = 1 << 20; }
    else if (u < 66) { lo = 4 << 10; hi = 64 << 10; }
    else { lo = 16; hi = 4 << 10; }
    b->p = NULL;
    b->len = 0;
    b->target = bench_uniform(&rng, lo, hi);
    b->tag = bench_rng_next(&rng);
}

/* Hash bytes [0, n) and count a mismatch with the pattern. */
static uint64_t check(const buffer *b, size_t n) {
    uint64_t h = n;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = b->p[i];
        bad |= c != byte_at(b->tag, i);
        h = (h ^ c) * 0x100000001B3ull;
    }
    errors += bad;
    return bench_mix64(h);
}

static void finish(buffer *b) {
    if (b->len && (b->tag >> 62) == 0) { /* one in four: shrink, then check */
        size_t half = b->len / 2 ? b->len / 2 : 1;
        unsigned char *q = realloc(b->p, half);
        if (!q) bench_oom("realloc", half);
        b->p = q;
        b->len = half;
    }
    checksum += check(b, b->len);
    free(b->p);
}

static void grow(buffer *b) {
    size_t step = bench_uniform(&rng, 1, 64);
    size_t n = b->len + step > b->target ? b->target : b->len + step;
    /* The tail written so far: after a move it must have come along. */
    size_t tail = b->len < 8 ? b->len : 8;
    unsigned char *q = realloc(b->p, n);
    if (!q) bench_oom("realloc", n);
    for (size_t i = b->len - tail; i < b->len; i++)
        if (q[i] != byte_at(b->tag, i)) { errors++; break; }
    for (size_t i = b->len; i < n; i++) q[i] = byte_at(b->tag, i);
    b->p = q;
    b->len = n;
    if (n == b->target) {
        finish(b);
        start(b);
    }
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 20000000);
    long nbuf = bench_arg(argc, argv, 2, 256);
    if (nbuf < 1) nbuf = 1;
    bench_rng_seed(&rng, 11);
    buffer *bufs = malloc(sizeof(buffer) * (size_t)nbuf);
    if (!bufs) bench_oom("malloc", sizeof(buffer) * (size_t)nbuf);

    double t0 = bench_now_ms();
    for (long i = 0; i < nbuf; i++) start(&bufs[i]);
    for (long i = 0; i < n; i++)
        grow(&bufs[bench_rng_next(&rng) % (uint64_t)nbuf]);
    for (long i = 0; i < nbuf; i++) {
        if (bufs[i].p) finish(&bufs[i]);
    }
    free(bufs);
    return bench_report("realloc-grow", n, checksum, errors, t0);
}
