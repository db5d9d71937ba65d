/* fault_inject.c - every mmap/mremap of a fixed workload made to fail.
 *
 * The workload (child mode) allocates objects of many sizes, small, at the
 * mmap threshold and large, aligned ones, calloc'ed ones, grows a realloc
 * chain from 16 bytes into mremap'ed sizes, churns groups, and runs a
 * second thread.  Every failed call must return NULL (posix_memalign:
 * ENOMEM) with errno ENOMEM; a failed realloc must leave the old object
 * intact; every object keeps its contents (checked after each failure and
 * at the end); everything is freed and the child exits 0.
 *
 * The parent first runs the workload once without injection and reads from
 * mallocng_get_stats how many mmap + mremap calls it made (M); then for
 * every N in 1..M+1 it runs a fresh child (fork + exec of itself, since
 * MALLOCNG_OPTIONS is read once, at the first malloc) with
 * MALLOCNG_OPTIONS=fail_mmap=N: the Nth and every later mapping fails.
 * Each child must exit 0 (a signal, e.g. an abort or a segfault, fails the
 * test).  A run in which no call failed is fine (the failed mapping may
 * be one the allocator can do without, e.g. the ring of retired spans), but
 * the run with N = M + 1 must see no failure at all.  The whole sweep is
 * run in the default mode and with hardened=1.
 *
 * Usage: fault_inject                 the sweep (make check); the modes
 *                                     can be replaced with
 *                                     FAULT_INJECT_MODES="guard=1;junk=1"
 *        fault_inject child           the workload (environment decides)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mallocng.h"
#include "../tests/exec_self.h"

#define MAX_OBJ 512

static struct { unsigned char *p; size_t n; unsigned id; } obj[MAX_OBJ];
static int nobj;
static long failures, calls;
static unsigned ids;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
	(void)!write(2, buf, n);
}

/* the child reports through stderr (no stdio buffer to allocate) */
#define FAIL(...) do { say("fault_inject child: " __VA_ARGS__); say(" [%s]\n", getenv("MALLOCNG_OPTIONS") ? getenv("MALLOCNG_OPTIONS") : ""); _exit(1); } while (0)

/* contents: a byte table repeated with a prime period, shifted per object,
 * so that fill and check are memcpy / memcmp runs */
#define PERIOD 4093
static unsigned char ptab[2 * PERIOD];

static const unsigned char *pat(unsigned id, size_t i)
{
	return ptab + (i + (size_t)id * 1237) % PERIOD;
}

static void fill(unsigned char *p, size_t from, size_t n, unsigned id)
{
	for (size_t i = from, k; i < n; i += k) {
		k = n - i < PERIOD ? n - i : PERIOD;
		memcpy(p + i, pat(id, i), k);
	}
}

static void verify(int k, size_t upto)
{
	for (size_t i = 0, l; i < upto; i += l) {
		l = upto - i < PERIOD ? upto - i : PERIOD;
		if (memcmp(obj[k].p + i, pat(obj[k].id, i), l))
			FAIL("object %d (%zu bytes) changed near offset %zu", k, obj[k].n, i);
	}
}

static void verify_all(void)
{
	for (int k = 0; k < nobj; k++)
		if (obj[k].p) verify(k, obj[k].n);
}

/* Record the outcome of an allocation call. */
static void got(void *p, size_t n, int err, const char *what)
{
	calls++;
	if (!p) {
		if (err != ENOMEM) FAIL("%s(%zu) failed with errno %d, not ENOMEM", what, n, err);
		failures++;
		verify_all();           /* nothing else was disturbed */
		return;
	}
	if ((uintptr_t)p & 15) FAIL("%s(%zu) returned a misaligned %p", what, n, p);
	if (nobj == MAX_OBJ) FAIL("too many objects");
	obj[nobj].p = p;
	obj[nobj].n = n;
	obj[nobj].id = ++ids;
	fill(p, 0, n, obj[nobj].id);
	nobj++;
}

static void do_malloc(size_t n)
{
	errno = 0;
	void *p = malloc(n);
	got(p, n, errno, "malloc");
}

static void do_calloc(size_t k, size_t n)
{
	errno = 0;
	unsigned char *p = calloc(k, n);
	int e = errno;
	if (p)
		for (size_t i = 0; i < k * n; i++)
			if (p[i]) FAIL("calloc(%zu, %zu) not zeroed at %zu", k, n, i);
	got(p, k * n, e, "calloc");
}

