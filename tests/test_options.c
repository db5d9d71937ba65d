/* test_options.c - MALLOCNG_OPTIONS (mallocng(7)): junk, zero_free, guard,
 * random, quarantine, decay_ms and malloc_trim, statistics at exit, and
 * the warnings for options that are not understood.  The allocator reads
 * the options once at start-up, so every case re-runs this program with
 * the options set (run_self) and checks its exit status and stderr. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <malloc.h>
#include "mallocng.h"
#include "util.h"

#define SAY(...) (fprintf(stderr, "FAIL: " __VA_ARGS__), fputc('\n', stderr), 1)

/* ---- scenarios, run in the re-executed child ---- */

static int sc_junk(void)
{
	unsigned char *p = malloc(100), *keep = malloc(100);
	if (check_bytes(p, 100, 0xa5) != 100) return SAY("malloc(100) not filled with 0xa5");
	unsigned char *m = malloc(5000);
	if (check_bytes(m, 5000, 0xa5) != 5000) return SAY("malloc(5000) not filled with 0xa5");
	memset(p, 0x11, 100);
	free(p);
	if (check_bytes(p, 100, 0x5a) != 100) return SAY("freed object not filled with 0x5a");
	unsigned char *c = calloc(100, 1);
	if (check_bytes(c, 100, 0) != 100) return SAY("calloc memory not zero with junk=1");
	unsigned char *lc = calloc(300000, 1);
	if (check_bytes(lc, 300000, 0) != 300000) return SAY("large calloc not zero with junk=1");
	free(lc);
	free(c);
	free(m);
	free(keep);
	return 0;
}

static int sc_junk_large(void)
{
	free(malloc(16));
	unsigned char *l = malloc(300000);
	if (check_bytes(l, 300000, 0xa5) != 300000) return SAY("malloc(300000) not filled with 0xa5");
	unsigned char *a = aligned_alloc(65536, 200000);
	if (check_bytes(a, 200000, 0xa5) != 200000) return SAY("aligned_alloc(65536, 200000) not filled with 0xa5");
	free(a);
	free(l);
	return 0;
}

/* populate=1 (the default) or 0: blocks of 64 KiB that the program fills
 * have their pages faulted in at malloc, or not (argument: expected). */
static int populate_case(int expect)
{
	enum { N = 32 };
	static char *p[N];
	int populated = 0;
	for (int i = 0; i < N; i++) {
		static unsigned char v[16];
		if (!(p[i] = malloc(65536))) return SAY("malloc(65536) failed");
		uintptr_t a = ((uintptr_t)p[i] + 4095) & ~(uintptr_t)4095;
		if (mincore((void *)a, sizeof v * 4096 - 4096, v)) return SAY("mincore failed");
		if (i >= 8 && (v[0] & v[7] & v[14] & 1)) populated++;
		memset(p[i], 7, 65536);
	}
	for (int i = 0; i < N; i++) free(p[i]);
	if (expect ? populated < (N - 8) / 2 : populated != 0)
		return SAY("%d of %d filled 64 KiB blocks populated at malloc", populated, N - 8);
	return 0;
}

/* (a probe samples two whole pages of a request of three: with 64 KiB
 * pages no 64 KiB block is probed, and none is populated) */
static int sc_populate(void) { return populate_case(3 * test_page_size() <= 65536); }
static int sc_populate_off(void) { return populate_case(0); }

static int sc_zero_free(void)
{
	unsigned char *p = malloc(100), *keep = malloc(100);
	memset(p, 0x77, 100);
	free(p);
	if (check_bytes(p, 100, 0) != 100) return SAY("freed object not cleared");
	free(keep);
	return 0;
}

static int sc_perturb(void)
{
	if (mallopt(M_PERTURB, 1) != 1) return SAY("mallopt(M_PERTURB, 1) not applied");
	unsigned char *p = malloc(200);
	if (check_bytes(p, 200, 0xa5) != 200) return SAY("M_PERTURB: malloc(200) not 0xa5");
	free(p);
	return 0;
}

/* Linear overflow / underflow of a large object must fault at once: a
 * SIGSEGV handler tells, per object, whether a write faulted. */
static sigjmp_buf probe_env;

static void on_segv(int sig)
{
	siglongjmp(probe_env, sig);
}

/* Write `count` bytes from p on, one by one, `step` (+1 or -1) apart;
 * returns 1 if one of the writes faulted. */
static int write_faults(volatile unsigned char *p, long step, size_t count)
{
	struct sigaction sa = { 0 }, old;
	static size_t i;   /* static: survives the longjmp */
	int faulted;
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(probe_env, 1) == 0) {
		for (i = 0; i < count; i++) p[(long)i * step] = 1;
		faulted = 0;
	} else {
		faulted = 1;
	}
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

