/* test_aligned.c - aligned_alloc, posix_memalign, memalign, valloc,
 * pvalloc, free_sized, free_aligned_sized. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
#include "util.h"

static const size_t sizes[] = {
	0, 1, 15, 16, 17, 100, 1000, 4095, 4096, 4097, 65536, 131072, 200000,
	1048576,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define MAX_ALIGN ((size_t)2 << 20)

enum kind { ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN };
static const char *const kind_name[] = { "aligned_alloc", "posix_memalign", "memalign" };

static void *get(enum kind k, size_t al, size_t n)
{
	void *p = NULL;
	switch (k) {
	case ALIGNED_ALLOC: p = aligned_alloc(al, n); break;
	case MEMALIGN: p = memalign(al, n); break;
	case POSIX_MEMALIGN: {
		int r = posix_memalign(&p, al, n);
		ck_assert_msg(r == 0, "posix_memalign(%zu, %zu) = %d", al, n, r);
		break;
	}
	}
	return p;
}

static void use(const char *what, size_t al, size_t n, unsigned char *p, uint32_t seed)
{
	if (n == 0 && p == NULL) return;   /* allowed for size 0 */
	ck_assert_msg(p != NULL, "%s(%zu, %zu) returned NULL", what, al, n);
	ck_assert_msg(((uintptr_t)p & (al - 1)) == 0 && ((uintptr_t)p & 15) == 0,
	              "%s(%zu, %zu) = %p is misaligned", what, al, n, (void *)p);
	ck_assert_msg(malloc_usable_size(p) >= n, "%s(%zu, %zu): usable size %zu",
	              what, al, n, malloc_usable_size(p));
	fill_pattern(p, n, seed);
}

/* All power-of-two alignments 1..2 MiB with all sizes, several objects
 * alive at once to make sure aligned objects do not overlap. */
START_TEST(test_alignments)
{
	enum kind k = (enum kind)_i;
	size_t al0 = k == POSIX_MEMALIGN ? sizeof(void *) : 1;
	for (size_t al = al0; al <= MAX_ALIGN; al *= 2) {
		unsigned char *p[NSIZES];
		for (size_t i = 0; i < NSIZES; i++) {
			p[i] = get(k, al, sizes[i]);
			use(kind_name[k], al, sizes[i], p[i], (uint32_t)(al + i));
		}
		for (size_t i = 0; i < NSIZES; i++) {
			if (!p[i]) continue;
			ck_assert_msg(check_pattern(p[i], sizes[i], (uint32_t)(al + i)) == sizes[i],
			              "%s(%zu, %zu) object overwritten", kind_name[k], al, sizes[i]);
			free(p[i]);
		}
	}
}
END_TEST

START_TEST(test_valloc_pvalloc)
{
	long page = sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		unsigned char *p = valloc(n);
		use("valloc", page, n, p, 1);
		free(p);

		/* pvalloc rounds the size up to a whole number of pages */
		size_t rounded = (n + page - 1) & ~(size_t)(page - 1);
		p = pvalloc(n);
		use("pvalloc", page, rounded, p, 2);
		free(p);
	}
}
END_TEST

/* Many small aligned objects interleaved with plain ones. */
START_TEST(test_aligned_many)
{
	enum { N = 2000 };
	static unsigned char *p[N];
	static size_t sz[N], al[N];
	uint64_t rng = 77;
	for (int i = 0; i < N; i++) {
		al[i] = (size_t)1 << rng_range(&rng, 0, 13);
		sz[i] = rng_range(&rng, 0, 3000);
		if (i % 3 == 0) {
			al[i] = 16;
			p[i] = malloc(sz[i]);
		} else {
			p[i] = aligned_alloc(al[i], sz[i]);
		}
		use("aligned_alloc", al[i], sz[i], p[i], (uint32_t)i);
	}
	for (int i = 0; i < N; i++) {
		ck_assert_uint_eq(check_pattern(p[i], sz[i], (uint32_t)i), sz[i]);
		if ((i & 1) || i % 3 == 0) free(p[i]);
		else free_aligned_sized(p[i], al[i], sz[i]);
	}
}
END_TEST

