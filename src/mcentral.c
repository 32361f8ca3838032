/*
 * mcentral.c — the shared pool of spans for one span class (Go's
 * mcentral.go twin). An mcache that runs out of a class asks its mcentral
 * for a span with free slots (cacheSpan) and gives back the one it used up
 * (uncacheSpan); mcentral grows from mheap and gives spans that became
 * completely free back to it. Large spans (class 0) are listed here too, so
 * that sweeping finds them.
 *
 * Lists (circular, doubly linked, under mc->lock), in two sets (Go's
 * swept and unswept spanSets):
 *   partial  spans with at least one free slot
 *   full     spans with no free slot when last looked at; other threads
 *            may have freed into them since (their freeBits), which the
 *            budgeted scan in cacheSpan (when ga__mcentral_fullHint says
 *            so) and reclaimAll find
 * partial[swept] and full[swept] hold the spans swept this cycle; the other
 * set those not yet swept. Mark termination flips `swept`, so every listed
 * span becomes unswept at once: no span record is touched in that pause
 * (it was a write to each, 0.17-0.32 ms of binary-trees' and gcbench's
 * final pauses). A span records its list and set in mspan.list.
 * A span in a cache (current or parked, see mcache.c) is on no list here and
 * has a cache owner; a listed span has none. Every span is swept before it
 * is handed to a cache (Go's invariant "a span is never handed to an
 * allocator unswept").
 *
 * Cost: cacheSpan looks at no more than SCAN_BUDGET spans of each kind
 * before it grows the heap (Go's budget of 100: bounds the search, about 1 %
 * space overhead in the worst case). The full-list scan resumes where it
 * stopped last time.
 */
#include "mgc.h"

#define SCAN_BUDGET 100

static mcentral central[GA_NUM_CENTRALS];
_Atomic uint8_t ga__mcentral_fullHint[GA_NUM_CENTRALS];
/* cacheSpan looks through the full list without a hint once in this many
 * calls (see ga__mcentral_hintFull). */
#define FULL_SCAN_EVERY 64

void ga__mcentral_init(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    central[i].spanclass = (uint8_t)(i == GA_TINY_CENTRAL ? GA_TINY_SPAN_CLASS : i);
    central[i].tiny = i == GA_TINY_CENTRAL;
  }
}

static inline mcentral *central_of(mspan *s) {
  return &central[s->tiny ? GA_TINY_CENTRAL : s->spanclass];
}

static mspan **list_of(mcentral *mc, uint8_t which) {
  unsigned set = (which & SPAN_LIST_SET) != 0;
  return (which & SPAN_LIST_KIND) == SPAN_LIST_PARTIAL ? &mc->partial[set] : &mc->full[set];
}

/* List s in the swept set (a span the mark ended on is in it too, and so
 * unswept once the set flips). */
static void put_on_list(mcentral *mc, mspan *s) {
  s->list = (uint8_t)((s->allocCount < s->nelems ? SPAN_LIST_PARTIAL : SPAN_LIST_FULL) |
                      (mc->swept ? SPAN_LIST_SET : 0));
  ga__spanlist_insert(list_of(mc, s->list), s);
}

/* The next span not yet swept this cycle: partial ones first (Go's order). */
static mspan *first_unswept(mcentral *mc) {
  unsigned u = mc->swept ^ 1u;
  return mc->partial[u] != NULL ? mc->partial[u] : mc->full[u];
}

static void take_off_list(mcentral *mc, mspan *s) {
  ga__spanlist_remove(list_of(mc, s->list), s);
  s->list = SPAN_LIST_NONE;
}

/* Free an empty, listed-or-taken span to the heap (mc->lock held). */
static void release_span(mcentral *mc, mspan *s) {
  if (s->list != SPAN_LIST_NONE) take_off_list(mc, s);
  mc->nspans--;
  ga__mheap_freeSpan(s); /* lock order mcentral -> mheap */
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
  ga__heapLive_add((intptr_t)(s->nelems - s->allocCount) * (intptr_t)s->elemsize);
  ga__span_windowBegin(s);
  ga__span_initRoom(s);
  ga__span_loadWindow(s, w);
  atomic_store_explicit(&s->cache, c, memory_order_relaxed);
  atomic_store_explicit(&s->owner, (s->tiny || s->specials) ? NULL : c,
                        memory_order_relaxed);
  ga__span_windowEnd(s);
  return s;
}

