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

/* A slot taken from a group's bitmap must really be free: its header is
 * zero (never used, or its pages given back), a freed one, or the voided
 * start of an aligned object.  A live header there means the bitmap was
 * rewritten (or the slot freed without passing free). */
#ifdef __clang__
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
static NOIPA __attribute__((cold)) void *slot_not_free(void *p);

/* Take slot idx of m, whose free slots are a (the owner's m->avail):
 * the header first, then the bit, with release order, so that a thread
 * that reads the bit cleared then reads the header written (a zero header
 * of a slot in use is an overflow: next_header_ok in free.c).
 * m comes from the heap's ring, which is ordinary memory: it must be the
 * record that its own index names through the read-only area table, so
 * that a rewritten group pointer cannot make malloc follow a record
 * forged outside the meta areas. */
static inline __attribute__((always_inline)) void *enframe_inline(struct meta *m, uint32_t a, int idx,
								  size_t n)
{
	uint32_t mi = m->index & ((MAX_AREAS << AREA_SHIFT) - 1);
	if (unlikely(meta_at_index(mi) != m)) return slot_not_free(m);
	unsigned char *p = m->mem + GROUP_HDR + (size_t)idx * class_stride[m->sc];
	uint64_t old = *header_of(p);
	if (unlikely(old != 0) && unlikely(!freed_ok(old, p)) && !sealed(old, p, 0, K_VOID))
		return slot_not_free(p);
	frame(p, m->index, idx, n, class_room[m->sc], K_LIVE, *gen_at(m->index, idx));
	__atomic_store_n(&m->avail, a & ~(1u << idx), __ATOMIC_RELEASE);
	return p;
}

void *enframe(struct meta *m, uint32_t a, int idx, size_t n)
{
	return enframe_inline(m, a, idx, n);
}

/* Not known to the compiler as noreturn (noipa), so that the call is a
 * jump and malloc's fast path needs no stack frame. */
static NOIPA __attribute__((cold)) void *write_after_free(void *p)
{
	fail("write after free", p);
}

static NOIPA __attribute__((cold)) void *slot_not_free(void *p)
{
	fail("corrupted metadata", p);
}

/* Reuse the slot on top of the thread cache (p, at top): its freed header
 * must still verify (else something wrote to it after free); the slot
 * index and record it names are kept. */
static inline __attribute__((always_inline)) void *tc_pop(struct heap *h, size_t sc, unsigned top,
							   unsigned char *p, size_t n)
{
	h->tc_top[sc] = (uint32_t)(top - sizeof(void *));     /* first: h and top die here */
	uint64_t freed = *header_of(p);
	uint32_t mi = H_META(freed);
	/* the header may have been rewritten: its record index must name an
	 * area before the generation is read */
	const unsigned char *gens = meta_areas[mi >> AREA_SHIFT].gens;
	if (unlikely(!gens)) return write_after_free(p);
	unsigned gen = gens[(size_t)(mi & (AREA_RECS - 1)) * GENS_PER_REC + H_IDX(freed)];
	if (unlikely(H_R(freed)) || unlikely(H_TAG(freed) != mac(freed & H_LOW, p, 0, K_FREED, gen)))
		return write_after_free(p);
	frame(p, mi, H_IDX(freed), n, class_room[sc], K_LIVE, gen);
	return p;
}

static inline __attribute__((always_inline)) void *alloc_class(size_t sc, size_t n)
{
	struct heap *h = tl_heap;
	unsigned top = h->tc_top[sc];
	unsigned char *p = *tc_at(h, top);  /* NULL: the sentinel, empty */
	if (likely(p)) return tc_pop(h, sc, top, p, n);
	if (unlikely(opt_slow)) return malloc_hardened(n, (int)sc);
	struct meta *m = h->cur[sc];
	uint32_t a = m->avail;
	if (likely(a)) return enframe_inline(m, a, __builtin_ctz(a), n);
	return malloc_slow(n, (int)sc);
}

static inline __attribute__((always_inline)) void *alloc_fast(size_t n)
{
	return alloc_class(size_to_class(n), n);
}

void *alloc_small(size_t n)
{
	return alloc_fast(n);
}

