/* test_realloc.c - realloc across size classes and mapping thresholds. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <malloc.h>
#include "mallocng.h"
#include "util.h"

#define SEED 0xabcdefu

static unsigned char *resize(unsigned char *p, size_t old, size_t n)
{
	unsigned char *q = realloc(p, n);
	REQUIRE(q != NULL, "realloc(%p, %zu) from %zu bytes returned NULL",
	              (void *)p, n, old);
	REQUIRE(((uintptr_t)q & 15) == 0, "realloc(.., %zu) = %p misaligned", n, (void *)q);
	size_t keep = old < n ? old : n;
	size_t bad = check_pattern(q, keep, SEED);
	REQUIRE(bad == keep,
	              "realloc %zu -> %zu (%p -> %p) lost content at offset %zu",
	              old, n, (void *)p, (void *)q, bad);
	/* extend the pattern over the new tail */
	if (n > old) {
		unsigned char *c = q;
		for (size_t i = old; i < n; i++) c[i] = pat_byte(SEED, i);
	}
	return q;
}

/* Every size 1..9000 byte by byte (covers all small class boundaries up to
 * there), then up and down again. */
START_TEST(test_every_boundary_small)
{
	size_t n = 1;
	unsigned char *p = malloc(1);
	ck_assert_ptr_nonnull(p);
	fill_pattern(p, 1, SEED);
	for (size_t m = 2; m <= 9000; m++) { p = resize(p, n, m); n = m; }
	for (size_t m = 8999; m >= 1; m--) { p = resize(p, n, m); n = m; }
	free(p);
}
END_TEST

/* Growing 1..300000 in geometric + odd steps and shrinking back, across
 * all classes and into and out of individually mapped sizes (>128 KiB). */
START_TEST(test_grow_shrink_300k)
{
	size_t n = 1;
	unsigned char *p = malloc(1);
	ck_assert_ptr_nonnull(p);
	fill_pattern(p, 1, SEED);
	while (n < 300000) {
		size_t m = n + n / 16 + 1 + (n % 7);
		if (m > 300000) m = 300000;
		p = resize(p, n, m);
		n = m;
	}
	while (n > 1) {
		size_t m = n - n / 16 - 1;
		if (m < 1) m = 1;
		p = resize(p, n, m);
		n = m;
	}
	free(p);
}
END_TEST

/* Sizes around each class/threshold, reached from below and from above. */
START_TEST(test_class_boundaries_large)
{
	static const size_t b[] = {
		4096, 8192, 16384, 32768, 65536, 98304, 131063, 131064, 131072,
		262144, 1048576, 4194304,
	};
	for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
		for (long d = -20; d <= 20; d += 5) {
			size_t target = b[i] + d;
			/* from a small object up, then back down to small */
			unsigned char *p = malloc(10);
			ck_assert_ptr_nonnull(p);
			fill_pattern(p, 10, SEED);
			p = resize(p, 10, target);
			p = resize(p, target, target + 1);
			p = resize(p, target + 1, target - 1);
			p = resize(p, target - 1, 100);
			free(p);
			/* from a big object down */
			p = malloc(4300000);
			ck_assert_ptr_nonnull(p);
			fill_pattern(p, 4300000, SEED);
			p = resize(p, 4300000, target);
			p = resize(p, target, 3);
			free(p);
		}
	}
}
END_TEST

START_TEST(test_mmap_transitions)
{
	static const size_t seq[] = {
		1000, 200000, 1048576, 4194304, 100000, 1000, 10, 131073, 131000,
		140000, 8000000, 150000, 16, 2097152, 2097153, 2093056, 5,
	};
	size_t n = 0;
	unsigned char *p = NULL;
	for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
		if (!p) {
			p = malloc(seq[i]);
			ck_assert_ptr_nonnull(p);
			fill_pattern(p, seq[i], SEED);
		} else {
			p = resize(p, n, seq[i]);
		}
		n = seq[i];
		/* other allocations in between, so in-place growth is not free */
		void *x = malloc(n / 2 + 1);
		ck_assert_ptr_nonnull(x);
		memset(x, 0x77, n / 2 + 1);
		free(x);
	}
	free(p);
}
END_TEST

START_TEST(test_realloc_null)
{
	for (size_t n = 0; n < 300000; n = n * 2 + 1) {
		errno = 0;
		unsigned char *p = realloc(NULL, n);
		ck_assert_msg(p != NULL, "realloc(NULL, %zu) = NULL", n);
		ck_assert_uint_eq((uintptr_t)p & 15, 0);
		ck_assert_uint_ge(malloc_usable_size(p), n);
		memset(p, 0x11, n);
		free(p);
	}
}
END_TEST

