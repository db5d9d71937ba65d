/* free.c - validating a pointer, and free.
 *
 * slot_lookup trusts nothing in user memory until it is proven: the slot
 * header must carry a tag that only the secret can produce; the meta index
 * it names must be one we handed out, in an area of the read-only table, of a
 * record in use; the slot index and the position of p in the group must
 * agree with the record's class and slot count; the check byte past the
 * requested size must be intact.  Any failure is fatal.
 */
#include <stdlib.h>
#include "internal.h"

HIDDEN void free_slow_local(struct heap *h, struct meta *m);

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* An object that fills its slot has no check value: it ends at the next
 * slot's header (at q - SLOT_HDR, q the user pointer of slot nidx of m,
 * or the group's last 8 bytes when nidx == cnt).  That header is genuine
 * for q, of any kind, or zero; zero only where the slot is free (in the
 * group's avail or remote masks: never used, or its pages given back) or
 * for the group's last 8 bytes: an overflow that zeroes the header of a
 * slot in use (live, or in a thread cache) is caught, and one that
 * rewrites it cannot forge one.  Another thread may be writing it (taking
 * or freeing that slot): frame writes the slack word before the header,
 * so a header read with acquire order comes with its slack word, and a
 * header that changed between two reads, or a zero one of a slot that the
 * owner is taking (its bit cleared, its header not yet written), is read
 * again. */
static __attribute__((noinline)) int next_header_ok(const struct meta *m, const unsigned char *q,
						    int nidx, size_t room)
{
	const uint64_t *hp = (const uint64_t *)(q - SLOT_HDR);
	for (int tries = 0; tries < 4; tries++) {
		uint64_t h = __atomic_load_n(hp, __ATOMIC_ACQUIRE);
		if (!h) {
			if (nidx >= m->cnt) return 1;
			uint32_t free_bits = __atomic_load_n(&m->avail, __ATOMIC_ACQUIRE) |
					     atomic_load_explicit(&m->remote, memory_order_relaxed);
			if (free_bits >> nidx & 1) return 1;
			/* taken: the header was written before the bit went */
		} else if (sealed(h, q, 0, K_VOID)) {
			return 1;
		} else {
			/* the generation read may be one ahead of the header
			 * read (a free of that slot between the two loads) */
			unsigned g = gen_of(h);
			uint64_t low = h & H_LOW;
			size_t n = object_size(q, h, room);
			for (unsigned k = 0; k < 2; k++, g = (unsigned char)(g - 1)) {
				if (!H_R(h) && H_TAG(h) == mac(low, q, 0, K_FREED, g)) return 1;
				if (n != (size_t)-1 && (H_TAG(h) == mac(low, q, n, K_LIVE, g) ||
							H_TAG(h) == mac(low, q, n, K_CONTAINER, g)))
					return 1;
			}
		}
		if (__atomic_load_n(hp, __ATOMIC_ACQUIRE) == h) return 0;
	}
	return 0;
}

/* Why a header that is not a live one of p's failed. */
static _Noreturn __attribute__((noinline, cold)) void bad_header(uint64_t hdr, unsigned char *p)
{
	if (!hdr) fail("double free or invalid pointer", p);
	if (freed_ok(hdr, p)) fail("double free", p);
	fail("invalid pointer", p);
}

/* Full validation of p as a header of `kind` (K_LIVE for the entry points,
 * K_CONTAINER for free_container).  The record that the header names is
 * read before the tag is verified (the tag covers the size, which takes
 * the record's class): its index can only name a record of one of our
 * areas (the area table is read-only), whose fields are checked before
 * use.  A tag that fails is an invalid pointer, or a corrupted header;
 * a tag that verifies with a record that does not match p is corrupted
 * metadata. */
ALWAYS_INLINE struct meta *lookup(void *ptr, struct slot *s, unsigned kind)
{
	unsigned char *p = ptr;
	if ((uintptr_t)p & (UNIT - 1)) fail("invalid pointer", p);
	if (unlikely(((uintptr_t)p & (PAGE - 1)) <= GROUP_HDR) && is_tomb(p)) fail("double free", p);
	uint64_t hdr = *header_of(p);
	if (!hdr || freed_ok(hdr, p)) bad_header(hdr, p);
	int idx = H_IDX(hdr);
	uint32_t mi = H_META(hdr);
	struct meta_area *a = meta_areas[mi >> AREA_SHIFT].recs;
	if (!a) bad_header(hdr, p);
	struct meta *m = (struct meta *)a + (mi & (AREA_RECS - 1));
	size_t off = p - m->mem;    /* huge if p is below mem or mem is NULL */
	size_t n = (size_t)-1, room = 0;
	if (!m->mem || idx >= m->cnt) bad_header(hdr, p);
	if (m->sc == SC_LARGE) {
		if (off < SLOT_HDR || off >= m->maplen || H_R(hdr)) bad_header(hdr, p);
		room = m->maplen - off;
		if (m->size < room) n = m->size;
		if (!sealed(hdr, p, 0, kind)) bad_header(hdr, p);
		if (n == (size_t)-1) fail("corrupted metadata", p);
	} else if (m->sc < NCLASS) {
		size_t stride = class_stride[m->sc];
		/* p in slot idx (d < stride: off < start wraps to a huge d) */
		size_t d = off - (GROUP_HDR + (size_t)idx * stride);
		if (d < stride - SLOT_HDR) {
			room = stride - SLOT_HDR - d;
			n = object_size(p, hdr, room);
		}
		if (n == (size_t)-1 || !sealed(hdr, p, n, kind)) bad_header(hdr, p);
		/* a genuine header on a slot its group lists as free: written
		 * back after the free (a replayed header) */
		if ((__atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
		     atomic_load_explicit(&m->remote, memory_order_relaxed)) >> idx & 1)
			fail("double free", p);
	} else {
		fail("corrupted metadata", p);
	}
	size_t slack = room - n;
	unsigned r = m->sc == SC_LARGE ? 0 : H_R(hdr);
	size_t clen = m->sc == SC_LARGE ? (slack < 4 ? slack : 4) : canary_len(slack, r);
	if (clen ? !canary_ok(p + n, H_TAG(hdr), clen)
		 : m->sc != SC_LARGE && !next_header_ok(m, p + n + SLOT_HDR, idx + 1, class_stride[m->sc] - SLOT_HDR))
		fail("heap overflow", p);
	s->meta = m;
	s->p = p;
	s->n = n;
	s->idx = idx;
	s->aligned = m->sc != SC_LARGE && off != GROUP_HDR + (size_t)idx * class_stride[m->sc];
	return m;
}

struct meta *slot_lookup(void *p, struct slot *s)
{
	return lookup(p, s, K_LIVE);
}

/* The live-to-freed transition: the slot's generation advances (the live
 * header, and any copy of it, stops verifying), then one compare-and-swap
 * from the verified live header to the freed one, so that of two threads
 * freeing one pointer at the same moment only one succeeds; the other
 * sees a changed header.  (If both advanced the generation, the winner's
 * freed header may carry the later one: it still verifies, since the
 * freed header is sealed after the store it reads.) */
ALWAYS_INLINE void seal_freed(unsigned char *p, uint64_t hdr, unsigned char *g)
{
	unsigned gen = (unsigned char)(__atomic_load_n(g, __ATOMIC_RELAXED) + 1);
	__atomic_store_n(g, (unsigned char)gen, __ATOMIC_RELAXED);
	uint64_t low = hdr & (H_META(~0ull) << H_MI_SHIFT | 31);
	uint64_t freed = low | (uint64_t)mac(low, p, 0, K_FREED, gen) << 32;
	uint64_t expect = hdr;
	if (unlikely(!__atomic_compare_exchange_n(header_of(p), &expect, freed, 0,
						  __ATOMIC_RELEASE, __ATOMIC_RELAXED)))
		fail("double free", p);
}

/* A mapped group of h's down to one slot in use gives back the whole pages
 * of all the others (but the first: the group header); their headers then
 * read as zero, like those of slots never used. */
static __attribute__((noinline)) void group_purge_sparse(struct meta *m)
{
	uint32_t stride = class_stride[m->sc];
	int live = __builtin_ctz(~m->avail & full_mask(m));
	uintptr_t mem = (uintptr_t)m->mem, page = PAGE;
	uintptr_t lo = mem + GROUP_HDR + (size_t)live * stride - SLOT_HDR, hi = lo + stride;
	uintptr_t a0 = mem + page, a1 = lo & -page;
	uintptr_t b0 = (hi + page - 1) & -page, b1 = mem + m->maplen;
	if (a1 > a0) os_purge((void *)(a0 - page), a1 - a0 + page);
	if (b1 > b0) os_purge((void *)(b0 - page), b1 - b0 + page);
}

/* Another thread's slot: one atomic operation on its group, and a hint to
 * the owner's class.  After the fetch_or the owner may release the group
 * and its record: nothing is read from m past that point. */
static inline __attribute__((always_inline)) void release_remote(struct heap *owner,
								  struct meta *m, uint32_t bit)
{
	int sc = m->sc;
	void *mem = m->mem;
	uint32_t old = atomic_fetch_or(&m->remote, bit);
	if (old & bit) fail("double free", mem);
	if (!atomic_load_explicit(&owner->remote_hint[sc], memory_order_relaxed))
		atomic_store_explicit(&owner->remote_hint[sc], 1, memory_order_relaxed);
}

/* Return slot idx to its group: the owner sets its bit, another thread
 * sets the bit in `remote` with one atomic operation, and a group nobody
 * owns is handled under the lock.  With p (the slot's object, from a free
 * that found h's cache full), a slot of h's own group goes to the cache
 * instead, after a flush of half of it: another thread's slot goes
 * straight back, since a thread that only frees (a consumer) would
 * otherwise pay a flush with a second check of every slot. */
static __attribute__((noinline)) void release_any(struct heap *h, struct meta *m, int idx,
						   unsigned char *p)
{
	uint32_t bit = 1u << idx;
	for (;;) {
		struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
		if (owner == h && p) {
			int sc = m->sc;
			unsigned k = tc_count(h, sc);
			tc_flush(h, sc, TC_CAP / 2 < k ? TC_CAP / 2 : k / 2);
			tc_push(h, sc, p);
			return;
		}
		if (owner == h) {
			if (m->avail & bit) fail("double free", m->mem);
			m->avail |= bit;
			if (unlikely(m->avail == full_mask(m) || m->in_full))
				free_slow_local(h, m);
			return;
		}
		if (owner) {
			release_remote(owner, m, bit);
			return;
		}
		if (free_abandoned(m, bit)) return;
	}
}

/* Hand a batch entry's slots over: one atomic operation for a group of
 * another thread, one lock hold for an abandoned group, else slot by slot
 * (a group h adopted meanwhile). */
static __attribute__((noinline)) void batch_flush(struct heap *h, struct remote_batch *e)
{
	struct meta *m = meta_at_index(e->mi);
	uint32_t bits = e->bits;
	e->mi = 0;
	e->bits = 0;
	struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
	if (owner && owner != h) {
		release_remote(owner, m, bits);
		return;
	}
	if (!owner && free_abandoned(m, bits)) return;
	for (; bits; bits &= bits - 1) release_any(h, m, __builtin_ctz(bits), NULL);
}

/* Hand every entry over.  A hand-over can fill entries again (a group it
 * empties is released, and the free of a nested group's slot can be a
 * remote one), hence the passes until none is left. */
void remote_batch_flush(struct heap *h)
{
	for (int again = 1; again;) {
		again = 0;
		for (int i = 0; i < RB_N; i++)
			if (h->rb[i].mi) batch_flush(h, &h->rb[i]), again = 1;
	}
}

/* The common case first, without the frame of the general loop: a slot
 * of a group another thread owns (a consumer's frees), or that nobody owns
 * (its thread exited).  It waits in h's remote batch, which hands over all
 * the slots freed into one group with one atomic operation (one lock hold
 * for an abandoned group) when a slot of another group of a class with the
 * same entry (class mod RB_N) takes it: a consumer freeing a producer's
 * objects in their order, which fills a class's groups one after the
 * other, pays one atomic operation per group instead of one per slot.
 * A waiting slot is still allocated for its group, which therefore stays
 * (with its record) until the entry is handed over: when the entry is
 * needed, at h's thread exit, at malloc_trim, at a statistics call, and
 * every DECAY_TICKS malloc_slow calls.  A thread without a heap gets one
 * here (with its thread cache off: see heap_for_free).  Not inlined, so
 * that race checkers see it under one name (fuzz/drd.supp). */
__attribute__((noinline)) void slot_release_to(struct heap *h, struct meta *m, int idx, unsigned char *p)
{
	struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
	if (likely(owner != h)) {
		if (unlikely(h == &empty_heap) && !(h = heap_for_free())) {
			if (owner) release_remote(owner, m, 1u << idx);
			else release_any(&empty_heap, m, idx, NULL);
			return;
		}
		struct remote_batch *e = &h->rb[m->sc & (RB_N - 1)];
		/* the hand-over of another group can fill the entry again
		 * (see remote_batch_flush): look again until it is m's or free */
		while (e->mi != m->index) {
			if (!e->mi) {
				e->mi = m->index;
				break;
			}
			batch_flush(h, e);
		}
		if (e->bits & 1u << idx) fail("double free", m->mem);
		e->bits |= 1u << idx;
		return;
	}
	release_any(h, m, idx, p);
}

/* Return slot idx (object p) to its group.  A slot of SLOT_PURGE_MIN or
 * more holds whole pages: its owner keeps them for a while (dirty.c), so
 * that a program cycling a few big buffers does not fault them in again
 * each time; any other thread gives them back first (while the slot is
 * still allocated, so that its owner cannot take it meanwhile), from the
 * page after p's header on. */
static void slot_give_back(struct heap *h, struct meta *m, int idx, unsigned char *p)
{
	uint32_t stride = class_stride[m->sc];
	if (stride < SLOT_PURGE_MIN) {
		slot_release(h, m, idx);
	} else if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h && h != &empty_heap &&
		   dirty_on()) {
		dirty_add(h, m, 1u << idx);
		slot_release(h, m, idx);
		dirty_trim(h);
	} else {
		uintptr_t end = (uintptr_t)m->mem + GROUP_HDR + (size_t)(idx + 1) * stride;
		uintptr_t from = ((uintptr_t)p + PAGE - 1) & -(uintptr_t)PAGE;
		end &= -(uintptr_t)PAGE;
		if (end > from) os_purge((void *)(from - PAGE), end - from + PAGE);
		slot_release(h, m, idx);
	}
}