/* Past the end: no further than the page after the one holding p[n]. */
static int over_ok(unsigned char *p, size_t n)
{
	return write_faults(p + n, 1, 2 * test_page_size());
}

/* Before the start: past the header, within the first page below p. */
static int under_ok(unsigned char *p)
{
	return write_faults(p - 1, -1, test_page_size() + 64);
}

static int sc_guard(void)
{
	static const size_t sizes[] = { 131065, 140000, 300000, 1 << 20, 5000000 };
	int bad = 0;
	free(malloc(16));
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		unsigned char *a = malloc(sizes[i]), *b = malloc(sizes[i]);
		if (!over_ok(a, sizes[i])) bad = SAY("no fault past the end of malloc(%zu)", sizes[i]);
		if (!under_ok(b)) bad = SAY("no fault before the start of malloc(%zu)", sizes[i]);
	}
	/* a guarded object that grows moves to a new guarded mapping */
	unsigned char *r = malloc(200000);
	fill_pattern(r, 200000, 3);
	size_t n = 200000;
	for (; n < 3000000; n += n / 3) {
		r = realloc(r, n);
		if (check_pattern(r, 200000, 3) != 200000) bad = SAY("realloc(%zu) lost the contents", n);
	}
	n -= n / 4;      /* the last size, rounded down like the loop's growth */
	r = realloc(r, n);
	/* (the probes clobber the check byte: r is not freed) */
	if (!over_ok(r, n)) bad = SAY("no fault past the end of realloc(%zu)", n);
	if (!under_ok(r)) bad = SAY("no fault before the start of realloc(%zu)", n);
	return bad;
}

static int sc_guard_aligned(void)
{
	static const size_t al[] = { 4096, 8192, 65536, 1 << 20, 1 << 21 };
	int bad = 0;
	free(malloc(16));
	for (size_t i = 0; i < sizeof al / sizeof *al; i++) {
		size_t n = 300000 + i * 1000;
		unsigned char *a = aligned_alloc(al[i], n), *b = aligned_alloc(al[i], n);
		if ((uintptr_t)a & (al[i] - 1)) return SAY("misaligned");
		if (!over_ok(a, n)) bad = SAY("no fault past the end of aligned_alloc(%zu, %zu)", al[i], n);
		if (!under_ok(b)) bad = SAY("no fault before the start of aligned_alloc(%zu, %zu)", al[i], n);
	}
	return bad;
}

/* A double free of a guarded large object is still reported. */
static int sc_guard_double_free(void)
{
	free(malloc(16));
	char *p = malloc(1 << 20);
	free(p);
	free(OPAQUE(p));
	return SAY("double free not detected");
}

static int sc_guard_double_free_aligned(void)
{
	free(malloc(16));
	char *p = aligned_alloc(64, 1 << 20);
	free(p);
	free(OPAQUE(p));
	return SAY("double free not detected");
}

/* The same when the very first allocation of the process is large. */
static int sc_guard_first(void)
{
	unsigned char *b = malloc(1 << 20);
	if (!under_ok(b)) return SAY("no fault before the start of the first (large) object");
	return 0;
}

/* With quarantine: a write to an object in quarantine is reported when it
 * leaves the quarantine. */
static int sc_quarantine_write(void)
{
	unsigned char *p = malloc(100);
	free(p);
	p = OPAQUE(p);
	p[50] = 1;
	for (int i = 0; i < 5000; i++) free(malloc(100));
	return SAY("write after free in quarantine not detected");
}

static int sc_quarantine_delay(void)
{
	void *p = malloc(100), *v[300];
	free(p);
	for (int i = 0; i < 300; i++) {
		v[i] = malloc(100);
		if (v[i] == p) return SAY("slot reused after %d allocations despite quarantine", i);
	}
	for (int i = 0; i < 300; i++) free(v[i]);
	return 0;
}

static int sc_quarantine_double_free(void)
{
	void *p = malloc(100);
	free(p);
	free(OPAQUE(p));
	return SAY("double free in quarantine not detected");
}

/* Without options: a freed slot's header is checked when the thread cache
 * hands the slot out again. */
static int sc_cache_header_write(void)
{
	unsigned char *p = malloc(100), *keep = malloc(100);
	free(p);
	p = OPAQUE(p);
	p[-3] ^= 0x40;
	void *q = malloc(100);
	free(q);
	free(keep);
	return SAY("write to a cached slot's header not detected");
}

