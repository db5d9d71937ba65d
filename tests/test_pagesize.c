/* test_pagesize.c - the page size (src/os.h, os_map.c), white-box: linked with
 * the allocator's sources compiled as an emulation build
 * (-DMALLOCNG_PAGE_EMULATION, whatever configure said), so that it can
 * run the allocator on 16 or 64 KiB pages on this kernel and watch every
 * call of the OS layer (os_trace).
 *
 * Rules checked, and the wrong behaviour each would catch:
 * - the page is the kernel's (AT_PAGESZ, sysconf) when nothing asks for
 *   another (catches a compile-time page, or one read from elsewhere);
 * - MALLOCNG_PAGE_SIZE is taken only as a power of two above the kernel's
 *   page, up to MAX_PAGE, and never in a privileged process (catches the
 *   environment choosing a page the kernel cannot have, or a set-user-ID
 *   program honouring it);
 * - on emulated 64 KiB (and 16 KiB) pages, a workload of every kind of
 *   memory (nested, mapped and big-slot groups, large objects, aligned
 *   ones, realloc growth and shrink, emptied groups, malloc_trim, thread
 *   exit, guard, protect_meta) makes every mapping, unmapping, remapping,
 *   guard, purge, protection and populate on whole emulated pages, each
 *   mmap result aligned to one, each guard page one page long (catches a
 *   rounding to 4 KiB anywhere: os_map_guarded, dirty.c, release.c,
 *   populate.c, large.c, an mmap result not aligned), and live objects
 *   next to purged slots keep their data (catches a purge of a page that
 *   is bigger than a slot and reaches a live neighbour: dirty.c);
 * - valloc and pvalloc align to the emulated page (catches a 4 KiB
 *   valloc).
 */
#include "internal.h"     /* first: check.h defines a macro named fail */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "util.h"

#ifndef MALLOCNG_PAGE_EMULATION
#error "test_pagesize is built with -DMALLOCNG_PAGE_EMULATION (tests/Makefile.am)"
#endif

START_TEST(test_page_choose)
{
	ck_assert_uint_eq(os_page_choose(4096, NULL, 0), 4096);
	ck_assert_uint_eq(os_page_choose(4096, "65536", 0), 65536);
	ck_assert_uint_eq(os_page_choose(4096, "16384", 0), 16384);
	ck_assert_uint_eq(os_page_choose(16384, "65536", 0), 65536);
	/* privileged: the environment is another user's */
	ck_assert_uint_eq(os_page_choose(4096, "65536", 1), 4096);
	/* not a power of two, not above the kernel's, above MAX_PAGE, junk */
	ck_assert_uint_eq(os_page_choose(4096, "12288", 0), 4096);
	ck_assert_uint_eq(os_page_choose(65536, "16384", 0), 65536);
	ck_assert_uint_eq(os_page_choose(4096, "4096", 0), 4096);
	ck_assert_uint_eq(os_page_choose(4096, "131072", 0), 4096);
	ck_assert_uint_eq(os_page_choose(4096, "65536k", 0), 4096);
	ck_assert_uint_eq(os_page_choose(4096, "", 0), 4096);
	ck_assert_uint_eq(os_page_choose(4096, "99999999999999999999999", 0), 4096);
}
END_TEST

/* ---- the scenarios, each in a fresh process (run_page) ---- */

/* The OS layer's calls, recorded without allocating. */
#define TRACE_MAX 200000
static struct call { int op; uintptr_t p; size_t len; } calls[TRACE_MAX];
static size_t ncalls, dropped;

static const char *const op_name[];

/* (the library fails the process on the call that follows: said first) */
static void record(int op, const void *p, size_t len)
{
	if (((uintptr_t)p | len) & (page_size() - 1)) {
		char b[200];
		int n = snprintf(b, sizeof b, "%s of %zu bytes at %p: not on whole pages of %zu\n",
				 op_name[op], len, p, page_size());
		(void)!write(2, b, (size_t)n);
	}
	if (ncalls < TRACE_MAX) calls[ncalls++] = (struct call){ op, (uintptr_t)p, len };
	else dropped++;
}

