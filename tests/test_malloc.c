/* test_malloc.c - malloc, calloc, reallocarray, malloc_usable_size. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include "util.h"

/* Sizes beyond the every-byte range: class boundaries, page and mmap
 * thresholds, and large objects. */
static const size_t big_sizes[] = {
	4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 32767,
	32768, 32769, 65535, 65536, 65537, 100000, 131062, 131063, 131064,
	131071, 131072, 131073, 200000, 262144, 262145, 500000, 1048575,
	1048576, 1048577, 3000000, 8388608, 16777217,
};
#define NBIG (sizeof big_sizes / sizeof big_sizes[0])

static void assert_aligned(const void *p, size_t n)
{
	REQUIRE(p != NULL, "malloc(%zu) returned NULL", n);
	REQUIRE(((uintptr_t)p & 15) == 0,
	              "malloc(%zu) = %p is not 16-byte aligned", n, p);
}

START_TEST(test_every_small_size)
{
	/* sizes 0..5000, each written fully, read back, freed */
	for (size_t n = 0; n <= 5000; n++) {
		unsigned char *p = malloc(n);
		assert_aligned(p, n);
		fill_pattern(p, n, (uint32_t)n);
		REQUIRE(check_pattern(p, n, (uint32_t)n) == n, "malloc(%zu) content lost", n);
		free(p);
	}
}
END_TEST

START_TEST(test_large_sizes)
{
	for (size_t k = 0; k < NBIG; k++) {
		size_t n = big_sizes[k];
		unsigned char *p = malloc(n);
		assert_aligned(p, n);
		fill_pattern(p, n, (uint32_t)k);
		ck_assert_uint_eq(check_pattern(p, n, (uint32_t)k), n);
		free(p);
	}
}
END_TEST

/* Many objects alive at once: no two may overlap, every pointer aligned. */
START_TEST(test_live_objects_disjoint)
{
	enum { N = 6000 };
	static unsigned char *p[N];
	static size_t sz[N];
	uint64_t rng = 0x1234567;

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			if (p[i]) continue;
			size_t r = rng_next(&rng) % 100;
			sz[i] = r < 60 ? rng_range(&rng, 0, 256) :
			        r < 90 ? rng_range(&rng, 257, 8192) :
			        r < 99 ? rng_range(&rng, 8193, 140000) :
			                 rng_range(&rng, 140000, 600000);
			p[i] = malloc(sz[i]);
			assert_aligned(p[i], sz[i]);
			fill_pattern(p[i], sz[i], (uint32_t)i * 7919u + round);
		}
		for (int i = 0; i < N; i++) {
			size_t bad = check_pattern(p[i], sz[i], (uint32_t)i * 7919u + round);
			REQUIRE(bad == sz[i],
			              "object %d (%zu bytes at %p) overwritten at offset %zu",
			              i, sz[i], (void *)p[i], bad);
		}
		/* free a random half; the next round refills (new seed) */
		for (int i = 0; i < N; i++) {
			if (rng_next(&rng) & 1) { free(p[i]); p[i] = NULL; }
			else fill_pattern(p[i], sz[i], (uint32_t)i * 7919u + round + 1);
		}
	}
	for (int i = 0; i < N; i++) free(p[i]);
}
END_TEST

/* The thread cache keeps one stack per class, each on a sentinel that
 * ends the stack below it (internal.h).  For every class: free more slots
 * than its cache holds, so that its stack is full, then take objects of
 * the next class (its stack empty) and of the class itself: a push past
 * the limit would overwrite the next class's sentinel and hand a slot out
 * twice, or in the wrong class.  Contents and disjointness are checked. */