START_TEST(test_realloc_zero)
{
	static const size_t sizes[] = { 1, 16, 100, 5000, 131072, 1048576 };
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		unsigned char *p = malloc(sizes[i]);
		ck_assert_ptr_nonnull(p);
		memset(p, 0x42, sizes[i]);
		void *q = realloc(p, 0);
		/* mallocng(3): not freed-and-NULL, but a minimal object like
		 * malloc(0) (glibc would return NULL here) */
		ck_assert_msg(q != NULL, "realloc(malloc(%zu), 0) returned NULL", sizes[i]);
		ck_assert_uint_eq((uintptr_t)q & 15, 0);
		ck_assert_uint_eq(malloc_usable_size(q), 0);
		free(q);
	}
	void *q = realloc(NULL, 0);
	ck_assert_ptr_nonnull(q);
	free(q);
}
END_TEST

static void failing_realloc(size_t start)
{
	static const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 16, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX,
		POW2(50),
	};
	unsigned char *p = malloc(start);
	ck_assert_ptr_nonnull(p);
	fill_pattern(p, start, SEED);
	for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
		errno = 0;
		void *q = realloc(p, huge[i]);
		ck_assert_msg(q == NULL, "realloc(%zu bytes, %zu) returned %p", start, huge[i], q);
		ck_assert_msg(errno == ENOMEM, "realloc(.., %zu): errno %d", huge[i], errno);
		ck_assert_uint_eq(check_pattern(p, start, SEED), start);
	}
	/* p is still a live, usable object */
	ck_assert_uint_ge(malloc_usable_size(p), start);
	p = resize(p, start, start * 2 + 10);
	p = resize(p, start * 2 + 10, start / 2 + 1);
	free(p);
}

START_TEST(test_realloc_failure_keeps_object)
{
	failing_realloc(1);
	failing_realloc(100);
	failing_realloc(70000);
	failing_realloc(1048576);
}
END_TEST

/* A random walk over 200 live objects, each resized many times. */
START_TEST(test_realloc_random_walk)
{
	enum { N = 200, OPS = 20000 };
	static unsigned char *p[N];
	static size_t sz[N];
	uint64_t rng = 4242;
	for (int k = 0; k < OPS; k++) {
		int i = (int)(rng_next(&rng) % N);
		size_t r = rng_next(&rng) % 100, n;
		n = r < 70 ? rng_range(&rng, 1, 2000) :
		    r < 95 ? rng_range(&rng, 2000, 70000) : rng_range(&rng, 70000, 400000);
		if (!p[i]) {
			p[i] = malloc(n);
			ck_assert_ptr_nonnull(p[i]);
			fill_pattern(p[i], n, SEED);
		} else {
			p[i] = resize(p[i], sz[i], n);
		}
		sz[i] = n;
		if ((rng_next(&rng) & 15) == 0) { free(p[i]); p[i] = NULL; }
	}
	for (int i = 0; i < N; i++) {
		if (p[i]) ck_assert_uint_eq(check_pattern(p[i], sz[i], SEED), sz[i]);
		free(p[i]);
	}
}
END_TEST

/* After any realloc, all malloc_usable_size() bytes belong to the caller:
 * writing them must not be reported as an overflow by free or realloc. */
static void usable_after_realloc(void *arg)
{
	static const size_t sizes[] = { 1, 7, 24, 100, 1000, 4000, 20000, 131000,
	                                140000, 1048576 };
	(void)arg;
	for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
		for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
			unsigned char *p = malloc(sizes[a]);
			REQUIRE(p != NULL, "malloc");
			memset(p, 0xaa, malloc_usable_size(p));
			p = realloc(p, sizes[b]);
			REQUIRE(p != NULL, "realloc");
			size_t u = malloc_usable_size(p);
			REQUIRE(u >= sizes[b], "usable %zu < %zu after realloc", u, sizes[b]);
			memset(p, 0xbb, u);
			p = realloc(p, sizes[b] + 3);
			REQUIRE(p != NULL, "realloc");
			memset(p, 0xcc, malloc_usable_size(p));
			free(p);
			/* the same from an over-aligned object */
			p = aligned_alloc(256 << (a % 5), sizes[a]);
			REQUIRE(p != NULL, "aligned_alloc");
			memset(p, 0xaa, malloc_usable_size(p));
			p = realloc(p, sizes[b]);
			REQUIRE(p != NULL, "realloc");
			u = malloc_usable_size(p);
			REQUIRE(u >= sizes[b], "usable %zu < %zu after realloc", u, sizes[b]);
			memset(p, 0xbb, u);
			free(p);
		}
}

START_TEST(test_usable_after_realloc)
{
	expect_clean_exit("usable bytes after realloc", usable_after_realloc, NULL, 30);
}
END_TEST

/* Large over-aligned objects grow and shrink (mremap) with their content. */
START_TEST(test_realloc_large_aligned)
{
	static const size_t seq[] = { 3000000, 150000, 9000000, 140000, 100, 500000 };
	for (size_t al = 4096; al <= ((size_t)2 << 20); al *= 8) {
		size_t n = 200000;
		unsigned char *p = aligned_alloc(al, n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p & (al - 1), 0);
		fill_pattern(p, n, SEED);
		for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
			p = resize(p, n, seq[i]);
			n = seq[i];
		}
		free(p);
	}
}
END_TEST

/* mremap refuses a range over more than one mapping: a program that
 * madvises a part of its large buffer (here a page in the middle, with
 * other flags: the kernel splits the mapping there), or a retired span
 * joined over two mappings, must still be able to grow it (realloc then
 * copies; it returned NULL with ENOMEM before). */
