/*
 * bench_common.h — what every workload shares: a fixed pseudo-random
 * sequence, the object fill/verify pattern, the clock, and the report format
 * the runner (bench/runner.py) parses.
 *
 * Report format, one "key: value" per line on stdout:
 *
 *   workload: churn
 *   allocator: goalloc | libc-api        (libc-api: whatever malloc is linked/preloaded)
 *   ops: 4000000
 *   checksum: 9c0e6d1a2b3f4e5d          (must be equal for every allocator)
 *   errors: 0                           (objects whose contents did not verify)
 *   time_ms: 812.4                      (the measured loop, for reference)
 *
 * A workload that finds corrupted memory, or gets NULL from malloc, exits
 * with status 3 after printing the report, so the runner fails loudly.
 *
 * Checksums are built only from sizes and from the bytes read back out of
 * objects, never from addresses or timing, so they do not depend on the
 * allocator or on thread scheduling (multi-threaded workloads add per-object
 * hashes, which commutes).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>

#ifdef BENCH_GOALLOC
#include "alloc_shim.h"
#define BENCH_ALLOCATOR "goalloc"
#else
#define BENCH_ALLOCATOR "libc-api"
#endif

#define BENCH_INLINE static inline __attribute__((always_inline))

/*
 * Keep the compiler from deleting or merging allocator calls: the pointer
 * escapes into an empty asm that may read all memory. Costs no instruction.
 * (The workloads are also built with -fno-builtin-malloc and friends, so GCC
 * does not treat free(malloc(n)) as dead code.)
 */
#define BENCH_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")
/* Hide a value from the optimiser (the baseline loops use it so that their
 * NULL checks and stores are not folded away). Costs no instruction. */
#define BENCH_OPAQUE(x) __asm__("" : "+r"(x))

/* A spin-wait hint for the multi-threaded workloads' wait loops. */
#if defined(__x86_64__) || defined(__i386__)
#define BENCH_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define BENCH_CPU_RELAX() __asm__ volatile("yield")
#else
#define BENCH_CPU_RELAX() __asm__ volatile("" ::: "memory")
#endif

/* Pin the calling thread to the k-th CPU this process may run on (modulo
 * their number), if it may run on at least two. Two threads left on one
 * core take turns instead of running side by side: a cross-thread workload
 * then measures no contention at all (xthread ran 20x faster that way, a
 * bimodal time no median can tame), and false sharing never shows. */
static inline void bench_pin_to_cpu(int k) {
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2)
        return;
    k %= CPU_COUNT(&allowed);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && k-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
    }
}

/* Run fn on n threads, thread t getting (char *)args + t * argsize, and
 * wait for all of them. A thread that cannot start fails the run (exit 3). */
static inline void bench_run_threads(long n, void *(*fn)(void *), void *args,
                                     size_t argsize) {
    pthread_t *th = malloc(sizeof(pthread_t) * (size_t)n);
    if (!th) {
        fprintf(stderr, "FAIL: out of memory for %ld threads\n", n);
        exit(3);
    }
    for (long t = 0; t < n; t++) {
        if (pthread_create(&th[t], NULL, fn, (char *)args + (size_t)t * argsize) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            exit(3);
        }
    }
    for (long t = 0; t < n; t++) pthread_join(th[t], NULL);
    free(th);
}

/* xorshift64*: the fixed pseudo-random sequence. ~5 instructions per draw. */
typedef struct { uint64_t s; } bench_rng;

BENCH_INLINE void bench_rng_seed(bench_rng *r, uint64_t seed) {
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (r->s == 0) r->s = 1;
}

