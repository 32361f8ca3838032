/*
 * override.c — goalloc as the process's malloc: the C half of
 * libgoalloc-override (.so for LD_PRELOAD, .a for link-time replacement).
 * The C++ operators new and delete are in override_cxx.cpp.
 *
 * What it does. Every function of the malloc family is defined here with
 * glibc's name and semantics and forwards to the core heap with the collector
 * off (ga__override_mode below): memory comes back only through free.
 * Mapping:
 *   malloc                     ga__malloc_tc: ga_malloc, but first the
 *                              thread's free cache (mtcache.c)
 *   calloc, realloc            ga_calloc, ga_realloc (scan objects, never the
 *                              tiny allocator: every pointer can be freed one
 *                              by one)
 *   memalign, aligned_alloc,   ga_aligned_alloc (a size class whose size is a
 *   posix_memalign, valloc,    multiple of the alignment, or a large span with
 *   pvalloc                    aligned pages)
 *   free, cfree                ga__free_tc: ga_free, into the free cache
 *                              when it can (validates every pointer; a bad
 *                              free aborts with a message naming goalloc)
 *   malloc_usable_size         ga_usable_size (exact: the slot size)
 *   __libc_malloc & co.        the same, so code that calls glibc's internal
 *                              names directly gets memory our free accepts
 * The forwarding functions are tail calls: in the .so the library's own
 * references to ga_* are bound locally (-Bsymbolic-functions), so malloc is
 * one direct jump away from ga__malloc_tc's fast path.
 *
 * From the very first allocation. With LD_PRELOAD the first call comes from
 * the dynamic loader, before any constructor and before libc itself is
 * initialised; with link-time replacement it may come from libc's start-up
 * code. Nothing here needs initialising: the core initialises lazily on its
 * slow path (ga__ensure_init) using only system calls (os_linux.c), a
 * pthread key (pthread_key_create does not allocate), and registers its
 * pthread_atfork handlers only after the calling thread's cache is
 * installed (fork.c), so a malloc made by pthread_atfork lands on a working
 * heap instead of recursing. This file adds no state to the allocation
 * paths; its own start-up work (getenv, dup of stderr) and the exit summary
 * run in the library constructor and destructor, never inside malloc, and
 * format text by hand and write(2) it rather than use stdio.
 *
 * Options (read once, in the library constructor, since the environment is
 * not set up yet when the loader makes its first allocations):
 *   GOALLOC_VERBOSE=1     one line on stderr saying goalloc is the process's
 *                         malloc (written with write(2))
 *   GOALLOC_SHOW_STATS=1  one line on stderr at exit: allocations, frees,
 *                         live objects, peak heap, peak RSS
 * Neither costs anything inside malloc: the counts are the core's, kept on
 * its slow paths.
 *
 * Namespaces. unshare and setns are wrapped too (solo.c, shared with
 * libgoalloc): entering a user namespace needs a single-threaded process,
 * and the scavenger thread (mgcscavenge.c) must be stopped first.
 *
 * Pointers not ours. With LD_PRELOAD or link-time replacement every
 * allocation the program and libc make after the loader's relocation step
 * is ours, so there are none; memory the loader took from its private
 * minimal allocator before that is never passed to free. Memory obtained
 * from glibc's malloc behind our back (dlsym(RTLD_NEXT, "malloc")) and then
 * given to our free is reported as a bad free and aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define OVR_EXPORT __attribute__((visibility("default")))

/* Referenced by override_cxx.cpp so that a static link that takes the C++
 * operators also takes this file (and with it malloc). */
const char ga__override_c[] = "goalloc malloc override";

/* The core's switch for the malloc drop-in (a weak reference in mgc.c,
 * mstats.c): defined, it keeps the collector out of the process (no thread
 * registration, no stop-the-world signals, no automatic cycles), because
 * the rest of the process's memory is invisible to a collector and every
 * object is freed explicitly; and it leaves the exit summary to this file. */
const int ga__override_mode = 1;
/* Bad-free reports name the function the program called. */
const char ga__override_free_name[] = "free";

/* glibc no longer declares these, but exports them and programs still call
 * them (cfree for old binaries, __libc_* to bypass malloc hooks). */
OVR_EXPORT void cfree(void *p);
OVR_EXPORT void *__libc_malloc(size_t size);
OVR_EXPORT void *__libc_calloc(size_t n, size_t size);
OVR_EXPORT void *__libc_realloc(void *p, size_t size);
OVR_EXPORT void __libc_free(void *p);
OVR_EXPORT void *__libc_memalign(size_t align, size_t size);
OVR_EXPORT void *__libc_valloc(size_t size);
OVR_EXPORT void *__libc_pvalloc(size_t size);

/* ---- statistics (GOALLOC_SHOW_STATS) ----------------------------------- */

static bool stats_on;
/* Where the summary goes: a duplicate of stderr taken at start-up, because
 * many programs close stderr on their way out (coreutils and xz check for
 * write errors that way) before the library destructor runs. Close-on-exec,
 * and numbered high so as not to take a descriptor the program expects. */
static int stats_fd = 2;

static char *fmt_u64(char *buf, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *buf++ = tmp[--n];
  return buf;
}

/* Bytes as "12.3 MiB". */
static char *fmt_mib(char *buf, uint64_t bytes) {
  uint64_t tenths = (bytes * 10 + (1 << 19)) >> 20;
  buf = fmt_u64(buf, tenths / 10);
  *buf++ = '.';
  buf = fmt_u64(buf, tenths % 10);
  return ga__fmt_str(buf, " MiB");
}

