/*
 * mcentral.c — the shared pool of spans for one span class (Go's
 * mcentral.go twin). An mcache that runs out of a class asks its mcentral
 * for a span with free slots (cacheSpan) and gives back the one it used up
 * (uncacheSpan); mcentral grows from mheap and gives spans that became
 * completely free back to it.
 *
 * Lists (circular, doubly linked, under mc->lock):
 *   partial  spans with at least one free slot
 *   full     spans that had no free slot when last looked at; other threads
 *            may have freed into them since (their freeBits), which is found
 *            by the budgeted scan in cacheSpan and by reclaimAll.
 * A span in a cache is on no list (s->list == SPAN_LIST_NONE) and has an
 * owner; a span on a list has none.
 *
 * Go keeps two generations of each set (swept / unswept, by sweepgen); the
 * collector adds them. Without it every span is always "swept".
 *
 * Cost: cacheSpan looks at no more than SCAN_BUDGET full spans before it
 * grows the heap (Go's budget of 100: bounds the search, about 1 % space
 * overhead in the worst case). The scan resumes where it stopped last time.
 */
#include "internal.h"

#define SCAN_BUDGET 100

static mcentral central[GA_NUM_CENTRALS];

void ga__mcentral_init(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    central[i].spanclass = (uint8_t)(i == GA_TINY_CENTRAL ? GA_TINY_SPAN_CLASS : i);
    central[i].tiny = i == GA_TINY_CENTRAL;
  }
}

static inline mcentral *central_of(mspan *s) {
  return &central[s->tiny ? GA_TINY_CENTRAL : s->spanclass];
}

static void list_insert(mspan **head, mspan *s) {
  if (*head == NULL) {
    s->next = s->prev = s;
    *head = s;
    return;
  }
  mspan *h = *head; /* insert at the tail (before head) */
  s->next = h;
  s->prev = h->prev;
  h->prev->next = s;
  h->prev = s;
}

static void list_remove(mspan **head, mspan *s) {
  if (s->next == s) {
    *head = NULL;
  } else {
    s->prev->next = s->next;
    s->next->prev = s->prev;
    if (*head == s) *head = s->next;
  }
  s->next = s->prev = NULL;
}

static void put_on_list(mcentral *mc, mspan *s) {
  if (s->allocCount < s->nelems) {
    s->list = SPAN_LIST_PARTIAL;
    list_insert(&mc->partial, s);
  } else {
    s->list = SPAN_LIST_FULL;
    list_insert(&mc->full, s);
  }
}

static void take_off_list(mcentral *mc, mspan *s) {
  list_remove(s->list == SPAN_LIST_PARTIAL ? &mc->partial : &mc->full, s);
  s->list = SPAN_LIST_NONE;
}

/* Hand a span (with a free slot, allocCount exact) to cache c: set the
 * owner and load the first window that has a free slot. */
static mspan *have_span(mspan *s, mcache *c) {
  unsigned nw = (s->nelems + 63u) / 64u, w = 0;
  while (w + 1 < nw && (ga__loadBits(&s->allocBits[w]) & ga__windowValid(s, w)) ==
                           ga__windowValid(s, w))
    w++;
  s->allocCountBeforeCache = s->allocCount;
  s->localFrees = 0;
  ga__span_windowBegin(s);
  ga__span_loadWindow(s, w);
  atomic_store_explicit(&s->cache, c, memory_order_relaxed);
  atomic_store_explicit(&s->owner, s->tiny ? NULL : c, memory_order_relaxed);
  ga__span_windowEnd(s);
  return s;
}

mspan *ga__mcentral_cacheSpan(unsigned ci, mcache *c) {
  mcentral *mc = &central[ci];
  mspan *s;
  ga_mutex_lock(&mc->lock);
  while ((s = mc->partial) != NULL) {
    take_off_list(mc, s);
    ga__span_collect(s);
    if (s->allocCount < s->nelems) goto have;
    put_on_list(mc, s); /* cannot happen: frees only add room */
    break;
  }
  /* Full spans may have been freed into by other threads since. */
  s = mc->full;
  for (int budget = SCAN_BUDGET; s != NULL && budget > 0; budget--) {
    mspan *next = s->next;
    if (ga__span_collect(s) != 0 && s->allocCount < s->nelems) {
      take_off_list(mc, s);
      goto have;
    }
    s = next;
    if (s == mc->full) break; /* went all the way round */
  }
  if (s != NULL) mc->full = s; /* rotate: resume the scan here next time */
  ga_mutex_unlock(&mc->lock);

  unsigned cl = mc->spanclass >> 1;
  s = ga__mheap_alloc(ga__class_to_npages[cl], 1, mc->spanclass, mc->tiny);
  if (s == NULL) return NULL;
  ga_mutex_lock(&mc->lock);
  mc->nspans++;
have:
  have_span(s, c);
  ga_mutex_unlock(&mc->lock);
  return s;
}

void ga__mcentral_uncacheSpan(mspan *s) {
  mcentral *mc = central_of(s);
  ga_mutex_lock(&mc->lock);
  ga__span_collect(s);
  if (s->localFrees) s->needzero = 1;
  ga__span_windowBegin(s);
  ga__span_syncWindow(s);
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->cache, NULL, memory_order_relaxed);
  ga__span_windowEnd(s);
  ga__span_recount(s);
  ga__stats_uncache(s);
  if (s->allocCount == 0) {
    mc->nspans--;
    ga_mutex_unlock(&mc->lock);
    ga__mheap_freeSpan(s);
    return;
  }
  put_on_list(mc, s);
  ga_mutex_unlock(&mc->lock);
}

/* Fold remote frees into every listed span of mc; free the empty ones and
 * move full spans that gained room to the partial list. mc->lock held. */
static uintptr_t reclaim_list(mcentral *mc, mspan **head) {
  uintptr_t pages = 0;
  mspan *s = *head;
  if (s == NULL) return 0;
  /* Walk a snapshot of the ring: count first, since we unlink as we go. */
  uintptr_t n = 0;
  do { n++; s = s->next; } while (s != *head);
  s = *head;
  while (n-- > 0) {
    mspan *next = s->next;
    ga__span_collect(s);
    if (s->allocCount == 0) {
      take_off_list(mc, s);
      mc->nspans--;
      pages += s->npages;
      ga__mheap_freeSpan(s); /* lock order mcentral -> mheap */
    } else if (s->list == SPAN_LIST_FULL && s->allocCount < s->nelems) {
      take_off_list(mc, s);
      put_on_list(mc, s);
    }
    s = next;
  }
  return pages;
}

uintptr_t ga__mcentral_reclaimAll(void) {
  uintptr_t pages = 0;
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    mcentral *mc = &central[i];
    ga_mutex_lock(&mc->lock);
    pages += reclaim_list(mc, &mc->full);
    pages += reclaim_list(mc, &mc->partial);
    ga_mutex_unlock(&mc->lock);
  }
  return pages;
}

/* fork support: take every mcentral lock (in index order, before the heap
 * lock, keeping the lock order) so that the child starts with consistent
 * lists; release them in the parent and reinitialise them in the child. */
void ga__mcentral_lockAll(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) ga_mutex_lock(&central[i].lock);
}
void ga__mcentral_unlockAll(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) ga_mutex_unlock(&central[i].lock);
}
void ga__mcentral_resetLocksAfterFork(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++)
    atomic_store_explicit(&central[i].lock.state, 0, memory_order_relaxed);
}
