/* test_size_class.c - the class table (src/size_class.c), tested directly:
 * the table and the arithmetic path of size_to_class agree with the
 * definition (the smallest stride holding n + SLOT_HDR bytes). */
#include "internal.h"    /* before check.h, whose fail() is a macro */
#include <check.h>
#include "util.h"

static void setup(void)
{
	size_class_init();
}

START_TEST(test_strides)
{
	for (int sc = 0; sc < NCLASS; sc++) {
		ck_assert_uint_eq(class_stride(sc) % UNIT, 0);
		if (sc) ck_assert_uint_gt(class_stride(sc), class_stride(sc - 1));
		/* four classes per doubling from 128 on: waste below 1/4 */
		if (sc > 8) ck_assert_uint_le(class_stride(sc) * 4, class_stride(sc - 1) * 5 + UNIT);
	}
	ck_assert_uint_eq(class_stride(0), 16);
	ck_assert_uint_eq(class_stride(NCLASS - 1), MAX_SMALL + SLOT_HDR);
	/* records of large objects have stride 0: free's fast path relies on it */
	for (int sc = NCLASS; sc <= SC_LARGE; sc++) ck_assert_uint_eq(class_stride(sc), 0);
}
END_TEST

START_TEST(test_smallest_class)
{
	for (size_t n = 0; n <= MAX_SMALL; n++) {
		int sc = size_to_class(n);
		REQUIRE(sc >= 0 && sc < NCLASS, "class %d for %zu", sc, n);
		REQUIRE(class_stride(sc) >= n + SLOT_HDR, "n=%zu does not fit class %d", n, sc);
		REQUIRE(sc == 0 || class_stride(sc - 1) < n + SLOT_HDR,
			"n=%zu would fit class %d below %d", n, sc - 1, sc);
	}
}
END_TEST

/* the table covers exactly the sizes malloc looks up in it */
START_TEST(test_table_edge)
{
	size_t last = TABLE_MAX;
	ck_assert_int_eq(ro.class_of[(last + SLOT_HDR - 1) >> 4], size_to_class(last));
	ck_assert_uint_eq((last + SLOT_HDR - 1) >> 4, CLASS_OF_MAX / UNIT - 1);
}
END_TEST

static Suite *size_class_suite(void)
{
	Suite *s = suite_create("size_class");
	TCase *tc = tcase_create("table");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_strides);
	tcase_add_test(tc, test_smallest_class);
	tcase_add_test(tc, test_table_edge);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(size_class_suite());
}
