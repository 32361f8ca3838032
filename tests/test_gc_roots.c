/*
 * test_gc_roots — the collector keeps what is reachable and frees what is
 * not. Objects reachable from a global, from the stack, from a register-ish
 * local, from a registered root range in memory goalloc does not manage,
 * through other heap objects and through interior pointers survive hundreds
 * of collections with their contents intact; garbage is reclaimed: the heap
 * stays within about 2x the live size while the program allocates 100x it.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "goalloc.h"
#include "testutil.h"

typedef struct node {
  struct node *next;
  uint64_t value;
  unsigned char payload[48];
} node;

static node *global_list;          /* root: data/BSS */
static unsigned char *global_interior; /* points into the middle of an object */

static node *make_list(int n, uint64_t seed) {
  node *head = NULL;
  for (int i = 0; i < n; i++) {
    node *x = ga_malloc(sizeof *x);
    CHECK(x);
    x->next = head;
    x->value = seed + (uint64_t)i;
    fill_pattern(x->payload, sizeof x->payload, x->value);
    head = x;
  }
  return head;
}

static void check_list(const node *head, int n, uint64_t seed) {
  int i = n - 1;
  for (const node *x = head; x; x = x->next, i--) {
    CHECK(x->value == seed + (uint64_t)i);
    CHECK(check_pattern(x->payload, sizeof x->payload, x->value));
  }
  CHECK(i == -1);
}

/* Allocate `bytes` of garbage in objects of mixed sizes. */
static void churn(size_t bytes, rng_t *r) {
  size_t done = 0;
  while (done < bytes) {
    size_t n = 16 + rng_below(r, 2000);
    char *p = rng_below(r, 3) ? ga_malloc(n) : ga_malloc_atomic(n);
    CHECK(p);
    p[0] = 1;
    p[n - 1] = 2;
    done += n;
  }
}

int main(void) {
  rng_t r = {99};
  int cycles = (int)scaled(300);
  /* Roots of every kind. */
  global_list = make_list(1000, 1000);
  node *stack_list = make_list(1000, 5000);
  unsigned char *blob = ga_malloc(100000); /* large object, interior root */
  fill_pattern(blob, 100000, 77);
  global_interior = blob + 54321;
  blob = NULL;
  node **rooted = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(rooted != MAP_FAILED);
  ga_add_roots(rooted, rooted + 512);
  rooted[7] = make_list(1000, 9000); /* only reachable from the mmap'd range */
  node *interior_small = make_list(1, 424242);
  unsigned char *small_interior = (unsigned char *)&interior_small->payload[20];
  interior_small = NULL;

  ga_stats st = {.version = GA_STATS_VERSION};
  size_t live_guess = 3 * 1000 * 64 + 100000 + 64;
  uint64_t max_heap = 0;
  for (int c = 0; c < cycles; c++) {
    churn(live_guess, &r); /* 100x the live size over the run, at least */
    if (c % 10 == 0) ga_collect();
    check_list(global_list, 1000, 1000);
    check_list(stack_list, 1000, 5000);
    check_list(rooted[7], 1000, 9000);
    CHECK(check_pattern(global_interior - 54321, 100000, 77));
    node *back = (node *)(small_interior - offsetof(node, payload) - 20);
    CHECK(back->value == 424242);
    ga_read_stats(&st);
    if (st.heap_inuse > max_heap) max_heap = st.heap_inuse;
  }
  ga_collect();
  ga_read_stats(&st);
  printf("gc_roots: %d rounds, %llu collections, live ~%zu KiB, max heap in use %llu KiB, "
         "heap alloc after final collection %llu KiB\n",
         cycles, (unsigned long long)st.num_gc, live_guess >> 10,
         (unsigned long long)(max_heap >> 10), (unsigned long long)(st.heap_alloc >> 10));
  CHECK(st.num_gc >= (uint64_t)cycles / 10);
  /* Garbage is reclaimed: the heap stays near the live size (the minimum
   * heap goal is 4 MiB), far below the 100x allocated. */
  CHECK(max_heap < 16u << 20);
  CHECK(st.heap_alloc < 4 * live_guess + (1u << 20));
  /* Dropping the roots frees their objects. */
  global_list = NULL;
  rooted[7] = NULL;
  ga_remove_roots(rooted, rooted + 512);
  ga_collect();
  ga_read_stats(&st);
  printf("after dropping the roots: heap alloc %llu KiB\n", (unsigned long long)(st.heap_alloc >> 10));
  check_list(stack_list, 1000, 5000); /* still alive: on the stack */
  printf("gc_roots: ok\n");
  return 0;
}