/* free of the slot that held a nested group (group.c), checked like any
 * free but straight back to its group: never into the thread cache, which
 * a flush may be walking (a hand-over inside tc_flush can release a group,
 * and that group's slot can be of the class being flushed).  A mapped
 * container of 64 KiB or more left with one slot in use (often the next
 * nested group, kept while its class is idle) gives back the rest of its
 * pages, unless malloc allocates from it. */
void free_container(void *p)
{
	struct slot s;
	struct meta *m = lookup(p, &s, K_CONTAINER);
	struct heap *h = tl_heap;
	uint64_t hdr = *header_of(s.p);
	seal_freed(s.p, hdr, gen_at(H_META(hdr), H_IDX(hdr)));
	int sparse = __atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h && m->mapped &&
		     m->maplen >= (64u << 10) && m != h->cur[m->sc] &&
		     __builtin_popcount(m->avail | 1u << s.idx) == m->cnt - 1;
	slot_give_back(h, m, s.idx, s.p);
	if (sparse) group_purge_sparse(m);
}

/* Return all but the `keep` most recent cached slots of a class. */
void tc_flush(struct heap *h, int sc, int keep)
{
	int k = (int)tc_count(h, sc), out = k - keep;
	void **slots = tc_bottom(h, sc) + 1;
	size_t released = h->released;
	for (int i = 0; i < out; i++) {
		unsigned char *p = slots[i];
		uint64_t hdr = *header_of(p);
		if (!freed_ok(hdr, p)) fail("write after free", p);
		struct meta *m = meta_at_index(H_META(hdr));
		if (p - m->mem != GROUP_HDR + H_IDX(hdr) * class_stride[sc]) fail("corrupted metadata", p);
		slot_give_back(h, m, H_IDX(hdr), p);
		/* groups are emptying: the program is freeing, not churning, so
		 * let the cache pin no group (this flush returns everything) */
		if (i == out - 1 && h->released != released && out < k) out = k, keep = 0;
	}
	for (int i = 0; i < keep; i++) slots[i] = slots[out + i];
	h->tc_top[sc] = (uint32_t)(tc_bottom_off(sc) + keep * sizeof(void *));
}

