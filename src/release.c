/* release.c - a freed slot's way back to its group: the owner's bitmap,
 * another thread's remote mask (one atomic operation, or one per group
 * through the remote batch), an abandoned group under the lock; the thread
 * cache's flush, big slots' pages, a nested group's container slot, and
 * the quarantine ring of the checked paths.
 *
 * Quarantine (option quarantine): a freed slot, filled with JUNK_FREE, is
 * parked in a per-thread FIFO of at most Q_CAP slots and opt.quarantine
 * bytes before it goes back to its group; when it leaves, the fill must be
 * intact, so a write after free to a quarantined slot is caught.
 */
#include "internal.h"

/* A mapped group of h's down to one slot in use gives back the whole pages
 * of all the others (but the first: the group header); their headers then
 * read as zero, like those of slots never used. */
static __attribute__((noinline)) void group_purge_sparse(struct meta *m)
{
	uint32_t stride = class_stride(m->sc);
	int live = __builtin_ctz(~m->avail & full_mask(m));
	uintptr_t mem = (uintptr_t)m->mem, page = page_size();
	uintptr_t lo = (uintptr_t)header_of(slot_at(m, (size_t)live)), hi = lo + stride;
	uintptr_t a0 = mem + page, a1 = lo & -page;
	uintptr_t b0 = (hi + page - 1) & -page, b1 = mem + m->maplen;
	if (a1 > a0) os_purge((void *)a0, a1 - a0);
	if (b1 > b0) os_purge((void *)b0, b1 - b0);
}

/* Another thread's slot: one atomic operation on its group, and a hint to
 * the owner's class.  After the fetch_or the owner may release the group
 * and its record: nothing is read from m past that point. */
static inline __attribute__((always_inline)) void slot_release_remote(struct heap *owner,
								  struct meta *m, uint32_t bit)
{
	int sc = m->sc;
	void *mem = m->mem;
	uint32_t old = atomic_fetch_or(&m->remote, bit);
	if (old & bit) fail("double free", mem);
	if (!atomic_load_explicit(&owner->remote_hint[sc], memory_order_relaxed))
		atomic_store_explicit(&owner->remote_hint[sc], 1, memory_order_relaxed);
}

/* Slot bit of m, one of h's own groups, back to its free slots: only h
 * sets bits in its groups' avail masks, so nothing else can have taken
 * the slot meanwhile (slot_release_any, tc_flush). */
static inline __attribute__((always_inline)) void slot_release_own(struct heap *h, struct meta *m, uint32_t bit)
{
	if (m->avail & bit) fail("double free", m->mem);
	m->avail |= bit;
	if (unlikely(m->avail == full_mask(m) || m->in_full)) heap_group_regained(h, m);
}

/* Return slot idx to its group: the owner sets its bit, another thread
 * sets the bit in `remote` with one atomic operation, and a group nobody
 * owns is handled under the lock.  With p (the slot's object, from a free
 * that found h's cache full), a slot of h's own group goes to the cache
 * instead, after a flush of half of it: another thread's slot goes
 * straight back, since a thread that only frees (a consumer) would
 * otherwise pay a flush with a second check of every slot. */
static __attribute__((noinline)) void slot_release_any(struct heap *h, struct meta *m, int idx,
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
			slot_release_own(h, m, bit);
			return;
		}
		if (owner) {
			slot_release_remote(owner, m, bit);
			return;
		}
		if (abandoned_release_slots(m, bit)) return;
	}
}

/* Hand a batch entry's slots over: one atomic operation for a group of
 * another thread, one lock hold for an abandoned group, else slot by slot
 * (a group h adopted meanwhile). */
static __attribute__((noinline)) void remote_batch_flush_entry(struct heap *h, struct remote_batch *e)
{
	struct meta *m = meta_at_index(e->mi);
	uint32_t bits = e->bits;
	e->mi = 0;
	e->bits = 0;
	struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
	if (owner && owner != h) {
		slot_release_remote(owner, m, bits);
		return;
	}
	if (!owner && abandoned_release_slots(m, bits)) return;
	for (; bits; bits &= bits - 1) slot_release_any(h, m, __builtin_ctz(bits), NULL);
}

/* Hand every entry over.  A hand-over can fill entries again (a group it
 * empties is released, and the free of a nested group's slot can be a
 * remote one), hence the passes until none is left. */
