/* malloc.c - malloc and calloc.
 *
 * Fast path: the class's current group in the thread's own heap has an
 * available slot; take the lowest one, write its header and check byte.
 * No lock, no atomic.  Everything else is malloc_slow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static inline __attribute__((always_inline)) void *alloc_fast(size_t n)
{
	return alloc_class(size_to_class(n), n);
}

void *alloc_small(size_t n)
{
	return alloc_fast(n);
}

static __attribute__((noinline)) void *alloc_paged(size_t n, int zero)
{
	size_t sc = size_to_class(n);
	struct heap *h = tl_heap;
	struct meta *m = h->cur[sc];
	uint32_t a = m->avail;
	int how = zero ? FRESH_ZEROED : FRESH_SLOT;
	int cached = *tc_at(h, h->tc_top[sc]) != 0;
	unsigned char *p;
	if (likely(a && !cached && !opt_slow)) {
		/* alloc_class's steps, but the pages are populated before
		 * the header and the check byte are written: else those two
		 * writes fault their pages in one by one */
		int i = __builtin_ctz(a);
		p = m->mem + GROUP_HDR + (size_t)i * class_stride(sc);     /* slot_at, sc known */
		if (slot_fresh(m, i)) fresh_pages(p, n, class_room(sc), how);
		inuse_add(h, class_stride(sc));
		enframe_inline(m, a, i, n);
	} else {
		/* a slot from the thread cache is resident; one from a group
		 * that malloc_slow found or made is looked at afterwards
		 * (not with the checked paths: protect_meta keeps m
		 * read-only here) */
		p = alloc_class(sc, n);
		if (p && !cached && !opt_slow) {
			uint64_t hdr = *header_of(p);
			struct meta *pm = meta_at_index(H_META(hdr));
			int i = (int)H_IDX(hdr);
			if (slot_fresh(pm, i)) fresh_pages(p, n, class_room(sc), how);
		}
	}
	if (p && zero) memset(p, 0, n);
	return p;
}

static void *malloc_big(size_t n);

EXPORT void *malloc(size_t n)
{
	/* the sizes of the class table first: one comparison */
	if (likely(n <= TABLE_MAX)) return alloc_class(table_class(n), n);
	return malloc_big(n);
}

/* malloc above the class table's sizes, out of line (malloc's own path
 * keeps no register for it) */
static __attribute__((noinline)) void *malloc_big(size_t n)
{
	if (likely(n < POPULATE_MIN)) return alloc_fast(n);
	if (likely(n <= MAX_SMALL)) return alloc_paged(n, 0);
	return large_alloc(n, UNIT, 0);
}

EXPORT void *calloc(size_t cnt, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(cnt, size, &n)) {
		errno = ENOMEM;
		return 0;
	}
	if (n > MAX_SMALL) return large_alloc(n, UNIT, 1);
	if (n >= POPULATE_MIN) return alloc_paged(n, 1);
	void *p = alloc_fast(n);
	if (p) memset(p, 0, n);
	return p;
}

EXPORT const char *mallocng_version(void)
{
	return PACKAGE_VERSION;
}

/* Linking the static archive pulls in this file for malloc; these
 * references pull in every other entry point with it, so that no call
 * (from the program or from libc itself) can reach another allocator. */
extern void *reallocarray(void *, size_t, size_t);
extern void *pvalloc(size_t);
extern void *memalign(size_t, size_t);
extern void *valloc(size_t);
extern size_t malloc_usable_size(void *);
extern void free_sized(void *, size_t);
extern void free_aligned_sized(void *, size_t, size_t);
extern void malloc_stats(void);
extern int malloc_trim(size_t);
extern int mallopt(int, int);
__attribute__((used)) static const void *const entry_points[] = {
	(void *)realloc, (void *)reallocarray, (void *)free, (void *)aligned_alloc,
	(void *)posix_memalign, (void *)memalign, (void *)valloc, (void *)pvalloc,
	(void *)malloc_usable_size, (void *)free_sized, (void *)free_aligned_sized,
	(void *)malloc_stats, (void *)malloc_trim, (void *)mallopt,
	(void *)mallocng_get_stats,
};
