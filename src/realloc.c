/* realloc.c - realloc and reallocarray.
 *
 * In place when the new size still fits the slot and is not much smaller
 * than the class (shrinking by more than one class moves the object to a
 * better-fitting slot: realloc is a chance to defragment).  Large objects
 * are resized with mremap.  On failure the old object is left intact.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* A group of ours, not the one malloc takes from, with at most a quarter
 * of its slots in use: moving the object out may let the group go. */
static int nearly_empty(struct meta *m)
{
	struct heap *h = tl_heap;
	return m->owner == h && m != h->cur[m->sc] && m->cnt >= 4 &&
	       __builtin_popcount(m->avail) * 4 >= m->cnt * 3;
}

static void *realloc_checked(void *p, size_t n);

/* The checks and the rest out of line, with the caller's address set for
 * a report (os_proc.c, fail). */
EXPORT void *realloc(void *p, size_t n)
{
	if (!p) return malloc(n);
	CALLER_SET();
	void *q = realloc_checked(p, n);
	CALLER_CLEAR();
	return q;
}

static __attribute__((noinline)) void *realloc_checked(void *p, size_t n)
{
	struct slot s;
	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return 0;
	}
	struct meta *m = slot_lookup(p, &s);
	void *q;
	if (m->sc == SC_LARGE) {
		if (n >= REALLOC_MAP_MIN) {
			/* mremap refuses a range over two mappings, which a
			 * retired span can join (large.c): then copy (errno
			 * is untouched until that fails too) */
			if ((q = large_realloc(&s, n)) || n <= s.n) return q;
		}
	} else if (n <= MAX_SMALL) {
		int sc = size_to_class(n);
		/* up to the next slot's header */
		size_t room = (size_t)(slot_at(m, (size_t)s.idx + 1) - SLOT_HDR - s.p);
		if (sc <= m->sc && sc + 1 >= m->sc && n <= room && !nearly_empty(m)) {
			/* a new generation: the header of the old size (its
			 * check length, its class bit) goes stale, so that a
			 * saved copy of it cannot be written back and freed
			 * into another class's cache; the compare-and-swap
			 * fails if a free of p raced this realloc */
			if (!ent_advance(ent_at(m->index, (unsigned)s.idx), s.ev)) fail("double free", p);
			frame(s.p, m->index, (unsigned)s.idx, m->sc, n, room, s.aligned ? K_SLOW : K_LIVE);
			return s.p;
		}
	}
	/* an object that grows to REALLOC_MAP_MIN gets a mapping of its own,
	 * which then grows in place (mremap, or into a cached mapping's
	 * tail) instead of being copied through every larger class */
	if (n >= REALLOC_MAP_MIN && n > s.n) q = large_alloc(n, UNIT, 0);
	else q = malloc(n);
	if (!q) return 0;
	memcpy(q, p, n < s.n ? n : s.n);
	free_slot(&s);
	return q;
}

EXPORT void *reallocarray(void *p, size_t cnt, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(cnt, size, &n)) {
		errno = ENOMEM;
		return 0;
	}
	return realloc(p, n);
}
