/*
 * test_nextfreefast — nextFreeFast and the window slow path (nextWindow,
 * collect) against a reference model on fake spans of every interesting
 * nelems, from random starting bitmaps.
 *
 * Model: an array of "allocated" flags and the current window w. Allocating
 * returns the lowest free slot of window w; when w has none, the next window
 * (cyclically) with a free slot becomes current; when no window has one the
 * span is full. A remote free marks a slot free once collected.
 * nextFreeFast must agree whenever it answers and decline only when window w
 * has no free slot.
 */
#include "internal.h"
#include "testutil.h"

#define MAXN 2048

static _Atomic uint64_t bits[2][MAXN / 64];
static _Atomic uint8_t marks[MAXN];

static void setup(mspan *s, unsigned nelems, uintptr_t elemsize,
                  const int *model) {
  memset(s, 0, sizeof *s);
  memset(bits, 0, sizeof bits);
  memset(marks, 0, sizeof marks);
  s->startAddr = 0x7f0000000000;
  s->nelems = (uint16_t)nelems;
  s->elemsize = elemsize;
  s->allocBits = bits[0];
  s->gcmarkBytes = marks;
  s->freeBits = bits[1];
  for (unsigned i = 0; i < nelems; i++)
    if (model[i]) bits[0][i / 64] |= (uint64_t)1 << (i % 64);
  ga__span_initRoom(s); /* as mcentral's have_span does */
  ga__span_loadWindow(s, 0);
  atomic_store(&s->cache, (mcache *)&ga__emptycache); /* "cached" */
}

static long model_window_free(const int *model, unsigned n, unsigned w) {
  for (unsigned i = w * 64; i < n && i < w * 64 + 64; i++)
    if (!model[i]) return i;
  return -1;
}

int main(void) {
  static const unsigned sizes[] = {1, 2, 8, 63, 64, 65, 85, 127, 128, 129,
                                   170, 256, 341, 512, 1000, 1024, 1365, 2048};
  rng_t r = {0x9e3779b97f4a7c15ull};
  long fast_hits = 0, window_moves = 0, fulls = 0, collected = 0;
  for (unsigned si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    unsigned n = sizes[si], nw = (n + 63) / 64;
    for (int trial = 0; trial < 200; trial++) {
      static int model[MAXN];
      int density = (int)rng_below(&r, 101);
      for (unsigned i = 0; i < n; i++) model[i] = (int)rng_below(&r, 100) < density;
      mspan s;
      uintptr_t elemsize = 16 * (1 + rng_below(&r, 8));
      setup(&s, n, elemsize, model);
      unsigned w = 0;
      for (int step = 0; step < 3 * (int)n; step++) {
        if (rng_below(&r, 8) == 0) { /* a free through freeBits */
          unsigned i = (unsigned)rng_below(&r, n);
          if (!model[i] || (bits[1][i / 64] >> (i % 64) & 1)) continue;
          bits[1][i / 64] |= (uint64_t)1 << (i % 64);
          atomic_store(&s.remotePending, 1);
          if (rng_below(&r, 2)) {
            collected += ga__span_collect(&s);
            for (unsigned k = 0; k < n; k++) {
              if (bits[1][k / 64] >> (k % 64) & 1) CHECK(0); /* drained */
              if (model[k] && !ga__span_isAllocated(&s, k)) model[k] = 0;
              CHECKF(model[k] == (int)ga__span_isAllocated(&s, k), "slot %u", k);
            }
          }
          continue;
        }
        long want = model_window_free(model, n, w);
        uintptr_t p = ga__nextFreeFast(&s);
        if (p == 0) {
          CHECKF(want < 0, "n=%u declined with slot %ld free in window %u", n, want, w);
          bool moved = ga__span_nextWindow(&s);
          long expect_w = -1;
          for (unsigned k = 1; k <= nw; k++)
            if (model_window_free(model, n, (w + k) % nw) >= 0) {
              expect_w = (w + k) % nw;
              break;
            }
          CHECK(moved == (expect_w >= 0));
          if (!moved) {
            fulls++;
            /* Full: everything allocated except uncollected frees. */
            for (unsigned k = 0; k < n; k++) CHECK(ga__span_isAllocated(&s, k) == (bool)model[k]);
            ga__span_loadWindow(&s, 0);
            w = 0;
            continue;
          }
          window_moves++;
          w = (unsigned)expect_w;
          CHECK(s.freeindex == w * 64);
          continue;
        }
        fast_hits++;
        CHECK((p - s.startAddr) % elemsize == 0);
        unsigned got = (unsigned)((p - s.startAddr) / elemsize);
        CHECKF((long)got == want, "n=%u got %u want %ld", n, got, want);
        model[got] = 1;
        CHECK(ga__span_isAllocated(&s, got));
      }
      /* syncWindow + recount agree with the model. */
      ga__span_syncWindow(&s);
      atomic_store(&s.cache, NULL);
      ga__span_recount(&s);
      unsigned cnt = 0;
      for (unsigned k = 0; k < n; k++) cnt += (unsigned)model[k] | (unsigned)(bits[1][k / 64] >> (k % 64) & 1);
      CHECK(s.allocCount == cnt);
    }
  }
  printf("nextfreefast: ok (%ld fast hits, %ld window moves, %ld full spans, %ld collected)\n",
         fast_hits, window_moves, fulls, collected);
  return 0;
}
