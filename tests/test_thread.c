/* test_thread.c - concurrent use, cross-thread frees, thread exit. */
#define _GNU_SOURCE
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/resource.h>
#include "mallocng.h"
#include "util.h"

#define NTHREADS 8

/* ---- objects handed to another thread through a locked queue ---- */

struct item {
	struct item *next;
	unsigned char *p;
	size_t n;
	uint32_t seed;
};

struct queue {
	pthread_mutex_t lock;
	struct item *head;
	long pushed, popped;
};

static struct queue queues[NTHREADS];
static atomic_int producers_left;
static atomic_long verified_remote;

enum { PER_THREAD = 30000 };
/* what producer allocates: per_thread objects of size_lo..size_hi bytes */
static int per_thread = PER_THREAD;
static size_t size_lo = 1, size_hi = 4096;

static void verify_and_free(struct item *it)
{
	size_t bad = check_pattern(it->p, it->n, it->seed);
	REQUIRE(bad == it->n, "object %p (%zu bytes) corrupted at offset %zu",
	              (void *)it->p, it->n, bad);
	if (it->seed & 1) {
		/* realloc an object another thread allocated: grow or shrink */
		size_t m = (it->seed & 2) ? it->n / 2 + 1 : it->n * 2 + 100;
		size_t keep = m < it->n ? m : it->n;
		unsigned char *q = realloc(it->p, m);
		REQUIRE(q != NULL, "realloc(%zu)", m);
		REQUIRE(check_pattern(q, keep, it->seed) == keep,
		        "cross-thread realloc %zu -> %zu lost content", it->n, m);
		memset(q, 0x7e, m);
		it->p = q;
	}
	free(it->p);
	free(it);   /* the queue node was allocated by the other thread too */
}

static int drain(int self)
{
	struct queue *q = &queues[self];
	pthread_mutex_lock(&q->lock);
	struct item *list = q->head;
	q->head = NULL;
	pthread_mutex_unlock(&q->lock);
	int k = 0;
	while (list) {
		struct item *nx = list->next;
		verify_and_free(list);
		list = nx;
		k++;
	}
	atomic_fetch_add(&verified_remote, k);
	return k;
}

static void *producer(void *arg)
{
	int self = (int)(intptr_t)arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (self + 1);
	struct item *local = NULL;
	struct queue *peer = &queues[(self + 1) % NTHREADS];

	for (int i = 0; i < per_thread; i++) {
		struct item *it = malloc(sizeof *it);
		REQUIRE(it != NULL, "malloc failed");
		it->n = rng_range(&rng, size_lo, size_hi);
		it->seed = (uint32_t)rng_next(&rng);
		it->p = malloc(it->n);
		REQUIRE(it->p && ((uintptr_t)it->p & 15) == 0, "malloc(%zu) = %p", it->n, (void *)it->p);
		fill_pattern(it->p, it->n, it->seed);
		if (rng_next(&rng) & 1) {
			pthread_mutex_lock(&peer->lock);
			it->next = peer->head;
			peer->head = it;
			pthread_mutex_unlock(&peer->lock);
		} else {
			it->next = local;
			local = it;
		}
		/* keep a bounded working set: free some local ones now */
		if ((i & 63) == 63) {
			for (int k = 0; k < 20 && local; k++) {
				struct item *nx = local->next;
				verify_and_free(local);
				local = nx;
			}
			drain(self);
		}
	}
	atomic_fetch_sub(&producers_left, 1);
	while (atomic_load(&producers_left) > 0) {
		if (!drain(self)) sched_yield();
	}
	drain(self);
	while (local) {
		struct item *nx = local->next;
		verify_and_free(local);
		local = nx;
	}
	return NULL;
}

static void cross_thread_free(void)
{
	pthread_t t[NTHREADS];
	atomic_store(&verified_remote, 0);
	atomic_store(&producers_left, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_mutex_init(&queues[i].lock, NULL);
		queues[i].head = NULL;
	}
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, producer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
	for (int i = 0; i < NTHREADS; i++) ck_assert_ptr_null(queues[i].head);
	/* about half of 8 * 30000 objects went through another thread */
	long v = atomic_load(&verified_remote);
	ck_assert_msg(v > NTHREADS * per_thread / 3, "only %ld remote frees", v);
}

START_TEST(test_cross_thread_free)
{
	cross_thread_free();
}
END_TEST

/* The same with objects of 32..128 KiB, whose freed slots keep their
 * pages for their owner (dirty.c) while other threads free and realloc
 * slots of the same groups: no content may be lost. */
START_TEST(test_cross_thread_free_big)
{
	per_thread = 1000;
	size_lo = 32 << 10;
	size_hi = (128 << 10) - 64;
	cross_thread_free();
}
END_TEST

/* ---- realloc in threads ---- */