static void full_push(struct heap *h, int sc, struct meta *m)
{
	m->in_full = 1;
	m->prev = 0;
	m->next = h->full[sc];
	if (m->next) m->next->prev = m;
	h->full[sc] = m;
}

static void full_remove(struct heap *h, int sc, struct meta *m)
{
	if (m->prev) m->prev->next = m->next;
	else h->full[sc] = m->next;
	if (m->next) m->next->prev = m->prev;
	m->in_full = 0;
	m->next = m->prev = 0;
}

/* Move groups that other threads freed slots into back to the ring. */
static void reclaim_remote(struct heap *h, int sc)
{
	for (struct meta *m = h->full[sc], *nx; m; m = nx) {
		nx = m->next;
		if (atomic_load_explicit(&m->remote, memory_order_relaxed)) {
			m->avail |= atomic_exchange(&m->remote, 0);
			full_remove(h, sc, m);
			ring_insert(h, sc, m);
		}
	}
}

/* Other threads' frees into h's groups of classes that h no longer
 * allocates from would wait in their remote masks for good (only this
 * thread takes them, when it needs a group of the class): every
 * DECAY_TICKS malloc_slow calls, each class with a remote hint has them
 * collected, and a group they emptied goes (free_slow_local). */
static void collect_remote(struct heap *h)
{
	for (int sc = 0; sc < NCLASS; sc++) {
		if (!atomic_load_explicit(&h->remote_hint[sc], memory_order_relaxed)) continue;
		atomic_store_explicit(&h->remote_hint[sc], 0, memory_order_relaxed);
		for (struct meta *m = h->full[sc], *nx; m; m = nx) {
			nx = m->next;
			if (atomic_load_explicit(&m->remote, memory_order_relaxed))
				free_slow_local(h, m);
		}
		struct meta *cur = h->cur[sc];
		if (cur == &dummy_meta) continue;
		for (struct meta *m = cur->next, *nx; m != cur; m = nx) {
			nx = m->next;
			if (atomic_load_explicit(&m->remote, memory_order_relaxed))
				free_slow_local(h, m);
		}
	}
}

void *malloc_slow(size_t n, int sc)
{
	struct heap *h = tl_heap;
	if (h == &empty_heap) {
		if (!(h = heap_get())) {
			errno = ENOMEM;
			return 0;
		}
		/* the class table may have been empty when sc was computed */
		sc = size_to_class(n);
		/* the first heap initialised the options: they may need the
		 * checked path (and its meta window) from this call on */
		if (opt_slow) return malloc_hardened(n, sc);
	}
	struct meta *m;
	if (unlikely(++h->slow_ticks % DECAY_TICKS == 0)) {
		large_cache_decay();
		remote_batch_flush(h);
		collect_remote(h);
		dirty_purge(h, 0);
	}
	tc_set_limit(h, sc, tc_default(sc));
	for (;;) {
		/* the ring: collect remote frees, retire exhausted groups */
		while ((m = h->cur[sc]) != &dummy_meta) {
			if (atomic_load_explicit(&m->remote, memory_order_relaxed))
				m->avail |= atomic_exchange(&m->remote, 0);
			if (m->avail) goto found;
			ring_remove(h, sc, m);
			full_push(h, sc, m);
		}
		if (atomic_load_explicit(&h->remote_hint[sc], memory_order_relaxed)) {
			atomic_store_explicit(&h->remote_hint[sc], 0, memory_order_relaxed);
			reclaim_remote(h, sc);
			if (h->cur[sc] != &dummy_meta) continue;
		}
		break;
	}
	if ((m = h->spare[sc])) {
		h->spare[sc] = 0;
	} else if (!(m = group_adopt(h, sc)) && !(m = group_create(h, sc))) {
		errno = ENOMEM;
		return 0;
	}
	ring_insert(h, sc, m);
	h->cur[sc] = m;
found:;
	uint32_t a = m->avail;
	return enframe(m, a, __builtin_ctz(a), n);
}

/* Called by free when a slot went back to a group that was on the full
 * list or became entirely free.  The current group is kept even when empty
 * (hysteresis), but a big one gives its pages back; one other small (or
 * one-slot) empty group per class is kept as a spare, any other empty
 * group is released. */
