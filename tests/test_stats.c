/* test_stats.c - mallocng_get_stats, mallocng_print_stats, mallocng_heap_map
 * (the statistics API documented in mallocng(3)). */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <malloc.h>
#include "mallocng.h"
#include "util.h"

static void snap(struct mallocng_stats *st)
{
	memset(st, 0, sizeof *st);
	st->size = sizeof *st;
	int r = mallocng_get_stats(st);
	REQUIRE(r == 0, "mallocng_get_stats failed: %d", r);
}

static size_t class_sum(const struct mallocng_stats *st, int what)
{
	size_t s = 0;
	for (int i = 0; i < MALLOCNG_NCLASS; i++)
		s += what == 0 ? st->classes[i].bytes_live : st->classes[i].slots_used;
	return s;
}

START_TEST(test_versioned_struct)
{
	struct mallocng_stats st;
	snap(&st);
	ck_assert_uint_eq(st.size, sizeof st);
	ck_assert_uint_eq(st.version, MALLOCNG_STATS_VERSION);

	/* too small for the fixed fields: EINVAL */
	static const size_t small[] = { 0, 1, sizeof(size_t), offsetof(struct mallocng_stats, classes) - 1 };
	for (size_t i = 0; i < sizeof small / sizeof *small; i++) {
		memset(&st, 0, sizeof st);
		st.size = small[i];
		errno = 0;
		ck_assert_int_eq(mallocng_get_stats(&st), -1);
		ck_assert_int_eq(errno, EINVAL);
	}

	/* an older caller (no classes array): exactly its bytes are written */
	unsigned char buf[sizeof st + 256];
	size_t fixed = offsetof(struct mallocng_stats, classes);
	memset(buf, 0xa5, sizeof buf);
	struct mallocng_stats *p = (struct mallocng_stats *)buf;
	p->size = fixed;
	ck_assert_int_eq(mallocng_get_stats(p), 0);
	ck_assert_uint_eq(p->size, fixed);
	ck_assert_uint_eq(p->version, MALLOCNG_STATS_VERSION);
	ck_assert_uint_eq(check_bytes(buf + fixed, sizeof buf - fixed, 0xa5), sizeof buf - fixed);

	/* a newer caller (bigger struct): the library fills only its own */
	memset(buf, 0xa5, sizeof buf);
	p->size = sizeof buf;
	ck_assert_int_eq(mallocng_get_stats(p), 0);
	ck_assert_uint_eq(p->size, sizeof st);
	ck_assert_uint_eq(check_bytes(buf + sizeof st, 256, 0xa5), 256);
}
END_TEST

START_TEST(test_small_accounting)
{
	enum { N = 1000 };
	static void *v[N];
	struct mallocng_stats s0, s1, s2;
	snap(&s0);
	for (int i = 0; i < N; i++) {
		v[i] = malloc(100);
		REQUIRE(v[i] != NULL, "malloc");
	}
	snap(&s1);
	for (int i = 0; i < N; i++) free(v[i]);
	snap(&s2);

	ck_assert_uint_eq(s1.objects_live - s0.objects_live, N);
	ck_assert_uint_eq(s1.bytes_live - s0.bytes_live, N * 100);
	ck_assert_uint_eq(class_sum(&s1, 0) - class_sum(&s0, 0), N * 100);
	ck_assert_uint_eq(class_sum(&s1, 1) - class_sum(&s0, 1), N);
	ck_assert_uint_ge(s1.bytes_slots - s0.bytes_slots, N * (100 + 9));
	/* freed objects are no longer live, cached or not */
	ck_assert_uint_eq(s2.objects_live, s0.objects_live);
	ck_assert_uint_eq(s2.bytes_live, s0.bytes_live);
	ck_assert_uint_eq(class_sum(&s2, 0), class_sum(&s0, 0));
	ck_assert_uint_eq(class_sum(&s2, 1), class_sum(&s0, 1));
	for (int i = 0; i < MALLOCNG_NCLASS; i++) {
		const struct mallocng_class_stats *c = &s1.classes[i];
		ck_assert_uint_le(c->slots_used + c->slots_cached, c->slots);
		ck_assert_uint_le(c->bytes_live, c->slots_used * c->slot_size);
		if (i) ck_assert_uint_gt(c->slot_size, s1.classes[i - 1].slot_size);
	}
}
END_TEST

