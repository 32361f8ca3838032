/*
 * mtcache.c — the free cache: per thread and span class, a LIFO of objects
 * the thread freed, which its next mallocs of the class hand out again
 * (glibc's tcache idea, in arrays). Go has no twin: Go never frees one
 * object. On in the malloc drop-in only (its malloc, free, new and delete:
 * ga__malloc_tc, ga__free_tc), where the collector never runs.
 *
 * Why: a program that replaces objects it has just read (a server's
 * requests, threads-churn) gets back the object whose lines are still in
 * its cache, and neither the free nor the malloc touches a span record's
 * second line or a bitmap word. The owner's free pushes when the object's
 * span is its own and the bin has room; malloc pops before it looks at the
 * span's window (the fast paths are in malloc.c and mfree.c; the bin,
 * tcbin, in internal.h).
 *
 * What an entry is: an object of a span the thread owned when it was
 * pushed, still allocated in the span's bitmap, its key word (GA_TCKEY,
 * bytes 8..15) set to ga__tcKey. So the spans' bookkeeping is untouched,
 * and a span holding entries never goes back to the heap.
 *
 * Bad frees stay detected, by the key word:
 *   - ga__tcKey: in a free cache. Any free of it, by any thread, is
 *     reported as a double free (checked_object: a live object carries
 *     the key only if the program copied it there out of freed memory),
 *     and so are realloc and malloc_usable_size of it, as use after free;
 *   - ~ga__tcKey: freed to a span while the free cache is on (the owner's
 *     free with a full bin, the fold of other threads' frees in
 *     ga__span_collect, a drain). A free that finds it goes to the exact
 *     check against the bitmap (free_keyed), not into the bin: the object
 *     may have been handed out again by the window with the mark intact;
 *   - malloc clears the key word when it pops;
 *   - a pointer that is not the start of a slot that exists is caught by
 *     the push's slot test, from the spans-map entry.
 * Not detected, unlike the bitmap path: a double free of an object whose
 * key word the program overwrote in between (glibc's tcache has the same
 * blind spot), and a free of the start of a never-allocated slot of the
 * thread's own span (its word carries no key). GOALLOC_TCACHE=0 turns the
 * free cache off.
 *
 * Bounds: objects of 16 bytes (the key word needs a second word) to
 * TC_MAX_SIZE, at most TC_CLASS_BYTES of them a class and TC_MAX_ENTRIES
 * entries (all bins of a cache: GA_TC_SLOTS). A thread's bins are drained
 * on exit and by ga_thread_flush (through freeBits: the spans may have left
 * the cache since). Entries of threads that did not survive a fork stay
 * allocated in the child. Off in a valgrind build: memcheck would see the
 * key words of freed objects written.
 *
 * Statistics: a pop counts as a free and a malloc of its class; an entry is
 * live until then (its bitmap says so), or until a drain frees it.
 */
#include <sys/auxv.h>

#include "mgc.h"
#include "options.h"

/* 64 KiB a class: malloc-batch's batches of 1000 objects of 8..512 B put up
 * to 63 of a class in the free cache at once; past the cap frees are marked
 * into the span and handed out again marked, and their next free takes
 * free_keyed (32 KiB: malloc-batch 1.134 of the build without a free cache,
 * 64 KiB: 1.077; larson 1.055 and 1.031). At most 1.06 MB a thread. */
enum {
  TC_MAX_SIZE = 1024,
  TC_CLASS_BYTES = 64 << 10,
  TC_MAX_ENTRIES = 128,
};

uint64_t ga__tcKey;
bool ga__tcOn;
static uint16_t tcCap[GA_NUM_SPAN_CLASSES];  /* per span class */
static uint16_t tcBase[GA_NUM_SPAN_CLASSES]; /* first entry in mcache.tcslots */


static uint64_t key_seed(void) {
  uint64_t k = 0;
  const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
  if (r != NULL) memcpy(&k, r + 8, sizeof k);
  k ^= (uint64_t)ga__sys_nanotime() * 0x9e3779b97f4a7c15ull;
  k ^= (uint64_t)(uintptr_t)&k;
  return k;
}

void ga__tc_init(void) {
  extern const int ga__override_mode __attribute__((weak));
  ga__tcKey = key_seed() | 1; /* never 0 */
  if (ga__tcKey == ~(uint64_t)0) ga__tcKey ^= 2; /* nor ~0: its twin would be 0 */
  ga__tcOn = &ga__override_mode != NULL && !GA_VALGRIND_BUILD &&
             ga__option_get(GA_OPT_TCACHE) != 0;
  if (!ga__tcOn) return;
  const unsigned maxn = TC_MAX_ENTRIES, bytes = TC_CLASS_BYTES, maxsize = TC_MAX_SIZE;
  unsigned used = 0;
  /* Scan span classes of 16 bytes and up (GA_TC_KEYED): the drop-in's
   * malloc asks for those. */
  for (unsigned cl = 2; cl < GA_NUM_SIZE_CLASSES; cl++) {
    unsigned size = ga__class_to_size[cl];
    if (size > maxsize) break;
    unsigned n = bytes / size;
    if (n > maxn) n = maxn;
    tcCap[cl << 1] = (uint16_t)n;
    tcBase[cl << 1] = (uint16_t)used;
    used += n;
  }
  if (used > GA_TC_SLOTS) ga__throw("mtcache: GA_TC_SLOTS is smaller than the caps");
}

/* The entry arrays follow their mcache record, only when the free cache is
 * on: libgoalloc's records stay 30 KB smaller. (An array of its own, from a
 * fixalloc, made malloc-pairs 1.037x slower than right after the record, 9
 * rounds: its lines fall elsewhere against the bins'.) */
size_t ga__tc_cacheBytes(void) { return ga__tcOn ? GA_TC_SLOTS * sizeof(uintptr_t) : 0; }

void ga__tc_initCache(mcache *c) {
  if (!ga__tcOn) return;
  c->tcslots = (uintptr_t *)(c + 1);
  for (unsigned i = 0; i < GA_NUM_SPAN_CLASSES; i++) {
    tcbin *b = &c->tc[i];
    b->slots = c->tcslots + tcBase[i];
    b->cap = tcCap[i];
    if (b->cap == 0) continue;
    unsigned cl = i >> 1;
    b->limit = (uint16_t)(ga__class_to_nelems[cl] * ga__class_to_size[cl]);
  }
}

void ga__tc_drain(mcache *c) {
  for (unsigned i = 0; i < GA_NUM_SPAN_CLASSES; i++) {
    tcbin *b = &c->tc[i];
    if (b->pops) {
      ga__stats_tcache(i >> 1, b->pops);
      b->pops = 0;
    }
    uintptr_t a = b->top;
    uint32_t n = b->count;
    b->top = 0;
    b->count = 0;
    while (a != 0) {
      /* A free through freeBits (the spans may have left the cache),
       * marked freed like any (see above). */
      GA_TCKEY(a) = ~ga__tcKey;
      ga__free_slow(a);
      a = n > 0 ? b->slots[--n] : 0;
    }
  }
}
