/* test_abandoned_race.c - two threads racing to free the last live slots
 * of abandoned groups (src/group.c, abandoned_release_slots; src/release.c,
 * the remote batch that hands a group's slots over with one call).
 *
 * Each round: thread A allocates N objects of one size (several groups of
 * its class), stamps them, frees a few of them in some rounds (so that its
 * groups are abandoned with room, on abandoned[], and not only on the
 * full ring), and exits: its groups are abandoned.  Threads B and C start
 * together on a barrier and free alternate objects (B the even ones, C the
 * odd ones), in the same order, so that both hand over the slots of one
 * group at about the same moment and one of the two frees the group's
 * last live slots: the lock-free path (bits into the remote mask) against
 * the locked one (bits into avail, remote collected, the group released
 * when empty), both ways round, and the two at thread exit, when each
 * hands over its remote batch's last entry.  The sizes vary from round to
 * round: nested groups (whose release frees their container slot, itself
 * in an abandoned group of A's) and mapped ones.
 *
 * Afterwards the live objects and bytes are those of before, and once
 * malloc_trim has released the groups that two lock-free frees left empty
 * (group.c allows that), so are the groups of every class and the freed
 * slots held in them: a slot lost by a race (a bit of avail or remote
 * overwritten) would keep its group for good.  An abort (a double free
 * reported by a race that sets a bit twice) fails the test too (Check
 * runs it in a child). */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <malloc.h>
#include "mallocng.h"
#include "util.h"

enum { MAXN = 384 };
static unsigned char *objs[MAXN];
static size_t round_n, round_size;
static int round_holes;         /* free every round_holes-th object in A (0: none) */
static pthread_barrier_t bar;
static _Atomic int spin_gate;   /* the second of two meetings: see freer_thread */

static const size_t sizes[] = {
	1, 24, 40, 72, 120, 200, 360, 600, 1000, 1500, 2500, 4000, 6000, 9000
};

static unsigned char stamp(size_t i) { return (unsigned char)(i * 37 + 11); }

static void *owner_thread(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < round_n; i++) {
		unsigned char *p = malloc(round_size);
		REQUIRE(p != NULL, "malloc(%zu)", round_size);
		p[0] = p[round_size - 1] = stamp(i);
		objs[i] = p;
	}
	if (round_holes)
		for (size_t i = 3; i < round_n; i += (size_t)round_holes) {
			free(objs[i]);
			objs[i] = NULL;
		}
	return NULL;
}

static void *freer_thread(void *arg)
{
	size_t first = (size_t)(uintptr_t)arg;
	/* both threads created and waiting; then a spinning meeting, so that
	 * neither starts while the other is still being woken by the barrier
	 * (a futex wake takes longer than a round of frees) */
	pthread_barrier_wait(&bar);
	atomic_fetch_add(&spin_gate, 1);
	for (long k = 0; atomic_load_explicit(&spin_gate, memory_order_relaxed) % 2 && k < 1000000; k++)
		;
	for (size_t i = first; i < round_n; i += 2) {
		unsigned char *p = objs[i];
		if (!p) continue;
		REQUIRE(p[0] == stamp(i) && p[round_size - 1] == stamp(i),
		        "object %zu of %zu bytes overwritten", i, round_size);
		free(p);
	}
	return NULL;
}

static void one_round(size_t size, size_t n, int holes)
{
	pthread_t a, b, c;
	round_size = size;
	round_n = n;
	round_holes = holes;
	ck_assert_int_eq(pthread_create(&a, NULL, owner_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(a, NULL), 0);
	ck_assert_int_eq(pthread_create(&b, NULL, freer_thread, (void *)0), 0);
	ck_assert_int_eq(pthread_create(&c, NULL, freer_thread, (void *)1), 0);
	ck_assert_int_eq(pthread_join(b, NULL), 0);
	ck_assert_int_eq(pthread_join(c, NULL), 0);
}

static void snapshot(struct mallocng_stats *st)
{
	malloc_trim(0);
	memset(st, 0, sizeof *st);
	st->size = sizeof *st;
	ck_assert_int_eq(mallocng_get_stats(st), 0);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

START_TEST(test_last_slots_race)
{
	static struct mallocng_stats before, after;
	const size_t nsizes = sizeof sizes / sizeof sizes[0];
	/* a few seconds natively on 2 busy cores; under an emulator, where a
	 * thread costs a hundred times more, a time bound and fewer rounds */
	int rounds = test_emulator() ? 150 : 3000;
	double budget = test_emulator() ? 60 : 6, t0;
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
	/* a first round of every size: what the C library allocates for
	 * threads, and the container groups of the nested ones, stay */
	for (size_t k = 0; k < nsizes; k++) one_round(sizes[k], 64, 0);
	snapshot(&before);

	t0 = now_s();
	int r;
	for (r = 0; r < rounds && now_s() - t0 < budget; r++) {
		size_t size = sizes[r % nsizes];
		/* several groups of the class, at most about 1 MiB in all */
		size_t n = (1u << 20) / (size + 16);
		if (n > MAXN) n = MAXN;
		n -= rng_range(&rng, 0, n / 4);
		one_round(size, n, (r / (int)nsizes) % 3 == 0 ? 0 : (int)rng_range(&rng, 5, 17));
	}
	ck_assert_int_ge(r, (int)nsizes);
	printf("%s: %d rounds in %.1f s\n", __func__, r, now_s() - t0);

	snapshot(&after);
	ck_assert_msg(after.objects_live == before.objects_live && after.bytes_live == before.bytes_live,
	              "%zu objects (%zu bytes) live after %d rounds, %zu (%zu) before",
	              after.objects_live, after.bytes_live, r, before.objects_live, before.bytes_live);
	for (int sc = 0; sc < MALLOCNG_NCLASS; sc++) {
		const struct mallocng_class_stats *x = &before.classes[sc], *y = &after.classes[sc];
		ck_assert_msg(y->groups <= x->groups && y->slots_used <= x->slots_used &&
		              y->slots_cached <= x->slots_cached,
		              "class of %zu-byte slots after %d rounds: %zu groups, %zu slots used, "
		              "%zu cached; before: %zu, %zu, %zu", y->slot_size, r,
		              y->groups, y->slots_used, y->slots_cached,
		              x->groups, x->slots_used, x->slots_cached);
	}
	pthread_barrier_destroy(&bar);
}
END_TEST

static Suite *abandoned_race_suite(void)
{
	Suite *s = suite_create("abandoned_race");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_last_slots_race);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(abandoned_race_suite());
}