START_TEST(test_large_accounting)
{
	struct mallocng_stats s0, s1, s2;
	snap(&s0);
	void *a = malloc(1 << 20), *b = malloc(300000);
	ck_assert(a && b);
	memset(a, 1, 1 << 20);
	snap(&s1);
	free(a);
	free(b);
	snap(&s2);
	ck_assert_uint_eq(s1.large_count - s0.large_count, 2);
	ck_assert_uint_ge(s1.large_bytes - s0.large_bytes, (1 << 20) + 300000);
	ck_assert_uint_eq(s1.bytes_live - s0.bytes_live, (1 << 20) + 300000);
	ck_assert_uint_eq(s1.objects_live - s0.objects_live, 2);
	/* mapped counts every mapping, whether made now or taken from a
	 * retired span (the rest of a group mapping, say: then no mmap) */
	ck_assert_uint_ge(s1.bytes_mapped, s1.large_bytes);
	ck_assert_uint_le(s1.mmap_calls - s0.mmap_calls, 2);
	ck_assert_uint_ge(s1.bytes_resident, 1 << 20);
	ck_assert_uint_eq(s2.large_count, s0.large_count);
	ck_assert_uint_eq(s2.large_bytes, s0.large_bytes);
	ck_assert_uint_eq(s2.bytes_live, s0.bytes_live);
	/* freed mappings may be kept for decay_ms; malloc_trim returns them */
	malloc_trim(0);
	struct mallocng_stats s3;
	snap(&s3);
	/* given back by munmap or by madvise: either way it is counted, and
	 * the 1 MiB that was touched is no longer resident */
	ck_assert_uint_ge((s3.munmap_calls + s3.madvise_calls) -
	                  (s1.munmap_calls + s1.madvise_calls), 2);
	ck_assert_uint_le(s3.bytes_resident + 900 * 1024, s1.bytes_resident);
}
END_TEST

static pthread_barrier_t bar;

static void *holder(void *arg)
{
	void *q = malloc(50);         /* a small object gives the thread a heap */
	void *p = malloc(200000);     /* large: the C library's own per-thread
	                                 allocations (TLS) are all small */
	pthread_barrier_wait(&bar);   /* stats taken here */
	pthread_barrier_wait(&bar);
	free(p);
	free(q);
	return arg;
}

START_TEST(test_threads_counted)
{
	enum { T = 4 };
	pthread_t t[T];
	struct mallocng_stats s0, s1, s2;
	free(malloc(1));   /* this thread has a heap */
	snap(&s0);
	pthread_barrier_init(&bar, NULL, T + 1);
	for (int i = 0; i < T; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, holder, NULL), 0);
	pthread_barrier_wait(&bar);
	snap(&s1);
	pthread_barrier_wait(&bar);
	for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
	snap(&s2);
	ck_assert_uint_eq(s1.threads, s0.threads + T);
	ck_assert_uint_eq(s1.large_count, s0.large_count + T);
	ck_assert_uint_ge(s1.bytes_live, s0.bytes_live + T * 200000);
	ck_assert_uint_eq(s2.threads, s0.threads);
	ck_assert_uint_eq(s2.large_count, s0.large_count);
}
END_TEST

START_TEST(test_print_stats)
{
	char path[] = "/tmp/mallocng-stats-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	void *p = malloc(12345);
	struct mallocng_stats s0, s1;
	snap(&s0);
	mallocng_print_stats(fd);
	snap(&s1);
	/* printing allocates nothing */
	ck_assert_uint_eq(s1.objects_live, s0.objects_live);
	ck_assert_uint_eq(s1.mmap_calls, s0.mmap_calls);
	off_t len = lseek(fd, 0, SEEK_END);
	ck_assert_int_gt(len, 100);
	char buf[256] = { 0 };
	ck_assert_int_gt(pread(fd, buf, sizeof buf - 1, 0), 0);
	close(fd);
	free(p);
}
END_TEST

