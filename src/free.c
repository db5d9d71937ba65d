/* free.c - free, free_sized, free_aligned_sized, malloc_usable_size.
 *
 * free makes lookup's checks (slot.c, heap.h), in the order that lets
 * a small object that passes them all go straight to the thread cache;
 * anything else takes the full lookup and its diagnosis.  The way back to
 * a group is release.c's.
 */
#include <stdlib.h>
#include "internal.h"

/* The opt-in checked path (options that need the slow paths). */
static __attribute__((noinline)) void free_hardened_path(struct heap *h, struct meta *m,
						       unsigned char *p, size_t n, int idx, int aligned)
{
	struct slot s = { m, p, n, idx, aligned };
	int w = meta_open();
	free_hardened(h, &s);
	meta_close(w);
}

/* A class whose groups are emptying has its cache switched off (limit 0,
 * see heap_group_regained) so that cached slots do not pin groups while the
 * program frees; its next malloc_slow switches it back on. */
static __attribute__((noinline)) void free_to_group(struct heap *h, struct meta *m,
						    unsigned char *p, size_t n, int idx, int aligned)
{
	int sc = m->sc;
	if (unlikely(opt_slow)) {
		free_hardened_path(h, m, p, n, idx, aligned);
		return;
	}
	/* (a small class's full cache is handled by free_to_cache; a big
	 * class keeps its one cached slot and this one goes back) */
	slot_release_with_pages(h, m, idx, p);
	if (tc_count(h, sc) && !tc_limit(h, sc)) tc_flush(h, sc, 0);
}


/* free_to_cache's uncached end, out of line so that the fast path keeps no
 * register for it: the record, the class and the rest come again from the
 * header, which the caller verified.  The cache is full (a slot of h's own
 * goes in after a flush), or off and empty (a thread without a heap, a
 * class whose groups empty): anything else, and any big slot (its pages go
 * back), free_to_group. */
static __attribute__((noinline)) void free_uncached(struct heap *h, unsigned char *p, uint64_t hdr,
						     size_t n, int aligned)
{
	struct meta *m = meta_at_index(H_META(hdr));
	int sc = m->sc, idx = (int)slot_of((size_t)(p - GROUP_HDR - m->mem), (unsigned)sc);
	size_t k = tc_count(h, sc), limit = aligned ? 0 : tc_limit(h, sc);
	if (likely(!opt_slow && class_stride(sc) < SLOT_PURGE_MIN && (limit || !k)))
		slot_release_or_cache(h, m, idx, limit ? p : NULL);
	else
		free_to_group(h, m, p, n, idx, aligned);
}

/* The end of every free of a small object that passed its checks: seal
 * the header as freed, then the thread cache (not for an aligned object,
 * whose p is not its slot's), or back to the group. */
ALWAYS_INLINE void free_to_cache(unsigned char *p, uint64_t hdr, size_t n, size_t sc, int aligned,
				unsigned char *g, size_t idx)
{
	seal_freed(p, hdr, g, idx);
	struct heap *h = tl_heap;
	if (likely(h->tc_top[sc] < h->tc_end[sc]) && !aligned) {
		tc_push(h, sc, p);
		return;
	}
	free_uncached(h, p, hdr, n, aligned);
}

/* The end of every free that passed lookup's checks: a large object's
 * mapping goes, a small object's slot to free_to_cache.  An external
 * definition (heap.h declares it without inline) for free_sized,
 * realloc and the others, and inline in free_with_lookup. */
