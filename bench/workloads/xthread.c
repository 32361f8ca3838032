/*
 * xthread — producer/consumer: every object is freed by a thread other than
 * the one that allocated it.
 *
 * Stands for: a pipeline — a network thread that reads messages into fresh
 * buffers and queues them to a worker that parses and frees them (a log
 * shipper, a request dispatcher, an actor mailbox). The allocating thread's
 * cache never gets a free back; the freeing thread only frees. This is the
 * worst case for designs that return remote frees slowly or that take a lock
 * per cross-thread free.
 *
 * One producer thread allocates N messages (sizes 8..512 from a fixed
 * sequence; the first and last 8 bytes carry the message's tag) and pushes
 * them through a single-producer single-consumer ring of 1024 entries
 * (lock-free; the two sides hand messages over in batches of 128, as real
 * queues do, so that synchronisation does not swamp the allocator's cost);
 * the consumer verifies and frees them. With two CPUs or more the two threads are pinned
 * to different CPUs (bench_pin_to_cpu). A full or empty ring is waited on by
 * spinning briefly, then sleeping on a futex: on a busy 2-core machine a
 * spinning or yielding waiter would burn the time its partner needs.
 * Checksum: the sum of per-message hashes, in the consumer.
 *
 *   xthread N
 */
#include "../bench_common.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING 1024 /* a power of two */
#define BATCH 128 /* messages handed over at a time (RING / BATCH in flight) */

static unsigned char *ring[RING];
/* head: count of messages the producer has published; tail: count the
 * consumer has taken. Each is written by one side only, on its own cache line,
 * and is 32 bits so that the other side can sleep on it (a futex); the
 * differences are taken modulo 2^32. */
static _Alignas(64) _Atomic uint32_t head;
static _Alignas(64) _Atomic uint32_t tail;
static _Alignas(64) _Atomic int consumer_sleeps, producer_sleeps;
static _Alignas(64) long nmsg;

static size_t size_of_tag(uint64_t tag) {
    return 8 + (size_t)((tag >> 32) % 505);
}

/*
 * Wait until *word is no longer `seen`: spin a little (the partner is usually
 * running on the other CPU and a batch takes it ~10 us), then sleep in the
 * kernel. The sleeper announces
 * itself in *sleeps before its last look at *word, and publish() stores *word
 * before it looks at *sleeps (both sequentially consistent), so either the
 * sleeper sees the new value or the publisher sees the sleeper and wakes it;
 * FUTEX_WAIT itself re-checks *word, so no wake-up is lost.
 */
static void wait_change(_Atomic uint32_t *word, uint32_t seen, _Atomic int *sleeps) {
    for (int i = 0; i < 2048; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != seen) return;
        BENCH_CPU_RELAX();
    }
    atomic_store(sleeps, 1);
    while (atomic_load(word) == seen)
        syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    atomic_store_explicit(sleeps, 0, memory_order_relaxed);
}

static void publish(_Atomic uint32_t *word, uint32_t v, _Atomic int *sleeps) {
    atomic_store(word, v);
    if (atomic_load(sleeps))
        syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *producer(void *unused) {
    (void)unused;
    bench_pin_to_cpu(0);
    bench_rng rng;
    bench_rng_seed(&rng, 5);
    uint32_t h = 0, published = 0;
    for (long i = 0; i < nmsg; i++) {
        uint64_t tag = bench_rng_next(&rng);
        size_t sz = size_of_tag(tag);
        unsigned char *p = malloc(sz);
        if (!p) bench_oom("malloc", sz);
        uint64_t last = bench_mix64(tag ^ sz);
        memcpy(p + sz - 8, &last, 8);
        memcpy(p, &tag, 8);
        uint32_t t;
        while (h - (t = atomic_load_explicit(&tail, memory_order_acquire)) >= RING)
            wait_change(&tail, t, &producer_sleeps);
        ring[h++ % RING] = p;
        if (h - published >= BATCH || i == nmsg - 1) {
            publish(&head, h, &consumer_sleeps);
            published = h;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    nmsg = bench_arg(argc, argv, 1, 10000000);
    pthread_t th;
    uint64_t sum = 0;
    long bad = 0;

    double t0 = bench_now_ms();
    if (pthread_create(&th, NULL, producer, NULL) != 0) {
        fprintf(stderr, "FAIL: pthread_create\n");
        return 3;
    }
    bench_pin_to_cpu(1);
    uint32_t t = 0, released = 0, avail = 0;
    for (long i = 0; i < nmsg; i++) {
        if (avail == t) {
            /* Caught up: hand back what was taken, then wait for a batch. */
            if (released != t) {
                publish(&tail, t, &producer_sleeps);
                released = t;
            }
            while ((avail = atomic_load_explicit(&head, memory_order_acquire)) == t)
                wait_change(&head, t, &consumer_sleeps);
        }
        unsigned char *p = ring[t++ % RING];
        if (t - released >= BATCH) {
            publish(&tail, t, &producer_sleeps);
            released = t;
        }
        uint64_t tag, last;
        memcpy(&tag, p, 8);
        size_t sz = size_of_tag(tag);
        memcpy(&last, p + sz - 8, 8);
        if (sz >= 16 && last != bench_mix64(tag ^ sz)) bad++;
        sum += bench_mix64(tag + sz);
        free(p);
    }
    pthread_join(th, NULL);
    return bench_report("xthread", nmsg, sum, bad, t0);
}