START_TEST(test_heap_map)
{
	char path[] = "/tmp/mallocng-map-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	void *v[100];
	for (int i = 0; i < 100; i++) v[i] = malloc(i * 10);
	ck_assert_int_eq(mallocng_heap_map(path), 0);
	for (int i = 0; i < 100; i++) free(v[i]);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char head[4096] = { 0 };
	size_t n = fread(head, 1, sizeof head - 1, f);
	fclose(f);
	unlink(path);
	ck_assert_uint_gt(n, 0);
	ck_assert_msg(strstr(head, "<svg") != NULL, "no <svg element in: %.200s", head);

	errno = 0;
	ck_assert_int_eq(mallocng_heap_map("/nonexistent-dir/x/map.svg"), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* The figures of a row of mallocng_print_stats ("in use      1.2 MiB
 * 3.4 MiB ..."), in bytes: now and peak. */
static double human_bytes(const char **s)
{
	char *end;
	double v = strtod(*s, &end);
	while (*end == ' ') end++;
	double mul = !strncmp(end, "KiB", 3) ? 1024.0 : !strncmp(end, "MiB", 3) ? 1048576.0 :
	             !strncmp(end, "GiB", 3) ? 1073741824.0 : 1.0;
	while (*end && *end != ' ') end++;
	*s = end;
	return v * mul;
}

static void stats_row(const char *row, double *now, double *peak)
{
	char path[] = "/tmp/mallocng-stats-XXXXXX", text[8192] = { 0 };
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	mallocng_print_stats(fd);
	ck_assert_int_gt(pread(fd, text, sizeof text - 1, 0), 0);
	close(fd);
	const char *s = strstr(text, row);
	ck_assert_msg(s != NULL, "no row '%s' in <%s>", row, text);
	s += strlen(row);
	*now = human_bytes(&s);
	*peak = human_bytes(&s);
}

/* mallocng(7), STATISTICS, "in use": the slots of live and cached objects
 * and large mappings, now and at their peak, the peak to within
 * INUSE_FOLD (32 KiB) a thread; a program that peaks and frees sees its
 * peak kept. */
START_TEST(test_inuse_peak)
{
	enum { N = 30000, SIZE = 100, STRIDE = 112 };
	static void *v[N];
	double now0, peak0, now, peak;
	stats_row("\nin use", &now0, &peak0);
	for (int i = 0; i < N; i++) v[i] = malloc(SIZE);
	void *big = malloc(8 << 20);
	stats_row("\nin use", &now, &peak);
	/* (the units print a tenth: 1 % of rounding) */
	ck_assert_msg(now >= 0.99 * (now0 + (double)N * STRIDE + (8 << 20)), "now %.0f, before %.0f",
	              now, now0);
	for (int i = 0; i < N; i++) free(v[i]);
	free(big);
	malloc_trim(0);
	stats_row("\nin use", &now, &peak);
	ck_assert_msg(peak >= 0.99 * (now0 + (double)N * STRIDE + (8 << 20)) - (32 << 10),
	              "peak %.0f below the objects' %d x %d + 8 MiB (before: %.0f)", peak, N, STRIDE, now0);
	ck_assert_msg(now < now0 + (1 << 20), "now %.0f, before %.0f", now, now0);
}
END_TEST

/* mallocng(7), FRAGMENTATION: "an object of n bytes uses a slot of at most
 * about 1.25 x n bytes plus 8 bytes of overhead; objects at the bottom of
 * the range are rounded to 16-byte units" (bytes_slots counts the slots
 * of live small objects). */
START_TEST(test_slot_size_bound)
{
	enum { K = 64 };
	void *v[K];
	char bad[2048] = "";
	size_t len = 0;
	free(malloc(1));
	for (size_t n = 0; n <= 131000; n = n < 300 ? n + 1 : n + n / 7) {
		struct mallocng_stats a, b;
		snap(&a);
		for (int k = 0; k < K; k++) v[k] = malloc(n);
		snap(&b);
		for (int k = 0; k < K; k++) free(v[k]);
		size_t slot = (b.bytes_slots - a.bytes_slots) / K;
		size_t limit = (n + 8) * 5 / 4 + 16;
		if ((slot < n + 8 || slot > limit || slot % 16) && len < sizeof bad - 100)
			len += snprintf(bad + len, sizeof bad - len, " n=%zu: slot %zu;", n, slot);
	}
	ck_assert_msg(len == 0, "slot sizes out of bounds:%s", bad);
}
END_TEST

/* ---- snapshots while other threads allocate and free ---- */

static volatile int stop_workers;

static void *busy(void *arg)
{
	uint64_t rng = (uintptr_t)arg | 1;
	void *v[64] = { 0 };
	while (!stop_workers) {
		int i = (int)(rng_next(&rng) & 63);
		free(v[i]);
		v[i] = malloc((rng_next(&rng) & 31) ? rng_range(&rng, 1, 3000)
		                                    : rng_range(&rng, 100000, 300000));
	}
	for (int i = 0; i < 64; i++) free(v[i]);
	return NULL;
}

START_TEST(test_stats_under_load)
{
	pthread_t t[4];
	int devnull = open("/dev/null", O_WRONLY);
	ck_assert_int_ge(devnull, 0);
	stop_workers = 0;
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, busy, (void *)(uintptr_t)(i + 1)), 0);
	for (int k = 0; k < 300; k++) {
		struct mallocng_stats st;
		snap(&st);
		for (int i = 0; i < MALLOCNG_NCLASS; i++) {
			const struct mallocng_class_stats *c = &st.classes[i];
			REQUIRE(c->slots_used + c->slots_cached <= c->slots,
			        "class %d: %zu used + %zu cached > %zu slots", i,
			        c->slots_used, c->slots_cached, c->slots);
		}
		REQUIRE(st.threads >= 1 && st.threads <= 5, "threads = %zu", st.threads);
		if (k % 50 == 0) mallocng_print_stats(devnull);
	}
	stop_workers = 1;
	for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
	close(devnull);
}
END_TEST

/* ---- the glibc introspection functions of mallocng(3) ---- */

START_TEST(test_glibc_introspection)
{
	enum { N = 2000 };
	static void *v[N];
	struct mallinfo2 a = mallinfo2();
	for (int i = 0; i < N; i++) v[i] = malloc(500);
	void *big = malloc(2 << 20);
	struct mallinfo2 b = mallinfo2();
	/* "bytes allocated (uordblks)", "large mappings (hblks, hblkhd)" */
	ck_assert_uint_ge(b.uordblks - a.uordblks, N * 500);
	ck_assert_uint_ge(b.hblks - a.hblks, 1);
	ck_assert_uint_ge(b.hblkhd - a.hblkhd, 2 << 20);
	ck_assert_uint_ge(b.arena, N * 500);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
	ck_assert_int_ge(old.uordblks, 0);
	ck_assert_int_ge(old.hblkhd, 2 << 20);
	for (int i = 0; i < N; i++) free(v[i]);
	free(big);
	struct mallinfo2 c = mallinfo2();
	ck_assert_uint_le(c.uordblks, a.uordblks + 4096);

	/* malloc_info: XML; options must be 0 */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(malloc_info(0, f), 0);
	fclose(f);
	ck_assert_msg(buf && strstr(buf, "<malloc"), "malloc_info wrote <%.200s>", buf ? buf : "");
	/* well-formed XML, checked by xmllint when it is installed */
	if (system("command -v xmllint >/dev/null 2>&1") == 0) {
		char path[] = "/tmp/mallocng-info-XXXXXX";
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
		close(fd);
		char cmd[128];
		snprintf(cmd, sizeof cmd, "xmllint --noout %s", path);
		int rc = system(cmd);
		unlink(path);
		ck_assert_msg(rc == 0, "malloc_info output is not well-formed XML:\n%s", buf);
	}
	free(buf);
	f = fopen("/dev/null", "w");
	errno = 0;
	ck_assert_int_eq(malloc_info(1, f), -1);
	ck_assert_int_eq(errno, EINVAL);
	fclose(f);

	/* mallopt: only M_PERTURB is applied */
	ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 1 << 20), 0);
	ck_assert_int_eq(mallopt(M_ARENA_MAX, 2), 0);
}
END_TEST

