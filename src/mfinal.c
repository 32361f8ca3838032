/*
 * mfinal.c — finalizers (Go's mfinal.go twin).
 *
 * ga_set_finalizer(obj, fn, arg) records (obj -> fn, arg) in an off-heap
 * hash table. Semantics, as in Go:
 *   - Everything a finalizable object points to stays alive while the object
 *     has a finalizer (marking scans its contents as a root without marking
 *     the object itself: Go's span roots). So if A points to B and both have
 *     finalizers, A's runs first; a cycle of finalizable objects is never
 *     collected.
 *   - When marking finds the object itself unreachable, it is marked again
 *     (resurrected for one more cycle), its record moves to the run queue,
 *     and the finalizer thread calls fn(obj, arg) once, outside every heap
 *     lock and with the world running, so fn may allocate. Queued objects
 *     are roots until their finalizer has run; the next cycle collects the
 *     object if fn did not make it reachable again.
 *   - ga_free of an object with a finalizer drops the finalizer: a span
 *     holding such an object has its fast-path owner cleared
 *     (ga__mcentral_markSpecial), so every free in it takes the slow path,
 *     which calls ga__final_forget.
 *
 * Locking: final_lock guards the table and the queue. It is only taken
 * inside a slow-path region (ga__slow_enter), so a stopped thread never holds
 * it and the collector can walk the table with the world stopped.
 */
#include <string.h>

#include "mgc.h"

typedef struct frec {
  uintptr_t obj; /* 0 = empty slot, 1 = deleted */
  void (*fn)(void *, void *);
  void *arg;
} frec;

static ga_mutex final_lock;
static frec *table;
static size_t tcap, tcount, tused; /* tused counts deleted slots too */
static frec *queue;
static size_t qcap, qlen;
static _Atomic uint32_t qepoch;
static ga_bgthread runner; /* the finalizer thread */

static size_t hash(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull); }

static frec *lookup(uintptr_t obj) {
  if (tcap == 0) return NULL;
  for (size_t i = hash(obj) & (tcap - 1);; i = (i + 1) & (tcap - 1)) {
    if (table[i].obj == obj) return &table[i];
    if (table[i].obj == 0) return NULL;
  }
}

static bool grow_table(void) {
  size_t ncap = tcap ? tcap * 2 : 1024;
  frec *nt = ga__sys_alloc(ncap * sizeof(frec));
  if (nt == NULL) return false;
  for (size_t i = 0; i < tcap; i++) {
    if (table[i].obj <= 1) continue;
    size_t j = hash(table[i].obj) & (ncap - 1);
    while (nt[j].obj != 0) j = (j + 1) & (ncap - 1);
    nt[j] = table[i];
  }
  if (table) ga__sys_free(table, tcap * sizeof(frec));
  table = nt;
  tcap = ncap;
  tused = tcount;
  return true;
}

static void remove_rec(frec *r) {
  r->obj = 1; /* tombstone */
  tcount--;
}

static void *run_finalizers(void *arg);

/* Registered: finalizers allocate, and the objects they get are roots. */
static void start_runner(void) { ga__bgthread_start(&runner, run_finalizers, true); }

int ga_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg) {
  uintptr_t base;
  mspan *s = ga__findObject((uintptr_t)obj, &base);
  if (s == NULL || base != (uintptr_t)obj || s->tiny) return -1;
  ga__slow_enter();
  ga_mutex_lock(&final_lock);
  frec *r = lookup(base);
  int ret = 0;
  if (fn == NULL) {
    if (r) remove_rec(r);
  } else if (r) {
    r->fn = fn;
    r->arg = arg;
  } else if ((tused + 1) * 2 > tcap && !grow_table()) {
    ret = -1;
  } else {
    size_t i = hash(base) & (tcap - 1);
    while (table[i].obj > 1) i = (i + 1) & (tcap - 1);
    if (table[i].obj == 0) tused++;
    table[i] = (frec){base, fn, arg};
    tcount++;
  }
  ga_mutex_unlock(&final_lock);
  if (fn != NULL && ret == 0 && !s->specials) ga__mcentral_markSpecial(s);
  ga__slow_leave();
  if (fn != NULL && ret == 0) start_runner();
  return ret;
}

