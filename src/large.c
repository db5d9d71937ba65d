/* large.c - objects above MAX_SMALL: one mapping each.
 *
 * Invariants:
 * - a large object has a one-slot meta of class SC_LARGE; its user pointer
 *   is mem + UNIT (or, aligned beyond a page, mem + PAGE) and its header
 *   lies inside the mapping; mapped == 2 means guard pages surround it:
 *   everything past maplen up to the end guard (rsv_pages, reserved for
 *   growth) is PROT_NONE too, so a linear overflow faults within a page;
 * - freed mappings may wait in a small cache (at most CACHE_SLOTS entries,
 *   CACHE_BYTES in all) for reuse; an entry older than decay_ms is unmapped
 *   at the next large operation or small-object slow path (malloc_slow,
 *   every DECAY_TICKS of them per thread), and malloc_trim empties the
 *   cache; an entry is a whole mapping or a part of one (a request takes
 *   the front of a longer entry), and parts of one mapping that lie side
 *   by side in the cache are joined;
 * - growing realloc reserves an eighth more, so that growth by small steps
 *   costs a logarithmic number of mremap calls;
 * - mappings of released groups and of large objects the cache cannot hold
 *   are not unmapped at once.  Up to WARM_BYTES of them (WARM_MT_BYTES
 *   while two heaps or more live; pieces of at most a quarter of that,
 *   joined when they touch, each for at most decay_ms)
 *   keep their pages, warm, for the next group or large object, which
 *   takes the front of one; the others, and warm ones pushed out (the
 *   longest first) or expired, give their pages back (MADV_DONTNEED) and wait, reading
 *   as zeros, on a ring of at most RETIRED spans for reuse: spans that
 *   touch are joined (so a span may cover two mappings: mremap refuses
 *   those, and realloc then copies), a request takes the front of the
 *   smallest that holds it, and map_group maps MAP_CHUNK at a time for
 *   groups below a quarter of that, the rest going to the ring.  A user of a
 *   warm span zeroes what it relies on (group.c: the slot headers; calloc).
 *   A late double free into a retired range meets a zero header, in a warm
 *   one a header marked freed or naming a freed record, and is reported
 *   instead of faulting.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

#define CACHE_SLOTS 8
#define CACHE_BYTES (64u << 20)
#define SPARE_TAIL (2u << 20)   /* a reused mapping may exceed the request by this */
#define POPULATE_MAX (1u << 20) /* new mappings up to this may be populated */

/* A cached span is a whole mapping or a part of one: origin is the start
 * of the mapping it was cut from (one VMA), so that only parts of one
 * mapping are joined again and an mremap of a joined span is valid. */
struct span {
	unsigned char *base, *origin;
	size_t len;
	long stamp;
};

/* Spans kept with their pages for reuse, each for at most decay_ms: at
 * most cap of them and max bytes; the oldest leave first (lock held for
 * every operation).  Two pools: the cache of freed large mappings, and
 * the warm spans (retired with their pages, see retire_span). */
struct pool {
	struct span *s;
	int n, cap;
	size_t bytes, max;
};

static struct span cache_spans[CACHE_SLOTS] COLD_BSS;
static struct pool cache = { cache_spans, 0, CACHE_SLOTS, 0, CACHE_BYTES };

#define RETIRED 256
#define MAP_CHUNK (1u << 20)    /* map_group maps this much for smaller groups */
static unsigned groups_mapped;          /* map_group calls (lock held) */
static struct span *retired;            /* FIFO ring, mapped on first use */
static int retired_head, retired_n;

