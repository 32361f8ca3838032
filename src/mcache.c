/*
 * mcache.c — per-thread span caches (Go's mcache.go twin; Go has one per P,
 * goalloc one per thread).
 *
 * A thread's cache holds one span per span class (plus one for tiny blocks)
 * and allocates from it with no lock and no atomic read-modify-write: only
 * the owning thread touches a cached span's allocation window. The pointer to it lives in initial-exec TLS (one load, no
 * __tls_get_addr call). Before a thread's first allocation the pointer holds
 * ga__emptycache, whose slots all point to ga__emptyspan, so the fast path
 * needs no NULL test: it fails over to the slow path, which creates the
 * cache.
 *
 * Refill (Go's mcache.refill): when the window of the cached span is used
 * up, first fold in frees made through freeBits and move the window to the
 * next one with a free slot (wrapping round, so frees behind the window are
 * found). A span with no free slot at all is parked, and the class
 * continues from a parked span that has room again, or else from mcentral.
 *
 * Parked spans (where goalloc departs from Go, after mimalloc's pages that
 * stay with their thread heap). Go's mcache gives a full span back to
 * mcentral; goalloc used to, and then every later free of an object in it,
 * even by the thread that filled it, took the remote path: an atomic
 * fetch-or and a seqlock read, two thirds of the free time of malloc-batch
 * (perf). A parked span stays cached and owned (cache == owner == c, window
 * kept as it was), so the owner frees into it without atomics, exactly as
 * into the current span, and other threads as into any cached span. It is
 * on a per-class ring of the cache (mspan.next/prev; only this thread
 * touches it). Room: a parked span was full when parked, so what it has
 * regained is counted by localFrees since (owner frees, and remote frees or
 * the collector's once folded in: remotePending says some wait). Refill
 * looks at a few parked spans (take_parked) before it asks mcentral.
 *
 * Hoarding is bounded: at most PARK_CLASS_BYTES per class and
 * PARK_CACHE_BYTES per cache; past that the parked span at the head of the
 * ring goes back to mcentral (uncacheSpan: folded, listed, or freed to mheap
 * when empty). Parked spans are returned like the current ones by releaseAll
 * (thread exit, ga_thread_flush), swept in place by the collector like them
 * (ga__mcache_for_each_span), and never move their window while parked: a
 * window moves only in the current span (nextWindow) or under an mcentral
 * lock, so the fork child still finds every open window seqlock in alloc[].
 *
 * Thread exit: a pthread key destructor gives every cached span back
 * (releaseAll) and recycles the mcache record, so programs that create and
 * join many threads do not grow.
 */
#include <pthread.h>

#include "mgc.h"

mcache ga__emptycache = {
    .alloc = {[0 ... GA_NUM_CENTRALS - 1] = &ga__emptyspan},
};

__thread mcache *ga__tls_cache __attribute__((tls_model("initial-exec"))) =
    &ga__emptycache;

static fixalloc cachealloc; /* under the heap lock */
static mcache *allcaches;    /* every live mcache (heap lock), for the GC */
static pthread_key_t cache_key;

void ga__mheap_lock(void);
void ga__mheap_unlock(void);
void ga__fork_register_once(void);

static void thread_exit(void *arg) {
  mcache *c = arg;
  ga__slow_enter();
  ga__mcache_releaseAll(c);
  ga__tls_cache = &ga__emptycache;
  ga__mheap_lock();
  for (mcache **pp = &allcaches; *pp; pp = &(*pp)->nextAll)
    if (*pp == c) {
      *pp = c->nextAll;
      break;
    }
  ga__fixalloc_free(&cachealloc, c);
  ga__mheap_unlock();
  ga__slow_leave();
}

void ga__mcache_init(void) {
  ga__fixalloc_init(&cachealloc, sizeof(mcache) + ga__tc_cacheBytes());
  pthread_key_create(&cache_key, thread_exit);
}

static mcache *allocmcache(void) {
  ga__mheap_lock();
  mcache *c = ga__fixalloc_alloc(&cachealloc);
  if (c != NULL) {
    for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) c->alloc[i] = &ga__emptyspan;
    ga__tc_initCache(c);
    c->nextAll = allcaches;
    atomic_store_explicit(&c->gcVisible, ga__thread_is_registered(),
                          memory_order_relaxed);
    allcaches = c;
  }
  ga__mheap_unlock();
  return c;
}

/* Can span s (cached by the calling thread) give out another slot? Folds in
 * frees made through freeBits and moves the window as needed. */
