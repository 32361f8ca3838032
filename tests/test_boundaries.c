/*
 * test_boundaries — every size-class boundary, large objects, aligned
 * allocation for every power of two up to 1 GiB, and calloc returning zero
 * memory after dirty reuse (small and large).
 */
#include <stdint.h>

#include "goalloc.h"
#include "sizeclasses.h"
#include "testutil.h"

/* The slot size ga_malloc must give a request of n bytes. */
static size_t expect_usable(size_t n) {
  if (n == 0) n = 1;
  if (n > GA_MAX_SMALL_SIZE) return (n + GA_PAGE_SIZE - 1) / GA_PAGE_SIZE * GA_PAGE_SIZE;
  for (int c = 1; c < GA_NUM_SIZE_CLASSES; c++)
    if (ga__class_to_size[c] >= n) return ga__class_to_size[c];
  return 0;
}

static void one(size_t n) {
  unsigned char *p = ga_malloc(n);
  CHECKF(p != NULL, "malloc(%zu)", n);
  size_t u = ga_usable_size(p);
  CHECKF(u == expect_usable(n), "malloc(%zu): usable %zu, want %zu", n, u, expect_usable(n));
  /* Go's alignment: 16 from 16 bytes up, except the 24-byte class. */
  if (n >= 16 && !(n > 16 && n <= 24))
    CHECKF((uintptr_t)p % 16 == 0, "malloc(%zu) = %p", n, (void *)p);
  if (n >= 8) CHECKF((uintptr_t)p % 8 == 0, "malloc(%zu) = %p", n, (void *)p);
  /* The whole usable size is writable and does not disturb a neighbour. */
  unsigned char *q = ga_malloc(n);
  fill_pattern(q, n, 99);
  memset(p, 0xab, u);
  CHECK(check_pattern(q, n, 99));
  ga_free(q);
  ga_free(p);
}

int main(void) {
  /* Every class boundary: the first and last request of each class. */
  long checked = 0;
  for (int c = 1; c < GA_NUM_SIZE_CLASSES; c++) {
    size_t lo = ga__class_to_size[c - 1] + 1, hi = ga__class_to_size[c];
    for (size_t n = lo; n <= hi; n += (hi - lo > 64 ? (hi - lo) / 16 : 1)) one(n), checked++;
    one(hi);
    one(hi + 1);
    checked += 2;
  }
  /* Large: the cut and multi-page sizes. */
  static const size_t large[] = {32768, 32769, 40960, 40961, 65536, 1 << 20,
                                 (1 << 20) + 1, 10 << 20, 100 << 20};
  for (size_t i = 0; i < sizeof large / sizeof *large; i++) one(large[i]), checked++;

  /* Aligned allocation: every power of two up to 1 GiB, several sizes. */
  for (size_t a = 1; a <= ((size_t)1 << 30); a <<= 1) {
    static const size_t sizes[] = {1, 8, 24, 100, 4096, 40000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      unsigned char *p = ga_aligned_alloc(a, sizes[i]);
      CHECKF(p != NULL, "aligned_alloc(%zu, %zu)", a, sizes[i]);
      CHECKF((uintptr_t)p % a == 0, "aligned_alloc(%zu, %zu) = %p", a, sizes[i], (void *)p);
      CHECK(ga_usable_size(p) >= sizes[i]);
      memset(p, 1, sizes[i]);
      ga_free(p);
      checked++;
    }
  }

  /* 17..24 bytes share Go's 24-byte class, whose odd slots are 8-aligned;
   * ga_aligned_alloc(16, n) must still give 16 for them. Several in a row,
   * so that an odd slot would show up. */
  CHECK(ga__malloc_size_to_class(24) == ga__size_to_class(24));
  for (size_t n = 17; n <= 24; n++) {
    void *q[8];
    for (int k = 0; k < 8; k++) {
      q[k] = ga_aligned_alloc(16, n);
      CHECKF(q[k] != NULL && (uintptr_t)q[k] % 16 == 0, "aligned_alloc(16, %zu) = %p", n, q[k]);
      checked++;
    }
    for (int k = 0; k < 8; k++) ga_free(q[k]);
  }

  /* calloc after dirty reuse: fill many objects with junk, free them, calloc
   * the same sizes and require zero. */
  static const size_t csizes[] = {8, 16, 24, 48, 100, 512, 1000, 4096, 9000, 32768, 50000, 1 << 20};
  for (size_t i = 0; i < sizeof csizes / sizeof *csizes; i++) {
    enum { N = 300 };
    static unsigned char *ps[N];
    size_t n = csizes[i];
    int count = n > 100000 ? 8 : N;
    for (int k = 0; k < count; k++) {
      ps[k] = ga_malloc(n);
      memset(ps[k], 0xff, ga_usable_size(ps[k]));
    }
    for (int k = 0; k < count; k++) ga_free(ps[k]);
    for (int k = 0; k < count; k++) {
      ps[k] = ga_calloc(1, n);
      for (size_t b = 0; b < n; b++) CHECKF(ps[k][b] == 0, "calloc(%zu) byte %zu", n, b);
      memset(ps[k], 0xee, n);
    }
    for (int k = 0; k < count; k++) ga_free(ps[k]);
    checked++;
  }
  /* calloc of fresh memory is zero too (no clearing needed, still zero). */
  unsigned char *big = ga_calloc(64, 1 << 20);
  for (size_t b = 0; b < ((size_t)64 << 20); b += 4096) CHECK(big[b] == 0);
  ga_free(big);
  printf("boundaries: ok (%ld cases)\n", checked);
  return 0;
}