START_TEST(test_cache_stacks_apart)
{
	enum { K = 80, M = 8 };
	static unsigned char *a[K], *b[M];
	/* the class strides of size_class.c: 16..128 by 16, then four per
	 * doubling; n = stride - 8 is the biggest size of a class, n + 1 the
	 * smallest of the next */
	size_t stride = 0, step = 16;
	for (int sc = 0; sc < 30; sc++) {
		if (sc >= 8 && (sc - 8) % 4 == 0) step = stride / 4;
		stride += step;
		size_t n = stride - 8;
		for (int i = 0; i < K; i++) a[i] = malloc(n);
		for (int i = 0; i < K; i++) free(a[i]);
		for (int j = 0; j < M; j++) {
			b[j] = malloc(n + 1);                /* the next class */
			ck_assert_ptr_nonnull(b[j]);
			REQUIRE(malloc_usable_size(b[j]) > n, "malloc(%zu) got a slot of %zu bytes",
				n + 1, malloc_usable_size(b[j]));
			fill_pattern(b[j], n + 1, 1000u + j);
		}
		for (int i = 0; i < K; i++) {
			a[i] = malloc(n);
			ck_assert_ptr_nonnull(a[i]);
			fill_pattern(a[i], n, (uint32_t)i);
			for (int j = 0; j < M; j++)
				REQUIRE(a[i] + n <= b[j] || b[j] + n + 1 <= a[i],
					"class of %zu: %p overlaps %p of the next class", n, (void *)a[i],
					(void *)b[j]);
		}
		for (int j = 0; j < M; j++)
			REQUIRE(check_pattern(b[j], n + 1, 1000u + j) == n + 1,
				"object of %zu bytes overwritten", n + 1);
		for (int i = 0; i < K; i++) {
			REQUIRE(check_pattern(a[i], n, (uint32_t)i) == n, "object %d of %zu bytes overwritten",
				i, n);
			free(a[i]);
		}
		for (int j = 0; j < M; j++) free(b[j]);
	}
}
END_TEST

START_TEST(test_malloc0_unique)
{
	enum { N = 200 };
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = malloc(0);
		assert_aligned(p[i], 0);
		for (int j = 0; j < i; j++)
			REQUIRE(p[i] != p[j], "malloc(0) returned %p twice", p[i]);
	}
	for (int i = 0; i < N; i++) free(p[i]);
	free(NULL);
}
END_TEST

START_TEST(test_calloc_zeroed)
{
	static const size_t counts[] = { 0, 1, 3, 7, 16, 100, 1000, 4099, 30000 };
	static const size_t sizes[] = { 0, 1, 2, 8, 13, 24, 100, 4096 };
	for (size_t a = 0; a < sizeof counts / sizeof *counts; a++)
		for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
			size_t n = counts[a] * sizes[b];
			unsigned char *p = calloc(counts[a], sizes[b]);
			assert_aligned(p, n);
			size_t bad = check_bytes(p, n, 0);
			ck_assert_msg(bad == n, "calloc(%zu,%zu)[%zu] = %u",
			              counts[a], sizes[b], bad, p[bad]);
			memset(p, 0xee, n);
			free(p);
		}
}
END_TEST

/* calloc must zero memory that malloc handed out before and that was
 * dirtied by the program (the slot is reused). */
static void calloc_reuse(size_t n, int count)
{
	unsigned char **v = malloc(count * sizeof *v);
	ck_assert_ptr_nonnull(v);
	for (int i = 0; i < count; i++) {
		v[i] = malloc(n);
		REQUIRE(v[i] != NULL, "malloc(%zu) failed", n);
		memset(v[i], 0xa5, malloc_usable_size(v[i]));
	}
	for (int i = 0; i < count; i++) free(v[i]);
	for (int i = 0; i < count; i++) {
		v[i] = calloc(1, n);
		assert_aligned(v[i], n);
		size_t bad = check_bytes(v[i], n, 0);
		ck_assert_msg(bad == n,
		              "calloc(1,%zu) object %d byte %zu = 0x%02x (reused memory not zeroed)",
		              n, i, bad, v[i][bad]);
		memset(v[i], 0x5a, n);
	}
	for (int i = 0; i < count; i++) free(v[i]);
	free(v);
}

START_TEST(test_calloc_reused_memory)
{
	for (size_t n = 1; n <= 600; n += 7) calloc_reuse(n, 64);
	for (size_t k = 0; k < NBIG; k++)
		calloc_reuse(big_sizes[k], big_sizes[k] > 1000000 ? 3 : 8);
	/* same-size in a tight loop: the freed slot is the first candidate */
	for (int i = 0; i < 1000; i++) {
		size_t n = 1 + (i * 37) % 3000;
		unsigned char *p = malloc(n);
		REQUIRE(p != NULL, "malloc(%zu) failed", n);
		memset(p, 0xff, n);
		free(p);
		p = calloc(n, 1);
		REQUIRE(p != NULL, "calloc(%zu, 1) failed", n);
		REQUIRE(check_bytes(p, n, 0) == n, "calloc(%zu, 1) not zeroed", n);
		free(p);
	}
}
END_TEST

/* Objects of n bytes, each filled with 0xff to its usable size. */
static void fill_many(void **p, int k, size_t n)
{
	for (int i = 0; i < k; i++) {
		p[i] = malloc(n);
		REQUIRE(p[i] != NULL, "malloc(%zu)", n);
		memset(p[i], 0xff, malloc_usable_size(p[i]));
	}
}

/* The mapping of an emptied group may keep its pages (a warm span) and be
 * reused for a large object: calloc must still return zeros. */
START_TEST(test_calloc_after_group_reuse)
{
	static void *p[256];
	static const size_t want[] = { 131072, 140000, 150000, 160000 };
	for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
		fill_many(p, 256, 5000);     /* groups of 32 slots of 5 KiB: 164 KiB */
		for (int i = 0; i < 256; i++) free(p[i]);
		unsigned char *q = calloc(want[w], 1);
		REQUIRE(q != NULL, "calloc(%zu, 1)", want[w]);
		size_t bad = check_bytes(q, want[w], 0);
		REQUIRE(bad == want[w], "calloc(%zu, 1) after emptied groups: byte %zu = 0x%02x",
		        want[w], bad, q[bad]);
		free(q);
	}
}
END_TEST

/* The same after malloc_trim, when the emptied groups' ranges are joined
 * on the ring of retired ranges (with the rest of the 1 MiB mappings they
 * were cut from): a large calloc taking the front of a joined range must
 * still read zeros, written data having been given back. */
START_TEST(test_calloc_after_joined_spans)
{
	static void *p[1024];
	static const size_t want[] = { 300000, 1 << 20, 2 << 20 };
	for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
		fill_many(p, 1024, 5000);
		for (int i = 0; i < 1024; i++) free(p[i]);
		malloc_trim(0);
		unsigned char *q = calloc(want[w], 1);
		REQUIRE(q != NULL, "calloc(%zu, 1)", want[w]);
		size_t bad = check_bytes(q, want[w], 0);
		REQUIRE(bad == want[w], "calloc(%zu, 1) after trimmed groups: byte %zu = 0x%02x",
		        want[w], bad, q[bad]);
		memset(q, 0x5a, want[w]);
		free(q);
	}
}
END_TEST

/* A group made in a warm span that held another class: the old slots'
 * bytes lie where the new group's slot headers go.  Objects that fill
 * their slots (free then checks the next slot's header, not a check byte)
 * are freed without a false overflow report. */
START_TEST(test_group_in_warm_span)
{
	static void *p[512];
	for (int round = 0; round < 4; round++) {
		fill_many(p, 256, 5000);
		for (int i = 0; i < 256; i++) free(p[i]);
		size_t n = round & 1 ? 4096 - 8 : 3072 - 8;  /* whole slots of 4 and 3 KiB */
		for (int i = 0; i < 512; i++) {
			p[i] = malloc(n);
			REQUIRE(p[i] != NULL, "malloc(%zu)", n);
			memset(p[i], i & 0xff, n);
		}
		for (int i = 0; i < 512; i++) {
			REQUIRE(check_bytes(p[i], n, i & 0xff) == n, "object %d of %zu bytes changed", i, n);
			free(p[i]);
		}
	}
}
END_TEST

/* Freed large mappings may be kept and reused: calloc of any large size
 * after dirty large objects of other sizes were freed is still zero. */
START_TEST(test_calloc_after_large_reuse)
{
	static const size_t dirty[] = { 300000, 1 << 20, 4 << 20, 140000 };
	static const size_t want[] = { 131072, 140000, 200000, 300000, 500000, 1 << 20,
	                               3 << 20, 4 << 20 };
	for (size_t d = 0; d < sizeof dirty / sizeof *dirty; d++) {
		for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
			void *p[3];
			for (int k = 0; k < 3; k++) {
				p[k] = malloc(dirty[d]);
				REQUIRE(p[k] != NULL, "malloc(%zu)", dirty[d]);
				memset(p[k], 0xff, malloc_usable_size(p[k]));
			}
			for (int k = 0; k < 3; k++) free(p[k]);
			unsigned char *q = calloc(1, want[w]);
			REQUIRE(q != NULL, "calloc(1, %zu)", want[w]);
			size_t bad = check_bytes(q, want[w], 0);
			REQUIRE(bad == want[w], "calloc(1, %zu) after freeing dirty %zu-byte objects: "
			        "byte %zu = 0x%02x", want[w], dirty[d], bad, q[bad]);
			memset(q, 0xee, want[w]);
			/* and realloc growth exposes no stale bytes through calloc */
			q = realloc(q, want[w] + 100000);
			REQUIRE(q != NULL, "realloc");
			free(q);
		}
	}
}
END_TEST

START_TEST(test_calloc_overflow)
{
	static const size_t pairs[][2] = {
		{ SIZE_MAX, 2 }, { 2, SIZE_MAX }, { SIZE_MAX / 2 + 1, 2 },
		{ POW2(32), POW2(32) }, { SIZE_MAX, SIZE_MAX },
		{ (SIZE_MAX / 3) + 1, 3 }, { 65537, (SIZE_MAX / 65536) },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		errno = 0;
		void *p = calloc(pairs[i][0], pairs[i][1]);
		ck_assert_msg(p == NULL, "calloc(%zu,%zu) overflow returned %p",
		              pairs[i][0], pairs[i][1], p);
		ck_assert_msg(errno == ENOMEM, "calloc(%zu,%zu): errno %d, expected ENOMEM",
		              pairs[i][0], pairs[i][1], errno);

		errno = 0;
		p = reallocarray(NULL, pairs[i][0], pairs[i][1]);
		ck_assert_ptr_null(p);
		ck_assert_int_eq(errno, ENOMEM);

		/* a failing reallocarray leaves the old object alone */
		unsigned char *q = malloc(50);
		ck_assert_ptr_nonnull(q);
		fill_pattern(q, 50, 99);
		errno = 0;
		p = reallocarray(q, pairs[i][0], pairs[i][1]);
		ck_assert_ptr_null(p);
		ck_assert_int_eq(errno, ENOMEM);
		ck_assert_uint_eq(check_pattern(q, 50, 99), 50);
		free(q);
	}
	/* a product that fits is fine */
	unsigned char *p = reallocarray(NULL, 1000, 3);
	ck_assert_ptr_nonnull(p);
	memset(p, 1, 3000);
	p = reallocarray(p, 2000, 3);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(check_bytes(p, 3000, 1), 3000);
	free(p);
}
END_TEST

START_TEST(test_huge_requests)
{
	static const size_t huge[] = {
		(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - 4096,
		SIZE_MAX - 65536, (size_t)PTRDIFF_MAX, POW2(62),
		(size_t)PTRDIFF_MAX - 100, POW2(50),
	};
	for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
		errno = 0;
		void *p = malloc(huge[i]);
		ck_assert_msg(p == NULL, "malloc(%zu) returned %p", huge[i], p);
		ck_assert_msg(errno == ENOMEM, "malloc(%zu): errno %d, expected ENOMEM",
		              huge[i], errno);
		errno = 0;
		p = calloc(1, huge[i]);
		ck_assert_ptr_null(p);
		ck_assert_int_eq(errno, ENOMEM);
	}
	/* and the heap is still fine */
	void *p = malloc(100);
	ck_assert_ptr_nonnull(p);
	free(p);
}
END_TEST

static void usable_ok(size_t n)
{
	unsigned char *p = malloc(n);
	REQUIRE(p != NULL, "malloc(%zu) failed", n);
	size_t u = malloc_usable_size(p);
	REQUIRE(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
	/* every usable byte may be written: free must not report an overflow */
	memset(p, 0xc3, u);
	free(p);
	p = calloc(1, n);
	REQUIRE(p != NULL, "calloc(1, %zu) failed", n);
	u = malloc_usable_size(p);
	REQUIRE(u >= n, "malloc_usable_size(calloc(1, %zu)) = %zu", n, u);
	memset(p, 0x3c, u);
	free(p);
}

/* Each size in its own sub-process would be slow; instead the whole loop
 * runs in a child and must exit cleanly (an abort at free = failure). */
static void usable_all(void *arg)
{
	(void)arg;
	for (size_t n = 0; n <= 4200; n++) usable_ok(n);
	for (size_t k = 0; k < NBIG; k++) usable_ok(big_sizes[k]);
	ck_assert_uint_eq(malloc_usable_size(NULL), 0);
}

START_TEST(test_usable_size)
{
	expect_clean_exit("usable size writable", usable_all, NULL, 60);
}
END_TEST

/* Writing all of malloc_usable_size() and then realloc'ing keeps it all. */
/* mallocng(3): for objects of the size classes malloc_usable_size() is
 * exactly the size requested by the last malloc() or realloc(). */
static size_t exact_usable_sizes(size_t i)
{
	return i <= 5000 ? i : 5000 + (i - 5000) * 997;
}

START_TEST(test_usable_size_exact)
{
	for (size_t i = 0; exact_usable_sizes(i) <= 131000; i++) {
		size_t n = exact_usable_sizes(i);
		void *p = malloc(n);
		REQUIRE(p != NULL, "malloc");
		REQUIRE(malloc_usable_size(p) == n, "malloc_usable_size(malloc(%zu)) = %zu",
		        n, malloc_usable_size(p));
		size_t m = n / 2 + 7;
		p = realloc(p, m);
		REQUIRE(malloc_usable_size(p) == m, "after realloc to %zu: %zu", m, malloc_usable_size(p));
		free(p);
		p = calloc(1, n);
		REQUIRE(malloc_usable_size(p) == n, "malloc_usable_size(calloc(1, %zu)) = %zu",
		        n, malloc_usable_size(p));
		free(p);
		p = aligned_alloc(64, n);
		REQUIRE(malloc_usable_size(p) == n, "malloc_usable_size(aligned_alloc(64, %zu)) = %zu",
		        n, malloc_usable_size(p));
		free(p);
	}
}
END_TEST

START_TEST(test_usable_size_realloc)
{
	for (size_t n = 1; n < 3000; n += 11) {
		unsigned char *p = malloc(n);
		ck_assert_ptr_nonnull(p);
		size_t u = malloc_usable_size(p);
		fill_pattern(p, u, (uint32_t)n);
		p = realloc(p, u + 100);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(check_pattern(p, u, (uint32_t)n), u);
		free(p);
	}
}
END_TEST

/* Interleaved sizes of all classes, freed in reverse and in random order. */
START_TEST(test_free_orders)
{
	enum { N = 3000 };
	static void *p[N];
	uint64_t rng = 99;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++) {
			size_t n = rng_range(&rng, 0, 20000);
			p[i] = malloc(n);
			assert_aligned(p[i], n);
			memset(p[i], i, n);
		}
		if (pass == 0) {
			for (int i = N - 1; i >= 0; i--) free(p[i]);
		} else {
			for (int i = N - 1; i > 0; i--) {
				int j = (int)(rng_next(&rng) % (i + 1));
				void *t = p[i]; p[i] = p[j]; p[j] = t;
			}
			for (int i = 0; i < N; i++) free(p[i]);
		}
	}
}
END_TEST

/* POSIX.1-2024: free() does not modify errno. */
START_TEST(test_free_keeps_errno)
{
	static const size_t sz[] = { 0, 100, 5000, 70000, 131000, 200000, 1 << 20, 8 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof *sz; i++) {
		for (int kind = 0; kind < 3; kind++) {
			void *p = kind == 0 ? malloc(sz[i]) : kind == 1 ? calloc(1, sz[i])
			                                                : aligned_alloc(4096, sz[i]);
			ck_assert_ptr_nonnull(p);
			errno = 1234;
			free(p);
			ck_assert_msg(errno == 1234, "free of a %zu-byte object set errno to %d", sz[i], errno);
		}
	}
	/* frees that empty and release whole groups */
	enum { N = 2000 };
	static void *v[N];
	for (int i = 0; i < N; i++) v[i] = malloc(3000);
	int changed = -1;
	for (int i = 0; i < N; i++) {
		errno = 1234;
		free(v[i]);
		if (errno != 1234 && changed < 0) changed = i;
	}
	ck_assert_msg(changed < 0, "free #%d set errno", changed);
	errno = 1234;
	free(NULL);
	ck_assert_int_eq(errno, 1234);
}
END_TEST

static Suite *malloc_suite(void)
{
	Suite *s = suite_create("malloc");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_small_size);
	tcase_add_test(tc, test_large_sizes);
	tcase_add_test(tc, test_live_objects_disjoint);
	tcase_add_test(tc, test_malloc0_unique);
	tcase_add_test(tc, test_calloc_zeroed);
	tcase_add_test(tc, test_calloc_reused_memory);
	tcase_add_test(tc, test_calloc_after_large_reuse);
	tcase_add_test(tc, test_calloc_after_group_reuse);
	tcase_add_test(tc, test_calloc_after_joined_spans);
	tcase_add_test(tc, test_group_in_warm_span);
	tcase_add_test(tc, test_calloc_overflow);
	tcase_add_test(tc, test_huge_requests);
	tcase_add_test(tc, test_usable_size);
	tcase_add_test(tc, test_usable_size_exact);
	tcase_add_test(tc, test_usable_size_realloc);
	tcase_add_test(tc, test_free_orders);
	tcase_add_test(tc, test_free_keeps_errno);
	tcase_add_test(tc, test_cache_stacks_apart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(malloc_suite());
}
