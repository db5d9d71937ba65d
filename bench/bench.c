/*
 * mallocng benchmark driver.
 *
 * One program, one workload per invocation:
 *
 *     bench WORKLOAD [SCALE]
 *
 * SCALE (default 1.0) multiplies the iteration count; run.sh uses a small
 * SCALE under valgrind.  The program only calls malloc/free/realloc, so the
 * allocator is chosen by LD_PRELOAD (or by static linking with musl).
 *
 * Output is "key value" lines on stdout, parsed by run.sh:
 *     time <seconds>          elapsed time of the measured part
 *     ops <n>                 operations in the measured part
 *     <metric> <value>        memory figures (KiB, bytes, ratios)
 *
 * Workloads: st-churn mt-churn-1 mt-churn-2 xthread larson realloc-growth
 *            mt-churn-8 mt-churn-32 xthread-8 xthread-32 larson-8 larson-32
 *            large buffers frag once-none once-malloc spin-1 spin-2 whoami
 *            thread-rounds[-N] thread-leftover thread-oversub (threads that
 *            come and go: time, peak RSS = VmHWM, RSS at the end)
 *            idle-threads (by hand only: memory per idle thread)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#define NOINLINE __attribute__((noinline, noclone, used))

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static double scale = 1.0;

static uint64_t scaled(uint64_t n)
{
	double v = (double)n * scale;
	return v < 1.0 ? 1 : (uint64_t)v;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The acquisitions so far of the global lock (*span: of the span lock,
 * version 3), when the allocator is mallocng (found by name: the
 * benchmark links against no allocator); 0 otherwise.  The struct's first
 * fields and its version-2 and version-3 tails, as <mallocng.h> has them:
 * size, version, 15 totals, 48 classes of 6 words, then the global lock's
 * counts, then the span lock's. */
static size_t lock_count2(size_t *span)
{
	static int (*get)(void *);
	static int looked;
	enum { LOCKS = 2 + 15 + 48 * 6 };
	if (!looked) {
		get = (int (*)(void *))dlsym(RTLD_DEFAULT, "mallocng_get_stats");
		looked = 1;
	}
	size_t st[LOCKS + 4];
	*span = 0;
	if (!get)
		return 0;
	memset(st, 0, sizeof st);
	st[0] = sizeof st;
	if (get(st) != 0 || st[1] < 2 || st[0] < (LOCKS + 2) * sizeof(size_t))
		return 0;
	if (st[1] >= 3 && st[0] >= sizeof st)
		*span = st[LOCKS + 2];
	return st[LOCKS];
}

static size_t span_start;
static size_t lock_count(void)
{
	return lock_count2(&span_start);
}

/* Prints the acquisitions of the global lock between start and now (and
 * of the span lock since the lock_count that gave start), with the
 * allocator calls (malloc, free, realloc) made meanwhile: run.sh reports
 * acquisitions per million calls.  (The counts include the acquisition
 * of the statistics call itself.) */
static void report_locks(size_t start, uint64_t calls)
{
	size_t span, end = lock_count2(&span);
	if (end || start)
		printf("locks %zu\nspan_locks %zu\ncalls %llu\n", end - start, span - span_start,
		       (unsigned long long)calls);
}

/* xorshift64* with a fixed seed per stream. */
typedef struct { uint64_t s; } rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
	r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
	if (!r->s)
		r->s = 1;
}

static inline uint64_t rng_next(rng_t *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [lo, hi] */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
	return lo + (size_t)((rng_next(r) >> 11) % (hi - lo + 1));
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s failed\n", what);
	exit(2);
}

/*
 * Read VmRSS and VmHWM (KiB) from /proc/self/status with raw syscalls and a
 * static buffer: this must not call malloc (the "once" workload relies on it).
 */
static char status_buf[8192];

static long status_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	long v = 0;
	if (!p)
		return -1;
	p += strlen(key);
	while (*p == ' ' || *p == '\t' || *p == ':')
		p++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	return v;
}

static void read_mem(long *rss_kib, long *hwm_kib)
{
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n, got = 0;
	if (fd < 0) {
		*rss_kib = *hwm_kib = -1;
		return;
	}
	while (got < (ssize_t)sizeof status_buf - 1 &&
	       (n = read(fd, status_buf + got, sizeof status_buf - 1 - got)) > 0)
		got += n;
	close(fd);
	status_buf[got] = 0;
	if (rss_kib)
		*rss_kib = status_field(status_buf, "\nVmRSS");
	if (hwm_kib)
		*hwm_kib = status_field(status_buf, "\nVmHWM");
}

/* write "key value\n" without stdio (stdio may allocate its buffer) */
static void put_kv_raw(const char *key, long v)
{
	char buf[64];
	char num[24];
	int n = 0, k = 0, neg = v < 0;
	unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
	do
		num[k++] = (char)('0' + u % 10);
	while ((u /= 10));
	while (*key && n < 32)
		buf[n++] = *key++;
	buf[n++] = ' ';
	if (neg)
		buf[n++] = '-';
	while (k)
		buf[n++] = num[--k];
	buf[n++] = '\n';
	if (write(1, buf, (size_t)n) < 0)
		_exit(3);
}

/* keep results observable so the compiler cannot drop allocations */
static volatile uintptr_t sink;
void *volatile once_ptr;