static const char *const op_name[OS_READABLE + 1] = { "mmap", "munmap", "mremap", "purge", "guard", "unguard",
				       "protect", "decommit", "populate", "readable" };

/* an assertion of the scenarios, which run outside Check's runner */
#define REQ(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); exit(1); } } while (0)

static void *thread_work(void *arg)
{
	void *v[64];
	for (int i = 0; i < 64; i++) v[i] = malloc(16 + (size_t)i * 997);
	for (int i = 0; i < 64; i++) free(v[i]);
	return arg;
}

static void *thread_free(void *arg)
{
	for (void **v = arg; *v; v++) free(*v);
	return 0;
}

/* Every kind of memory, given back in every way. */
static void workload(void)
{
	static void *v[4096];
	size_t k = 0;
	uint64_t s = 7;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 1500; i++) {
			size_t n = i % 10 == 0 ? rng_range(&s, 8192, 131000) : rng_range(&s, 1, 5000);
			v[k] = malloc(n);
			REQ(v[k]);
			memset(v[k], 1, n);
			k++;
		}
		for (size_t i = 0; i < k; i += 2) free(v[i]), v[i] = 0;   /* sparse groups */
		for (size_t i = 1; i < k; i += 2) free(v[i]), v[i] = 0;   /* empty ones */
		k = 0;
	}
	/* big slots (32..128 KiB) given back around live ones: a page bigger
	 * than a slot reaches its neighbours, which keep their data
	 * (dirty.c: page_free) */
	for (int i = 0; i < 96; i++) {
		size_t n = 33000 + (size_t)(i % 8) * 4000;
		v[i] = malloc(n);
		REQ(v[i]);
		fill_pattern(v[i], n, (uint32_t)i);
	}
	for (int i = 0; i < 96; i++)
		if (i % 3) free(v[i]), v[i] = 0;
	malloc_trim(0);
	for (int i = 0; i < 96; i += 3) {
		size_t n = 33000 + (size_t)(i % 8) * 4000;
		REQ(check_pattern(v[i], n, (uint32_t)i) == n);
		free(v[i]);
	}
	/* one class (40 KiB slots): a slot given back, clean, between a live
	 * one and a slot freed later, whose page reaches over it */
	for (int i = 0; i < 128; i++) {
		v[i] = malloc(36000);
		REQ(v[i]);
		fill_pattern(v[i], 36000, (uint32_t)i);
	}
	for (int i = 1; i < 128; i += 4) free(v[i]);
	malloc_trim(0);
	for (int i = 2; i < 128; i += 4) free(v[i]);
	malloc_trim(0);
	for (int i = 0; i < 128; i++) {
		if (i % 4 == 1 || i % 4 == 2) continue;
		REQ(check_pattern(v[i], 36000, (uint32_t)i) == 36000);
		free(v[i]);
	}
	/* calloc of fresh slots: their pages populated (populate.c) */
	for (int i = 0; i < 40; i++) {
		v[i] = calloc(1, 9000 + (size_t)i * 3000);
		REQ(v[i]);
	}
	for (int i = 0; i < 40; i++) free(v[i]);
	/* ... whose slack word lies pages past the object's end (populated too) */
	for (int i = 0; i < 4; i++) free(calloc(1, (size_t)65600 + (size_t)i * 16400));
	/* big slots kept and given back (dirty.c) */
	for (int i = 0; i < 40; i++) {
		v[i] = malloc(40000 + (size_t)i * 2000);
		memset(v[i], 2, 40000);
	}
	for (int i = 0; i < 40; i++) free(v[i]);
	/* large objects: plain, zeroed, aligned beyond and below the page,
	 * grown and shrunk in place and by moving */
	for (int i = 0; i < 20; i++) {
		size_t n = (size_t)200000 + (size_t)i * 77777;
		char *p = i % 2 ? calloc(1, n) : malloc(n);
		REQ(p);
		p[n - 1] = 1;
		p = realloc(p, n * 3);
		REQ(p);
		p = realloc(p, n / 4 + 140000);
		REQ(p);
		free(p);
	}
	static const size_t al[] = { 32, 4096, 8192, 32768, 65536, 1 << 17, 1 << 20, 1 << 21 };
	for (size_t i = 0; i < sizeof al / sizeof *al; i++) {
		void *p = aligned_alloc(al[i], 300000), *q = aligned_alloc(al[i], 1000);
		REQ(p);
		REQ(q);
		REQ((uintptr_t)p % al[i] == 0);
		REQ((uintptr_t)q % al[i] == 0);
		free(p), free(q);
	}
	/* valloc and pvalloc: the page is the emulated one */
	for (int i = 0; i < 8; i++) {
		void *p = valloc((size_t)1 + (size_t)i * 30000), *q = pvalloc((size_t)1 + (size_t)i * 30000);
		REQ((uintptr_t)p % page_size() == 0);
		REQ((uintptr_t)q % page_size() == 0);
		REQ(malloc_usable_size(q) >= page_size());
		free(p), free(q);
	}
	pthread_t t;
	REQ(pthread_create(&t, NULL, thread_work, NULL) == 0);
	REQ(pthread_join(t, NULL) == 0);
	/* big slots freed by another thread: their pages go back at once
	 * (release.c: slot_give_back) */
	for (int i = 0; i < 40; i++) {
		v[i] = malloc(33000 + (size_t)i * 2400);
		memset(v[i], 3, 33000);
	}
	v[40] = 0;
	REQ(pthread_create(&t, NULL, thread_free, v) == 0);
	REQ(pthread_join(t, NULL) == 0);
	malloc_trim(0);
}

