/* test_group.c - the group sizing of src/group.c (group_cnt, group_fit),
 * white-box: linked with the allocator's sources, the test sets how many
 * groups the heap owns of a class (h->ngroups[sc], which drives the
 * size) and reads the count and mapping of the group group_create makes.
 *
 * Rules checked, and the wrong behaviour each would catch:
 * - a class's first group has 4 slots, then 8, 16 (2nd and 3rd) and 32
 *   (catches a wrong step, or ngroups not counted by group_create);
 * - above 16 KiB the first group has 2 slots, above 32 KiB 1 (catches a
 *   program with one big object paying for 4 of them);
 * - at least 1 KiB of slots in a group (catches small classes getting
 *   groups of 4 slots of 16-64 bytes: a group per few mallocs);
 * - groups stay below about 1 MiB (catches 32 slots of a 128 KiB class,
 *   4 MiB for one object's neighbours);
 * - the fitted count fills its container better than the naive one: the
 *   examples above group_fit (32 x 32 B -> 31, 32 x 160 B -> nested, at
 *   least 25/4096 used), and for
 *   every nested class no worse use than the naive count's (catches
 *   group_fit not applied, or choosing a worse count);
 * - a mapped group's count grows into the rest of its last page, up to 32
 *   (catches pages mapped and left unused).
 *
 * On a page bigger than 4 KiB (make check-pagesize) the counts the rules
 * give are fitted to whole pages (group_fit, then the last page filled):
 * the expected counts come from fitted() below, which on 4 KiB pages must
 * give the literal figures (asserted), so the native run is unchanged.
 */
#include "internal.h"     /* first: check.h defines a macro named fail */
#include <check.h>
#include "util.h"

/* The class of exactly this stride; -1 if none. */
static int class_of_stride(uint32_t stride)
{
	for (int sc = 0; sc < NCLASS; sc++)
		if (class_stride(sc) == stride) return sc;
	return -1;
}

/* The first class whose stride is above lo. */
static int class_above(uint32_t lo)
{
	for (int sc = 0; sc < NCLASS; sc++)
		if (class_stride(sc) > lo) return sc;
	ck_abort_msg("no class above %u", lo);
	return -1;
}

static struct heap *fresh_heap(void)
{
	free(malloc(1));        /* the allocator initialised */
	opt.decay_ms = 1 << 30;
	span_trim(1);           /* mapped groups come from new mappings */
	struct heap *h = heap_get();
	ck_assert_ptr_nonnull(h);
	/* page_size() below is the allocator's: the one the test expects */
	ck_assert_uint_eq(page_size(), test_page_size());
	return h;
}

/* A new group of class sc made by a heap that owns u groups of it. */
static struct meta *make(struct heap *h, int sc, int u)
{
	h->ngroups[sc] = (uint16_t)u;
	struct meta *m = group_create(h, sc);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->sc, sc);
	ck_assert_int_eq(h->ngroups[sc], u + 1);
	/* a mapped group fills its pages: no room for one more slot */
	if (m->mapped)
		ck_assert_msg(m->cnt == 32 || group_bytes(sc, m->cnt + 1) > m->maplen,
			      "stride %u: %d slots in %zu bytes", class_stride(sc), m->cnt, m->maplen);
	return m;
}

/* What a group of n slots takes: a slot of the class that holds it
 * (nested) or whole pages (mapped). */
static size_t footprint(int sc, int n)
{
	size_t b = group_bytes(sc, n);
	return b <= NEST_MAX ? class_stride(size_to_class(b)) : page_round(b);
}

/* The count of a group the rules size for cnt slots of class sc, as
 * group_create makes it on this page size: of cnt/2..cnt slots, the one
 * that uses its footprint best (ties to the larger), then, mapped, as
 * many as its pages hold (up to 32). */
static int fitted(int sc, int cnt)
{
	int best = cnt;
	for (int n = cnt - 1; n >= 1 && 2 * n >= cnt; n--)
		if ((uint64_t)n * footprint(sc, best) > (uint64_t)best * footprint(sc, n)) best = n;
	if (group_bytes(sc, best) > NEST_MAX)
		while (best < 32 && group_bytes(sc, best + 1) <= page_round(group_bytes(sc, best))) best++;
	return best;
}

/* The count expected for a group the rules size for cnt slots: cnt
 * itself on 4 KiB pages (the model agreeing), else the model's. */