/* malloc_stats prints to standard error */
static void call_malloc_stats(void *arg)
{
	(void)arg;
	free(malloc(100));
	malloc_stats();
}

/* Aligned objects void the header at their slot's start; the statistics
 * must count every one of them (a zero start header once passed for a
 * freed one, 1 time in 2^16: found by the fuzzer in hardened mode). */
START_TEST(test_aligned_counted)
{
	enum { N = 250000 };
	static void *volatile v[2][N];
	static const size_t align[2] = { 64, 128 };
	struct mallocng_stats a, b;
	snap(&a);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			v[k][i] = aligned_alloc(align[k], 40);
			REQUIRE(v[k][i] != NULL, "aligned_alloc failed at %d", i);
		}
	snap(&b);
	ck_assert_uint_eq(b.objects_live - a.objects_live, 2 * N);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) free(v[k][i]);
}
END_TEST

START_TEST(test_malloc_stats)
{
	char err[4096];
	int st = run_in_child(call_malloc_stats, NULL, 10, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	ck_assert_msg(strlen(err) > 100, "malloc_stats printed <%s>", err);
}
END_TEST

/* The global lock's count: a loop that the thread cache serves takes no
 * lock with the default options (the statistics call takes one), a large
 * object takes it, and two
 * threads that keep making large objects meet on it at times. */
static void *large_loop(void *arg)
{
	for (int i = 0; i < 2000; i++) {
		void *p = malloc(300 << 10);
		ck_assert_ptr_nonnull(p);
		free(p);
	}
	return arg;
}

START_TEST(test_lock_counted)
{
	struct mallocng_stats a, b;
	free(malloc(100));
	snap(&a);
	for (int i = 0; i < 100000; i++) {
		void *p = malloc(100);
		ck_assert_ptr_nonnull(p);
		free(p);
	}
	snap(&b);
	ck_assert_uint_eq(b.version, 3);
	/* (the hardened runs' options take the checked paths, which hold the
	 * lock around each call) */
	const char *opts = getenv("MALLOCNG_OPTIONS");
	if (!opts || !*opts) ck_assert_uint_eq(b.lock_acquisitions - a.lock_acquisitions, 1);
	else ck_assert_uint_ge(b.lock_acquisitions - a.lock_acquisitions, 1);
	void *big = malloc(1 << 20);
	ck_assert_ptr_nonnull(big);
	free(big);
	snap(&a);
	ck_assert_uint_ge(a.lock_acquisitions - b.lock_acquisitions, 3);
	pthread_t t[2];
	for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, large_loop, NULL), 0);
	for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
	snap(&b);
	ck_assert_uint_ge(b.lock_acquisitions - a.lock_acquisitions, 4000);
	ck_assert_uint_le(b.lock_contended, b.lock_acquisitions);
	ck_assert_uint_le(a.lock_contended, b.lock_contended);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_versioned_struct);
	tcase_add_test(tc, test_small_accounting);
	tcase_add_test(tc, test_large_accounting);
	tcase_add_test(tc, test_threads_counted);
	tcase_add_test(tc, test_print_stats);
	tcase_add_test(tc, test_heap_map);
	tcase_add_test(tc, test_inuse_peak);
	tcase_add_test(tc, test_slot_size_bound);
	tcase_add_test(tc, test_stats_under_load);
	tcase_add_test(tc, test_glibc_introspection);
	tcase_add_test(tc, test_malloc_stats);
	tcase_add_test(tc, test_aligned_counted);
	tcase_add_test(tc, test_lock_counted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(stats_suite());
}