static void *realloc_worker(void *arg)
{
	enum { SLOTS = 64, OPS = 20000 };
	unsigned char *p[SLOTS] = { 0 };
	size_t sz[SLOTS] = { 0 };
	uint32_t seed = (uint32_t)(intptr_t)arg * 1000003u;
	uint64_t rng = seed | 1;
	for (int k = 0; k < OPS; k++) {
		int i = (int)(rng_next(&rng) % SLOTS);
		size_t n = (rng_next(&rng) & 31) ? rng_range(&rng, 1, 5000)
		                                 : rng_range(&rng, 5000, 200000);
		if (p[i]) {
			size_t keep = n < sz[i] ? n : sz[i];
			unsigned char *q = realloc(p[i], n);
			REQUIRE(q != NULL, "realloc(%zu) failed", n);
			REQUIRE(check_pattern(q, keep, seed + i) == keep,
			        "realloc %zu -> %zu lost content", sz[i], n);
			p[i] = q;
		} else {
			p[i] = malloc(n);
			REQUIRE(p[i] != NULL, "malloc(%zu) failed", n);
		}
		sz[i] = n;
		fill_pattern(p[i], n, seed + i);
		if ((rng_next(&rng) & 7) == 0) { free(p[i]); p[i] = NULL; }
	}
	for (int i = 0; i < SLOTS; i++) free(p[i]);
	return NULL;
}

/* A thread that only frees (a consumer) hands the slots it freed into the
 * main thread's groups back by its exit at the latest: they count as live
 * until then, and the main thread reuses them afterwards. */
enum { CONSUMED = 3000 };
static void *consumer_of(void *arg)
{
	void **v = arg;
	for (int i = 0; i < CONSUMED && v[i]; i++) free(v[i]);
	return NULL;
}

static size_t objects_live(void)
{
	struct mallocng_stats st = { .size = sizeof st };
	ck_assert_int_eq(mallocng_get_stats(&st), 0);
	return st.objects_live;
}

START_TEST(test_consumer_exit_hands_back)
{
	static void *v[CONSUMED];
	pthread_t t;
	/* a first thread: what the C library allocates for threads stays */
	ck_assert_int_eq(pthread_create(&t, NULL, consumer_of, v), 0);
	pthread_join(t, NULL);
	size_t before = objects_live();
	for (int i = 0; i < CONSUMED; i++) {
		v[i] = malloc(16 + (size_t)(i % 200) * 4);
		ck_assert_ptr_nonnull(v[i]);
	}
	ck_assert_uint_eq(objects_live(), before + CONSUMED);
	ck_assert_int_eq(pthread_create(&t, NULL, consumer_of, v), 0);
	pthread_join(t, NULL);
	ck_assert_msg(objects_live() == before, "%zu objects live after the consumer exited, %zu before",
	              objects_live(), before);
	/* the freed slots are reused, not new groups */
	struct mallocng_stats st = { .size = sizeof st };
	mallocng_get_stats(&st);
	size_t groups = st.groups;
	for (int i = 0; i < CONSUMED; i++) v[i] = malloc(16 + (size_t)(i % 200) * 4);
	mallocng_get_stats(&st);
	ck_assert_msg(st.groups <= groups + 2, "%zu groups after reallocating, %zu before", st.groups, groups);
	for (int i = 0; i < CONSUMED; i++) free(v[i]);
}
END_TEST

/* Producers hand objects to consumers that only free them, through a ring
 * per pair; consumers come and go (each generation is a new thread, whose
 * remote batch is handed over at its exit), and at the end every object is
 * back: the live count is what it was before. */
enum { PC_PAIRS = 2, PC_GENS = 4, PC_OBJS = 8000, PC_RING = 256 };
struct pc_ring {
	_Atomic unsigned long head, tail;
	unsigned char *slot[PC_RING];
	size_t n[PC_RING];
};
static struct pc_ring pc_rings[PC_PAIRS];

static void *pc_producer(void *arg)
{
	struct pc_ring *r = arg;
	uint64_t rng = (uintptr_t)arg | 1;
	for (int i = 0; i < PC_OBJS; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t n = (rng & 31) == 0 ? 4096 + rng % 70000 : 1 + rng % 600;
		unsigned char *p = malloc(n);
		REQUIRE(p != NULL, "malloc(%zu)", n);
		memset(p, (int)(n & 0xff), n);
		while (atomic_load(&r->head) - atomic_load(&r->tail) >= PC_RING) sched_yield();
		unsigned long h = atomic_load(&r->head);
		r->slot[h % PC_RING] = p;
		r->n[h % PC_RING] = n;
		atomic_store(&r->head, h + 1);
	}
	return NULL;
}

static void *pc_consumer(void *arg)
{
	struct pc_ring *r = arg;
	for (int i = 0; i < PC_OBJS / PC_GENS; i++) {
		unsigned long t = atomic_load(&r->tail);
		while (atomic_load(&r->head) == t) sched_yield();
		unsigned char *p = r->slot[t % PC_RING];
		size_t n = r->n[t % PC_RING];
		atomic_store(&r->tail, t + 1);
		REQUIRE(check_bytes(p, n, (unsigned char)(n & 0xff)) == n,
		        "object of %zu bytes corrupted in transit", n);
		free(p);
	}
	return NULL;
}

static void *pc_pair(void *arg)
{
	pthread_t prod, cons;
	ck_assert_int_eq(pthread_create(&prod, NULL, pc_producer, arg), 0);
	for (int g = 0; g < PC_GENS; g++) {
		ck_assert_int_eq(pthread_create(&cons, NULL, pc_consumer, arg), 0);
		pthread_join(cons, NULL);
	}
	pthread_join(prod, NULL);
	return NULL;
}