/* The one line GOALLOC_SHOW_STATS prints at exit, with the pid because
 * every process of a program (git, gcc) prints its own. Allocation and free
 * counts are the core's (ga_read_stats), which folds a thread's counts in
 * when its cached spans go back to the heap: the exiting thread flushes
 * here, threads that already exited flushed then, and only threads still
 * running at exit are missing their last spans' counts. "Peak heap" is
 * heap_sys, the heap's mapped memory, which never shrinks. One write(2),
 * so lines of concurrent processes do not mix. */
static void print_stats(void) {
  ga_thread_flush();
  ga_stats st;
  st.version = GA_STATS_VERSION;
  if (ga_read_stats(&st) != 0) return;
  struct rusage ru;
  uint64_t maxrss = 0;
  if (getrusage(RUSAGE_SELF, &ru) == 0) maxrss = (uint64_t)ru.ru_maxrss * 1024;

  char buf[512], *e = buf;
  e = ga__fmt_str(e, "goalloc: stats (pid ");
  e = fmt_u64(e, (uint64_t)getpid());
  e = ga__fmt_str(e, "): ");
  e = fmt_u64(e, st.mallocs);
  e = ga__fmt_str(e, " allocations, ");
  e = fmt_u64(e, st.frees);
  e = ga__fmt_str(e, " frees, ");
  e = fmt_u64(e, st.heap_objects);
  e = ga__fmt_str(e, " live; peak heap ");
  e = fmt_mib(e, st.heap_sys);
  e = ga__fmt_str(e, ", in use ");
  e = fmt_mib(e, st.heap_inuse);
  e = ga__fmt_str(e, "; peak RSS ");
  e = fmt_mib(e, maxrss);
  e = ga__fmt_str(e, "\n");
  const char *w = buf;
  while (w < e) {
    ssize_t n = write(stats_fd, w, (size_t)(e - w));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    w += n;
  }
}

/* ---- start-up and exit ------------------------------------------------- */

static bool env_on(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

__attribute__((constructor)) static void override_init(void) {
  ga__ensure_init();
  stats_on = env_on("GOALLOC_SHOW_STATS");
  if (stats_on) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 200);
    if (fd >= 0) stats_fd = fd;
  }
  if (env_on("GOALLOC_VERBOSE")) {
    char buf[128], *e = buf;
    e = ga__fmt_str(e, "goalloc: initialised, malloc is goalloc's (pid ");
    e = fmt_u64(e, (uint64_t)getpid());
    e = ga__fmt_str(e, ")\n");
    ga__sys_write_err(buf, (size_t)(e - buf));
  }
}

__attribute__((destructor)) static void override_fini(void) {
  if (stats_on) print_stats();
}

/* ---- the malloc family ------------------------------------------------- */

/* The free cache's malloc and free (mtcache.c): the drop-in's own. */
OVR_EXPORT void *malloc(size_t size) {
  return ga__malloc_tc(size);
}

OVR_EXPORT void free(void *p) {
  ga__free_tc(p);
}

OVR_EXPORT void cfree(void *p) { free(p); }

OVR_EXPORT void *calloc(size_t n, size_t size) {
  return ga_calloc(n, size);
}

OVR_EXPORT void *realloc(void *p, size_t size) {
  return ga_realloc(p, size);
}

OVR_EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, total);
}

/* glibc's memalign: an alignment that is not a power of two is rounded up
 * to the next one; one that cannot be rounded is EINVAL. Up to 8 every
 * malloc pointer qualifies (16 needs care: malloc gives 8 below 16 bytes). */
OVR_EXPORT void *memalign(size_t align, size_t size) {
  if (align <= 8) return ga__malloc_tc(size);
  if (align & (align - 1)) {
    if (align > (SIZE_MAX >> 1) + 1) {
      errno = EINVAL;
      return NULL;
    }
    align = (size_t)1 << (64 - __builtin_clzll((unsigned long long)align));
  }
  return ga_aligned_alloc(align, size);
}

/* C17 and glibc 2.38: a non-power-of-two alignment (or 0) is EINVAL. */
OVR_EXPORT void *aligned_alloc(size_t align, size_t size) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  return memalign(align, size);
}

/* POSIX: the error is returned, errno is left alone, *memptr is untouched on
 * failure. The alignment must be a power of two multiple of sizeof(void *). */
OVR_EXPORT int posix_memalign(void **memptr, size_t align, size_t size) {
  if (align == 0 || align % sizeof(void *) != 0 ||
      (align & (align - 1)) != 0)
    return EINVAL;
  int saved = errno;
  void *p = memalign(align, size);
  if (p == NULL) {
    int err = errno == EINVAL ? EINVAL : ENOMEM;
    errno = saved;
    return err;
  }
  *memptr = p;
  return 0;
}

OVR_EXPORT void *valloc(size_t size) {
  return memalign(ga__sys_pagesize(), size);
}

/* pvalloc rounds the size up to whole OS pages (0 becomes one page). */
OVR_EXPORT void *pvalloc(size_t size) {
  size_t ps = ga__sys_pagesize();
  if (size > SIZE_MAX - ps) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + ps - 1) & ~(ps - 1);
  return memalign(ps, rounded == 0 ? ps : rounded);
}

OVR_EXPORT size_t malloc_usable_size(void *p) { return ga_usable_size(p); }

/* glibc's internal names, for code that calls them directly. */
OVR_EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
OVR_EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc(n, size); }
OVR_EXPORT void *__libc_realloc(void *p, size_t size) { return realloc(p, size); }
OVR_EXPORT void __libc_free(void *p) { free(p); }
OVR_EXPORT void *__libc_memalign(size_t align, size_t size) {
  return memalign(align, size);
}
OVR_EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
OVR_EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }

