/* dirty.c - freed big slots keep their pages for a while.
 *
 * A slot of SLOT_PURGE_MIN or more that its owner frees is not given back
 * at once: a program that cycles a few 32..128 KiB buffers would otherwise
 * pay a madvise and a page fault per page on every cycle (the bound is
 * sized so that a few buffers in each big class fit; figures in
 * doc/performance.md).  Instead the slot's bit is set in its group's `dirty` mask and
 * the group is listed in its owner's heap; the pages go back later, in
 * one madvise per run of adjacent free slots:
 * - when the heap's dirty bytes pass DIRTY_MAX, or all heaps' together
 *   pass DIRTY_TOTAL_MAX, or its list is full (the oldest group first; a
 *   heap gives back only its own, so the process-wide bound makes a
 *   thread that frees give back at once while idle threads hold the
 *   rest: many threads cannot keep DIRTY_MAX each);
 * - all of them when the heap releases an emptied group of a big class:
 *   the program frees more big objects than it takes again, it is
 *   shrinking, and what it freed last should not stay (the RSS after a
 *   program frees everything).  Not for small classes' groups, which a
 *   program churning small objects releases all the time, nor for a
 *   class's first group of one slot, which becomes the spare;
 * - when an entry is older than decay_ms, at malloc_slow's decay check;
 * - at malloc_trim; at thread exit, those beyond the budgets (dirty_exit)
 *   and those of groups the heap abandons to the global lists (before it
 *   abandons them: another heap never inherits an entry); an empty
 *   group's entry just leaves the list, its pages going with the group's
 *   span to the pool.  The entries of the groups an exiting heap keeps in
 *   its bundle (abandoned.c) stay listed while the heap is dormant, under
 *   the global lock: the next thread that takes the heap takes its groups
 *   with their pages, instead of faulting in again what the exit gave
 *   back; a group that leaves the bundle otherwise leaves the list first:
 *   adopted by another heap, its entry moves to the adopter's list
 *   (dirty_move); released emptied, it just leaves (dirty_forget).  The
 *   dormant lists decay (bundle_decay) and are purged by malloc_trim like
 *   the others.
 *
 * The current group of a small class, emptied, is kept the same way (all
 * its slots listed), within DIRTY_SMALL_MAX per heap; it goes back whole,
 * and only if it is still empty: once in use again it is just unlisted.
 *
 * Invariants (owner thread only, no lock; a dormant heap's: the lock's):
 * - m->dirty != 0  <=>  m is listed in its owner's h->dirty[] (a bundled
 *   group: in its dormant heap's);
 * - a set bit names a slot that may hold pages; only the slots that are
 *   free in the group (m->avail) when the list is purged are given back:
 *   a slot allocated since (or waiting in the thread cache) is skipped,
 *   since only the owner allocates from m, nothing can take it meanwhile;
 * - h->dirty_bytes is the sum of popcount(m->dirty) * stride over the
 *   list: it overcounts the slots taken again since, which only purges
 *   earlier; dirty_total is the sum of dirty_bytes over the heaps, dormant
 *   ones included (in a forked child, over the forking thread's heap and
 *   the dormant ones: the others are gone);
 * - a listed group that is released leaves the list first (group_release
 *   calls dirty_forget), so that no entry outlives its record;
 * - the list is in the order groups were listed (unlisting shifts the
 *   later entries down), so the oldest is entry 0.  Not by the stamps:
 *   the coarse clock gives many entries the same millisecond, and picking
 *   among them by position after swaps purged newer groups first, and
 *   the peak varied between runs (figures in doc/performance.md).
 */
#include "internal.h"

static _Atomic size_t dirty_total;

/* Add d (negative: remove) to the heap's and the process's kept bytes. */
static void account(struct heap *h, ptrdiff_t d)
{
	h->dirty_bytes += (size_t)d;
	atomic_fetch_add_explicit(&dirty_total, (size_t)d, memory_order_relaxed);
}

/* Take entry i off the list (its group's bits and bytes with it). */
static void unlist(struct heap *h, int i)
{
	struct meta *m = h->dirty[i].m;
	account(h, -(ptrdiff_t)(__builtin_popcount(m->dirty) * class_stride(m->sc)));
	m->dirty = 0;
	h->dirty_n--;
	for (; i < (int)h->dirty_n; i++) h->dirty[i] = h->dirty[i + 1];
}