static int sc_random(void)
{
	enum { N = 256 };
	void *v[N];
	int up = 0;
	for (int i = 0; i < N; i++) v[i] = malloc(48);
	for (int i = 1; i < N; i++) up += (uintptr_t)v[i] > (uintptr_t)v[i - 1];
	for (int i = 0; i < N; i++) free(v[i]);
	if (up > N * 8 / 10) return SAY("%d of %d consecutive objects at increasing addresses", up, N - 1);
	return 0;
}

static int sc_plain(void)
{
	void *v[100];
	for (int i = 0; i < 100; i++) v[i] = malloc(i * 50);
	for (int i = 0; i < 100; i++) free(v[i]);
	return 0;
}

static int sc_first_not_junk(void)
{
	/* a fresh process: the first object comes from fresh (zero) pages */
	unsigned char *p = malloc(100);
	if (check_bytes(p, 100, 0xa5) == 100) return SAY("junk is on");
	free(p);
	return 0;
}

static int sc_junk_only(void)
{
	unsigned char *p = malloc(100);
	if (check_bytes(p, 100, 0xa5) != 100) return SAY("junk is off");
	free(p);
	return 0;
}

/* protect_meta: the meta areas (anonymous mappings of exactly 1 MiB) are
 * read-only between allocator calls, a write to one faults, and the heap
 * keeps working around that. */
static int meta_areas_read_only(void **area)
{
	char line[512];
	unsigned long lo, hi;
	char perm[8];
	int ro = 0, rw = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) return -1;
	while (fgets(line, sizeof line, f)) {
		int path = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perm, &path) < 3) continue;
		if (hi - lo != 1 << 20 || (path && line[path] && line[path] != '\n')) continue;
		if (!strncmp(perm, "r--", 3)) {
			ro++;
			*area = (void *)lo;
		} else {
			rw++;
		}
	}
	fclose(f);
	return ro;
}

static int sc_protect_meta(void)
{
	void *v[3000], *area = NULL;
	for (int i = 0; i < 3000; i++) v[i] = malloc(i % 7 == 0 ? 200000 : i * 11);
	for (int i = 0; i < 3000; i += 2) free(v[i]);
	if (meta_areas_read_only(&area) < 1) return SAY("no read-only meta area in /proc/self/maps");
	/* record 1 of the area: the first meta record */
	if (!write_faults((unsigned char *)area + 64, 1, 1))
		return SAY("a write to the meta area at %p did not fault", area);
	for (int i = 1; i < 3000; i += 2) v[i] = realloc(v[i], i * 13 + 1);
	for (int i = 1; i < 3000; i += 2) free(v[i]);
	if (meta_areas_read_only(&area) < 1) return SAY("the meta area stayed writable");
	return 0;
}

struct node { struct node *next; };

static struct node *fill(size_t n, size_t total, struct node *l)
{
	for (size_t got = 0; got < total; got += n) {
		struct node *p = malloc(n);
		if (!p) return l;
		memset(p, 1, n);
		p->next = l;
		l = p;
	}
	return l;
}

static void drop(struct node *l)
{
	while (l) { struct node *nx = l->next; free(l); l = nx; }
}

static int sc_decay_trim(void)
{
	long start = vm_rss_kib();
	struct node *l = fill(1000, 40 << 20, NULL);
	l = fill(1 << 20, 20 << 20, l);
	drop(l);
	int r = malloc_trim(0);
	long after = vm_rss_kib();
	if (r != 1) return SAY("malloc_trim returned %d with decayed memory held", r);
	if (after - start > 16 * 1024) return SAY("VmRSS %ld kB after malloc_trim, %ld kB at start", after, start);
	if (malloc_trim(0) != 0) return SAY("a second malloc_trim released memory again");
	return 0;
}

/* Freed large objects wait in the cache for decay_ms; a program that then
 * makes only small objects still gets that memory back (malloc_slow checks
 * the cache every DECAY_TICKS calls), without any large operation. */
static int sc_decay_activity(void)
{
	long start = vm_rss_kib();
	struct node *l = fill(2 << 20, 20 << 20, NULL);
	drop(l);
	long cached = vm_rss_kib();
	if (cached - start < 12 * 1024)
		return SAY("VmRSS %ld kB right after freeing 20 MiB, %ld kB at start: "
		           "the large cache held nothing", cached, start);
	usleep(300 * 1000);     /* three times decay_ms */
	/* small objects only: 64 000 of 64 bytes, 2 000 exhausted groups */
	struct node *s = fill(64, 64000 * 64, NULL);
	drop(s);
	long after = vm_rss_kib();
	if (after - start > 8 * 1024)
		return SAY("VmRSS %ld kB at start, %ld kB with freed large objects cached, "
		           "%ld kB after decay_ms and small-object activity", start, cached, after);
	return 0;
}

