/* span.c - address ranges without an owner: the cache of freed large
 * mappings, the warm spans and the retired ring, and mapping with a retry.
 *
 * Invariants:
 * - freed large mappings may wait in a small cache (at most CACHE_SLOTS
 *   entries, CACHE_MT_SLOTS while threaded, CACHE_BYTES in all) for reuse; an entry older than decay_ms is
 *   unmapped at the next large operation or small-object slow path
 *   (malloc_slow, every DECAY_TICKS of them per thread: span_decay), and
 *   malloc_trim empties the cache (span_trim); an entry is a whole mapping
 *   or a part of one (a request takes the front of a longer entry), and
 *   parts of one mapping that lie side by side in the cache are joined;
 * - mappings of released groups and of large objects the cache cannot hold
 *   are not unmapped at once.  Up to WARM_BYTES of them (WARM_MT_BYTES
 *   while two heaps or more live and for decay_ms after a thread exits:
 *   span_heap_left; pieces of at most a quarter of that, joined when they
 *   touch, each for at most decay_ms)
 *   keep their pages, warm, for the next group or large object, which
 *   takes the front of one; the others, and warm ones pushed out (the
 *   longest first) or expired, give their pages back (MADV_DONTNEED) and wait, reading
 *   as zeros, on a ring of at most RETIRED spans for reuse: spans that
 *   touch are joined (so a span may cover two mappings: mremap refuses
 *   those, and realloc then copies), a request takes the front of the
 *   smallest that holds it, and map_group maps MAP_CHUNK at a time for
 *   groups below a quarter of that, the rest going to the caller's heap
 *   (group.c: a heap's spans) or to the ring.  A user of a
 *   warm span zeroes what it relies on (group.c: the slot headers; calloc).
 *   A late double free into a retired range meets a zero header, in a warm
 *   one a header marked freed or naming a freed record, and is reported
 *   instead of faulting;
 * - a mapping that fails is tried again once after span_trim(1) unmapped
 *   every span kept (address space may have run out): span_map,
 *   span_map_guarded, span_remap.  Legal with the global lock held
 *   (heap_get, a protect_meta window): the span lock comes after it.
 * - the span lock (os_span_lock, os_proc.c) guards the three pools: the
 *   cache, the warm spans and the retired ring (retired, retired_head,
 *   retired_n; the ring's pointer is also read without it, acquire, once
 *   set).  It is a leaf: nothing here takes the global lock, and while it
 *   is held nothing is mapped, unmapped or purged (what leaves a pool is
 *   given back after the lock is let go).  Its acquisitions are counted
 *   apart from the global lock's (os_count.span_lock_taken).  Fork:
 *   os_proc.c's handlers take it after the global lock and reset it in
 *   the child, whose pools hold what the parent's held.
 */
#include <errno.h>
#include "internal.h"

#define CACHE_SLOTS 8
#define CACHE_MT_SLOTS 64 /* while threaded (below): threads that end together
                           * free dozens of large objects at once, which the
                           * next ones make again */
#define CACHE_BYTES (64u << 20)
#define SPARE_TAIL (2u << 20)   /* a reused mapping may exceed the request by this */

/* A cached span is a whole mapping or a part of one: origin is the start
 * of the mapping it was cut from (one VMA), so that only parts of one
 * mapping are joined again and an mremap of a joined span is valid. */
struct span {
	unsigned char *base, *origin;
	size_t len;
	long stamp;
};

/* Spans kept with their pages for reuse, each for at most decay_ms: at
 * most cap of them and max bytes; the oldest leave first (span lock held
 * for every operation).  Two pools: the cache of freed large mappings, and
 * the warm spans (retired with their pages, see span_retire). */
struct pool {
	struct span *s;
	int n, cap;
	size_t bytes, max;
};

static struct span cache_spans[CACHE_MT_SLOTS] COLD_BSS;
static struct pool cache = { cache_spans, 0, CACHE_SLOTS, 0, CACHE_BYTES };

