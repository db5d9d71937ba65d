/* free.c - free, free_sized, free_aligned_sized, malloc_usable_size.
 *
 * free's fast path makes the checks that a live object at its slot's
 * start needs (heap.h, "slot header and slot entries"): its header
 * verifies, as K_LIVE, with the generation in the slot's entry, and its
 * check value (or, for an object that fills its slot, the next slot's
 * header) is intact.  It reads nothing of the record (an object that
 * fills its slot aside: next_header_ok): a header that verifies with the
 * current generation was written by malloc for p and that slot, and the
 * slot has not been freed since (every free advances the generation), so
 * the record is in use and lists the slot as allocated, and its class is
 * that of the entry's size, or the next one (the header's bit 31).
 * Anything else (large objects, K_SLOW ones; any pointer that fails)
 * takes the full lookup and its diagnosis.  The way back to a group is
 * release.c's.
 */
#include <stdlib.h>
#include "internal.h"

/* The opt-in checked path (options that need the slow paths). */
static __attribute__((noinline)) void free_hardened_path(struct heap *h, struct meta *m,
						       unsigned char *p, size_t n, int idx, int aligned)
{
	struct slot s = { m, p, n, idx, aligned, 0 };
	int w = meta_open();
	free_hardened(h, &s);
	meta_close(w);
}

/* A class whose groups are emptying has its cache switched off (limit 0,
 * see heap_group_regained; not a big class whose current group emptied)
 * so that cached slots do not pin groups while the program frees; its
 * next malloc_slow switches it back on. */
static __attribute__((noinline)) void free_to_group(struct heap *h, struct meta *m,
						    unsigned char *p, size_t n, int idx, int aligned)
{
	int sc = m->sc;
	if (unlikely(opt_slow)) {
		free_hardened_path(h, m, p, n, idx, aligned);
		return;
	}
	/* (a small class's full cache is handled by free_uncached; a big
	 * class keeps its one cached slot and this one goes back) */
	slot_release_with_pages(h, m, idx, p);
	if (tc_count(h, sc) && !tc_limit(h, sc)) tc_flush(h, sc, 0);
}

/* The uncached end of a free, out of line so that the fast path keeps no
 * register for it.  The cache is full (a slot of h's own goes in after a
 * flush), or off and empty (a thread without a heap, a class whose groups
 * empty): anything else, and any big slot (its pages go back),
 * free_to_group. */
static __attribute__((noinline)) void free_uncached(struct heap *h, unsigned char *p, struct meta *m,
						     int idx, size_t n, int aligned)
{
	int sc = m->sc;
	size_t k = tc_count(h, sc), limit = aligned ? 0 : tc_limit(h, sc);
	if (likely(!opt_slow && class_stride(sc) < SLOT_PURGE_MIN && (limit || !k)))
		slot_release_or_cache(h, m, idx, limit ? p : NULL);
	else
		free_to_group(h, m, p, n, idx, aligned);
}

/* The end of every free of a small object whose generation advanced: the
 * thread cache (not for an aligned object, whose p is not its slot's), or
 * back to the group. */
ALWAYS_INLINE void free_to_cache(unsigned char *p, size_t sc, struct meta *m, int idx, size_t n,
				int aligned)
{
	struct heap *h = tl_heap;
	if (likely(h->tc_top[sc] < h->tc_end[sc]) && !aligned) {
		tc_push(h, sc, p);
		return;
	}
	free_uncached(h, p, m, idx, n, aligned);
}

/* The end of every free that passed lookup's checks: a large object's
 * mapping goes, a small object's slot to free_to_cache.  An external
 * definition (heap.h declares it without inline) for free_sized,
 * realloc and the others, and inline in free_with_lookup. */
inline __attribute__((always_inline)) void free_slot(struct slot *s)
{
	struct meta *m = s->meta;
	seal_freed(s->p, ent_at(m->index, (unsigned)s->idx), s->ev);
	if (m->sc == SC_LARGE) {
		tomb_set(s->p);
		large_free(m);
		return;
	}
	free_to_cache(s->p, m->sc, m, s->idx, s->n, s->aligned);
}

/* Every pointer that is not the start of a small slot, and every pointer
 * that fails a check, takes this path and its full diagnosis; caller is
 * free's return address, which a report names. */
static __attribute__((noinline)) void free_with_lookup(void *p, const void *caller)
{
	struct slot s;
	os_caller = caller;
	lookup(p, &s, K_LIVE);
	free_slot(&s);
	CALLER_CLEAR();
}

/* Whether the 4-byte check value past the n bytes at p is the tag of
 * header hdr (a misaligned p + n: one load). */
static inline __attribute__((always_inline)) int tail4_ok(const unsigned char *p, size_t n, uint64_t hdr)
{
	uint32_t c;
	__builtin_memcpy(&c, p + n, 4);
	return c == canary_word(H_TAG(hdr));
}

/* The check past an object whose check value is not 4 bytes (1..3
 * bytes, or none: the next slot's header), its header verified: whether
 * it holds (free_short, malloc_usable_size).  Out of line: the fast paths
 * keep no register for it. */
static __attribute__((noinline)) int tail_ok(const unsigned char *p, uint64_t hdr, size_t n)
{
	unsigned clen = H_CLEN(hdr);
	return clen ? canary_ok(p + n, H_TAG(hdr), clen)
		    : next_header_ok(p + n + SLOT_HDR, meta_at_index(H_META(hdr)), (int)H_IDX(hdr) + 1);
}