/* ------------------------------------------------------------------ */
/* (1)/(2) churn: free+malloc pairs of random size 8..1024, 10k live     */

#define CHURN_LIVE 10000
#define CHURN_OPS 8000000ull /* per thread */

struct churn {
	void *slot[CHURN_LIVE];
	rng_t rng;
	uint64_t ops;
	uintptr_t acc;
};

NOINLINE void churn_fill(struct churn *c)
{
	for (int i = 0; i < CHURN_LIVE; i++) {
		size_t sz = rng_range(&c->rng, 8, 1024);
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (char)sz;
		c->slot[i] = p;
	}
}

/* the measured loop; callgrind collects only inside this function */
NOINLINE void churn_loop(struct churn *c)
{
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < c->ops; i++) {
		uint64_t r = rng_next(&c->rng);
		size_t idx = (size_t)(r % CHURN_LIVE);
		size_t sz = 8 + (size_t)((r >> 32) % 1017);
		free(c->slot[idx]);
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (char)i;
		p[sz - 1] = (char)i;
		acc += (uintptr_t)p;
		c->slot[idx] = p;
	}
	c->acc = acc;
}

NOINLINE void churn_drain(struct churn *c)
{
	for (int i = 0; i < CHURN_LIVE; i++)
		free(c->slot[i]);
}

static struct churn *churn_new(unsigned seed)
{
	/* the state itself is not allocated with malloc */
	static struct churn cs[2];
	struct churn *c = &cs[seed % 2];
	memset(c, 0, sizeof *c);
	rng_seed(&c->rng, 1000 + seed);
	c->ops = scaled(CHURN_OPS);
	return c;
}

/* mt-churn's threads meet before and after their loops, so that the
 * lock count covers the loops alone (the steady state) */
static pthread_barrier_t churn_meet;

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	churn_fill(c);
	pthread_barrier_wait(&churn_meet);
	pthread_barrier_wait(&churn_meet);
	churn_loop(c);
	pthread_barrier_wait(&churn_meet);
	pthread_barrier_wait(&churn_meet);
	churn_drain(c);
	sink += c->acc;
	return NULL;
}

static void w_st_churn(void)
{
	struct churn *c = churn_new(0);
	churn_fill(c);
	size_t l0 = lock_count();
	double t0 = now();
	churn_loop(c);
	double t1 = now();
	report_locks(l0, 2 * c->ops);
	churn_drain(c);
	sink += c->acc;
	printf("time %.6f\nops %llu\n", t1 - t0, (unsigned long long)c->ops);
}

/* same per-thread work on T threads; the time includes fill and drain */
#define MAX_THREADS 32

/* Up to 2 threads: each does st-churn's work.  More (8, 32 on the
 * machine's cores): the work of two split between them, so that the
 * rows take as long as mt-churn-2 and show what sharing the cores costs. */
static void w_mt_churn(int nthreads)
{
	pthread_t th[MAX_THREADS];
	static struct churn cs[MAX_THREADS];
	struct churn *c[MAX_THREADS];
	for (int i = 0; i < nthreads; i++) {
		c[i] = &cs[i];
		memset(c[i], 0, sizeof *c[i]);
		rng_seed(&c[i]->rng, 1000 + (unsigned)i);
		c[i]->ops = scaled(CHURN_OPS) * (nthreads > 2 ? 2 : nthreads) / nthreads;
	}
	pthread_barrier_init(&churn_meet, NULL, (unsigned)nthreads + 1);
	double t0 = now();
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, churn_thread, c[i]))
			die("pthread_create");
	pthread_barrier_wait(&churn_meet);      /* all filled */
	size_t l0 = lock_count();
	pthread_barrier_wait(&churn_meet);
	pthread_barrier_wait(&churn_meet);      /* all looped */
	report_locks(l0, (uint64_t)nthreads * 2 * c[0]->ops);
	pthread_barrier_wait(&churn_meet);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	double t1 = now();
	pthread_barrier_destroy(&churn_meet);
	printf("time %.6f\nops %llu\nthreads %d\n", t1 - t0,
	       (unsigned long long)c[0]->ops, nthreads);
}

/* ------------------------------------------------------------------ */
/* (3) xthread: producer mallocs, consumer frees, SPSC ring buffer       */

#define RING 4096 /* power of two */
#define XT_OBJS 1500000ull

/* one ring per producer-consumer pair */
static struct xt_ring {
	_Alignas(64) _Atomic uint64_t head; /* written by producer */
	_Alignas(64) _Atomic uint64_t tail; /* written by consumer */
	_Alignas(64) void *slot[RING];
	uint64_t total;
	unsigned seed;
} rings[MAX_THREADS / 2];

static inline void spin_pause(unsigned *spins)
{
	if (++*spins < 64)
		__builtin_ia32_pause();
	else {
		*spins = 0;
		sched_yield(); /* 2 shared cores: do not burn the other side's slice */
	}
}

