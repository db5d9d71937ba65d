/* test_portable.c - the allocator's contract on any architecture, without
 * Check: built by make check on the host, and by .ci/cross.sh with each
 * cross compiler and run under qemu-user (32 and 64 bits, little and big
 * endian).  Every size class, large objects, realloc in place and moved,
 * aligned objects, calloc, malloc_usable_size, threads freeing each
 * other's objects; then misuse that must abort (a double free, a flipped
 * bit of a freed header, an overflow into the check value), each in a
 * forked child (not with --single).  Prints "N passed, M failed" and
 * exits non-zero on a failure.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

static void check(int ok, const char *what, size_t n)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL: %s (n=%zu)\n", what, n);
	}
}

static unsigned char pat(size_t seed, size_t i)
{
	return (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

static void fill(unsigned char *p, size_t n, size_t seed)
{
	for (size_t i = 0; i < n; i++) p[i] = pat(seed, i);
}

static int intact(const unsigned char *p, size_t n, size_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(seed, i)) return 0;
	return 1;
}

static void sizes(void)
{
	static unsigned char *p[600];
	static size_t len[600];
	int k = 0;
	for (size_t n = 0; n <= 300000 && k < 600; n = n < 64 ? n + 1 : n + n / 7, k++) {
		len[k] = n;
		p[k] = malloc(n);
		check(p[k] != NULL, "malloc", n);
		if (!p[k]) return;
		check(((uintptr_t)p[k] & 15) == 0, "16-byte alignment", n);
		check(malloc_usable_size(p[k]) >= n, "malloc_usable_size", n);
		fill(p[k], n, (size_t)k);
	}
	for (int i = 0; i < k; i++) check(intact(p[i], len[i], (size_t)i), "content kept", len[i]);
	/* realloc both ways, content kept up to the smaller size */
	for (int i = 0; i < k; i++) {
		size_t m = len[i] / 2 + 3 * (size_t)(i % 5) * len[i] / 4 + 1;
		unsigned char *q = realloc(p[i], m);
		check(q != NULL, "realloc", m);
		if (!q) continue;
		check(intact(q, len[i] < m ? len[i] : m, (size_t)i), "realloc kept data", m);
		p[i] = q;
		len[i] = m;
		fill(q, m, (size_t)i + 1000);
	}
	for (int i = 0; i < k; i++) {
		check(intact(p[i], len[i], (size_t)i + 1000), "content after realloc", len[i]);
		free(p[i]);
	}
}

static void aligned(void)
{
	for (size_t a = 16; a <= 65536; a *= 2)
		for (size_t n = 1; n < 5000; n = n * 3 + 1) {
			void *p = aligned_alloc(a, n);
			check(p && ((uintptr_t)p & (a - 1)) == 0, "aligned_alloc", a);
			if (p) {
				memset(p, 0x5a, n);
				free(p);
			}
		}
	unsigned char *z = calloc(1000, 17);
	int zero = z != NULL;
	for (size_t i = 0; z && i < 17000; i++) zero &= z[i] == 0;
	check(zero, "calloc zeroes", 17000);
	free(z);
}

#define XN 20000
static unsigned char *_Atomic handoff[XN];

static void *producer(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < XN; i++) {
		size_t n = 1 + i % 700;
		unsigned char *p = malloc(n);
		if (!p) abort();
		fill(p, n, i);
		__atomic_store_n(&handoff[i], p, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void threads(void)
{
	pthread_t t;
	int ok = 1;
	memset((void *)handoff, 0, sizeof handoff);
	if (pthread_create(&t, NULL, producer, NULL)) {
		check(0, "pthread_create", 0);
		return;
	}
	for (size_t i = 0; i < XN; i++) {
		unsigned char *p;
		while (!(p = __atomic_load_n(&handoff[i], __ATOMIC_ACQUIRE)))
			sched_yield();
		ok &= intact(p, 1 + i % 700, i);
		free(p);
	}
	pthread_join(t, NULL);
	check(ok, "objects freed by another thread", XN);
}

/* fn must abort: 1 if the child died by SIGABRT */
static int aborts(void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		fn();
		_exit(0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) < 0) return 0;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void *volatile opaque;

static void double_free(void)
{
	opaque = malloc(40);
	free(opaque);
	free(opaque);
}

static void revived_header(void)
{
	opaque = malloc(40);
	free(opaque);
	unsigned char *p = opaque;      /* (volatile: the compiler sees no use after free) */
	uint64_t h;
	memcpy(&h, p - 8, 8);
	h ^= 1u << 5;
	memcpy(p - 8, &h, 8);
	free(opaque);
}

static void overflow(void)
{
	unsigned char *volatile p = malloc(100);
	p[100] ^= 0x55;                 /* the byte past the object */
	opaque = p;
	free(opaque);
}

int main(int argc, char **argv)
{
	sizes();
	aligned();
	/* --single: no threads and no children, for an emulator that cannot
	 * run them (qemu-i386 7.2 hangs in pthread_create and in a child's
	 * abort, with the C library's own malloc too) */
	if (argc < 2 || strcmp(argv[1], "--single")) {
		threads();
		check(aborts(double_free), "double free aborts", 0);
		check(aborts(revived_header), "a revived freed header aborts", 0);
		check(aborts(overflow), "an overflow into the check value aborts", 0);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
