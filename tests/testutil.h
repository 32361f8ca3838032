/*
 * testutil.h — the few helpers every goalloc test shares: CHECK (fail with
 * file:line and exit 1), a deterministic PRNG, RSS from /proc/self/statm,
 * a scale factor for slow runs (valgrind sets GOALLOC_TEST_SCALE < 1), and a
 * death-test runner that forks, captures stderr and expects SIGABRT.
 */
#ifndef GA_TESTUTIL_H
#define GA_TESTUTIL_H

#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                      \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

#define CHECKF(cond, ...)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__,     \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

typedef struct { uint64_t s; } rng_t;
static inline uint64_t rng_next(rng_t *r) { /* xorshift64* */
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return rng_next(r) % n; }

/* Resident set size in bytes. */
static inline size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Multiply iteration counts by this (GOALLOC_TEST_SCALE, default 1). */
static inline double test_scale(void) {
  const char *e = getenv("GOALLOC_TEST_SCALE");
  double s = e ? atof(e) : 1.0;
  return s > 0 ? s : 1.0;
}
static inline long scaled(long n) {
  long v = (long)(n * test_scale());
  return v < 1 ? 1 : v;
}

/* Running under valgrind (its preload), which knows no userfaultfd. */
static inline int under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

/* Small heaps are marked stop-the-world unless told otherwise: run the
 * test again with concurrent marking forced, unless the environment says
 * otherwise (options are read when the heap starts, before main). Returns
 * only if no re-execution was needed. */
static inline void reexec_concurrent(char **argv) {
  if (getenv("GOALLOC_GC_CONCURRENT") != NULL || under_valgrind()) return;
  setenv("GOALLOC_GC_CONCURRENT", "2", 1);
  execv("/proc/self/exe", argv);
  perror("execv");
  exit(1);
}

/* Fill/verify a deterministic pattern derived from (p, n, seed). */
static inline void fill_pattern(void *p, size_t n, uint64_t seed) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(seed * 131 + i * 7);
}
static inline int check_pattern(const void *p, size_t n, uint64_t seed) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != (unsigned char)(seed * 131 + i * 7)) return 0;
  return 1;
}

/* Run fn in a child; expect it to die of SIGABRT with `expect` in stderr. */
static inline void expect_death(const char *name, void (*fn)(void),
                                const char *expect) {
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    /* Keep core dumps out of the way. */
    signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0); /* reaching here means the bad call was not detected */
  }
  close(pipefd[1]);
  char buf[4096];
  size_t len = 0;
  ssize_t n;
  while ((n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
  buf[len] = 0;
  close(pipefd[0]);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
         "%s: child did not abort (status %d), stderr: %s", name, st, buf);
  CHECKF(strstr(buf, expect) != NULL, "%s: stderr lacks \"%s\": %s", name,
         expect, buf);
  CHECKF(strstr(buf, "goalloc") != NULL, "%s: message does not name goalloc",
         name);
  printf("  %-40s detected: %s", name, buf);
}

#endif
