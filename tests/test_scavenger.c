/*
 * test_scavenger.c — returning memory to the OS (src/mgcscavenge.c).
 *
 * Each scenario runs in a child process (this binary re-executed with the
 * scenario's name and its own environment), so that every one starts from
 * an empty heap and a scavenger in a known state:
 *
 *   pages     the page allocator's scavenger queries (find / take in a
 *             range) against a brute-force model, on fake address ranges
 *   burst     RSS falls back to within 64 MiB of the pre-burst level within
 *             5 s after a 1 GiB burst of mixed small and 8 KiB objects is
 *             freed, while the program sleeps and makes no call. Run twice:
 *             collector off (GOALLOC_GOGC=off) and on (default)
 *   churn     freeing and re-allocating 256 MiB every 100 ms releases
 *             (almost) nothing: the scavenger does not make a busy program
 *             fault its memory back in. Timed with the scavenger on and off
 *             for the report (not asserted: timings are noisy)
 *   reuse     memory given back (by ga_release_memory and by the background
 *             thread) is reused correctly: contents written and read back,
 *             calloc returns zeros over released pages
 *   hugepage  a 2 MiB region more than half in use keeps its free pages in
 *             the background; ga_release_memory takes them
 *   limit     with GOALLOC_MEMLIMIT and the background thread off, the
 *             allocation that finds the heap over the limit releases the
 *             excess itself (eager scavenging)
 */
#include "testutil.h"

#include <errno.h>
#include <time.h>

#include "goalloc.h"
#include "internal.h"
#include "mpagealloc.h"

void ga__mheap_lock(void);
void ga__mheap_unlock(void);

#define MiB ((size_t)1 << 20)
#define PG ((uintptr_t)8192)

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static ga_stats stats(void) {
  ga_stats s;
  s.version = GA_STATS_VERSION;
  CHECK(ga_read_stats(&s) == 0);
  return s;
}

/* Pointer arrays live in the goalloc heap (ga_malloc: scanned), so that the
 * collector, when on, sees every object as reachable. */
static void **ptr_array(size_t n) {
  void **v = ga_malloc(n * sizeof *v);
  CHECK(v != NULL);
  memset(v, 0, n * sizeof *v);
  return v;
}

/* ---- running scenarios in children ----------------------------------------- */

static const char *self_path;

/* Run this binary with argv[1] = mode and the extra environment entries
 * (NAME=value); its output goes to ours. Returns its exit status. */
static int run_child(const char *mode, const char *const *env) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (const char *const *e = env; e && *e; e++) putenv((char *)*e);
    execl(self_path, self_path, mode, (char *)NULL);
    _exit(127);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- pages: the page allocator's scavenger queries ------------------------ */

#define HEAP ((uintptr_t)0x100000000000)
#define NPAGES ((uintptr_t)4 * 512) /* 4 chunks (16 MiB) */

enum { FREE_UNSCAV, FREE_SCAV, ALLOCATED };
static unsigned char model[NPAGES];

/* Highest free-unscavenged page below `below` in the model, or 0. */
static uintptr_t model_find(uintptr_t below) {
  uintptr_t i = below <= HEAP ? 0 : (below - HEAP) / PG;
  if (i > NPAGES) i = NPAGES;
  while (i > 0) {
    i--;
    if (model[i] == FREE_UNSCAV) return HEAP + i * PG;
  }
  return 0;
}