static void pc_run(void)
{
	pthread_t t[PC_PAIRS];
	for (int i = 0; i < PC_PAIRS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, pc_pair, &pc_rings[i]), 0);
	for (int i = 0; i < PC_PAIRS; i++) pthread_join(t[i], NULL);
}

START_TEST(test_pure_consumers)
{
	/* a first run: what the C library allocates for threads stays */
	pc_run();
	struct mallocng_stats st = { .size = sizeof st };
	size_t before = objects_live();
	mallocng_get_stats(&st);
	size_t groups = st.groups;
	pc_run();
	pc_run();
	ck_assert_msg(objects_live() == before, "%zu objects live after every consumer exited, %zu before",
	              objects_live(), before);
	mallocng_get_stats(&st);
	/* a few groups come and go with the heaps that threads leave; slots
	 * that stayed with an exited consumer would pin a group per class */
	ck_assert_msg(st.groups <= groups + 16, "%zu groups after two more runs, %zu after the first",
	              st.groups, groups);
}
END_TEST

/* A hand-over from the remote batch can free into the batch again: it
 * empties a group that thread T adopted, releasing it frees the slot that
 * held it (a nested group), and that slot is in a group of another live
 * thread, so it goes to the batch entry being handed over.  Staged here:
 * groups of 8-byte objects (class 0) live in slots of the 640-byte class
 * (16), and both use entry 0.  A wrong entry would give main's group the
 * bit of that slot, and main's next mallocs would return its live
 * objects (or a free would report a double free). */
static sem_t st_a_ready, st_a_exit, st_t_freed, st_b_adopted, st_t_go, st_b_end;
static unsigned char *st_mobj[96], *st_aobj[96], *st_gobj;

static void *stage_a(void *arg)
{
	(void)arg;
	for (int i = 0; i < 96; i++) st_aobj[i] = malloc(8);
	st_gobj = malloc(600);
	sem_post(&st_a_ready);
	sem_wait(&st_a_exit);
	return NULL;
}

static void *stage_t(void *arg)
{
	(void)arg;
	void *own[100], *big[100];
	/* class 0: a current group with live objects, a spare, the cache off
	 * (its groups emptied); class 16: the cache off too */
	for (int i = 0; i < 100; i++) own[i] = malloc(8), big[i] = malloc(600);
	for (int i = 0; i < 96; i++) free(own[i]);
	for (int i = 0; i < 100; i++) free(big[i]);
	sem_wait(&st_a_ready);
	for (int i = 0; i < 96; i++) free(st_aobj[i]);
	sem_post(&st_t_freed);
	sem_wait(&st_t_go);
	free(st_mobj[50]);
	for (int i = 96; i < 100; i++) free(own[i]);
	return NULL;
}

static void *stage_b(void *arg)
{
	(void)arg;
	free(st_mobj[10]);     /* gives B a heap with its cache off */
	free(st_gobj);         /* B adopts the group of the nested groups' slots */
	sem_post(&st_b_adopted);
	sem_wait(&st_b_end);
	return NULL;
}

static void batch_refill(void *arg)
{
	(void)arg;
	pthread_t a, t, b;
	sem_init(&st_a_ready, 0, 0), sem_init(&st_a_exit, 0, 0), sem_init(&st_t_freed, 0, 0);
	sem_init(&st_b_adopted, 0, 0), sem_init(&st_t_go, 0, 0), sem_init(&st_b_end, 0, 0);
	for (int i = 0; i < 96; i++) {
		st_mobj[i] = malloc(8);
		memset(st_mobj[i], i, 8);
	}
	ck_assert_int_eq(pthread_create(&a, NULL, stage_a, NULL), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, stage_t, NULL), 0);
	sem_wait(&st_t_freed);
	sem_post(&st_a_exit);
	pthread_join(a, NULL);
	ck_assert_int_eq(pthread_create(&b, NULL, stage_b, NULL), 0);
	sem_wait(&st_b_adopted);
	sem_post(&st_t_go);
	pthread_join(t, NULL);
	unsigned char *more[200];
	for (int i = 0; i < 200; i++) {
		more[i] = malloc(8);
		memset(more[i], 0xee, 8);
	}
	for (int i = 0; i < 96; i++)
		if (i != 10 && i != 50)
			REQUIRE(check_bytes(st_mobj[i], 8, (unsigned char)i) == 8,
			        "live object %d overwritten: its slot was handed out again", i);
	for (int i = 0; i < 200; i++) free(more[i]);
	for (int i = 0; i < 96; i++)
		if (i != 10 && i != 50) free(st_mobj[i]);
	sem_post(&st_b_end);
	pthread_join(b, NULL);
}

START_TEST(test_batch_refilled_by_hand_over)
{
	expect_clean_exit("a hand-over that frees into the batch again", batch_refill, NULL, 30);
}
END_TEST

START_TEST(test_realloc_threads)
{
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, realloc_worker, (void *)(intptr_t)(i + 1)), 0);
	for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
}
END_TEST

