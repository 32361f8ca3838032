/*
 * options.c — every tunable of goalloc, in one table (mimalloc's options
 * table, with Go's names where Go has the knob).
 *
 * Each row says, once: the environment variable, the default, how its text
 * is parsed (and so which values are valid), and the public setter if there
 * is one. docs/tuning.md and the README's "Tuning" section describe the same
 * rows for users; keep them in step.
 *
 * When the environment is read. Once, by ga__options_init, which heap
 * initialisation calls first (and any accessor calls if it comes earlier).
 * getenv does not allocate, the parsers use no library call that does, and
 * messages are formatted on the stack and written with write(2), so reading
 * the options is safe inside the very first malloc of a process (the malloc
 * drop-in) and cannot recurse into the heap. Concurrent first calls: one
 * thread parses, the others wait for it (a few microseconds, once).
 *
 * Bad values. A value the parser rejects prints one line naming the
 * variable, the text, what is accepted and the default that is kept:
 *   goalloc: warning: GOALLOC_GOGC="fast" is not valid (want a percentage
 *   such as 100, or "off"); using the default 100
 * and the default is kept. A list (GOALLOC_TRACE) with one bad item is
 * rejected whole, by the same rule.
 *
 * Setters. ga_set_gc_percent and ga_set_memory_limit store the new value
 * here, then tell the collector (ga__gc_pacer_changed) and, for the limit,
 * the scavenger. They are defined weak so that a collector that still
 * carries its own definitions links; the collector is meant to drop those
 * and read ga__option_gogc() / ga__option_memlimit() instead.
 */
#include "options.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* ---- parsers -------------------------------------------------------------- */

typedef bool (*parse_fn)(const char *text, int64_t *out);

/* Decimal integer, optional sign, nothing after it. */
static bool parse_int(const char *s, int64_t *out) {
  const char *p = s;
  bool neg = false;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  if (*p < '0' || *p > '9') return false;
  int64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (INT64_MAX - (*p - '0')) / 10) return false;
    v = v * 10 + (*p - '0');
  }
  if (*p != '\0') return false;
  *out = neg ? -v : v;
  return true;
}

/* GOGC: a percentage >= 0, or "off" (also any negative number, as in Go). */
static bool parse_gogc(const char *s, int64_t *out) {
  if (strcasecmp(s, "off") == 0) {
    *out = -1;
    return true;
  }
  int64_t v;
  if (!parse_int(s, &v) || v > 1000000000) return false;
  *out = v < 0 ? -1 : v;
  return true;
}

/* A byte count: digits, then an optional unit B, K/KiB/KB, M/MiB/MB,
 * G/GiB/GB, T/TiB/TB (any case; all powers of 1024), or "off" = no limit. */
static bool parse_bytes(const char *s, int64_t *out) {
  if (strcasecmp(s, "off") == 0) {
    *out = INT64_MAX;
    return true;
  }
  const char *p = s;
  if (*p < '0' || *p > '9') return false;
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  unsigned shift = 0;
  switch (*p) {
  case '\0': break;
  case 'b': case 'B': if (p[1] != '\0') return false; break;
  case 'k': case 'K': shift = 10; break;
  case 'm': case 'M': shift = 20; break;
  case 'g': case 'G': shift = 30; break;
  case 't': case 'T': shift = 40; break;
  default: return false;
  }
  if (shift != 0) {
    const char *u = p + 1;
    if (*u == 'i' || *u == 'I') u++;
    if (*u == 'b' || *u == 'B') u++;
    if (*u != '\0') return false;
    if (v > ((uint64_t)INT64_MAX >> shift)) return false;
    v <<= shift;
  }
  if (v > (uint64_t)INT64_MAX) return false;
  *out = (int64_t)v;
  return true;
}

static bool parse_bool(const char *s, int64_t *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (unsigned i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, true;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, true;
  }
  return false;
}

static const struct {
  const char *name;
  int flag;
} trace_names[] = {{"gc", GA_TRACE_GC}, {"scav", GA_TRACE_SCAV}};