/* Whether every slot with a byte in the page at lo (from its header to
 * the next slot's) is free in avail, and the page is not the group's
 * first. */
static int page_free(const struct meta *m, uint64_t avail, uintptr_t lo, uint32_t stride)
{
	uintptr_t mem = (uintptr_t)m->mem, page = page_size(), base = mem + GROUP_HDR - SLOT_HDR;
	if (lo < mem + page || lo + page > mem + m->maplen) return 0;
	size_t j = (lo - base) / stride, last = (lo + page - 1 - base) / stride;
	for (; j <= last && j < m->cnt; j++)
		if (!(avail >> j & 1)) return 0;
	return 1;
}

/* Give back the pages of every free slot of m named in m->dirty (one
 * madvise per run of adjacent slots; the page holding the first slot's
 * header stays, since the slot before may be in use), or of the whole
 * group if it is empty; then unlist m (entry i). */
static void purge_entry(struct heap *h, int i)
{
	struct meta *m = h->dirty[i].m;
	uint32_t stride = class_stride(m->sc);
	uint64_t bits = m->dirty & m->avail;
	uintptr_t page = page_size();
	if (m->avail == full_mask(m)) {
		/* all free: every page but the header's, including the first
		 * pages of slots given back one by one before */
		if (m->maplen > page) os_purge(m->mem + page, m->maplen - page);
		bits = 0;
	} else if (stride < SLOT_PURGE_MIN) {
		bits = 0;       /* a kept small group in use again: its slots
		                 * share pages, which stay */
	}
	while (bits) {
		int a = __builtin_ctzll(bits);
		int b = a + __builtin_ctzll(~(bits >> a));      /* run a..b-1 */
		uintptr_t from = page_round((uintptr_t)slot_at(m, (size_t)a));
		uintptr_t end = page_trunc((uintptr_t)slot_at(m, (size_t)b));
		/* the pages a run shares with free neighbours (slot a's header
		 * and the tail of slot a - 1, slot b's header and head) go too:
		 * nothing in them is in use.  A page bigger than the stride
		 * (64 KiB pages, slots of 32..64 KiB) may reach further slots,
		 * or the group's first page: all must be free (page_free) */
		if (a > 0 && page_free(m, m->avail, from - page, stride)) from -= page;
		if (b < m->cnt && page_free(m, m->avail, end, stride)) end += page;
		if (end > from) os_purge((void *)from, end - from);
		bits &= -(1ull << b);
	}
	unlist(h, i);
}

/* Give back the pages of slot idx (object p) of m, which its owner frees
 * with no pages kept (decay_ms=0, the checked paths): its own whole pages
 * from the one after p's header, and the pages it shares with free
 * neighbours (page_free, the slot counted free), like purge_entry.
 * Without the shared ones, a slot's partial pages stayed until its group
 * emptied: up to two pages a slot (of 16 KiB pages, 30 freed slots of
 * 100 KiB between live ones kept 1 MB), and none of a slot at all that
 * lies inside one page (64 KiB pages, 32..64 KiB slots). */
void dirty_purge_slot(struct meta *m, int idx, unsigned char *p)
{
	uint32_t stride = class_stride(m->sc);
	uint64_t avail = m->avail | 1ull << idx;
	uintptr_t page = page_size();
	uintptr_t from = page_round((uintptr_t)p), end = page_trunc((uintptr_t)slot_at(m, (size_t)idx + 1));
	if (page_free(m, avail, from - page, stride)) from -= page;
	if (idx + 1 < m->cnt && page_free(m, avail, end, stride)) end += page;
	if (end > from) os_purge((void *)from, end - from);
}

void dirty_add(struct heap *h, struct meta *m, uint32_t bits)
{
	uint32_t stride = class_stride(m->sc), fresh = bits & ~m->dirty;
	if (!m->dirty) {
		if (h->dirty_n == DIRTY_N) purge_entry(h, 0);
		h->dirty[h->dirty_n++] = (struct dirty_entry){ m, os_now_ms() };
	}
	m->dirty |= bits;
	account(h, (ptrdiff_t)__builtin_popcount(fresh) * stride);
}