#define RETIRED 256
#define MAP_CHUNK (1u << 20)    /* map_group maps this much for smaller groups */
static struct span *retired;            /* FIFO ring, mapped on first use */
static int retired_head, retired_n;

#define WARM_SLOTS 128
#define BATCH 16        /* spans released per lock hold: stack buffers stay
                         * at 0.5 KiB (a thread's stack may be small) */
#define WARM_BYTES (1u << 20)
#define WARM_MT_BYTES (16u << 20) /* while two heaps or more live, and after */
/* Until when (os_now_ms) the pool keeps WARM_MT_BYTES after a heap's
 * thread exited (span_heap_left, under the global lock; read under the
 * span lock: a relaxed atomic). */
static _Atomic long mt_until;

/* Span lock held: whether the pools take their threaded bounds (WARM_MT_BYTES,
 * CACHE_MT_SLOTS): two heaps or more live, or one exited within decay_ms
 * (span_heap_left). */
static int threaded(long now)
{
	return atomic_load_explicit(&os_count.heaps_live, memory_order_relaxed) > 1 ||
	       (now < atomic_load_explicit(&mt_until, memory_order_relaxed) && !opt_slow);
}
static struct span warm_spans[WARM_SLOTS] COLD_BSS;
static struct pool warm = { warm_spans, 0, WARM_SLOTS, 0, WARM_BYTES };

/* warm.bytes for span_warm_has, which reads it without the lock: a
 * relaxed atomic of its own, written with warm.bytes (span lock held). */
static _Atomic size_t warm_bytes_hint;
static void warm_hint_store(void)
{
	atomic_store_explicit(&warm_bytes_hint, warm.bytes, memory_order_relaxed);
}

static void pool_take(struct pool *p, int i, struct span *out)
{
	*out = p->s[i];
	p->bytes -= out->len;
	p->s[i] = p->s[--p->n];
	if (p == &warm) warm_hint_store();
}

/* Add s (a free entry is there). */
static void pool_add(struct pool *p, struct span s)
{
	p->s[p->n++] = s;
	p->bytes += s.len;
	if (p == &warm) warm_hint_store();
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

/* Add s, moving the oldest entries to out[] until it fits, at most room
 * of them: *added says whether s went in. */
static int pool_put(struct pool *p, struct span s, struct span *out, int room, int *added)
{
	int k = 0;
	*added = 0;
	while (p->n && (p->n >= p->cap || p->bytes + s.len > p->max)) {
		if (k == room) return k;        /* (the rest leave at later puts and expiries) */
		int oldest = 0;
		for (int i = 1; i < p->n; i++)
			if (p->s[i].stamp < p->s[oldest].stamp) oldest = i;
		pool_take(p, oldest, &out[k++]);
	}
	pool_add(p, s);
	*added = 1;
	return k;
}

/* Span lock held: remove ring entry `at` (the newest moves into its place). */
static void retired_drop(int at)
{
	retired[at] = retired[(retired_head + retired_n - 1) % RETIRED];
	retired_n--;
}

/* Span lock held: take the best span for len, if any: the front of the
 * smallest warm span that holds it first (no page faults; the rest stays
 * warm), and *dirty says it was warm; else the front of the smallest
 * retired span that holds it (the rest stays retired).  With extra, the
 * front is longer, for the caller's next groups (a heap's spans,
 * group.c): up to extra bytes of a warm span, up to MAP_CHUNK in all of
 * a retired one. */
static int span_take(size_t len, struct span *out, int *dirty, size_t extra)
{
	int best = -1;
	for (int i = 0; i < warm.n; i++) {
		size_t l = warm.s[i].len;
		if (l >= len && (best < 0 || l < warm.s[best].len)) best = i;
	}
	if (best >= 0) {
		struct span *w = &warm.s[best];
		if (w->len - len < extra) extra = w->len - len;
		len += extra;
		*out = (struct span){ w->base, w->base, len, w->stamp };
		w->base += len;
		warm.bytes -= len;
		warm_hint_store();
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
	if (extra && len < MAP_CHUNK / 4) {
		/* (a clean rest costs no memory: up to a chunk, as map_group) */
		extra = MAP_CHUNK - len;
		if (retired[best].len - len < extra) extra = retired[best].len - len;
		len += extra;
	}
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
		os_span_lock();
		if (!retired) __atomic_store_n(&retired, r, __ATOMIC_RELEASE), r = 0;
		os_span_unlock();
		if (r) os_unmap(r, page_round(RETIRED * sizeof *r));
	}
	return retired != 0;
}

/* Span lock held: put a span without pages on the ring, joined with the
 * retired spans it touches (the pieces of a mapping cut by map_group,
 * groups mapped side by side), so that the ring holds few long spans;
 * when it is full, the oldest span goes to *old, to be unmapped after
 * the lock is let go (else old->base stays NULL). */
static void retired_put_locked(unsigned char *base, size_t len, struct span *old)
{
	struct span s = { base, base, len, 0 };
	old->base = 0;
	for (int i = 0; i < retired_n;) {
		int at = (retired_head + i) % RETIRED;
		if (span_join(&s, &retired[at])) retired_drop(at);
		else i++;
	}
	if (retired_n == RETIRED) {
		*old = retired[retired_head];
		retired_head = (retired_head + 1) % RETIRED;
		retired_n--;
	}
	s.origin = s.base;
	retired[(retired_head + retired_n++) % RETIRED] = s;
}

static void retired_put(unsigned char *base, size_t len)
{
	struct span old;
	if (!retired_ring()) {
		os_unmap(base, len);
		return;
	}
	os_span_lock();
	retired_put_locked(base, len, &old);
	os_span_unlock();
	if (old.base) os_unmap(old.base, old.len);
}

/* Give a mapping's pages back but keep its addresses reserved for a while. */
static void retire_clean(unsigned char *base, size_t len)
{
	os_purge(base, len);
	retired_put(base, len);
}

/* retire_clean for k spans, the ring's part in one lock hold. */
static void retire_all(struct span *s, int k)
{
	struct span old[4];
	int n = 0;
	if (k <= 0) return;
	for (int i = 0; i < k; i++) os_purge(s[i].base, s[i].len);
	if (!retired_ring()) {
		for (int i = 0; i < k; i++) os_unmap(s[i].base, s[i].len);
		return;
	}
	os_span_lock();
	for (int i = 0; i < k; i++) {
		retired_put_locked(s[i].base, s[i].len, &old[n]);
		if (old[n].base && ++n == 4) {
			os_span_unlock();
			while (n) n--, os_unmap(old[n].base, old[n].len);
			os_span_lock();
		}
	}
	os_span_unlock();
	while (n) n--, os_unmap(old[n].base, old[n].len);
}

/* Span lock held: add s to the warm spans, joined with those it touches (its
 * stamp the oldest of theirs), then move the longest to out[] while the
 * pool is over its bounds: a heap that frees everything releases its
 * groups in no particular order, and spans given back joined cost one
 * madvise (one TLB flush of every core running the process) for what
 * took one per group. */
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
 * next decay check.  The bound is 16 times higher while another thread has
 * a heap (and for decay_ms after one exited: span_heap_left): each madvise then also interrupts the cores that run the
 * process's other threads (a TLB shootdown), so a thread that frees what
 * it built should not give it back piece by piece while they run
 * (test_warm_spans_threads; figures in doc/performance.md). */
void span_retire(unsigned char *base, size_t len)
{
	span_retire_many(&base, &len, 1);
}

/* span_retire of n spans (at most BATCH / 4), in one lock hold (a heap
 * handing back the spans of its groups, group.c). */
void span_retire_many(unsigned char *const *base, const size_t *len, int n)
{
	struct span old[BATCH];
	int k = 0;
	if (opt.decay_ms <= 0) {
		for (int i = 0; i < n; i++) retire_clean(base[i], len[i]);
		return;
	}
	long now = os_now_ms();
	os_span_lock();
	warm.max = threaded(now) ? WARM_MT_BYTES : WARM_BYTES;
	k = pool_expire(&warm, now, 0, old, BATCH / 4);
	for (int i = 0; i < n; i++) {
		if (len[i] > warm.max / 4) old[k++] = (struct span){ base[i], base[i], len[i], now };
		else k += warm_put((struct span){ base[i], base[i], len[i], now }, old + k, BATCH - k - (n - i - 1));
	}
	os_span_unlock();
	retire_all(old, k);
}

static void unmap_all(struct span *s, int k)
{
	while (k--) os_unmap(s[k].base, s[k].len);
}

/* Expire cache entries older than decay_ms.  Called by large operations
 * and, every DECAY_TICKS slow paths of a heap, by malloc_slow, so that the
 * cache is given back even when the program stops making large objects. */
void span_decay(void)
{
	struct span old[CACHE_SLOTS], kept[BATCH];
	int k, d;
	/* at most every decay_ms / 8 (every thread's malloc_slow calls this,
	 * and each call would take the lock): entries live at most 9/8 of
	 * decay_ms */
	static _Atomic long next_check;
	long now = os_now_ms(), next = atomic_load_explicit(&next_check, memory_order_relaxed);
	if (now < next || !atomic_compare_exchange_strong(&next_check, &next, now + opt.decay_ms / 8))
		return;
	do {
		k = d = 0;
		os_span_lock();
		if (cache.n || warm.n) {
			long now = os_now_ms();
			k = pool_expire(&cache, now, 0, old, CACHE_SLOTS);
			d = pool_expire(&warm, now, 0, kept, BATCH);
		}
		os_span_unlock();
		unmap_all(old, k);
		retire_all(kept, d);
	} while (d == BATCH || k == CACHE_SLOTS);
}

/* Empty the cache and give back the warm spans' pages; with all != 0
 * unmap the retired spans too (when address space runs out).  Returns the
 * number of mappings released.  BATCH at a time. */
int span_trim(int all)
{
	struct span old[BATCH], kept[BATCH];
	int n = 0, k, d;
	do {
		d = 0;
		os_span_lock();
		k = pool_expire(&cache, 0, 1, old, BATCH);
		if (all) k += pool_expire(&warm, 0, 1, old + k, BATCH - k);
		else d = pool_expire(&warm, 0, 1, kept, BATCH);
		while (all && retired_n && k < BATCH) {
			old[k++] = retired[retired_head];
			retired_head = (retired_head + 1) % RETIRED;
			retired_n--;
		}
		os_span_unlock();
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
unsigned char *span_map_cached(size_t len, size_t *got, int *fresh, unsigned char **origin)
{
	struct span old[CACHE_SLOTS], s = { 0 };
	int best = -1, big = -1, dirty = 0;
	os_span_lock();
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
	} else if (!span_take(len, &s, &dirty, 0) && big >= 0) {
		pool_take(&cache, big, &s);
	}
	os_span_unlock();
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
 * which does not read as zeros.  For groups below a quarter of
 * MAP_CHUNK, once the program has made many (the caller counts: not for
 * a program's first groups, the ring costs a page), a new mapping is
 * MAP_CHUNK long, for this group and the next ones: with rest, the
 * caller keeps the part past *len (*rest bytes, zeros, group.c: a heap's
 * spans), else it waits on the ring.  With rest, a pool's span may be
 * longer too (span_take; *rest on entry: how much of a warm one the
 * caller takes), and the caller keeps what is past *len the same way. */
unsigned char *map_group(size_t *len, int *dirty, size_t *rest, int many)
{
	struct span s;
	size_t extra = rest ? *rest : 0;
	if (rest) *rest = 0;
	os_span_lock();
	int got = span_take(*len, &s, dirty, extra);
	os_span_unlock();
	if (!got && many && *len < MAP_CHUNK / 4 && (rest || retired_ring())) {
		unsigned char *p = span_map(MAP_CHUNK);
		if (p && rest) *rest = MAP_CHUNK - *len;
		else if (p) retired_put(p + *len, MAP_CHUNK - *len);
		return p;
	}
	if (!got) return span_map(*len);
	tomb_clear(s.base, s.len);
	if (rest) *rest = s.len - *len;
	else *len = s.len;
	return s.base;
}

/* A heap's thread exits (global lock held): for decay_ms the pools keep their
 * threaded bounds, though one heap may be left.  A program whose threads
 * come and go makes the next ones soon, and they need what these freed:
 * with the single-threaded bounds the spans of the groups an exited heap
 * releases (and those its bundle's groups release when other threads
 * free their last objects) and most of the large objects the threads
 * freed at their end went back at once, and the next threads faulted
 * them in again.  A program that stays single-threaded gets the smaller
 * bounds back after decay_ms, and the spans expire as ever.  Not on the
 * checked paths, which give freed pages back at once (dirty_on). */
void span_heap_left(void)
{
	atomic_store_explicit(&mt_until, os_now_ms() + opt.decay_ms, memory_order_relaxed);
}

/* Whether the warm pool may hold len bytes with their pages: a hint,
 * read without the lock (a stale value costs a lock hold, or a span
 * without pages). */
int span_warm_has(size_t len)
{
	return atomic_load_explicit(&warm_bytes_hint, memory_order_relaxed) >= len;
}

/* A span without pages (zeros) that a heap kept and no longer needs. */
void span_give_clean(unsigned char *base, size_t len)
{
	retired_put(base, len);
}

/* A freed mapping joins the cached spans next to it (parts of one
 * mapping that span_map_cached cut), then goes to the cache, or is retired. */
void span_unmap_cached(unsigned char *base, size_t len, unsigned char *origin)
{
	struct span old[CACHE_SLOTS + 1], part;
	long now = os_now_ms();
	struct span s = { base, origin, len, now };
	int k = 0;
	os_span_lock();
	k = pool_expire(&cache, now, 0, old, CACHE_SLOTS);
	for (int i = 0; i < cache.n;) {
		if (cache.s[i].origin == origin && span_join(&s, &cache.s[i])) pool_take(&cache, i, &part);
		else i++;
	}
	s.stamp = now;
	cache.cap = threaded(now) ? CACHE_MT_SLOTS : CACHE_SLOTS;
	/* (old[] holds CACHE_SLOTS + 1: the cache's bound may have dropped
	 * from CACHE_MT_SLOTS, and a put moves out at most what fits) */
	int added = 0;
	if (s.len <= CACHE_BYTES / 2 && opt.decay_ms > 0) k += pool_put(&cache, s, old + k, CACHE_SLOTS + 1 - k, &added);
	if (added) s.base = 0;
	os_span_unlock();
	unmap_all(old, k);
	if (s.base) span_retire(s.base, s.len);
}

/* map(len), and once more after the pools gave their ranges back */
static void *map_retrying(void *(*map)(size_t), size_t len)
{
	int e = errno;
	void *p = map(len);
	if (!p && !os_map_failing() && span_trim(1)) {
		p = map(len);
		if (p) errno = e;
	}
	return p;
}

void *span_map(size_t len)
{
	return map_retrying(os_map, len);
}

void *span_map_guarded(size_t len)
{
	return map_retrying(os_map_guarded, len);
}

void *span_remap(void *p, size_t old, size_t len)
{
	void *q = os_remap(p, old, len);
	if (!q && !os_map_failing() && span_trim(1)) q = os_remap(p, old, len);
	return q;
}