/* ---- many short-lived threads: no per-thread leak ---- */

static void *short_lived(void *arg)
{
	uintptr_t k = (uintptr_t)arg;
	void *a = malloc(16 + (k % 200));
	void *b = malloc(1000 + (k % 3000));
	void *c = calloc(1, 40);
	REQUIRE(a && b && c, "malloc failed in a short-lived thread");
	memset(a, 1, 16);
	memset(b, 2, 1000);
	free(a);
	free(c);
	return b;   /* freed by the main thread after this thread is gone */
}

static void run_short_lived(int count)
{
	enum { BATCH = 32 };
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int done = 0; done < count; done += BATCH) {
		pthread_t t[BATCH];
		for (int i = 0; i < BATCH; i++)
			REQUIRE(pthread_create(&t[i], &attr, short_lived,
			                       (void *)(uintptr_t)(done + i)) == 0, "pthread_create");
		for (int i = 0; i < BATCH; i++) {
			void *b;
			REQUIRE(pthread_join(t[i], &b) == 0 && b != NULL, "pthread_join");
			free(b);
		}
	}
	pthread_attr_destroy(&attr);
}

START_TEST(test_short_lived_threads)
{
	SKIP_IF_EMULATED("102 000 threads (minutes under qemu) and a VmRSS bound (the emulator's RSS)");
	run_short_lived(2000);    /* warm up: stack cache, heaps, meta areas */
	malloc_trim(0);           /* memory cached for decay_ms does not count */
	long before = vm_rss_kib();
	ck_assert_int_gt(before, 0);
	run_short_lived(100000);
	malloc_trim(0);
	long after = vm_rss_kib();
	ck_assert_msg(after - before < 6 * 1024,
	              "VmRSS grew from %ld kB to %ld kB over 100000 threads", before, after);
}
END_TEST

/* ---- objects allocated by a thread, freed after it exited ---- */

static void *allocate_many(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void **v = malloc(1000 * sizeof *v);
	for (int i = 0; i < 1000; i++) {
		v[i] = malloc(n);
		REQUIRE(v[i] != NULL, "malloc(%zu) failed", n);
		memset(v[i], i, n);
	}
	return v;
}

START_TEST(test_free_after_owner_exit)
{
	for (int round = 0; round < 200; round++) {
		pthread_t t;
		void **v;
		size_t n = 8 + (round * 97) % 3000;
		ck_assert_int_eq(pthread_create(&t, NULL, allocate_many, (void *)(uintptr_t)n), 0);
		ck_assert_int_eq(pthread_join(t, (void **)&v), 0);
		/* free every other one now, reuse the class, then the rest */
		for (int i = 0; i < 1000; i += 2) free(v[i]);
		void *x = malloc(n);
		ck_assert_ptr_nonnull(x);
		memset(x, 0xee, n);
		for (int i = 1; i < 1000; i += 2) {
			unsigned char *c = v[i];
			REQUIRE(c[0] == (unsigned char)i && c[n - 1] == (unsigned char)i,
			        "object %d of %zu bytes overwritten", i, n);
			free(v[i]);
		}
		free(x);
		free(v);
	}
}
END_TEST

/* ---- a heap kept whole for the next thread (group.c: Bundles) ----
 * A thread leaves objects of many classes behind, with room in their
 * groups; the next thread to start takes its heap whole: it allocates as
 * much again in its groups without new ones and without a lock hold per
 * group (one to take the heap, two at its exit), and the groups go back
 * when another thread frees the objects. */
enum { KW_OBJS = 3000 };
static void *kw_objs[KW_OBJS];
static size_t kw_size(int i) { return 16 + (size_t)(i * 37) % 1000; }

static void *kw_leave(void *arg)
{
	(void)arg;
	for (int i = 0; i < KW_OBJS; i++) {
		kw_objs[i] = malloc(kw_size(i));
		REQUIRE(kw_objs[i] != NULL, "malloc");
		memset(kw_objs[i], i, kw_size(i));
	}
	for (int i = 0; i < KW_OBJS; i += 2) free(kw_objs[i]), kw_objs[i] = NULL;
	return NULL;
}

static void *kw_fill(void *arg)
{
	(void)arg;
	for (int i = 0; i < KW_OBJS; i += 2) {
		kw_objs[i] = malloc(kw_size(i));
		REQUIRE(kw_objs[i] != NULL, "malloc");
		memset(kw_objs[i], i, kw_size(i));
	}
	return NULL;
}

static void kw_stats(struct mallocng_stats *st)
{
	*st = (struct mallocng_stats){ .size = sizeof *st };
	ck_assert_int_eq(mallocng_get_stats(st), 0);
}

/* Run fn on a thread of its own to its end, then take the statistics. */
static void kw_thread_then_stats(void *(*fn)(void *), struct mallocng_stats *st)
{
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, fn, NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	kw_stats(st);
}

/* The acquisitions of both locks (the global one and the span pools'):
 * the bounds below are on the trips to shared state, whichever lock. */
static size_t all_locks(const struct mallocng_stats *st)
{
	return st->lock_acquisitions + st->span_lock_acquisitions;
}