START_TEST(test_posix_memalign_einval)
{
	/* sizeof(void *) / 2: 4 on 64-bit targets, smaller than a pointer
	 * (4 is valid with 32-bit pointers) */
	static const size_t bad[] = { 0, 1, 2, 3, sizeof(void *) / 2, 5, 12, 24, 48, 96, 1000, 4097,
	                              (size_t)3 << 20, SIZE_MAX };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		void *sentinel = (void *)(uintptr_t)0x5eed5eedu, *out = sentinel;
		errno = 0;
		int r = posix_memalign(&out, bad[i], 64);
		ck_assert_msg(r == EINVAL, "posix_memalign(alignment %zu) = %d, expected EINVAL",
		              bad[i], r);
		ck_assert_msg(out == sentinel, "posix_memalign(alignment %zu) modified *memptr",
		              bad[i]);
	}
	/* ENOMEM also leaves *memptr untouched */
	void *sentinel = (void *)(uintptr_t)0x5eed5eedu, *out = sentinel;
	int r = posix_memalign(&out, 4096, SIZE_MAX - 4096);
	ck_assert_int_eq(r, ENOMEM);
	ck_assert_ptr_eq(out, sentinel);
	r = posix_memalign(&out, 64, (size_t)PTRDIFF_MAX + 1);
	ck_assert_int_eq(r, ENOMEM);
	ck_assert_ptr_eq(out, sentinel);
}
END_TEST

START_TEST(test_aligned_alloc_einval)
{
	static const size_t bad[] = { 3, 5, 6, 12, 24, 48, 100, 1000, 4097,
	                              (size_t)3 << 20, SIZE_MAX };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		void *p = aligned_alloc(bad[i], 64);
		ck_assert_msg(p == NULL, "aligned_alloc(%zu, 64) = %p, expected NULL", bad[i], p);
		ck_assert_msg(errno == EINVAL, "aligned_alloc(%zu, 64): errno %d, expected EINVAL",
		              bad[i], errno);
	}
	errno = 0;
	ck_assert_ptr_null(aligned_alloc(64, SIZE_MAX - 64));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(memalign(4096, (size_t)PTRDIFF_MAX + 1));
	ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* mallocng(3): posix_memalign "returns 0 and stores the pointer in
 * *memptr, or returns an error number without changing errno or *memptr" */
START_TEST(test_posix_memalign_keeps_errno)
{
	static const size_t cases[][2] = {
		{ 3, 10 }, { 0, 10 }, { 4, 10 },                     /* EINVAL */
		{ 64, SIZE_MAX - 100 }, { 64, POW2(50) },      /* ENOMEM */
		{ 4096, (size_t)PTRDIFF_MAX + 1 }, { POW2(62), 16 },
		{ 64, 100 }, { 4096, 300000 },                        /* success */
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		void *sentinel = (void *)(uintptr_t)0x5eed5eedu, *p = sentinel;
		errno = 1234;
		int r = posix_memalign(&p, cases[i][0], cases[i][1]);
		ck_assert_msg(errno == 1234, "posix_memalign(%#zx, %#zx) = %d changed errno to %d",
		              cases[i][0], cases[i][1], r, errno);
		if (r) ck_assert_ptr_eq(p, sentinel);
		else free(p);
	}
}
END_TEST

/* Alignment + size arithmetic must not wrap around: every one of these
 * fails cleanly instead of returning a small or misaligned object. */