/* Freed slots of 32 KiB and more in groups still in use: 40 objects of
 * 100 KiB, 3 of every 4 freed (each group keeps one in use). */
static char *kept_live[10];
static void free_3_of_4_big(void)
{
	char *p[40];
	for (int i = 0; i < 40; i++) {
		p[i] = malloc(100 << 10);
		if (!p[i]) abort();
		memset(p[i], 1, 100 << 10);
	}
	for (int i = 0; i < 40; i++)
		if (i % 4) free(p[i]);
		else kept_live[i / 4] = p[i];
}

static void *free_3_of_4_big_thread(void *arg)
{
	(void)arg;
	free_3_of_4_big();
	return NULL;
}

/* Their pages, kept for reuse, go back after decay_ms once a thread
 * allocates again (small objects only, all kept live: nothing is
 * released, which would give them back by itself).  exited: kept by a
 * thread that exited, they wait with its heap for the next thread and go
 * back the same way when another thread allocates. */
static int decay_kept(int exited)
{
	static void *small[20000];
	pthread_t t;
	small[0] = malloc(64);  /* this thread's own heap first */
	long start = vm_rss_kib();
	if (!exited) free_3_of_4_big();
	else if (pthread_create(&t, NULL, free_3_of_4_big_thread, NULL) || pthread_join(t, NULL)) abort();
	const char *who = exited ? "a thread that exited" : "this thread";
	long kept = vm_rss_kib();
	if (kept - start < 1000 + 1024)
		return SAY("VmRSS %ld kB at start, %ld kB after %s freed 3 MiB of 4: nothing kept", start, kept, who);
	usleep(300 * 1000);     /* three times decay_ms */
	/* 20 000 objects of 64 bytes (80-byte slots, 1 563 kB): more than
	 * 256 exhausted groups, hence decay checks */
	for (int i = 1; i < 20000; i++)
		if (!(small[i] = malloc(64))) abort();
	long after = vm_rss_kib();
	if (after > kept + 1563 - 1024)
		return SAY("VmRSS %ld kB at start, %ld kB with the slots %s freed kept, %ld kB after decay_ms "
		           "and 1 563 kB of small objects", start, kept, who, after);
	for (int i = 0; i < 20000; i++) free(small[i]);
	for (int i = 0; i < 10; i++) free(kept_live[i]);
	return 0;
}

static int sc_decay_kept(void)
{
	return decay_kept(0);
}

static int sc_decay_dormant(void)
{
	return decay_kept(1);
}

static int sc_decay_zero(void)
{
	static const size_t sizes[] = { 1000, 1 << 20, 64, 300000 };
	int bad = 0;
	/* freed big slots in groups still in use: none kept */
	/* RssAnon: the file pages that the code paths fault in on the way
	 * vary by tens of kB from run to run (more on i386) */
	long start0 = proc_status_kib("RssAnon");
	free_3_of_4_big();
	long after0 = proc_status_kib("RssAnon");
	/* on a bigger page (0 on 4 KiB pages): the pages each live slot
	 * touches reach further, each group keeps its header's page, and the
	 * slot the thread cache holds a page more on either side at most */
	struct mallocng_stats st = { .size = sizeof st };
	size_t groups = 0, slot = 0;
	if (mallocng_get_stats(&st)) return SAY("mallocng_get_stats failed");
	for (int i = 0; i < MALLOCNG_NCLASS; i++)
		if (st.classes[i].slot_size >= (100 << 10) + 8) {
			groups = st.classes[i].groups;
			slot = st.classes[i].slot_size;
			break;
		}
	long pinned = page_pinned_extra_kib((void *const *)kept_live, 10, slot, groups) +
		      2 * (long)(test_page_size() - 4096) / 1024;
	if (after0 - start0 > 1000 + 512 + pinned)
		bad = SAY("decay_ms=0: RssAnon %ld kB at start, %ld kB with 1000 kB of 100 KiB objects left "
		          "of 4 MiB (%ld kB more allowed for the page)", start0, after0, pinned);
	for (int i = 0; i < 10; i++) free(kept_live[i]);
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		long start = vm_rss_kib();
		struct node *l = fill(sizes[i], 24 << 20, NULL);
		long peak = vm_rss_kib();
		drop(l);
		long after = vm_rss_kib();
		if (after - start > 4 * 1024)
			bad = SAY("decay_ms=0: objects of %zu bytes: VmRSS %ld kB at start, %ld kB "
			          "with 24 MiB live, %ld kB right after freeing them",
			          sizes[i], start, peak, after);
	}
	return bad;
}

