/* test_death.c - every detected misuse must abort with a diagnostic line
 * "mallocng: <program>[<pid>]: <what> at 0x<address>, caller 0x<address>
 * (<module>+0x<offset>) (see mallocng(7))" (the caller when known) on
 * stderr.  Each case runs in its own
 * forked child whose stderr is captured and checked.
 *
 * fuzz/misuse/ (fuzz/misuse.sh) has overlapping cases as whole programs
 * with the library preloaded, in the default and the hardened mode: they
 * hold the preloaded path and the hardened options; these hold the exact
 * message of each check, in-process and linked. */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include "util.h"

/* A 64-bit argument of a child (two sizes packed in it), by address: a
 * pointer has 32 bits on 32-bit targets.  The child is forked within the
 * call, while the compound literal lives. */
#define ARG(x) ((void *)&(uint64_t){ (x) })
#define VAL(a) (*(const uint64_t *)(a))

/* ---- double free ---- */

static void double_free_sized(void *arg)
{
	char *p = malloc(VAL(arg));
	memset(p, 1, VAL(arg));
	free(p);
	free(OPAQUE(p));
}

START_TEST(test_double_free_small)
{
	struct soft soft = { 0 };
	static const size_t n[] = { 0, 1, 24, 100, 1000, 4000, 20000, 100000 };
	for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
		char name[64];
		snprintf(name, sizeof name, "double free of malloc(%zu)", n[i]);
		soft_expect_abort(&soft, name, double_free_sized, ARG(n[i]), "double free", NULL);
	}
	soft_check(&soft);
}
END_TEST

START_TEST(test_double_free_large)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "double free of 1 MiB", double_free_sized, ARG(1 << 20),
	             "double free", NULL);
	soft_expect_abort(&soft, "double free of 300000", double_free_sized, ARG(300000),
	             "double free", NULL);
	soft_expect_abort(&soft, "double free of 8 MiB", double_free_sized, ARG(8 << 20),
	             "double free", NULL);
	soft_check(&soft);
}
END_TEST

/* Large objects at other offsets in their mapping (over-aligned). */
static void double_free_aligned(void *arg)
{
	size_t al = VAL(arg) >> 32, n = VAL(arg) & 0xffffffff;
	char *p = aligned_alloc(al, n);
	memset(p, 1, n);
	free(p);
	free(OPAQUE(p));
}

START_TEST(test_double_free_large_aligned)
{
	struct soft soft = { 0 };
	static const size_t cases[][2] = {
		{ 32, 1 << 20 }, { 64, 1 << 20 }, { 256, 300000 }, { 2048, 1 << 20 },
		{ 4096, 1 << 20 }, { 65536, 1 << 20 }, { 1 << 21, 1 << 20 }, { 64, 100 },
		{ 4096, 100 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char name[96];
		snprintf(name, sizeof name, "double free of aligned_alloc(%zu, %zu)",
		         cases[i][0], cases[i][1]);
		soft_expect_abort(&soft, name, double_free_aligned,
		             ARG((uint64_t)cases[i][0] << 32 | cases[i][1]), "double free", NULL);
	}
	soft_check(&soft);
}
END_TEST

/* realloc moved a large object to a small slot (and freed the mapping):
 * the old pointer is dead. */
static void free_after_realloc_moved(void *arg)
{
	char *p = malloc(VAL(arg));
	memset(p, 1, 100);
	char *q = realloc(p, 64);
	(void)q;
	free(OPAQUE(p));
}

static void realloc_after_large_free(void *arg)
{
	char *p = malloc(VAL(arg));
	free(p);
	p = realloc(OPAQUE(p), 10);
}

START_TEST(test_large_use_after_free)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "free of a large object's old pointer after realloc moved it",
	             free_after_realloc_moved, ARG(1 << 20), "double free", NULL);
	soft_expect_abort(&soft, "free of a small object's old pointer after realloc moved it",
	             free_after_realloc_moved, ARG(5000), "double free", NULL);
	soft_expect_abort(&soft, "realloc of a freed large object", realloc_after_large_free,
	             ARG(1 << 20), NULL, NULL);
	soft_check(&soft);
}
END_TEST

/* The reported address is the pointer given to free.  The object is
 * allocated before the fork, so parent and child agree on its address. */