static void do_aligned(size_t a, size_t n)
{
	errno = 0;
	void *p = aligned_alloc(a, n);
	int e = errno;
	if (p && (uintptr_t)p & (a - 1)) FAIL("aligned_alloc(%zu, %zu) = %p", a, n, p);
	got(p, n, e, "aligned_alloc");
	void *q = 0;
	int r = posix_memalign(&q, a, n);
	if (r && r != ENOMEM) FAIL("posix_memalign(%zu, %zu) returned %d", a, n, r);
	if (!r && (uintptr_t)q & (a - 1)) FAIL("posix_memalign(%zu, %zu) = %p", a, n, q);
	got(r ? 0 : q, n, r ? ENOMEM : 0, "posix_memalign");
}

/* realloc object k to n bytes; on failure the old object must be intact */
static void do_realloc(int k, size_t n)
{
	if (k >= nobj || !obj[k].p) return;
	calls++;
	errno = 0;
	unsigned char *p = realloc(obj[k].p, n);
	if (!p) {
		if (errno != ENOMEM) FAIL("realloc(%zu -> %zu) failed with errno %d", obj[k].n, n, errno);
		failures++;
		verify_all();
		return;
	}
	size_t keep = n < obj[k].n ? n : obj[k].n;
	obj[k].p = p;
	verify(k, keep);
	fill(p, keep, n, obj[k].id);
	obj[k].n = n;
}

static void release(int k)
{
	if (!obj[k].p) return;
	verify(k, obj[k].n);
	free(obj[k].p);
	obj[k].p = 0;
}

static long thread_failures;

static void *thread_main(void *arg)
{
	(void)arg;
	void *v[64];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 64; i++) {
			size_t n = 16 + 97 * (size_t)i;
			errno = 0;
			v[i] = malloc(n);
			if (!v[i] && errno != ENOMEM) return (void *)1;
			thread_failures += !v[i];
			if (v[i]) memset(v[i], i, n);
		}
		for (int i = 0; i < 64; i++) {
			if (!v[i]) continue;
			unsigned char *c = v[i];
			for (size_t j = 0; j < 16; j++)
				if (c[j] != (unsigned char)i) return (void *)2;
			free(v[i]);
		}
	}
	return 0;
}

static const size_t sizes[] = {
	0, 1, 8, 16, 24, 40, 100, 200, 500, 1000, 2000, 3000, 5000, 8000, 12000,
	20000, 40000, 70000, 100000, 131063, 131064, 140000, 300000, 1 << 20,
	(3 << 20) + 5,
};
#define NSIZES (sizeof sizes / sizeof *sizes)

static void workload(void)
{
	/* many sizes, three of each */
	for (int r = 0; r < 3; r++)
		for (size_t i = 0; i < NSIZES; i++) do_malloc(sizes[i]);
	for (size_t i = 0; i < NSIZES; i += 3) do_calloc(3, sizes[i] / 3 + 1);
	/* aligned, small to over-mapped */
	for (size_t a = 32; a <= (1 << 20); a *= 4) {
		do_aligned(a, 100);
		do_aligned(a, 5000);
	}
	do_aligned(4096, 200000);
	/* a realloc chain growing into mremap sizes, then shrinking */
	int chain = nobj;
	do_malloc(16);
	for (size_t n = 32; n <= (4 << 20); n *= 2) do_realloc(chain, n + 3);
	do_realloc(chain, 100000);
	do_realloc(chain, 50);
	/* realloc of many objects across classes */
	for (int k = 0; k < nobj; k += 5) do_realloc(k, obj[k].n * 2 + 1000);
	/* churn: free every other object, allocate a batch of one class */
	for (int k = 0; k < nobj; k += 2) release(k);
	for (int i = 0; i < 80; i++) do_malloc(3000);
	for (int i = 0; i < 40; i++) do_calloc(1, 700);
	/* a second thread: its heap is mapped on its first malloc */
	pthread_t t;
	void *res = 0;
	calls++;
	if (pthread_create(&t, 0, thread_main, 0) == 0) {
		pthread_join(t, &res);
		if (res) FAIL("thread: %s", res == (void *)1 ? "errno not ENOMEM" : "contents changed");
		failures += thread_failures;
	} else {
		failures++;
	}
	malloc_trim(0);
	verify_all();
	for (int k = 0; k < nobj; k++) release(k);
	/* still usable: small requests either succeed or fail cleanly */
	for (int i = 0; i < 20; i++) do_malloc(24 + 8 * i);
	for (int k = 0; k < nobj; k++) release(k);
}

