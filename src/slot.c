/* slot.c - what a slot is: taking a free one (enframe), and validating a
 * pointer (slot_lookup).  The inline halves, which the entry points build
 * their fast paths from, are in heap.h ("slots").
 *
 * slot_lookup trusts nothing in user memory until it is proven: the slot
 * header must carry a tag that only the secret can produce; the meta index
 * it names must be one we handed out, in an area of the read-only table, of a
 * record in use; the slot index and the position of p in the group must
 * agree with the record's class and slot count; the check byte past the
 * requested size must be intact.  Any failure is fatal.
 */
#include "internal.h"

/* Not known to the compiler as noreturn (noipa), so that the call is a
 * jump and malloc's fast path needs no stack frame.  caller: the return
 * address of the function tc_pop is inlined in (malloc's caller), which
 * the report names unless an entry point's checked path (realloc) has set
 * one (an address inside the library is left out: os.c). */
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
int next_header_ok(const struct meta *m, const unsigned char *q, int nidx, size_t room)
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
			unsigned gf = gen_of_freed(h), g = gen_of(h, q);
			uint64_t low = h & H_LOW;
			size_t n = object_size(q, h, room);
			for (unsigned k = 0; k < 2; k++, g = (unsigned char)(g - 1), gf = (unsigned char)(gf - 1)) {
				if (!H_R(h) && H_TAG(h) == mac(low, q, 0, K_FREED, gf)) return 1;
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
_Noreturn void bad_header(uint64_t hdr, unsigned char *p)
{
	if (!hdr) fail("double free or invalid pointer", p);
	if (freed_ok(hdr, p)) fail("double free", p);
	fail("invalid pointer", p);
}

struct meta *slot_lookup(void *p, struct slot *s)
{
	return lookup(p, s, K_LIVE);
}