START_TEST(test_heap_kept_whole)
{
	struct mallocng_stats a, b, c;
	kw_stats(&a);
	kw_thread_then_stats(kw_leave, &b);
	kw_thread_then_stats(kw_fill, &c);
	ck_assert_msg(c.groups <= b.groups + 2, "%zu groups after the second thread, %zu after the first",
	              c.groups, b.groups);
	const char *opts = getenv("MALLOCNG_OPTIONS");
	if (!opts || !*opts)
		ck_assert_msg(all_locks(&c) - all_locks(&b) <= 8,
		              "%zu lock holds for a thread that took a heap whole (%zu groups)",
		              all_locks(&c) - all_locks(&b), b.groups - a.groups);
	for (int i = 0; i < KW_OBJS; i++) {
		unsigned char *p = kw_objs[i];
		REQUIRE(p[0] == (unsigned char)i && p[kw_size(i) - 1] == (unsigned char)i,
		        "object %d overwritten", i);
		free(p);
	}
	malloc_trim(0);
	kw_stats(&c);
	ck_assert_msg(c.groups <= a.groups + 2, "%zu groups after every object was freed, %zu before",
	              c.groups, a.groups);
}
END_TEST

/* The objects of a thread that exited, freed by another (a thread that
 * only frees: no thread cache, its remote batch handed over at its exit):
 * the groups they empty are released a batch at a time (bundle_sweep),
 * not with a lock hold each, and without malloc_trim all are gone once
 * a thread exits (the freeing one: heap_destroy sweeps too). */
static void *kw_make(void *arg)
{
	(void)arg;
	for (int i = 0; i < KW_OBJS; i++) {
		kw_objs[i] = malloc(kw_size(i));
		REQUIRE(kw_objs[i] != NULL, "malloc");
	}
	return NULL;
}

static void *kw_free_all(void *arg)
{
	(void)arg;
	for (int i = 0; i < KW_OBJS; i++) free(kw_objs[i]);
	return NULL;
}

START_TEST(test_bundle_swept)
{
	struct mallocng_stats a, b, c;
	kw_stats(&a);
	kw_thread_then_stats(kw_make, &b);
	kw_thread_then_stats(kw_free_all, &c);
	size_t made = b.groups - a.groups, left = c.groups - a.groups;
	ck_assert_msg(left <= 2, "%zu of the %zu groups of an exited thread left after its objects were freed",
	              left, made);
	const char *opts = getenv("MALLOCNG_OPTIONS");
	if (!opts || !*opts)
		ck_assert_msg(all_locks(&c) - all_locks(&b) <= made / 4,
		              "%zu lock holds to free the objects of %zu groups of an exited thread",
		              all_locks(&c) - all_locks(&b), made);
}
END_TEST

/* ---- a heap's own spans (group.c: hspan) ----
 * A thread that makes some fifty mapped groups cuts them from mappings
 * and pool spans it keeps, a few lock holds for them all (with a lock
 * hold per group, a hundred); once it frees them and makes them again,
 * the same. */
enum { HS_OBJS = 1600 };
static void *hs_objs[HS_OBJS];
static size_t hs_locks[4];

static size_t lock_count(void)
{
	struct mallocng_stats st = { .size = sizeof st };
	ck_assert_int_eq(mallocng_get_stats(&st), 0);
	return all_locks(&st);
}

static void *hs_cycles(void *arg)
{
	(void)arg;
	for (int r = 0; r < 2; r++) {
		size_t l0 = lock_count();
		for (int i = 0; i < HS_OBJS; i++) REQUIRE((hs_objs[i] = malloc(2000)) != NULL, "malloc");
		size_t l1 = lock_count();
		for (int i = 0; i < HS_OBJS; i++) free(hs_objs[i]);
		hs_locks[2 * r] = l1 - l0 - 2;          /* (lock_count's own) */
		hs_locks[2 * r + 1] = lock_count() - l1 - 2;
	}
	return NULL;
}

START_TEST(test_heap_spans)
{
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, hs_cycles, NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	const char *opts = getenv("MALLOCNG_OPTIONS");
	if (opts && *opts) return;      /* (checked paths: no spans kept) */
	for (int k = 0; k < 4; k++)
		ck_assert_msg(hs_locks[k] <= 40, "%zu lock holds to %s %d objects of 2000 bytes (round %d)",
		              hs_locks[k], k % 2 ? "free" : "make", HS_OBJS, k / 2);
}
END_TEST

/* ---- producers and consumers: the global lock's share ----
 * xthread-8's pattern: 4 pairs of threads born for the run, a producer
 * that mallocs objects of 8 to 1024 bytes and a consumer that frees
 * them.  What they need of the shared state beyond the thread caches
 * and the one-atomic remote frees is address ranges for groups and back
 * (span.c, under the span lock) and records, adoption, births and
 * deaths (under the global lock): the global lock is taken at most
 * XL_GLOBAL_MAX times in all, 20 a pair's birth, run and death (with the
 * span pools under it, more than 60), and both locks together at most
 * XL_ALL_MAX. */
enum { XL_PAIRS = 4, XL_OBJS = 60000, XL_RING = 1024, XL_GLOBAL_MAX = 160, XL_ALL_MAX = 320 };
static struct xl_ring {
	_Atomic unsigned head, tail;
	void *slot[XL_RING];
} xl_rings[XL_PAIRS];