static void *xt_producer(void *arg)
{
	struct xt_ring *ring = arg;
	rng_t rng;
	rng_seed(&rng, ring->seed);
	uint64_t total = ring->total;
	for (uint64_t i = 0; i < total; i++) {
		size_t sz = rng_range(&rng, 8, 1024);
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (char)i;
		p[sz - 1] = (char)i;
		unsigned spins = 0;
		uint64_t h = atomic_load_explicit(&ring->head, memory_order_relaxed);
		while (h - atomic_load_explicit(&ring->tail, memory_order_acquire) >= RING)
			spin_pause(&spins);
		ring->slot[h & (RING - 1)] = p;
		atomic_store_explicit(&ring->head, h + 1, memory_order_release);
	}
	return arg;
}

static void *xt_consumer(void *arg)
{
	struct xt_ring *ring = arg;
	uint64_t total = ring->total;
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < total; i++) {
		unsigned spins = 0;
		uint64_t t = atomic_load_explicit(&ring->tail, memory_order_relaxed);
		while (atomic_load_explicit(&ring->head, memory_order_acquire) == t)
			spin_pause(&spins);
		char *p = ring->slot[t & (RING - 1)];
		atomic_store_explicit(&ring->tail, t + 1, memory_order_release);
		acc += (unsigned char)p[0];
		free(p);
	}
	sink += acc;
	return arg;
}

/* nthreads / 2 pairs, each a producer that mallocs and a consumer that
 * frees; the objects of xthread (one pair) split between the pairs */
static void w_xthread(int nthreads)
{
	int pairs = nthreads / 2;
	pthread_t a[MAX_THREADS / 2], b[MAX_THREADS / 2];
	for (int i = 0; i < pairs; i++) {
		atomic_store(&rings[i].head, 0);
		atomic_store(&rings[i].tail, 0);
		rings[i].total = scaled(XT_OBJS) / (uint64_t)pairs;
		rings[i].seed = 77 + (unsigned)i;
	}
	size_t l0 = lock_count();
	double t0 = now();
	for (int i = 0; i < pairs; i++)
		if (pthread_create(&b[i], NULL, xt_consumer, &rings[i]) ||
		    pthread_create(&a[i], NULL, xt_producer, &rings[i]))
			die("pthread_create");
	for (int i = 0; i < pairs; i++) {
		pthread_join(a[i], NULL);
		pthread_join(b[i], NULL);
	}
	double t1 = now();
	uint64_t total = rings[0].total * (uint64_t)pairs;
	report_locks(l0, 2 * total);
	printf("time %.6f\nops %llu\n", t1 - t0, (unsigned long long)total);
}

/* ------------------------------------------------------------------ */
/* (4) larson-style server: threads replace random slots of a shared     */
/* array; a slot's old object was usually allocated by another thread,   */
/* and threads come and go in generations (thread exit with live data).  */

#define LA_SLOTS 20000
#define LA_GENS 4
#define LA_OPS 600000ull /* per thread per generation */

static _Atomic(void *) la_slot[LA_SLOTS];

struct la_arg {
	unsigned seed;
	uint64_t ops;
};

static void *la_thread(void *argp)
{
	struct la_arg *a = argp;
	rng_t rng;
	rng_seed(&rng, a->seed);
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < a->ops; i++) {
		uint64_t r = rng_next(&rng);
		size_t idx = (size_t)(r % LA_SLOTS);
		/* mostly small, sometimes a few KiB, like a server's buffers */
		size_t sz = ((r >> 40) & 15) == 0 ? 1024 + (size_t)((r >> 20) % 7168)
						  : 16 + (size_t)((r >> 20) % 496);
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (char)i;
		p[sz - 1] = (char)i;
		void *old = atomic_exchange_explicit(&la_slot[idx], p, memory_order_acq_rel);
		if (old)
			acc += (unsigned char)*(char *)old;
		free(old);
	}
	sink += acc;
	return NULL;
}

/* nthreads at a time (2, or 8 and 32 with the operations of 2 split
 * between them) */