HIDDEN void free_slow_local(struct heap *h, struct meta *m)
{
	int sc = m->sc;
	if (m->in_full) {
		full_remove(h, sc, m);
		ring_insert(h, sc, m);
	}
	if (atomic_load_explicit(&m->remote, memory_order_relaxed))
		m->avail |= atomic_exchange(&m->remote, 0);
	if (m->avail != full_mask(m)) return;
	h->released++;
	tc_set_limit(h, sc, 0);
	if (m == h->cur[sc]) {
		/* its pages go back now, or from dirty.c's list: a big
		 * class's freed slots are there, a small one's group may go */
		if (m->mapped && m->maplen > PURGE_MIN && !m->dirty &&
		    (class_stride[sc] >= SLOT_PURGE_MIN || !dirty_keep_group(h, m)))
			os_purge(m->mem, m->maplen), m->untouched = full_mask(m);
		return;
	}
	ring_remove(h, sc, m);
	/* the spare: a small group, or a big class's group of one slot (the
	 * first a heap makes: another, bigger, took over when a second
	 * object came, and this one emptying says nothing of shrinking; its
	 * slot's pages are on dirty.c's list, bounded) */
	if (!h->spare[sc] && (group_bytes(sc, m->cnt) <= PURGE_MIN ||
			      (m->cnt == 1 && class_stride[sc] >= SLOT_PURGE_MIN))) {
		h->spare[sc] = m;
		return;
	}
	h->ngroups[sc]--;
	group_release(m);       /* (unlists m first: its pages go with it) */
	/* a heap that releases a group of a big class is shrinking: its other
	 * kept slots go too (not for small groups, which a program that
	 * churns small objects releases all the time) */
	if (class_stride[sc] >= SLOT_PURGE_MIN) dirty_purge(h, 1);
}

/* A request of POPULATE_MIN (8 KiB) or more whose slot's pages are not
 * resident may have them populated in one call (os_populate), which costs
 * less than a page fault per page at first touch.  Not resident: for a
 * class of SLOT_PURGE_MIN and up, a slot whose bit is clear in m->dirty
 * (never used, or its pages given back: dirty.c); below that, where a slot
 * keeps its pages while its group lives, a slot not handed out since its
 * group was mapped or given back (m->untouched).  A slot from the thread
 * cache was just freed and is resident.  Large requests up to
 * POPULATE_MAX, in a new mapping, too (large.c).
 *
 * Only if the program writes what it asks for: one that takes 64 KiB
 * buffers and fills a page of each would have 16 times the memory
 * resident.  So a heap probes: a request of 12 KiB or more is left alone,
 * every one while the verdict is off and one in POP_PROBE while it is on,
 * and at the heap's next such request a look at it tells whether the
 * program wrote it meanwhile (pages never written read as zeros; while the
 * verdict is on, a probe has all its pages populated but the two it
 * samples); the verdict turns on after a probe found written, and off
 * after one that did not (then three written probes turn it on again).
 * calloc writes all of it anyway.  (No mincore, whose call a service's
 * system call filter may not allow: systemd's @system-service leaves it
 * out.)
 *
 * The probe stays mapped while it is named: only its owner thread releases
 * its group (group_release forgets it then); a probe freed meanwhile reads
 * as whatever it held, or zeros, and only tips the verdict to "off"; one
 * the program made PROT_NONE is not read (os_readable) and reads as "off". */
#define POP_PROBE 8

/* A line of the middle page and one of the last page of the probe's
 * request hold something other than zeros.  Read only if they can be
 * read: the program may have made them PROT_NONE (os_readable). */
/* The probe's sample pages: the middle and the last whole page of [p, p + n). */
static void probe_pages(const unsigned char *p, size_t n, uintptr_t *mid, uintptr_t *last)
{
	uintptr_t a = page_round((uintptr_t)p), b = ((uintptr_t)p + n) & -(uintptr_t)PAGE;
	*mid = a + (b - a) / PAGE / 2 * PAGE;
	*last = b - PAGE;
}

