/* test_interpose.c - the C library's own allocations come from mallocng. */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include "mallocng.h"
#include "util.h"

START_TEST(test_version)
{
	const char *v = mallocng_version();
	ck_assert_ptr_nonnull(v);
	ck_assert_msg(v[0] >= '0' && v[0] <= '9', "version \"%s\"", v);
	ck_assert_str_eq(v, MALLOCNG_VERSION_STRING);
}
END_TEST

START_TEST(test_strdup)
{
	char *p = strdup("x");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, "x");
	ck_assert_uint_ge(malloc_usable_size(p), 2);
	free(p);

	for (size_t n = 0; n < 3000; n += 37) {
		char *s = malloc(n + 1);
		memset(s, 'a' + n % 26, n);
		s[n] = 0;
		char *d = strdup(s);
		ck_assert_ptr_nonnull(d);
		ck_assert_str_eq(d, s);
		ck_assert_uint_ge(malloc_usable_size(d), n + 1);
		free(d);
		d = strndup(s, n / 2);
		ck_assert_uint_eq(strlen(d), n / 2);
		free(d);
		free(s);
	}
}
END_TEST

/* If strdup did not use our malloc, these frees would abort. */
static void sized_libc_frees(void *arg)
{
	(void)arg;
	char *p = strdup("hello");
	free_sized(p, 6);
	char *q = NULL;
	int len = asprintf(&q, "%d-%s", 42, "abc");
	ck_assert_int_eq(len, 6);
	free_sized(q, 7);
}

START_TEST(test_libc_objects_sized_free)
{
	expect_clean_exit("free_sized of strdup/asprintf results", sized_libc_frees, NULL, 20);
}
END_TEST

/* strdup'ed memory carries our check byte: overwriting the terminator's
 * successor is detected, so strdup really called mallocng's malloc. */
static void overflow_strdup(void *arg)
{
	(void)arg;
	char *p = strdup("hello");   /* 6 bytes requested */
	p = OPAQUE(p);
	p[6] ^= 0xff;
	free(p);
}

static void wrong_size_strdup(void *arg)
{
	(void)arg;
	char *p = strdup("hello");
	free_sized(p, 5);
}

START_TEST(test_strdup_is_ours)
{
	expect_abort("overflow of a strdup result", overflow_strdup, NULL, "heap overflow", NULL);
	expect_abort("wrong free_sized of a strdup result", wrong_size_strdup, NULL,
	             "size mismatch", NULL);
}
END_TEST

START_TEST(test_getline_and_files)
{
	char path[] = "/tmp/mallocng-test-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 2000; i++) {
		fprintf(f, "line %d ", i);
		for (int k = 0; k < i % 300; k++) fputc('a' + k % 26, f);
		fputc('\n', f);
	}
	ck_assert_int_eq(fclose(f), 0);

	for (int round = 0; round < 20; round++) {
		f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		char *line = NULL;
		size_t cap = 0;
		ssize_t r;
		int i = 0;
		while ((r = getline(&line, &cap, f)) > 0) {
			REQUIRE(r == (ssize_t)strlen(line), "getline: %zd", r);
			REQUIRE(malloc_usable_size(line) >= (size_t)r + 1, "getline buffer too small");
			i++;
		}
		ck_assert_int_eq(i, 2000);
		free(line);
		ck_assert_int_eq(fclose(f), 0);
	}
	unlink(path);
}
END_TEST

START_TEST(test_open_memstream)
{
	for (int round = 0; round < 50; round++) {
		char *buf = NULL;
		size_t size = 0;
		FILE *f = open_memstream(&buf, &size);
		ck_assert_ptr_nonnull(f);
		for (int i = 0; i < 1000 * (round % 5 + 1); i++) fprintf(f, "%d,", i);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_ptr_nonnull(buf);
		ck_assert_uint_eq(strlen(buf), size);
		ck_assert(strncmp(buf, "0,1,2,", 6) == 0);
		ck_assert_uint_ge(malloc_usable_size(buf), size + 1);
		free(buf);
	}
}
END_TEST

static int cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

START_TEST(test_other_libc_allocators)
{
	char *r = realpath(".", NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_ge(malloc_usable_size(r), strlen(r) + 1);
	free(r);

	char *cwd = getcwd(NULL, 0);
	ck_assert_ptr_nonnull(cwd);
	free(cwd);

	char *s = NULL;
	ck_assert_int_gt(asprintf(&s, "%0*d", 5000, 7), 0);
	ck_assert_uint_eq(strlen(s), 5000);
	free(s);

	/* qsort of a large array uses malloc internally */
	enum { N = 200000 };
	int *v = malloc(N * sizeof *v);
	for (int i = 0; i < N; i++) v[i] = (i * 7919) % N;
	qsort(v, N, sizeof *v, cmp);
	int sorted_ok = 1;
	for (int i = 0; i < N; i++) sorted_ok &= v[i] == i;
	ck_assert(sorted_ok);
	free(v);
}
END_TEST

static Suite *interpose_suite(void)
{
	Suite *s = suite_create("interpose");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_strdup);
	tcase_add_test(tc, test_libc_objects_sized_free);
	tcase_add_test(tc, test_strdup_is_ours);
	tcase_add_test(tc, test_getline_and_files);
	tcase_add_test(tc, test_open_memstream);
	tcase_add_test(tc, test_other_libc_allocators);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(interpose_suite());
}