static void w_larson(int nthreads)
{
	struct la_arg args[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	uint64_t ops = scaled(LA_OPS) * 2 / (uint64_t)nthreads;
	/* initial population by the main thread */
	rng_t rng;
	rng_seed(&rng, 5);
	for (int i = 0; i < LA_SLOTS; i++) {
		char *p = malloc(rng_range(&rng, 16, 512));
		if (!p)
			die("malloc");
		p[0] = 1;
		atomic_store(&la_slot[i], p);
	}
	size_t l0 = lock_count();
	double t0 = now();
	for (int g = 0; g < LA_GENS; g++) {
		for (int i = 0; i < nthreads; i++) {
			args[i].seed = (unsigned)(100 + g * nthreads + i);
			args[i].ops = ops;
			if (pthread_create(&th[i], NULL, la_thread, &args[i]))
				die("pthread_create");
		}
		for (int i = 0; i < nthreads; i++)
			pthread_join(th[i], NULL);
	}
	double t1 = now();
	report_locks(l0, 2 * ops * (uint64_t)nthreads * LA_GENS);
	for (int i = 0; i < LA_SLOTS; i++)
		free(atomic_load(&la_slot[i]));
	printf("time %.6f\nops %llu\n", t1 - t0,
	       (unsigned long long)(ops * (uint64_t)nthreads * LA_GENS));
}

/* ------------------------------------------------------------------ */
/* (5) realloc-growth: 4 buffers grown round-robin by small steps up to  */
/* 1 MiB, freed, repeated.                                              */

#define RG_BUFS 4
#define RG_MAX (1u << 20)
#define RG_ROUNDS 50ull

/* one round: grows RG_BUFS buffers from 0 to 1 MiB; returns realloc calls */
NOINLINE uint64_t realloc_round(unsigned round)
{
	char *b[RG_BUFS] = {0};
	size_t len[RG_BUFS] = {0};
	uint64_t calls = 0;
	rng_t rng;
	rng_seed(&rng, 900 + round);
	for (;;) {
		int grown = 0;
		for (int i = 0; i < RG_BUFS; i++) {
			if (len[i] >= RG_MAX)
				continue;
			size_t nl = len[i] + rng_range(&rng, 16, 496);
			if (nl > RG_MAX)
				nl = RG_MAX;
			char *p = realloc(b[i], nl);
			if (!p)
				die("realloc");
			p[nl - 1] = (char)nl;
			if (len[i])
				sink += (unsigned char)p[len[i] - 1];
			b[i] = p;
			len[i] = nl;
			calls++;
			grown = 1;
		}
		if (!grown)
			break;
	}
	for (int i = 0; i < RG_BUFS; i++)
		free(b[i]);
	return calls;
}

NOINLINE uint64_t realloc_loop(uint64_t rounds)
{
	uint64_t calls = 0;
	for (uint64_t r = 0; r < rounds; r++)
		calls += realloc_round((unsigned)r);
	return calls;
}

static void w_realloc_growth(void)
{
	uint64_t rounds = scaled(RG_ROUNDS);
	double t0 = now();
	uint64_t calls = realloc_loop(rounds);
	double t1 = now();
	printf("time %.6f\nops %llu\n", t1 - t0, (unsigned long long)calls);
}

/* ------------------------------------------------------------------ */
/* (6) large: malloc / touch every page / free, 64 KiB .. 16 MiB          */

#define LG_OPS 600ull

/* malloc(sz), with one byte written in every page and the last byte */
static char *malloc_touched(size_t sz)
{
	char *p = malloc(sz);
	if (!p)
		die("malloc");
	for (size_t off = 0; off < sz; off += 4096)
		p[off] = (char)off;
	p[sz - 1] = 1;
	return p;
}

static void w_large(void)
{
	rng_t rng;
	rng_seed(&rng, 42);
	uint64_t ops = scaled(LG_OPS);
	uint64_t bytes = 0;
	double t0 = now();
	for (uint64_t i = 0; i < ops; i++) {
		/* log-uniform size in [64 KiB, 16 MiB] */
		unsigned sh = 16 + (unsigned)rng_range(&rng, 0, 7);
		size_t sz = ((size_t)1 << sh) + rng_range(&rng, 0, ((size_t)1 << sh));
		if (sz > (16u << 20))
			sz = 16u << 20;
		char *p = malloc_touched(sz);
		sink += (unsigned char)p[sz / 2];
		free(p);
		bytes += sz;
	}
	double t1 = now();
	printf("time %.6f\nops %llu\nbytes %llu\n", t1 - t0,
	       (unsigned long long)ops, (unsigned long long)bytes);
}

/* ------------------------------------------------------------------ */
/* buffers: a few 32..128 KiB buffers in flight, taken and given back   */
/* again and again (I/O, compression): every page written each time     */

#define BUF_ITERS 20000ull

static void w_buffers(void)
{
	rng_t rng;
	rng_seed(&rng, 7);
	uint64_t iters = scaled(BUF_ITERS), ops = 0, bytes = 0;
	double t0 = now();
	for (uint64_t i = 0; i < iters; i++) {
		char *b[4];
		int k = 1 + (int)(i % 4);
		for (int j = 0; j < k; j++) {
			size_t sz = (size_t)rng_range(&rng, 32 << 10, (128 << 10) - 64);
			b[j] = malloc_touched(sz);
			bytes += sz;
		}
		for (int j = 0; j < k; j++) {
			sink += (unsigned char)b[j][0];
			free(b[j]);
		}
		ops += (uint64_t)k;
	}
	double t1 = now();
	printf("time %.6f\nops %llu\nbytes %llu\n", t1 - t0,
	       (unsigned long long)ops, (unsigned long long)bytes);
}

/* ------------------------------------------------------------------ */
/* (7) frag: mixed sizes, free patterns, re-allocate other sizes         */

#define FR_N 50000

static void *fr_p[FR_N];
static size_t fr_sz[FR_N];
static size_t fr_live, fr_peak_live;

static size_t fr_size(rng_t *r, int phase)
{
	uint64_t x = rng_next(r);
	unsigned pick = (unsigned)(x & 63);
	size_t base;
	if (pick < 40)
		base = 16 + (size_t)((x >> 8) % 240); /* small */
	else if (pick < 58)
		base = 256 + (size_t)((x >> 8) % 1792); /* medium */
	else if (pick < 63)
		base = 2048 + (size_t)((x >> 8) % 14336); /* up to 16 KiB */
	else
		base = 16384 + (size_t)((x >> 8) % 114688); /* up to 128 KiB */
	/* later phases use sizes shifted away from the holes left before */
	if (phase == 1)
		base = base * 3 / 2 + 8;
	else if (phase == 2)
		base = base / 2 + 8;
	return base;
}

static void fr_alloc(int i, rng_t *r, int phase)
{
	size_t sz = fr_size(r, phase);
	char *p = malloc(sz);
	if (!p)
		die("malloc");
	memset(p, (int)(i & 0xff), sz); /* make every page resident */
	fr_p[i] = p;
	fr_sz[i] = sz;
	fr_live += sz;
	if (fr_live > fr_peak_live)
		fr_peak_live = fr_live;
}

static void fr_free(int i)
{
	if (!fr_p[i])
		return;
	free(fr_p[i]);
	fr_p[i] = NULL;
	fr_live -= fr_sz[i];
}

static void w_frag(void)
{
	long rss0, hwm0, rss1, hwm1, rss_end;
	rng_t rng;
	rng_seed(&rng, 4242);
	/* the workload's own arrays are resident before the start figure, so
	 * that the residual counts the allocator's memory only */
	memset(fr_p, 0, sizeof fr_p);
	memset(fr_sz, 0, sizeof fr_sz);
	read_mem(&rss0, &hwm0);
	double t0 = now();
	int n = (int)scaled(FR_N);
	if (n > FR_N)
		n = FR_N;
	/* phase 0: fill */
	for (int i = 0; i < n; i++)
		fr_alloc(i, &rng, 0);
	/* free every other object, refill the holes with 1.5x sizes */
	for (int i = 0; i < n; i += 2)
		fr_free(i);
	for (int i = 0; i < n; i += 2)
		fr_alloc(i, &rng, 1);
	/* free 3 of every 4, refill with half sizes */
	for (int i = 0; i < n; i++)
		if (i % 4 != 3)
			fr_free(i);
	for (int i = 0; i < n; i++)
		if (i % 4 != 3 && (i % 8) < 4)
			fr_alloc(i, &rng, 2);
	/* free runs of 7 out of every 16, keep the rest; refill half */
	for (int i = 0; i < n; i++)
		if ((i % 16) < 7)
			fr_free(i);
	for (int i = 0; i < n; i++)
		if ((i % 16) < 3)
			fr_alloc(i, &rng, 0);
	read_mem(&rss1, &hwm1);
	/* free everything */
	for (int i = 0; i < n; i++)
		fr_free(i);
	double t1 = now();
	read_mem(&rss_end, NULL);
	long peak_kib = hwm1 - rss0;
	printf("time %.6f\n", t1 - t0);
	printf("peak_live_kib %zu\n", fr_peak_live / 1024);
	printf("peak_rss_kib %ld\n", peak_kib);
	printf("peak_ratio %.4f\n", (double)peak_kib * 1024.0 / (double)fr_peak_live);
	printf("rss_start_kib %ld\n", rss0);
	printf("rss_end_kib %ld\n", rss_end);
	printf("residual_kib %ld\n", rss_end - rss0);
}

/* ------------------------------------------------------------------ */
/* idle-threads: RSS per thread that allocated a little and now waits,
 * minus the same for threads that never allocate (their stacks)         */

#define IDLE_N 200
static pthread_barrier_t idle_b1, idle_b2;

static void *idle_thread(void *arg)
{
	if (arg) {
		char *p = malloc(16), *q = malloc(100);
		if (!p || !q)
			die("malloc");
		p[0] = q[0] = 1;
		free(p);
	}
	pthread_barrier_wait(&idle_b1);
	pthread_barrier_wait(&idle_b2);
	return NULL;
}

static long idle_rss(int allocate)
{
	pthread_t t[IDLE_N];
	pthread_attr_t at;
	long r0, r1;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 65536);
	pthread_barrier_init(&idle_b1, NULL, IDLE_N + 1);
	pthread_barrier_init(&idle_b2, NULL, IDLE_N + 1);
	read_mem(&r0, NULL);
	for (int i = 0; i < IDLE_N; i++)
		if (pthread_create(&t[i], &at, idle_thread, allocate ? &t[i] : NULL))
			die("pthread_create");
	pthread_barrier_wait(&idle_b1);
	read_mem(&r1, NULL);
	pthread_barrier_wait(&idle_b2);
	for (int i = 0; i < IDLE_N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&idle_b1);
	pthread_barrier_destroy(&idle_b2);
	return r1 - r0;
}