/* ---- the heap map at the peak and after a signal ---- */

#define MAP_PATH_ENV "MALLOCNG_TEST_MAP"
enum { MAP_N = 20000, MAP_SIZE = 100 };
static void *map_objs[MAP_N];

/* heap_map_peak: 20000 objects of 100 bytes (2.1 MiB of slots), all freed
 * again before exit */
static int sc_map_peak(void)
{
	for (int i = 0; i < MAP_N; i++) map_objs[i] = malloc(MAP_SIZE);
	for (int i = 0; i < MAP_N; i++) free(map_objs[i]);
	malloc_trim(0);
	return 0;
}

/* heap_map_signal: the map comes at the next slow path after the signal
 * (a large object here), not at the signal; the objects of that moment are
 * freed before exit */
static int sc_map_signal(void)
{
	struct stat st;
	const char *path = getenv(MAP_PATH_ENV);
	for (int i = 0; i < 3000; i++) map_objs[i] = malloc(MAP_SIZE);
	raise(SIGUSR2);
	if (!stat(path, &st)) return 3;         /* drawn in the handler */
	void *big = malloc(1 << 20);
	if (stat(path, &st)) return 4;          /* not drawn at the slow path */
	free(big);
	for (int i = 0; i < 3000; i++) free(map_objs[i]);
	return 0;
}

/* Live slots in a heap map file: the blue cells and the "N live" of the
 * classes' summary lines. */
static long map_live(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	long live = 0;
	if (!f) return -1;
	while (fgets(line, sizeof line, f)) {
		const char *s;
		if (strstr(line, "fill=\"#3465a4\"")) live++;
		if ((s = strstr(line, " slots, ")) && strstr(line, " live, "))
			live += strtol(s + 8, NULL, 10);
	}
	fclose(f);
	return live;
}

static const struct scenario scenarios[] = {
	{ "map_peak", sc_map_peak }, { "map_signal", sc_map_signal },
	{ "junk", sc_junk }, { "junk_large", sc_junk_large }, 
	{ "zero_free", sc_zero_free }, { "perturb", sc_perturb },
	{ "populate", sc_populate }, { "populate_off", sc_populate_off },
	{ "guard", sc_guard }, { "guard_first", sc_guard_first },
	{ "guard_double_free", sc_guard_double_free },
	{ "guard_double_free_aligned", sc_guard_double_free_aligned },
	{ "guard_aligned", sc_guard_aligned }, { "quarantine_write", sc_quarantine_write },
	{ "quarantine_delay", sc_quarantine_delay },
	{ "quarantine_double_free", sc_quarantine_double_free },
	{ "cache_header_write", sc_cache_header_write }, { "random", sc_random },
	{ "plain", sc_plain }, { "first_not_junk", sc_first_not_junk },
	{ "junk_only", sc_junk_only }, { "decay_trim", sc_decay_trim },
	{ "decay_zero", sc_decay_zero }, { "decay_activity", sc_decay_activity },
	{ "decay_kept", sc_decay_kept }, { "decay_dormant", sc_decay_dormant },
	{ "protect_meta", sc_protect_meta },
};

/* ---- the tests, in the Check process ---- */

static char err[8192];

/* scenario must exit 0 without any "mallocng: " line */
static void expect_ok(const char *options, const char *scenario)
{
	int st = run_self(options, scenario, 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "MALLOCNG_OPTIONS=%s, %s: status 0x%x; stderr: <%s>",
	              options ? options : "(unset)", scenario, st, err);
	ck_assert_msg(!strstr(err, "mallocng: "), "MALLOCNG_OPTIONS=%s, %s: <%s>",
	              options ? options : "(unset)", scenario, err);
}

static void expect_signal(const char *options, const char *scenario, int sig,
                          const char *words)
{
	int st = run_self(options, scenario, 30, err, sizeof err);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == sig,
	              "MALLOCNG_OPTIONS=%s, %s: expected signal %d, status 0x%x; stderr: <%s>",
	              options ? options : "(unset)", scenario, sig, st, err);
	if (words) {
		/* "mallocng: <program>[<pid>]: <words> at 0x..." (os_proc.c, fail) */
		char line[128];
		snprintf(line, sizeof line, "]: %s at 0x", words);
		const char *l = strstr(err, line), *start = l;
		while (start && start > err && start[-1] != '\n') start--;
		ck_assert_msg(l && !strncmp(start, "mallocng: ", 10),
		              "%s: no \"mallocng: ...%s\" line in <%s>", scenario, line, err);
	}
}