static void double_free_addr(void *arg)
{
	free(arg);
	free(OPAQUE(arg));
}

START_TEST(test_double_free_reports_address)
{
	struct soft soft = { 0 };
	static const size_t n[] = { 48, 5000, 1 << 20 };
	for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
		char *p = malloc(n[i]), name[64];
		ck_assert_ptr_nonnull(p);
		snprintf(name, sizeof name, "double free address (%zu)", n[i]);
		soft_expect_abort(&soft, name, double_free_addr, p, "double free", p);
		free(p);   /* the parent's copy is still live */
	}
	soft_check(&soft);
}
END_TEST

/* Other objects of the same class and of other classes are freed between
 * the two frees (no allocation, so the slot cannot be handed out again). */
static void double_free_intervening(void *arg)
{
	size_t n = VAL(arg);
	char *x[12], *y[6];
	for (int i = 0; i < 12; i++) { x[i] = malloc(n); memset(x[i], i, n); }
	for (int i = 0; i < 6; i++) y[i] = malloc(200 + 5000 * i);
	free(x[5]);
	free(x[4]);
	free(x[6]);
	for (int i = 0; i < 6; i++) free(y[i]);
	free(x[9]);
	free(OPAQUE(x[5]));
}

START_TEST(test_double_free_intervening)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "double free after other frees (48)", double_free_intervening,
	             ARG(48), "double free", NULL);
	soft_expect_abort(&soft, "double free after other frees (700)", double_free_intervening,
	             ARG(700), "double free", NULL);
	soft_check(&soft);
}
END_TEST

/* So many frees of the class in between that per-thread caches are
 * flushed back to the groups before the second free.  The victim's two
 * neighbours in its group (found by sorting the addresses: slots of a group
 * are `stride` apart, whatever order they were handed out in) stay live,
 * so the group stays in use. */
static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

static void double_free_after_flush(void *arg)
{
	size_t n = VAL(arg);
	enum { N = 400 };
	char *x[N];
	int k = 1;
	for (int i = 0; i < N; i++) x[i] = malloc(n);
	qsort(x, N, sizeof *x, cmp_ptr);
	for (int i = 1; i + 1 < N; i += 2)
		if (x[i] - x[i - 1] == x[i + 1] - x[i]) { k = i; break; }
	free(x[k]);
	for (int i = 1; i < N; i += 2)   /* odd ones; the even ones stay live */
		if (i != k) free(x[i]);
	free(OPAQUE(x[k]));
}

START_TEST(test_double_free_after_flush)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "double free after 200 frees (32)", double_free_after_flush,
	             ARG(32), "double free", NULL);
	soft_expect_abort(&soft, "double free after 200 frees (2000)", double_free_after_flush,
	             ARG(2000), "double free", NULL);
	soft_check(&soft);
}
END_TEST

/* Every object of the class is freed, then one of them a second time (the
 * most common double free: a cleanup path run twice).  No allocation
 * happens in between, so the slot is still free. */
static void double_free_all_freed(void *arg)
{
	size_t n = VAL(arg) & 0xffffffff, cnt = VAL(arg) >> 32;
	char **x = malloc(cnt * sizeof *x);
	for (size_t i = 0; i < cnt; i++) { x[i] = malloc(n); memset(x[i], 1, n); }
	for (size_t i = 0; i < cnt; i++) free(x[i]);
	free(OPAQUE(x[cnt / 2]));
}

START_TEST(test_double_free_whole_class_freed)
{
	static const size_t cases[][2] = {
		{ 100, 8 }, { 100, 1000 }, { 2000, 400 }, { 20000, 100 }, { 100000, 10 },
		{ 1 << 20, 3 },
	};
	struct soft soft = { 0 };
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char name[96];
		snprintf(name, sizeof name, "%zu x malloc(%zu), all freed, one freed again",
		         cases[i][1], cases[i][0]);
		soft_expect_abort(&soft, name, double_free_all_freed,
		                  ARG((uint64_t)cases[i][1] << 32 | cases[i][0]), "double free", NULL);
	}
	soft_check(&soft);
}
END_TEST

/* First free in another thread, second in this one (and vice versa). */
static void *thread_free(void *p)
{
	free(p);
	return NULL;
}

