/*
 * fork_threads — fork from a multi-threaded parent, for the override tests
 * (run.sh fork). An ordinary C program; with and without
 * libgoalloc-override it must print the same lines.
 *
 * Four threads allocate and free without pause (small and large objects,
 * so that they hold cached spans and take the heap locks) while the main
 * thread forks 40 times. Each child, whose copies of the other threads are
 * gone mid-operation, must be able to:
 *   - free every object the parent's threads had published (memory in spans
 *     that the vanished threads' caches still own),
 *   - allocate and free on its own, from new threads too,
 * and exit 0. A deadlock on a heap lock left held across fork is caught by
 * alarm() in the child.
 *
 * Slot protocol: a thread takes its slot's old object with an atomic
 * exchange (slot becomes NULL) before freeing it and publishes the new one
 * after malloc returns, so at any instant of the fork a non-NULL slot is a
 * live object the child may free exactly once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4
#define SLOTS 512
#define NFORKS 40

static _Atomic(void *) slots[NTHREADS][SLOTS];
static atomic_int stop;

static uint64_t lcg(uint64_t *x) {
  *x = *x * 6364136223846793005ull + 1442695040888963407ull;
  return *x >> 33;
}

static size_t pick_size(uint64_t r) {
  if (r % 64 == 0) return 40000 + r % 300000; /* large: a span of its own */
  return 1 + r % 2048;
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t x = 12345 + (uint64_t)id;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t r = lcg(&x);
    int i = (int)(r % SLOTS);
    void *old = atomic_exchange(&slots[id][i], NULL);
    free(old);
    size_t n = pick_size(r >> 7);
    char *p = malloc(n);
    if (p == NULL) abort();
    memset(p, id, n < 64 ? n : 64);
    atomic_store(&slots[id][i], p);
  }
  return NULL;
}

static void *child_worker(void *arg) {
  uint64_t x = (uint64_t)(intptr_t)arg;
  void *keep[64] = {0};
  for (int i = 0; i < 20000; i++) {
    uint64_t r = lcg(&x);
    free(keep[r % 64]);
    keep[r % 64] = malloc(pick_size(r >> 7));
    if (keep[r % 64] == NULL) abort();
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  return NULL;
}

static int child(void) {
  alarm(20); /* a lock left held across fork would hang here */
  /* Free what the parent's threads published (their spans are owned by
   * caches whose threads do not exist in the child). */
  int freed = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < SLOTS; i++) {
      void *p = atomic_load(&slots[t][i]);
      if (p != NULL) {
        free(p);
        freed++;
      }
    }
  if (freed < SLOTS) return 2; /* the threads had barely started */
  /* Allocate on our own, and from new threads. */
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&th[i], NULL, child_worker, (void *)(intptr_t)(i + 1)))
      return 3;
  child_worker((void *)(intptr_t)99);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  char *s = strdup("child done");
  if (s == NULL || strcmp(s, "child done") != 0) return 4;
  free(s);
  return 0;
}

int main(void) {
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i)) return 1;
  /* Let every slot fill before the first fork. */
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < SLOTS; i++)
      while (atomic_load(&slots[t][i]) == NULL) usleep(100);

  int ok = 0;
  for (int f = 0; f < NFORKS; f++) {
    /* The parent allocates too, so its own cache is mid-use at fork. */
    void *mine = malloc(100 + (size_t)f * 1000);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) _exit(child());
    int st;
    if (waitpid(pid, &st, 0) != pid) return 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
      ok++;
    else if (WIFSIGNALED(st))
      fprintf(stderr, "fork %d: child killed by signal %d\n", f, WTERMSIG(st));
    else
      fprintf(stderr, "fork %d: child exited with %d\n", f, WEXITSTATUS(st));
    free(mine);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < SLOTS; i++) free(atomic_load(&slots[t][i]));
  printf("forks from a 5-thread parent: %d of %d children ok\n", ok, NFORKS);
  return ok == NFORKS ? 0 : 1;
}
