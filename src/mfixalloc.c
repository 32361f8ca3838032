/*
 * mfixalloc.c — fixed-size allocators for the heap's own metadata (mspan
 * structs, mcaches, span bitmaps), kept off the heap (Go's fixalloc).
 *
 * Invariants: memory is never returned to the OS, so a pointer to a freed
 * record stays readable (the spans map may hold stale span pointers and
 * lock-free readers must not fault). Records are zeroed when handed out.
 * Callers serialise (all users hold the heap lock).
 */
#include <string.h>

#include "internal.h"

/* 256 KiB of metadata per mmap (Go's persistentChunkSize): few system calls,
 * and untouched pages of a chunk cost no memory (MAP_NORESERVE). */
#define FIX_CHUNK (256 * 1024)

void ga__fixalloc_init(fixalloc *f, size_t size) {
  memset(f, 0, sizeof *f);
  f->size = (size + 15) & ~(size_t)15;
}

void *ga__fixalloc_alloc(fixalloc *f) {
  void *p;
  if (f->list != NULL) {
    p = f->list;
    f->list = *(void **)p;
    memset(p, 0, f->size);
  } else {
    if (f->nchunk < f->size) {
      void *c = ga__sys_alloc(FIX_CHUNK);
      if (c == NULL) return NULL;
      f->chunk = (uintptr_t)c;
      f->nchunk = FIX_CHUNK;
      f->sys += FIX_CHUNK;
    }
    p = (void *)f->chunk; /* fresh mmap memory is zero */
    f->chunk += f->size;
    f->nchunk -= f->size;
  }
  f->inuse += f->size;
  return p;
}

void ga__fixalloc_free(fixalloc *f, void *p) {
  f->inuse -= f->size;
  *(void **)p = f->list;
  f->list = p;
}
