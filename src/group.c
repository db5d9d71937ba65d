/* group.c - creating groups, sizing them, giving them back.
 *
 * Invariants:
 * - a group's first 4 bytes hold its meta record's index, and meta->mem
 *   points back at the group;
 * - groups of at most NEST_MAX bytes live inside a slot of a larger class
 *   (MEM_NESTED); bigger ones are their own mapping of maplen bytes
 *   (MEM_MAPPED);
 * - a group without an owner (its thread exited) is abandoned.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Slots per new group: few while a heap uses a class little, so that small
 * programs stay small; up to 32 as the class's use grows; groups of large
 * classes stay below about 1 MiB. */
static int group_cnt(struct heap *h, int sc)
{
	uint32_t stride = class_stride(sc);
	int u = h->ngroups[sc];
	int cnt = u == 0 ? 4 : u == 1 ? 8 : u < 4 ? 16 : 32;
	if (cnt < (int)(1024 / stride)) cnt = 1024 / stride;
	if (u == 0 && stride > 16384) cnt = stride > 32768 ? 1 : 2;
	if (cnt > 32) cnt = 32;
	while (cnt > 1 && group_bytes(sc, cnt) > (1u << 20)) cnt--;
	return cnt;
}

/* What a group of n slots of class sc takes: the whole slot of the
 * smallest class that holds it (nested), or whole pages (mapped). */
static size_t group_footprint(int sc, int n)
{
	size_t b = group_bytes(sc, n);
	return b <= NEST_MAX ? class_stride(size_to_class(b)) : page_round(b);
}

/* Of cnt/2..cnt slots, the count whose group fills what it takes best (ties
 * to the larger count).  32 slots of 32 bytes (1 040 bytes with the header)
 * would take a 1 280-byte slot, 81 % used; 31 fill a 1 024-byte one, 97 %.
 * 32 slots of 160 bytes would take 2 pages, 62 % used; 19 fill a 3 KiB
 * slot, 99 % (test_group).  Such a container group (32 slots of 4 KiB) could then be
 * pinned whole by its last nested group: free_container gives back the
 * rest of its pages. */
static int group_fit(int sc, int cnt)
{
	int best = cnt;
	size_t best_fp = group_footprint(sc, cnt);
	for (int n = cnt - 1; n >= 1 && 2 * n >= cnt; n--) {
		size_t fp = group_footprint(sc, n);
		if ((uint64_t)n * best_fp > (uint64_t)best * fp) best = n, best_fp = fp;
	}
	return best;
}

static void group_header_init(struct meta *m)
{
	memset(m->mem, 0, GROUP_HDR);
	*(uint32_t *)m->mem = m->index;
}

/* The slot that holds a nested group gets a header of its own kind
 * (container): free, realloc and the other entry points refuse it, and
 * only free_container gives it back. */
static void container_seal(struct heap *h, unsigned char *mem, size_t bytes)
{
	uint64_t hdr = *header_of(mem);
	struct meta *c = meta_at_index(H_META(hdr));
	inuse_add(h, -(ptrdiff_t)class_stride(c->sc));  /* overhead, not in use */
	frame(mem, H_META(hdr), H_IDX(hdr), c->sc, bytes, class_room(c->sc), K_CONTAINER);
}

/* Records for groups: a heap keeps up to REC_STASH of the records its
 * released groups freed, for its next new groups, so that a class whose
 * groups come and go (a producer whose groups a consumer empties) does not
 * take the global lock twice per group for its record.  When the stash is
 * empty, one lock hold takes one record and half as many more as the heap
 * has groups, up to REC_BATCH (a program that makes a few groups takes a
 * few records: the first ones are in .bss); when it is full, one lock
 * hold gives half of it back.  Stashed records are free ones (meta_push),
 * whichever list holds them; rec_stash and rec_stash_n are the owner
 * thread's (of a heap being destroyed: the destroying thread's; of a
 * dormant one: the lock's).  Not with protect_meta, whose records are
 * written inside meta windows only. */
