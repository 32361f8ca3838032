/*
 * ns_solo — a program that grows its heap and then enters namespaces that
 * only a single-threaded process may enter, for the override tests (run.sh
 * ns_solo). An ordinary C program; with and without libgoalloc-override it
 * must print the same lines.
 *
 * Under goalloc a heap past 4 MiB has a second thread, the scavenger, and
 * the kernel refuses unshare(CLONE_NEWUSER) and setns into a mount
 * namespace from a process with two threads (EINVAL): the override's
 * wrappers stop the thread first. Each call's result is printed as "ok" or
 * the errno name, so a machine that forbids user namespaces (EPERM, both
 * runs) still compares equal; the thread count is read from
 * /proc/self/status without allocating. Afterwards the heap grows again and
 * the program checks that it still works (the scavenger restarts; its
 * thread count is not printed, since glibc has none).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOBJ 100000

/* Threads of this process, from /proc/self/status (no malloc: a stack
 * buffer and read(2)). */
static int threads(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *t = strstr(buf, "\nThreads:");
  return t ? atoi(t + 9) : -1;
}

static const char *result(int r) {
  if (r == 0) return "ok";
  switch (errno) {
  case EINVAL: return "EINVAL";
  case EPERM: return "EPERM";
  case ENOSPC: return "ENOSPC";
  case EUSERS: return "EUSERS";
  case ENOSYS: return "ENOSYS";
  default: return "other error";
  }
}

int main(void) {
  /* About 13 MiB live: past the 4 MiB after which goalloc's scavenger
   * thread runs. */
  char **v = malloc(NOBJ * sizeof *v);
  if (v == NULL) return 1;
  for (int i = 0; i < NOBJ; i++) {
    v[i] = malloc(128);
    if (v[i] == NULL) return 1;
    memset(v[i], i & 0xff, 128);
  }
  int mnt = open("/proc/self/ns/mnt", O_RDONLY);
  int r = setns(mnt, CLONE_NEWNS); /* our own mount namespace again */
  printf("setns(mnt): %s, threads %d\n", result(r), threads());
  if (mnt >= 0) close(mnt);
  r = unshare(CLONE_NEWUSER);
  printf("unshare(CLONE_NEWUSER): %s, threads %d\n", result(r), threads());
  r = unshare(CLONE_NEWUTS | CLONE_NEWNS); /* needs no single thread */
  printf("unshare(CLONE_NEWUTS|CLONE_NEWNS): %s\n", result(r));

  /* The heap still works: free everything, grow past the old size. */
  long sum = 0;
  for (int i = 0; i < NOBJ; i++) {
    sum += (unsigned char)v[i][127];
    free(v[i]);
  }
  free(v);
  for (int k = 0; k < 4; k++) {
    char *b = malloc(24 << 20);
    if (b == NULL) return 1;
    memset(b, k, 24 << 20);
    sum += b[12345];
    free(b);
  }
  printf("checksum %ld\n", sum);
  return 0;
}