START_TEST(test_junk)
{
	expect_ok("junk=1", "junk");
	expect_ok("junk", "junk");             /* a key alone means key=1 */
	expect_ok(NULL, "perturb");
	expect_ok("junk=1,zero_free=1", "zero_free");   /* zero_free wins */
	expect_ok("zero_free=1", "zero_free");
}
END_TEST

/* "Fill newly allocated memory with 0xa5": large objects too */
START_TEST(test_junk_large)
{
	expect_ok("junk=1", "junk_large");
}
END_TEST

START_TEST(test_populate)
{
	SKIP_IF_EMULATED("qemu-user takes madvise(MADV_POPULATE_WRITE) for a no-op");
	expect_ok(NULL, "populate");
	expect_ok("populate=0", "populate_off");
	expect_ok("decay_ms=0", "populate");
}
END_TEST

START_TEST(test_guard)
{
	expect_ok("guard=1", "guard");
	expect_ok("hardened=1", "guard");
}
END_TEST

START_TEST(test_guard_double_free)
{
	expect_signal("guard=1", "guard_double_free", SIGABRT, "double free");
	expect_signal("guard=1", "guard_double_free_aligned", SIGABRT, "double free");
}
END_TEST

/* Over-aligned large objects are guarded as closely. */
START_TEST(test_guard_aligned)
{
	expect_ok("guard=1", "guard_aligned");
}
END_TEST

/* Options are in force from the first allocation on, even when that first
 * allocation is a large object. */
START_TEST(test_options_before_first_large)
{
	expect_ok("guard=1", "guard_first");
}
END_TEST

START_TEST(test_quarantine)
{
	expect_signal("quarantine=64k", "quarantine_write", SIGABRT, "write after free");
	expect_signal("hardened", "quarantine_write", SIGABRT, "write after free");
	expect_ok("quarantine=1m", "quarantine_delay");
	expect_signal("quarantine=1m", "quarantine_double_free", SIGABRT, "double free");
	/* without quarantine, the header of a cached slot is still checked */
	expect_signal(NULL, "cache_header_write", SIGABRT, "write after free");
}
END_TEST

START_TEST(test_random)
{
	expect_ok("random=1", "random");
	expect_ok("hardened=1", "random");
}
END_TEST