static __attribute__((noinline)) int probe_written(const unsigned char *p, size_t n)
{
	uintptr_t m, l;
	probe_pages(p, n, &m, &l);
	const uint64_t *mid = (const uint64_t *)m, *last = (const uint64_t *)l;
	uint64_t x = 0, y = 0;
	if (!os_readable(mid, l + PAGE - m)) return 0;
	for (int i = 0; i < 8; i++) x |= mid[i], y |= last[i];
	return x && y;
}

static void probe_read(struct heap *h)
{
	if (probe_written(h->probe, h->probe_n)) {
		if (h->pop_score < 2) h->pop_score++;
	} else {
		h->pop_score = -2;
	}
	h->probe = 0;
}

/* p, n bytes, has no resident page yet: populate it, or (a slot) make it
 * the probe.  how: FRESH_SLOT, FRESH_ZEROED (calloc), FRESH_LARGE.  room:
 * a slot's room (0 for large), whose last 4 bytes hold the slack word
 * that malloc writes when the slack is 7 bytes or more: its page is
 * populated with the others. */
void fresh_pages(void *p, size_t n, size_t room, int how)
{
	struct heap *h = tl_heap;
	if (h == &empty_heap || opt_slow || !opt.populate) return;
	if (h->probe) probe_read(h);
	/* the pages of the header and of the check byte too */
	unsigned char *from = (unsigned char *)p - SLOT_HDR, *to = (unsigned char *)p + n + (room ? 4 : 1);
	uintptr_t word = room >= n + H_R_ESC ? ((uintptr_t)p + room - 4) & -(uintptr_t)PAGE : 0;
	if (word < page_round((uintptr_t)to)) word = 0;        /* on the last page already */
	if (how == FRESH_ZEROED || (h->pop_score > 0 && (how == FRESH_LARGE || ++h->big_n % POP_PROBE))) {
		os_populate(from, (size_t)(to - from));
		if (word) os_populate((void *)word, PAGE);
	} else if (how == FRESH_SLOT && n >= 3 * PAGE) {
		/* while the verdict is on, all but the two sample pages */
		if (h->pop_score > 0) {
			uintptr_t mid, last;
			probe_pages(p, n, &mid, &last);
			os_populate(from, mid - (uintptr_t)from);
			if (last > mid + PAGE) os_populate((void *)(mid + PAGE), last - mid - PAGE);
			os_populate((void *)(last + PAGE), (uintptr_t)to - last - PAGE);
			if (word) os_populate((void *)word, PAGE);
		}
		h->probe = p;
		h->probe_n = (uint32_t)n;
	}
}

/* A new group of a class below POPULATE_MIN in fresh pages, not the
 * class's first: the program filled one, and will hand out this one's
 * slots too, which would fault its pages in one by one (bench frag: 7 000
 * faults).  Populated at once if the verdict is on. */
void fresh_group(struct heap *h, struct meta *m)
{
	if (opt_slow || !opt.populate || h->pop_score <= 0) return;
	os_populate(m->mem, m->maplen);
	m->untouched = 0;
}

/* Slot i of m has no resident page (see above); the test forgets an
 * untouched slot's mark, as it is handed out now. */
static int slot_fresh(struct meta *m, int i)
{
	uint32_t bit = 1u << i;
	if (class_stride[m->sc] >= SLOT_PURGE_MIN) return !(m->dirty & bit);
	int fresh = (m->untouched & bit) != 0;
	m->untouched &= ~bit;
	return fresh;
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
		p = m->mem + GROUP_HDR + (size_t)i * class_stride[sc];
		if (slot_fresh(m, i)) fresh_pages(p, n, class_room[sc], how);
		enframe_inline(m, a, i, n);
	} else {
		/* a slot from the thread cache is resident; one from a group
		 * that malloc_slow found or made is looked at afterwards
		 * (not with the checked paths: protect_meta keeps m
		 * read-only here) */
		p = alloc_class(sc, n);
		if (p && !cached && !opt_slow) {
			uint64_t hdr = *header_of(p);
			if (slot_fresh(meta_at_index(H_META(hdr)), H_IDX(hdr))) fresh_pages(p, n, class_room[sc], how);
		}
	}
	if (p && zero) memset(p, 0, n);
	return p;
}

EXPORT void *malloc(size_t n)
{
	/* the sizes of the class table first: one comparison */
	if (likely(n <= TABLE_MAX)) return alloc_class(table_class(n), n);
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