#define WARM_SLOTS 128
#define BATCH 16        /* spans released per lock hold: stack buffers stay
                         * at 0.5 KiB (a thread's stack may be small) */
#define WARM_BYTES (1u << 20)
#define WARM_MT_BYTES (8u << 20) /* while two heaps or more live */
static struct span warm_spans[WARM_SLOTS] COLD_BSS;
static struct pool warm = { warm_spans, 0, WARM_SLOTS, 0, WARM_BYTES };

static void pool_take(struct pool *p, int i, struct span *out)
{
	*out = p->s[i];
	p->bytes -= out->len;
	p->s[i] = p->s[--p->n];
}

/* Add s (a free entry is there). */
static void pool_add(struct pool *p, struct span s)
{
	p->s[p->n++] = s;
	p->bytes += s.len;
}

/* If s touches *into (ends where it starts or starts where it ends),
 * extend *into over s, keeping the older stamp, and return 1. */
static int span_join(struct span *into, const struct span *s)
{
	if (s->base + s->len != into->base && into->base + into->len != s->base) return 0;
	if (s->base < into->base) into->base = s->base;
	into->len += s->len;
	if (s->stamp < into->stamp) into->stamp = s->stamp;
	return 1;
}

/* Move up to max entries older than decay_ms (all if force) to out[]. */
static int pool_expire(struct pool *p, long now, int force, struct span *out, int max)
{
	int k = 0;
	for (int i = 0; i < p->n && k < max;) {
		if (force || now - p->s[i].stamp > opt.decay_ms) pool_take(p, i, &out[k++]);
		else i++;
	}
	return k;
}

/* Add s, moving the oldest entries to out[] until it fits. */
static int pool_put(struct pool *p, struct span s, struct span *out)
{
	int k = 0;
	while (p->n && (p->n == p->cap || p->bytes + s.len > p->max)) {
		int oldest = 0;
		for (int i = 1; i < p->n; i++)
			if (p->s[i].stamp < p->s[oldest].stamp) oldest = i;
		pool_take(p, oldest, &out[k++]);
	}
	pool_add(p, s);
	return k;
}

/* Lock held: remove ring entry `at` (the newest moves into its place). */
static void retired_drop(int at)
{
	retired[at] = retired[(retired_head + retired_n - 1) % RETIRED];
	retired_n--;
}

/* Lock held: take the best span for len, if any: the front of the
 * smallest warm span that holds it first (no page faults; the rest stays
 * warm), and *dirty says it was warm; else the front of the smallest
 * retired span that holds it (the rest stays retired). */
static int retired_take(size_t len, struct span *out, int *dirty)
{
	int best = -1;
	for (int i = 0; i < warm.n; i++) {
		size_t l = warm.s[i].len;
		if (l >= len && (best < 0 || l < warm.s[best].len)) best = i;
	}
	if (best >= 0) {
		struct span *w = &warm.s[best];
		*out = (struct span){ w->base, w->base, len, w->stamp };
		w->base += len;
		warm.bytes -= len;
		if (!(w->len -= len)) *w = warm.s[--warm.n];
		return *dirty = 1;
	}
	*dirty = 0;
	for (int i = 0; i < retired_n; i++) {
		struct span *s = &retired[(retired_head + i) % RETIRED];
		if (s->len >= len && (best < 0 || s->len < retired[best].len))
			best = (retired_head + i) % RETIRED;
	}
	if (best < 0) return 0;
	*out = (struct span){ retired[best].base, retired[best].base, len, 0 };
	retired[best].base += len;
	if (!(retired[best].len -= len)) retired_drop(best);
	return 1;
}

/* The ring, mapped on first use; 0 if that fails. */
static int retired_ring(void)
{
	if (!__atomic_load_n(&retired, __ATOMIC_ACQUIRE)) {
		struct span *r = span_map(page_round(RETIRED * sizeof *r));
		os_lock();
		if (!retired) __atomic_store_n(&retired, r, __ATOMIC_RELEASE), r = 0;
		os_unlock();
		if (r) os_unmap(r, page_round(RETIRED * sizeof *r));
	}
	return retired != 0;
}

/* Put a span without pages on the ring, joined with the retired spans it
 * touches (the pieces of a mapping cut by map_group, groups mapped side
 * by side), so that the ring holds few long spans; when it is full, the
 * oldest span is unmapped. */
static void retired_put(unsigned char *base, size_t len)
{
	struct span old = { 0 };
	if (!retired_ring()) {
		os_unmap(base, len);
		return;
	}
	struct span s = { base, base, len, 0 };
	os_lock();
	for (int i = 0; i < retired_n;) {
		int at = (retired_head + i) % RETIRED;
		if (span_join(&s, &retired[at])) retired_drop(at);
		else i++;
	}
	if (retired_n == RETIRED) {
		old = retired[retired_head];
		retired_head = (retired_head + 1) % RETIRED;
		retired_n--;
	}
	s.origin = s.base;
	retired[(retired_head + retired_n++) % RETIRED] = s;
	os_unlock();
	if (old.base) os_unmap(old.base, old.len);
}

/* Give a mapping's pages back but keep its addresses reserved for a while. */
static void retire_clean(unsigned char *base, size_t len)
{
	os_purge(base, len);
	retired_put(base, len);
}

static void retire_all(struct span *s, int k)
{
	while (k--) retire_clean(s[k].base, s[k].len);
}

/* Lock held: add s to the warm spans, joined with those it touches (its
 * stamp the oldest of theirs), then move the longest to out[] while the
 * pool is over its bounds: a heap that frees everything releases its
 * groups in no particular order, and spans given back joined cost one
 * madvise (one TLB flush of every core running the process) for what
 * took one per group (mt-churn-2's drain: 765 calls, ~20 ms). */
static int warm_put(struct span s, struct span *out, int room)
{
	int k = 0;
	struct span j;
	for (int i = 0; i < warm.n;) {
		if (span_join(&s, &warm.s[i])) pool_take(&warm, i, &j);
		else i++;
	}
	s.origin = s.base;
	while (warm.n && k < room - 1 && (warm.n == warm.cap || warm.bytes + s.len > warm.max)) {
		int longest = 0;
		for (int i = 1; i < warm.n; i++)
			if (warm.s[i].len > warm.s[longest].len) longest = i;
		if (warm.s[longest].len < s.len) break;     /* s is the longest */
		pool_take(&warm, longest, &out[k++]);
	}
	if (warm.n < warm.cap && warm.bytes + s.len <= warm.max) pool_add(&warm, s);
	else out[k++] = s;
	return k;
}

/* A released mapping (an empty group's, or a large one the cache cannot
 * hold) stays warm if it is at most a quarter of the pool's bound: a
 * program that frees a structure and builds it again refaults less.  The
 * longest warm spans make room; older than decay_ms, they go cold at the
 * next decay check.  The bound is 8 times higher while another thread has
 * a heap: each madvise then also interrupts the cores that run the
 * process's other threads (a TLB shootdown), so a thread that frees what
 * it built should not give it back piece by piece while they run
 * (mt-churn-2: 468 calls -> 18; the first thread's drain 4.0-5.1 ms ->
 * 0.3-2.8 ms with the other thread running; test_warm_spans_threads). */
void retire_span(unsigned char *base, size_t len)
{
	struct span old[BATCH];
	int k = 0;
	if (opt.decay_ms <= 0) {
		retire_clean(base, len);
		return;
	}
	long now = os_now_ms();
	os_lock();
	warm.max = os_count.heaps_live > 1 ? WARM_MT_BYTES : WARM_BYTES;
	if (len > warm.max / 4) {
		os_unlock();
		retire_clean(base, len);
		return;
	}
	k = pool_expire(&warm, now, 0, old, BATCH / 2);
	k += warm_put((struct span){ base, base, len, now }, old + k, BATCH - k);
	os_unlock();
	retire_all(old, k);
}

static void unmap_all(struct span *s, int k)
{
	while (k--) os_unmap(s[k].base, s[k].len);
}

/* Expire cache entries older than decay_ms.  Called by large operations
 * and, every DECAY_TICKS slow paths of a heap, by malloc_slow, so that the
 * cache is given back even when the program stops making large objects. */
void large_cache_decay(void)
{
	struct span old[CACHE_SLOTS], kept[BATCH];
	int k, d;
	do {
		k = d = 0;
		os_lock();
		if (cache.n || warm.n) {
			long now = os_now_ms();
			k = pool_expire(&cache, now, 0, old, CACHE_SLOTS);
			d = pool_expire(&warm, now, 0, kept, BATCH);
		}
		os_unlock();
		unmap_all(old, k);
		retire_all(kept, d);
	} while (d == BATCH);
}

/* Empty the cache and give back the warm spans' pages; with all != 0
 * unmap the retired spans too (when address space runs out).  Returns the
 * number of mappings released.  BATCH at a time. */
int large_cache_trim(int all)
{
	struct span old[BATCH], kept[BATCH];
	int n = 0, k, d;
	do {
		d = 0;
		os_lock();
		k = pool_expire(&cache, 0, 1, old, BATCH);
		if (all) k += pool_expire(&warm, 0, 1, old + k, BATCH - k);
		else d = pool_expire(&warm, 0, 1, kept, BATCH);
		while (all && retired_n && k < BATCH) {
			old[k++] = retired[retired_head];
			retired_head = (retired_head + 1) % RETIRED;
			retired_n--;
		}
		os_unlock();
		unmap_all(old, k);
		retire_all(kept, d);
		n += k + d;
	} while (k == BATCH || d == BATCH);
	return n;
}

/* A mapping of at least len bytes: the smallest cached one that holds it
 * (cut to len when it is longer than the request by more than the slack,
 * the rest staying cached), else grown from the largest cached one, else
 * new. */
static unsigned char *map_span(size_t len, size_t *got, int *fresh, unsigned char **origin)
{
	struct span old[CACHE_SLOTS], s = { 0 };
	int best = -1, big = -1, dirty = 0;
	os_lock();
	int k = pool_expire(&cache, os_now_ms(), 0, old, CACHE_SLOTS);
	for (int i = 0; i < cache.n; i++) {
		size_t l = cache.s[i].len;
		if (l >= len && (best < 0 || l < cache.s[best].len)) best = i;
		if (l < len && (big < 0 || l > cache.s[big].len)) big = i;
	}
	if (best >= 0) {
		pool_take(&cache, best, &s);
		/* the front serves the request and the tail stays cached (a
		 * slot is free: best's); up to the slack it serves growth */
		if (s.len - len > (len / 2 > SPARE_TAIL ? len / 2 : SPARE_TAIL)) {
			pool_add(&cache, (struct span){ s.base + len, s.origin, s.len - len, s.stamp });
			s.len = len;
		}
	} else if (!retired_take(len, &s, &dirty) && big >= 0) {
		pool_take(&cache, big, &s);
	}
	os_unlock();
	unmap_all(old, k);
	*fresh = 0;
	if (s.base && s.len >= len) {
		tomb_clear(s.base, s.len);
		*fresh = best < 0 && !dirty;  /* clean retired spans read as zeros */
		*got = s.len;
		*origin = best < 0 ? s.base : s.origin;
		return s.base;
	}
	if (s.base) {
		unsigned char *p = span_remap(s.base, s.len, len);
		if (p) {
			*got = len;
			*origin = p == s.base ? s.origin : p;
			return p;
		}
		os_unmap(s.base, s.len);
	}
	*got = len;
	*fresh = 1;
	return *origin = span_map(len);
}

/* Memory for a mapped group of at least *len bytes: a retired span (its
 * length returned in *len) or a new mapping; *dirty: it is a warm span,
 * which does not read as zeros. */
unsigned char *map_group(size_t *len, int *dirty)
{
	struct span s;
	os_lock();
	int got = retired_take(*len, &s, dirty), many = ++groups_mapped > 8;
	os_unlock();
	if (!got && many && *len < MAP_CHUNK / 4 && retired_ring()) {
		/* a mapping for this group and the next ones: the rest waits
		 * on the ring (it reads as zeros, like any retired span).  Not
		 * for a program's first groups: the ring costs a page */
		unsigned char *p = span_map(MAP_CHUNK);
		if (p) retired_put(p + *len, MAP_CHUNK - *len);
		return p;
	}
	if (!got) return span_map(*len);
	tomb_clear(s.base, s.len);
	*len = s.len;
	return s.base;
}

/* A freed mapping joins the cached spans next to it (parts of one
 * mapping that map_span cut), then goes to the cache, or is retired. */
static void unmap_span(unsigned char *base, size_t len, unsigned char *origin)
{
	struct span old[CACHE_SLOTS + 1], part;
	long now = os_now_ms();
	struct span s = { base, origin, len, now };
	int k = 0;
	os_lock();
	k = pool_expire(&cache, now, 0, old, CACHE_SLOTS);
	for (int i = 0; i < cache.n;) {
		if (cache.s[i].origin == origin && span_join(&s, &cache.s[i])) pool_take(&cache, i, &part);
		else i++;
	}
	s.stamp = now;
	if (s.len <= CACHE_BYTES / 2 && opt.decay_ms > 0) {
		k += pool_put(&cache, s, old + k);
		s.base = 0;
	}
	os_unlock();
	unmap_all(old, k);
	if (s.base) retire_span(s.base, s.len);
}

static void *large_alloc_unlocked(size_t n, size_t align, int zero)
{
	/* p is mem + UNIT or page aligned: the tombstone check relies on it */
	if (align < UNIT) align = UNIT;
	size_t front = align > UNIT ? PAGE : UNIT;
	if (n > PTRDIFF_MAX - 2 * align - 4 * PAGE) {
		errno = ENOMEM;
		return 0;
	}
	ensure_init();
	int guard = opt.guard, fresh = 1;
	size_t len = page_round(n + 1 + front);
	unsigned char *base, *p, *origin = 0;
	if (align > PAGE) {
		/* over-map, then trim to [header page, end) (plus the guards) */
		size_t g = guard ? PAGE : 0, big = len + align + 2 * g;
		unsigned char *raw = span_map(big);
		if (!raw) return 0;
		p = (unsigned char *)(((uintptr_t)raw + g + PAGE + align - 1) & -align);
		base = p - PAGE;
		unsigned char *end = (unsigned char *)page_round((uintptr_t)p + n + 1);
		len = end - base;
		if (base - g > raw) os_unmap(raw, base - g - raw);
		if (end + g < raw + big) os_unmap(end + g, raw + big - end - g);
		if (guard) {
			os_guard(base - PAGE, PAGE);
			os_guard(end, PAGE);
		}
		origin = base;
	} else {
		base = guard ? span_map_guarded(len) : map_span(len, &len, &fresh, &origin);
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
	m->mapped = guard ? 2 : 1;
	m->maplen = len;
	m->size = n;
	if (fresh && !guard && !zero && n <= POPULATE_MAX) fresh_pages(p, n, 0, FRESH_LARGE);
	*(uint32_t *)base = m->index;
	if (zero && !fresh) memset(p, 0, n);
	else if (!zero && opt.junk) memset(p, 0xa5, n);
	frame_large(p, m->index, n, m->maplen - (size_t)(p - m->mem));   /* room: >= n + 1 */
	return p;
}

static void large_free_unlocked(struct meta *m)
{
	unsigned char *mem = m->mem, *origin = m->origin;
	size_t len = m->maplen;
	int guarded = m->mapped == 2;
	if (guarded) len += (size_t)m->rsv_pages * PAGE;
	*(uint32_t *)mem = 0;
	os_lock();
	meta_free(m);
	os_unlock();
	if (guarded) os_unmap_guarded(mem, len);
	else unmap_span(mem, len, origin);
}

static void *large_realloc_unlocked(struct slot *s, size_t n)
{
	struct meta *m = s->meta;
	size_t off = s->p - m->mem;
	if (n > PTRDIFF_MAX - 2 * PAGE - off - n / 8) {
		errno = ENOMEM;
		return 0;
	}
	size_t len = page_round(off + n + 1);
	unsigned char *mem = m->mem;
	if (m->mapped == 2) {
		/* guard pages cannot follow an mremap: grow into the reserve,
		 * else move to a new guarded mapping with an eighth in reserve;
		 * a shrink gives its pages to the reserve */
		size_t rsv = (size_t)m->rsv_pages * PAGE;
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
		m->rsv_pages = rsv / PAGE;
	} else if (len > m->maplen) {
		len = page_round(off + n + 1 + n / 8);
		tomb_set(s->p);         /* the old address dies if the mapping moves */
		mem = span_remap(m->mem, m->maplen, len);
		if (!mem) {
			tomb_clear(s->p, 1);
			return 0;
		}
	} else if (n < m->size && len + len / 4 < m->maplen && m->mapped != 2) {
		os_unmap(mem + len, m->maplen - len);  /* shrink by a lot: give back */
	} else {
		len = m->maplen;
	}
	unsigned char *p = mem + off;
	if (mem != m->mem) m->origin = mem;     /* moved: a mapping of its own */
	m->mem = mem;
	m->maplen = len;
	m->size = n;
	frame_large(p, m->index, n, m->maplen - (size_t)(p - m->mem));   /* room: >= n + 1 */
	return p;
}

void *span_map(size_t len)
{
	int e = errno;
	void *p = os_map(len);
	if (!p && !os_map_failing() && large_cache_trim(1)) {
		p = os_map(len);
		if (p) errno = e;
	}
	return p;
}

void *span_map_guarded(size_t len)
{
	int e = errno;
	void *p = os_map_guarded(len);
	if (!p && !os_map_failing() && large_cache_trim(1)) {
		p = os_map_guarded(len);
		if (p) errno = e;
	}
	return p;
}

void *span_remap(void *p, size_t old, size_t len)
{
	void *q = os_remap(p, old, len);
	if (!q && !os_map_failing() && large_cache_trim(1)) q = os_remap(p, old, len);
	return q;
}

/* The entry points, inside a meta window when protect_meta is on. */
void *large_alloc(size_t n, size_t align, int zero)
{
	ensure_init();
	int w = meta_open();
	void *p = large_alloc_unlocked(n, align, zero);
	meta_close(w);
	return p;
}

void large_free(struct meta *m)
{
	int w = meta_open();
	large_free_unlocked(m);
	meta_close(w);
}

void *large_realloc(struct slot *s, size_t n)
{
	int w = meta_open();
	void *p = large_realloc_unlocked(s, n);
	meta_close(w);
	return p;
}
