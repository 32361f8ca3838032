/*
 * test_sizeclasses.c — the generated size-class tables (src/sizeclasses.[ch])
 * against an independent oracle: Go 1.25's table as printed in
 * go-runtime-reference.md §2.2, typed in here by hand (goalloc gives Go's
 * one-page classes two-page spans: the one difference). Also checks every
 * size -> class lookup, the division magic over every span offset, and that
 * rerunning tools/mksizeclasses.py reproduces the checked-in files exactly.
 */
#include "sizeclasses.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

/* Go 1.25, classes 1..67 (bytes/obj, pages, noscan objs, divMul columns). */
static const unsigned go_size[GA_NUM_SIZE_CLASSES] = {
    0,     8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,
    160,   176,   192,   208,   224,   240,   256,   288,   320,   352,   384,   416,
    448,   480,   512,   576,   640,   704,   768,   896,   1024,  1152,  1280,  1408,
    1536,  1792,  2048,  2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376,  6144,
    6528,  6784,  6912,  8192,  9472,  9728,  10240, 10880, 12288, 13568, 14336, 16384,
    18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768};
static const unsigned go_npages[GA_NUM_SIZE_CLASSES] = {
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3,
    4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4};
static const unsigned go_objs[GA_NUM_SIZE_CLASSES] = {
    0,  1024, 512, 341, 256, 170, 128, 102, 85, 73, 64, 56, 51, 46, 42, 39, 36,
    34, 32,   28,  25,  23,  21,  19,  18,  17, 16, 14, 12, 11, 10, 9,  8,  7,
    6,  11,   5,   9,   4,   7,   3,   8,   5,  7,  2,  5,  3,  4,  5,  6,  7,
    1,  6,    5,   4,   3,   2,   3,   4,   1,  4,  3,  2,  3,  1,  3,  2,  1};
static const uint32_t go_divmul[GA_NUM_SIZE_CLASSES] = {
    0,         536870912, 268435456, 178956971, 134217728, 89478486, 67108864,
    53687092,  44739243,  38347923,  33554432,  29826162,  26843546, 24403224,
    22369622,  20648882,  19173962,  17895698,  16777216,  14913081, 13421773,
    12201612,  11184811,  10324441,  9586981,   8947849,   8388608,  7456541,
    6710887,   6100806,   5592406,   4793491,   4194304,   3728271,  3355444,
    3050403,   2796203,   2396746,   2097152,   1864136,   1597831,  1398102,
    1342178,   1242757,   1048576,   883012,    798916,    699051,   657931,
    633103,    621379,    524288,    453439,    441506,    419431,   394759,
    349526,    316552,    299594,    262144,    233017,    225198,   209716,
    197380,    174763,    157533,    149797,    131072};

static void check_table(void) {
  unsigned max_objs = 0, max_npages = 0;
  for (unsigned c = 0; c < GA_NUM_SIZE_CLASSES; c++) {
    CHECK(ga__class_to_size[c] == go_size[c]);
    /* goalloc's one change (tools/mksizeclasses.py): Go's one-page
     * spans have two pages. */
    CHECK(ga__class_to_npages[c] == (go_npages[c] == 1 ? 2 : go_npages[c]));
    if (go_npages[c] != 1) CHECK(ga__class_to_nelems[c] == go_objs[c]);
    CHECK(ga__class_to_divmagic[c] == go_divmul[c]);
    if (c == 0)
      continue;
    CHECK(ga__class_to_size[c] > ga__class_to_size[c - 1]);
    CHECK(ga__class_to_nelems[c] ==
          ga__class_to_npages[c] * GA_PAGE_SIZE / ga__class_to_size[c]);
    /* tail waste <= 1/8 of the span (the derivation's rule 3) */
    CHECK(ga__class_to_npages[c] * GA_PAGE_SIZE % ga__class_to_size[c] <=
          ga__class_to_npages[c] * GA_PAGE_SIZE / 8);
    /* The owner's free in the window (mfree.c, divMul64 as mheap.c sets
     * it): slot and exactness from one 128-bit product, for every offset
     * of a window. */
    uint64_t d = ga__class_to_size[c], m64 = UINT64_MAX / d + 1;
    for (uint64_t off = 0; off < 64 * d; off++) {
      unsigned __int128 q = (unsigned __int128)off * m64;
      CHECK((uint64_t)(q >> 64) == off / d);
      CHECK(((uint64_t)q < m64) == (off % d == 0));
    }
    if (ga__class_to_nelems[c] > max_objs) max_objs = ga__class_to_nelems[c];
    if (ga__class_to_npages[c] > max_npages) max_npages = ga__class_to_npages[c];
  }
  CHECK(ga__class_to_size[GA_NUM_SIZE_CLASSES - 1] == GA_MAX_SMALL_SIZE);
  CHECK(max_objs == GA_MAX_OBJS_PER_SPAN);
  CHECK(max_npages == GA_MAX_CLASS_NPAGES);
  CHECK(ga__class_to_size[GA_TINY_SIZE_CLASS] == GA_TINY_SIZE);
  CHECK(GA_NUM_SPAN_CLASSES == 2 * GA_NUM_SIZE_CLASSES);
  CHECK(GA_PAGE_SIZE == 1 << GA_PAGE_SHIFT);
  CHECK(ga__size_to_class8[0] == 0 && ga__malloc_size_to_spc8[0] == 0);
}