/* The trace: each call on whole pages, mmap results aligned, guards of
 * one page around guarded mappings, and every kind of call seen. */
static int check_trace(const char *options)
{
	size_t page = page_size(), seen[OS_READABLE + 1] = { 0 };
	int bad = 0;
	for (size_t i = 0; i < ncalls; i++) {
		const struct call *c = &calls[i];
		seen[c->op]++;
		if ((c->p | c->len) & (page - 1)) {
			if (bad++ < 10)
				fprintf(stderr, "%s of %zu bytes at %#lx: not on whole pages of %zu\n",
					op_name[c->op], c->len, (unsigned long)c->p, page);
		}
		if (c->op == OS_GUARD && c->len != page && !strstr(options, "guard")) {
			if (bad++ < 10) fprintf(stderr, "guard of %zu bytes\n", c->len);
		}
	}
	if (dropped) fprintf(stderr, "%zu calls not recorded\n", dropped);
	if (getenv("MALLOCNG_TEST_VERBOSE"))
		for (int op = 0; op <= OS_READABLE; op++) fprintf(stderr, "%s: %zu calls\n", op_name[op], seen[op]);
	/* (guard: the meta areas' guards; ro is sealed on the kernel's own
	 * pages, os_protect_ro, which the trace does not see) */
	int need[] = { OS_MAP, OS_UNMAP, OS_PURGE, OS_GUARD };
	for (size_t i = 0; i < sizeof need / sizeof *need; i++)
		if (!seen[need[i]] && bad++ < 20) fprintf(stderr, "no %s call seen\n", op_name[need[i]]);
	/* (protect_meta seals the meta areas, on the emulated pages) */
	if (strstr(options, "protect_meta") && !seen[OS_PROTECT] && bad++ < 20)
		fprintf(stderr, "no protect call seen\n");
	/* (a guarded large object grows into its reserve, never by mremap) */
	if (!strstr(options, "guard") && !seen[OS_REMAP] && bad++ < 20)
		fprintf(stderr, "no mremap call seen\n");
	if (!strstr(options, "protect_meta") && !seen[OS_POPULATE] && bad++ < 20)
		fprintf(stderr, "no populate call seen\n");
	if (strstr(options, "guard") && !seen[OS_DECOMMIT] && bad++ < 20)
		fprintf(stderr, "no decommit call seen\n");
	return bad;
}

