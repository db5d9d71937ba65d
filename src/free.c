/* free.c - validating a pointer, and free.
 *
 * slot_lookup trusts nothing in user memory until it is proven: the slot
 * header must carry a tag that only the secret can produce; the group it
 * names must hold the index of a meta record that exists, lies in an area
 * carrying the secret, and points back at the group; the slot index and
 * the offset must agree with the class; the check byte past the requested
 * size must be intact.  Any failure is fatal.
 */
#include <stdlib.h>
#include "internal.h"

HIDDEN void free_slow_local(struct heap *h, struct meta *m);

struct meta *slot_lookup(void *ptr, struct slot *s)
{
	unsigned char *p = ptr;
	if ((uintptr_t)p & (UNIT - 1)) fail("invalid pointer", p);
	uint64_t hdr = *header_of(p), low = hdr & 0xffffffffffffull;
	if (header_tag(low, p) != (hdr & ~0xffffffffffffull)) fail("invalid pointer", p);
	if (low & H_FREED) fail("double free", p);
	size_t off = (low & 0xffffff) * UNIT, n = (low >> 30) & 0x3ffff;
	int idx = (low >> 24) & 31;
	unsigned char *base = p - off;
	uint32_t mi = *(uint32_t *)base;
	if (mi >= atomic_load_explicit(&meta_limit, memory_order_acquire) ||
	    !(mi & (AREA_RECS - 1)))
		fail("corrupted metadata", p);
	struct meta_area *a = meta_areas[mi >> AREA_SHIFT];
	if (a->check != secret) fail("corrupted metadata", p);
	struct meta *m = (struct meta *)a + (mi & (AREA_RECS - 1));
	if (m->mem != base || idx >= m->cnt) fail("corrupted metadata", p);
	if (m->sc == SC_LARGE) {
		n = m->size;
		if (off < SLOT_HDR || off + n >= m->maplen) fail("corrupted metadata", p);
	} else {
		if (m->sc >= NCLASS) fail("corrupted metadata", p);
		size_t start = GROUP_HDR + (size_t)idx * class_stride[m->sc];
		if (off < start || off + n + OVERHEAD > start + class_stride[m->sc])
			fail("corrupted metadata", p);
	}
	if (p[n] != check_byte(p)) fail("heap overflow", p);
	s->meta = m;
	s->p = p;
	s->n = n;
	s->idx = idx;
	return m;
}

void free_slot(struct slot *s)
{
	struct meta *m = s->meta;
	uint64_t low = (*header_of(s->p) & 0xffffffffffffull) | H_FREED;
	*header_of(s->p) = low | header_tag(low, s->p);
	if (m->sc == SC_LARGE) {
		large_free(m);
		return;
	}
	uint32_t bit = 1u << s->idx;
	struct heap *h = tl_heap;
	for (;;) {
		struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
		if (owner == h) {
			if (m->avail & bit) fail("double free", s->p);
			m->avail |= bit;
			if (unlikely(m->avail == full_mask(m) || m->in_full))
				free_slow_local(h, m);
			return;
		}
		if (owner) {
			uint32_t old = atomic_fetch_or(&m->remote, bit);
			if (old & bit) fail("double free", s->p);
			if (!atomic_load_explicit(&owner->remote_hint[m->sc], memory_order_relaxed))
				atomic_store_explicit(&owner->remote_hint[m->sc], 1, memory_order_relaxed);
			return;
		}
		if (free_abandoned(m, bit)) return;
	}
}

EXPORT void free(void *p)
{
	struct slot s;
	if (!p) return;
	slot_lookup(p, &s);
	free_slot(&s);
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

EXPORT size_t malloc_usable_size(void *p)
{
	struct slot s;
	if (!p) return 0;
	slot_lookup(p, &s);
	return s.n;
}
