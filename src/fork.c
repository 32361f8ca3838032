/*
 * fork.c — fork safety. Before fork every heap lock is taken (mcentrals in
 * index order, then mheap: the documented lock order), so no other thread is
 * half-way through a list or the page allocator when the address space is
 * copied. The parent releases them; the child, whose other threads are gone,
 * resets them.
 *
 * In the child the caches of the parent's other threads still own their
 * spans, current and parked. Objects in them stay valid and can be freed by
 * the child (the remote-free path needs no owner), but those spans are not
 * allocated from again: a bounded leak of one span per class and the parked
 * spans (at most 1 MiB, mcache.c) per parent thread. A window seqlock left
 * open can only be on a current span (parked spans never move their
 * window), so closing those of alloc[] is enough.
 *
 * Registration happens after the calling thread's cache is installed, not
 * during heap init: glibc's pthread_atfork may call malloc, which (in the
 * malloc drop-in) is us.
 */
#include <pthread.h>

#include "mgc.h"

void ga__mheap_lock(void);
void ga__mheap_unlock(void);
void ga__mheap_resetLockAfterFork(void);
void ga__mcentral_lockAll(void);
void ga__mcentral_unlockAll(void);
void ga__mcentral_resetLocksAfterFork(void);

void ga__gc_fork_prepare(void);
void ga__gc_fork_parent(void);
void ga__gc_fork_child(void);

static void prepare(void) {
  ga__gc_fork_prepare();
  ga__mcentral_lockAll();
  ga__mheap_lock();
}

static void parent(void) {
  ga__mheap_unlock();
  ga__mcentral_unlockAll();
  ga__gc_fork_parent();
}

/* A parent thread that was moving a span's window when fork copied the
 * address space left its seqlock odd, and it does not exist in the child:
 * close every such section, or a free into that span would spin forever. */
static void close_window(mcache *c, void *arg) {
  (void)arg;
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    mspan *s = c->alloc[i];
    uint32_t q = atomic_load_explicit(&s->windowSeq, memory_order_relaxed);
    if (q & 1) atomic_store_explicit(&s->windowSeq, q + 1, memory_order_relaxed);
  }
}

static void child(void) {
  ga__mheap_resetLockAfterFork();
  ga__mcentral_resetLocksAfterFork();
  ga__mcache_for_each_all(close_window, NULL);
  ga__gc_fork_child();
}

static _Atomic int registered;

void ga__fork_register_once(void) {
  int expect = 0;
  if (atomic_compare_exchange_strong(&registered, &expect, 1))
    pthread_atfork(prepare, parent, child);
}