static void double_free_cross_thread(void *arg)
{
	char *p = malloc(VAL(arg));
	char *keep = malloc(VAL(arg));
	pthread_t t;
	pthread_create(&t, NULL, thread_free, p);
	pthread_join(t, NULL);
	free(OPAQUE(p));
	(void)keep;
}

static void double_free_cross_thread2(void *arg)
{
	char *p = malloc(VAL(arg));
	char *keep = malloc(VAL(arg));
	pthread_t t;
	free(p);
	pthread_create(&t, NULL, thread_free, OPAQUE(p));
	pthread_join(t, NULL);
	(void)keep;
}

START_TEST(test_double_free_cross_thread)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "free in thread, then in main (64)", double_free_cross_thread,
	             ARG(64), "double free", NULL);
	soft_expect_abort(&soft, "free in thread, then in main (3000)", double_free_cross_thread,
	             ARG(3000), "double free", NULL);
	soft_expect_abort(&soft, "free in main, then in thread (64)", double_free_cross_thread2,
	             ARG(64), "double free", NULL);
	soft_check(&soft);
}
END_TEST

/* Objects of a thread that has exited (their groups are abandoned): all
 * freed by main, then one of them again. */
struct exited { size_t n, cnt; char **x; };

static void *alloc_and_exit(void *arg)
{
	struct exited *e = arg;
	for (size_t i = 0; i < e->cnt; i++) e->x[i] = malloc(e->n);
	return NULL;
}

static void double_free_exited_owner(void *arg)
{
	struct exited e = { VAL(arg) & 0xffffffff, VAL(arg) >> 32, NULL };
	pthread_t t;
	e.x = malloc(e.cnt * sizeof *e.x);
	pthread_create(&t, NULL, alloc_and_exit, &e);
	pthread_join(t, NULL);
	for (size_t i = 0; i < e.cnt; i++) free(e.x[i]);
	free(OPAQUE(e.x[e.cnt / 2]));
}

START_TEST(test_double_free_exited_owner)
{
	static const size_t cases[][2] = { { 100, 50 }, { 2000, 100 }, { 20000, 40 }, { 1 << 20, 3 } };
	struct soft soft = { 0 };
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char name[96];
		snprintf(name, sizeof name, "%zu x malloc(%zu) of an exited thread, all freed, one again",
		         cases[i][1], cases[i][0]);
		soft_expect_abort(&soft, name, double_free_exited_owner,
		                  ARG((uint64_t)cases[i][1] << 32 | cases[i][0]), "double free", NULL);
	}
	soft_check(&soft);
}
END_TEST

static void realloc_of_freed(void *arg)
{
	(void)arg;
	/* realloc of a freed pointer is a use of a freed object too */
	char *p = malloc(64);
	free(p);
	p = realloc(OPAQUE(p), 128);
	(void)p;
}

START_TEST(test_realloc_after_free)
{
	expect_abort("realloc after free", realloc_of_freed, NULL, NULL, NULL);
}
END_TEST

/* ---- pointers that malloc never returned ---- */

static char gbuf[512] __attribute__((aligned(64)));

static void free_stack(void *arg)
{
	char buf[256] __attribute__((aligned(64)));
	memset(buf, (int)VAL(arg), sizeof buf);
	free(OPAQUE(buf + 64));
}

static void free_global(void *arg)
{
	memset(gbuf, (int)VAL(arg), sizeof gbuf);
	free(OPAQUE(gbuf + 128));
}

static void free_interior(void *arg)
{
	size_t off = VAL(arg) & 0xffff, n = VAL(arg) >> 16;
	char *p = malloc(n);
	memset(p, 0, n);
	free(OPAQUE(p + off));
}

static void free_interior_ff(void *arg)
{
	size_t off = VAL(arg) & 0xffff, n = VAL(arg) >> 16;
	char *p = malloc(n);
	memset(p, 0xff, n);
	free(OPAQUE(p + off));
}

START_TEST(test_free_stack)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "free of a stack address (zeros)", free_stack, ARG(0), NULL, NULL);
	soft_expect_abort(&soft, "free of a stack address (0xff)", free_stack, ARG(0xff), NULL, NULL);
	soft_expect_abort(&soft, "free of a stack address (0x5a)", free_stack, ARG(0x5a), NULL, NULL);
	soft_check(&soft);
}
END_TEST