/* in a fresh process each: the C library caches the stacks of joined
 * threads, which would make the second measurement cheaper */
static long idle_rss_child(int allocate)
{
	int fd[2];
	long v = 0;
	if (pipe(fd))
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		v = idle_rss(allocate);
		if (write(fd[1], &v, sizeof v) != sizeof v)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], &v, sizeof v) != sizeof v)
		die("idle-threads child");
	close(fd[0]);
	waitpid(pid, NULL, 0);
	return v;
}

static void w_idle_threads(void)
{
	long none = idle_rss_child(0), used = idle_rss_child(1);
	printf("threads %d\n", IDLE_N);
	printf("rss_idle_kib %ld\nrss_idle_allocated_kib %ld\n", none, used);
	printf("bytes_per_idle_thread %ld\n", (used - none) * 1024 / IDLE_N);
}

/* ------------------------------------------------------------------ */
/* thread workloads (issue 18): memory of threads that come and go.      */
/* Each reports its time, VmHWM (peak RSS, absolute) and RSS at the end. */

/* write the first byte of every 4 KiB page and the last byte */
static void touch_obj(char *p, size_t sz, char v)
{
	for (size_t off = 0; off < sz; off += 4096)
		p[off] = v;
	p[sz - 1] = v;
}

/*
 * thread-rounds[-N]: N rounds (default 100, times SCALE) of 4 short-lived
 * threads.  Thread t of round r (RNG seed 7000 + 4r + t) makes 1000..8000
 * objects; object sizes are log-uniform 8 B .. 32 KiB (a doubling
 * 2^3..2^14 picked uniformly, then a size uniform inside it), except that
 * 1 in 200 is 512 KiB.  Every object is written (touch_obj); object j is
 * kept until the thread ends if j % 4 < 2, freed at once if j % 4 == 2,
 * and swapped into a random slot of a shared 1000-slot table (atomic
 * exchange, the displaced object freed) if j % 4 == 3.  The kept objects
 * are freed just before the thread exits.  After joining the 4 threads the
 * main thread frees every other slot of the table (the even slots after
 * even rounds, the odd ones after odd rounds).  Checkpoints after rounds
 * 25, 100 and 200 (if reached) give time, VmHWM and RSS so far: one run of
 * thread-rounds-200 gives the rows of 25, 100 and 200 rounds.
 */