/* free's out-of-line end for an object whose check value is not 4 bytes
 * (1..3 bytes, or none: the next slot's header is checked instead), its
 * header verified: it returns p when a check fails (NULL when the object
 * is freed), and free then takes free_with_lookup itself, with its own
 * return address: the caller that a misuse report names (a jump from here
 * to free_with_lookup would pass that address only where the compiler
 * made the calls into jumps: not at -O0, not with sanitizers, not where
 * the ABI passes their arguments on the stack). */
static __attribute__((noinline)) unsigned char *free_short(unsigned char *p, uint64_t hdr, struct meta *m,
							   _Atomic uint32_t *e, uint32_t ev)
{
	size_t n = ev & E_N_MASK;
	if (!tail_ok(p, hdr, n)) return p;
	if (unlikely(!ent_advance(e, ev))) return p;
	free_to_cache(p, (size_t)size_to_class(n) + H_UP(hdr), m, (int)H_IDX(hdr), n, 0);
	return 0;
}

/* The checks of lookup for a live object at its slot's start, in the
 * order that lets a slot that passes them all go straight to the thread
 * cache (see the head of this file). */
EXPORT void free(void *ptr)
{
	unsigned char *p = ptr;
	/* NULL (page offset 0) and the starts of large objects (offset UNIT
	 * or 0 of a MIN_PAGE boundary, whatever the page size: large.c) share
	 * one test, with a constant mask */
	if (unlikely(((uintptr_t)p & (MIN_PAGE - 1)) <= GROUP_HDR)) {
		if (!p) return;
		if (is_tomb(p)) goto general;
	}
	/* No test of p's alignment here: the tag covers p.  A zero header
	 * names record 0 of area 0 (an area header) and fails its tag.  The
	 * header is loaded with memcpy, which is defined for a misaligned p
	 * (one mov). */
	uint64_t hdr;
	__builtin_memcpy(&hdr, p - SLOT_HDR, sizeof hdr);
	const struct area_ref *ar = &ro.areas[H_AREA(hdr)];
	_Atomic uint32_t *ents = ar->ents;
	if (unlikely(!ents)) goto general;
	_Atomic uint32_t *e = (_Atomic uint32_t *)((char *)ents + H_ENT_OFF(hdr));
	struct meta *m = (struct meta *)((char *)ar->recs + H_REC_OFF(hdr));
	uint32_t ev = ent_load(e);
	if (unlikely(!tag_ok(hdr, p, K_LIVE, E_GBITS(ev)))) goto general;
	size_t n = ev & E_N_MASK;
	if (likely(H_CLEN(hdr) == 4)) {
		/* a failed compare-and-swap: another free of p won */
		if (unlikely(!tail4_ok(p, n, hdr)) || unlikely(!ent_advance(e, ev))) goto general;
		free_to_cache(p, (size_t)size_to_class(n) + H_UP(hdr), m, (int)H_IDX(hdr), n, 0);
		return;
	}
	p = free_short(p, hdr, m, e, ev);
	if (likely(!p)) return;
general:
	free_with_lookup(p, __builtin_return_address(0));
}

EXPORT void free_sized(void *p, size_t n)
{
	struct slot s;
	if (!p) return;
	CALLER_SET();
	slot_lookup(p, &s);
	if (s.n != n) fail("size mismatch", p);
	free_slot(&s);
	CALLER_CLEAR();
}

EXPORT void free_aligned_sized(void *p, size_t align, size_t n)
{
	struct slot s;
	if (!p) return;
	CALLER_SET();
	slot_lookup(p, &s);
	if (align & (align - 1) || (uintptr_t)p & (align - 1)) fail("bad alignment", p);
	if (s.n != n) fail("size mismatch", p);
	free_slot(&s);
	CALLER_CLEAR();
}

/* malloc_usable_size of a pointer that failed free's checks: the full
 * lookup and its diagnosis (caller: as free_with_lookup's). */
static __attribute__((noinline)) size_t usable_with_lookup(void *p, const void *caller)
{
	struct slot s;
	os_caller = caller;
	slot_lookup(p, &s);
	CALLER_CLEAR();
	return s.n;
}

/* free's checks for a live object at its slot's start, in free's order
 * (a program that keeps count of its memory, as redis does, asks this for
 * every object it allocates and frees); anything else takes slot_lookup
 * and its diagnosis. */
EXPORT size_t malloc_usable_size(void *ptr)
{
	unsigned char *p = ptr;
	if (!p) return 0;
	if (likely(((uintptr_t)p & (MIN_PAGE - 1)) > GROUP_HDR)) {
		uint64_t hdr;
		__builtin_memcpy(&hdr, p - SLOT_HDR, sizeof hdr);
		_Atomic uint32_t *e = ent_of(hdr);
		if (e) {
			uint32_t ev = ent_load(e);
			size_t n = ev & E_N_MASK;
			if (tag_ok(hdr, p, K_LIVE, E_GBITS(ev))) {
				if (likely(H_CLEN(hdr) == 4) ? tail4_ok(p, n, hdr) : tail_ok(p, hdr, n)) return n;
			}
		}
	}
	return usable_with_lookup(p, __builtin_return_address(0));
}
