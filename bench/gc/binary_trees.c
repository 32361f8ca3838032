/*
 * binary-trees — the allocation benchmark of the Computer Language Benchmarks
 * Game, re-implemented here from its description (single-threaded).
 *
 * Stands for: a program that builds many small short-lived trees while a
 * large structure stays alive for the whole run — a compiler building and
 * dropping expression trees per function next to its symbol table, a server
 * building a request's DOM or JSON tree next to its long-lived caches. Every
 * object is 16 bytes and holds two pointers; nearly everything dies young,
 * and every collection must trace the long-lived tree again. What it measures
 * is the cost of allocation plus collection with no explicit free at all
 * (the C side never calls free; the collector reclaims).
 *
 *   binary_trees D        (D >= 6; 19 in full mode, like the collector issue)
 *
 * 1. A "stretch" tree of depth D+1 is built, checked and dropped.
 * 2. A long-lived tree of depth D is built and kept until the end.
 * 3. For d = 4, 6, ..., D: 2^(D-d+4) trees of depth d are built bottom-up
 *    (children before their parent), each is walked to count its nodes, and
 *    dropped.
 * 4. The long-lived tree is walked again.
 *
 * Verification: a tree of depth d has 2^(d+1)-1 nodes; every walk must find
 * exactly that many (a node collected while reachable and reused shows up as
 * a wrong count or a crash). The checksum mixes every depth's total, so it is
 * the same for goalloc, Boehm GC and the Go version (go/binary_trees).
 */
#include "gc_common.h"

typedef struct node {
    struct node *left, *right;
} node;

static long nodes_made;

static node *bottom_up(int depth) {
    node *l = NULL, *r = NULL;
    if (depth > 0) {
        l = bottom_up(depth - 1);
        r = bottom_up(depth - 1);
    }
    node *n = gc_alloc(sizeof *n);
    n->left = l;
    n->right = r;
    nodes_made++;
    return n;
}

static long check(const node *n) {
    if (n->left == NULL) return 1;
    return 1 + check(n->left) + check(n->right);
}

static uint64_t checksum;
static long errors;

static void account(int depth, long iters, long total) {
    long want = iters * ((2L << depth) - 1);
    if (total != want) {
        fprintf(stderr, "binary-trees: depth %d x %ld: %ld nodes, expected %ld\n",
                depth, iters, total, want);
        errors++;
    }
    checksum = bench_mix64(checksum ^ ((uint64_t)depth << 56) ^ (uint64_t)total);
}

int main(int argc, char **argv) {
    gc_setup();
    int max_depth = (int)bench_arg(argc, argv, 1, 16);
    if (max_depth < 6) max_depth = 6;
    double t0 = bench_now_ms();

    node *stretch = bottom_up(max_depth + 1);
    account(max_depth + 1, 1, check(stretch));
    stretch = NULL;

    node *long_lived = bottom_up(max_depth);

    for (int d = 4; d <= max_depth; d += 2) {
        long iters = 1L << (max_depth - d + 4), total = 0;
        for (long i = 0; i < iters; i++) {
            node *t = bottom_up(d);
            total += check(t);
        }
        account(d, iters, total);
    }
    account(max_depth, 1, check(long_lived));
    BENCH_ESCAPE(long_lived);
    return gc_report("binary-trees", nodes_made, checksum, errors, t0);
}
