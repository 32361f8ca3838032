/*
 * test_nextfreefast — nextFreeFast / nextFreeIndex / rewind / collect against
 * a reference model (a plain array of "allocated" flags and a cursor) on fake
 * spans of every interesting nelems, from random starting bitmaps.
 *
 * Model: allocating returns the lowest free slot at or after the cursor and
 * moves the cursor past it; rewind sets the cursor to 0. nextFreeFast must
 * agree whenever it answers, and may decline (return 0) only at a 64-slot
 * window boundary or when the window has no free slot (Go's contract).
 */
#include "internal.h"
#include "testutil.h"

#define MAXN 1024

static _Atomic uint64_t bits[3][MAXN / 64];

static void setup(mspan *s, unsigned nelems, uintptr_t elemsize,
                  const int *model) {
  memset(s, 0, sizeof *s);
  memset(bits, 0, sizeof bits);
  s->startAddr = 0x7f0000000000;
  s->nelems = (uint16_t)nelems;
  s->elemsize = elemsize;
  s->allocBits = bits[0];
  s->gcmarkBits = bits[1];
  s->freeBits = bits[2];
  s->allocCount = 0;
  for (unsigned i = 0; i < nelems; i++)
    if (model[i]) {
      bits[0][i / 64] |= (uint64_t)1 << (i % 64);
      s->allocCount++;
    }
  ga__span_rewind(s);
}

static long model_next(const int *model, unsigned nelems, unsigned cursor) {
  for (unsigned i = cursor; i < nelems; i++)
    if (!model[i]) return i;
  return -1;
}

int main(void) {
  static const unsigned sizes[] = {1, 2, 8, 63, 64, 65, 85, 127, 128, 129,
                                   170, 256, 341, 512, 1000, 1024};
  rng_t r = {0x9e3779b97f4a7c15ull};
  long fast_hits = 0, fast_declines = 0, slow_calls = 0;
  for (unsigned si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    unsigned n = sizes[si];
    for (int trial = 0; trial < 200; trial++) {
      static int model[MAXN];
      int density = (int)rng_below(&r, 101); /* percent allocated */
      for (unsigned i = 0; i < n; i++) model[i] = (int)rng_below(&r, 100) < density;
      mspan s;
      uintptr_t elemsize = 16 * (1 + rng_below(&r, 8));
      setup(&s, n, elemsize, model);
      unsigned cursor = 0;
      for (int step = 0; step < 3 * (int)n; step++) {
        unsigned op = (unsigned)rng_below(&r, 10);
        if (op == 0) { /* start over, as refill does after frees */
          ga__span_rewind(&s);
          cursor = 0;
          continue;
        }
        if (op == 1) { /* a remote free of a random allocated slot */
          unsigned i = (unsigned)rng_below(&r, n);
          if (!model[i] || (bits[2][i / 64] >> (i % 64) & 1)) continue;
          bits[2][i / 64] |= (uint64_t)1 << (i % 64);
          atomic_store(&s.remotePending, 1);
          if (rng_below(&r, 2)) {
            unsigned before = s.allocCount;
            unsigned freed = ga__span_collect(&s);
            CHECK(freed >= 1 && s.allocCount == before - freed);
            for (unsigned k = 0; k < n; k++) {
              int a = (int)(bits[0][k / 64] >> (k % 64) & 1);
              if (model[k] && !a) model[k] = 0;
              CHECK(model[k] == a);
            }
            ga__span_rewind(&s);
            cursor = 0;
          }
          continue;
        }
        long want = model_next(model, n, cursor);
        uintptr_t p = ga__nextFreeFast(&s);
        unsigned got;
        if (p != 0) {
          fast_hits++;
          CHECK((p - s.startAddr) % elemsize == 0);
          got = (unsigned)((p - s.startAddr) / elemsize);
          CHECKF((long)got == want, "n=%u fast got %u want %ld", n, got, want);
        } else {
          fast_declines++;
          if (want >= 0) {
            /* Declining is allowed only if the answer is outside the
             * current window or sits right at the window's end. */
            unsigned fi = s.freeindex;
            CHECKF((unsigned)want / 64 != fi / 64 || ((unsigned)want + 1) % 64 == 0,
                   "n=%u declined with slot %ld free in window (fi=%u)", n, want, fi);
          }
          slow_calls++;
          unsigned idx = ga__span_nextFreeIndex(&s);
          if (want < 0) {
            CHECK(idx == n);
            continue;
          }
          CHECKF((long)idx == want, "n=%u slow got %u want %ld", n, idx, want);
          bits[0][idx / 64] |= (uint64_t)1 << (idx % 64);
          s.allocCount++;
          got = idx;
        }
        model[got] = 1;
        cursor = got + 1;
        CHECK(s.freeindex == cursor);
        /* allocBits stays exact. */
        CHECK(bits[0][got / 64] >> (got % 64) & 1);
      }
    }
  }
  printf("nextfreefast: ok (%ld fast hits, %ld declines, %ld slow calls)\n",
         fast_hits, fast_declines, slow_calls);
  return 0;
}