START_TEST(test_free_global)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "free of a global (zeros)", free_global, ARG(0), NULL, gbuf + 128);
	soft_expect_abort(&soft, "free of a global (0xa5)", free_global, ARG(0xa5), NULL, gbuf + 128);
	soft_check(&soft);
}
END_TEST

START_TEST(test_free_interior)
{
	struct soft soft = { 0 };
	static const size_t n[] = { 32, 100, 5000, 1 << 20 };
	for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
		char name[64];
		snprintf(name, sizeof name, "free(p+16) of malloc(%zu)", n[i]);
		soft_expect_abort(&soft, name, free_interior, ARG((uint64_t)n[i] << 16 | 16), NULL, NULL);
		soft_expect_abort(&soft, name, free_interior_ff, ARG((uint64_t)n[i] << 16 | 16), NULL, NULL);
		snprintf(name, sizeof name, "free(p+8) of malloc(%zu)", n[i]);
		soft_expect_abort(&soft, name, free_interior, ARG((uint64_t)n[i] << 16 | 8), NULL, NULL);
		soft_expect_abort(&soft, name, free_interior_ff, ARG((uint64_t)n[i] << 16 | 8), NULL, NULL);
		snprintf(name, sizeof name, "free(p+1) of malloc(%zu)", n[i]);
		soft_expect_abort(&soft, name, free_interior, ARG((uint64_t)n[i] << 16 | 1), NULL, NULL);
	}
	soft_check(&soft);
}
END_TEST

static void usable_stack(void *arg)
{
	char buf[128] __attribute__((aligned(16)));
	memset(buf, (int)VAL(arg), sizeof buf);
	(void)malloc_usable_size(OPAQUE(buf + 32));
}

static void usable_freed(void *arg)
{
	unsigned char *p = malloc(VAL(arg));
	free(p);
	(void)malloc_usable_size(OPAQUE(p));
}

START_TEST(test_usable_size_stack)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "malloc_usable_size of a freed malloc(100)", usable_freed, ARG(100),
	                  "double free", NULL);
	soft_expect_abort(&soft, "malloc_usable_size of a freed malloc(24)", usable_freed, ARG(24),
	                  "double free", NULL);
	soft_expect_abort(&soft, "malloc_usable_size of a stack pointer", usable_stack, ARG(0), NULL, NULL);
	soft_expect_abort(&soft, "malloc_usable_size of a stack pointer", usable_stack, ARG(0x77), NULL, NULL);
	soft_check(&soft);
}
END_TEST

/* ---- clobbered and forged slot headers ---- */

struct clobber { size_t n; uint64_t value; int flip_bit; };

static void clobber_header(void *arg)
{
	const struct clobber *c = arg;
	unsigned char *p = malloc(c->n), *keep = malloc(c->n);
	uint64_t h;
	memset(p, 0x33, c->n);
	memcpy(&h, p - 8, 8);
	if (c->flip_bit >= 0) h ^= 1ull << c->flip_bit;
	else h = c->value;
	memcpy(OPAQUE(p) - 8, &h, 8);
	free(OPAQUE(p));
	(void)keep;
}

START_TEST(test_clobbered_header)
{
	struct soft soft = { 0 };
	static const uint64_t garbage[] = {
		0, ~0ull, 0x4141414141414141ull, 0xdeadbeefcafebabeull, 1,
	};
	static const int bits[] = { 0, 3, 12, 24, 27, 29, 30, 35, 47, 48, 55, 63 };
	static const size_t n[] = { 24, 1000, 1 << 20 };
	for (size_t k = 0; k < sizeof n / sizeof *n; k++) {
		for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
			struct clobber c = { n[k], garbage[i], -1 };
			char name[96];
			snprintf(name, sizeof name, "header of malloc(%zu) = 0x%llx",
			         n[k], (unsigned long long)garbage[i]);
			soft_expect_abort(&soft, name, clobber_header, &c, NULL, NULL);
		}
		for (size_t i = 0; i < sizeof bits / sizeof *bits; i++) {
			struct clobber c = { n[k], 0, bits[i] };
			char name[96];
			snprintf(name, sizeof name, "header of malloc(%zu), bit %d flipped",
			         n[k], bits[i]);
			soft_expect_abort(&soft, name, clobber_header, &c, NULL, NULL);
		}
	}
	soft_check(&soft);
}
END_TEST

