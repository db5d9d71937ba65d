/* aligned.c - aligned_alloc, posix_memalign, memalign, valloc, pvalloc.
 *
 * A small aligned object takes a slot big enough for n + align - UNIT bytes
 * and moves its user pointer (and header) up to the first aligned address
 * inside the slot; its header (of kind K_SLOW) still names the group
 * and the slot, and the slot's own start header is voided (a header of
 * kind K_VOID), so that it cannot be freed.  Alignments the
 * classes cannot hold go to their own mapping, trimmed so that the waste
 * stays below the alignment.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include "internal.h"

void *alloc_aligned(size_t align, size_t n)
{
	if (align <= UNIT) return malloc(n);
	if (n > PTRDIFF_MAX || align > PTRDIFF_MAX / 2) {
		errno = ENOMEM;
		return 0;
	}
	/* one byte more than the object can need: it always has its check byte */
	if (align > 65536 || n + align - UNIT + 1 > MAX_SMALL) return large_alloc(n, align, 0);
	unsigned char *q = alloc_small(n + align - UNIT + 1);
	if (!q) return 0;
	uint64_t hdr = *header_of(q);
	struct meta *m = meta_at_index(H_META(hdr));
	unsigned char *p = (unsigned char *)(((uintptr_t)q + align - 1) & -align);
	size_t room = class_room(m->sc) - (size_t)(p - q);
	/* the slot's start keeps a header of its own kind (void): a free of q
	 * fails, and the slot reads as not live (malloc, stats) */
	unsigned idx = H_IDX(hdr);
	if (p != q) header_store(q, seal_void(H_META(hdr), idx, q));
	frame(p, H_META(hdr), idx, m->sc, n, room, p != q ? K_SLOW : K_LIVE);
	return p;
}

static int bad_align(size_t a)
{
	return a == 0 || (a & (a - 1));
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (bad_align(align)) {
		errno = EINVAL;
		return 0;
	}
	return alloc_aligned(align, n);
}

EXPORT int posix_memalign(void **res, size_t align, size_t n)
{
	if (bad_align(align) || align < sizeof(void *)) return EINVAL;
	int e = errno;
	void *p = alloc_aligned(align, n);
	errno = e;              /* the error is the return value only */
	if (!p) return ENOMEM;
	*res = p;
	return 0;
}

EXPORT void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}

EXPORT void *valloc(size_t n)
{
	ensure_init();          /* the page size */
	return alloc_aligned(page_size(), n);
}

EXPORT void *pvalloc(size_t n)
{
	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return 0;
	}
	ensure_init();          /* the page size */
	return alloc_aligned(page_size(), n ? page_round(n) : page_size());
}
