/* group.c - creating groups, sizing them, giving them back.
 *
 * Invariants:
 * - a group's first 4 bytes hold its meta record's index, and meta->mem
 *   points back at the group;
 * - groups of at most NEST_MAX bytes live inside a slot of a larger class
 *   (mapped == 0); bigger ones are their own mapping of maplen bytes;
 * - owner == NULL  <=>  the group is on abandoned[sc] (lock held to touch);
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static struct meta *abandoned[NCLASS] COLD_BSS;
static _Atomic int abandoned_n;  /* groups on the lists (a hint outside the lock) */

/* Slots per new group: few while a heap uses a class little, so that small
 * programs stay small; up to 32 as the class's use grows; groups of large
 * classes stay below about 1 MiB. */
static int group_cnt(struct heap *h, int sc)
{
	uint32_t stride = class_stride[sc];
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
	return b <= NEST_MAX ? class_stride[size_to_class(b)] : page_round(b);
}

/* Of cnt/2..cnt slots, the count whose group fills what it takes best (ties
 * to the larger count).  32 slots of 32 bytes (1 040 bytes with the header)
 * would take a 1 280-byte slot, 81 % used; 31 fill a 1 024-byte one, 97 %.
 * 32 slots of 160 bytes would take 2 pages, 62 % used; 25 fill a 4 KiB
 * slot, 98 %.  Such a container group (32 slots of 4 KiB) could then be
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

struct meta *group_create(struct heap *h, int sc)
{
	int cnt = group_fit(sc, group_cnt(h, sc));
	size_t bytes = group_bytes(sc, cnt), maplen = 0;
	unsigned char *mem;
	int dirty = 1;          /* mem may hold old data */
	if (bytes <= NEST_MAX) {
		mem = alloc_small(bytes);
	} else {
		maplen = page_round(bytes);
		mem = map_group(&maplen, &dirty);
		while (cnt < 32 && group_bytes(sc, cnt + 1) <= maplen) cnt++;
	}
	if (!mem) return 0;
	os_lock();
	struct meta *m = meta_alloc();
	os_unlock();
	if (!m) {
		if (maplen) os_unmap(mem, maplen);
		else free_container(mem);
		errno = ENOMEM;
		return 0;
	}
	m->mem = mem;
	m->sc = sc;
	m->cnt = cnt;
	m->mapped = maplen != 0;
	m->maplen = maplen;
	__atomic_store_n(&m->owner, h, __ATOMIC_RELAXED);
	m->avail = full_mask(m);
	atomic_store_explicit(&m->remote, 0, memory_order_relaxed);
	m->untouched = maplen && !dirty ? full_mask(m) : 0;
	/* (before the header is written, which would fault its page) */
	if (m->untouched && class_stride[sc] < POPULATE_MIN && h->ngroups[sc] > 0)
		fresh_group(h, m);
	group_header_init(m);
	/* every slot header, and the 8 bytes after the last slot, is zero or
	 * verifies (next_header_ok relies on it): a new mapping or a clean
	 * retired span comes zeroed; a nested group lives in a slot that held
	 * other data, a dirty retired span held another group */
	if (dirty)
		for (int i = 1; i <= cnt; i++)
			*(uint64_t *)(mem + GROUP_HDR + (size_t)i * class_stride[sc] - SLOT_HDR) = 0;
	h->ngroups[sc]++;
	/* a big class's group in a warm span: its slots' pages are listed
	 * like freed ones, to go back in time */
	m->dirty = 0;
	if (maplen && dirty && class_stride[sc] >= SLOT_PURGE_MIN && dirty_on()) {
		dirty_add(h, m, full_mask(m));
		dirty_trim(h);
	}
	return m;
}