/* After the slots dirty_add named are free: keep the heap's dirty bytes
 * within DIRTY_MAX.  (Not in dirty_add: a slot purged before it is free
 * would be skipped, and its pages kept with nothing to give them back.) */
void dirty_trim(struct heap *h)
{
	while (h->dirty_n && (h->dirty_bytes > DIRTY_MAX ||
			      atomic_load_explicit(&dirty_total, memory_order_relaxed) > DIRTY_TOTAL_MAX))
		purge_entry(h, 0);
}

/* An emptied current group of a small class (mapped, over PURGE_MIN):
 * keep its pages, listed with all its slots, if the heap's kept small
 * groups stay within DIRTY_SMALL_MAX; returns 0 if the caller must give
 * them back now.  A program that takes and frees a few hundred small
 * objects per request would otherwise fault these groups in again on
 * every request. */
int dirty_keep_group(struct heap *h, struct meta *m)
{
	size_t kept = group_bytes(m->sc, m->cnt);
	if (m->dirty || !dirty_on()) return 0;
	for (unsigned i = 0; i < h->dirty_n; i++) {
		struct meta *k = h->dirty[i].m;
		if (class_stride(k->sc) < SLOT_PURGE_MIN) kept += group_bytes(k->sc, k->cnt);
	}
	if (kept > DIRTY_SMALL_MAX) return 0;
	dirty_add(h, m, full_mask(m));
	dirty_trim(h);
	return 1;
}

static int entry_of(struct heap *h, struct meta *m)
{
	for (int i = 0; i < (int)h->dirty_n; i++)
		if (h->dirty[i].m == m) return i;
	fail("corrupted metadata", m->mem);     /* dirty set, not listed */
}

/* m (listed in h's list) leaves it with its pages: it is released, its
 * span going to the pool. */
void dirty_forget(struct heap *h, struct meta *m)
{
	unlist(h, entry_of(h, m));
}

/* m (listed in h's list if m->dirty; h the exiting thread's heap) leaves
 * it without its pages: it goes to the global lists. */
void dirty_drop(struct heap *h, struct meta *m)
{
	if (m->dirty) purge_entry(h, entry_of(h, m));
}

/* m, a group of the dormant heap from's bundle that heap to adopts (lock
 * held, to the caller's), takes its kept pages along: from's entry goes,
 * to lists m with the same slots (the caller trims to's list once the
 * lock is let go). */
void dirty_move(struct heap *from, struct heap *to, struct meta *m)
{
	uint32_t bits = m->dirty;
	if (!bits) return;
	unlist(from, entry_of(from, m));
	dirty_add(to, m, bits);
}

/* Purge the entries older than decay_ms, or all of them (all != 0);
 * returns the number of entries purged. */
int dirty_purge(struct heap *h, int all)
{
	int n = 0;
	if (!h->dirty_n) return 0;
	long now = all ? 0 : os_now_ms();
	for (int i = 0; i < (int)h->dirty_n;) {
		if (all || now - h->dirty[i].stamp > opt.decay_ms) purge_entry(h, i), n++;
		else i++;
	}
	return n;
}

/* At h's thread exit (heap_destroy, before its groups are handed back):
 * the entries of groups that are empty, which heap_destroy releases, leave
 * the list with their pages, which go to the span pool with the group's
 * mapping (group_release; the pool bounds them and gives them back in
 * time): purged here, they would be faulted in again by the next thread
 * that takes the span.  The other entries stay, within the budgets
 * (dirty_trim): their groups go to h's bundle with h, and heap_destroy
 * drops the entry of a group it abandons to the global lists instead. */
void dirty_exit(struct heap *h)
{
	for (int i = 0; i < (int)h->dirty_n;) {
		struct meta *m = h->dirty[i].m;
		group_collect_remote(m);
		if (m->avail == full_mask(m)) unlist(h, i);
		else i++;
	}
	dirty_trim(h);
}

/* The forked child has the forking thread only: the other live threads'
 * kept slots stay mapped there, but are nobody's to give back or to
 * count; the dormant heaps' are still listed (fork held the lock). */
void dirty_fork_child(void)
{
	struct heap *h = tl_heap;
	atomic_store_explicit(&dirty_total, (h == &empty_heap ? 0 : h->dirty_bytes) + bundle_dirty_bytes(),
			      memory_order_relaxed);
}