static void scenario_pages(void) {
  uint64_t seed = 12345;
  rng_t r = {seed};
  ga__pages_reset();
  ga__pages_init();
  ga__pages_grow(HEAP, NPAGES);
  memset(model, FREE_SCAV, sizeof model);
  CHECK(ga__pages_find_unscavenged(HEAP + NPAGES * PG) == 0);
  uintptr_t b;
  CHECK(ga__pages_take_unscavenged_in(HEAP, HEAP + NPAGES * PG, 64, &b) == 0);

  /* Fill everything, then free a hand-made pattern. */
  uintptr_t scav;
  CHECK(ga__pages_alloc(NPAGES, 1, &scav) == HEAP);
  memset(model, ALLOCATED, sizeof model);
  ga__pages_free(HEAP + 10 * PG, 5);     /* pages 10..14 */
  ga__pages_free(HEAP + 510 * PG, 4);    /* 510..513: across a chunk edge */
  ga__pages_free(HEAP + 1500 * PG, 1);   /* 1500 */
  memset(model + 10, FREE_UNSCAV, 5);
  memset(model + 510, FREE_UNSCAV, 4);
  model[1500] = FREE_UNSCAV;
  CHECK(ga__pages_find_unscavenged(HEAP + NPAGES * PG) == HEAP + 1500 * PG);
  CHECK(ga__pages_find_unscavenged(HEAP + 1500 * PG) == HEAP + 513 * PG);
  CHECK(ga__pages_find_unscavenged(HEAP + 512 * PG) == HEAP + 511 * PG);
  CHECK(ga__pages_find_unscavenged(HEAP + 11 * PG) == HEAP + 10 * PG);
  CHECK(ga__pages_find_unscavenged(HEAP + 10 * PG) == 0);
  /* take in a range: bounded below by lo, above by hi, by max_pages. */
  CHECK(ga__pages_take_unscavenged_in(HEAP + 512 * PG, HEAP + 1024 * PG, 64, &b) == 2);
  CHECK(b == HEAP + 512 * PG); /* 512..513 only: lo cuts the run */
  ga__pages_free_scavenged(b, 2);
  memset(model + 512, FREE_SCAV, 2);
  CHECK(ga__pages_take_unscavenged_in(HEAP, HEAP + 1024 * PG, 1, &b) == 1);
  CHECK(b == HEAP + 511 * PG);
  ga__pages_free_scavenged(b, 1);
  model[511] = FREE_SCAV;
  CHECK(ga__pages_take_unscavenged_in(HEAP, HEAP + 13 * PG, 64, &b) == 3);
  CHECK(b == HEAP + 10 * PG); /* hi cuts the run: 10..12 */
  ga__pages_free(b, 3);       /* the OS refused: back as unscavenged */
  CHECK(ga__pages_verify() == 0);

  /* Random operations against the model. */
  for (int step = 0; step < 20000; step++) {
    uintptr_t i = rng_below(&r, NPAGES), n = 1 + rng_below(&r, 40);
    if (i + n > NPAGES) n = NPAGES - i;
    int op = (int)rng_below(&r, 4);
    if (op == 0) { /* free an allocated run */
      bool ok = true;
      for (uintptr_t k = 0; k < n; k++) ok &= model[i + k] == ALLOCATED;
      if (!ok) continue;
      ga__pages_free(HEAP + i * PG, n);
      memset(model + i, FREE_UNSCAV, n);
    } else if (op == 1) { /* allocate */
      uintptr_t p = ga__pages_alloc(n, 1, &scav);
      if (p == 0) continue;
      memset(model + (p - HEAP) / PG, ALLOCATED, n);
    } else if (op == 2) { /* find below a random bound */
      uintptr_t below = HEAP + i * PG;
      CHECKF(ga__pages_find_unscavenged(below) == model_find(below),
             "step %d below page %lu", step, (unsigned long)i);
    } else { /* take within a random range, then release it */
      uintptr_t lo = HEAP + i * PG, hi = lo + n * PG;
      uintptr_t max = 1 + rng_below(&r, 300);
      uintptr_t top = model_find(hi);
      uintptr_t got = ga__pages_take_unscavenged_in(lo, hi, max, &b);
      if (top < lo) {
        CHECK(got == 0);
        continue;
      }
      /* Expected: the run below top, within lo and max. */
      uintptr_t t = (top - HEAP) / PG, len = 0;
      while (len < max && t - len >= i && model[t - len] == FREE_UNSCAV) {
        len++;
        if (t - len + 1 == 0) break;
      }
      CHECKF(got == len && b == top - (len - 1) * PG, "step %d take", step);
      ga__pages_free_scavenged(b, got);
      memset(model + (b - HEAP) / PG, FREE_SCAV, got);
    }
    if (step % 1000 == 0) CHECK(ga__pages_verify() == 0);
  }
  CHECK(ga__pages_verify() == 0);
  ga__pages_reset();
  printf("  pages: find/take against the model: ok\n");
}

/* ---- burst ------------------------------------------------------------------ */

/* One burst: `bytes` of objects, a quarter of them (by count) 8 KiB, the
 * rest 16..1040 bytes, every byte written; then all freed. Returns the
 * number of objects. */
static size_t burst(size_t bytes, uint64_t seed) {
  rng_t r = {seed};
  size_t cap = bytes / 256, n = 0, total = 0;
  void **v = ptr_array(cap);
  while (total < bytes && n < cap) {
    uint64_t x = rng_next(&r);
    size_t sz = (x & 3) == 0 ? 8192 : 16 + (size_t)((x >> 8) % 1025);
    char *p = ga_malloc(sz);
    CHECK(p != NULL);
    memset(p, (int)(n & 0xff), sz);
    v[n++] = p;
    total += sz;
  }
  for (size_t i = 0; i < n; i++) ga_free(v[i]);
  ga_free(v);
  return n;
}