static void forge_header(void *arg)
{
	size_t nq = VAL(arg) >> 32, np = VAL(arg) & 0xffffffff;
	unsigned char *q = malloc(nq), *p = malloc(np);
	memcpy(OPAQUE(p) - 8, q - 8, 8);
	free(OPAQUE(p));
}

START_TEST(test_forged_header)
{
	struct soft soft = { 0 };
	static const size_t pairs[][2] = {
		{ 40, 40 }, { 100, 40 }, { 40, 3000 }, { 3000, 3000 },
		{ 1 << 20, 40 }, { 40, 1 << 20 }, { 1 << 20, 1 << 20 },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		char name[96];
		snprintf(name, sizeof name, "header of malloc(%zu) copied onto malloc(%zu)",
		         pairs[i][0], pairs[i][1]);
		soft_expect_abort(&soft, name, forge_header,
		             ARG((uint64_t)pairs[i][0] << 32 | pairs[i][1]), NULL, NULL);
	}
	soft_check(&soft);
}
END_TEST

/* A live header saved and written back after its object was freed and
 * its whole group released: the tag still verifies (same bytes, same
 * address), so only the record checks stand between it and a free into a
 * group that is gone, or into the group that took the record since.
 * arg: object size << 8 | whether new groups are made before the replay. */
static void replay_released(void *arg)
{
	size_t n = VAL(arg) >> 8, cnt = 3000;
	void **v = malloc(cnt * sizeof *v);
	for (size_t i = 0; i < cnt; i++) v[i] = malloc(n);
	unsigned char *p = v[cnt / 2];
	uint64_t h;
	memcpy(&h, p - 8, 8);
	for (size_t i = 0; i < cnt; i++) free(v[i]);
	malloc_trim(0);         /* every empty group released */
	if (VAL(arg) & 1)       /* the records go to new groups of another class */
		for (size_t i = 0; i < cnt; i++) v[i] = malloc(n * 2 + 40);
	memcpy(OPAQUE(p) - 8, &h, 8);
	free(OPAQUE(p));
}

START_TEST(test_replayed_header)
{
	struct soft soft = { 0 };
	static const size_t n[] = { 24, 200, 3000 };
	for (size_t i = 0; i < sizeof n / sizeof *n; i++)
		for (int again = 0; again < 2; again++) {
			char name[96];
			snprintf(name, sizeof name, "live header of malloc(%zu) replayed after release%s",
			         n[i], again ? ", records reused" : "");
			soft_expect_abort(&soft, name, replay_released, ARG((uint64_t)n[i] << 8 | again), NULL, NULL);
		}
	soft_check(&soft);
}
END_TEST

/* ---- overflows into the check byte ---- */

static void overflow_free(void *arg)
{
	size_t n = VAL(arg);
	unsigned char *p = malloc(n);
	memset(p, 0x61, n);
	p = OPAQUE(p);
	p[n] ^= 0xff;             /* one byte past the request, always changed */
	free(p);
}

/* the same overflow, found by malloc_usable_size */
static void overflow_usable(void *arg)
{
	size_t n = VAL(arg);
	unsigned char *p = malloc(n);
	memset(p, 0x61, n);
	p = OPAQUE(p);
	p[n] ^= 0xff;
	(void)malloc_usable_size(p);
}

static void overflow_calloc(void *arg)
{
	size_t n = VAL(arg);
	unsigned char *p = calloc(n, 1);
	p = OPAQUE(p);
	p[n] ^= 0x01;
	free(p);
}

static void overflow_aligned(void *arg)
{
	size_t n = VAL(arg);
	unsigned char *p = aligned_alloc(64, n);
	p = OPAQUE(p);
	p[n] ^= 0x80;
	free(p);
}

static void overflow_realloc(void *arg)
{
	size_t n = VAL(arg) & 0xffffffff, m = VAL(arg) >> 32;
	unsigned char *p = malloc(n);
	memset(p, 0x62, n);
	p = OPAQUE(p);
	p[n] ^= 0xff;
	p = realloc(p, m);
	free(p);
}

static void overflow_after_realloc(void *arg)
{
	size_t n = VAL(arg);
	unsigned char *p = malloc(10);
	p = realloc(p, n);         /* the check byte follows the new size */
	memset(p, 0x63, n);
	p = OPAQUE(p);
	p[n] ^= 0xff;
	free(p);
}

