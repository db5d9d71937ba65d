/* large.c - objects above MAX_SMALL: one mapping each (span.c keeps the
 * freed ones for reuse).
 *
 * Invariants:
 * - a large object has a one-slot meta of class SC_LARGE; its user pointer
 *   is mem + UNIT, or for an alignment above UNIT mem + the alignment
 *   (at least MIN_PAGE; a page when it is above the page), and its header
 *   lies inside the mapping; mem is a multiple of the page (os.h), so
 *   p & (MIN_PAGE - 1) is UNIT or 0 whatever the page size: free's fast
 *   path and lookup rely on it (free.c); a MEM_GUARDED one (meta.h) has
 *   guard pages around it: everything past maplen up to the end guard
 *   (rsv_pages, reserved for growth) is PROT_NONE too, so a linear
 *   overflow faults within a page;
 * - growing realloc reserves an eighth more, so that growth by small steps
 *   costs a logarithmic number of mremap calls.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

#define POPULATE_MAX (1u << 20) /* new mappings up to this may be populated */

static void *large_alloc_in_window(size_t n, size_t align, int zero)
{
	/* p is mem + UNIT or a multiple of MIN_PAGE: free's routing and the
	 * tombstone check rely on it (free.c) */
	ensure_init();          /* the page size */
	size_t page = page_size();
	if (align < UNIT) align = UNIT;
	size_t front = align == UNIT ? UNIT : align < MIN_PAGE ? MIN_PAGE : align < page ? align : page;
	if (n > PTRDIFF_MAX - 2 * align - 4 * page) {
		errno = ENOMEM;
		return 0;
	}
	int guard = opt.guard, fresh = 1;
	size_t len = page_round(n + 1 + front);
	unsigned char *base, *p, *origin = 0;
	if (align > page) {
		/* over-map, then trim to [header page, end) (plus the guards) */
		size_t g = guard ? page : 0, big = len + align + 2 * g;
		unsigned char *raw = span_map(big);
		if (!raw) return 0;
		p = (unsigned char *)(((uintptr_t)raw + g + page + align - 1) & -align);
		base = p - page;
		unsigned char *end = (unsigned char *)page_round((uintptr_t)p + n + 1);
		len = end - base;
		if (base - g > raw) os_unmap(raw, base - g - raw);
		if (end + g < raw + big) os_unmap(end + g, raw + big - end - g);
		if (guard) {
			os_guard(base - page, page);
			os_guard(end, page);
		}
		origin = base;
	} else {
		base = guard ? span_map_guarded(len) : span_map_cached(len, &len, &fresh, &origin);
		if (!base) return 0;
		p = base + front;
	}
	os_lock();
	struct meta *m = meta_alloc();
	os_unlock();
	if (!m) {
		guard ? os_unmap_guarded(base, len) : os_unmap(base, len);
		errno = ENOMEM;
		return 0;
	}
	m->mem = base;
	m->origin = origin;
	m->sc = SC_LARGE;
	m->cnt = 1;
	m->mapped = guard ? MEM_GUARDED : MEM_MAPPED;
	m->maplen = len;
	m->size = n;
	if (fresh && !guard && !zero && n <= POPULATE_MAX) fresh_pages(p, n, 0, FRESH_LARGE);
	*(uint32_t *)base = m->index;
	if (zero && !fresh) memset(p, 0, n);
	else if (!zero && opt.junk) memset(p, 0xa5, n);
	frame_large(p, m->index, n, m->maplen - (size_t)(p - m->mem));   /* room: >= n + 1 */
	os_inuse_add((ptrdiff_t)m->maplen);
	return p;
}

static void large_free_in_window(struct meta *m)
{
	unsigned char *mem = m->mem, *origin = m->origin;
	size_t len = m->maplen;
	int guarded = m->mapped == MEM_GUARDED;
	os_inuse_add(-(ptrdiff_t)len);
	if (guarded) len += (size_t)m->rsv_pages * page_size();
	*(uint32_t *)mem = 0;
	os_lock();
	meta_free(m);
	os_unlock();
	if (guarded) os_unmap_guarded(mem, len);
	else span_unmap_cached(mem, len, origin);
}

static void *large_realloc_in_window(struct slot *s, size_t n)
{
	struct meta *m = s->meta;
	size_t off = s->p - m->mem, page = page_size();
	if (n > PTRDIFF_MAX - 2 * page - off - n / 8) {
		errno = ENOMEM;
		return 0;
	}
	size_t len = page_round(off + n + 1);
	unsigned char *mem = m->mem;
	if (m->mapped == MEM_GUARDED) {
		/* guard pages cannot follow an mremap: grow into the reserve,
		 * else move to a new guarded mapping with an eighth in reserve;
		 * a shrink gives its pages to the reserve */
		size_t rsv = (size_t)m->rsv_pages * page;
		if (len > m->maplen + rsv) {
			size_t total = page_round(off + n + 1 + n / 8);
			mem = span_map_guarded(total);
			if (!mem) return 0;
			memcpy(mem, m->mem, off + m->size);     /* index word, header, data */
			os_guard(mem + len, total - len);
			tomb_set(s->p);
			os_unmap_guarded(m->mem, m->maplen + rsv);
			rsv = total - len;
		} else if (len > m->maplen) {
			if (os_unguard(mem + m->maplen, len - m->maplen))
				return 0;       /* realloc falls back to a copy */
			rsv -= len - m->maplen;
		} else {
			os_decommit(mem + len, m->maplen - len);
			rsv += m->maplen - len;
		}
		m->rsv_pages = rsv / page;
	} else if (len > m->maplen) {
		len = page_round(off + n + 1 + n / 8);
		tomb_set(s->p);         /* the old address dies if the mapping moves */
		mem = span_remap(m->mem, m->maplen, len);
		if (!mem) {
			tomb_clear(s->p, 1);
			return 0;
		}
	} else if (n < m->size && len + len / 4 < m->maplen && m->mapped != MEM_GUARDED) {
		os_unmap(mem + len, m->maplen - len);  /* shrink by a lot: give back */
	} else {
		len = m->maplen;
	}
	unsigned char *p = mem + off;
	os_inuse_add((ptrdiff_t)len - (ptrdiff_t)m->maplen);
	if (mem != m->mem) m->origin = mem;     /* moved: a mapping of its own */
	m->mem = mem;
	m->maplen = len;
	m->size = n;
	frame_large(p, m->index, n, m->maplen - (size_t)(p - m->mem));   /* room: >= n + 1 */
	return p;
}

/* The entry points, inside a meta window when protect_meta is on. */
void *large_alloc(size_t n, size_t align, int zero)
{
	ensure_init();
	int w = meta_open();
	void *p = large_alloc_in_window(n, align, zero);
	meta_close(w);
	if (unlikely(heap_map_armed)) heap_map_poll();
	return p;
}

void large_free(struct meta *m)
{
	int w = meta_open();
	large_free_in_window(m);
	meta_close(w);
}

void *large_realloc(struct slot *s, size_t n)
{
	int w = meta_open();
	void *p = large_realloc_in_window(s, n);
	meta_close(w);
	if (unlikely(heap_map_armed)) heap_map_poll();
	return p;
}