static void scenario_burst(void) {
  /* The pre-burst level: the heap initialised and a little in use. */
  void *keep = ga_malloc(1000);
  size_t before = rss_bytes();
  double t0 = now_s();
  size_t n = burst((size_t)1 << 30, 7);
  double t1 = now_s();
  size_t peak = rss_bytes();
  /* From here: no call into goalloc until the deadline (reading RSS uses
   * fopen, which is libc's malloc, not ours). */
  double waited = -1;
  size_t rss = peak;
  while (now_s() - t1 < 5.0) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    rss = rss_bytes();
    if (rss <= before + 64 * MiB) {
      waited = now_s() - t1;
      break;
    }
  }
  ga_stats s = stats();
  printf("  burst: %zu objects, 1 GiB in %.2f s; RSS %zu MiB before, %zu MiB "
         "peak, %zu MiB %s %.2f s after the frees; %llu MiB released in the "
         "background, %.1f ms of madvise, %llu collections\n",
         n, t1 - t0, before / MiB, peak / MiB, rss / MiB,
         waited >= 0 ? "at" : "still, after", waited >= 0 ? waited : 5.0,
         (unsigned long long)(s.scav_bg_bytes / MiB), s.scav_ns / 1e6,
         (unsigned long long)s.num_gc);
  CHECKF(peak > before + 900 * MiB, "the burst did not raise RSS (%zu MiB)",
         peak / MiB);
  CHECKF(waited >= 0, "RSS %zu MiB did not fall to within 64 MiB of %zu MiB "
         "in 5 s", rss / MiB, before / MiB);
  ga_free(keep);
}

/* ---- churn ------------------------------------------------------------------ */

/* One attempt; returns false if the machine was too busy for the attempt to
 * mean anything (a round took so long that its memory really did sit idle
 * for most of the scavenger's delay). */
static bool churn_attempt(void) {
  const size_t bytes = 256 * MiB;
  const int rounds = 20;
  rng_t r = {99};
  size_t cap = bytes / 256;
  void **v = ptr_array(cap);
  double work = 0, worst = 0, last = now_s();
  ga_stats s0 = stats();
  for (int round = 0; round < rounds; round++) {
    double a = now_s();
    if (a - last > worst) worst = a - last;
    last = a;
    size_t n = 0, total = 0;
    while (total < bytes && n < cap) {
      uint64_t x = rng_next(&r);
      size_t sz = (x & 3) == 0 ? 8192 : 16 + (size_t)((x >> 8) % 1025);
      char *p = ga_malloc(sz);
      CHECK(p != NULL);
      p[0] = p[sz - 1] = 1;
      v[n++] = p;
      total += sz;
    }
    for (size_t i = 0; i < n; i++) ga_free(v[i]);
    work += now_s() - a;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  ga_stats s = stats();
  uint64_t rel = s.scav_bg_bytes - s0.scav_bg_bytes;
  uint64_t calls = s.scav_madvises - s0.scav_madvises;
  const char *sc = getenv("GOALLOC_SCAVENGE");
  printf("  churn (scavenger %s): %d rounds of 256 MiB, %.3f s of allocation "
         "work; %llu KiB released in %llu calls\n",
         sc && strcmp(sc, "0") == 0 ? "off" : "on", rounds, work,
         (unsigned long long)(rel >> 10), (unsigned long long)calls);
  ga_free(v);
  if (rel > 16 * MiB && worst > 0.5) {
    printf("  churn: a round took %.0f ms (machine busy): attempt ignored\n",
           worst * 1000);
    return false;
  }
  /* A few MiB may go: the tail of the heap that one round happens not to
   * reach. Anything like a round's worth would mean thrashing. */
  CHECKF(rel <= 16 * MiB, "the scavenger released %llu MiB of memory in use "
         "every 100 ms (slowest round %.0f ms)", (unsigned long long)(rel / MiB),
         worst * 1000);
  return true;
}

static void scenario_churn(void) {
  for (int attempt = 0; attempt < 3; attempt++)
    if (churn_attempt()) return;
  printf("  churn: the machine was too busy in 3 attempts; not judged\n");
}

/* ---- reuse ------------------------------------------------------------------ */

static void check_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    CHECKF(p[i] == 0, "calloc byte %zu of %zu is %u", i, n, p[i]);
}

