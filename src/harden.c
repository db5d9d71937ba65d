/* harden.c - the opt-in checked paths (MALLOCNG_OPTIONS junk, zero_free,
 * random, quarantine; the `hardened` preset).
 *
 * When any of them is on, thread caches are disabled (tc_limit 0), so every
 * malloc that is not served by the cache reaches malloc_hardened and every
 * free reaches free_hardened; the default fast paths carry no test for them.
 *
 * Quarantine: a freed slot is filled with JUNK_FREE and parked in a
 * per-thread FIFO of at most Q_CAP slots and opt.quarantine bytes before it
 * goes back to its group; when it leaves, the fill must be intact, so a
 * write after free to a quarantined slot is caught.
 */
#include <string.h>
#include "internal.h"

#define JUNK_ALLOC 0xa5
#define JUNK_FREE 0x5a

static uint64_t next_random(struct heap *h)
{
	uint64_t x = h->rng;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return h->rng = x;
}

void *malloc_hardened(size_t n, int sc)
{
	int w = meta_open();
	struct heap *h = tl_heap;
	struct meta *m = h->cur[sc];
	unsigned char *p;
	uint32_t a = m->avail;
	if (a && opt.random && h != &empty_heap) {
		int k = __builtin_popcount(a), pick = next_random(h) % k;
		while (pick--) a &= a - 1;
		p = enframe(m, m->avail, __builtin_ctz(a), n);
	} else if (a) {
		p = enframe(m, a, __builtin_ctz(a), n);
	} else {
		p = malloc_slow(n, sc);
	}
	meta_close(w);
	if (p && opt.junk) memset(p, JUNK_ALLOC, n);
	return p;
}

static void release_to_group(struct heap *h, unsigned char *p)
{
	uint64_t hdr = *header_of(p);
	struct meta *m = meta_at_index(H_META(hdr));
	if (p - m->mem != GROUP_HDR + H_IDX(hdr) * class_stride[m->sc]) fail("corrupted metadata", p);
	slot_release(h, m, H_IDX(hdr));
}

void quarantine_drain(struct heap *h, size_t keep_bytes)
{
	while (h->q_count && (h->q_bytes > keep_bytes || h->q_count == Q_CAP)) {
		unsigned char *p = h->quar[h->q_head];
		size_t n = (size_t)h->quar[Q_CAP + h->q_head];
		h->q_head = (h->q_head + 1) % Q_CAP;
		h->q_count--;
		if (!freed_ok(*header_of(p), p)) fail("write after free", p);
		h->q_bytes -= n;
		for (size_t i = 0; i < n; i++)
			if (p[i] != JUNK_FREE) fail("write after free", p);
		release_to_group(h, p);
	}
}

void free_hardened(struct heap *h, struct slot *s)
{
	if (opt.zero_free) memset(s->p, 0, s->n);
	if (h->quar && !s->aligned) {
		memset(s->p, JUNK_FREE, s->n);
		unsigned k = (h->q_head + h->q_count) % Q_CAP;
		h->quar[k] = s->p;
		h->quar[Q_CAP + k] = (void *)s->n;   /* the freed header has no size */
		h->q_count++;
		h->q_bytes += s->n;
		quarantine_drain(h, opt.quarantine);
		return;
	}
	if (opt.junk && !opt.zero_free) memset(s->p, JUNK_FREE, s->n);
	slot_release(h, s->meta, s->idx);
}