START_TEST(test_huge_alignment_or_size)
{
	static const size_t cases[][2] = {
		{ POW2(63), 1 }, { POW2(63), 0 }, { POW2(62), 16 },
		{ POW2(47), 16 }, { 4096, SIZE_MAX - 4000 },
		{ 1 << 20, SIZE_MAX - (1 << 19) }, { 1 << 21, (size_t)PTRDIFF_MAX - (1 << 20) },
		{ 64, SIZE_MAX - 63 }, { 16, SIZE_MAX - 15 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t al = cases[i][0], n = cases[i][1];
		void *p, *sentinel = (void *)(uintptr_t)0x5eed5eedu;
		errno = 0;
		p = aligned_alloc(al, n);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "aligned_alloc(%#zx, %#zx) = %p, errno %d", al, n, p, errno);
		errno = 0;
		p = memalign(al, n);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "memalign(%#zx, %#zx) = %p, errno %d", al, n, p, errno);
		p = sentinel;
		int r = posix_memalign(&p, al, n);
		ck_assert_msg(r == ENOMEM && p == sentinel,
		              "posix_memalign(%#zx, %#zx) = %d, %p", al, n, r, p);
	}
	static const size_t big[] = { SIZE_MAX, SIZE_MAX - 100, SIZE_MAX - 4095,
	                              (size_t)PTRDIFF_MAX + 1 };
	for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
		errno = 0;
		void *p = pvalloc(big[i]);   /* rounding up to a page would wrap */
		ck_assert_msg(p == NULL && errno == ENOMEM, "pvalloc(%#zx) = %p, errno %d",
		              big[i], p, errno);
		errno = 0;
		p = valloc(big[i]);
		ck_assert_msg(p == NULL && errno == ENOMEM, "valloc(%#zx) = %p, errno %d",
		              big[i], p, errno);
	}
}
END_TEST

/* Correct sizes for free_sized / free_aligned_sized never abort. */
static void sized_frees(void *arg)
{
	(void)arg;
	for (size_t n = 0; n <= 3000; n++) {
		void *p = malloc(n);
		ck_assert_ptr_nonnull(p);
		memset(p, 1, n);
		free_sized(p, n);
	}
	for (size_t i = 0; i < NSIZES; i++) {
		void *p = malloc(sizes[i]);
		ck_assert_ptr_nonnull(p);
		free_sized(p, sizes[i]);
		p = calloc(1, sizes[i]);
		ck_assert_ptr_nonnull(p);
		free_sized(p, sizes[i]);
		/* realloc'ed objects are freed with their new size */
		p = malloc(10);
		ck_assert_ptr_nonnull(p);
		p = realloc(p, sizes[i] + 1);
		ck_assert_ptr_nonnull(p);
		free_sized(p, sizes[i] + 1);
		for (size_t al = 1; al <= MAX_ALIGN; al *= 4) {
			p = aligned_alloc(al, sizes[i]);
			if (!p && sizes[i] == 0) continue;
			ck_assert_ptr_nonnull(p);
			memset(p, 2, sizes[i]);
			free_aligned_sized(p, al, sizes[i]);
		}
	}
	free_sized(NULL, 0);
	free_sized(NULL, 100);
	free_aligned_sized(NULL, 64, 0);
}

START_TEST(test_free_sized_correct)
{
	expect_clean_exit("free_sized with correct sizes", sized_frees, NULL, 60);
}
END_TEST

/* realloc of an aligned object keeps the content. */
START_TEST(test_realloc_aligned)
{
	for (size_t al = 32; al <= 65536; al *= 2) {
		unsigned char *p = aligned_alloc(al, 300);
		ck_assert_ptr_nonnull(p);
		fill_pattern(p, 300, (uint32_t)al);
		p = realloc(p, 5000);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(check_pattern(p, 300, (uint32_t)al), 300);
		p = realloc(p, 100);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(check_pattern(p, 100, (uint32_t)al), 100);
		free(p);
	}
}
END_TEST

static Suite *aligned_suite(void)
{
	Suite *s = suite_create("aligned");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_alignments, ALIGNED_ALLOC, MEMALIGN + 1);
	tcase_add_test(tc, test_valloc_pvalloc);
	tcase_add_test(tc, test_aligned_many);
	tcase_add_test(tc, test_posix_memalign_einval);
	tcase_add_test(tc, test_posix_memalign_keeps_errno);
	tcase_add_test(tc, test_aligned_alloc_einval);
	tcase_add_test(tc, test_huge_alignment_or_size);
	tcase_add_test(tc, test_free_sized_correct);
	tcase_add_test(tc, test_realloc_aligned);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(aligned_suite());
}
