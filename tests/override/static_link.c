/*
 * static_link — link-time replacement, for the override tests (run.sh
 * static_link). Linked with libgoalloc-override.a (no LD_PRELOAD): malloc
 * and every libc function that allocates internally must now hand out
 * goalloc objects, from a constructor (before main, and from a thread it
 * starts) onwards. ga_owns comes from the same archive, so it asks the heap
 * that served the program.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goalloc.h"

static int checks, failures; /* checks: to stderr only */

static void expect_ours(const char *what, const void *p) {
  checks++;
  if (p == NULL || !ga_owns(p)) {
    failures++;
    fprintf(stderr, "static_link: %s (%p) is not a goalloc object\n", what, p);
  }
}

static void *early, *early_thread_obj;

static void *early_thread(void *arg) {
  (void)arg;
  return malloc(77);
}

__attribute__((constructor)) static void before_main(void) {
  early = malloc(123);
  pthread_t t;
  if (pthread_create(&t, NULL, early_thread, NULL) == 0)
    pthread_join(t, &early_thread_obj);
}

int main(void) {
  expect_ours("malloc in a constructor", early);
  expect_ours("malloc in a thread started by a constructor", early_thread_obj);
  free(early);
  free(early_thread_obj);

  void *p = malloc(10);
  expect_ours("malloc", p);
  p = realloc(p, 5000);
  expect_ours("realloc", p);
  free(p);
  p = calloc(10, 10);
  expect_ours("calloc", p);
  free(p);
  if (posix_memalign(&p, 256, 1000) == 0) {
    expect_ours("posix_memalign", p);
    free(p);
  }
  p = aligned_alloc(64, 640);
  expect_ours("aligned_alloc", p);
  free(p);
  p = memalign(4096, 10);
  expect_ours("memalign", p);
  free(p);

  char *s = strdup("libc allocates this");
  expect_ours("strdup", s);
  free(s);
  if (asprintf(&s, "%d %s", 42, "asprintf") > 0) {
    expect_ours("asprintf", s);
    free(s);
  }
  FILE *f = fopen("/proc/self/statm", "r");
  expect_ours("fopen's FILE", f);
  char *line = NULL;
  size_t cap = 0;
  if (f != NULL && getline(&line, &cap, f) > 0) expect_ours("getline", line);
  free(line);
  if (f != NULL) fclose(f);
  DIR *d = opendir("/");
  expect_ours("opendir's DIR", d);
  if (d != NULL) closedir(d);

  if (failures == 0)
    printf("static link: all checks ok\n");
  else
    printf("static link: %d of %d checks failed\n", failures, checks);
  fprintf(stderr, "static_link: %d checks\n", checks);
  return failures != 0;
}
