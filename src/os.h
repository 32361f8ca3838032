/*
 * os.h — the narrow OS layer: every system call the heap makes goes through
 * one of these primitives (implemented in os_linux.c). Nothing above this
 * layer calls mmap/madvise/write directly.
 *
 * Address-space states (Go's): Reserved (PROT_NONE, no memory) -> Ready
 * (readable/writable; pages appear zero-filled on first touch) -> released
 * (MADV_DONTNEED: back to zero-fill-on-demand, so still known zero).
 */
#ifndef GA_OS_H
#define GA_OS_H

#include <stddef.h>
#include <stdint.h>

/* Reserve `size` bytes of address space (PROT_NONE), aligned to `align` (a
 * power of two), near `hint` if that address is free. Returns 0 on failure.
 * The reservation uses no memory until ga__sys_map. */
uintptr_t ga__sys_reserve(uintptr_t hint, size_t size, size_t align);

/* Reserve `size` bytes of address space that read as zero (PROT_READ; no
 * memory and no commit charge: every page is the shared zero page until
 * ga__sys_map makes part of it writable). Returns 0 on failure. */
uintptr_t ga__sys_reserve_zero(size_t size);

/* Make [p, p+size) of a reservation readable and writable. Fresh pages read
 * as zero. Returns 0 on success, -1 on failure (ENOMEM). */
int ga__sys_map(uintptr_t p, size_t size);

/* Tell the OS the pages in [p, p+size) are unused (MADV_DONTNEED): memory is
 * returned at once and the pages read as zero on their next touch. Returns 0,
 * or -1 if the OS refused (e.g. mlock'ed memory): the pages then keep their
 * contents and must not be treated as zero. */
int ga__sys_unused(uintptr_t p, size_t size);

/* Map `size` bytes of zeroed, readable, writable memory anywhere, for off-heap
 * metadata (MAP_NORESERVE: pages are committed only when touched).
 * Returns NULL on failure. */
void *ga__sys_alloc(size_t size);

/* Return memory from ga__sys_alloc. */
void ga__sys_free(void *p, size_t size);

/* Write a message to stderr without allocating (usable in any state). */
void ga__sys_write_err(const char *msg, size_t len);

/* Monotonic clock in nanoseconds. */
int64_t ga__sys_nanotime(void);

/* Size of an OS page. */
size_t ga__sys_pagesize(void);

/* Number of online CPUs (at least 1). */
int ga__sys_ncpu(void);

/* futex wait/wake on a 32-bit word (private to the process). */
void ga__sys_futex_wait(uint32_t *addr, uint32_t val);
void ga__sys_futex_wake(uint32_t *addr, int n);
/* futex wait that gives up after timeout_ns (<= 0: return at once). */
void ga__sys_futex_wait_ns(uint32_t *addr, uint32_t val, int64_t timeout_ns);

/* Wall-clock time (CLOCK_REALTIME) in nanoseconds since 1970, for statistics
 * that report dates (Go's LastGC). */
int64_t ga__sys_walltime(void);

#endif /* GA_OS_H */