void ga__final_forget(uintptr_t obj) {
  ga_mutex_lock(&final_lock);
  frec *r = lookup(obj);
  if (r) remove_rec(r);
  ga_mutex_unlock(&final_lock);
}

/* ---- with the world stopped ----------------------------------------------- */

void ga__final_mark_referents(void) {
  for (size_t i = 0; i < tcap; i++)
    if (table[i].obj > 1) ga__gc_mark_from(table[i].obj, false);
}

void ga__final_queue_dead(void) {
  for (size_t i = 0; i < tcap; i++) {
    frec *r = &table[i];
    if (r->obj <= 1 || ga__gc_is_marked(r->obj)) continue;
    if (qlen == qcap) {
      size_t ncap = qcap ? qcap * 2 : 256;
      frec *nq = ga__sys_alloc(ncap * sizeof(frec));
      if (nq == NULL) continue; /* try again next cycle */
      if (queue) {
        memcpy(nq, queue, qlen * sizeof(frec));
        ga__sys_free(queue, qcap * sizeof(frec));
      }
      queue = nq;
      qcap = ncap;
    }
    queue[qlen++] = *r;
    ga__gc_mark_from(r->obj, true); /* alive until the finalizer has run */
    remove_rec(r);
  }
}

void ga__final_mark_queued(void) {
  for (size_t i = 0; i < qlen; i++) ga__gc_mark_from(queue[i].obj, true);
}

void ga__final_wake(void) {
  ga__slow_enter();
  ga_mutex_lock(&final_lock);
  size_t n = qlen;
  ga_mutex_unlock(&final_lock);
  ga__slow_leave();
  if (n == 0) return;
  atomic_fetch_add_explicit(&qepoch, 1, memory_order_release);
  ga__sys_futex_wake((uint32_t *)&qepoch, 1);
}

/* ---- the finalizer thread ------------------------------------------------- */

static void *run_finalizers(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    if (ga__bgthread_exiting(&runner)) return NULL;
    ga__slow_enter();
    ga_mutex_lock(&final_lock);
    frec r = {0, NULL, NULL};
    if (qlen > 0) r = queue[--qlen];
    ga_mutex_unlock(&final_lock);
    ga__slow_leave();
    if (r.fn != NULL) {
      void *volatile keep = (void *)r.obj; /* on our stack: stays alive */
      r.fn(keep, r.arg);
      continue;
    }
    uint32_t e = atomic_load_explicit(&qepoch, memory_order_acquire);
    if (e == seen) {
      ga__sys_futex_wait((uint32_t *)&qepoch, seen);
      continue;
    }
    seen = e;
  }
  return NULL;
}

int ga__final_runner_alive(void) { return ga__bgthread_alive(&runner); }

/* End the runner (unshare and setns: solo.c) after the finalizer it is
 * running, if any; false if there was none to stop, or if the caller is the
 * runner itself (a finalizer calling unshare). */
bool ga__final_runner_stop(void) {
  if (ga__bgthread_alive(&runner) && pthread_equal(pthread_self(), runner.tid))
    return false;
  return ga__bgthread_stop(&runner, &qepoch);
}

/* Start it again after ga__final_runner_stop (finalizers may be queued). */
void ga__final_runner_start(void) { start_runner(); }

/* The runner did not survive the fork: the child's first finalizer (set
 * or queued with ga__final_runner_start) starts its own. */
void ga__final_after_fork_child(void) { ga__bgthread_forget(&runner); }

size_t ga__final_pending(void) {
  ga__slow_enter();
  ga_mutex_lock(&final_lock);
  size_t n = qlen;
  ga_mutex_unlock(&final_lock);
  ga__slow_leave();
  return n;
}