static bool span_has_room(mspan *s) {
  if (ga__loadBits(&s->allocCache) != 0) return true;
  /* Tested here, not only in collect: the window moves about every second
   * malloc in churn, almost never with remote frees pending. */
  if (atomic_load_explicit(&s->remotePending, memory_order_relaxed)) {
    ga__span_collect(s);
    if (ga__loadBits(&s->allocCache) != 0) return true;
  }
  return ga__span_nextWindow(s);
}

/* Bounds on parked spans: what a thread may keep beyond its current spans.
 * Parked spans must hold the thread's live objects with some slack, or
 * refills find a slot or two each: larson's threads each keep ~1 MiB live,
 * ~260 KiB of it in the 1 KiB class, and with 128 KiB per class and 1 MiB
 * per cache refilled every 3.5 mallocs (every 8 with the bounds below).
 * 4 MiB per cache is tcmalloc's largest thread cache; 1 MiB per class keeps
 * one class from taking all of it. */
#define PARK_CLASS_BYTES ((uintptr_t)1 << 20)
#define PARK_CACHE_BYTES ((uintptr_t)4 << 20)
/* Parked spans a refill looks at, at most: each costs a cache miss or two,
 * one after the other (the ring is a linked list). While the class may
 * still park more, looking at 8 finds a span with a quarter free more often
 * than growing (larson's hoard: 8.8 MiB peak RSS, 10.6 when looking at 1).
 * At the bound any span with room is taken, so looking far only picks a
 * slightly fuller span: churn, which refills every 5 mallocs at the bound,
 * spent half its refill time on this walk (perf), and ran 3-4 % faster
 * looking at 1 or 3 spans instead of 8. */
#define PARK_SCAN 8
#define PARK_SCAN_AT_BOUND 2

static inline uintptr_t span_bytes(const mspan *s) {
  return s->npages * GA_PAGE_SIZE;
}

/* Can class ci park one more span of b bytes without giving one back? */
static inline bool park_has_space(const mcache *c, unsigned ci, uintptr_t b) {
  return (c->nparked[ci] + 1u) * b <= PARK_CLASS_BYTES &&
         c->parkedBytes + b <= PARK_CACHE_BYTES;
}

static void unpark(mcache *c, unsigned ci, mspan *s) {
  ga__spanlist_remove(&c->parked[ci], s);
  c->nparked[ci]--;
  c->parkedBytes -= span_bytes(s);
}

/* Give the parked span at the head of class ci's ring back to mcentral. */
static void release_head(mcache *c, unsigned ci) {
  mspan *s = c->parked[ci];
  unpark(c, ci, s);
  ga__mcentral_uncacheSpan(s);
}

/* Park s, the used-up current span of class ci, or give it back to mcentral
 * when it is not ours to free into (tiny spans, finalizers) or the bounds
 * say so. */
static void park(mcache *c, unsigned ci, mspan *s) {
  uintptr_t b = span_bytes(s);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) != c) {
    ga__mcentral_uncacheSpan(s);
    return;
  }
  while (c->parked[ci] != NULL && !park_has_space(c, ci, b)) release_head(c, ci);
  if (!park_has_space(c, ci, b)) {
    ga__mcentral_uncacheSpan(s); /* other classes hold the budget */
    return;
  }
  s->parkFrees = (uint16_t)s->localFrees;
  ga__spanlist_insert(&c->parked[ci], s);
  c->nparked[ci]++;
  c->parkedBytes += b;
}

/* Slots a parked span has regained since it was parked (full): frees by the
 * owner and folded ones (both count in localFrees). Never more than nelems,
 * since nothing is allocated from a parked span, so 16 bits do. */
static inline unsigned parked_room(const mspan *s) {
  return (uint16_t)((uint16_t)s->localFrees - s->parkFrees);
}

/* A parked span of class ci with room, taken off the ring, or NULL: go to
 * mcentral. Looks at up to PARK_SCAN spans from the head (PARK_SCAN_AT_BOUND
 * when the class may not park more), folding in their
 * pending remote frees (work the owner would do anyway), and takes the first
 * with a quarter of its slots free, else the one with the most room. A span
 * with little room is not worth a refill while the class may still park
 * more (`grow`): a new span then grows the hoard towards its bound, so that
 * a thread whose frees are scattered (larson) does not refill every few
 * allocations. The ring turns past the spans looked at. */
static mspan *take_parked(mcache *c, unsigned ci, bool grow) {
  mspan *s = c->parked[ci], *best = NULL;
  if (s == NULL) return NULL;
  unsigned enough = s->nelems / 4u + 1u, most = 0;
  unsigned scan = grow ? PARK_SCAN : PARK_SCAN_AT_BOUND;
  for (unsigned k = 0; k < scan && k < c->nparked[ci]; k++) {
    if (atomic_load_explicit(&s->remotePending, memory_order_relaxed))
      ga__span_collect(s);
    unsigned room = parked_room(s);
    if (room > most) {
      best = s;
      most = room;
      if (room >= enough) break;
    }
    s = s->next;
  }
  c->parked[ci] = s; /* turn the ring: look at the others first next time */
  if (best == NULL || (most < enough && grow)) return NULL;
  unpark(c, ci, best);
  return best;
}

