/* test_whitebox.c - attacks that need the allocator's internals: the test
 * is linked with the allocator's sources (not the library), so it can
 * read the keys to look for copies of them, and play a write-what-where
 * primitive on the heap's group pointers and on meta records.
 *
 * What each test plays (doc/security.md):
 * - an over-read of heap memory looking for the keys (no copy exists);
 * - observed headers and the tag function (not linear in anything an
 *   attacker can solve for);
 * - a rewritten current-group pointer in a thread heap (malloc refuses a
 *   record outside the meta areas);
 * - a rewritten avail mask in a genuine record (malloc refuses to hand out
 *   a live slot again).
 */
#include "internal.h"     /* first: check.h defines a macro named fail */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include "util.h"

/* Count the copies of the keys outside ro's pages. */
static size_t key_copies(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t found = 0;
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3) continue;
		/* the process's writable memory that a heap over-read can reach:
		 * anonymous mappings (groups, meta areas, heaps), [heap], .data
		 * and .bss; not the stack, where a compiler may spill a key it
		 * computes with (doc/security.md) */
		if (strncmp(perm, "rw", 2) || strstr(line, "[stack]")) continue;
		for (unsigned long a = lo; a + 8 <= hi; a += 8) {
			if (a >= (uintptr_t)&ro && a < (uintptr_t)&ro + sizeof ro) continue;
			if (a >= (uintptr_t)line && a < (uintptr_t)line + sizeof line) continue;
			uint64_t w = *(const uint64_t *)a;
			for (int k = 0; k < 4; k++)
				if (w == ro.key[k]) {
					found++;
					fprintf(stderr, "key %d at %#lx in %s", k, a, line);
				}
		}
	}
	fclose(f);
	return found;
}

START_TEST(test_no_copy_of_the_keys)
{
	void *p[2000];
	for (int i = 0; i < 2000; i++) p[i] = malloc(16 + i % 300);
	ck_assert_uint_eq(key_copies(), 0);
	for (int i = 0; i < 2000; i++) free(p[i]);
}
END_TEST

/* Meta areas (records, then slot entries) have a guard page on each
 * side. */
START_TEST(test_meta_area_guarded)
{
	void *p[200];
	/* more groups than area 0's boot records: area 1 is mapped */
	for (int i = 0; i < 200; i++) p[i] = malloc(2000);
	struct meta_area *a = ro.areas[1].recs;
	ck_assert_ptr_nonnull(a);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int before = 0, after = 0;
	uintptr_t lo_a = (uintptr_t)a, hi_a = lo_a + AREA_RECS * (sizeof(struct meta) + ENTS_PER_REC * sizeof(uint32_t)) + MAX_PAGE;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3) continue;
		if (lo <= lo_a - page_size() && hi >= lo_a && !strncmp(perm, "---", 3)) before = 1;
		if (lo <= hi_a && hi >= hi_a + page_size() && !strncmp(perm, "---", 3)) after = 1;
	}
	fclose(f);
	ck_assert_msg(before && after, "meta area %p: guard before %d, after %d", (void *)a, before, after);
	for (int i = 0; i < 200; i++) free(p[i]);
}
END_TEST

/* XOR and additive differences of inputs do not give fixed differences
 * of tags (the previous tag was linear over the integers in its inputs
 * and its secret). */
START_TEST(test_tag_not_linear)
{
	ensure_init();
	uint64_t s = 12345;
	int same_xor = 0, same_add = 0;
	for (int t = 0; t < 64; t++) {
		uint64_t low = rng_next(&s) & 0xffffffff, d = 1ull << (t % 32);
		uintptr_t p = (rng_next(&s) & 0x7ffffffff0ull) | 0x100000000000ull;
		uint32_t t0 = mac(low, (void *)p, K_LIVE, 0), t1 = mac(low ^ d, (void *)p, K_LIVE, 0);
		uint32_t u0 = mac(low + 77, (void *)p, K_LIVE, 0);
		uintptr_t p2 = p + 4096;
		uint32_t t2 = mac(low, (void *)p2, K_LIVE, 0), t3 = mac(low ^ d, (void *)p2, K_LIVE, 0);
		uint32_t u2 = mac(low + 77, (void *)p2, K_LIVE, 0);
		same_xor += (t0 ^ t1) == (t2 ^ t3);
		same_add += (uint32_t)(u0 - t0) == (uint32_t)(u2 - t2);
	}
	ck_assert_msg(same_xor <= 2 && same_add <= 2, "xor %d, add %d of 64 differences repeat",
		      same_xor, same_add);
	/* the kinds are unrelated values */
	int same = 0;
	for (int t = 0; t < 64; t++) {
		uintptr_t p = 0x100000000000ull + 16 * (uintptr_t)t;
		same += (mac(5, (void *)p, K_LIVE, 0) ^ mac(5, (void *)p, K_SLOW, 0)) ==
			(mac(5, (void *)(p + 16), K_LIVE, 0) ^ mac(5, (void *)(p + 16), K_SLOW, 0));
	}
	ck_assert_int_le(same, 2);
}
END_TEST