mspan *ga__mcentral_cacheSpan(unsigned ci, mcache *c) {
  mcentral *mc = &central[ci];
  unsigned cl = mc->spanclass >> 1;
  ga__deductSweepCredit((uintptr_t)ga__class_to_npages[cl] * GA_PAGE_SIZE, 0);
  mspan *s;
  /* While the collector marks concurrently, take a fresh span if the heap
   * has free pages: its pages are not write-protected (mwritewatch.c), so
   * filling it costs no faults, where a partial span's pages would fault
   * one by one. Its partial spans wait for the end of the mark. Not when
   * the write watch kept the last cycle's protection: free pages may be
   * protected too then, and a heap that takes fresh spans while its
   * partial ones wait grows (gc-churn: peak RSS 95 MiB instead of 84-87). */
  if (GA_UNLIKELY(atomic_load_explicit(&ga__gcphase, memory_order_relaxed) != GC_OFF) &&
      !atomic_load_explicit(&ga__ww_kept, memory_order_relaxed) &&
      !(mc->spanclass & 1) && /* pointer-free spans are never protected */
      ga__mheap_freePagesHint() >= 4 * (uintptr_t)ga__class_to_npages[cl] + 64)
    goto fresh;
  ga_mutex_lock(&mc->lock);
  while ((s = mc->partial[mc->swept]) != NULL) {
    take_off_list(mc, s);
    ga__span_collect(s);
    if (s->allocCount < s->nelems) goto have;
    put_on_list(mc, s); /* cannot happen: frees only add room */
    break;
  }
  /* Unswept spans: sweep them as we go (Go's cacheSpan). */
  for (int budget = SCAN_BUDGET; (s = first_unswept(mc)) != NULL && budget > 0; budget--) {
    take_off_list(mc, s);
    ga__sweep_span_locked(s, true);
    if (s->allocCount < s->nelems) goto have;
    put_on_list(mc, s);
  }
  /* Full spans may have been freed into by other threads since: looked
   * through only if one was (walking the list is a cache miss per span: in
   * gcbench, which frees nothing, 4 % of the run's time). The hint is
   * cleared before the walk (a free meanwhile sets it again) and set back
   * unless the walk saw every full span: one that stops at a span with
   * room, or a hinted one at the budget, leaves the others' frees for the
   * next. */
  _Atomic uint8_t *hint = &ga__mcentral_fullHint[ci];
  mspan **full = &mc->full[mc->swept];
  s = *full;
  bool hinted = atomic_load_explicit(hint, memory_order_acquire);
  if (hinted) {
    atomic_store_explicit(hint, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* the clear before the reads */
  } else if (++mc->fullSkips % FULL_SCAN_EVERY != 0) {
    s = NULL;
  }
  for (int budget = SCAN_BUDGET; s != NULL && budget > 0; budget--) {
    mspan *next = s->next;
    if (ga__span_collect(s) != 0 && s->allocCount < s->nelems) {
      take_off_list(mc, s);
      atomic_store_explicit(hint, 1, memory_order_relaxed);
      goto have;
    }
    s = next;
    if (s == *full) break; /* went all the way round */
  }
  if (s != NULL && s != *full) { /* out of budget */
    *full = s; /* rotate: resume the walk here next time */
    if (hinted) atomic_store_explicit(hint, 1, memory_order_relaxed);
  }
  ga_mutex_unlock(&mc->lock);

fresh:
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
  /* A span that missed a sweep (its cache's thread is not registered, so
   * the collector swept around it) has the marks of a finished cycle:
   * outside a mark, forget them and call it swept (its dead objects wait
   * for the next cycle). During a mark they are this cycle's (mgc.c
   * begin_mark_phase cleared the stale ones): keep them, and the span is
   * swept with them when the mark ends. */
  uint32_t h = atomic_load_explicit(&ga__sweepgen_h, memory_order_relaxed);
  if (GA_UNLIKELY(atomic_load_explicit(&s->sweepgen, memory_order_relaxed) != h) &&
      atomic_load_explicit(&ga__gcphase, memory_order_relaxed) == GC_OFF) {
    /* Kept marks (mgc.c): they are an earlier cycle's, valid, and a
     * minor cycle must not lose them; a major one clears every mark. */
    if (!ga__gc_keepMarks) ga__markClear(s);
    atomic_store_explicit(&s->sweepgen, h, memory_order_relaxed);
  }
  ga__span_collect(s);
  if (s->localFrees) s->needzero = 1;
  ga__span_windowBegin(s);
  ga__span_syncWindow(s);
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->cache, NULL, memory_order_relaxed);
  ga__span_windowEnd(s);
  ga__span_recount(s);
  ga__stats_uncache(s);
  /* Undo the part of the refill estimate that was not used. */
  ga__heapLive_add(-(intptr_t)(s->nelems - s->allocCount) * (intptr_t)s->elemsize);
  if (s->allocCount == 0) {
    release_span(mc, s);
  } else {
    put_on_list(mc, s);
  }
  ga_mutex_unlock(&mc->lock);
}