#define REC_STASH 256
#define REC_BATCH 32
static struct meta *record_take(struct heap *h)
{
	struct meta *m = h->rec_stash;
	if (m) {
		h->rec_stash = m->next;
		h->rec_stash_n--;
		m->next = 0;
		return m;
	}
	int more = 0;
	if (h != &empty_heap && !opt_protect)
		for (int sc = 0; sc < NCLASS && more < REC_BATCH; sc++) more += h->ngroups[sc];
	more = more < REC_BATCH ? more / 2 : REC_BATCH;
	os_lock();
	m = meta_alloc();
	for (struct meta *r; m && more > 0 && (r = meta_alloc()); more--) {
		meta_push(&h->rec_stash, r);
		h->rec_stash_n++;
	}
	os_unlock();
	return m;
}

static void record_put(struct heap *h, struct meta *m)
{
	if (h != &empty_heap && !opt_protect) {
		meta_push(&h->rec_stash, m);
		if (++h->rec_stash_n <= REC_STASH) return;
		os_lock();
		while (h->rec_stash_n > REC_STASH / 2) {
			struct meta *r = h->rec_stash;
			h->rec_stash = r->next;
			h->rec_stash_n--;
			meta_free(r);
		}
		os_unlock();
		return;
	}
	os_lock();
	meta_free(m);
	os_unlock();
}

/* Give h's stashed records back to the global list (lock held; the heap
 * is going away). */
void record_stash_flush(struct heap *h)
{
	struct meta *m;
	while ((m = h->rec_stash)) {
		h->rec_stash = m->next;
		meta_free(m);
	}
	h->rec_stash_n = 0;
}

/* A heap's spans (hspan[]): the rest of a MAP_CHUNK mapping that
 * map_group made for one of its groups, so that its next groups are cut
 * from it without the lock (with the pool's, each took a lock hold for
 * the span and one more to put the rest on the ring); and the spans of
 * mapped groups it released (HSPAN_RES_MAX at most, with their pages),
 * for its next groups: a heap whose groups empty and fill again (a
 * producer whose objects a consumer frees) reuses them without the lock;
 * all heaps together keep at most HSPAN_TOTAL_MAX resident (hspan_total),
 * so that many threads do not keep HSPAN_RES_MAX each.
 * Resident ones go to the pool (span_retire_many, one lock hold for up
 * to 4) when the heap needs room, when they are older than decay_ms
 * (malloc_slow's decay check), at malloc_trim and at thread exit, all
 * of them then (hspan_flush).  Not on the checked paths nor with
 * decay_ms=0 (dirty_on), which give pages back at once. */
#define HSPAN_RES_MAX (256u << 10)
#define HSPAN_TOTAL_MAX (2u << 20)      /* all heaps together */
#define HSPAN_RES 1                     /* len's mark: pages resident */
/* The resident bytes of all heaps' spans (in a forked child, of the
 * forking thread's heap: hspan_fork_child); each heap adds its own. */
static _Atomic size_t hspan_total;

static void res_add(struct heap *h, ptrdiff_t bytes)
{
	h->hspan_kb += (uint32_t)(bytes / 1024);
	atomic_fetch_add_explicit(&hspan_total, (size_t)bytes, memory_order_relaxed);
}

/* The resident bytes h may add: its own bound's room and the process's. */
static size_t res_room(struct heap *h)
{
	size_t mine = (size_t)h->hspan_kb << 10, all = atomic_load_explicit(&hspan_total, memory_order_relaxed);
	size_t a = mine < HSPAN_RES_MAX ? HSPAN_RES_MAX - mine : 0;
	size_t b = all < HSPAN_TOTAL_MAX ? HSPAN_TOTAL_MAX - all : 0;
	return a < b ? a : b;
}

void hspan_fork_child(void)
{
	struct heap *h = tl_heap;
	atomic_store_explicit(&hspan_total, h == &empty_heap ? 0 : (size_t)h->hspan_kb << 10,
			      memory_order_relaxed);
}

static void hspan_drop(struct heap *h, int i)
{
	struct heap_span *e = &h->hspan[i];
	if (e->len & HSPAN_RES) res_add(h, -(ptrdiff_t)(e->len & ~(size_t)HSPAN_RES));
	*e = h->hspan[--h->hspan_n];
}

/* Give back the resident spans (all, or those older than decay_ms), and
 * with all the others too. */