static int scenario_aligned(void)
{
	const char *want = getenv("MALLOCNG_PAGE_SIZE"), *o = getenv("MALLOCNG_OPTIONS");
	os_trace = record;
	free(malloc(1));
	if (page_size() != strtoul(want, 0, 10)) {
		fprintf(stderr, "page %zu, asked for %s\n", page_size(), want);
		return 1;
	}
	/* guard: shrink a guarded large object (decommit), grow it back */
	char *p = malloc(300000);
	p = realloc(p, 150000);
	p = realloc(p, 290000);
	free(p);
	workload();
	return check_trace(o ? o : "") ? 1 : 0;
}

static int scenario_kernel(void)
{
	free(malloc(1));
	long sc = sysconf(_SC_PAGESIZE);
	if (page_size() != (size_t)sc || page_size() != getauxval(AT_PAGESZ)) {
		fprintf(stderr, "page %zu, kernel's %ld\n", page_size(), sc);
		return 1;
	}
	char *p = valloc(1);
	if ((uintptr_t)p % (size_t)sc) return 1;
	free(p);
	return 0;
}

static const struct scenario scenarios[] = {
	{ "aligned", scenario_aligned },
	{ "kernel", scenario_kernel },
};

struct page_run { const char *page, *options, *scenario; };

static void exec_page(void *arg)
{
	const struct page_run *r = arg;
	char *argv[] = { "test_pagesize", "--scenario", (char *)r->scenario, NULL };
	if (r->page) setenv("MALLOCNG_PAGE_SIZE", r->page, 1);
	else unsetenv("MALLOCNG_PAGE_SIZE");
	if (r->options) setenv("MALLOCNG_OPTIONS", r->options, 1);
	else unsetenv("MALLOCNG_OPTIONS");
	reexec_self(argv);      /* through the emulator, if any (exec_self.h) */
	_exit(127);
}

/* The scenario in a fresh process on page (NULL: the kernel's). */
static void run_page(const char *page, const char *options, const char *scenario)
{
	static char err[16384];
	struct page_run r = { page, options, scenario };
	int st = run_in_child(exec_page, &r, 120, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "scenario %s on pages of %s (options %s): status %#x; stderr: <%s>", scenario,
		      page ? page : "the kernel", options ? options : "-", st, err);
}

static int kernel_below(size_t page)
{
	return (size_t)sysconf(_SC_PAGESIZE) < page;
}

START_TEST(test_page_kernel)
{
	run_page(NULL, NULL, "kernel");
}
END_TEST

START_TEST(test_aligned_64k)
{
	if (!kernel_below(65536)) return;       /* nothing to emulate */
	run_page("65536", NULL, "aligned");
}
END_TEST

START_TEST(test_aligned_16k)
{
	if (!kernel_below(16384)) return;
	run_page("16384", NULL, "aligned");
}
END_TEST

START_TEST(test_aligned_64k_guard)
{
	if (!kernel_below(65536)) return;
	run_page("65536", "guard=1,protect_meta=1", "aligned");
}
END_TEST

int main(int argc, char **argv)
{
	const char *sc = self_scenario(argc, argv);
	if (sc) return run_scenario_named(sc, scenarios, sizeof scenarios / sizeof *scenarios);
	Suite *s = suite_create("pagesize");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_page_choose);
	tcase_add_test(tc, test_page_kernel);
	tcase_add_test(tc, test_aligned_64k);
	tcase_add_test(tc, test_aligned_16k);
	tcase_add_test(tc, test_aligned_64k_guard);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