START_TEST(test_realloc_split_mapping)
{
	const size_t n = 8 << 20;
	unsigned char *x = malloc(n);
	ck_assert_ptr_nonnull(x);
	fill_pattern(x, n, 41);
	unsigned char *mid = (unsigned char *)(((uintptr_t)x + n / 2) & ~(uintptr_t)4095);
	ck_assert_int_eq(madvise(mid, 4096, MADV_NOHUGEPAGE), 0);
	errno = 0;
	unsigned char *y = realloc(x, 8 * n);
	ck_assert_ptr_nonnull(y);
	ck_assert_int_eq(errno, 0);
	ck_assert_uint_eq(check_pattern(y, n, 41), n);
	free(y);
}
END_TEST

/* An object that realloc grows to 32 KiB or more gets a mapping of its own
 * (mallocng(7)); the mapping then grows and shrinks in place down to that
 * size, and an object shrunk below it goes back to a slot. */
static size_t large_count(void)
{
	struct mallocng_stats st = { .size = sizeof st };
	REQUIRE(mallocng_get_stats(&st) == 0, "mallocng_get_stats");
	return st.large_count;
}

START_TEST(test_growth_takes_mapping)
{
	size_t l0 = large_count(), n = 1000;
	unsigned char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	fill_pattern(p, n, SEED);
	for (; n + 1000 < 32768; n += 1000) p = resize(p, n, n + 1000);
	ck_assert_uint_eq(large_count(), l0);
	p = resize(p, n, 40000);
	n = 40000;
	ck_assert_uint_eq(large_count(), l0 + 1);
	/* growth by small steps: in place inside the mapping's reserve,
	 * so the object moves rarely (mremap) and is never copied */
	size_t moves = 0;
	for (; n < 400000; n += 256) {
		unsigned char *q = resize(p, n, n + 256);
		moves += q != p;
		p = q;
	}
	ck_assert_msg(moves < 32, "%zu moves growing 40000 -> 400000 by 256", moves);
	ck_assert_uint_eq(large_count(), l0 + 1);
	unsigned char *q = resize(p, n, 33000);
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(large_count(), l0 + 1);
	p = resize(q, 33000, 20000);
	ck_assert_uint_eq(large_count(), l0);
	free(p);
	/* malloc of the same sizes still takes slots: only growth maps */
	p = malloc(40000);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(large_count(), l0);
	free(p);
}
END_TEST

/* mallocng(3): "A resize that still fits the object's slot and does not
 * shrink it by more than one size class is done in place; otherwise the
 * contents move to a better-fitting slot". */
START_TEST(test_in_place_and_move)
{
	/* the object is allocated after more neighbours than the thread cache
	 * holds, so it comes from its class's current group, never one that
	 * is mostly empty (mallocng(7): objects of such groups may move) */
	for (size_t n = 2; n <= 6000; n++) {
		unsigned char *nb[80];
		for (int i = 0; i < 80; i++) {
			nb[i] = malloc(n);
			REQUIRE(nb[i] != NULL, "malloc");
		}
		unsigned char *p = nb[79];
		fill_pattern(p, n, SEED);
		unsigned char *q = realloc(p, n - 1);     /* same slot, same class */
		REQUIRE(q == p, "realloc(malloc(%zu), %zu) moved the object", n, n - 1);
		q = realloc(q, n);                         /* it was there before */
		REQUIRE(q == p, "realloc back to %zu moved the object", n);
		REQUIRE(check_pattern(q, n - 1, SEED) == n - 1, "content");
		for (int i = 0; i < 80; i++) free(nb[i]);
	}
	static const size_t big[] = { 100000, 50000, 20000, 5000 };
	for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
		unsigned char *p = malloc(big[i]);
		ck_assert_ptr_nonnull(p);
		fill_pattern(p, 10, SEED);
		unsigned char *q = realloc(p, 10);
		ck_assert_msg(q != p, "realloc(malloc(%zu), 10) stayed in its big slot", big[i]);
		ck_assert_uint_eq(check_pattern(q, 10, SEED), 10);
		free(q);
	}
}
END_TEST

static Suite *realloc_suite(void)
{
	Suite *s = suite_create("realloc");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_boundary_small);
	tcase_add_test(tc, test_grow_shrink_300k);
	tcase_add_test(tc, test_class_boundaries_large);
	tcase_add_test(tc, test_mmap_transitions);
	tcase_add_test(tc, test_realloc_null);
	tcase_add_test(tc, test_realloc_zero);
	tcase_add_test(tc, test_realloc_failure_keeps_object);
	tcase_add_test(tc, test_realloc_random_walk);
	tcase_add_test(tc, test_usable_after_realloc);
	tcase_add_test(tc, test_realloc_large_aligned);
	tcase_add_test(tc, test_in_place_and_move);
	tcase_add_test(tc, test_growth_takes_mapping);
	tcase_add_test(tc, test_realloc_split_mapping);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(realloc_suite());
}