#define TR_THREADS 4
#define TR_SLOTS 1000
#define TR_MAXOBJ 8000
#define TR_BIG (512u << 10)

static _Atomic(void *) tr_table[TR_SLOTS];
static void *tr_keep[TR_THREADS][TR_MAXOBJ]; /* not malloc'd */

struct tr_arg {
	unsigned seed;
	int t;
	uint64_t objs;
};

static void *tr_thread(void *argp)
{
	struct tr_arg *a = argp;
	void **keep = tr_keep[a->t];
	size_t nkeep = 0;
	rng_t rng;
	rng_seed(&rng, a->seed);
	size_t n = rng_range(&rng, 1000, TR_MAXOBJ);
	uintptr_t acc = 0;
	for (size_t j = 0; j < n; j++) {
		size_t sz;
		if (rng_next(&rng) % 200 == 0)
			sz = TR_BIG;
		else {
			unsigned sh = (unsigned)rng_range(&rng, 3, 14);
			sz = ((size_t)1 << sh) + rng_range(&rng, 0, ((size_t)1 << sh) - 1);
		}
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		touch_obj(p, sz, (char)j);
		switch (j % 4) {
		case 0:
		case 1:
			keep[nkeep++] = p;
			break;
		case 2:
			acc += (unsigned char)p[sz - 1];
			free(p);
			break;
		default: {
			size_t idx = rng_range(&rng, 0, TR_SLOTS - 1);
			void *old = atomic_exchange_explicit(&tr_table[idx], p, memory_order_acq_rel);
			if (old)
				acc += (unsigned char)*(char *)old;
			free(old);
		}
		}
	}
	for (size_t k = 0; k < nkeep; k++)
		free(keep[k]);
	a->objs = n;
	sink += acc;
	return NULL;
}

static void w_thread_rounds(uint64_t rounds_default)
{
	static const uint64_t cp_at[3] = {25, 100, 200};
	double cp_time[3];
	long cp_hwm[3], cp_rss[3];
	int ncp = 0;
	uint64_t rounds = scaled(rounds_default), objs = 0;
	long rss0, hwm0, rss1, hwm1, rss_freed;
	pthread_t th[TR_THREADS];
	struct tr_arg args[TR_THREADS];
	memset(tr_keep, 0, sizeof tr_keep); /* resident before the start figure */
	read_mem(&rss0, &hwm0);
	double t0 = now();
	for (uint64_t r = 0; r < rounds; r++) {
		for (int t = 0; t < TR_THREADS; t++) {
			args[t].seed = (unsigned)(7000 + TR_THREADS * r + (uint64_t)t);
			args[t].t = t;
			args[t].objs = 0;
			if (pthread_create(&th[t], NULL, tr_thread, &args[t]))
				die("pthread_create");
		}
		for (int t = 0; t < TR_THREADS; t++) {
			pthread_join(th[t], NULL);
			objs += args[t].objs;
		}
		for (size_t i = r % 2; i < TR_SLOTS; i += 2)
			free(atomic_exchange(&tr_table[i], NULL));
		if (ncp < 3 && r + 1 == cp_at[ncp]) {
			cp_time[ncp] = now() - t0;
			read_mem(&cp_rss[ncp], &cp_hwm[ncp]);
			ncp++;
		}
	}
	double t1 = now();
	read_mem(&rss1, &hwm1);
	for (size_t i = 0; i < TR_SLOTS; i++)
		free(atomic_exchange(&tr_table[i], NULL));
	read_mem(&rss_freed, NULL);
	printf("time %.6f\nrounds %llu\nops %llu\n", t1 - t0,
	       (unsigned long long)rounds, (unsigned long long)objs);
	printf("rss_start_kib %ld\nhwm_kib %ld\nrss_end_kib %ld\nrss_freed_kib %ld\n",
	       rss0, hwm1, rss1, rss_freed);
	for (int c = 0; c < ncp; c++)
		printf("time_r%llu %.6f\nhwm_kib_r%llu %ld\nrss_end_kib_r%llu %ld\n",
		       (unsigned long long)cp_at[c], cp_time[c],
		       (unsigned long long)cp_at[c], cp_hwm[c],
		       (unsigned long long)cp_at[c], cp_rss[c]);
}