/* A write-what-where into the heap's current-group pointer, aimed at a
 * record forged in ordinary memory whose slots point at a chosen address. */
static unsigned char target[4096] __attribute__((aligned(64)));

static void forge_cur(void *arg)
{
	(void)arg;
	free(malloc(48));                       /* a heap, a group of class 3 */
	struct heap *h = tl_heap;
	int sc = size_to_class(48);
	static struct meta fake __attribute__((aligned(64)));
	fake = *h->cur[sc];
	fake.mem = target;
	fake.avail = 1;
	/* empty the cache so that malloc takes from the group */
	while (*tc_at(h, h->tc_top[sc])) (void)malloc(48);
	h->cur[sc] = &fake;
	void *p = malloc(48);
	if (p == target + GROUP_HDR) fprintf(stderr, "malloc returned the chosen address\n");
}

/* The header's fields: every slot index, record index and check length
 * reads back, and the record's and the entry's offsets are those of the
 * record and entry that the index names. */
START_TEST(test_header_fields)
{
	free(malloc(1));        /* initialised */
	for (uint32_t mi = 1; mi < (MAX_AREAS << AREA_SHIFT); mi = mi * 3 + 1)
		for (unsigned idx = 0; idx < 32; idx++)
			for (unsigned clen = 0; clen <= 4; clen++) {
				uint64_t h = h_low(mi, idx, clen) | 0xdeadbeef00000000ull;
				ck_assert_uint_eq(H_IDX(h), idx);
				ck_assert_uint_eq(H_META(h), mi);
				ck_assert_uint_eq(H_CLEN(h), clen);
				ck_assert_uint_eq(H_AREA(h), mi >> AREA_SHIFT);
				ck_assert_uint_eq(H_REC_OFF(h), (mi & (AREA_RECS - 1)) * sizeof(struct meta));
				ck_assert_uint_eq(H_ENT_OFF(h), ((mi & (AREA_RECS - 1)) * ENTS_PER_REC + idx) * 4);
			}
	ck_assert_uint_eq(class_stride(SC_LARGE), 0);
}
END_TEST

START_TEST(test_forged_current_group)
{
	char err[512];
	int st = run_in_child(forge_cur, NULL, 10, err, sizeof err);
	ck_assert_msg(WIFSIGNALED(st) && strstr(err, "mallocng: ") && strstr(err, "]: corrupted metadata at 0x"),
		      "status %d: %s", st, err);
}
END_TEST

/* A write into a genuine record's avail mask that marks a live slot free. */
static void forge_avail(void *arg)
{
	(void)arg;
	void *a = malloc(48), *b = malloc(48);
	uint64_t hdr = *header_of(OPAQUE(a));   /* no -Warray-bounds (i386) */
	struct meta *m = meta_at_index(H_META(hdr));
	struct heap *h = tl_heap;
	int sc = m->sc;
	while (*tc_at(h, h->tc_top[sc])) (void)malloc(48);
	int idx = (int)H_IDX(hdr);
	m->avail |= 1u << idx;                  /* a, live, listed as free */
	h->cur[sc] = m;
	for (int i = 0; i < 40; i++) {
		void *q = malloc(48);
		if (q == a) fprintf(stderr, "malloc handed out a live object again\n");
	}
	(void)b;
}

START_TEST(test_forged_avail_bit)
{
	char err[512];
	int st = run_in_child(forge_avail, NULL, 10, err, sizeof err);
	ck_assert_msg(WIFSIGNALED(st) && strstr(err, "mallocng: ") && strstr(err, "]: corrupted metadata at 0x"),
		      "status %d: %s", st, err);
}
END_TEST

static Suite *whitebox_suite(void)
{
	Suite *s = suite_create("whitebox");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_no_copy_of_the_keys);
	tcase_add_test(tc, test_meta_area_guarded);
	tcase_add_test(tc, test_tag_not_linear);
	tcase_add_test(tc, test_header_fields);
	tcase_add_test(tc, test_forged_current_group);
	tcase_add_test(tc, test_forged_avail_bit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(whitebox_suite());
}