/* a large object resized (in place if there is room) keeps its check byte
 * right after the new size */
static void overflow_after_large_resize(void *arg)
{
	size_t n = VAL(arg) & 0xffffffff, m = VAL(arg) >> 32;
	unsigned char *p = malloc(n);
	p = realloc(p, m);
	memset(p, 0x64, m);
	p = OPAQUE(p);
	p[m] ^= 0xff;
	free(p);
}

START_TEST(test_overflow_free)
{
	struct soft soft = { 0 };
	static const size_t n[] = { 1, 13, 100, 1000, 5000, 0, 8, 16, 31, 4096, 70000, 131000,
	                            131063, 131064, 200000, 1 << 20 };
	for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
		char name[64];
		snprintf(name, sizeof name, "p[%zu] overwritten, free", n[i]);
		soft_expect_abort(&soft, name, overflow_free, ARG(n[i]), "heap overflow", NULL);
		snprintf(name, sizeof name, "p[%zu] overwritten, malloc_usable_size", n[i]);
		soft_expect_abort(&soft, name, overflow_usable, ARG(n[i]), "heap overflow", NULL);
	}
	static const size_t resized[][2] = { { 300000, 301000 }, { 300000, 299000 },
	                                     { 1 << 20, (1 << 20) + 4096 }, { 1 << 20, 600000 } };
	for (size_t i = 0; i < sizeof resized / sizeof *resized; i++) {
		char name[80];
		snprintf(name, sizeof name, "malloc(%zu) resized to %zu, p[%zu] overwritten",
		         resized[i][0], resized[i][1], resized[i][1]);
		soft_expect_abort(&soft, name, overflow_after_large_resize,
		                  ARG((uint64_t)resized[i][1] << 32 | resized[i][0]), "heap overflow", NULL);
	}
	static const size_t large[] = { 150000, 300000, 1 << 20 };
	for (size_t i = 0; i < sizeof large / sizeof *large; i++) {
		char name[64];
		snprintf(name, sizeof name, "realloc'ed (large) p[%zu] overwritten", large[i]);
		soft_expect_abort(&soft, name, overflow_after_realloc, ARG(large[i]), "heap overflow", NULL);
	}
	for (size_t i = 0; i < 5; i++) {
		char name[64];
		snprintf(name, sizeof name, "calloc'ed p[%zu] overwritten", n[i]);
		soft_expect_abort(&soft, name, overflow_calloc, ARG(n[i]), "heap overflow", NULL);
		snprintf(name, sizeof name, "aligned_alloc'ed p[%zu] overwritten", n[i]);
		soft_expect_abort(&soft, name, overflow_aligned, ARG(n[i]), "heap overflow", NULL);
		snprintf(name, sizeof name, "realloc'ed p[%zu] overwritten", n[i]);
		soft_expect_abort(&soft, name, overflow_after_realloc, ARG(n[i]), "heap overflow", NULL);
	}
	soft_check(&soft);
}
END_TEST

START_TEST(test_overflow_realloc)
{
	struct soft soft = { 0 };
	static const size_t nm[][2] = {
		{ 13, 26 }, { 13, 5 }, { 100, 1000 }, { 1000, 100000 }, { 5000, 300000 },
		{ 1000, 1000 }, { 300000, 310000 }, { 300000, 290000 }, { 1 << 20, 100 },
		{ 200000, 8 << 20 },
	};
	for (size_t i = 0; i < sizeof nm / sizeof *nm; i++) {
		char name[64];
		snprintf(name, sizeof name, "p[%zu] overwritten, realloc to %zu",
		         nm[i][0], nm[i][1]);
		soft_expect_abort(&soft, name, overflow_realloc,
		             ARG((uint64_t)nm[i][1] << 32 | nm[i][0]), "heap overflow", NULL);
	}
	soft_check(&soft);
}
END_TEST

/* ---- sized free with the wrong size ---- */

static void sized_wrong(void *arg)
{
	size_t n = VAL(arg) & 0xffffffff, m = VAL(arg) >> 32;
	void *p = malloc(n);
	memset(p, 1, n);
	free_sized(p, m);
}

static void aligned_sized_wrong(void *arg)
{
	size_t n = VAL(arg) & 0xffffffff, m = VAL(arg) >> 32;
	void *p = aligned_alloc(256, n);
	free_aligned_sized(p, 256, m);
}