BENCH_INLINE uint64_t bench_rng_next(bench_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A uniform draw in [lo, hi] (Lemire's multiply-shift, no division). */
BENCH_INLINE size_t bench_uniform(bench_rng *r, size_t lo, size_t hi) {
    return lo + (size_t)(((bench_rng_next(r) >> 32) * (uint64_t)(hi - lo + 1)) >> 32);
}

/*
 * The size sequence of the fast-path micro benchmarks: BENCH_SIZES sizes
 * drawn once from the xorshift sequence, then cycled. Reading the next size
 * costs ~3 instructions, so the loop around the allocator calls stays small
 * (it is subtracted in callgrind mode anyway) and 8 KiB of table stays in L1.
 */
#define BENCH_SIZES 4096
static inline void bench_size_table(uint16_t *t, uint64_t seed, size_t lo, size_t hi) {
    bench_rng r;
    bench_rng_seed(&r, seed);
    for (int i = 0; i < BENCH_SIZES; i++) t[i] = (uint16_t)bench_uniform(&r, lo, hi);
}

/* splitmix64's finaliser: a good 64-bit mix for tags and checksums. */
BENCH_INLINE uint64_t bench_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/*
 * The pattern of an object: word i of an object tagged `tag` holds
 * tag ^ (i * golden), the tail bytes hold the low bytes of the next word.
 * Objects are at least 8 bytes and malloc'd memory is 8-aligned, so the word
 * accesses are aligned.
 */
#define BENCH_GOLDEN 0x9E3779B97F4A7C15ull

static inline void bench_fill(void *p, size_t n, uint64_t tag) {
    uint64_t *w = (uint64_t *)p;
    size_t nw = n / 8, i;
    for (i = 0; i < nw; i++) w[i] = tag ^ (i * BENCH_GOLDEN);
    if (n % 8) {
        uint64_t last = tag ^ (i * BENCH_GOLDEN);
        memcpy((char *)p + nw * 8, &last, n % 8);
    }
}

/*
 * Read an object back: returns a hash of what is actually in memory and sets
 * *bad if it differs from the pattern.
 */
static inline uint64_t bench_verify(const void *p, size_t n, uint64_t tag, int *bad) {
    const uint64_t *w = (const uint64_t *)p;
    size_t nw = n / 8, i;
    uint64_t h = n, diff = 0;
    for (i = 0; i < nw; i++) {
        uint64_t v = w[i];
        diff |= v ^ (tag ^ (i * BENCH_GOLDEN));
        h = (h ^ v) * 0x100000001B3ull;
    }
    if (n % 8) {
        uint64_t want = tag ^ (i * BENCH_GOLDEN), got = 0;
        memcpy(&got, (const char *)p + nw * 8, n % 8);
        uint64_t mask = (1ull << (8 * (n % 8))) - 1;
        diff |= (got ^ want) & mask;
        h = (h ^ got) * 0x100000001B3ull;
    }
    if (diff) *bad = 1;
    return bench_mix64(h);
}

static inline double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* argv[i] as a count (accepts 1e6, 2000000, 2_000_000 is not accepted). */
static inline long bench_arg(int argc, char **argv, int i, long dflt) {
    if (argc <= i) return dflt;
    char *end;
    double v = strtod(argv[i], &end);
    if (*end != 0 || v < 0) {
        fprintf(stderr, "bad count '%s'\n", argv[i]);
        exit(2);
    }
    return (long)v;
}

static inline void bench_oom(const char *what, size_t n) {
    fprintf(stderr, "FAIL: %s(%zu) returned NULL\n", what, n);
    exit(3);
}

/* Print the report; the return value is the process exit status. */
static inline int bench_report(const char *name, long ops, uint64_t checksum,
                               long errors, double t0) {
    double ms = bench_now_ms() - t0;
    printf("workload: %s\nallocator: %s\nops: %ld\nchecksum: %016llx\n"
           "errors: %ld\ntime_ms: %.3f\n",
           name, BENCH_ALLOCATOR, ops, (unsigned long long)checksum, errors, ms);
    fflush(stdout);
    if (errors) {
        fprintf(stderr, "FAIL: %s: %ld objects did not verify (memory corrupted)\n",
                name, errors);
        return 3;
    }
    return 0;
}

#endif /* BENCH_COMMON_H */
