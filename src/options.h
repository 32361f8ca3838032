/*
 * options.h — goalloc's tunables: one table (options.c) lists each of them
 * once, with its default, its environment variable, its parser and its API
 * setter. The environment is read once, at heap initialisation (or at the
 * first accessor call if that comes earlier); the API setters change a value
 * later. Readers use the accessors below: the collector reads GOGC and the
 * memory limit, the scavenger its own settings, mstats the trace and
 * show-stats flags.
 *
 * Every accessor is one relaxed atomic load after the first call, and is
 * safe from any thread, at any time (before heap init, inside malloc, in a
 * destructor): reading the table never allocates.
 */
#ifndef GA_OPTIONS_H
#define GA_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ga_option {
  GA_OPT_GOGC,              /* percent; -1 = off */
  GA_OPT_MEMLIMIT,          /* bytes; INT64_MAX = no limit */
  GA_OPT_TRACE,             /* set of GA_TRACE_* bits */
  GA_OPT_SHOW_STATS,        /* 0 / 1 */
  GA_OPT_VERBOSE,           /* 0 (quiet) .. 2 */
  GA_OPT_SCAVENGE,          /* 0 / 1: background scavenger */
  GA_OPT_SCAVENGE_DELAY_MS, /* free pages idle this long are released */
  GA_OPT_GC_CONCURRENT,     /* 0 never / 1 auto / 2 always: mark while the program runs */
  GA_OPT_GC_GENERATIONAL,   /* 0 never / 1 auto / 2 always: minor cycles (old objects keep their marks) */
  GA_OPT_TCACHE,            /* 0 / 1: the drop-in's free cache (mtcache.c) */
  GA_OPT_COUNT
} ga_option;

enum { GA_TRACE_GC = 1, GA_TRACE_SCAV = 2 };

/* Read the environment now (idempotent, thread-safe; prints a warning for
 * each bad value, and the settings if GOALLOC_VERBOSE is set). */
void ga__options_init(void);

/* The current value of o. */
int64_t ga__option_get(ga_option o);
/* Store v (already validated by the caller) and return the old value. */
int64_t ga__option_set(ga_option o, int64_t v);

/* Format "NAME=value" of o into buf (NUL-terminated; returns the end). */
char *ga__option_format(ga_option o, char *buf, size_t size);

static inline int ga__option_gogc(void) { return (int)ga__option_get(GA_OPT_GOGC); }
static inline int64_t ga__option_memlimit(void) { return ga__option_get(GA_OPT_MEMLIMIT); }
static inline bool ga__option_trace(int flag) {
  return (ga__option_get(GA_OPT_TRACE) & flag) != 0;
}
static inline int ga__option_verbose(void) { return (int)ga__option_get(GA_OPT_VERBOSE); }

/* The collector's hook, called after ga_set_gc_percent or
 * ga_set_memory_limit changed a value: recompute the heap goal. options.c
 * defines a weak no-op so that builds without a collector link. */
void ga__gc_pacer_changed(void);

#endif /* GA_OPTIONS_H */
