/*
 * test_model — random ga_malloc / ga_malloc_atomic / ga_calloc / ga_realloc /
 * ga_aligned_alloc / ga_free sequences checked against a model of what must
 * hold: contents survive until freed (a pattern per object, verified on free
 * and periodically), live objects never overlap, alignment (16 for >= 16 B,
 * 8 for 8..15 B, or the requested alignment), usable size >= requested,
 * calloc memory zero, ga_owns agrees. Also the API's edge cases.
 */
#include <errno.h>
#include <stdint.h>

#include "goalloc.h"
#include "testutil.h"

#define SLOTS 4096

typedef struct {
  unsigned char *p;
  size_t size;
  size_t align;
  uint64_t seed;
  int atomic;
} obj_t;

static obj_t live[SLOTS];
static rng_t r = {0x1234567887654321ull};

static size_t pick_size(void) {
  uint64_t k = rng_below(&r, 1000);
  if (k < 700) return 1 + rng_below(&r, 512);
  if (k < 950) return 1 + rng_below(&r, 32768);
  if (k < 995) return 32769 + rng_below(&r, 300000);
  return 1 + rng_below(&r, 4 << 20);
}

static void check_align(const obj_t *o) {
  uintptr_t a = (uintptr_t)o->p;
  /* Go's alignment: 16 from 16 bytes up, except the 24-byte class. */
  if (o->size >= 16 && !(o->size > 16 && o->size <= 24))
    CHECKF(a % 16 == 0, "size %zu at %p", o->size, (void *)o->p);
  else if (o->size >= 8) CHECKF(a % 8 == 0, "size %zu at %p", o->size, (void *)o->p);
  if (o->align) CHECKF(a % o->align == 0, "align %zu at %p", o->align, (void *)o->p);
}

static int cmp_obj(const void *a, const void *b) {
  const obj_t *x = a, *y = b;
  return (x->p > y->p) - (x->p < y->p);
}

static void check_all(void) {
  static obj_t sorted[SLOTS];
  size_t n = 0;
  for (int i = 0; i < SLOTS; i++)
    if (live[i].p) {
      CHECK(check_pattern(live[i].p, live[i].size, live[i].seed));
      CHECK(ga_owns(live[i].p));
      CHECK(ga_owns(live[i].p + live[i].size - 1));
      sorted[n++] = live[i];
    }
  qsort(sorted, n, sizeof *sorted, cmp_obj);
  for (size_t i = 1; i < n; i++)
    CHECKF(sorted[i - 1].p + sorted[i - 1].size <= sorted[i].p,
           "overlap %p+%zu and %p", (void *)sorted[i - 1].p, sorted[i - 1].size,
           (void *)sorted[i].p);
}

