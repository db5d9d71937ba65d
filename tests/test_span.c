/* test_span.c - the pools of src/span.c, white-box: the test is linked
 * with the allocator's sources (not the library) and drives the pools
 * through the functions the allocator uses (span_retire, map_group,
 * span_map_cached, span_unmap_cached, span_trim), on address ranges it
 * maps itself (os_map), so that where a request lands tells which span
 * the pool chose.
 *
 * Each test starts from empty pools (span_trim(1)) with a decay long
 * enough that nothing expires while it runs, and makes no allocation
 * between the calls it watches (Check allocates only on failure).
 *
 * Rules checked, and the wrong behaviour each would catch:
 * - warm and retired pools: a request takes the smallest span that holds
 *   it (catches first fit, or the largest span, or the newest);
 * - warm and retired pools: spans that touch are joined (catches a pool
 *   that keeps the pieces apart: no single span would hold their sum);
 * - warm pool over its byte bound: the longest span leaves (catches the
 *   oldest leaving instead, or the new span being refused);
 * - warm pool bounds: at most WARM_SLOTS spans and WARM_BYTES bytes stay
 *   warm (catches a bound not enforced, or off by one);
 * - retired ring full: the oldest span is unmapped (catches the newest
 *   being dropped, or a ring that grows past RETIRED);
 * - large cache: best fit, parts of one mapping joined, at most
 *   CACHE_SLOTS entries and CACHE_BYTES bytes, the oldest leaving first
 *   (catches the same faults in span_map_cached / span_unmap_cached).
 */
#include "internal.h"     /* first: check.h defines a macro named fail */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
/* The bounds of span.c (not exported): kept in step by hand. */
#define WARM_SLOTS 128
#define WARM_BYTES MiB          /* while one heap lives */
#define RETIRED 256
#define CACHE_SLOTS 8
#define CACHE_BYTES (64 * MiB)
/* The geometry of best_fit and join, in quarters of a page (1 KiB on
 * 4 KiB pages): spans must be whole pages whatever the page size. */
#define QP (page_size() / 4)
/* Whether a warm span of 64 quarter pages fits the warm pool (not with
 * 64 KiB pages: 1 MiB, above a quarter of WARM_BYTES); said when not. */
static int warm_geometry_fits(int warm, const char *test)
{
	if (!warm || 64 * QP <= WARM_BYTES / 4) return 1;
	printf("%s: not run on pages of %zu bytes (its warm spans would exceed WARM_BYTES / 4)\n",
	       test, page_size());
	return 0;
}

static void setup_pools(int decay_ms)
{
	free(malloc(1));                /* the allocator initialised */
	opt.decay_ms = decay_ms;
	span_trim(1);                   /* every pool empty */
	ck_assert_uint_le(os_count.heaps_live, 1);      /* WARM_BYTES applies */
}

static int is_mapped(const void *p)
{
	return msync((void *)p, page_size(), MS_ASYNC) == 0 || errno != ENOMEM;
}