START_TEST(test_option_warnings)
{
	int st = run_self("bogus=1,junk=1", "junk_only", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(has_message(err, "unknown option 'bogus' in MALLOCNG_OPTIONS ignored (known: "),
	              "no warning for an unknown option: <%s>", err);

	st = run_self("junk=7", "first_not_junk", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(has_message(err, "bad value in option 'junk=7' in MALLOCNG_OPTIONS ignored "
	                     "(accepted: 0 or 1)\n"),
	              "no warning for a bad value: <%s>", err);
	/* each warning names what is accepted (options.c) */
	static const struct { const char *opt, *line; } bad[] = {
		{ "verbose=5", "option 'verbose=5' in MALLOCNG_OPTIONS ignored (accepted: 0, 1 or 2)\n" },
		{ "decay_ms=99999999", "(accepted: 0 to 3600000)\n" },
		{ "quarantine=1x", "(accepted: bytes, a decimal with an optional k, m or g suffix)\n" },
		{ "nosuch=1", "]: unknown option 'nosuch' in MALLOCNG_OPTIONS ignored "
		              "(known: stats, stats_file, heap_map, verbose, junk," },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		st = run_self(bad[i].opt, "plain", 30, err, sizeof err);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
		ck_assert_msg(strstr(err, bad[i].line), "%s: no \"%s\" in <%s>", bad[i].opt,
		              bad[i].line, err);
	}

	/* later settings override earlier ones */
	expect_ok("junk=1,junk=0", "first_not_junk");
	st = run_self("junk=0,junk=1", "junk_only", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	expect_ok("", "plain");
	expect_ok(",,,", "plain");
}
END_TEST

START_TEST(test_stats_at_exit)
{
	int st = run_self("stats=1", "plain", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(strlen(err) > 100, "stats=1 printed only <%s>", err);
	/* report_pid names another process: no report (the child runs
	 * with another ID than 1) */
	st = run_self("stats=1,report_pid=1", "plain", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(err, "statistics"),
	              "stats=1,report_pid=1: status 0x%x <%s>", st, err);
	st = run_self("stats=1", "plain", 30, err, sizeof err);
	/* the report a person reads (stats.c, mallocng(7) STATISTICS) */
	static const char *lines[] = { "mallocng " MALLOCNG_VERSION_STRING " statistics of ",
		"\nlive ", "\nmapped ", "\nresident ", "\nmapped now: ", "\noverhead: ",
		"\nthreads: ", "\nallocation and free counts: ", "    class  groups" };
	for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
		ck_assert_msg(strstr(err, lines[i]), "stats=1: no \"%s\" in <%s>", lines[i], err);
	ck_assert_msg(strstr(err, " KiB") || strstr(err, " MiB"), "stats=1: no units in <%s>", err);

	char path[] = "/tmp/mallocng-statsfile-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char opt[128];
	snprintf(opt, sizeof opt, "stats_file=%s", path);
	st = run_self(opt, "plain", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(strlen(err) < 100, "stats_file: statistics still on stderr <%s>", err);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fclose(f);
	unlink(path);
	ck_assert_msg(len > 100, "stats_file has %ld bytes", len);

	char map[] = "/tmp/mallocng-heapmap-XXXXXX";
	fd = mkstemp(map);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(opt, sizeof opt, "heap_map=%s", map);
	expect_ok(opt, "plain");
	f = fopen(map, "r");
	ck_assert_ptr_nonnull(f);
	char head[2048] = { 0 };
	size_t n = fread(head, 1, sizeof head - 1, f);
	fclose(f);
	unlink(map);
	ck_assert_msg(n > 0 && strstr(head, "<svg"), "heap_map file: <%.200s>", head);

	/* %p: the process ID (stats.c, expand_path); the title line counts
	 * the groups drawn and summed up */
	char dir[] = "/tmp/mallocng-heapmap-dir-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(opt, sizeof opt, "heap_map=%s/m-%%p-%%%%.svg", dir);
	expect_ok(opt, "plain");
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	char found[512] = "";
	int files = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.') continue;
		files++;
		unsigned long pid = 0;
		char tail[16] = "";
		if (sscanf(e->d_name, "m-%lu-%15s", &pid, tail) == 2 && pid > 0 && !strcmp(tail, "%.svg"))
			snprintf(found, sizeof found, "%s/%s", dir, e->d_name);
		else
			ck_abort_msg("heap_map=m-%%p-%%%%.svg wrote %s", e->d_name);
	}
	closedir(d);
	ck_assert_msg(files == 1 && found[0], "heap_map=m-%%p-%%%%.svg: %d files", files);
	f = fopen(found, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(head, 1, sizeof head - 1, f);
	head[n] = 0;
	fclose(f);
	unlink(found);
	rmdir(dir);
	ck_assert_msg(strstr(head, " groups of small objects, ") && strstr(head, " summed up under their class"),
	              "heap map title: <%.400s>", head);
}
END_TEST

/* A line "mallocng: <program>[<pid>]: <rest>" whose rest starts with
 * start, or NULL. */
static const char *named_line(const char *text, const char *start)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *r = strstr(l, "]: "), *end = strchr(l, '\n');
		if (!strncmp(l, "mallocng: ", 10) && r && (!end || r < end) && strchr(l, '[') < r &&
		    !strncmp(r + 3, start, strlen(start)))
			return l;
	}
	return NULL;
}

/* verbose=1: the version and every option in effect, one line at the
 * first allocation; verbose=2: also one line at exit.  Without verbose,
 * nothing (expect_ok). */
START_TEST(test_verbose)
{
	int st = run_self("verbose=1,junk=1,decay_ms=5", "junk_only", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	const char *l = named_line(err, "mallocng " MALLOCNG_VERSION_STRING ", options: ");
	ck_assert_msg(l != NULL, "verbose=1: no version line in <%s>", err);
	char one[1024] = { 0 };
	memcpy(one, l, strchr(l, '\n') ? (size_t)(strchr(l, '\n') - l) : strlen(l));
	static const char *want[] = { " stats=0 ", " verbose=1 ", " junk=1 ", " guard=0 ",
	                              " quarantine=0 ", " populate=1 ", " decay_ms=5" };
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		ck_assert_msg(strstr(one, want[i]), "verbose=1: no \"%s\" in <%s>", want[i], one);
	ck_assert_msg(!named_line(err, "at exit"), "verbose=1 printed the exit line: <%s>", err);
	/* the hardened preset is shown as it applies */
	st = run_self("verbose=1,hardened=1", "plain", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(strstr(err, " junk=1 zero_free=0 guard=1 random=1 quarantine=1048576 hardened=1 "),
	              "verbose=1,hardened=1: <%s>", err);

	st = run_self("verbose=2", "plain", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	ck_assert_msg(named_line(err, "mallocng " MALLOCNG_VERSION_STRING ", options: "),
	              "verbose=2: no version line in <%s>", err);
	l = named_line(err, "at exit after ");
	ck_assert_msg(l && strstr(l, " mapped ") && strstr(l, "(peak ") && strstr(l, " resident ") &&
	              strstr(l, " mmap "), "verbose=2: no exit line in <%s>", err);
	ck_assert_msg(!strstr(err, "statistics"), "verbose=2 printed the statistics: <%s>", err);
}
END_TEST

START_TEST(test_protect_meta)
{
	expect_ok("protect_meta=1", "protect_meta");
	/* by default the areas are writable: the scenario fails */
	int st = run_self(NULL, "protect_meta", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0,
	              "meta areas are read-only without protect_meta: status 0x%x", st);
}
END_TEST

/* memory held for decay_ms goes back at once with malloc_trim */
START_TEST(test_malloc_trim)
{
	expect_ok("decay_ms=3600000", "decay_trim");
}
END_TEST

START_TEST(test_decay_activity)
{
	expect_ok("decay_ms=100", "decay_activity");
}
END_TEST

/* freed big slots kept for reuse go back after decay_ms */
START_TEST(test_decay_kept_slots)
{
	expect_ok("decay_ms=100", "decay_kept");
	expect_ok("decay_ms=100", "decay_dormant");
}
END_TEST

/* decay_ms=0: "0 returns them at once" */
START_TEST(test_decay_zero)
{
	expect_ok("decay_ms=0", "decay_zero");
}
END_TEST

START_TEST(test_heap_map_peak)
{
	char dir[] = "/tmp/mallocng-mapXXXXXX", opts[256], path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/map.svg", dir);
	/* at exit only: the objects are gone */
	snprintf(opts, sizeof opts, "heap_map=%s", path);
	expect_ok(opts, "map_peak");
	long at_exit = map_live(path);
	ck_assert_msg(at_exit >= 0 && at_exit < MAP_N / 10, "map at exit: %ld live", at_exit);
	/* at the peak: at least 8/9 of them (the last drawing was at least
	 * that close to the peak), less the counting's 32 KiB */
	unlink(path);
	snprintf(opts, sizeof opts, "heap_map=%s,heap_map_peak=1", path);
	expect_ok(opts, "map_peak");
	long at_peak = map_live(path);
	ck_assert_msg(at_peak >= MAP_N * 8 / 9 - 400, "map at the peak: %ld live of %d", at_peak, MAP_N);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_heap_map_signal)
{
	char dir[] = "/tmp/mallocng-mapXXXXXX", opts[256], path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/map.svg", dir);
	setenv(MAP_PATH_ENV, path, 1);
	snprintf(opts, sizeof opts, "heap_map=%s,heap_map_signal=USR2", path);
	int st = run_self(opts, "map_signal", 30, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	long live = map_live(path);
	ck_assert_msg(live >= 3000, "map after the signal: %ld live", live);
	unlink(path);
	/* a signal the program ignores (SIG_IGN survives the exec): refused */
	signal(SIGUSR2, SIG_IGN);
	st = run_self(opts, "plain", 30, err, sizeof err);
	signal(SIGUSR2, SIG_DFL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x <%s>", st, err);
	char warning[128];
	snprintf(warning, sizeof warning, "heap_map_signal: signal %d already has a handler or is "
	         "ignored: not installed", SIGUSR2);
	ck_assert_msg(has_message(err, warning), "no warning: <%s>", err);
	unlink(path);
	rmdir(dir);
	unsetenv(MAP_PATH_ENV);
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_junk);
	tcase_add_test(tc, test_protect_meta);
	tcase_add_test(tc, test_junk_large);
	tcase_add_test(tc, test_populate);
	tcase_add_test(tc, test_guard);
	tcase_add_test(tc, test_guard_aligned);
	tcase_add_test(tc, test_guard_double_free);
	tcase_add_test(tc, test_options_before_first_large);
	tcase_add_test(tc, test_quarantine);
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_option_warnings);
	tcase_add_test(tc, test_verbose);
	tcase_add_test(tc, test_stats_at_exit);
	tcase_add_test(tc, test_malloc_trim);
	tcase_add_test(tc, test_decay_zero);
	tcase_add_test(tc, test_decay_activity);
	tcase_add_test(tc, test_decay_kept_slots);
	tcase_add_test(tc, test_heap_map_peak);
	tcase_add_test(tc, test_heap_map_signal);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	const char *sc = self_scenario(argc, argv);
	if (sc) return run_scenario_named(sc, scenarios, sizeof scenarios / sizeof *scenarios);
	return run_suite(options_suite());
}