static int expect_cnt(int sc, int cnt)
{
	if (page_size() == 4096) {
		ck_assert_msg(fitted(sc, cnt) == cnt, "stride %u: model gives %d slots for %d",
			      class_stride(sc), fitted(sc, cnt), cnt);
		return cnt;
	}
	return fitted(sc, cnt);
}

/* 4 KiB slots (mapped groups, whose pages the counts fill exactly): 4,
 * 8, 16, 16, 32, 32 slots as the heap owns 0, 1, 2, 3, 4, 9 groups; the
 * counts also follow from group_create alone (ngroups counted). */
START_TEST(test_group_steps)
{
	struct heap *h = fresh_heap();
	int sc = class_of_stride(4096);
	ck_assert_int_ge(sc, 0);
	int want[] = { 4, 8, 16, 16, 32, 32 }, u[] = { 0, 1, 2, 3, 4, 9 };
	for (int i = 0; i < 6; i++) want[i] = expect_cnt(sc, want[i]);
	for (int i = 0; i < 6; i++) {
		struct meta *m = make(h, sc, u[i]);
		ck_assert_msg(m->cnt == want[i], "%d groups owned: %d slots, want %d", u[i], m->cnt, want[i]);
		ck_assert(m->mapped);
		ck_assert_uint_eq(m->maplen, page_round(group_bytes(sc, m->cnt)));
	}
	h->ngroups[sc] = 0;
	for (int i = 0; i < 5; i++) {
		struct meta *m = group_create(h, sc);
		ck_assert_ptr_nonnull(m);
		ck_assert_int_eq(m->cnt, want[i]);
	}
}
END_TEST

/* Big classes: the first group holds 2 slots above 16 KiB, 1 above
 * 32 KiB (on a bigger page, as many as that group's pages hold: 3 slots
 * of 20 KiB on 64 KiB pages); the second one more. */
START_TEST(test_group_big_first)
{
	struct heap *h = fresh_heap();
	int sc2 = class_above(16384), sc1 = class_above(32768);
	ck_assert_uint_le(class_stride(sc2), 32768);
	int first2 = expect_cnt(sc2, 2), first1 = expect_cnt(sc1, 1);
	ck_assert_int_eq(make(h, sc2, 0)->cnt, first2);
	ck_assert_int_eq(make(h, sc1, 0)->cnt, first1);
	ck_assert_int_gt(make(h, sc2, 1)->cnt, first2);
	ck_assert_int_gt(make(h, sc1, 1)->cnt, first1);
	/* at 16 KiB exactly, the first group is the usual 4 */
	int sc4 = class_of_stride(16384);
	if (sc4 >= 0) ck_assert_int_eq(make(h, sc4, 0)->cnt, expect_cnt(sc4, 4));
}
END_TEST

/* At least 1 KiB of slots: a first group of a small class holds
 * 1024 / stride slots (at most 32), less at most what group_fit takes
 * off (half); 4 slots would be 64-256 bytes. */
START_TEST(test_group_min_1k)
{
	struct heap *h = fresh_heap();
	for (int sc = 0; sc < NCLASS && class_stride(sc) < 256; sc++) {
		int naive = 1024 / (int)class_stride(sc);
		if (naive > 32) naive = 32;
		int cnt = make(h, sc, 0)->cnt;
		ck_assert_msg(2 * cnt >= naive && cnt <= naive,
			      "stride %u: first group of %d slots, want %d or a fit of it",
			      class_stride(sc), cnt, naive);
		if (naive >= 10)
			ck_assert_msg(cnt > 4, "stride %u: %d slots", class_stride(sc), cnt);
	}
}
END_TEST

/* Below about 1 MiB: every class, at every use, gives a group of at most
 * 1 MiB (and mapping) unless a single slot is bigger; the biggest
 * classes still get more than one slot once used. */