static void edge_cases(void) {
  ga_free(NULL);
  CHECK(ga_usable_size(NULL) == 0);
  /* Immediate reuse of a freed slot (owner path hands it straight back). */
  for (size_t sz = 8; sz <= 4096; sz *= 2) {
    void *p = ga_malloc(sz);
    ga_free(p);
    void *q = ga_malloc(sz);
    CHECKF(p == q, "size %zu: freed slot %p not reused (got %p)", sz, p, q);
    ga_free(q);
  }
  /* malloc(0) is a unique, freeable pointer. */
  void *z1 = ga_malloc(0), *z2 = ga_malloc(0);
  CHECK(z1 && z2 && z1 != z2);
  ga_free(z1);
  ga_free(z2);
  /* Impossible sizes: NULL + ENOMEM, nothing else changes. */
  errno = 0;
  CHECK(ga_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(ga_malloc((size_t)1 << 62) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(ga_malloc_atomic(SIZE_MAX - 100) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(ga_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(ga_calloc((size_t)1 << 40, (size_t)1 << 30) == NULL && errno == ENOMEM);
  void *p = ga_malloc(100);
  fill_pattern(p, 100, 7);
  errno = 0;
  CHECK(ga_realloc(p, SIZE_MAX) == NULL && errno == ENOMEM);
  CHECK(check_pattern(p, 100, 7)); /* untouched */
  errno = 0;
  CHECK(ga_aligned_alloc(3, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(ga_aligned_alloc(0, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(ga_aligned_alloc(64, SIZE_MAX) == NULL && errno == ENOMEM);
  /* realloc: in place while the class fits, data kept when moving. */
  void *q = ga_realloc(p, 110);
#if !GOALLOC_VALGRIND /* the valgrind build always moves, to keep memcheck exact */
  CHECK(q == p);
#endif
  CHECK(check_pattern(q, 100, 7));
  q = ga_realloc(q, 5000);
  CHECK(q != NULL && check_pattern(q, 100, 7));
  CHECK(ga_realloc(q, 0) == NULL); /* frees */
  q = ga_realloc(NULL, 40);
  CHECK(q && (uintptr_t)q % 16 == 0);
  ga_free(q);
  /* The heap still works after all that. */
  p = ga_malloc(1 << 20);
  CHECK(p);
  fill_pattern(p, 1 << 20, 3);
  ga_free(p);
  /* ga_owns never aborts. */
  int local;
  CHECK(!ga_owns(&local));
  CHECK(!ga_owns(NULL));
  CHECK(!ga_owns((void *)edge_cases));
}

int main(void) {
  edge_cases();
  long steps = scaled(300000);
  long allocs = 0, frees = 0, reallocs = 0;
  for (long step = 0; step < steps; step++) {
    int i = (int)rng_below(&r, SLOTS);
    obj_t *o = &live[i];
    if (o->p == NULL) {
      o->size = pick_size();
      o->align = 0;
      o->atomic = 0;
      unsigned kind = (unsigned)rng_below(&r, 10);
      if (kind < 5) {
        o->p = ga_malloc(o->size);
      } else if (kind < 7) {
        /* Keep tiny atomic objects rare: they are only freed by the GC. */
        if (o->size < 16 && rng_below(&r, 8) != 0) o->size += 16;
        o->atomic = 1;
        o->p = ga_malloc_atomic(o->size);
      } else if (kind < 9) {
        size_t n = 1 + rng_below(&r, 4);
        o->p = ga_calloc(n, o->size);
        CHECK(o->p);
        o->size *= n;
        for (size_t k = 0; k < o->size; k++) CHECK(o->p[k] == 0);
      } else {
        o->align = (size_t)1 << rng_below(&r, 17);
        o->p = ga_aligned_alloc(o->align, o->size);
      }
      CHECK(o->p != NULL);
      check_align(o);
      if (!(o->atomic && o->size < 16)) CHECK(ga_usable_size(o->p) >= o->size);
      o->seed = rng_next(&r);
      fill_pattern(o->p, o->size, o->seed);
      allocs++;
    } else if (rng_below(&r, 4) == 0 && o->align == 0) {
      size_t ns = pick_size();
      if (o->atomic && ns < 16) ns += 16;
      unsigned char *np = ga_realloc(o->p, ns);
      CHECK(np != NULL);
      size_t keep = ns < o->size ? ns : o->size;
      CHECK(check_pattern(np, keep, o->seed));
      o->p = np;
      o->size = ns;
      check_align(o);
      CHECK(ga_usable_size(o->p) >= o->size);
      fill_pattern(o->p, o->size, o->seed);
      reallocs++;
    } else {
      CHECK(check_pattern(o->p, o->size, o->seed));
      ga_free(o->p);
      o->p = NULL;
      frees++;
    }
    if (step % 20000 == 0) check_all();
  }
  check_all();
  for (int i = 0; i < SLOTS; i++)
    if (live[i].p) ga_free(live[i].p);
  printf("model: ok (%ld allocs, %ld reallocs, %ld frees)\n", allocs, reallocs, frees);
  return 0;
}