static void reuse_round(bool background) {
  const size_t n = 20000;
  void **v = ptr_array(n);
  size_t sizes[] = {16, 48, 256, 1024, 8192, 40000, 100000};
  for (size_t i = 0; i < n; i++) {
    size_t sz = sizes[i % 7];
    v[i] = ga_malloc(sz);
    CHECK(v[i] != NULL);
    memset(v[i], 0xa5, sz); /* dirty every page */
  }
  for (size_t i = 0; i < n; i++) ga_free(v[i]);
  ga_stats s0 = stats();
  if (background) {
    /* Wait for the thread (GOALLOC_SCAVENGE_DELAY_MS is short here). */
    double t = now_s();
    ga_stats s;
    do {
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
      s = stats();
    } while (s.heap_released < s.heap_idle * 9 / 10 && now_s() - t < 5);
    CHECKF(s.heap_released >= s.heap_idle * 9 / 10,
           "background: %llu of %llu idle bytes released",
           (unsigned long long)s.heap_released, (unsigned long long)s.heap_idle);
  } else {
    size_t got = ga_release_memory();
    ga_stats s = stats();
    CHECK(got > 0);
    /* Everything idle is released, but for the one region (2 MiB) the
     * background thread may be releasing at this moment. */
    CHECKF(s.heap_idle - s.heap_released <= 2 * MiB, "released %llu, idle %llu",
           (unsigned long long)s.heap_released, (unsigned long long)s.heap_idle);
    CHECK(s.heap_released > s0.heap_released);
    CHECK(s.scav_forced_bytes >= got);
  }
  /* calloc over released pages: zero (they are not cleared again). */
  for (size_t i = 0; i < n; i++) {
    size_t sz = sizes[(i + 3) % 7];
    v[i] = ga_calloc(1, sz);
    CHECK(v[i] != NULL);
    check_zero(v[i], sz);
    fill_pattern(v[i], sz, i);
  }
  for (size_t i = 0; i < n; i++) CHECK(check_pattern(v[i], sizes[(i + 3) % 7], i));
  for (size_t i = 0; i < n; i++) ga_free(v[i]);
  /* malloc over released pages: writable, contents kept. */
  ga_release_memory();
  for (size_t i = 0; i < n; i++) {
    size_t sz = sizes[(i + 5) % 7];
    v[i] = ga_malloc(sz);
    CHECK(v[i] != NULL);
    fill_pattern(v[i], sz, i * 3);
  }
  for (size_t i = 0; i < n; i++) CHECK(check_pattern(v[i], sizes[(i + 5) % 7], i * 3));
  for (size_t i = 0; i < n; i++) ga_free(v[i]);
  ga_free(v);
}

static void scenario_reuse(void) {
  reuse_round(false);
  reuse_round(true);
  ga_stats s = stats();
  printf("  reuse: contents and calloc zeros over released memory: ok "
         "(%llu MiB forced, %llu MiB background)\n",
         (unsigned long long)(s.scav_forced_bytes / MiB),
         (unsigned long long)(s.scav_bg_bytes / MiB));
}

/* ---- hugepage --------------------------------------------------------------- */

static void scenario_hugepage(void) {
  /* Grow the heap past its first 4 MiB chunk, which starts the thread. */
  ga_free(ga_malloc(8 * MiB));
  /* A 2 MiB-aligned region: 192 pages in use (75 %), 64 pages freed. */
  const size_t region = 2 * MiB;
  char *dense = ga_aligned_alloc(region, 192 * 8192);
  CHECK(dense != NULL && ((uintptr_t)dense & (region - 1)) == 0);
  char *tail = ga_malloc(64 * 8192);
  CHECK(tail != NULL);
  if ((uintptr_t)tail != (uintptr_t)dense + 192 * 8192) {
    printf("  hugepage: heap layout differs from the expected one; skipped\n");
    return;
  }
  memset(dense, 1, 192 * 8192);
  memset(tail, 1, 64 * 8192);
  /* And a region that becomes entirely free, for contrast. */
  char *whole = ga_aligned_alloc(region, region);
  CHECK(whole != NULL);
  memset(whole, 1, region);
  ga_free(tail);
  ga_free(whole);
  struct timespec ts = {0, 600 * 1000 * 1000}; /* delay is 50 ms here */
  nanosleep(&ts, NULL);
  ga__mheap_lock();
  uintptr_t unscav_tail = ga__pages_find_unscavenged((uintptr_t)dense + region);
  uintptr_t unscav_whole = ga__pages_find_unscavenged((uintptr_t)whole + region);
  ga__mheap_unlock();
  CHECKF(unscav_tail == (uintptr_t)dense + region - 8192,
         "the free quarter of a dense region was released");
  CHECKF(unscav_whole < (uintptr_t)whole || unscav_whole >= (uintptr_t)whole + region,
         "a fully free region was not released");
  ga_release_memory();
  ga__mheap_lock();
  unscav_tail = ga__pages_find_unscavenged((uintptr_t)dense + region);
  ga__mheap_unlock();
  CHECKF(unscav_tail < (uintptr_t)dense,
         "ga_release_memory left a dense region's free pages");
  ga_free(dense);
  printf("  hugepage: a region 75 %% in use kept its free pages in the "
         "background; ga_release_memory took them: ok\n");
}

