/*
 * lock_futex.c — the contended half of ga_mutex (Go's lock_futex.go twin).
 * The uncontended path is inline in internal.h. State: 0 unlocked,
 * 1 locked, 2 locked and someone may sleep in the kernel. A few spins first,
 * because heap critical sections are short (a list pop, a bitmap update).
 */
#include "internal.h"

void ga__mutex_lock_slow(ga_mutex *m) {
  for (int spin = 0; spin < 64; spin++) {
    uint32_t z = 0;
    if (atomic_load_explicit(&m->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&m->state, &z, 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return;
    __builtin_ia32_pause();
  }
  /* Mark the lock contended; whoever unlocks sees 2 and wakes a sleeper. */
  while (atomic_exchange_explicit(&m->state, 2, memory_order_acquire) != 0)
    ga__sys_futex_wait((uint32_t *)&m->state, 2);
}
