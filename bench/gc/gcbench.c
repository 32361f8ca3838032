/*
 * gcbench — a GCBench-style run (the collector benchmark of Ellis, Kovac and
 * Boehm), re-implemented here from its published description.
 *
 * Stands for: a program with a large long-lived heap — a tree and a big
 * array of numbers that live for the whole run, like a document model and a
 * numeric table — that also churns through temporary trees of many sizes,
 * built both top-down (parent first, then its children filled in: objects
 * that are written after they are older than the ones they point to) and
 * bottom-up (children first). It tests how a collector copes with old
 * objects that keep being retraced, with a large pointer-free object it must
 * not scan, and with temporaries of every lifetime between "dies at once"
 * and "lives through several collections".
 *
 *   gcbench D [A]      (classic: D = 16, A = 500000)
 *
 *   stretch tree depth D+2, built and dropped;
 *   long-lived tree of depth D (top-down) and a long-lived array of A
 *   doubles (pointer-free: GC_ALLOC_ATOMIC), a[i] = 1/i;
 *   for d = 4, 6, ..., D: N(d) = 2 * size(D+2) / size(d) trees of depth d
 *   top-down, then N(d) bottom-up, where size(d) = 2^(d+1) - 1 nodes;
 *   finally the long-lived tree and the whole array are checked.
 *
 * A node is two pointers and two 32-bit ints (24 bytes): i = the depth left
 * below the node, j = its serial number in its tree (pre-order for top-down,
 * post-order for bottom-up). Every 8th temporary tree, the stretch tree and
 * the long-lived tree are walked: each node's i must match its depth, leaves
 * must be exactly at depth 0, and the serials must sum to size*(size-1)/2.
 * The checksum mixes those sums and the array's bits; the Go version
 * (go/gcbench) computes the same value.
 */
#include "gc_common.h"

typedef struct gnode {
    struct gnode *left, *right;
    int32_t i, j;
} gnode;

static long nodes_made;
static int32_t serial;
static uint64_t checksum;
static long errors;

static gnode *new_node(gnode *l, gnode *r, int32_t i, int32_t j) {
    gnode *n = gc_alloc(sizeof *n);
    n->left = l;
    n->right = r;
    n->i = i;
    n->j = j;
    nodes_made++;
    return n;
}

static long tree_size(int d) { return (2L << d) - 1; }

/* Top-down: give `n` (of depth `depth`) its children, then fill those in. */
static void populate(int depth, gnode *n) {
    if (depth <= 0) return;
    depth--;
    n->left = new_node(NULL, NULL, depth, serial++);
    n->right = new_node(NULL, NULL, depth, 0);
    populate(depth, n->left);
    n->right->j = serial++; /* pre-order: after the whole left subtree */
    populate(depth, n->right);
}

static gnode *top_down(int depth) {
    serial = 0;
    gnode *root = new_node(NULL, NULL, depth, serial++);
    populate(depth, root);
    return root;
}

/* Bottom-up: children first. */
static gnode *make_tree(int depth) {
    if (depth <= 0) return new_node(NULL, NULL, 0, serial++);
    gnode *l = make_tree(depth - 1);
    gnode *r = make_tree(depth - 1);
    return new_node(l, r, depth, serial++);
}

static gnode *bottom_up(int depth) {
    serial = 0;
    return make_tree(depth);
}

/* Walk a tree: sum of serials; counts an error for any node out of shape. */
static int64_t walk(const gnode *n, int depth, long *bad) {
    if (n->i != depth) (*bad)++;
    if (depth == 0) {
        if (n->left || n->right) (*bad)++;
        return n->j;
    }
    if (!n->left || !n->right) {
        (*bad)++;
        return n->j;
    }
    return n->j + walk(n->left, depth - 1, bad) + walk(n->right, depth - 1, bad);
}

static void verify(const char *what, const gnode *t, int depth) {
    long bad = 0;
    int64_t s = walk(t, depth, &bad);
    int64_t size = tree_size(depth), want = size * (size - 1) / 2;
    if (bad || s != want) {
        fprintf(stderr, "gcbench: %s tree of depth %d: %ld bad nodes, serial sum "
                "%lld, expected %lld\n", what, depth, bad, (long long)s,
                (long long)want);
        errors++;
    }
    checksum = bench_mix64(checksum ^ (uint64_t)s ^ ((uint64_t)depth << 58));
}

int main(int argc, char **argv) {
    gc_setup();
    int depth = (int)bench_arg(argc, argv, 1, 16);
    long asize = bench_arg(argc, argv, 2, 500000);
    if (depth < 4) depth = 4;
    if (asize < 2) asize = 2;
    int stretch = depth + 2, long_lived_depth = depth, min_depth = 4;
    double t0 = bench_now_ms();

    gnode *t = bottom_up(stretch);
    verify("stretch", t, stretch);
    t = NULL;

    gnode *long_lived = top_down(long_lived_depth);
    double *array = gc_alloc_atomic((size_t)asize * sizeof(double));
    for (long i = 0; i < asize; i++) array[i] = i ? 1.0 / (double)i : 0.0;

    for (int d = min_depth; d <= depth; d += 2) {
        long iters = 2 * tree_size(stretch) / tree_size(d);
        for (long k = 0; k < iters; k++) {
            t = top_down(d);
            if ((k & 7) == 0) verify("top-down", t, d);
        }
        for (long k = 0; k < iters; k++) {
            t = bottom_up(d);
            if ((k & 7) == 0) verify("bottom-up", t, d);
        }
        checksum = bench_mix64(checksum ^ (uint64_t)iters);
    }
    t = NULL;

    verify("long-lived", long_lived, long_lived_depth);
    uint64_t ah = 0;
    long abad = 0;
    for (long i = 0; i < asize; i++) {
        double want = i ? 1.0 / (double)i : 0.0;
        uint64_t bits;
        memcpy(&bits, &array[i], sizeof bits);
        if (array[i] != want) abad++;
        ah = (ah ^ bits) * 0x100000001B3ull;
    }
    if (abad) {
        fprintf(stderr, "gcbench: %ld of %ld array elements changed\n", abad, asize);
        errors++;
    }
    checksum = bench_mix64(checksum ^ ah);
    BENCH_ESCAPE(long_lived);
    BENCH_ESCAPE(array);
    return gc_report("gcbench", nodes_made, checksum, errors, t0);
}