static void *xl_producer(void *arg)
{
	struct xl_ring *r = arg;
	uint64_t x = (uintptr_t)arg | 1;
	for (unsigned i = 0; i < XL_OBJS; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = 8 + x % 1017;
		unsigned char *p = malloc(n);
		REQUIRE(p != NULL, "malloc");
		p[0] = p[n - 1] = (unsigned char)i;
		while (i - atomic_load(&r->tail) >= XL_RING) sched_yield();
		r->slot[i % XL_RING] = p;
		atomic_store(&r->head, i + 1);
	}
	return NULL;
}

static void *xl_consumer(void *arg)
{
	struct xl_ring *r = arg;
	for (unsigned i = 0; i < XL_OBJS; i++) {
		while (atomic_load(&r->head) == i) sched_yield();
		unsigned char *p = r->slot[i % XL_RING];
		REQUIRE(p[0] == (unsigned char)i, "object %u overwritten", i);
		atomic_store(&r->tail, i + 1);
		free(p);
	}
	return NULL;
}

START_TEST(test_xthread_global_lock)
{
	struct mallocng_stats a = { .size = sizeof a }, b = { .size = sizeof b };
	pthread_t t[2 * XL_PAIRS];
	ck_assert_int_eq(mallocng_get_stats(&a), 0);
	for (int i = 0; i < XL_PAIRS; i++) {
		atomic_store(&xl_rings[i].head, 0);
		atomic_store(&xl_rings[i].tail, 0);
		ck_assert_int_eq(pthread_create(&t[2 * i], NULL, xl_consumer, &xl_rings[i]), 0);
		ck_assert_int_eq(pthread_create(&t[2 * i + 1], NULL, xl_producer, &xl_rings[i]), 0);
	}
	for (int i = 0; i < 2 * XL_PAIRS; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_int_eq(mallocng_get_stats(&b), 0);
	const char *opts = getenv("MALLOCNG_OPTIONS");
	if (opts && *opts) return;      /* (checked paths: the lock on every call) */
	size_t global = b.lock_acquisitions - a.lock_acquisitions, all = all_locks(&b) - all_locks(&a);
	ck_assert_msg(global <= XL_GLOBAL_MAX, "%zu holds of the global lock for %d objects of %d pairs",
	              global, XL_PAIRS * XL_OBJS, XL_PAIRS);
	ck_assert_msg(all <= XL_ALL_MAX, "%zu holds of the two locks for %d objects of %d pairs", all,
	              XL_PAIRS * XL_OBJS, XL_PAIRS);
}
END_TEST

/* A thread that keeps what it made (its groups all hold live objects at
 * its exit) takes the global lock twice in its life: once for its heap
 * (the dormant heap of the thread before it, with that thread's groups),
 * once at its exit to leave its groups in the heap's bundle and park the
 * heap.  Each thread leaves one object of 128 bytes behind; the first
 * ones make the group and the heap, the later ones are measured, with a
 * hold or two more for each group that fills (a look for an abandoned
 * one, a record for a new one). */
enum { KEEP_THREADS = 16 };
static void *keep_one(void *arg)
{
	void **out = arg;
	*out = malloc(128);
	return *out;
}

START_TEST(test_thread_keeps_objects_two_holds)
{
	static void *kept[2 + KEEP_THREADS];
	struct mallocng_stats a = { .size = sizeof a }, b = { .size = sizeof b };
	pthread_t t;
	const char *opts = getenv("MALLOCNG_OPTIONS");
	for (int i = 0; i < 2 + KEEP_THREADS; i++) {
		if (i == 2) ck_assert_int_eq(mallocng_get_stats(&a), 0);
		ck_assert_int_eq(pthread_create(&t, NULL, keep_one, &kept[i]), 0);
		ck_assert_int_eq(pthread_join(t, NULL), 0);
		ck_assert_ptr_nonnull(kept[i]);
	}
	ck_assert_int_eq(mallocng_get_stats(&b), 0);
	for (int i = 0; i < 2 + KEEP_THREADS; i++) free(kept[i]);
	if (opts && *opts) return;      /* (checked paths: the lock on every call) */
	size_t global = b.lock_acquisitions - a.lock_acquisitions;
	ck_assert_msg(global <= 2 * KEEP_THREADS + KEEP_THREADS / 2, "%zu holds of the global lock for %d threads that keep one object",
	              global, KEEP_THREADS);
}
END_TEST

/* ---- churn: threads come and go while their objects live on ----
 * A shared pool of objects; short-lived threads allocate into it and
 * take objects out of it (made by threads that may have exited already),
 * verify and free them.  Exercises frees into abandoned groups and the
 * adoption of abandoned groups by new threads. */

enum { POOL = 4096 };
static struct item *pool[POOL];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static void *churn_thread(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ull | 1;
	for (int k = 0; k < 3000; k++) {
		int slot = (int)(rng_next(&rng) % POOL);
		struct item *fresh = NULL;
		if (rng_next(&rng) & 1) {
			fresh = malloc(sizeof *fresh);
			REQUIRE(fresh != NULL, "malloc");
			fresh->n = (rng_next(&rng) & 15) ? rng_range(&rng, 1, 1500)
			                                 : rng_range(&rng, 1500, 150000);
			fresh->seed = (uint32_t)rng_next(&rng);
			fresh->p = malloc(fresh->n);
			REQUIRE(fresh->p != NULL, "malloc(%zu)", fresh->n);
			fill_pattern(fresh->p, fresh->n, fresh->seed);
		}
		pthread_mutex_lock(&pool_lock);
		struct item *old = pool[slot];
		pool[slot] = fresh;
		pthread_mutex_unlock(&pool_lock);
		if (old) verify_and_free(old);
	}
	return NULL;
}

START_TEST(test_thread_churn)
{
	enum { LIVE = 6, GENERATIONS = 60 };
	pthread_t t[LIVE];
	for (int i = 0; i < LIVE; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn_thread, (void *)(uintptr_t)(i + 1)), 0);
	/* replace the oldest thread, one at a time, while the others run */
	for (int g = 0; g < GENERATIONS; g++) {
		int i = g % LIVE;
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_int_eq(pthread_create(&t[i], NULL, churn_thread,
		                                (void *)(uintptr_t)(LIVE + g + 1)), 0);
	}
	for (int i = 0; i < LIVE; i++) pthread_join(t[i], NULL);
	for (int i = 0; i < POOL; i++) {
		if (pool[i]) verify_and_free(pool[i]);
		pool[i] = NULL;
	}
}
END_TEST

