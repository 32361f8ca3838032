/*
 * fork.c — fork safety. Before fork every heap lock is taken (mcentrals in
 * index order, then mheap: the documented lock order), so no other thread is
 * half-way through a list or the page allocator when the address space is
 * copied. The parent releases them; the child, whose other threads are gone,
 * resets them.
 *
 * In the child the caches of the parent's other threads still own their
 * spans. Objects in them stay valid and can be freed by the child (the
 * remote-free path needs no owner), but those spans are not allocated from
 * again: a bounded leak of at most one span per class per parent thread.
 *
 * Registration happens after the calling thread's cache is installed, not
 * during heap init: glibc's pthread_atfork may call malloc, which (in the
 * malloc drop-in) is us.
 */
#include <pthread.h>

#include "internal.h"

void ga__mheap_lock(void);
void ga__mheap_unlock(void);
void ga__mheap_resetLockAfterFork(void);
void ga__mcentral_lockAll(void);
void ga__mcentral_unlockAll(void);
void ga__mcentral_resetLocksAfterFork(void);

static void prepare(void) {
  ga__mcentral_lockAll();
  ga__mheap_lock();
}

static void parent(void) {
  ga__mheap_unlock();
  ga__mcentral_unlockAll();
}

static void child(void) {
  ga__mheap_resetLockAfterFork();
  ga__mcentral_resetLocksAfterFork();
}

static _Atomic int registered;

void ga__fork_register_once(void) {
  int expect = 0;
  if (atomic_compare_exchange_strong(&registered, &expect, 1))
    pthread_atfork(prepare, parent, child);
}
