/* test_enomem.c - behaviour when the address space runs out, and recovery. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <malloc.h>
#include "util.h"

#define HEADROOM_KIB (64 * 1024)

/* Objects are chained through their first word: no side table needed. */
struct node { struct node *next; };

static void limit_address_space(void)
{
	long vsz = vm_size_kib();
	ck_assert_int_gt(vsz, 0);
	struct rlimit rl;
	rl.rlim_cur = rl.rlim_max = ((rlim_t)vsz + HEADROOM_KIB) * 1024;
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
}

static long fill_until_null(size_t n, struct node **list, int *err)
{
	long count = 0;
	for (;;) {
		errno = 0;
		struct node *p = malloc(n);
		if (!p) { *err = errno; break; }
		REQUIRE(((uintptr_t)p & 15) == 0, "misaligned %p", (void *)p);
		memset(p, 0x5c, n < 64 ? n : 64);   /* usable (partly touched) */
		p->next = *list;
		*list = p;
		count++;
		REQUIRE(count < 100000000L, "no limit reached");
	}
	return count;
}

static void free_list(struct node *l)
{
	while (l) { struct node *nx = l->next; free(l); l = nx; }
}

static void enomem_body(void *arg)
{
	(void)arg;
	struct node *list = NULL;
	int err = 0;

	limit_address_space();

	/* 1 MiB blocks */
	long big = fill_until_null(1 << 20, &list, &err);
	ck_assert_msg(err == ENOMEM, "malloc(1 MiB) failed with errno %d, expected ENOMEM", err);
	ck_assert_msg(big >= 20 && big <= 64, "%ld blocks of 1 MiB in 64 MiB of headroom", big);
	/* other requests also fail cleanly while memory is exhausted */
	errno = 0;
	ck_assert_ptr_null(malloc(4 << 20));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(calloc(1, 4 << 20));
	ck_assert_int_eq(errno, ENOMEM);
	free_list(list);
	list = NULL;

	/* recovery: the memory came back */
	void *p = malloc(1 << 20);
	ck_assert_msg(p != NULL, "malloc(1 MiB) fails after freeing all 1 MiB blocks");
	memset(p, 1, 1 << 20);
	free(p);
	long again = fill_until_null(1 << 20, &list, &err);
	ck_assert_msg(again >= big - 2, "only %ld of %ld blocks after recovery", again, big);
	free_list(list);
	list = NULL;

	/* small objects until NULL */
	long small = fill_until_null(100, &list, &err);
	ck_assert_msg(err == ENOMEM, "malloc(100) failed with errno %d, expected ENOMEM", err);
	ck_assert_msg(small > 100000, "only %ld small objects in 64 MiB", small);
	/* growing one of them: either it works, or it fails with ENOMEM and
	 * leaves the object as it was */
	struct node *keep = list, *next = list->next;
	errno = 0;
	struct node *grown = realloc(keep, 8 << 20);
	if (grown) {
		ck_assert_ptr_eq(grown->next, next);
		list = grown;
	} else {
		ck_assert_int_eq(errno, ENOMEM);
		ck_assert_ptr_eq(keep->next, next);
	}
	free_list(list);
	list = NULL;

	/* recovery after small objects: big and small allocations work again */
	p = malloc(1 << 20);
	ck_assert_msg(p != NULL, "malloc(1 MiB) fails after freeing all small objects");
	memset(p, 2, 1 << 20);
	free(p);
	long big2 = fill_until_null(1 << 20, &list, &err);
	ck_assert_msg(big2 >= big - 4,
	              "after small objects were freed only %ld of %ld MiB blocks fit", big2, big);
	free_list(list);
	list = NULL;
	long small2 = fill_until_null(100, &list, &err);
	ck_assert_msg(small2 >= small * 9 / 10, "small objects: %ld then %ld", small, small2);
	free_list(list);
}

START_TEST(test_enomem_and_recovery)
{
	SKIP_IF_EMULATED("RLIMIT_AS bounds the emulator's own address space, not the program's");
	expect_clean_exit("RLIMIT_AS exhaustion", enomem_body, NULL, 100);
}
END_TEST

/* realloc growing until the limit keeps the old object intact */
static void realloc_body(void *arg)
{
	(void)arg;
	limit_address_space();
	size_t n = 1 << 20;
	unsigned char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	fill_pattern(p, n, 7);
	for (;;) {
		errno = 0;
		unsigned char *q = realloc(p, n + (1 << 20));
		if (!q) break;
		p = q;
		fill_pattern(p + n, 1 << 20, (uint32_t)(n >> 20) + 7);
		n += 1 << 20;
	}
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_msg(n >= 16 << 20, "realloc failed already at %zu bytes", n);
	for (size_t off = 0; off < n; off += 1 << 20)
		REQUIRE(check_pattern(p + off, 1 << 20, (uint32_t)(off >> 20) + 7) == 1 << 20,
		        "realloc lost content at MiB %zu", off >> 20);
	free(p);
	p = malloc(8 << 20);
	ck_assert_ptr_nonnull(p);
	free(p);
}