/* ---- large objects (own mappings, their cache, mremap) from threads ---- */

static void *large_worker(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 7919 | 1;
	unsigned char *p[8] = { 0 };
	size_t sz[8] = { 0 };
	uint32_t seed = (uint32_t)(uintptr_t)arg;
	for (int k = 0; k < 1500; k++) {
		int i = (int)(rng_next(&rng) & 7);
		size_t n = rng_range(&rng, 131000, 3 << 20);
		if (p[i]) {
			/* the pattern covers the first and last 4 KiB */
			size_t keep = n < sz[i] ? n : sz[i];
			size_t h = keep < 4096 ? keep : 4096;
			REQUIRE(check_pattern(p[i], h, seed + i) == h, "large object head lost");
			if (rng_next(&rng) & 1) {
				free(p[i]);
				p[i] = NULL;
				continue;
			}
			unsigned char *q = realloc(p[i], n);
			REQUIRE(q != NULL, "realloc(%zu)", n);
			REQUIRE(check_pattern(q, h, seed + i) == h, "realloc %zu -> %zu lost the head", sz[i], n);
			p[i] = q;
		} else {
			p[i] = (rng_next(&rng) & 1) ? malloc(n) : calloc(1, n);
			REQUIRE(p[i] != NULL, "malloc(%zu)", n);
		}
		sz[i] = n;
		fill_pattern(p[i], 4096, seed + i);
		memset(p[i] + n - 4096, 0x44, 4096);
	}
	for (int i = 0; i < 8; i++) free(p[i]);
	return NULL;
}

START_TEST(test_large_threads)
{
	pthread_t t[6];
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, large_worker, (void *)(uintptr_t)(i + 1)), 0);
	for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
}
END_TEST

/* ---- many threads alive at once ---- */

static pthread_barrier_t many_bar;

static void *many_worker(void *arg)
{
	size_t n = 16 + (uintptr_t)arg % 2000;
	unsigned char *p = malloc(n), *q = malloc(n * 3);
	REQUIRE(p && q, "malloc in thread %zu", (size_t)(uintptr_t)arg);
	memset(p, (int)(uintptr_t)arg, n);
	memset(q, 0x33, n * 3);
	pthread_barrier_wait(&many_bar);
	REQUIRE(check_bytes(p, n, (unsigned char)(uintptr_t)arg) == n, "object overwritten");
	free(q);
	return p;   /* freed by main */
}

/* A thread with the smallest stack the system allows (16 KiB here, TLS
 * and the thread descriptor included) frees 8 MiB of objects, whose
 * released groups fill the warm pool, and calls malloc_trim: the trim
 * gives back the pool's spans BATCH at a time from a small buffer (with
 * room for all of them on the stack, 16 KiB, it overflowed). */
static void *small_stack_worker(void *arg)
{
	enum { N = 2800 };
	void **p = arg;
	for (int i = 0; i < N; i++) {
		if (!(p[i] = malloc(3000))) return (void *)1;
		memset(p[i], 1, 3000);
	}
	for (int i = 0, j = 0; i < N; i++, j = (j + 1409) % N) free(p[j]);
	malloc_trim(0);
	return NULL;
}

START_TEST(test_trim_small_stack)
{
	static void *p[2800];
	pthread_attr_t a;
	pthread_t t;
	void *ret = (void *)2;
	ck_assert_int_eq(pthread_attr_init(&a), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN), 0);
	ck_assert_int_eq(pthread_attr_setguardsize(&a, 64 << 10), 0);  /* an overflow faults */
	ck_assert_int_eq(pthread_create(&t, &a, small_stack_worker, p), 0);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_ptr_null(ret);
	pthread_attr_destroy(&a);
}
END_TEST

