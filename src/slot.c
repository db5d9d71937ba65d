/* slot.c - what a slot is: taking a free one (enframe), and validating a
 * pointer (slot_lookup).  The inline halves, which the entry points build
 * their fast paths from, are in heap.h ("slots").
 *
 * slot_lookup trusts nothing in user memory until it is proven: the slot
 * header must carry a tag that only the secret can produce, with the
 * slot's current generation; the meta index it names must be one we
 * handed out, in an area of the read-only table, of a record in use; the
 * slot index and the position of p in the group must agree with the
 * record's class and slot count; the check value past the requested size
 * must be intact.  Any failure is fatal.
 */
#include "internal.h"

/* Not known to the compiler as noreturn (noipa), so that the call is a
 * jump and malloc's fast path needs no stack frame.  caller: the return
 * address of the function tc_pop is inlined in (malloc's caller), which
 * the report names unless an entry point's checked path (realloc) has set
 * one (an address inside the library is left out: os_proc.c). */
void *write_after_free(void *p, const void *caller)
{
	if (!os_caller) os_caller = caller;
	fail("write after free", p);
}

void *slot_not_free(void *p)
{
	if (!os_caller) CALLER_SET();
	fail("corrupted metadata", p);
}

void *enframe(struct meta *m, uint32_t a, int idx, size_t n)
{
	return enframe_inline(m, a, idx, n);
}

/* An object that fills its slot has no check value: it ends at the next
 * slot's header (at q - SLOT_HDR, q the user pointer of slot nidx of m,
 * or the group's last 8 bytes when nidx == cnt).  That header is genuine
 * for q (live or stale, of any kind), or zero; zero only where the slot is
 * free (in the group's avail or remote masks: never used, or its pages
 * given back) or for the group's last 8 bytes: an overflow that zeroes
 * the header of a slot in use (live, or in a thread cache) is caught, and
 * one that rewrites it cannot forge one.  Another thread may be taking or
 * freeing that slot: the generation read after the header may be one
 * ahead of it (a free between the two loads), a header that changed
 * between two reads, or a zero one of a slot that the owner is taking
 * (its bit cleared, its header not yet written), is read again. */
int next_header_ok(const unsigned char *q, const struct meta *m, int nidx)
{
	const uint64_t *hp = header_of(q);
	for (int tries = 0; tries < 4; tries++) {
		uint64_t h = __atomic_load_n(hp, __ATOMIC_ACQUIRE);
		if (!h) {
			if (nidx >= m->cnt) return 1;
			uint32_t free_bits = __atomic_load_n(&m->avail, __ATOMIC_ACQUIRE) |
					     atomic_load_explicit(&m->remote, memory_order_relaxed);
			if (free_bits >> nidx & 1) return 1;
			/* taken: the header was written before the bit went */
		} else {
			/* the common kinds first: live, then stale (a free
			 * since, or the slot cached), each one tag */
			_Atomic uint32_t *e = ent_of(h);
			uint32_t g = e ? ent_load(e) : 0;
			if (e && (tag_ok(h, q, K_LIVE, E_GBITS(g)) || tag_ok(h, q, K_LIVE, E_GBITS_PREV(g))))
				return 1;
			if (tag_ok(h, q, K_VOID, 0)) return 1;
			for (unsigned k = 0; e && k < 2; k++, g -= E_GEN_ONE)
				if (tag_ok(h, q, K_SLOW, E_GBITS(g)) || tag_ok(h, q, K_CONTAINER, E_GBITS(g)))
					return 1;
		}
		if (__atomic_load_n(hp, __ATOMIC_ACQUIRE) == h) return 0;
	}
	return 0;
}

int slot_free_header(uint64_t old, const unsigned char *p)
{
	/* (the common one first: a stale live header) */
	return stale_ok(old, p, K_LIVE) || tag_ok(old, p, K_VOID, 0) || stale_ok(old, p, K_SLOW) ||
	       stale_ok(old, p, K_CONTAINER);
}

/* Why a header that is not a live one of p's (of kind `kind`) failed:
 * zero, stale (a header of p's last use: its free advanced the
 * generation), or neither. */
_Noreturn void bad_header(uint64_t hdr, unsigned char *p, unsigned kind)
{
	if (!hdr) fail("double free or invalid pointer", p);
	if (stale_ok(hdr, p, kind) || stale_ok(hdr, p, K_LIVE) || stale_ok(hdr, p, K_SLOW) ||
	    stale_ok(hdr, p, K_CONTAINER))
		fail("double free", p);
	fail("invalid pointer", p);
}

struct meta *slot_lookup(void *p, struct slot *s)
{
	return lookup(p, s, K_LIVE);
}

