/* mt_stress.c - multithreaded stress: 4 threads allocate, hand objects to
 * each other through a shared exchange table, and free what they receive
 * (cross-thread frees into groups owned by another heap).  Threads are
 * started in waves, so that heaps are handed back at thread exit, their
 * groups abandoned, adopted and freed into by the next wave.
 *
 * Every object carries a stamp (its size and a tag) in its first bytes and
 * a fill byte over the rest; the receiver checks it before freeing.  At the
 * end, mallocng_get_stats must show no more live objects than at the start
 * (plus a small allowance for the C library's own allocations).
 *
 * Usage: mt_stress [seconds] [threads]   (default: $STRESS_SECONDS or 2 s;
 *                                        4 threads)
 * Run by `make check` for 1 s, and by .ci/robustness.sh under valgrind.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mallocng.h"

/* Under Valgrind (DRD, Helgrind) the hand-over of an object through the
 * exchange table is announced as a happens-before edge: neither tool
 * models C11 atomics.  Without the headers these are no-ops. */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#endif
#endif
#ifndef ANNOTATE_HAPPENS_BEFORE
#define ANNOTATE_HAPPENS_BEFORE(x) ((void)0)
#define ANNOTATE_HAPPENS_AFTER(x) ((void)0)
#endif

void free_sized(void *, size_t);   /* not declared by every libc */

#define SLOTS 1024
#define WAVES 4

static _Atomic(unsigned char *) exchange[SLOTS];
static _Atomic int stop;
static _Atomic long ops_total;

struct stamp { size_t n; uint32_t tag; uint32_t fill; };

static void die(const char *what, const void *p)
{
	fprintf(stderr, "mt_stress: %s (%p)\n", what, p);
	abort();
}

static void check_and_free(unsigned char *p)
{
	struct stamp s;
	memcpy(&s, p, sizeof s);
	if (s.tag != 0x5eed5eedu) die("stamp overwritten", p);
	for (size_t i = sizeof s; i < s.n; i += 61)
		if (p[i] != (unsigned char)s.fill) die("contents changed", p);
	if (s.n & 1) free(p);
	else free_sized(p, s.n);
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static size_t pick_size(uint64_t r)
{
	unsigned k = r % 100;
	r >>= 8;
	if (k < 70) return sizeof(struct stamp) + r % 256;
	if (k < 95) return sizeof(struct stamp) + r % 8192;
	if (k < 99) return sizeof(struct stamp) + r % 131072;
	return 131072 + r % (1 << 20);
}

static void *worker(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	unsigned char *mine[64];
	int nmine = 0;
	long ops = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t r = xorshift(&x);
		size_t n = pick_size(r >> 16);
		unsigned char *p;
		if (r % 7 == 0) {
			p = aligned_alloc((size_t)64 << (r % 5), n);
		} else if (r % 7 == 1) {
			p = calloc(1, n);
			if (p && p[n - 1]) die("calloc not zeroed", p);
		} else {
			p = malloc(n);
		}
		if (!p) die("allocation failed", 0);
		struct stamp s = { n, 0x5eed5eedu, (uint32_t)r };
		memset(p + sizeof s, (unsigned char)s.fill, n - sizeof s);
		memcpy(p, &s, sizeof s);
		if (r & 0x100) {
			/* give it away; free whatever was in the slot */
			_Atomic(unsigned char *) *e = &exchange[(r >> 20) % SLOTS];
			ANNOTATE_HAPPENS_BEFORE(e);
			unsigned char *old = atomic_exchange(e, p);
			ANNOTATE_HAPPENS_AFTER(e);
			if (old) check_and_free(old);
		} else {
			if (nmine == 64) {
				int k = (r >> 24) % 64;
				check_and_free(mine[k]);
				mine[k] = mine[--nmine];
			}
			mine[nmine++] = p;
		}
		if (r % 1000 == 0) {    /* realloc one of ours */
			if (nmine) {
				unsigned char *q = realloc(mine[0], sizeof s + 100);
				if (!q) die("realloc failed", mine[0]);
				struct stamp t = { sizeof s + 100, 0x5eed5eedu, 0 };
				memset(q + sizeof t, 0, 100);
				memcpy(q, &t, sizeof t);
				mine[0] = q;
			}
		}
		ops++;
	}
	while (nmine) check_and_free(mine[--nmine]);
	atomic_fetch_add(&ops_total, ops);
	return 0;
}

int main(int argc, char **argv)
{
	const char *env = getenv("STRESS_SECONDS");
	double seconds = argc > 1 ? atof(argv[1]) : env ? atof(env) : 2;
	int nthreads = argc > 2 ? atoi(argv[2]) : 4;
	if (nthreads < 1 || nthreads > 64) nthreads = 4;
	struct mallocng_stats st0, st1;
	st0.size = st1.size = sizeof st0;
	mallocng_get_stats(&st0);
	/* under Valgrind, make sure malloc is still mallocng's */
	void *probe = malloc(100);
	struct mallocng_stats sp;
	sp.size = sizeof sp;
	mallocng_get_stats(&sp);
	if (sp.objects_live != st0.objects_live + 1) die("malloc is not mallocng's", probe);
	free(probe);
	for (int w = 0; w < WAVES; w++) {
		pthread_t t[64];
		atomic_store(&stop, 0);
		for (int i = 0; i < nthreads; i++)
			if (pthread_create(&t[i], 0, worker, (void *)(uintptr_t)(w * 64 + i + 1)))
				die("pthread_create failed", 0);
		struct timespec ts = { (time_t)(seconds / WAVES),
				       (long)((seconds / WAVES - (time_t)(seconds / WAVES)) * 1e9) };
		nanosleep(&ts, 0);
		atomic_store(&stop, 1);
		for (int i = 0; i < nthreads; i++) pthread_join(t[i], 0);
	}
	for (int i = 0; i < SLOTS; i++) {
		unsigned char *p = atomic_exchange(&exchange[i], 0);
		ANNOTATE_HAPPENS_AFTER(&exchange[i]);
		if (p) check_and_free(p);
	}
	mallocng_get_stats(&st1);
	printf("mt_stress: %d threads x %d waves, %ld operations; objects live before %zu, after %zu\n",
	       nthreads, WAVES, (long)ops_total, st0.objects_live, st1.objects_live);
	/* thread stacks / TLS of finished threads may stay cached by libc */
	if (st1.objects_live > st0.objects_live + 4 * nthreads) die("objects leaked", 0);
	return 0;
}