void hspan_flush(struct heap *h, int all)
{
	unsigned char *base[4];
	size_t len[4];
	int k = 0;
	long now = all ? 0 : os_now_ms();
	for (uint32_t i = 0; i < h->hspan_n;) {
		struct heap_span e = h->hspan[i];
		if (!(e.len & HSPAN_RES)) {
			if (all) hspan_drop(h, (int)i), span_give_clean(e.base, e.len);
			else i++;
			continue;
		}
		if (!all && now - e.stamp <= opt.decay_ms) {
			i++;
			continue;
		}
		hspan_drop(h, (int)i);
		base[k] = e.base, len[k] = e.len & ~(size_t)HSPAN_RES;
		if (++k == 4) span_retire_many(base, len, k), k = 0;
	}
	if (k) span_retire_many(base, len, k);
}

/* The resident spans, the oldest first, until len more bytes fit; once
 * some must go, down to half the bound (or all but the clean ones, when
 * the entries are what is short), so that a heap that releases many
 * groups hands them over 4 per lock hold. */
static void hspan_room(struct heap *h, size_t len)
{
	unsigned char *base[4];
	size_t lens[4];
	int k = 0;
	if (h->hspan_n < HSPAN_N && len <= res_room(h)) return;
	size_t keep = len < HSPAN_RES_MAX / 2 ? HSPAN_RES_MAX / 2 - len : 0;
	while (h->hspan_n && (h->hspan_n > HSPAN_N / 2 || ((size_t)h->hspan_kb << 10) > keep)) {
		int old = -1;
		for (uint32_t i = 0; i < h->hspan_n; i++)
			if ((h->hspan[i].len & HSPAN_RES) && (old < 0 || h->hspan[i].stamp < h->hspan[old].stamp))
				old = (int)i;
		if (old < 0) break;             /* (only clean ones left) */
		base[k] = h->hspan[old].base, lens[k] = h->hspan[old].len & ~(size_t)HSPAN_RES;
		hspan_drop(h, old);
		if (++k == 4) span_retire_many(base, lens, k), k = 0;
	}
	if (k) span_retire_many(base, lens, k);
}

/* Keep the span of a group h released; 0 if it does not fit. */
static int hspan_put(struct heap *h, unsigned char *base, size_t len)
{
	if (h == &empty_heap || !dirty_on() || len > HSPAN_RES_MAX / 4) return 0;
	hspan_room(h, len);
	if (h->hspan_n == HSPAN_N || len > res_room(h)) return 0;
	h->hspan[h->hspan_n++] = (struct heap_span){ base, len | HSPAN_RES, os_now_ms() };
	res_add(h, (ptrdiff_t)len);
	return 1;
}

/* Memory for a mapped group of h of *len bytes: the front of the smallest
 * of h's spans that holds it (*dirty: its pages may be resident; one with
 * pages or the pool's before one without), else map_group's, whose rest
 * h keeps. */
static unsigned char *hspan_take(struct heap *h, size_t *len, int *dirty)
{
	int best = -1;
	size_t rest = 0;
	/* mapped groups made so far (a hint: relaxed, racy increments) */
	static _Atomic unsigned made;
	int many = atomic_fetch_add_explicit(&made, 1, memory_order_relaxed) >= 8;
	if (h == &empty_heap || !dirty_on()) return map_group(len, dirty, 0, many);
	/* a span without pages only if the pool has none with pages: a
	 * group cut from fresh memory faults every page in again (a lock
	 * hold costs far less than that) */
	int warm = span_warm_has(*len);
	for (uint32_t i = 0; i < h->hspan_n; i++) {
		size_t l = h->hspan[i].len & ~(size_t)HSPAN_RES;
		if (warm && !(h->hspan[i].len & HSPAN_RES)) continue;
		if (l >= *len && (best < 0 || l < (h->hspan[best].len & ~(size_t)HSPAN_RES))) best = (int)i;
	}
	if (best >= 0) {
		struct heap_span *e = &h->hspan[best];
		unsigned char *p = e->base;
		*dirty = e->len & HSPAN_RES;
		e->base += *len;
		e->len -= *len;
		if (*dirty) res_add(h, -(ptrdiff_t)*len);
		if ((e->len & ~(size_t)HSPAN_RES) == 0) {
			e->len = 0;
			*e = h->hspan[--h->hspan_n];
		}
		return p;
	}
	if (h->hspan_n == HSPAN_N) hspan_room(h, 0);
	/* of a warm span, what the resident bound leaves (the rest of a
	 * mapping or of a clean span costs nothing) */
	size_t room = res_room(h);
	if (h->hspan_n < HSPAN_N && *len < room)
		rest = page_trunc(room - *len);
	else
		rest = 0;
	unsigned char *p = map_group(len, dirty, h->hspan_n < HSPAN_N ? &rest : 0, many);
	if (p && rest) {
		long now = *dirty ? os_now_ms() : 0;
		h->hspan[h->hspan_n++] = (struct heap_span){ p + *len, rest | (*dirty ? HSPAN_RES : 0), now };
		if (*dirty) res_add(h, (ptrdiff_t)rest);
	}
	return p;
}