inline __attribute__((always_inline)) void free_slot(struct slot *s)
{
	struct meta *m = s->meta;
	if (m->sc == SC_LARGE) {
		uint64_t hdr = *header_of(s->p);
		seal_freed(s->p, hdr, gen_at(H_META(hdr), 0), 0);   /* (slot 0) */
		tomb_set(s->p);
		large_free(m);
		return;
	}
	uint64_t hdr = *header_of(s->p);
	free_to_cache(s->p, hdr, s->n, m->sc, s->aligned, gen_at(H_META(hdr), (unsigned)s->idx), (size_t)s->idx);
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

/* free_to_cache for free's fast path: fbase holds the freed header's bits
 * and the next generation (freed_bits).  The class comes again from the
 * header (after the compare-and-swap, which needs the header anyway), so
 * that no register keeps it across the tags. */
ALWAYS_INLINE void free_fast_end(unsigned char *p, uint64_t hdr, unsigned char *g, uint64_t fbase,
				 size_t n)
{
	seal_freed_bits(p, hdr, g, fbase);
	__asm__("" : "+r"(hdr));
	size_t sc = H_CLASS(hdr);
	struct heap *h = tl_heap;
	if (likely(h->tc_top[sc] < h->tc_end[sc])) {
		tc_push(h, sc, p);
		return;
	}
	free_uncached(h, p, hdr, n, 0);
}

/* free's out-of-line ends (free_short, free_filled) return p when a check
 * fails (NULL when the object is freed), and free then takes
 * free_with_lookup itself, with its own return address: the caller that a
 * misuse report names (p comes back, so that free keeps no register for it
 * across the call).  (A jump from the ends
 * to free_with_lookup would pass that address only where the compiler
 * made the calls into jumps: not at -O0, not with sanitizers, not where
 * the ABI passes their arguments on the stack.) */
/* free of an object with a check value of 1..3 bytes, its header
 * verified: out of line, so that the common path keeps no register for
 * the bytes' loop */
static __attribute__((noinline)) unsigned char *free_short(unsigned char *p, uint64_t hdr, size_t n,
							   size_t clen, unsigned char *g, uint64_t fbase)
{
	if (unlikely(!canary_ok(p + n, H_TAG(hdr), clen))) return p;
	free_fast_end(p, hdr, g, fbase, n);
	return 0;
}

/* free of an object that fills its slot (no check value): its own
 * function, so that the common path keeps no registers for the next
 * header's check */
static __attribute__((noinline)) unsigned char *free_filled(unsigned char *p, uint64_t hdr, size_t n)
{
	size_t sc = H_CLASS(hdr), stride = class_stride(sc);  /* verified */
	const struct meta *m = meta_at_index(H_META(hdr));
	unsigned idx = (unsigned)slot_of((size_t)(p - GROUP_HDR - m->mem), (unsigned)sc);
	if (unlikely(!next_header_ok(m, p + stride, (int)idx + 1, stride - SLOT_HDR))) return p;
	free_to_cache(p, hdr, n, sc, 0, gen_at(H_META(hdr), idx), idx);
	return 0;
}

/* Whether hdr (not yet verified) names a record in use with a slot idx
 * below its count that starts at p and is not free in its group: a free
 * record, like an area's header, has cnt 0, so no slot index passes (no
 * separate test of mem).  The class and its stride come from the header
 * (the stride table has an entry for each of its values, 0 past the
 * small classes), the slot index from p, the record's mem and the stride
 * (slot_of; the position test makes it exact), when the class is the
 * record's.  Fails for anything else, large objects (whose stride is 0)
 * and aligned ones included.  The free masks share the record's line
 * with the fields read here; another thread may be changing other bits
 * of them. */
ALWAYS_INLINE int small_record(unsigned char *p, uint64_t hdr, size_t *sc, size_t *stride,
				unsigned char **g, size_t *pidx)
{
	*sc = H_CLASS(hdr);
	*stride = class_stride(*sc);
	const struct area_ref *ar = &ro.areas[H_AREA(hdr)];
	struct meta_area *a = ar->recs;
	if (unlikely(!a)) return 0;
	struct meta *m = (struct meta *)((char *)a + H_REC_OFF(hdr));
	size_t off = (size_t)(p - GROUP_HDR - m->mem);
	size_t idx = slot_of(off, (unsigned)*sc);
	*pidx = idx;
	/* the slot's generation: the area's array, 32 bytes a record */
	*g = ar->gens + (H_REC_OFF(hdr) >> 1) + idx;
	/* the record's class: the slot lies inside its group, and so does
	 * the slack word that the caller reads (at p + stride - 12) */
	if (unlikely(idx >= m->cnt) || unlikely(*sc != m->sc)) return 0;
	uint32_t free_bits = __atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
			     atomic_load_explicit(&m->remote, memory_order_relaxed);
	return likely(off == idx * *stride) && likely(*stride) && likely(!(free_bits >> idx & 1));
}

/* The size of the small object at p (slot start, stride known) if its
 * header verifies, else (size_t)-1.  *clen: the check value's length. */
ALWAYS_INLINE size_t verified_size(unsigned char *p, uint64_t hdr, size_t stride, size_t *slack,
				   const unsigned char *g)
{
	size_t room = stride - SLOT_HDR;
	size_t n = object_size(p, hdr, room);
	unsigned gen = __atomic_load_n(g, __ATOMIC_RELAXED);
	if (unlikely(n == (size_t)-1) || unlikely(H_TAG(hdr) != mac(hdr & H_LOW, p, n, K_LIVE, gen)))
		return (size_t)-1;
	*slack = room - n;
	return n;
}

/* The checks of lookup, in the order that lets a slot that passes them all
 * go straight to the thread cache: the stride of a large object's record
 * is 0 (class_stride(SC_LARGE)), so large and aligned objects, like any
 * pointer that fails a check, fall to free_with_lookup. */
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
	/* No test of p's alignment or of a zero header here: a misaligned p
	 * fails the position test below (mem and strides are multiples of
	 * UNIT), and a zero header names record 0 of area 0, the area
	 * header, whose slot count is 0.  The header is loaded with memcpy,
	 * which is defined for a misaligned p (one mov). */
	uint64_t hdr;
	__builtin_memcpy(&hdr, p - SLOT_HDR, sizeof hdr);
	size_t stride, sc, idx, n, clen;
	unsigned char *g;
	if (unlikely(!small_record(p, hdr, &sc, &stride, &g, &idx))) goto general;
	/* verified_size and canary_len, for a stride of a class (>= 16,
	 * small_record tested it): the room is at least 8, so any r below 7
	 * gives a size */
	size_t room = stride - SLOT_HDR;
	unsigned r = H_R(hdr);
	if (likely(r != H_R_ESC)) {
		n = room - r;
		clen = r < 4 ? r : 4;
	} else {
		uint32_t w = slack_word(p, room);
		if (unlikely(w < H_R_ESC) || unlikely(w > room)) goto general;
		n = room - w;
		clen = w - 4 < 4 ? w - 4 : 4;
	}
	unsigned gen = __atomic_load_n(g, __ATOMIC_RELAXED);
	/* the freed header's bits, before the tag: fewer values live across
	 * it (seal_freed) */
	uint64_t fbase = freed_bits(hdr, idx, gen);
	__asm__("" : "+r"(fbase));
	uint32_t tag = mac(hdr & H_LOW, p, n, K_LIVE, gen);
	/* hdr and p, as if new (an empty asm): the tag's bits and p << 16 are
	 * computed again after the tag, not kept in registers across it */
	uint64_t hv = hdr;
	__asm__("" : "+r"(hv), "+r"(p));
	if (unlikely(H_TAG(hv) != tag)) goto general;
	/* the check value: 4 bytes in one load, or the 1..3 bytes of a short
	 * one one by one (the bytes past them may be the next slot's header,
	 * which another thread may be writing) */
	if (likely(clen == 4)) {
		uint32_t c;
		__builtin_memcpy(&c, p + n, 4);
		if (unlikely(c != canary_word(H_TAG(hv)))) goto general;
		free_fast_end(p, hdr, g, fbase, n);
	} else {
		p = clen ? free_short(p, hdr, n, clen, g, fbase) : free_filled(p, hdr, n);
		if (likely(!p)) return;
		goto general;
	}
	return;
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

/* free's checks for a small object (a program that keeps count of its
 * memory, as redis does, asks this for every object it allocates and
 * frees); anything else takes slot_lookup and its diagnosis. */
EXPORT size_t malloc_usable_size(void *ptr)
{
	unsigned char *p = ptr;
	struct slot s;
	if (!p) return 0;
	if (likely(((uintptr_t)p & (MIN_PAGE - 1)) > GROUP_HDR)) {
		uint64_t hdr;
		__builtin_memcpy(&hdr, p - SLOT_HDR, sizeof hdr);
		size_t stride, sc, slack, n, idx;
		unsigned char *g;
		if (small_record(p, hdr, &sc, &stride, &g, &idx) &&
		    (n = verified_size(p, hdr, stride, &slack, g)) != (size_t)-1 &&
		    (slack ? canary_ok(p + n, H_TAG(hdr), canary_len(slack, H_R(hdr)))
			   : next_header_ok(meta_at_index(H_META(hdr)), p + stride,
					    (int)idx + 1, stride - SLOT_HDR)))
			return n;
	}
	CALLER_SET();
	slot_lookup(p, &s);
	CALLER_CLEAR();
	return s.n;
}