/* The opt-in checked path (options that need the slow paths). */
static __attribute__((noinline)) void release_checked(struct heap *h, struct meta *m,
						       unsigned char *p, size_t n, int idx, int aligned)
{
	struct slot s = { m, p, n, idx, aligned };
	int w = meta_open();
	free_hardened(h, &s);
	meta_close(w);
}

/* A class whose groups are emptying has its cache switched off (limit 0,
 * see free_slow_local) so that cached slots do not pin groups while the
 * program frees; its next malloc_slow switches it back on. */
static __attribute__((noinline)) void release_slow(struct heap *h, struct meta *m,
						    unsigned char *p, size_t n, int idx, int aligned)
{
	int sc = m->sc;
	if (unlikely(opt_slow)) {
		release_checked(h, m, p, n, idx, aligned);
		return;
	}
	/* (a small class's full cache is handled by free_checked; a big
	 * class keeps its one cached slot and this one goes back) */
	slot_give_back(h, m, idx, p);
	if (tc_count(h, sc) && !tc_limit(h, sc)) tc_flush(h, sc, 0);
}


/* free_checked's uncached end, out of line so that the fast path keeps no
 * register for it: the record, the class and the rest come again from the
 * header, which the caller verified.  The cache is full (a slot of h's own
 * goes in after a flush), or off and empty (a thread without a heap, a
 * class whose groups empty): anything else, and any big slot (its pages go
 * back), release_slow. */