struct meta *group_create(struct heap *h, int sc)
{
	int cnt = group_fit(sc, group_cnt(h, sc));
	size_t bytes = group_bytes(sc, cnt), maplen = 0;
	unsigned char *mem;
	int dirty = 1;          /* mem may hold old data */
	if (bytes <= NEST_MAX) {
		if ((mem = heap_alloc_slot(bytes))) container_seal(h, mem, bytes);
	} else {
		maplen = page_round(bytes);
		mem = hspan_take(h, &maplen, &dirty);
		while (cnt < 32 && group_bytes(sc, cnt + 1) <= maplen) cnt++;
	}
	if (!mem) return 0;
	struct meta *m = record_take(h);
	if (!m) {
		if (maplen) os_unmap(mem, maplen);
		else free_container(mem);
		errno = ENOMEM;
		return 0;
	}
	m->mem = mem;
	m->sc = sc;
	m->cnt = cnt;
	m->mapped = maplen ? MEM_MAPPED : MEM_NESTED;
	m->maplen = maplen;
	__atomic_store_n(&m->owner, h, __ATOMIC_RELAXED);
	m->avail = full_mask(m);
	atomic_store_explicit(&m->remote, 0, memory_order_relaxed);
	m->untouched = maplen && !dirty ? full_mask(m) : 0;
	/* (before the header is written, which would fault its page) */
	if (m->untouched && class_stride(sc) < POPULATE_MIN && h->ngroups[sc] > 0)
		fresh_group(h, m);
	group_header_init(m);
	/* every slot header, and the 8 bytes after the last slot, is zero or
	 * verifies (next_header_ok relies on it): a new mapping or a clean
	 * retired span comes zeroed; a nested group lives in a slot that held
	 * other data, a dirty retired span held another group */
	if (dirty)
		for (int i = 1; i <= cnt; i++) *header_of(slot_at(m, (size_t)i)) = 0;
	h->ngroups[sc]++;
	/* a big class's group in a warm span: its slots' pages are listed
	 * like freed ones, to go back in time */
	m->dirty = 0;
	if (maplen && dirty && class_stride(sc) >= SLOT_PURGE_MIN && dirty_on()) {
		dirty_add(h, m, full_mask(m));
		dirty_trim(h);
	}
	return m;
}

/* Give an empty group's memory back (to the OS or to its parent slot);
 * its record goes to h's stash (h: the calling thread's heap, or the heap
 * it is destroying). */
void group_release(struct heap *h, struct meta *m)
{
	unsigned char *mem = m->mem;
	size_t maplen = m->mapped != MEM_NESTED ? m->maplen : 0;
	if (m->dirty) dirty_forget(__atomic_load_n(&m->owner, __ATOMIC_RELAXED), m);
	if (h->probe >= mem && h->probe < mem + maplen) h->probe = 0;  /* populate.c */
	*(uint32_t *)mem = 0;
	atomic_fetch_add_explicit(&os_count.groups_released, 1, memory_order_relaxed);
	record_put(h, m);
	if (!maplen) free_container(mem);
	else if (!hspan_put(h, mem, maplen)) span_retire(mem, maplen);
}
