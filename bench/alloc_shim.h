/*
 * alloc_shim.h — route a workload's malloc calls to goalloc.
 *
 * Every workload is written once against the standard malloc API and compiled
 * twice: plain (glibc, or any peer through LD_PRELOAD) and with -DBENCH_GOALLOC,
 * which includes this header after the system headers. The names below are
 * renamed at the preprocessor level, so the goalloc binary calls ga_malloc &c.
 * directly from libgoalloc.a (no PLT, no symbol interposition) while every
 * allocation made by libc itself (stdio, pthread) still goes to glibc.
 *
 * Object-like macros, so that taking the address (`void *(*f)(size_t) =
 * malloc`) is renamed too. Include this only after <stdlib.h> and <malloc.h>.
 */
#ifndef BENCH_ALLOC_SHIM_H
#define BENCH_ALLOC_SHIM_H

#include <stdlib.h>
#include "goalloc.h"

#define malloc             ga_malloc
#define calloc             ga_calloc
#define realloc            ga_realloc
#define free               ga_free
#define aligned_alloc      ga_aligned_alloc
#define malloc_usable_size ga_usable_size

#endif /* BENCH_ALLOC_SHIM_H */
