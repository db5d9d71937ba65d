/* populate.c - whether a fresh slot's pages are faulted in at once: the
 * probe and its verdict, fresh_pages, fresh_group.  slot_fresh, which says
 * whether a slot's pages are fresh, is inline in heap.h (alloc_paged).
 *
 * A request of POPULATE_MIN (8 KiB) or more whose slot's pages are not
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
 * the program made PROT_NONE is not read (os_readable) and reads as "off".
 */
#include "internal.h"

#define POP_PROBE 8

/* The probe's sample pages: the middle and the last whole page of [p, p + n). */
static void probe_pages(const unsigned char *p, size_t n, uintptr_t *mid, uintptr_t *last)
{
	uintptr_t page = page_size(), a = page_round((uintptr_t)p), b = page_trunc((uintptr_t)p + n);
	*mid = a + (b - a) / page / 2 * page;
	*last = b - page;
}

/* A line of the middle page and one of the last page of the probe's
 * request hold something other than zeros.  Read only if they can be
 * read: the program may have made them PROT_NONE (os_readable). */
static __attribute__((noinline)) int probe_written(const unsigned char *p, size_t n)
{
	uintptr_t m, l;
	probe_pages(p, n, &m, &l);
	const uint64_t *mid = (const uint64_t *)m, *last = (const uint64_t *)l;
	uint64_t x = 0, y = 0;
	if (!os_readable(mid, l + page_size() - m)) return 0;
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
 * a slot's room (0 for large): a slot's check value is up to 4 bytes. */
void fresh_pages(void *p, size_t n, size_t room, int how)
{
	struct heap *h = tl_heap;
	if (h == &empty_heap || opt_slow || !opt.populate) return;
	if (h->probe) probe_read(h);
	/* the pages of the header and of the check byte too */
	unsigned char *from = (unsigned char *)p - SLOT_HDR, *to = (unsigned char *)p + n + (room ? 4 : 1);
	size_t page = page_size();
	if (how == FRESH_ZEROED || (h->pop_score > 0 && (how == FRESH_LARGE || ++h->big_n % POP_PROBE))) {
		os_populate(from, (size_t)(to - from));
	} else if (how == FRESH_SLOT && n >= 3 * page) {
		/* while the verdict is on, all but the two sample pages */
		if (h->pop_score > 0) {
			uintptr_t mid, last;
			probe_pages(p, n, &mid, &last);
			os_populate(from, mid - (uintptr_t)from);
			if (last > mid + page) os_populate((void *)(mid + page), last - mid - page);
			os_populate((void *)(last + page), (uintptr_t)to - last - page);
		}
		h->probe = p;
		h->probe_n = (uint32_t)n;
	}
}

/* A new group of a class below POPULATE_MIN in fresh pages, not the
 * class's first: the program filled one, and will hand out this one's
 * slots too, which would fault its pages in one by one.  Populated at once
 * if the verdict is on. */
void fresh_group(struct heap *h, struct meta *m)
{
	if (opt_slow || !opt.populate || h->pop_score <= 0) return;
	os_populate(m->mem, m->maplen);
	m->untouched = 0;
}