/* free_aligned_sized with an alignment that is not a power of two, or that
 * the object does not have: "bad alignment". */
static void bad_alignment(void *arg)
{
	size_t al = VAL(arg);
	char *p = NULL;
	if (al == 48) {
		p = aligned_alloc(64, 100);
	} else {
		/* find an object aligned to 64 but not to `al` */
		for (int i = 0; i < 100; i++) {
			p = aligned_alloc(64, 100);
			if ((uintptr_t)p & (al - 1)) break;
		}
	}
	free_aligned_sized(p, al, 100);
}

START_TEST(test_free_aligned_sized_bad_alignment)
{
	struct soft soft = { 0 };
	soft_expect_abort(&soft, "free_aligned_sized(aligned_alloc(64, 100), 48, 100)",
	                  bad_alignment, ARG(48), "bad alignment", NULL);
	soft_expect_abort(&soft, "free_aligned_sized(aligned_alloc(64, 100), 4096, 100)",
	                  bad_alignment, ARG(4096), "bad alignment", NULL);
	soft_check(&soft);
}
END_TEST

START_TEST(test_free_sized_mismatch)
{
	struct soft soft = { 0 };
	static const size_t nm[][2] = {
		{ 100, 101 }, { 100, 99 }, { 100, 0 }, { 1, 2 }, { 24, 25 },
		{ 5000, 5008 }, { 1 << 20, (1 << 20) + 1 }, { 1 << 20, (1 << 20) - 1 },
		{ 1 << 20, 100 }, { 300000, 300016 },
	};
	for (size_t i = 0; i < sizeof nm / sizeof *nm; i++) {
		char name[64];
		snprintf(name, sizeof name, "free_sized(malloc(%zu), %zu)", nm[i][0], nm[i][1]);
		soft_expect_abort(&soft, name, sized_wrong, ARG((uint64_t)nm[i][1] << 32 | nm[i][0]),
		             "size mismatch", NULL);
	}
	soft_expect_abort(&soft, "free_aligned_sized(aligned_alloc(256, 100), 256, 120)",
	             aligned_sized_wrong, ARG((uint64_t)120 << 32 | 100), "size mismatch", NULL);
	soft_check(&soft);
}
END_TEST

/* ---- the caller's address in the report ---- */

/* Each case misuses the allocator in its own function, then stores to
 * `after`, so that the misusing call is no tail call: its return address
 * lies inside the case's function, which the report must name. */
static volatile int after;

static void caller_double_free(void *arg)
{
	char *p = malloc(VAL(arg));
	free(p);
	free(OPAQUE(p));
	after = 1;
}

static void caller_overflow_short(void *arg)
{
	(void)arg;
	char *p = malloc(22);           /* 24 bytes of room: a 2-byte check value */
	OPAQUE(p)[22] ^= 0x55;
	free(p);
	after = 1;
}

static void caller_realloc_freed(void *arg)
{
	(void)arg;
	char *p = malloc(100);
	free(p);
	p = realloc(OPAQUE(p), 200);
	after = p != 0;
}

static void caller_sized(void *arg)
{
	(void)arg;
	char *p = malloc(100);
	free_sized(p, 101);
	after = 1;
}

static void caller_usable_freed(void *arg)
{
	(void)arg;
	char *p = malloc(100);
	free(p);
	after = (int)malloc_usable_size(OPAQUE(p));
}

static void caller_write_after_free(void *arg)
{
	(void)arg;
	char *p = malloc(48);
	free(p);
	memset(OPAQUE(p) - 8, 0x41, 8);   /* the freed header */
	p = malloc(48);
	after = p != 0;
}

/* Runs fn in a child: the report must name words and say ", caller 0x<a> (<module>+0x<o>)"
 * with a inside fn (within 400 bytes of its start: these are small) and o
 * its offset in the test program's file, as dladdr gives it. */