/* Swap the used-up span of c->alloc[ci] for one with room (Go's
 * mcache.refill): a parked span with room, else one from mcentral; the
 * used-up one is parked. NULL if out of memory. */
static mspan *refill(mcache *c, unsigned ci) {
  mspan *old = c->alloc[ci];
  c->alloc[ci] = &ga__emptyspan;
  /* Look before parking old: it was just found full. */
  mspan *s = take_parked(c, ci,
                         old != &ga__emptyspan &&
                             park_has_space(c, ci, span_bytes(old)));
  if (old != &ga__emptyspan) park(c, ci, old);
  if (s == NULL) s = ga__mcentral_cacheSpan(ci, c);
  if (s == NULL) return NULL;
  c->alloc[ci] = s;
  return s;
}

static uintptr_t nextFree(unsigned ci) {
  ga__ensure_init();
  mcache *c = ga__tls_cache;
  if (GA_UNLIKELY(c == &ga__emptycache)) {
    c = allocmcache();
    if (c == NULL) return 0;
    ga__tls_cache = c;
    /* Both may malloc (glibc's pthread_setspecific callocs for keys >= 32,
     * pthread_atfork may too): only now that c is installed. */
    pthread_setspecific(cache_key, c);
    ga__fork_register_once();
  }
  mspan *s = c->alloc[ci];
  while (s == &ga__emptyspan || !span_has_room(s)) {
    s = refill(c, ci);
    if (s == NULL) return 0;
  }
  return ga__nextFreeFast(s);
}

uintptr_t ga__mcache_nextFree(unsigned ci) {
  ga__slow_enter();
  uintptr_t p = nextFree(ci);
  GA_KEEPALIVE(p);
  ga__slow_leave(); /* may stop for, or run, a collection: p is on our stack */
  return p;
}

/* Visit the mcache of every registered thread (the collector, world
 * stopped; the fork child). The heap lock keeps an exiting, unregistered
 * thread from unlinking and recycling a cache under us. */
static void for_each(bool visible_only, void (*fn)(mcache *c, void *arg),
                     void *arg) {
  ga__mheap_lock();
  for (mcache *c = allcaches; c != NULL; c = c->nextAll)
    if (!visible_only || atomic_load_explicit(&c->gcVisible, memory_order_acquire))
      fn(c, arg);
  ga__mheap_unlock();
}

void ga__mcache_for_each(void (*fn)(mcache *c, void *arg), void *arg) {
  for_each(true, fn, arg);
}

/* Every cache, registered thread or not (the fork child: the drop-in
 * registers no thread at all). */
void ga__mcache_for_each_all(void (*fn)(mcache *c, void *arg), void *arg) {
  for_each(false, fn, arg);
}

static void note_invisible(mcache *c, void *arg) {
  if (!atomic_load_explicit(&c->gcVisible, memory_order_acquire)) *(bool *)arg = true;
}

bool ga__mcache_anyInvisible(void) {
  bool any = false;
  for_each(false, note_invisible, &any);
  return any;
}

void ga__mcache_set_visible(bool visible) {
  mcache *c = ga__tls_cache;
  if (c != &ga__emptycache)
    atomic_store_explicit(&c->gcVisible, visible, memory_order_release);
}

void ga__mcache_for_each_span(mcache *c, void (*fn)(mspan *s, void *arg),
                              void *arg) {
  if (c == &ga__emptycache) return;
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    if (c->alloc[i] != &ga__emptyspan) fn(c->alloc[i], arg);
    mspan *h = c->parked[i], *s = h;
    if (h != NULL) do {
        fn(s, arg);
        s = s->next;
      } while (s != h);
  }
}

void ga__mcache_releaseAll(mcache *c) {
  if (c == &ga__emptycache) return;
  ga__tc_drain(c); /* its entries fold into the spans released below */
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    while (c->parked[i] != NULL) release_head(c, i);
    mspan *s = c->alloc[i];
    if (s == &ga__emptyspan) continue;
    c->alloc[i] = &ga__emptyspan;
    ga__mcentral_uncacheSpan(s);
  }
  c->tiny = 0;
  c->tinyoffset = 0;
  ga__stats_tiny(c->tinyAllocs);
  c->tinyAllocs = 0;
}

void ga_thread_flush(void) {
  ga__slow_enter();
  ga__mcache_releaseAll(ga__tls_cache);
  ga__slow_leave();
}