/* ---- large spans ---------------------------------------------------------- */

void ga__mcentral_listLarge(mspan *s) {
  mcentral *mc = &central[s->spanclass];
  ga_mutex_lock(&mc->lock);
  mc->nspans++;
  s->list = (uint8_t)(SPAN_LIST_FULL | (mc->swept ? SPAN_LIST_SET : 0));
  ga__spanlist_insert(list_of(mc, s->list), s);
  ga_mutex_unlock(&mc->lock);
}

/* An explicit free of a large object: unlist it and give its pages back. */
void ga__mcentral_freeLarge(mspan *s) {
  mcentral *mc = &central[s->spanclass];
  ga_mutex_lock(&mc->lock);
  release_span(mc, s);
  ga_mutex_unlock(&mc->lock);
}

/* ---- sweeping support ------------------------------------------------------ */

/* World stopped, at mark termination: every listed span becomes unswept. */
void ga__mcentral_startSweep(void) {
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    mcentral *mc = &central[i];
    ga_mutex_lock(&mc->lock);
    if (first_unswept(mc) != NULL) ga__throw("sweep not finished at mark termination");
    mc->swept ^= 1;
    ga_mutex_unlock(&mc->lock);
  }
}

/* Sweep one unswept span of central i. Returns pages swept (0 = nothing left
 * there). */
uintptr_t ga__mcentral_sweepOne(unsigned i) {
  mcentral *mc = &central[i];
  ga_mutex_lock(&mc->lock);
  mspan *s = first_unswept(mc);
  uintptr_t n = 0;
  if (s != NULL) {
    n = s->npages;
    take_off_list(mc, s);
    if (ga__sweep_span_locked(s, false)) {
      mc->nspans--;
      ga__mheap_freeSpan(s);
    } else {
      put_on_list(mc, s);
    }
  }
  ga_mutex_unlock(&mc->lock);
  return n;
}

uintptr_t ga__mcentral_unsweptCount(void) {
  uintptr_t n = 0;
  for (unsigned i = 0; i < GA_NUM_CENTRALS; i++) {
    mcentral *mc = &central[i];
    ga_mutex_lock(&mc->lock);
    for (unsigned kind = 0; kind < 2; kind++) {
      mspan *head = kind ? mc->full[mc->swept ^ 1u] : mc->partial[mc->swept ^ 1u], *s = head;
      if (s) do {
          n++;
          s = s->next;
        } while (s != head);
    }
    ga_mutex_unlock(&mc->lock);
  }
  return n;
}

/* ---- reclaim ---------------------------------------------------------------- */

/* Fold remote frees into every swept span of a list; free the empty ones and
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
      pages += s->npages;
      release_span(mc, s);
    } else if ((s->list & SPAN_LIST_KIND) == SPAN_LIST_FULL && s->allocCount < s->nelems) {
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
    if ((mc->spanclass >> 1) == 0) continue; /* large: freed when freed */
    ga_mutex_lock(&mc->lock);
    pages += reclaim_list(mc, &mc->full[mc->swept]);
    pages += reclaim_list(mc, &mc->partial[mc->swept]);
    ga_mutex_unlock(&mc->lock);
  }
  return pages;
}

/* Finalizers: a span holding an object with a finalizer sends every free
 * through the slow path (which forgets the finalizer). Cache owner cleared
 * under the lock so that a later cacheSpan sees `specials`. */
void ga__mcentral_markSpecial(mspan *s) {
  mcentral *mc = central_of(s);
  ga_mutex_lock(&mc->lock);
  s->specials = 1;
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  ga_mutex_unlock(&mc->lock);
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