START_TEST(test_realloc_enomem)
{
	SKIP_IF_EMULATED("RLIMIT_AS bounds the emulator's own address space, not the program's");
	expect_clean_exit("realloc until RLIMIT_AS", realloc_body, NULL, 60);
}
END_TEST

/* ---- injected mmap failures (MALLOCNG_OPTIONS=fail_mmap=N: the Nth and
 * every later mapping fails) ----
 * The workload runs in a fresh process (options are read at start-up): it
 * allocates a mix of sizes and kinds; every failure must be a NULL with
 * errno ENOMEM, never a crash or a diagnostic, live objects stay intact and
 * can be reallocated (or not) and freed.  Exit 0: done, failures seen;
 * 1: done, no failure seen; anything else: an error. */

static void *fail_thread(void *arg)
{
	(void)arg;
	errno = 0;
	void *p = malloc(100);
	if (!p && errno != ENOMEM) return (void *)1;
	free(p);
	return NULL;
}

static int fail_mmap_workload(void)
{
	static const size_t sizes[] = { 16, 100, 1000, 5000, 70000, 300000, 2 << 20, 40 };
	enum { N = 2000 };
	static void *v[N];
	static size_t sz[N];
	long failures = 0;
	for (int i = 0; i < N; i++) {
		size_t n = sizes[i % 8] + i % 5;
		errno = 0;
		switch (i % 4) {
		case 0: v[i] = malloc(n); break;
		case 1: v[i] = calloc(1, n); break;
		case 2: v[i] = aligned_alloc(4096, n); break;
		case 3: v[i] = realloc(NULL, n); break;
		}
		if (!v[i]) {
			if (errno != ENOMEM) return 2;
			failures++;
			continue;
		}
		size_t touch = n < 100000 ? n : 4096;
		if ((i % 4 == 1) && check_bytes(v[i], touch, 0) != touch) return 3;
		sz[i] = n < 512 ? n : 512;   /* the pattern covers the head only */
		memset(v[i], 0x17, touch);
		fill_pattern(v[i], sz[i], (uint32_t)i);
	}
	pthread_t t;
	void *r = NULL;
	if (pthread_create(&t, NULL, fail_thread, NULL) == 0) {
		pthread_join(t, &r);
		if (r) return 4;
	}
	for (int i = 0; i < N; i++) {
		if (!v[i]) continue;
		if (check_pattern(v[i], sz[i], (uint32_t)i) != sz[i]) return 5;
		errno = 0;
		void *q = realloc(v[i], sizes[i % 8] * 3);
		if (!q) {
			if (errno != ENOMEM) return 6;
			failures++;
			if (check_pattern(v[i], sz[i], (uint32_t)i) != sz[i]) return 7;
		} else {
			v[i] = q;
			if (check_pattern(v[i], sz[i], (uint32_t)i) != sz[i]) return 8;
		}
	}
	for (int i = N - 1; i >= 0; i--) free(v[i]);
	/* whatever is left of the heap still serves what it can */
	for (int i = 0; i < 100; i++) {
		errno = 0;
		void *p = malloc(24);
		if (!p && errno != ENOMEM) return 9;
		free(p);
	}
	return failures ? 0 : 1;
}

START_TEST(test_fail_mmap_injection)
{
	int clean_runs = 0;
	for (long n = 1; n <= 3000; n = n < 40 ? n + 1 : n * 3 / 2) {
		char err[4096], opt[64];
		snprintf(opt, sizeof opt, "fail_mmap=%ld", n);
		int st = run_self(opt, "fail_mmap", 30, err, sizeof err);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 1,
		              "fail_mmap=%ld: workload %s %d; stderr: <%s>", n,
		              WIFEXITED(st) ? "exited with status" : "killed by signal",
		              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), err);
		ck_assert_msg(!strstr(err, "mallocng: "), "fail_mmap=%ld: diagnostic <%s>", n, err);
		if (n <= 3)
			ck_assert_msg(WEXITSTATUS(st) == 0,
			              "fail_mmap=%ld: no allocation failed (injection not working?)", n);
		clean_runs += WEXITSTATUS(st) == 1;
	}
	(void)clean_runs;
	/* without injection the same workload never fails */
	char err[4096];
	int st = run_self(NULL, "fail_mmap", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1,
	              "workload without injection: status 0x%x, stderr <%s>", st, err);
}
END_TEST

static Suite *enomem_suite(void)
{
	Suite *s = suite_create("enomem");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_enomem_and_recovery);
	tcase_add_test(tc, test_realloc_enomem);
	tcase_add_test(tc, test_fail_mmap_injection);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	const char *sc = self_scenario(argc, argv);
	if (sc && !strcmp(sc, "fail_mmap"))
		return fail_mmap_workload();
	return run_suite(enomem_suite());
}
