/*
 * test_badfree — every kind of bad free is reported (stderr names goalloc,
 * the address and what was wrong) and aborts: wild, stack and global
 * pointers, interior pointers (small and large, owner and remote paths),
 * double frees (owner, remote, owner-then-remote, remote-then-owner, large),
 * with neighbours live or freed. Each case runs in a forked child.
 *
 * Built twice: badfree (the core library) and badfree_tc (linked with
 * libgoalloc-override.a, GA_TEST_TCACHE: the malloc drop-in, whose free
 * cache, mtcache.c, takes the owner's frees). Every case must be caught by
 * both, but one: a free of a never-allocated slot of the thread's own span
 * enters the free cache unnoticed (its word carries no key; mtcache.c), and
 * is run only against the core library.
 */
#include <pthread.h>
#include <stdint.h>

#include "goalloc.h"
#include "internal.h"
#include "testutil.h"

#ifndef GA_TEST_TCACHE
#define GA_TEST_TCACHE 0
#endif

static int global_var;
static void *volatile sink;

/* Another thread's frees come from one helper thread, started before the
 * case allocates (each case runs in a child of its own): in badfree_tc
 * goalloc is libc's malloc too, and a thread started later takes slots for
 * libc's thread start-up that may be the very object the case freed,
 * turning its double free into a fine one. */
static int helper_to = -1, helper_from = -1;
static void *helper(void *arg) {
  int *fd = arg; /* [0]: requests, [1]: replies */
  void *p;
  while (read(fd[0], &p, sizeof p) == (ssize_t)sizeof p) {
    ga_free(p);
    if (write(fd[1], &p, sizeof p) != (ssize_t)sizeof p) break;
  }
  return NULL;
}
static void helper_start(void) {
  static int fd[2];
  int req[2], rep[2];
  CHECK(pipe(req) == 0 && pipe(rep) == 0);
  fd[0] = req[0];
  fd[1] = rep[1];
  helper_to = req[1];
  helper_from = rep[0];
  pthread_t t;
  CHECK(pthread_create(&t, NULL, helper, fd) == 0);
}
static void free_in_thread(void *p) {
  CHECK(helper_to >= 0);
  CHECK(write(helper_to, &p, sizeof p) == (ssize_t)sizeof p);
  CHECK(read(helper_from, &p, sizeof p) == (ssize_t)sizeof p);
}
static void *run_malloc(void *arg) { return ga_malloc((size_t)(uintptr_t)arg); }
static void *malloc_in_thread(size_t n) {
  pthread_t t;
  void *p;
  pthread_create(&t, NULL, run_malloc, (void *)(uintptr_t)n);
  pthread_join(t, &p);
  return p;
}