/* Give an empty group's memory back (to the OS or to its parent slot). */
void group_release(struct meta *m)
{
	unsigned char *mem = m->mem;
	size_t maplen = m->mapped ? m->maplen : 0;
	struct heap *h = tl_heap;
	if (m->dirty) dirty_forget(__atomic_load_n(&m->owner, __ATOMIC_RELAXED), m);
	if (h->probe >= mem && h->probe < mem + maplen) h->probe = 0;  /* malloc.c */
	*(uint32_t *)mem = 0;
	atomic_fetch_add_explicit(&os_count.released, 1, memory_order_relaxed);
	os_lock();
	meta_free(m);
	os_unlock();
	if (maplen) retire_span(mem, maplen);
	else free_container(mem);
}

static void abandoned_unlink(struct meta *m)
{
	atomic_fetch_sub_explicit(&abandoned_n, 1, memory_order_relaxed);
	if (m->prev) m->prev->next = m->next;
	else abandoned[m->sc] = m->next;
	if (m->next) m->next->prev = m->prev;
	m->next = m->prev = 0;
}

void group_abandon(struct meta *m)
{
	atomic_fetch_add_explicit(&abandoned_n, 1, memory_order_relaxed);
	m->prev = 0;
	m->next = abandoned[m->sc];
	if (m->next) m->next->prev = m;
	abandoned[m->sc] = m;
}

/* Take over a group a finished thread left behind, preferring one with free
 * slots; full ones taken on the way go to the heap's full list. */
struct meta *group_adopt(struct heap *h, int sc)
{
	struct meta *got = 0;
	os_lock();
	for (int tries = 0; tries < 4 && abandoned[sc] && !got; tries++) {
		struct meta *m = abandoned[sc];
		abandoned_unlink(m);
		__atomic_store_n(&m->owner, h, __ATOMIC_RELAXED);
		m->avail |= atomic_exchange(&m->remote, 0);
		h->ngroups[sc]++;
		if (m->avail) {
			got = m;
		} else {
			m->in_full = 1;
			m->next = h->full[sc];
			if (m->next) m->next->prev = m;
			h->full[sc] = m;
		}
	}
	os_unlock();
	return got;
}

/* free() of a slot in an abandoned group.  A thread with a heap adopts the
 * group, so that its later frees into it are local; otherwise the slot is
 * returned under the lock.  Returns 0 if another thread adopted the group
 * meanwhile (the caller then frees it as a remote slot). */
int free_abandoned(struct heap *h, struct meta *m, uint32_t bit)
{
	os_lock();
	if (m->owner) {
		os_unlock();
		return 0;
	}
	if (m->avail & bit) fail("double free", m->mem);
	m->avail |= bit | atomic_exchange(&m->remote, 0);
	int empty = m->avail == full_mask(m);
	if (empty || h != &empty_heap) abandoned_unlink(m);
	if (h != &empty_heap) __atomic_store_n(&m->owner, h, __ATOMIC_RELAXED);
	os_unlock();
	if (h != &empty_heap) {
		h->ngroups[m->sc]++;
		ring_insert(h, m->sc, m);
		if (empty) free_slow_local(h, m);
	} else if (empty) {
		group_release(m);
	}
	return 1;
}

/* Release abandoned groups that other threads have emptied meanwhile
 * (none to look at: no lock, so that a program may call malloc_trim
 * often). */
int abandoned_trim(void)
{
	struct meta *release = 0;
	int n = 0;
	if (!atomic_load_explicit(&abandoned_n, memory_order_relaxed)) return 0;
	os_lock();
	for (int sc = 0; sc < NCLASS; sc++) {
		for (struct meta *m = abandoned[sc], *nx; m; m = nx) {
			nx = m->next;
			m->avail |= atomic_exchange(&m->remote, 0);
			if (m->avail == full_mask(m)) {
				abandoned_unlink(m);
				m->next = release;
				release = m;
			}
		}
	}
	os_unlock();
	while (release) {
		struct meta *m = release;
		release = m->next;
		group_release(m), n++;
	}
	return n;
}