START_TEST(test_group_below_1mib)
{
	struct heap *h = fresh_heap();
	for (int sc = class_above(16384); sc < NCLASS; sc++) {
		for (int u = 0; u <= 4; u += 4) {
			struct meta *m = make(h, sc, u);
			if (m->cnt == 1) continue;
			ck_assert_msg(group_bytes(sc, m->cnt) <= (1u << 20),
				      "stride %u: %d slots", class_stride(sc), m->cnt);
			ck_assert_uint_le(m->maplen, 1u << 20);
			/* not below by more than a slot: as big as allowed
			 * (on a bigger page, that count fitted to pages) */
			if (m->cnt < 32 && u == 4 && page_size() == 4096)
				ck_assert_msg(group_bytes(sc, m->cnt + 1) > (1u << 20) - class_stride(sc),
					      "stride %u: %d slots", class_stride(sc), m->cnt);
			if (u == 4 && page_size() != 4096) {
				int cap = 32;
				while (group_bytes(sc, cap) > (1u << 20)) cap--;
				ck_assert_msg(m->cnt == fitted(sc, cap), "stride %u: %d slots, want %d fitted to %d",
					      class_stride(sc), m->cnt, fitted(sc, cap), cap);
			}
		}
	}
}
END_TEST

/* The examples of the comment above group_fit: 32 slots of 32 bytes
 * (1 040 bytes, in a 1 280-byte slot) -> 31 in a 1 024-byte slot;
 * 32 slots of 160 bytes (2 pages) -> nested, filling its slot at least
 * as well as 25 in a 4 KiB slot. */
START_TEST(test_group_fit_examples)
{
	struct heap *h = fresh_heap();
	int s32 = class_of_stride(32), s160 = class_of_stride(160);
	ck_assert_int_ge(s32, 0);
	ck_assert_int_ge(s160, 0);
	struct meta *m = make(h, s32, 4);
	ck_assert_int_eq(m->cnt, 31);
	ck_assert(!m->mapped);
	ck_assert_uint_eq(footprint(s32, 31), 1024);
	/* group_fit takes the best of 16..32 slots: 19 (3 056 bytes) fill a
	 * 3 072-byte slot, as group.c's comment says; the test asks for a
	 * nested group at least as well used as 25 slots in 4 KiB */
	ck_assert_uint_eq(footprint(s160, 25), 4096);
	ck_assert_uint_gt(footprint(s160, 32), 4096);
	m = make(h, s160, 4);
	ck_assert(!m->mapped);
	ck_assert_int_ge(m->cnt, 16);
	ck_assert_uint_ge((uint64_t)m->cnt * 4096, (uint64_t)25 * footprint(s160, m->cnt));
}
END_TEST

/* Every class whose naive 32-slot group is nested or a few pages: the
 * fitted count is in 16..32 and uses what it takes at least as well as
 * 32 slots would (cnt * stride / footprint). */
START_TEST(test_group_fit_no_worse)
{
	struct heap *h = fresh_heap();
	for (int sc = 0; sc < NCLASS && class_stride(sc) <= 1024; sc++) {
		struct meta *m = make(h, sc, 4);
		int n = m->cnt;
		size_t fp = m->mapped ? m->maplen : footprint(sc, n);
		ck_assert_msg(n >= 16 && n <= 32, "stride %u: %d slots", class_stride(sc), n);
		ck_assert_msg((uint64_t)n * footprint(sc, 32) >= (uint64_t)32 * fp,
			      "stride %u: %d slots in %zu bytes, 32 in %zu", class_stride(sc),
			      n, fp, footprint(sc, 32));
		if (m->mapped)
			ck_assert(n == 32 || group_bytes(sc, n + 1) > m->maplen);
	}
}
END_TEST

/* The rest of the last page: a first group of 3 KiB slots is sized for
 * 4 (12 304 bytes), mapped on 4 pages, which hold a fifth slot (on
 * 64 KiB pages, one page of 21 slots). */
START_TEST(test_group_fills_pages)
{
	struct heap *h = fresh_heap();
	int sc = class_of_stride(3072);
	ck_assert_int_ge(sc, 0);
	struct meta *m = make(h, sc, 0);
	ck_assert(m->mapped);
	size_t pages = page_round(group_bytes(sc, 4));
	int fill = (int)((pages - GROUP_HDR) / 3072) < 32 ? (int)((pages - GROUP_HDR) / 3072) : 32;
	if (page_size() == 4096) ck_assert(pages == 16384 && fill == 5);
	ck_assert_uint_eq(m->maplen, pages);
	ck_assert_int_eq(m->cnt, fill);
}
END_TEST

static Suite *group_suite(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_group_steps);
	tcase_add_test(tc, test_group_big_first);
	tcase_add_test(tc, test_group_min_1k);
	tcase_add_test(tc, test_group_below_1mib);
	tcase_add_test(tc, test_group_fit_examples);
	tcase_add_test(tc, test_group_fit_no_worse);
	tcase_add_test(tc, test_group_fills_pages);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(group_suite());
}