static void wild(void) { ga_free((void *)(uintptr_t)0x123456789a0); }
static void wild_near_heap(void) {
  char *p = ga_malloc(64);
  ga_free(p + (64 << 20) * 3); /* another arena, never mapped by goalloc */
}
static void stack(void) {
  int x = 0;
  ga_free(&x);
}
static void global(void) { ga_free(&global_var); }
static void interior_small_owner(void) {
  char *p = ga_malloc(64);
  ga_free(p + 16);
}
static void interior_small_remote(void) {
  char *p = malloc_in_thread(64); /* span owned by nobody now */
  ga_free(p + 8);
}
static void interior_large(void) {
  char *p = ga_malloc(100000);
  ga_free(p + 8192);
}
static void double_small_owner_live_neighbours(void) {
  char *a = ga_malloc(48), *b = ga_malloc(48), *c = ga_malloc(48);
  (void)a; (void)c;
  ga_free(b);
  ga_free(b);
}
static void double_small_owner_freed_neighbours(void) {
  char *a = ga_malloc(48), *b = ga_malloc(48), *c = ga_malloc(48);
  ga_free(a);
  ga_free(c);
  ga_free(b);
  ga_free(b);
}
static void double_small_owner_old_window(void) {
  /* The freed slot is outside the current 64-slot window. */
  char *first = ga_malloc(16);
  for (int i = 0; i < 200; i++) sink = ga_malloc(16);
  ga_free(first);
  ga_free(first);
}
static void double_remote_remote(void) {
  helper_start();
  char *p = ga_malloc(200);
  free_in_thread(p);
  free_in_thread(p);
}
static void double_owner_then_remote(void) {
  helper_start();
  char *p = ga_malloc(200);
  ga_free(p);
  free_in_thread(p);
}
static void double_owner_then_remote_uncached(void) {
  /* Same, but the span has left the cache: the check is immediate. (Not
   * 200 bytes: badfree_tc's pthread_create takes a slot of that class from
   * the span, goalloc being libc's malloc there, and it would be p.) */
  helper_start();
  char *p = ga_malloc(1000);
  ga_free(p);
  ga_thread_flush();
  free_in_thread(p);
}
static void double_remote_then_owner(void) {
  /* The owner's second free succeeds locally; the fold of the remote bit
   * into allocBits finds the slot already free and reports it. */
  helper_start();
  char *p = ga_malloc(256);
  free_in_thread(p);
  ga_free(p);
  for (int i = 0; i < 10000; i++) sink = ga_malloc(256);
}
static void double_large(void) {
  char *p = ga_malloc(1 << 20);
  ga_free(p);
  ga_free(p);
}
static void double_large_remote(void) {
  helper_start();
  char *p = ga_malloc(50000);
  free_in_thread(p);
  free_in_thread(p);
}
static void never_allocated_slot(void) {
  char *p = ga_malloc(128);
  ga_free(p + 128 * 5); /* a free slot of the same span */
}
static void tail_of_span(void) {
  /* Class 48 B: 341 slots in a 16 KiB span leave 16 bytes of tail. */
  char *p = ga_malloc(48);
  mspan *s = ga__spanOf((uintptr_t)p);
  uintptr_t tail = s->startAddr + (uintptr_t)s->nelems * s->elemsize;
  if (s->startAddr + s->npages * GA_PAGE_SIZE - tail < 16) _exit(3); /* no tail: test broken */
  ga_free((void *)tail);
}
static void usable_size_bad(void) {
  int x = 0;
  sink = (void *)ga_usable_size(&x);
}
static void realloc_bad(void) {
  char *p = ga_malloc(64);
  sink = ga_realloc(p + 1, 100);
}
static void realloc_freed(void) {
  char *p = ga_malloc(64);
  ga_free(p);
  sink = ga_realloc(p, 100);
}

int main(void) {
#if GA_TEST_TCACHE
  /* Off in a valgrind build (mtcache.c): then the cases run as badfree's. */
  CHECKF(ga__tcOn == !GA_VALGRIND_BUILD, "badfree_tc: the free cache is %s",
         ga__tcOn ? "on" : "off");
#else
  CHECKF(!ga__tcOn, "badfree: the free cache is on in the core library");
#endif
  expect_death("wild pointer", wild, "not allocated by goalloc");
  expect_death("wild pointer near the heap", wild_near_heap, "not allocated by goalloc");
  expect_death("stack pointer", stack, "not allocated by goalloc");
  expect_death("global pointer", global, "not allocated by goalloc");
  expect_death("interior small (owner)", interior_small_owner, "inside an object");
  expect_death("interior small (remote)", interior_small_remote, "inside an object");
  expect_death("interior large", interior_large, "inside an object");
  expect_death("double free, live neighbours", double_small_owner_live_neighbours, "double free");
  expect_death("double free, freed neighbours", double_small_owner_freed_neighbours, "double free");
  expect_death("double free, old window", double_small_owner_old_window, "double free");
  expect_death("double free, remote+remote", double_remote_remote, "double free");
  expect_death("double free, owner+remote", double_owner_then_remote, "double free");
  expect_death("double free, owner+remote (uncached)", double_owner_then_remote_uncached, "double free");
  expect_death("double free, remote+owner", double_remote_then_owner, "double free");
  expect_death("double free, large", double_large, "");
  expect_death("double free, large remote", double_large_remote, "double free");
  if (!ga__tcOn)
    expect_death("never-allocated slot", never_allocated_slot, "free");
  expect_death("span tail", tail_of_span, "not allocated by goalloc");
  expect_death("usable_size of stack", usable_size_bad, "ga_usable_size");
  expect_death("realloc interior", realloc_bad, "inside an object");
  expect_death("realloc freed", realloc_freed, "already free");
  /* And the address is in the message. */
  printf("badfree: ok\n");
  return 0;
}