START_TEST(test_many_threads_alive)
{
	enum { T = 300 };
	static pthread_t t[T];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_barrier_init(&many_bar, NULL, T);
	for (int i = 0; i < T; i++)
		ck_assert_int_eq(pthread_create(&t[i], &attr, many_worker, (void *)(uintptr_t)i), 0);
	for (int i = 0; i < T; i++) {
		void *p;
		pthread_join(t[i], &p);
		free(p);
	}
	pthread_barrier_destroy(&many_bar);
	pthread_attr_destroy(&attr);
}
END_TEST

/* ---- rounds of threads that come and go (bench: thread-rounds) ----
 * Each round, 4 threads make objects of 1..32 KiB and some of 512 KiB,
 * write every page, free them before they exit, but for some they leave
 * in a shared table, which the main thread thins out between rounds.
 * The memory a round's threads free is what the next round's threads
 * need: it stays resident for decay_ms (the large cache, the warm spans,
 * the freed slots of groups released at thread exit), within bounds, so
 * that the next round faults in a fraction of what it writes, not all of
 * it again (0.37-0.44 of the pages written when the exiting heaps' kept
 * slots, the warm spans past 1 MiB and the large mappings past 8 went
 * back at once; about 0.1 now). */
enum { RT_THREADS = 4, RT_OBJS = 1500, RT_TABLE = 256 };
static void *_Atomic rt_table[RT_TABLE];
static atomic_long rt_pages;
static void *rt_keep[RT_THREADS][RT_OBJS];     /* (not thread-local: TLS takes stack) */

static void *rt_worker(void *arg)
{
	uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	void **keep = rt_keep[(uintptr_t)arg % RT_THREADS];
	long pages = 0;
	int nkeep = 0;
	for (int j = 0; j < RT_OBJS; j++) {
		size_t sh = rng_range(&s, 10, 14);
		size_t n = rng_next(&s) % 100 == 0 ? 512u << 10 : ((size_t)1 << sh) + rng_next(&s) % ((size_t)1 << sh);
		char *p = malloc(n);
		REQUIRE(p != NULL, "malloc(%zu)", n);
		for (size_t off = 0; off < n; off += 4096) p[off] = (char)j, pages++;
		p[n - 1] = (char)j;
		if (j % 8 == 7) free(atomic_exchange(&rt_table[rng_next(&s) % RT_TABLE], p));
		else keep[nkeep++] = p;
	}
	while (nkeep) free(keep[--nkeep]);
	atomic_fetch_add(&rt_pages, pages);
	return NULL;
}

static void rt_round(int r)
{
	pthread_t t[RT_THREADS];
	for (int i = 0; i < RT_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, rt_worker, (void *)(uintptr_t)(r * RT_THREADS + i)), 0);
	for (int i = 0; i < RT_THREADS; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (int i = r % 2; i < RT_TABLE; i += 2) free(atomic_exchange(&rt_table[i], NULL));
}

static long minor_faults(void)
{
	struct rusage ru;
	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_minflt;
}

START_TEST(test_rounds_memory_reused)
{
	const char *opts = getenv("MALLOCNG_OPTIONS");
	for (int r = 0; r < 3; r++) rt_round(r);        /* warm up */
	atomic_store(&rt_pages, 0);
	long f0 = minor_faults();
	for (int r = 3; r < 9; r++) rt_round(r);
	long faults = minor_faults() - f0, pages = atomic_load(&rt_pages);
	if (getenv("MALLOCNG_TEST_VERBOSE"))
		fprintf(stderr, "rounds: %ld faults for %ld pages written\n", faults, pages);
	if (!opts || !*opts)    /* (checked paths: pages go back at once) */
		ck_assert_msg(faults * 4 < pages, "%ld page faults in 6 rounds of threads that wrote %ld pages",
			      faults, pages);
	for (int i = 0; i < RT_TABLE; i++) free(atomic_exchange(&rt_table[i], NULL));
	malloc_trim(0);
}
END_TEST

static Suite *thread_suite(void)
{
	Suite *s = suite_create("thread");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_cross_thread_free);
	tcase_add_test(tc, test_cross_thread_free_big);
	tcase_add_test(tc, test_consumer_exit_hands_back);
	tcase_add_test(tc, test_pure_consumers);
	tcase_add_test(tc, test_batch_refilled_by_hand_over);
	tcase_add_test(tc, test_realloc_threads);
	tcase_add_test(tc, test_short_lived_threads);
	tcase_add_test(tc, test_free_after_owner_exit);
	tcase_add_test(tc, test_heap_kept_whole);
	tcase_add_test(tc, test_heap_spans);
	tcase_add_test(tc, test_bundle_swept);
	tcase_add_test(tc, test_xthread_global_lock);
	tcase_add_test(tc, test_thread_keeps_objects_two_holds);
	tcase_add_test(tc, test_thread_churn);
	tcase_add_test(tc, test_many_threads_alive);
	tcase_add_test(tc, test_trim_small_stack);
	tcase_add_test(tc, test_large_threads);
	tcase_add_test(tc, test_rounds_memory_reused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(thread_suite());
}