/* A comma-separated list of trace names (empty = none). */
static bool parse_trace(const char *s, int64_t *out) {
  int64_t v = 0;
  while (*s != '\0') {
    size_t n = strcspn(s, ",");
    unsigned i;
    for (i = 0; i < sizeof trace_names / sizeof trace_names[0]; i++)
      if (strlen(trace_names[i].name) == n &&
          strncasecmp(s, trace_names[i].name, n) == 0)
        break;
    if (n != 0) { /* tolerate empty items ("gc,,scav", trailing comma) */
      if (i == sizeof trace_names / sizeof trace_names[0]) return false;
      v |= trace_names[i].flag;
    }
    s += n;
    if (*s == ',') s++;
  }
  *out = v;
  return true;
}

/* ---- the table ------------------------------------------------------------ */

typedef struct option_desc {
  const char *env;     /* environment variable */
  int64_t def;         /* default */
  int64_t min, max;    /* valid range after parsing */
  parse_fn parse;
  const char *want;    /* what is accepted, for the warning */
  const char *setter;  /* public API that changes it later, or NULL */
} option_desc;

static const option_desc table[GA_OPT_COUNT] = {
    [GA_OPT_GOGC] = {"GOALLOC_GOGC", 100, -1, 1000000000, parse_gogc,
                     "a percentage such as 100, or \"off\"", "ga_set_gc_percent"},
    [GA_OPT_MEMLIMIT] = {"GOALLOC_MEMLIMIT", INT64_MAX, 0, INT64_MAX, parse_bytes,
                         "bytes with an optional KiB/MiB/GiB/TiB suffix, or \"off\"",
                         "ga_set_memory_limit"},
    [GA_OPT_TRACE] = {"GOALLOC_TRACE", 0, 0, GA_TRACE_GC | GA_TRACE_SCAV,
                      parse_trace, "a comma-separated list of: gc, scav", NULL},
    [GA_OPT_SHOW_STATS] = {"GOALLOC_SHOW_STATS", 0, 0, 1, parse_bool, "0 or 1",
                           NULL},
    [GA_OPT_VERBOSE] = {"GOALLOC_VERBOSE", 0, 0, 2, parse_int, "0, 1 or 2", NULL},
    [GA_OPT_SCAVENGE] = {"GOALLOC_SCAVENGE", 1, 0, 1, parse_bool, "0 or 1", NULL},
    /* One second: long enough that memory reused by a periodic task (every
     * 100 ms, every frame, every request burst) is never released, short
     * enough that an idle process gives memory back before anyone looks. */
    [GA_OPT_SCAVENGE_DELAY_MS] = {"GOALLOC_SCAVENGE_DELAY_MS", 1000, 0,
                                  24 * 3600 * 1000, parse_int,
                                  "milliseconds, 0 to 86400000", NULL},
    /* Concurrent marking needs the kernel's write watch (mwritewatch.c): 1
     * marks concurrently when a stop-the-world mark would pause long (mgc.c),
     * 2 always, 0 never (for comparison, or a kernel whose userfaultfd
     * misbehaves). */
    [GA_OPT_GC_CONCURRENT] = {"GOALLOC_GC_CONCURRENT", 1, 0, 2, parse_int,
                              "0 (never), 1 (when pauses would be long) or 2 (always)", NULL},
    /* Minor cycles (mgc.c): objects that survived a cycle keep their marks
     * and are not traced again until a major cycle; needs the write watch.
     * 1 runs them while they pay, 2 whenever it may (tests), 0 never (for
     * comparison). */
    [GA_OPT_GC_GENERATIONAL] = {"GOALLOC_GC_GENERATIONAL", 1, 0, 2, parse_int,
                                "0 (every cycle full), 1 (minor cycles when they pay) or "
                                "2 (whenever possible)", NULL},
    /* The malloc drop-in's per-thread free cache (mtcache.c); 0 for
     * comparison, or to have every free checked against the bitmaps. */
    [GA_OPT_TCACHE] = {"GOALLOC_TCACHE", 1, 0, 1, parse_bool, "0 or 1", NULL},
};

int64_t ga__options_init_ns; /* when the options were read: process start */

static _Atomic int64_t values[GA_OPT_COUNT];
static _Atomic int from_env[GA_OPT_COUNT]; /* set from the environment */
static _Atomic int state;                  /* 0 unread, 1 reading, 2 read */

/* ---- messages (no allocation: stack buffer, write(2)) --------------------- */