static __attribute__((noinline)) void free_uncached(struct heap *h, unsigned char *p, uint64_t hdr,
						     size_t n, int aligned)
{
	struct meta *m = meta_at_index(H_META(hdr));
	int sc = m->sc, idx = H_IDX(hdr);
	size_t k = tc_count(h, sc), limit = aligned ? 0 : tc_limit(h, sc);
	if (likely(!opt_slow && class_stride[sc] < SLOT_PURGE_MIN && (limit || !k)))
		slot_release_to(h, m, idx, limit ? p : NULL);
	else
		release_slow(h, m, p, n, idx, aligned);
}

/* The end of every free of a small object that passed its checks: seal
 * the header as freed, then the thread cache (not for an aligned object,
 * whose p is not its slot's), or back to the group. */
ALWAYS_INLINE void free_checked(unsigned char *p, uint64_t hdr, size_t n, size_t sc, int aligned,
				unsigned char *g)
{
	seal_freed(p, hdr, g);
	struct heap *h = tl_heap;
	if (likely(h->tc_top[sc] < h->tc_end[sc]) && !aligned) {
		tc_push(h, sc, p);
		return;
	}
	free_uncached(h, p, hdr, n, aligned);
}

ALWAYS_INLINE void release(struct slot *s)
{
	struct meta *m = s->meta;
	if (m->sc == SC_LARGE) {
		uint64_t hdr = *header_of(s->p);
		seal_freed(s->p, hdr, gen_at(H_META(hdr), 0));
		tomb_set(s->p);
		large_free(m);
		return;
	}
	uint64_t hdr = *header_of(s->p);
	free_checked(s->p, hdr, s->n, m->sc, s->aligned, gen_at(H_META(hdr), H_IDX(hdr)));
}