/*
 * thread-leftover: 50 000 short-lived threads (times SCALE; 100 000 with
 * SCALE 2, kept at half by default so that `make bench` stays short: the
 * thread starts, not the allocator, cost most of the time), 4 at a time
 * (start 4, join 4);
 * thread k mallocs one 128-byte object, writes it, and swaps it into slot
 * k % 1000 of a ring (atomic exchange), freeing the object it displaces:
 * about 1000 objects are live at any time, each freed by a later thread
 * than the one that made it.
 */
#define TL_THREADS 50000ull /* 100 000 with SCALE 2 */
#define TL_SLOTS 1000

static _Atomic(void *) tl_ring[TL_SLOTS];

static void *tl_thread(void *arg)
{
	size_t k = (size_t)(uintptr_t)arg;
	char *p = malloc(128);
	if (!p)
		die("malloc");
	memset(p, (int)(k & 0xff), 128);
	void *old = atomic_exchange_explicit(&tl_ring[k % TL_SLOTS], p, memory_order_acq_rel);
	if (old)
		sink += (unsigned char)*(char *)old;
	free(old);
	return NULL;
}

static void w_thread_leftover(void)
{
	uint64_t n = scaled(TL_THREADS);
	long rss0, hwm0, rss1, hwm1;
	pthread_t th[4];
	read_mem(&rss0, &hwm0);
	double t0 = now();
	for (uint64_t k = 0; k < n; k += 4) {
		int m = n - k < 4 ? (int)(n - k) : 4;
		for (int i = 0; i < m; i++)
			if (pthread_create(&th[i], NULL, tl_thread, (void *)(uintptr_t)(k + (uint64_t)i)))
				die("pthread_create");
		for (int i = 0; i < m; i++)
			pthread_join(th[i], NULL);
	}
	double t1 = now();
	read_mem(&rss1, &hwm1);
	for (size_t i = 0; i < TL_SLOTS; i++)
		free(atomic_exchange(&tl_ring[i], NULL));
	printf("time %.6f\nops %llu\n", t1 - t0, (unsigned long long)n);
	printf("rss_start_kib %ld\nhwm_kib %ld\nrss_end_kib %ld\n", rss0, hwm1, rss1);
}

/*
 * thread-oversub: 8 lanes, each running one thread at a time on (usually)
 * 2 cores.  A thread does TO_LIFE operations, then exits and the main
 * thread starts the lane's next thread (lanes are joined round-robin), until
 * every lane ran TO_GENS threads.  One operation: malloc 16..512 B (1 in 16:
 * 1..8 KiB), write first and last byte, swap it into a random slot of a
 * shared 8192-slot table (atomic exchange) and free the displaced object,
 * usually made by another thread (cross-thread free).
 */
#define TO_LANES 8
#define TO_SLOTS 8192
#define TO_LIFE 25000ull
#define TO_GENS 20

static _Atomic(void *) to_table[TO_SLOTS];

struct to_arg {
	unsigned seed;
	uint64_t ops;
};

static void *to_thread(void *argp)
{
	struct to_arg *a = argp;
	rng_t rng;
	rng_seed(&rng, a->seed);
	uintptr_t acc = 0;
	for (uint64_t i = 0; i < a->ops; i++) {
		uint64_t r = rng_next(&rng);
		size_t idx = (size_t)(r % TO_SLOTS);
		size_t sz = ((r >> 40) & 15) == 0 ? 1024 + (size_t)((r >> 20) % 7169)
						  : 16 + (size_t)((r >> 20) % 497);
		char *p = malloc(sz);
		if (!p)
			die("malloc");
		p[0] = (char)i;
		p[sz - 1] = (char)i;
		void *old = atomic_exchange_explicit(&to_table[idx], p, memory_order_acq_rel);
		if (old)
			acc += (unsigned char)*(char *)old;
		free(old);
	}
	sink += acc;
	return NULL;
}

static void w_thread_oversub(void)
{
	pthread_t th[TO_LANES];
	struct to_arg args[TO_LANES];
	uint64_t life = scaled(TO_LIFE);
	long rss0, hwm0, rss1, hwm1;
	read_mem(&rss0, &hwm0);
	double t0 = now();
	for (int g = 0; g < TO_GENS; g++)
		for (int l = 0; l < TO_LANES; l++) {
			if (g > 0)
				pthread_join(th[l], NULL);
			args[l].seed = (unsigned)(300 + g * TO_LANES + l);
			args[l].ops = life;
			if (pthread_create(&th[l], NULL, to_thread, &args[l]))
				die("pthread_create");
		}
	for (int l = 0; l < TO_LANES; l++)
		pthread_join(th[l], NULL);
	double t1 = now();
	read_mem(&rss1, &hwm1);
	for (size_t i = 0; i < TO_SLOTS; i++)
		free(atomic_exchange(&to_table[i], NULL));
	printf("time %.6f\nops %llu\nthreads %d\n", t1 - t0,
	       (unsigned long long)(life * TO_LANES * TO_GENS), TO_LANES * TO_GENS);
	printf("rss_start_kib %ld\nhwm_kib %ld\nrss_end_kib %ld\n", rss0, hwm1, rss1);
}