void remote_batch_flush(struct heap *h)
{
	for (int again = 1; again;) {
		again = 0;
		for (int i = 0; i < RB_N; i++)
			if (h->rb[i].mi) remote_batch_flush_entry(h, &h->rb[i]), again = 1;
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
__attribute__((noinline)) void slot_release_or_cache(struct heap *h, struct meta *m, int idx, unsigned char *p)
{
	struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
	/* (p and h's own group: to h's cache, still in use) */
	if (!p || owner != h) inuse_add_any(h, -(ptrdiff_t)class_stride(m->sc));
	if (likely(owner != h)) {
		if (unlikely(h == &empty_heap) && !(h = heap_for_free())) {
			if (owner) slot_release_remote(owner, m, 1u << idx);
			else slot_release_any(&empty_heap, m, idx, NULL);
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
			remote_batch_flush_entry(h, e);
		}
		if (e->bits & 1u << idx) fail("double free", m->mem);
		e->bits |= 1u << idx;
		return;
	}
	slot_release_any(h, m, idx, p);
}

/* Return slot idx (object p) to its group.  A slot of SLOT_PURGE_MIN or
 * more holds whole pages: its owner keeps them for a while (dirty.c), so
 * that a program cycling a few big buffers does not fault them in again
 * each time; without keeping (decay_ms=0, the checked paths) the owner
 * gives them back at once, with the pages the slot shares with free
 * neighbours (dirty_purge_slot); any other thread gives back the slot's
 * own whole pages first (while the slot is still allocated, so that its
 * owner cannot take it meanwhile), from the page after p's header on. */
void slot_release_with_pages(struct heap *h, struct meta *m, int idx, unsigned char *p)
{
	uint32_t stride = class_stride(m->sc);
	if (stride < SLOT_PURGE_MIN) {
		slot_release(h, m, idx);
	} else if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h && h != &empty_heap &&
		   dirty_on()) {
		dirty_add(h, m, 1u << idx);
		slot_release(h, m, idx);
		dirty_trim(h);
	} else if (__atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h && h != &empty_heap) {
		/* (the owner: only it takes slots, its neighbours' bits hold) */
		dirty_purge_slot(m, idx, p);
		slot_release(h, m, idx);
	} else {
		uintptr_t end = (uintptr_t)m->mem + GROUP_HDR + (size_t)(idx + 1) * stride;
		uintptr_t from = page_round((uintptr_t)p);
		end = page_trunc(end);
		if (end > from) os_purge((void *)from, end - from);
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
	seal_freed(s.p, ent_at(m->index, (unsigned)s.idx), s.ev);
	inuse_add_any(h, class_stride(m->sc));  /* it did not count (group.c) */
	int sparse = __atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h && m->mapped != MEM_NESTED &&
		     m->maplen >= (64u << 10) && m != h->cur[m->sc] &&
		     __builtin_popcount(m->avail | 1u << s.idx) == m->cnt - 1;
	slot_release_with_pages(h, m, s.idx, s.p);
	if (sparse) group_purge_sparse(m);
}

/* The group of p, a freed slot that waited (thread cache, quarantine) and
 * goes back now, and its index in *idx: its stale header must still
 * verify (else something wrote to it after free), and name p's position
 * in a group of class sc (the cache's; -1: the record's). */
static inline struct meta *freed_slot_group(unsigned char *p, int sc, int *idx)
{
	uint64_t hdr = *header_of(p);
	if (!stale_ok(hdr, p, K_LIVE)) fail("write after free", p);
	struct meta *m = meta_at_index(H_META(hdr));
	*idx = (int)H_IDX(hdr);
	if ((sc >= 0 && m->sc != sc) || p != slot_at(m, (size_t)*idx)) fail("corrupted metadata", p);
	return m;
}

/* Return all but the `keep` most recent cached slots of a class.  A
 * slot of one of h's own groups (most of them: a thread frees what it
 * made) of a class below SLOT_PURGE_MIN goes straight back
 * (slot_release_own), the bytes in use down once for the flush; any other
 * slot takes slot_release_with_pages. */
void tc_flush(struct heap *h, int sc, int keep)
{
	int k = (int)tc_count(h, sc), out = k - keep;
	void **slots = tc_bottom(h, sc) + 1;
	size_t emptied = h->emptied, stride = class_stride(sc), own = 0;
	for (int i = 0; i < out; i++) {
		unsigned char *p = slots[i];
		int idx;
		struct meta *m = freed_slot_group(p, sc, &idx);
		if (likely(stride < SLOT_PURGE_MIN && __atomic_load_n(&m->owner, __ATOMIC_RELAXED) == h)) {
			slot_release_own(h, m, 1u << idx);
			own += stride;
		} else {
			slot_release_with_pages(h, m, idx, p);
		}
		/* groups are emptying: the program is freeing, not churning, so
		 * let the cache pin no group (this flush returns everything) */
		if (i == out - 1 && h->emptied != emptied && out < k) out = k, keep = 0;
	}
	for (int i = 0; i < keep; i++) slots[i] = slots[out + i];
	h->tc_top[sc] = (uint32_t)(tc_bottom_off(sc) + keep * sizeof(void *));
	if (own) inuse_add(h, -(ptrdiff_t)own);
}

void quarantine_drain(struct heap *h, size_t keep_bytes)
{
	while (h->q_count && (h->q_bytes > keep_bytes || h->q_count == Q_CAP)) {
		unsigned char *p = h->quar[h->q_head];
		size_t n = (size_t)h->quar[Q_CAP + h->q_head];
		h->q_head = (h->q_head + 1) % Q_CAP;
		h->q_count--;
		int idx;
		struct meta *m = freed_slot_group(p, -1, &idx);
		h->q_bytes -= n;
		for (size_t i = 0; i < n; i++)
			if (p[i] != JUNK_FREE) fail("write after free", p);
		slot_release(h, m, idx);
	}
}

/* Park the freed slot p (n bytes, filled with JUNK_FREE) in h's ring. */
void quarantine_push(struct heap *h, unsigned char *p, size_t n)
{
	unsigned k = (h->q_head + h->q_count) % Q_CAP;
	h->quar[k] = p;
	h->quar[Q_CAP + k] = (void *)n;   /* its junk-filled bytes, checked at the exit */
	h->q_count++;
	h->q_bytes += n;
	quarantine_drain(h, opt.quarantine);
}