static void expect_caller(struct soft *soft, const char *name, child_fn fn, void *arg,
                          const char *words)
{
	char err[4096];
	int st = run_in_child(fn, arg, 20, err, sizeof err);
	const char *c = strstr(err, ", caller 0x"), *mod;
	unsigned long long a = c ? strtoull(c + 11, NULL, 16) : 0, o = 0;
	Dl_info self;
	int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(err, words) &&
	         a >= (uintptr_t)fn && a < (uintptr_t)fn + 400;
	if (ok && dladdr((void *)fn, &self) && self.dli_fbase) {
		mod = strstr(c, " (");
		const char *plus = mod ? strstr(mod, "+0x") : NULL;
		o = plus ? strtoull(plus + 3, NULL, 16) : 0;
		ok = plus && o == a - (uintptr_t)self.dli_fbase;
	}
	if (!ok) {
		soft->failed++;
		soft->len += (size_t)snprintf(soft->text + soft->len, sizeof soft->text - soft->len,
		                              "%s: no caller in [%p, +400) with its offset: status 0x%x, <%s>\n",
		                              name, (void *)fn, st, err);
		if (soft->len >= sizeof soft->text) soft->len = sizeof soft->text - 1;
	}
}

START_TEST(test_report_names_caller)
{
	struct soft soft = { 0 };
	expect_caller(&soft, "double free (48)", caller_double_free, ARG(48), "double free");
	expect_caller(&soft, "double free (5000)", caller_double_free, ARG(5000), "double free");
	expect_caller(&soft, "double free (1 MiB)", caller_double_free, ARG(1 << 20), "double free");
	expect_caller(&soft, "overflow, short check value", caller_overflow_short, NULL,
	              "heap overflow");
	expect_caller(&soft, "realloc after free", caller_realloc_freed, NULL, "double free");
	expect_caller(&soft, "free_sized mismatch", caller_sized, NULL, "size mismatch");
	expect_caller(&soft, "malloc_usable_size after free", caller_usable_freed, NULL,
	              "double free");
	/* in the default configuration only: with the checked paths a slot
	 * can wait in the quarantine, or another one be chosen at random */
	const char *o = getenv("MALLOCNG_OPTIONS");
	if (!o || !*o)
		expect_caller(&soft, "write after free found by malloc", caller_write_after_free,
		              NULL, "write after free");
	soft_check(&soft);
}
END_TEST

/* ---- controls: the harness itself ---- */

static void all_legal(void *arg)
{
	(void)arg;
	for (size_t n = 0; n < 3000; n += 7) {
		unsigned char *p = malloc(n);
		memset(p, 0xff, n);
		if (n & 1) free(p);
		else free_sized(p, n);
	}
	unsigned char *p = malloc(1 << 20);
	memset(p, 0xff, 1 << 20);
	free(p);
}

START_TEST(test_legal_use_is_silent)
{
	/* without misuse: no diagnostic, no abort */
	expect_clean_exit("legal use", all_legal, NULL, 20);
}
END_TEST

static Suite *death_suite(void)
{
	Suite *s = suite_create("death");
	TCase *tc = tcase_create("double free");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_double_free_small);
	tcase_add_test(tc, test_double_free_large);
	tcase_add_test(tc, test_double_free_large_aligned);
	tcase_add_test(tc, test_large_use_after_free);
	tcase_add_test(tc, test_double_free_reports_address);
	tcase_add_test(tc, test_double_free_intervening);
	tcase_add_test(tc, test_double_free_after_flush);
	tcase_add_test(tc, test_double_free_whole_class_freed);
	tcase_add_test(tc, test_double_free_cross_thread);
	tcase_add_test(tc, test_double_free_exited_owner);
	tcase_add_test(tc, test_realloc_after_free);
	suite_add_tcase(s, tc);

	tc = tcase_create("invalid pointer");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_free_stack);
	tcase_add_test(tc, test_free_global);
	tcase_add_test(tc, test_free_interior);
	tcase_add_test(tc, test_usable_size_stack);
	suite_add_tcase(s, tc);

	tc = tcase_create("header");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_clobbered_header);
	tcase_add_test(tc, test_forged_header);
	tcase_add_test(tc, test_replayed_header);
	suite_add_tcase(s, tc);

	tc = tcase_create("overflow");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_overflow_free);
	tcase_add_test(tc, test_overflow_realloc);
	suite_add_tcase(s, tc);

	tc = tcase_create("caller");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_report_names_caller);
	suite_add_tcase(s, tc);

	tc = tcase_create("sized");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_free_sized_mismatch);
	tcase_add_test(tc, test_free_aligned_sized_bad_alignment);
	tcase_add_test(tc, test_legal_use_is_silent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(death_suite());
}