void free_slot(struct slot *s)
{
	release(s);
}

/* Every pointer that is not the start of a small slot, and every pointer
 * that fails a check, takes this path and its full diagnosis. */
static __attribute__((noinline)) void free_general(void *p)
{
	struct slot s;
	lookup(p, &s, K_LIVE);
	release(&s);
}

/* free of an object that fills its slot (no check value): its own
 * function, so that the common path keeps no registers for the next
 * header's check */
static __attribute__((noinline)) void free_filled(unsigned char *p, uint64_t hdr, size_t n, size_t sc,
						   size_t stride)
{
	const struct meta *m = meta_at_index(H_META(hdr));     /* verified */
	if (unlikely(!next_header_ok(m, p + stride, H_IDX(hdr) + 1, stride - SLOT_HDR))) free_general(p);
	else free_checked(p, hdr, n, sc, 0, gen_at(H_META(hdr), H_IDX(hdr)));
}

/* Whether hdr (not yet verified) names a record in use whose slot idx
 * starts at p and is not free in its group: a free record, like an area's
 * header, has cnt 0, so no slot index passes (no separate test of mem).
 * Gives the class (within the stride table, which has an entry for every
 * value of the byte, even if the record is corrupted) and the stride.
 * Fails for anything else, large objects (whose stride is 0) and aligned
 * ones included.  The free masks share the record's line with the fields
 * read here; another thread may be changing other bits of them. */
