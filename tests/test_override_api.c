/*
 * test_override_api — the malloc family of libgoalloc-override, as a
 * program sees it through LD_PRELOAD: glibc's semantics for every entry
 * point (alignment, errno, posix_memalign's return codes, realloc(p, 0),
 * malloc(0), exact malloc_usable_size), libc's own allocations (strdup,
 * stdio, getaddrinfo, locales, dlerror) and allocations made before main
 * (constructors, a thread started there) being goalloc objects, bad frees
 * reported with a message naming goalloc, and the GOALLOC_VERBOSE and
 * GOALLOC_SHOW_STATS lines.
 *
 * The test re-runs itself with LD_PRELOAD set to the override library
 * (GOALLOC_OVERRIDE_SO, else libgoalloc-override.so in the build directory
 * above this program's) and checks from the outside that it passed and
 * printed both lines. This program calls no ga_* function directly, so
 * nothing of libgoalloc.a (which ctest links in) is pulled into it. Whether
 * a pointer is a goalloc object is asked of the preloaded
 * malloc_usable_size, which validates it (and aborts if it is not).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

/* Hide values from the compiler, which rightly rejects the impossible sizes
 * and bad frees this test makes on purpose. */
static volatile size_t vzero;
#define H(x) ((size_t)(x) + vzero)
static void *hide(void *p) {
  __asm__("" : "+r"(p));
  return p;
}

/* Calls whose failure is tested go through these: a compiler that sees
 * malloc(x) == NULL with the result otherwise unused may assume success. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void *(*volatile v_pvalloc)(size_t) = pvalloc;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;

/* Under the preload, malloc_usable_size is goalloc's (check_aliases makes
 * sure), and goalloc validates the pointer: one that is not a live goalloc
 * object aborts with "goalloc: ga_usable_size(...): invalid pointer". */
#define EXPECT_OURS(p) CHECKF(malloc_usable_size((void *)(p)) > 0, "%s = %p", #p, (void *)(p))

/* ---- allocations before main ------------------------------------------- */

static void *ctor_obj, *ctor_thread_obj;

static void *ctor_thread(void *arg) {
  (void)arg;
  void *p = malloc(300);
  free(malloc(5000));
  return p;
}

__attribute__((constructor(101))) static void early(void) {
  ctor_obj = malloc(40);
  pthread_t t;
  if (pthread_create(&t, NULL, ctor_thread, NULL) == 0)
    pthread_join(t, &ctor_thread_obj);
}

/* ---- the checks (run under LD_PRELOAD) ---------------------------------- */