static unsigned char *region(size_t len)
{
	unsigned char *r = os_map(len);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* map_group's span for len bytes; *dirty: it was warm. */
static unsigned char *take(size_t len, int *dirty)
{
	size_t l = len;
	unsigned char *p = map_group(&l, dirty, 0, 0);   /* (no rest kept: one group) */
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(l, len);
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec t = { 0, ms * 1000000 };
	nanosleep(&t, 0);
}

/* Best fit, warm (decay on) or retired (decay 0): spans of 64, 16 and
 * 32 KiB with gaps between them; 20 KiB must come from the 32 KiB span,
 * 16 from the 16, 64 from the 64, then 4 from the 12 KiB rest of the 32.
 * First fit would give the 64 KiB span first.  (KiB on 4 KiB pages:
 * quarter pages, QP, on any.) */
static void best_fit(int warm)
{
	if (!warm_geometry_fits(warm, "best_fit")) return;
	setup_pools(warm ? 1 << 30 : 0);
	unsigned char *r = region(256 * QP);
	unsigned char *a = r, *b = r + 68 * QP, *c = r + 88 * QP;
	int dirty;
	span_retire(a, 64 * QP);
	span_retire(b, 16 * QP);
	span_retire(c, 32 * QP);
	ck_assert_ptr_eq(take(20 * QP, &dirty), c);
	ck_assert_int_eq(dirty, warm);
	ck_assert_ptr_eq(take(16 * QP, &dirty), b);
	ck_assert_ptr_eq(take(64 * QP, &dirty), a);
	ck_assert_ptr_eq(take(4 * QP, &dirty), c + 20 * QP);
	ck_assert_int_eq(dirty, warm);
}

START_TEST(test_warm_best_fit)
{
	best_fit(1);
}
END_TEST

START_TEST(test_retired_best_fit)
{
	best_fit(0);
}
END_TEST

/* Join: 16 KiB at r and at r + 32 KiB, then the 16 KiB between them; one
 * 48 KiB span at r must serve a 48 KiB request (kept apart, no span
 * holds it and map_group maps anew). */
static void join(int warm)
{
	if (!warm_geometry_fits(warm, "join")) return;
	setup_pools(warm ? 1 << 30 : 0);
	unsigned char *r = region(128 * QP);
	int dirty;
	span_retire(r, 16 * QP);
	span_retire(r + 32 * QP, 16 * QP);
	span_retire(r + 16 * QP, 16 * QP);
	ck_assert_ptr_eq(take(48 * QP, &dirty), r);
	ck_assert_int_eq(dirty, warm);
}

START_TEST(test_warm_join)
{
	join(1);
}
END_TEST

START_TEST(test_retired_join)
{
	join(0);
}
END_TEST

/* Over the byte bound the longest warm span leaves (cold, to the ring):
 * 4 spans of 64 KiB, one of 256 KiB, 8 more of 64 KiB fill the 1 MiB
 * exactly; one more 64 KiB span pushes the 256 KiB one out (not the
 * oldest, the first 64 KiB span).  Then the 13 spans of 64 KiB are still
 * warm and a 128 KiB request gets the 256 KiB span, clean. */
START_TEST(test_warm_longest_leaves_first)
{
	setup_pools(1 << 30);
	unsigned char *r = region(2 * MiB), *p = r, *big = 0;
	int dirty;
	for (int i = 0; i < 14; i++) {
		size_t len = i == 4 ? 256 * KiB : 64 * KiB;
		if (i == 4) big = p;
		span_retire(p, len);
		p += len + page_size();
	}
	for (int i = 0; i < 13; i++) {
		take(64 * KiB, &dirty);
		ck_assert_msg(dirty, "64 KiB span %d not warm", i);
	}
	ck_assert_ptr_eq(take(128 * KiB, &dirty), big);
	ck_assert_int_eq(dirty, 0);
}
END_TEST

/* Count bound: WARM_SLOTS + 1 spans of a page, apart: exactly WARM_SLOTS
 * stay warm, the one pushed out waits on the ring (clean).  With pages of
 * more than WARM_BYTES / WARM_SLOTS (16 KiB and up) the byte bound comes
 * first: WARM_BYTES of them stay warm. */
START_TEST(test_warm_count_bound)
{
	setup_pools(1 << 30);
	unsigned char *r = region((WARM_SLOTS + 1) * 2 * page_size());
	int dirty, warm = 0;
	for (int i = 0; i <= WARM_SLOTS; i++) span_retire(r + i * 2 * page_size(), page_size());
	for (int i = 0; i <= WARM_SLOTS; i++) {
		unsigned char *q = take(page_size(), &dirty);
		ck_assert((uintptr_t)(q) >= (uintptr_t)(r));
		ck_assert((uintptr_t)(q) < (uintptr_t)(r + (WARM_SLOTS + 1) * 2 * page_size()));
		warm += dirty;
	}
	ck_assert_int_eq(warm, WARM_SLOTS * page_size() <= WARM_BYTES ? WARM_SLOTS
					: (int)(WARM_BYTES / page_size()));
}
END_TEST

/* Byte bound: 5 spans of a quarter of WARM_BYTES (the most a warm span
 * may be), apart: 4 stay warm, the fifth request is served clean. */
START_TEST(test_warm_byte_bound)
{
	setup_pools(1 << 30);
	size_t q = WARM_BYTES / 4;
	unsigned char *r = region(5 * (q + page_size()));
	int dirty, warm = 0;
	for (int i = 0; i < 5; i++) span_retire(r + i * (q + page_size()), q);
	for (int i = 0; i < 5; i++) {
		take(q, &dirty);
		warm += dirty;
	}
	ck_assert_int_eq(warm, 4);
	/* a span above the quarter never stays warm */
	unsigned char *s = region(q + page_size());
	span_retire(s, q + page_size());
	ck_assert_ptr_eq(take(q + page_size(), &dirty), s);
	ck_assert_int_eq(dirty, 0);
}
END_TEST

/* The ring holds RETIRED spans: one more unmaps the oldest (the first
 * retired), and the others stay reserved and are all handed out again. */
START_TEST(test_retired_oldest_leave_first)
{
	setup_pools(0);
	unsigned char *r = region((RETIRED + 1) * 2 * page_size());
	int dirty;
	for (int i = 0; i <= RETIRED; i++) span_retire(r + i * 2 * page_size(), page_size());
	ck_assert_msg(!is_mapped(r), "the oldest retired span is still mapped");
	for (int i = 1; i <= RETIRED; i++)
		ck_assert_msg(is_mapped(r + i * 2 * page_size()), "retired span %d unmapped", i);
	for (int i = 0; i < RETIRED; i++) {
		unsigned char *q = take(page_size(), &dirty);
		ck_assert((uintptr_t)(q) > (uintptr_t)(r));
		ck_assert((uintptr_t)(q) < (uintptr_t)(r + (RETIRED + 1) * 2 * page_size()));
		ck_assert_int_eq(dirty, 0);
	}
}
END_TEST

/* Large cache, best fit: mappings of 1, 4 and 2 MiB cached in that order;
 * 1.5 MiB takes the 2 MiB one whole (within the slack); first fit would
 * take the 4 MiB one. */
START_TEST(test_cache_best_fit)
{
	setup_pools(1 << 30);
	size_t len[3] = { MiB, 4 * MiB, 2 * MiB }, got;
	unsigned char *m[3], *origin;
	int fresh;
	for (int i = 0; i < 3; i++) m[i] = region(len[i]);
	for (int i = 0; i < 3; i++) span_unmap_cached(m[i], len[i], m[i]);
	ck_assert_ptr_eq(span_map_cached(3 * MiB / 2, &got, &fresh, &origin), m[2]);
	ck_assert_uint_eq(got, 2 * MiB);
	ck_assert_ptr_eq(origin, m[2]);
	ck_assert_int_eq(fresh, 0);
	ck_assert_ptr_eq(span_map_cached(4 * MiB, &got, &fresh, &origin), m[1]);
	ck_assert_ptr_eq(span_map_cached(MiB, &got, &fresh, &origin), m[0]);
}
END_TEST

/* Large cache, join: two 1 MiB fronts cut from a cached 8 MiB mapping,
 * given back, join the 6 MiB rest: 8 MiB at the start again. */
START_TEST(test_cache_join)
{
	setup_pools(1 << 30);
	unsigned char *m = region(8 * MiB), *o1, *o2, *origin;
	size_t got;
	int fresh;
	span_unmap_cached(m, 8 * MiB, m);
	unsigned char *p1 = span_map_cached(MiB, &got, &fresh, &o1);
	ck_assert_ptr_eq(p1, m);
	ck_assert_uint_eq(got, MiB);
	unsigned char *p2 = span_map_cached(MiB, &got, &fresh, &o2);
	ck_assert_ptr_eq(p2, m + MiB);
	ck_assert_ptr_eq(o2, m);
	span_unmap_cached(p1, MiB, o1);
	span_unmap_cached(p2, MiB, o2);
	ck_assert_ptr_eq(span_map_cached(8 * MiB, &got, &fresh, &origin), m);
	ck_assert_uint_eq(got, 8 * MiB);
}
END_TEST

/* Large cache, count bound and age: CACHE_SLOTS + 1 mappings of 1 MiB
 * cached a few ms apart: the first (oldest) is unmapped, the others stay. */
START_TEST(test_cache_count_bound)
{
	setup_pools(1 << 30);
	unsigned char *m[CACHE_SLOTS + 1];
	for (int i = 0; i <= CACHE_SLOTS; i++) m[i] = region(MiB);
	for (int i = 0; i <= CACHE_SLOTS; i++) {
		span_unmap_cached(m[i], MiB, m[i]);
		sleep_ms(15);           /* CLOCK_MONOTONIC_COARSE ticks */
	}
	ck_assert_msg(!is_mapped(m[0]), "the oldest cached mapping is still mapped");
	for (int i = 1; i <= CACHE_SLOTS; i++)
		ck_assert_msg(is_mapped(m[i]), "cached mapping %d unmapped", i);
}
END_TEST

/* Large cache, byte bound: three mappings of 30 MiB (at most half of
 * CACHE_BYTES each): the third pushes the oldest out. */
START_TEST(test_cache_byte_bound)
{
	setup_pools(1 << 30);
	unsigned char *m[3];
	for (int i = 0; i < 3; i++) m[i] = region(30 * MiB);
	for (int i = 0; i < 3; i++) {
		span_unmap_cached(m[i], 30 * MiB, m[i]);
		sleep_ms(15);
	}
	ck_assert(!is_mapped(m[0]));
	ck_assert(is_mapped(m[1]));
	ck_assert(is_mapped(m[2]));
	/* above half of CACHE_BYTES: not cached (retired: it stays reserved
	 * on the ring, cold) and nothing cached leaves for it */
	unsigned char *big = region(CACHE_BYTES / 2 + page_size());
	span_unmap_cached(big, CACHE_BYTES / 2 + page_size(), big);
	ck_assert(is_mapped(m[1]));
	ck_assert(is_mapped(m[2]));
}
END_TEST

/* Large cache, its bound dropping: while threads come and go the cache
 * holds CACHE_MT_SLOTS (64) mappings; once that ends (span_heap_left's
 * decay_ms past) the next put moves out at most what its caller's buffer
 * holds (CACHE_SLOTS + 1 mappings; the oldest, which the coarse clock
 * may not tell apart here), and leaves the rest
 * to later puts and expiries (a put that moved the whole excess wrote 31
 * spans into a buffer of 9 on the stack). */
START_TEST(test_cache_bound_drops)
{
	enum { N = 40 };
	setup_pools(50);
	span_heap_left();               /* threaded for 50 ms */
	opt.decay_ms = 1 << 30;         /* nothing expires */
	unsigned char *m[N + 1];
	for (int i = 0; i <= N; i++) m[i] = region(64 * KiB);
	for (int i = 0; i < N; i++) span_unmap_cached(m[i], 64 * KiB, m[i]);
	for (int i = 0; i < N; i++) ck_assert_msg(is_mapped(m[i]), "cached mapping %d unmapped", i);
	sleep_ms(80);                   /* past the threaded bound */
	span_unmap_cached(m[N], 64 * KiB, m[N]);
	int gone = 0;
	for (int i = 0; i < N; i++) gone += !is_mapped(m[i]);
	ck_assert_msg(gone == CACHE_SLOTS + 1, "%d of %d cached mappings unmapped by one put", gone, N);
	span_trim(1);
}
END_TEST

static Suite *span_suite(void)
{
	Suite *s = suite_create("span");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_warm_best_fit);
	tcase_add_test(tc, test_retired_best_fit);
	tcase_add_test(tc, test_warm_join);
	tcase_add_test(tc, test_retired_join);
	tcase_add_test(tc, test_warm_longest_leaves_first);
	tcase_add_test(tc, test_warm_count_bound);
	tcase_add_test(tc, test_warm_byte_bound);
	tcase_add_test(tc, test_retired_oldest_leave_first);
	tcase_add_test(tc, test_cache_best_fit);
	tcase_add_test(tc, test_cache_join);
	tcase_add_test(tc, test_cache_count_bound);
	tcase_add_test(tc, test_cache_byte_bound);
	tcase_add_test(tc, test_cache_bound_drops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(span_suite());
}