/* The smallest class whose size is >= size, by linear search. */
static unsigned smallest_class(size_t size) {
  for (unsigned c = 1; c < GA_NUM_SIZE_CLASSES; c++)
    if (ga__class_to_size[c] >= size) return c;
  CHECK(!"size above GA_MAX_SMALL_SIZE");
  return 0;
}

static void check_lookup(void) {
  for (size_t size = 1; size <= GA_MAX_SMALL_SIZE; size++) {
    unsigned want = smallest_class(size);
    CHECK(ga__size_to_class(size) == want);
    unsigned m = ga__malloc_size_to_class(size);
    CHECK(m == (size >= 17 && size <= 24 ? 4u : want));
    CHECK(ga__class_to_size[m] >= size);
    if (size >= 16) CHECK(ga__class_to_size[m] % 16 == 0);
  }
}

static void check_divmagic(unsigned long *offsets) {
  for (unsigned c = 1; c < GA_NUM_SIZE_CLASSES; c++) {
    uint64_t span = (uint64_t)ga__class_to_npages[c] * GA_PAGE_SIZE;
    uint64_t size = ga__class_to_size[c], magic = ga__class_to_divmagic[c];
    for (uint64_t off = 0; off <= span; off++) CHECK((off * magic) >> 32 == off / size);
    *offsets += span + 1;
  }
}

/* Whole file into a malloc'd buffer; NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0, r;
  char *buf = malloc(cap);
  CHECK(buf != NULL);
  while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      buf = realloc(buf, cap *= 2);
      CHECK(buf != NULL);
    }
  }
  CHECK(!ferror(f));
  fclose(f);
  *len = n;
  return buf;
}

static void check_regeneration(void) {
  const char *src = getenv("GOALLOC_SOURCE_DIR");
  if (!src || !*src) {
    fprintf(stderr, "test_sizeclasses: GOALLOC_SOURCE_DIR is not set (ctest sets it)\n");
    exit(1);
  }
  CHECK(strchr(src, '\'') == NULL); /* it is quoted in a shell command below */
  int rc = system("python3 --version >/dev/null 2>&1");
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    fprintf(stderr, "test_sizeclasses: python3 not found; it is needed to check that "
                    "tools/mksizeclasses.py reproduces src/sizeclasses.[ch]\n");
    /* CI installs python3: there it is a failure; elsewhere a skip (77). */
    const char *ci = getenv("CI");
    exit(ci && *ci && strcmp(ci, "false") != 0 ? 1 : 77);
  }
  const char *tmp = getenv("TMPDIR");
  char dir[4096], cmd[16384], want[4096], got[4096];
  CHECK(snprintf(dir, sizeof dir, "%s/goalloc-sizeclasses-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp") < (int)sizeof dir);
  CHECK(mkdtemp(dir) != NULL);
  CHECK(snprintf(cmd, sizeof cmd, "python3 '%s/tools/mksizeclasses.py' --out '%s'", src,
                 dir) < (int)sizeof cmd);
  rc = system(cmd);
  CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0);

  static const char *const names[] = {"sizeclasses.h", "sizeclasses.c"};
  for (int i = 0; i < 2; i++) {
    CHECK(snprintf(want, sizeof want, "%s/src/%s", src, names[i]) < (int)sizeof want);
    CHECK(snprintf(got, sizeof got, "%s/%s", dir, names[i]) < (int)sizeof got);
    size_t want_len = 0, got_len = 0;
    char *w = slurp(want, &want_len), *g = slurp(got, &got_len);
    if (!w || !g || want_len != got_len || memcmp(w, g, want_len) != 0) {
      fprintf(stderr, "test_sizeclasses: %s differs from a fresh run of "
                      "tools/mksizeclasses.py (see %s); rerun the generator\n", want, got);
      exit(1);
    }
    free(w);
    free(g);
    CHECK(unlink(got) == 0);
  }
  CHECK(rmdir(dir) == 0);
}

int main(void) {
  unsigned long offsets = 0;
  check_table();
  check_lookup();
  check_divmagic(&offsets);
  check_regeneration();
  printf("sizeclasses: ok (%d classes match Go, sizes 1..%d looked up, %lu span offsets "
         "divided, generator output reproduced)\n",
         GA_NUM_SIZE_CLASSES - 1, GA_MAX_SMALL_SIZE, offsets);
  return 0;
}