/* ---- limit ------------------------------------------------------------------ */

static void scenario_limit(void) {
  /* GOALLOC_MEMLIMIT=64MiB, GOALLOC_SCAVENGE=0: only allocations release. */
  void **v = ptr_array(64);
  for (int i = 0; i < 64; i++) {
    v[i] = ga_malloc(4 * MiB);
    CHECK(v[i] != NULL);
    memset(v[i], 1, 4 * MiB);
  }
  for (int i = 0; i < 64; i++) ga_free(v[i]);
  ga_stats s = stats();
  uint64_t retained = s.heap_sys - s.heap_released;
  CHECKF(retained > 200 * MiB, "retained %llu MiB before the next allocation",
         (unsigned long long)(retained / MiB));
  void *p = ga_malloc(MiB); /* this allocation finds the heap over the limit */
  s = stats();
  retained = s.heap_sys - s.heap_released;
  printf("  limit: after freeing 256 MiB, one allocation released %llu MiB; "
         "%llu MiB retained (limit 64 MiB)\n",
         (unsigned long long)(s.scav_eager_bytes / MiB),
         (unsigned long long)(retained / MiB));
  CHECK(s.scav_eager_bytes >= 150 * MiB);
  CHECK(s.scav_bg_bytes == 0);
  CHECKF(retained <= 64 * MiB, "retained %llu MiB over a 64 MiB limit",
         (unsigned long long)(retained / MiB));
  ga_free(p);
  ga_free(v);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv) {
  self_path = "/proc/self/exe";
  if (argc > 1) {
    const char *m = argv[1];
    if (strcmp(m, "pages") == 0) scenario_pages();
    else if (strcmp(m, "burst") == 0) scenario_burst();
    else if (strcmp(m, "churn") == 0) scenario_churn();
    else if (strcmp(m, "reuse") == 0) scenario_reuse();
    else if (strcmp(m, "hugepage") == 0) scenario_hugepage();
    else if (strcmp(m, "limit") == 0) scenario_limit();
    else {
      fprintf(stderr, "unknown scenario %s\n", m);
      return 2;
    }
    return 0;
  }
  static char exe[4096];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  CHECK(k > 0);
  exe[k] = 0;
  self_path = exe;

  static const char *const gc_off[] = {"GOALLOC_GOGC=off", NULL};
  static const char *const gc_on[] = {"GOALLOC_GOGC=100", NULL};
  static const char *const scav_off[] = {"GOALLOC_GOGC=off", "GOALLOC_SCAVENGE=0", NULL};
  static const char *const short_delay[] = {"GOALLOC_GOGC=off",
                                            "GOALLOC_SCAVENGE_DELAY_MS=50", NULL};
  static const char *const limit[] = {"GOALLOC_GOGC=off", "GOALLOC_SCAVENGE=0",
                                      "GOALLOC_MEMLIMIT=64MiB", NULL};
  struct {
    const char *mode;
    const char *const *env;
  } runs[] = {
      {"pages", gc_off},       {"burst", gc_off},         {"burst", gc_on},
      {"churn", gc_off},       {"churn", scav_off},       {"reuse", short_delay},
      {"hugepage", short_delay}, {"limit", limit},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    printf("%s (%s):\n", runs[i].mode, runs[i].env[0]);
    fflush(stdout);
    int st = run_child(runs[i].mode, runs[i].env);
    if (st != 0) {
      printf("  FAILED (exit status %d)\n", st);
      failed = 1;
    }
  }
  return failed;
}