static int child(int count_mode)
{
	uint32_t x = 0x9e3779b9;
	for (int i = 0; i < PERIOD; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		ptab[i] = ptab[i + PERIOD] = (unsigned char)(x >> 7);
	}
	workload();
	if (count_mode) {
		struct mallocng_stats st;
		st.size = sizeof st;
		if (mallocng_get_stats(&st)) FAIL("mallocng_get_stats failed");
		printf("%zu %ld\n", st.mmap_calls + st.mremap_calls, failures);
	} else {
		char buf[64];
		int n = snprintf(buf, sizeof buf, "%ld %ld\n", failures, calls);
		(void)!write(1, buf, n);
	}
	return 0;
}

/* Run a child with MALLOCNG_OPTIONS=opts; its stdout is returned in out.
 * Returns the wait status. */
static int run_child(const char *opts, const char *mode, char *out, size_t outlen)
{
	int fd[2];
	if (pipe(fd)) { perror("pipe"); exit(99); }
	pid_t pid = fork();
	if (pid < 0) { perror("fork"); exit(99); }
	if (pid == 0) {
		close(fd[0]);
		dup2(fd[1], 1);
		close(fd[1]);
		setenv("MALLOCNG_OPTIONS", opts, 1);
		char *argv[] = { "fault_inject", (char *)mode, 0 };
		reexec_self(argv);
		_exit(98);
	}
	close(fd[1]);
	size_t got = 0;
	ssize_t r;
	while (got + 1 < outlen && (r = read(fd[0], out + got, outlen - 1 - got)) > 0) got += r;
	out[got] = 0;
	close(fd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) { perror("waitpid"); exit(99); }
	return st;
}

static int sweep(const char *base)
{
	char opts[128], out[256];
	size_t m = 0;
	long f = -1;
	int st = run_child(base, "count", out, sizeof out);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || sscanf(out, "%zu %ld", &m, &f) != 2 || !m) {
		fprintf(stderr, "fault_inject: counting run failed (status 0x%x, output '%s')\n", st, out);
		return 1;
	}
	if (f) {
		fprintf(stderr, "fault_inject: %ld allocations failed without injection\n", f);
		return 1;
	}
	int bad = 0;
	long with_failures = 0;
	for (size_t n = 1; n <= m + 1; n++) {
		snprintf(opts, sizeof opts, "%s%sfail_mmap=%zu", base, *base ? "," : "", n);
		st = run_child(opts, "child", out, sizeof out);
		long fails = -1, calls = -1;
		sscanf(out, "%ld %ld", &fails, &calls);
		if (WIFSIGNALED(st)) {
			fprintf(stderr, "FAIL: MALLOCNG_OPTIONS=%s: child killed by signal %d\n", opts, WTERMSIG(st));
			bad++;
		} else if (WEXITSTATUS(st)) {
			fprintf(stderr, "FAIL: MALLOCNG_OPTIONS=%s: child exited %d\n", opts, WEXITSTATUS(st));
			bad++;
		} else if (n == m + 1 && fails != 0) {
			fprintf(stderr, "FAIL: MALLOCNG_OPTIONS=%s: %ld allocations failed beyond the last mapping\n", opts, fails);
			bad++;
		}
		with_failures += fails > 0;
	}
	printf("fault_inject: mode '%s': %zu mmap/mremap calls; fail_mmap=N tested for N = 1..%zu "
	       "(%ld runs saw failures), %d bad\n", *base ? base : "default", m, m + 1, with_failures, bad);
	return bad != 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "child")) return child(0);
	if (argc > 1 && !strcmp(argv[1], "count")) return child(1);
	/* FAULT_INJECT_MODES="opts;opts;..." replaces the two default modes */
	const char *modes[16] = { "", "hardened=1" };
	int nmodes = 2, bad = 0;
	char *env = getenv("FAULT_INJECT_MODES");
	if (env) {
		char *s = strdup(env), *save = 0;
		nmodes = 0;
		for (char *t = strtok_r(s, ";", &save); t && nmodes < 16; t = strtok_r(0, ";", &save))
			modes[nmodes++] = t;
	}
	for (int i = 0; i < nmodes; i++) bad |= sweep(modes[i]);
	fflush(stdout);
	return bad;
}
