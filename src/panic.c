/*
 * panic.c — fatal reports: bad pointers passed by the user and internal
 * "impossible" states. Formats without malloc or stdio (the heap may be the
 * process's malloc, and may be mid-operation), writes to stderr, aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *ga__fmt_str(char *buf, const char *s) {
  size_t n = strlen(s);
  memcpy(buf, s, n);
  return buf + n;
}

char *ga__fmt_hex(char *buf, uintptr_t v) {
  char tmp[2 + 16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  *buf++ = '0';
  *buf++ = 'x';
  while (n > 0) *buf++ = tmp[--n];
  return buf;
}

void ga__bad_pointer(const char *fn, const void *p, const char *what,
                     uintptr_t objbase) {
  char buf[512], *e = buf;
  e = ga__fmt_str(e, "goalloc: ");
  e = ga__fmt_str(e, fn);
  e = ga__fmt_str(e, "(");
  e = ga__fmt_hex(e, (uintptr_t)p);
  e = ga__fmt_str(e, "): ");
  e = ga__fmt_str(e, what);
  if (objbase != 0) {
    e = ga__fmt_str(e, " (the object starts at ");
    e = ga__fmt_hex(e, objbase);
    e = ga__fmt_str(e, ")");
  }
  e = ga__fmt_str(e, "; aborting\n");
  ga__sys_write_err(buf, (size_t)(e - buf));
  abort();
}

void ga__throw(const char *what) {
  char buf[256], *e = buf;
  e = ga__fmt_str(e, "goalloc: fatal error: ");
  e = ga__fmt_str(e, what);
  e = ga__fmt_str(e, "\n");
  ga__sys_write_err(buf, (size_t)(e - buf));
  abort();
}
