/* test_fork.c - fork while other threads allocate. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <malloc.h>
#include "util.h"

#define NWORKERS 4

static atomic_int stop;
static atomic_long worker_ops;

static void *worker(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 0x100000001b3ull + 1;
	enum { SLOTS = 128 };
	unsigned char *p[SLOTS] = { 0 };
	size_t sz[SLOTS] = { 0 };
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int i = (int)(rng_next(&rng) % SLOTS);
		if (p[i]) {
			REQUIRE(check_pattern(p[i], sz[i], (uint32_t)i) == sz[i],
			        "object of %zu bytes corrupted", sz[i]);
			free(p[i]);
			p[i] = NULL;
		} else {
			size_t r = rng_next(&rng) & 63;
			sz[i] = r ? rng_range(&rng, 1, 3000) : rng_range(&rng, 100000, 400000);
			p[i] = (rng_next(&rng) & 3) ? malloc(sz[i]) : realloc(NULL, sz[i]);
			REQUIRE(p[i] != NULL, "malloc(%zu) failed", sz[i]);
			fill_pattern(p[i], sz[i], (uint32_t)i);
		}
		atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
	}
	for (int i = 0; i < SLOTS; i++) free(p[i]);
	return NULL;
}

/* Objects of the parent that the child frees (inherited heap). */
static void *inherited[64];

static void child_body(void *arg)
{
	(void)arg;
	uint64_t rng = (uint64_t)getpid() | 1;
	void *v[300];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 300; i++) {
			size_t n = (i % 50 == 0) ? rng_range(&rng, 100000, 400000)
			                         : rng_range(&rng, 0, 6000);
			v[i] = malloc(n);
			REQUIRE(v[i] != NULL, "malloc(%zu) failed", n);
			fill_pattern(v[i], n, (uint32_t)i);
			v[i] = realloc(v[i], n + 10);
			REQUIRE(v[i] != NULL, "realloc(%zu) failed", n + 10);
			REQUIRE(check_pattern(v[i], n, (uint32_t)i) == n, "realloc lost content");
		}
		for (int i = 0; i < 300; i++) free(v[i]);
	}
	for (int i = 0; i < 64; i++) free(inherited[i]);
	/* a thread in the child works too */
	pthread_t t;
	atomic_store(&stop, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, worker, (void *)99), 0);
	usleep(20000);
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
}

START_TEST(test_fork_under_load)
{
	SKIP_IF_EMULATED("qemu-user (7.2) aborts in a child forked while other threads run "
	                 "(\"cpu_exec: assertion failed\")");
	pthread_t t[NWORKERS];
	atomic_store(&stop, 0);
	for (int i = 0; i < 64; i++) {
		inherited[i] = malloc(16 + i * 100);
		ck_assert_ptr_nonnull(inherited[i]);
	}
	for (int i = 0; i < NWORKERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 1)), 0);
	for (int k = 0; k < 20; k++) {
		long before = atomic_load(&worker_ops);
		while (atomic_load(&worker_ops) < before + 2000) sched_yield();
		char name[32];
		snprintf(name, sizeof name, "fork #%d", k);
		/* a deadlocked child is killed by the alarm after 20 s */
		expect_clean_exit(name, child_body, NULL, 20);
	}
	/* the parent carries on */
	long before = atomic_load(&worker_ops);
	while (atomic_load(&worker_ops) < before + 10000) sched_yield();
	atomic_store(&stop, 1);
	for (int i = 0; i < NWORKERS; i++) pthread_join(t[i], NULL);
	for (int i = 0; i < 64; i++) free(inherited[i]);
	void *p = malloc(12345);
	ck_assert_ptr_nonnull(p);
	free(p);
}
END_TEST

/* fork from a thread other than the main one */
static void *forking_thread(void *arg)
{
	(void)arg;
	for (int k = 0; k < 5; k++) {
		char name[32];
		snprintf(name, sizeof name, "fork from thread #%d", k);
		expect_clean_exit(name, child_body, NULL, 20);
	}
	return NULL;
}

START_TEST(test_fork_from_thread)
{
	pthread_t t[2], f;
	atomic_store(&stop, 0);
	for (int i = 0; i < 64; i++) inherited[i] = malloc(100);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 7)), 0);
	ck_assert_int_eq(pthread_create(&f, NULL, forking_thread, NULL), 0);
	pthread_join(f, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
	for (int i = 0; i < 64; i++) free(inherited[i]);
}
END_TEST

static Suite *fork_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fork_under_load);
	tcase_add_test(tc, test_fork_from_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(fork_suite());
}