/* ------------------------------------------------------------------ */
/* (8) once: RSS with and without a single malloc(1)                     */

static void w_once(int do_malloc)
{
	long rss, hwm;
	if (do_malloc) {
		char *p = malloc(1);
		if (!p)
			_exit(2);
		*p = 1;
		once_ptr = p;
	}
	read_mem(&rss, &hwm);
	put_kv_raw("rss_kib", rss);
	put_kv_raw("hwm_kib", hwm);
	/* anonymous part alone: the file pages (code faulted in around the
	 * calls made) vary with the layout of the libraries, not with what
	 * the allocator keeps */
	put_kv_raw("anon_kib", status_field(status_buf, "\nRssAnon"));
}

/* ------------------------------------------------------------------ */
/* spin-N: no allocation at all, N threads of pure integer work.  The    */
/* t2/t1 ratio of this tells how many free cores the machine really had  */
/* (1.0 = two idle cores, 2.0 = effectively one).                        */

#define SPIN_ITERS 80000000ull

static void *spin_thread(void *arg)
{
	rng_t rng;
	uint64_t n = scaled(SPIN_ITERS), acc = 0;
	rng_seed(&rng, (uint64_t)(uintptr_t)arg);
	for (uint64_t i = 0; i < n; i++)
		acc += rng_next(&rng) >> 60;
	sink += acc;
	return NULL;
}

static void w_spin(int nthreads)
{
	pthread_t th[2];
	double t0 = now();
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, spin_thread, (void *)(uintptr_t)(i + 1)))
			die("pthread_create");
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("time %.6f\n", now() - t0);
}

/* ------------------------------------------------------------------ */

static void w_whoami(void)
{
	Dl_info info;
	void *(*volatile fn)(size_t) = malloc;
	if (dladdr((void *)fn, &info) && info.dli_fname)
		printf("malloc_from %s\n", info.dli_fname);
	else
		printf("malloc_from static\n");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench WORKLOAD [SCALE]\n"
		"workloads: st-churn mt-churn-1 mt-churn-2 xthread larson\n"
		"           mt-churn-8 mt-churn-32 xthread-8 xthread-32 larson-8\n"
		"             larson-32 (8 and 32 threads doing the 2-thread work)\n"
		"           realloc-growth large buffers frag once-none once-malloc\n"
		"           spin-1 spin-2 (no malloc: CPU scaling baseline) whoami\n"
		"           thread-rounds[-N] (N rounds of 4 short-lived threads, default\n"
		"             100; checkpoints after 25, 100, 200) thread-leftover (50 000\n"
		"             threads making one object each) thread-oversub (8 threads\n"
		"             replaced every 25 000 ops, cross-thread frees)\n"
		"           idle-threads (memory per idle thread; not in run.sh)\n"
		"SCALE multiplies iterations (thread-rounds: rounds; thread-leftover:\n"
		"threads; thread-oversub: operations per thread)\n");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *w = argv[1];
	/* "once" must not touch stdio or anything else that may allocate */
	if (!strcmp(w, "once-none")) {
		w_once(0);
		return 0;
	}
	if (!strcmp(w, "once-malloc")) {
		w_once(1);
		return 0;
	}
	if (argc > 2) {
		scale = strtod(argv[2], NULL);
		if (!(scale > 0))
			usage();
	}
	if (!strcmp(w, "st-churn"))
		w_st_churn();
	else if (!strcmp(w, "mt-churn-1"))
		w_mt_churn(1);
	else if (!strcmp(w, "mt-churn-2"))
		w_mt_churn(2);
	else if (!strcmp(w, "mt-churn-8"))
		w_mt_churn(8);
	else if (!strcmp(w, "mt-churn-32"))
		w_mt_churn(32);
	else if (!strcmp(w, "xthread"))
		w_xthread(2);
	else if (!strcmp(w, "xthread-8"))
		w_xthread(8);
	else if (!strcmp(w, "xthread-32"))
		w_xthread(32);
	else if (!strcmp(w, "larson"))
		w_larson(2);
	else if (!strcmp(w, "larson-8"))
		w_larson(8);
	else if (!strcmp(w, "larson-32"))
		w_larson(32);
	else if (!strcmp(w, "realloc-growth"))
		w_realloc_growth();
	else if (!strcmp(w, "large"))
		w_large();
	else if (!strcmp(w, "buffers"))
		w_buffers();
	else if (!strcmp(w, "frag"))
		w_frag();
	else if (!strcmp(w, "spin-1"))
		w_spin(1);
	else if (!strcmp(w, "spin-2"))
		w_spin(2);
	else if (!strcmp(w, "whoami"))
		w_whoami();
	else if (!strcmp(w, "idle-threads"))
		w_idle_threads();
	else if (!strcmp(w, "thread-rounds"))
		w_thread_rounds(100);
	else if (!strncmp(w, "thread-rounds-", 14) && w[14] >= '1' && w[14] <= '9') {
		char *end;
		unsigned long n = strtoul(w + 14, &end, 10);
		if (*end || n > 100000)
			usage();
		w_thread_rounds(n);
	} else if (!strcmp(w, "thread-leftover"))
		w_thread_leftover();
	else if (!strcmp(w, "thread-oversub"))
		w_thread_oversub();
	else
		usage();
	fflush(stdout);
	return 0;
}