static void format_value(ga_option o, int64_t v, char *buf, size_t size) {
  switch (o) {
  case GA_OPT_GOGC:
    if (v < 0) {
      snprintf(buf, size, "off");
      return;
    }
    break;
  case GA_OPT_MEMLIMIT:
    if (v == INT64_MAX) {
      snprintf(buf, size, "off");
      return;
    }
    if (v != 0 && (v & ((1 << 20) - 1)) == 0) {
      snprintf(buf, size, "%lldMiB", (long long)(v >> 20));
      return;
    }
    break;
  case GA_OPT_TRACE: {
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof trace_names / sizeof trace_names[0]; i++)
      if (v & trace_names[i].flag)
        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s",
                              n ? "," : "", trace_names[i].name);
    return;
  }
  default:
    break;
  }
  snprintf(buf, size, "%lld", (long long)v);
}

char *ga__option_format(ga_option o, char *buf, size_t size) {
  char v[48];
  format_value(o, ga__option_get(o), v, sizeof v);
  int n = snprintf(buf, size, "%s=%s", table[o].env, v);
  return buf + (n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1);
}

static void warn_bad(const option_desc *d, const char *text) {
  char def[48], buf[512];
  format_value((ga_option)(d - table), d->def, def, sizeof def);
  int n = snprintf(buf, sizeof buf,
                   "goalloc: warning: %s=\"%.64s\" is not valid (want %s); "
                   "using the default %s\n",
                   d->env, text, d->want, def);
  if (n > 0) ga__sys_write_err(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void print_settings(void) {
  for (int o = 0; o < GA_OPT_COUNT; o++) {
    char buf[200], *e = ga__option_format((ga_option)o, buf, sizeof buf - 80);
    e += snprintf(e, 80, " (%s%s%s)\n",
                  atomic_load_explicit(&from_env[o], memory_order_relaxed)
                      ? "from the environment"
                      : "default",
                  table[o].setter ? "; changed by " : "",
                  table[o].setter ? table[o].setter : "");
    ga__sys_write_err("goalloc: setting ", 17);
    ga__sys_write_err(buf, (size_t)(e - buf));
  }
}

/* ---- reading and access --------------------------------------------------- */

void ga__options_init(void) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&state, &expect, 1)) {
    while (atomic_load_explicit(&state, memory_order_acquire) != 2)
      __builtin_ia32_pause();
    return;
  }
  ga__options_init_ns = ga__sys_nanotime();
  for (int o = 0; o < GA_OPT_COUNT; o++) {
    const option_desc *d = &table[o];
    int64_t v = d->def;
    const char *text = getenv(d->env);
    if (text != NULL) {
      int64_t parsed;
      if (d->parse(text, &parsed) && parsed >= d->min && parsed <= d->max) {
        v = parsed;
        atomic_store_explicit(&from_env[o], 1, memory_order_relaxed);
      } else {
        warn_bad(d, text);
      }
    }
    atomic_store_explicit(&values[o], v, memory_order_relaxed);
  }
  atomic_store_explicit(&state, 2, memory_order_release);
  if (atomic_load_explicit(&values[GA_OPT_VERBOSE], memory_order_relaxed) > 0)
    print_settings();
}

int64_t ga__option_get(ga_option o) {
  if (GA_UNLIKELY(atomic_load_explicit(&state, memory_order_acquire) != 2))
    ga__options_init();
  return atomic_load_explicit(&values[o], memory_order_relaxed);
}

int64_t ga__option_set(ga_option o, int64_t v) {
  if (atomic_load_explicit(&state, memory_order_acquire) != 2) ga__options_init();
  if (v < table[o].min) v = table[o].min;
  if (v > table[o].max) v = table[o].max;
  return atomic_exchange_explicit(&values[o], v, memory_order_relaxed);
}

/* ---- the public setters --------------------------------------------------- */

__attribute__((weak)) void ga__gc_pacer_changed(void) {}

__attribute__((weak)) int ga_set_gc_percent(int percent) {
  int64_t old = ga__option_set(GA_OPT_GOGC, percent < 0 ? -1 : percent);
  ga__gc_pacer_changed();
  return (int)old;
}

__attribute__((weak)) int64_t ga_set_memory_limit(int64_t limit) {
  if (limit < 0) return ga__option_get(GA_OPT_MEMLIMIT);
  int64_t old = ga__option_set(GA_OPT_MEMLIMIT, limit);
  ga__gc_pacer_changed();
  ga__scavenger_wake(); /* a lower limit may need memory released now */
  return old;
}