static void check_malloc_free(void) {
  /* malloc(0): unique, freeable pointers. */
  void *z1 = malloc(0), *z2 = malloc(0);
  CHECK(z1 != NULL && z2 != NULL && z1 != z2);
  EXPECT_OURS(z1);
  free(z1);
  free(z2);
  free(NULL);

  /* Alignment: 16 for requests >= 16, 8 below (glibc's guarantee for the
   * sizes a 16-byte type can have); usable size exact and >= the request. */
  for (size_t n = 1; n <= 70000; n += (n < 1100 ? 1 : n / 7)) {
    unsigned char *p = malloc(n);
    CHECKF(p != NULL, "malloc(%zu)", n);
    CHECKF((uintptr_t)p % (n >= 16 ? 16 : 8) == 0, "malloc(%zu) = %p", n, (void *)p);
    size_t u = malloc_usable_size(p);
    CHECKF(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
    memset(p, 0xab, u); /* the whole usable size is ours to write */
    EXPECT_OURS(p);
    free(p);
  }
  CHECK(malloc_usable_size(NULL) == 0);
  /* 17..24 bytes, several live at once: a slot of Go's 24-byte class (which
   * libgoalloc's own API uses) would be 8-aligned at every other index. */
  for (size_t n = 17; n <= 24; n++) {
    void *q[8];
    for (int k = 0; k < 8; k++) {
      q[k] = malloc(n);
      CHECKF(q[k] != NULL && (uintptr_t)q[k] % 16 == 0, "malloc(%zu) = %p", n, q[k]);
    }
    for (int k = 0; k < 8; k++) free(q[k]);
  }

  /* Impossible sizes: NULL and ENOMEM. */
  errno = 0;
  CHECK(v_malloc(H(SIZE_MAX)) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(v_malloc(H((size_t)1 << 60)) == NULL && errno == ENOMEM);
}

static void check_calloc_realloc(void) {
  for (size_t n = 1; n < 200000; n = n * 3 + 1) {
    unsigned char *p = malloc(n);
    memset(p, 0x5a, n);
    free(p);
    unsigned char *q = calloc(1, n);
    CHECK(q != NULL);
    for (size_t i = 0; i < n; i++) CHECKF(q[i] == 0, "calloc(1, %zu)[%zu]", n, i);
    free(q);
  }
  errno = 0;
  CHECK(v_calloc(H(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
  void *c0 = calloc(0, 0);
  CHECK(c0 != NULL);
  free(c0);

  /* Growth and shrink keep the contents. */
  unsigned char *p = NULL;
  size_t have = 0;
  for (size_t n = 1; n < 300000; n = n * 2 + 3) {
    p = realloc(p, n);
    CHECK(p != NULL);
    EXPECT_OURS(p);
    for (size_t i = 0; i < have; i++) CHECKF(p[i] == (unsigned char)i, "realloc to %zu", n);
    for (size_t i = have; i < n; i++) p[i] = (unsigned char)i;
    have = n;
  }
  p = realloc(p, 10);
  for (size_t i = 0; i < 10; i++) CHECK(p[i] == (unsigned char)i);
  /* realloc(p, 0) frees and returns NULL (glibc); realloc(NULL, n) mallocs. */
  CHECK(v_realloc(p, 0) == NULL);
  p = realloc(NULL, 0);
  CHECK(p != NULL);
  EXPECT_OURS(p);
  /* A failed realloc leaves the object alone. */
  errno = 0;
  CHECK(v_realloc(p, H(SIZE_MAX)) == NULL && errno == ENOMEM);
  EXPECT_OURS(p);
  free(p);

  errno = 0;
  CHECK(v_reallocarray(NULL, H(SIZE_MAX / 2), 4) == NULL && errno == ENOMEM);
  int *a = reallocarray(NULL, 100, sizeof(int));
  CHECK(a != NULL);
  a[99] = 7;
  a = reallocarray(a, 1000, sizeof(int));
  CHECK(a != NULL && a[99] == 7);
  free(a);
}

static void check_aligned(void) {
  for (size_t al = 1; al <= ((size_t)1 << 22); al *= 2) {
    size_t sizes[] = {0, 1, al / 2 + 1, al, 3 * al + 5, 40000};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      void *p = memalign(al, n);
      CHECKF(p != NULL && (uintptr_t)p % al == 0, "memalign(%zu, %zu) = %p", al, n, p);
      CHECK(malloc_usable_size(p) >= n);
      EXPECT_OURS(p);
      free(p);
      p = aligned_alloc(al, n);
      CHECKF(p != NULL && (uintptr_t)p % al == 0, "aligned_alloc(%zu, %zu)", al, n);
      free(p);
      if (al >= sizeof(void *)) {
        void *q = NULL;
        int saved = errno = 1234;
        CHECK(posix_memalign(&q, al, n) == 0);
        CHECK(errno == saved);
        CHECKF(q != NULL && (uintptr_t)q % al == 0, "posix_memalign(%zu, %zu)", al, n);
        free(q);
      }
    }
  }
  /* posix_memalign: EINVAL for an alignment that is not a power-of-two
   * multiple of sizeof(void *), returned without touching errno or *memptr. */
  size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, (size_t)1 << 63 | 8};
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *q = (void *)0x1;
    errno = 1234;
    CHECKF(posix_memalign(&q, bad[i], 16) == EINVAL, "posix_memalign(align %zu)", bad[i]);
    CHECK(errno == 1234 && q == (void *)0x1);
  }
  void *q = (void *)0x1;
  errno = 1234;
  CHECK(posix_memalign(&q, 64, H(SIZE_MAX - 100)) == ENOMEM);
  CHECK(errno == 1234 && q == (void *)0x1);
  CHECK(posix_memalign(&q, (size_t)1 << 62, 100) == ENOMEM);

  /* aligned_alloc: a non-power-of-two alignment is EINVAL (C17, glibc
   * 2.38); memalign rounds it up to the next power of two (glibc). */
  errno = 0;
  CHECK(v_aligned_alloc(H(24), 100) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(v_aligned_alloc(H(0), 100) == NULL && errno == EINVAL);
  void *m = memalign(H(24), 100);
  CHECK(m != NULL && (uintptr_t)m % 32 == 0);
  free(m);
  m = memalign(16, 8); /* 16 even for a small request */
  CHECK(m != NULL && (uintptr_t)m % 16 == 0);
  free(m);
  errno = 0;
  CHECK(v_memalign(64, H(SIZE_MAX - 10)) == NULL && errno == ENOMEM);

  /* valloc: page aligned; pvalloc: whole pages (0 -> one page). */
  long ps = sysconf(_SC_PAGESIZE);
  void *v = valloc(10);
  CHECK(v != NULL && (uintptr_t)v % (uintptr_t)ps == 0);
  free(v);
  v = pvalloc(1);
  CHECK(v != NULL && (uintptr_t)v % (uintptr_t)ps == 0 && malloc_usable_size(v) >= (size_t)ps);
  free(v);
  v = pvalloc(0);
  CHECK(v != NULL && malloc_usable_size(v) >= (size_t)ps);
  free(v);
  errno = 0;
  CHECK(v_pvalloc(H(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
}

/* Every name resolves to the override; glibc's other names share its heap.
 * Only the malloc family is exported (not ga_*, not pthread_create). */
static void check_aliases(void) {
  const char *names[] = {"malloc", "free", "calloc", "realloc", "posix_memalign",
                         "aligned_alloc", "memalign", "valloc", "pvalloc",
                         "cfree", "__libc_malloc", "__libc_free", "__libc_calloc",
                         "__libc_realloc", "__libc_memalign", "__libc_valloc",
                         "__libc_pvalloc", "reallocarray", "malloc_usable_size"};
  const char *so = getenv("LD_PRELOAD");
  void *h = dlopen(so, RTLD_NOW | RTLD_NOLOAD);
  CHECKF(h != NULL, "dlopen(%s, RTLD_NOLOAD): %s", so, dlerror());
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *ours = dlsym(h, names[i]);
    CHECKF(ours != NULL, "the override does not export %s", names[i]);
    CHECKF(dlsym(RTLD_DEFAULT, names[i]) == ours, "%s does not resolve to the override",
           names[i]);
  }
  CHECK(dlsym(h, "ga_malloc") == NULL);
  Dl_info info;
  CHECK(dladdr(dlsym(RTLD_DEFAULT, "pthread_create"), &info) != 0);
  CHECKF(strstr(info.dli_fname, "goalloc") == NULL, "pthread_create is %s's",
         info.dli_fname);
  void *(*lm)(size_t) = (void *(*)(size_t))dlsym(h, "__libc_malloc");
  void (*lf)(void *) = (void (*)(void *))dlsym(h, "__libc_free");
  void (*cf)(void *) = (void (*)(void *))dlsym(h, "cfree");
  void *p = lm(100);
  EXPECT_OURS(p);
  free(p);
  p = malloc(100);
  lf(p);
  p = malloc(100);
  cf(p);
  dlclose(h);
}

/* libc allocates for itself through our malloc. */
static void check_libc_internal(void) {
  char *s = strdup("hello");
  EXPECT_OURS(s);
  free(s);
  FILE *f = fopen("/proc/self/maps", "r");
  CHECK(f != NULL);
  EXPECT_OURS(f);
  char *line = NULL;
  size_t cap = 0;
  CHECK(getline(&line, &cap, f) > 0);
  EXPECT_OURS(line);
  free(line);
  fclose(f);
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_family = AF_UNSPEC};
  struct addrinfo *res = NULL;
  CHECK(getaddrinfo("127.0.0.1", "80", &hints, &res) == 0 && res != NULL);
  EXPECT_OURS(res);
  freeaddrinfo(res);
  locale_t loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  CHECK(loc != (locale_t)0);
  freelocale(loc);
  setlocale(LC_ALL, "C.UTF-8");
  setlocale(LC_ALL, "C");
  /* dlerror's message buffer is malloc'd. */
  CHECK(dlopen("/nonexistent/libnothing.so", RTLD_NOW) == NULL);
  CHECK(dlerror() != NULL);
  char *msg = NULL;
  CHECK(asprintf(&msg, "%s %d", "x", 5) == 3);
  EXPECT_OURS(msg);
  free(msg);
}

static void *thread_churn(void *arg) {
  void **shared = arg;
  for (int i = 0; i < 10000; i++) {
    void *p = malloc((size_t)(i % 900) + 1);
    CHECK(p != NULL);
    free(shared[i % 64]); /* objects of the other thread: cross-thread frees */
    shared[i % 64] = NULL;
    free(p);
  }
  return NULL;
}

static void check_threads(void) {
  EXPECT_OURS(ctor_obj);
  EXPECT_OURS(ctor_thread_obj);
  free(ctor_obj);
  free(ctor_thread_obj);
  void *shared[2][64];
  for (int t = 0; t < 2; t++)
    for (int i = 0; i < 64; i++) shared[t][i] = malloc(100);
  pthread_t th[2];
  for (int t = 0; t < 2; t++) CHECK(pthread_create(&th[t], NULL, thread_churn, shared[t]) == 0);
  for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
}

static void bad_free_stack(void) {
  int x;
  free(hide(&x));
}
static void bad_free_interior(void) {
  char *p = hide(malloc(100));
  free(hide(p + 16));
}
static void *volatile freed_twice;
static void bad_free_double(void) {
  freed_twice = malloc(100);
  free(freed_twice);
  free(freed_twice);
}

static int run_checks(void) {
  check_aliases();
  check_malloc_free();
  check_calloc_realloc();
  check_aligned();
  check_libc_internal();
  check_threads();
  expect_death("free(stack address)", bad_free_stack, "invalid pointer");
  expect_death("free(interior pointer)", bad_free_interior, "inside an object");
  expect_death("double free", bad_free_double, "double free");
  printf("override api: all checks passed\n");
  return 0;
}

/* ---- the outer run ------------------------------------------------------ */

/* This program's path (readlink, not "/proc/self/exe" itself, which names
 * the tool's binary under valgrind). */
static void self_path(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 64);
  CHECK(n > 0);
  buf[n] = '\0';
}

static const char *override_path(char *buf, size_t len) {
  const char *env = getenv("GOALLOC_OVERRIDE_SO");
  if (env != NULL && env[0] != '\0') return env;
  self_path(buf, len);
  char *slash = strrchr(buf, '/');
  CHECK(slash != NULL);
  strcpy(slash, "/../libgoalloc-override.so");
  return buf;
}

int main(int argc, char **argv) {
  (void)argc;
  if (getenv("GA_OVERRIDE_API_CHILD") != NULL) return run_checks();

  char path[PATH_MAX], self[PATH_MAX];
  const char *so = override_path(path, sizeof path);
  self_path(self, sizeof self);
  char *real = realpath(so, NULL);
  CHECKF(real != NULL, "override library %s not found (set GOALLOC_OVERRIDE_SO)", so);
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    setenv("LD_PRELOAD", real, 1);
    setenv("GA_OVERRIDE_API_CHILD", "1", 1);
    setenv("GOALLOC_VERBOSE", "1", 1);
    setenv("GOALLOC_SHOW_STATS", "1", 1);
    execv(self, argv);
    _exit(127);
  }
  close(pipefd[1]);
  static char err[1 << 16];
  size_t len = 0;
  ssize_t n;
  while ((n = read(pipefd[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
  err[len] = '\0';
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s", err);
    CHECKF(0, "the run under LD_PRELOAD=%s failed (status %d)", real, st);
  }
  CHECKF(strstr(err, "goalloc: initialised") != NULL, "no GOALLOC_VERBOSE line:\n%s", err);
  CHECKF(strstr(err, "goalloc: stats (pid") != NULL, "no GOALLOC_SHOW_STATS line:\n%s", err);
  fprintf(stderr, "%s", err);
  free(real);
  return 0;
}