ALWAYS_INLINE int small_record(unsigned char *p, uint64_t hdr, size_t *sc, size_t *stride,
				unsigned char **g)
{
	size_t idx = hdr & 31;          /* H_IDX, unsigned */
	const struct area_ref *ar = &meta_areas[H_AREA(hdr)];
	struct meta_area *a = ar->recs;
	if (unlikely(!a)) return 0;
	/* the slot's generation: the area's array, 32 bytes a record */
	*g = ar->gens + (H_REC_OFF(hdr) >> 1) + idx;
	struct meta *m = (struct meta *)((char *)a + H_REC_OFF(hdr));
	if (unlikely(idx >= m->cnt)) return 0;
	*sc = m->sc;                    /* < 256: within class_stride */
	*stride = class_stride[*sc];
	uint32_t free_bits = __atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
			     atomic_load_explicit(&m->remote, memory_order_relaxed);
	return likely((size_t)(p - GROUP_HDR - m->mem) == idx * *stride) && likely(*stride) &&
	       likely(!(free_bits >> idx & 1));
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
 * is 0 (class_stride[SC_LARGE]), so large and aligned objects, like any
 * pointer that fails a check, fall to free_general. */
EXPORT void free(void *ptr)
{
	unsigned char *p = ptr;
	/* NULL (page offset 0) and the starts of large objects (offset UNIT
	 * or 0) share one test */
	if (unlikely(((uintptr_t)p & (PAGE - 1)) <= GROUP_HDR)) {
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
	size_t stride, sc, slack;
	unsigned char *g;
	if (unlikely(!small_record(p, hdr, &sc, &stride, &g))) goto general;
	size_t n = verified_size(p, hdr, stride, &slack, g);
	if (unlikely(n == (size_t)-1)) goto general;
	/* the check value: 4 bytes in one load, or the 1..3 bytes of a short
	 * one one by one (the bytes past them may be the next slot's header,
	 * which another thread may be writing) */
	size_t clen = canary_len(slack, H_R(hdr));
	if (likely(clen == 4)) {
		uint32_t c;
		__builtin_memcpy(&c, p + n, 4);
		if (unlikely(c != canary_word(H_TAG(hdr)))) goto general;
		free_checked(p, hdr, n, sc, 0, g);
		return;
	}
	if (clen) {
		if (unlikely(!canary_ok(p + n, H_TAG(hdr), clen))) goto general;
		free_checked(p, hdr, n, sc, 0, g);
		return;
	}
	free_filled(p, hdr, n, sc, stride);
	return;
general:
	free_general(p);
}
EXPORT void free_sized(void *p, size_t n)
{
	struct slot s;
	if (!p) return;
	slot_lookup(p, &s);
	if (s.n != n) fail("size mismatch", p);
	free_slot(&s);
}

EXPORT void free_aligned_sized(void *p, size_t align, size_t n)
{
	struct slot s;
	if (!p) return;
	slot_lookup(p, &s);
	if (align & (align - 1) || (uintptr_t)p & (align - 1)) fail("bad alignment", p);
	if (s.n != n) fail("size mismatch", p);
	free_slot(&s);
}

/* free's checks for a small object (a program that keeps count of its
 * memory, as redis does, asks this for every object it allocates and
 * frees); anything else takes slot_lookup and its diagnosis. */
EXPORT size_t malloc_usable_size(void *ptr)
{
	unsigned char *p = ptr;
	struct slot s;
	if (!p) return 0;
	if (likely(((uintptr_t)p & (PAGE - 1)) > GROUP_HDR)) {
		uint64_t hdr;
		__builtin_memcpy(&hdr, p - SLOT_HDR, sizeof hdr);
		size_t stride, sc, slack, n;
		unsigned char *g;
		if (small_record(p, hdr, &sc, &stride, &g) &&
		    (n = verified_size(p, hdr, stride, &slack, g)) != (size_t)-1 &&
		    (slack ? canary_ok(p + n, H_TAG(hdr), canary_len(slack, H_R(hdr)))
			   : next_header_ok(meta_at_index(H_META(hdr)), p + stride, H_IDX(hdr) + 1,
					    stride - SLOT_HDR)))
			return n;
	}
	slot_lookup(p, &s);
	return s.n;
}
