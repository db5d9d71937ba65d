/* harden.c - the checked free of the opt-in checked paths (MALLOCNG_OPTIONS
 * junk, zero_free, random, quarantine; the `hardened` preset).
 *
 * When any of them is on, thread caches are disabled (tc_limit 0), so every
 * malloc that is not served by the cache reaches malloc_hardened (heap.c,
 * since the core's refill turns to it too) and every free reaches
 * free_hardened; the default fast paths carry no test for them.
 *
 * Quarantine: a freed slot is filled with JUNK_FREE and parked in a
 * per-thread FIFO (release.c) before it goes back to its group.
 */
#include <string.h>
#include "internal.h"

void free_hardened(struct heap *h, struct slot *s)
{
	if (opt.zero_free) memset(s->p, 0, s->n);
	if (h->quar && !s->aligned) {
		memset(s->p, JUNK_FREE, s->n);
		quarantine_push(h, s->p, s->n);
		return;
	}
	if (opt.junk && !opt.zero_free) memset(s->p, JUNK_FREE, s->n);
	slot_release(h, s->meta, s->idx);
}
