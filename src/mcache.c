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
 * found); only a span with no free slot at all goes back to mcentral in
 * exchange for another.
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
  ga__fixalloc_init(&cachealloc, sizeof(mcache));
  pthread_key_create(&cache_key, thread_exit);
}

static mcache *allocmcache(void) {
  ga__mheap_lock();
  mcache *c = ga__fixalloc_alloc(&cachealloc);
  if (c != NULL) {
    for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) c->alloc[i] = &ga__emptyspan;
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
  ga__span_collect(s);
  if (ga__loadBits(&s->allocCache) != 0) return true;
  return ga__span_nextWindow(s);
}

/* Swap the used-up span of c->alloc[ci] for one with room (Go's
 * mcache.refill); NULL if out of memory. */
static mspan *refill(mcache *c, unsigned ci) {
  mspan *s = c->alloc[ci];
  if (s != &ga__emptyspan) {
    c->alloc[ci] = &ga__emptyspan;
    ga__mcentral_uncacheSpan(s);
  }
  s = ga__mcentral_cacheSpan(ci, c);
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

void ga__mcache_set_visible(bool visible) {
  mcache *c = ga__tls_cache;
  if (c != &ga__emptycache)
    atomic_store_explicit(&c->gcVisible, visible, memory_order_release);
}

void ga__mcache_releaseAll(mcache *c) {
  if (c == &ga__emptycache) return;
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
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
