/* heap.c - per-thread heaps: their groups, the refill of a class
 * (malloc_slow), and what a group that empties or regains a slot becomes
 * (heap_group_regained).
 *
 * A heap owns groups: per class, a ring of groups that may have free slots
 * (cur[sc] is the one malloc takes from, &dummy_meta when the ring is empty),
 * a list of groups found full, and at most one spare empty group.  Only the
 * owning thread touches its heap, so none of this needs atomics; other
 * threads only set bits in a group's `remote` mask and raise remote_hint.
 *
 * Heaps are created on a thread's first malloc (threads that never allocate
 * cost nothing), recycled through a free list (never unmapped, so a stale
 * owner pointer is always safe to compare), and handed back at thread exit:
 * their groups are released when empty, otherwise abandoned, kept in the
 * heap's bundle for the next thread that needs a heap (abandoned.c: Bundles;
 * heap_revive), or, when enough heaps wait, on the global lists where any
 * thread can adopt them.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "internal.h"

HIDDEN struct meta dummy_meta;
/* never written (its cache limits are 0 and malloc_slow replaces it
 * first): read-only after relocation, and off the .data page (os.h: COLD_BSS) */
HIDDEN struct heap empty_heap __attribute__((section(".data.rel.ro"))) = {
	.tc_top = { [0 ... NCLASS - 1] = offsetof(struct heap, full) },
	.tc_end = { [0 ... NCLASS - 1] = offsetof(struct heap, full) },
	.cur = { [0 ... NCLASS - 1] = &dummy_meta },
};
HIDDEN __thread struct heap *tl_heap = &empty_heap;
/* Set when the thread's heap is destroyed at its exit: frees that follow
 * (the release of its groups, other libraries' destructors) do not give
 * it a new heap for its remote batch (heap_for_free). */
static __thread unsigned char tl_exiting;

/* in .bss: the first thread pays no page for its head (os.h: COLD_BSS) */
static union {
	struct heap h;
	unsigned char bytes[HEAP_BYTES];
} first_heap_mem __attribute__((aligned(64)));
#define first_heap (first_heap_mem.h)
static int first_heap_used;
/* Heaps are carved from chunks of 64 KiB (whole pages of any size up to
 * MAX_PAGE) at 4 KiB boundaries, so that a heap's head (what an idle
 * thread touches, less than 4 KiB) never straddles two pages, whatever
 * the page size: a boundary of a bigger page is a 4 KiB boundary too. */
#define HEAP_SLOT ((HEAP_BYTES + MIN_PAGE - 1) & ~(size_t)(MIN_PAGE - 1))
#define HEAP_CHUNK ((size_t)16 * MIN_PAGE)
_Static_assert(HEAP_CHUNK >= 2 * HEAP_SLOT, "two heaps per chunk");
static struct heap *free_heaps;
static unsigned char *heap_chunk;
static size_t heap_chunk_left;
static pthread_key_t heap_key;
static int heap_key_ok;

/* The forked child's accounting of kept pages (dirty.c) and of kept
 * spans (group.c); os.c's own handler resets the lock. */
__attribute__((constructor)) static void heap_constructor(void)
{
	pthread_atfork(0, 0, dirty_fork_child);
	pthread_atfork(0, 0, hspan_fork_child);
}

/* Cache depth per class: deep for small objects, one slot for the biggest
 * (whose pages a free gives back: the cached one keeps them for the next
 * malloc of its class; tc_flush gives them back when it leaves). */
int tc_default(int sc)
{
	uint32_t s = class_stride(sc);
	return opt_slow ? 0 : s <= 1024 ? TC_CAP : s <= 4096 ? 8 : s <= 16384 ? 2 : s >= SLOT_PURGE_MIN;
}

static void heap_init(struct heap *h)
{
	void **quar = h->quar;      /* kept across reuse of the heap */
	memset(h, 0, offsetof(struct heap, dirty));
	h->quar = quar;
	for (int i = 0; i < NCLASS; i++) {
		h->cur[i] = &dummy_meta;
		h->tc_top[i] = tc_bottom_off(i);
		tc_set_limit(h, i, tc_default(i));
	}
}

/* The ring of class sc's groups with room: in after the current group,
 * out moving the current group on (heap.h: ring_insert, ring_remove). */
static void heap_ring_insert(struct heap *h, int sc, struct meta *m)
{
	ring_insert(&h->cur[sc], m, &dummy_meta);
}

static void heap_ring_remove(struct heap *h, int sc, struct meta *m)
{
	ring_remove(&h->cur[sc], m, &dummy_meta);
}

static void full_push(struct heap *h, int sc, struct meta *m)
{
	m->in_full = 1;
	list_push(&h->full[sc], m);
}

static void full_remove(struct heap *h, int sc, struct meta *m)
{
	list_remove(&h->full[sc], m);
	m->in_full = 0;
}

/* A heap's count of bytes in use, to the process's (heap.h). */
void inuse_fold(struct heap *h)
{
	os_inuse_add(h->inuse);
	h->inuse = 0;
}

/* The memory of h's bundle's sentinels back to what its thread cache
 * needs: zeros (its stacks' NULL bottoms). */
static void bundle_close(struct heap *h)
{
	memset(bundle_ring(h, 0), 0, NCLASS * sizeof(struct meta));
}

/* Hand every group back; called at thread exit with the heap detached:
 * the empty ones are released, the others kept in the heap's bundle for
 * the next thread that needs a heap (abandoned.c: Bundles), or abandoned to
 * the global lists when DORMANT_MAX heaps wait already. */
static void heap_destroy(void *arg)
{
	struct heap *h = arg;
	struct meta *release = 0;
	int w = meta_open(), kept = 0, bundle;
	tl_exiting = 1;
	quarantine_drain(h, 0);
	for (int sc = 0; sc < NCLASS; sc++)
		if (tc_count(h, sc)) tc_flush(h, sc, 0);
	remote_batch_flush(h);
	dirty_exit(h);          /* no entry may outlive the heap's ownership */
	if (tl_heap == h) tl_heap = &empty_heap;
	bundle_open(h);         /* (the cache is empty: its memory is free) */
	os_lock();
	bundle_sweep_held(&release);
	bundle = bundle_room();
	for (int sc = 0; sc < NCLASS; sc++) {
		struct meta *list[3] = { h->cur[sc], h->full[sc], h->spare[sc] };
		/* the ring is circular: cut it open first */
		if (list[0] != &dummy_meta) list[0]->prev->next = 0;
		else list[0] = 0;
		if (list[2]) list[2]->next = 0;
		for (int k = 0; k < 3; k++) {
			for (struct meta *m = list[k], *nx; m; m = nx) {
				nx = m->next;
				__atomic_store_n(&m->owner, (struct heap *)0, __ATOMIC_RELAXED);
				m->in_full = 0;
				group_collect_remote(m);
				if (m->avail == full_mask(m)) {
					if (m->dirty) dirty_forget(h, m);  /* (owner NULL now) */
					m->next = release;
					release = m;
				} else if (bundle) {
					bundle_add(h, m), kept++;
				} else {
					dirty_drop(h, m);
					group_abandon(m);
				}
			}
		}
	}
	/* before h is parked, its stash takes the records; the releases free
	 * the slots that held nested groups, which may empty their
	 * containers, in h's bundle or another: those go too, a level per
	 * pass (the last pass's lock hold parks h).  A heap with no group to
	 * release and no span to hand back (a thread that kept what it made)
	 * is parked in the hold that bundled its groups. */
	for (int pass = 0;; pass++) {
		if (release || h->hspan_n) {
			os_unlock();
			while (release) {
				struct meta *m = release;
				release = m->next;
				group_release(h, m);
			}
			hspan_flush(h, 1);      /* (a heap without a thread keeps no span) */
			os_lock();
		}
		bundle_sweep_held(&release);
		if (kept) kept = bundle_sweep_own(h, &release);
		if (!release || pass == 3) break;
	}
	inuse_fold(h);
	/* parked with its stash, for the thread that takes it; the list may
	 * have filled meanwhile: the bundle's groups then go to the lists */
	if (!kept || !bundle_park(h)) {
		for (int sc = 0; sc < NCLASS; sc++)
			for (struct meta *m; (m = bundle_pop(h, sc));) dirty_drop(h, m), group_abandon(m);
		bundle_close(h);
		record_stash_flush(h);
		h->next_free = free_heaps;
		free_heaps = h;
	}
	span_heap_left();
	atomic_fetch_sub_explicit(&os_count.heaps_live, 1, memory_order_relaxed);
	os_unlock();
	while (release) {       /* (a fourth level: not through h, parked) */
		struct meta *m = release;
		release = m->next;
		group_release(&empty_heap, m);
	}
	meta_close(w);
}

/* Give h, just taken off the dormant list (lock held, inside the meta
 * window), the groups of its bundle: the empty ones go on *release, the
 * others on its rings and full lists; its thread cache's memory, which
 * held the bundle's sentinels, is zeroed again (its stacks' NULL bottoms). */
static void heap_revive(struct heap *h, struct meta **release)
{
	struct meta *stash = h->rec_stash;
	uint16_t stash_n = h->rec_stash_n;
	uint32_t dirty_n = h->dirty_n;          /* the kept pages of its groups */
	size_t dirty_bytes = h->dirty_bytes;
	heap_init(h);
	h->rec_stash = stash, h->rec_stash_n = stash_n;
	h->dirty_n = dirty_n, h->dirty_bytes = dirty_bytes;
	for (int sc = 0; sc < NCLASS; sc++) {
		for (struct meta *m; (m = bundle_pop(h, sc));) {
			__atomic_store_n(&m->owner, h, __ATOMIC_RELAXED);
			if (m->avail == full_mask(m)) {
				m->next = *release;
				*release = m;
				continue;
			}
			h->ngroups[sc]++;
			if (m->avail) heap_ring_insert(h, sc, m);
			else full_push(h, sc, m);
		}
	}
	bundle_close(h);
}

struct heap *heap_get(void)
{
	struct heap *h = tl_heap;
	struct meta *release = 0;
	int revived = 0;
	if (h != &empty_heap) return h;
	int w = meta_open();
	os_lock();
	if (!init_done()) init_secret();
	if (!heap_key_ok) heap_key_ok = !pthread_key_create(&heap_key, heap_destroy);
	if ((h = bundle_take())) {
		heap_revive(h, &release);
		revived = 1;
	} else if ((h = free_heaps)) {
		free_heaps = h->next_free;
	} else if (!first_heap_used) {
		first_heap_used = 1;
		h = &first_heap;
	} else {
		if (heap_chunk_left < HEAP_SLOT) {
			size_t len = page_round(HEAP_CHUNK);
			heap_chunk = span_map(len);
			heap_chunk_left = heap_chunk ? len : 0;
			os_count.heaps_mapped += heap_chunk_left;
		}
		if (heap_chunk) {
			h = (struct heap *)heap_chunk;
			heap_chunk += HEAP_SLOT;
			heap_chunk_left -= HEAP_SLOT;
		}
	}
	atomic_fetch_add_explicit(&os_count.heaps_live, h != 0, memory_order_relaxed);
	os_unlock();
	meta_close(w);
	if (!h) return 0;
	if (!revived) heap_init(h);
	/* random slot choice: a generator of the heap's own, from the
	 * system's random bytes (nothing of the keys, nothing of addresses) */
	if (opt.random)
		while (!h->rng) os_random(&h->rng, sizeof h->rng);
	if (opt.quarantine && !h->quar) h->quar = span_map(page_round(2 * Q_CAP * sizeof(void *)));
	tl_heap = h;
	if (heap_key_ok) pthread_setspecific(heap_key, h);
	/* (h is the thread's: a nested group's container slot goes back
	 * through it) */
	while (release) {
		struct meta *m = release;
		release = m->next;
		group_release(h, m);
	}
	return h;
}

/* A heap for a thread whose first call frees another thread's object (a
 * consumer), for its remote batch (release.c).  Its thread cache stays off
 * until the thread allocates from a class (malloc_slow turns it on), so
 * that a thread that only frees pins no other thread's slots there. */
struct heap *heap_for_free(void)
{
	if (opt_slow || tl_exiting) return 0;
	struct heap *h = heap_get();
	if (h)
		for (int sc = 0; sc < NCLASS; sc++) tc_set_limit(h, sc, 0);
	return h;
}

/* malloc_trim for the calling thread: empty its cache, give back its spare
 * groups, any empty group it allocates from and the pages of its kept big
 * slots.  Returns groups released plus groups whose slots were purged. */
int heap_trim(struct heap *h)
{
	int released = 0;
	if (h == &empty_heap) return 0;
	quarantine_drain(h, 0);
	for (int sc = 0; sc < NCLASS; sc++)
		if (tc_count(h, sc)) tc_flush(h, sc, 0);
	remote_batch_flush(h);
	released += dirty_purge(h, 1);
	for (int sc = 0; sc < NCLASS; sc++) {
		struct meta *m = h->spare[sc];
		if (m) {
			h->spare[sc] = 0;
			h->ngroups[sc]--;
			group_release(h, m), released++;
		}
		while ((m = h->cur[sc]) != &dummy_meta) {
			group_collect_remote(m);
			if (m->avail != full_mask(m)) break;
			heap_ring_remove(h, sc, m);
			h->ngroups[sc]--;
			group_release(h, m), released++;
		}
	}
	hspan_flush(h, 1);      /* (with the spans of the groups above) */
	return released;
}

/* Move groups that other threads freed slots into back to the ring. */
static void reclaim_remote(struct heap *h, int sc)
{
	for (struct meta *m = h->full[sc], *nx; m; m = nx) {
		nx = m->next;
		if (group_collect_remote(m)) {
			full_remove(h, sc, m);
			heap_ring_insert(h, sc, m);
		}
	}
}

/* heap_group_regained for every group of class sc's ring but the current
 * one that other threads freed slots into (remote_only), or every one. */
static void ring_settle(struct heap *h, int sc, int remote_only)
{
	struct meta *cur = h->cur[sc];
	if (cur == &dummy_meta) return;
	for (struct meta *m = cur->next, *nx; m != cur; m = nx) {
		nx = m->next;
		if (!remote_only || atomic_load_explicit(&m->remote, memory_order_relaxed))
			heap_group_regained(h, m);
	}
}

/* Other threads' frees into h's groups of classes that h no longer
 * allocates from would wait in their remote masks for good (only this
 * thread takes them, when it needs a group of the class): every
 * DECAY_TICKS malloc_slow calls, each class with a remote hint has them
 * collected.  A class that malloc_slow served in the period (a producer
 * whose objects a consumer frees) gets its groups back on its ring, the
 * emptied ones too, since it is about to need them: giving them back
 * and making new ones would take the global lock for each.  Any other
 * class's emptied groups go (heap_group_regained), and so do those kept on
 * the ring of a class that was not served in the period since. */
static void collect_remote(struct heap *h)
{
	uint64_t served = h->slow_classes;
	for (int sc = 0; sc < NCLASS; sc++) {
		uint64_t bit = 1ull << sc;
		if ((h->kept_classes & ~served) & bit) {
			h->kept_classes &= ~bit;
			ring_settle(h, sc, 0);
		}
		if (!atomic_load_explicit(&h->remote_hint[sc], memory_order_relaxed)) continue;
		atomic_store_explicit(&h->remote_hint[sc], 0, memory_order_relaxed);
		if (served & bit) {
			reclaim_remote(h, sc);
			h->kept_classes |= bit;
			continue;
		}
		for (struct meta *m = h->full[sc], *nx; m; m = nx) {
			nx = m->next;
			if (atomic_load_explicit(&m->remote, memory_order_relaxed))
				heap_group_regained(h, m);
		}
		ring_settle(h, sc, 1);
	}
	h->slow_classes = 0;
}

static void *malloc_refill(size_t n, int sc);

/* The refill, with the caller's address for a report (os.c, fail): the
 * return address is malloc's caller when malloc's path reached this by
 * jumps (an address inside the library is left out), unless an entry
 * point's checked path set one. */
void *malloc_slow(size_t n, int sc)
{
	if (os_caller) return malloc_refill(n, sc);
	CALLER_SET();
	void *p = malloc_refill(n, sc);
	CALLER_CLEAR();
	if (unlikely(heap_map_armed)) heap_map_poll();
	return p;
}

static __attribute__((noinline)) void *malloc_refill(size_t n, int sc)
{
	struct heap *h = tl_heap;
	if (h == &empty_heap) {
		if (!(h = heap_get())) {
			errno = ENOMEM;
			return 0;
		}
		/* the class table may have been empty when sc was computed */
		sc = size_to_class(n);
		/* the first heap initialised the options: they may need the
		 * checked path (and its meta window) from this call on */
		if (opt_slow) return malloc_hardened(n, sc);
	}
	struct meta *m;
	if (unlikely(++h->slow_ticks % DECAY_TICKS == 0)) {
		span_decay();
		bundle_decay();
		remote_batch_flush(h);
		collect_remote(h);
		dirty_purge(h, 0);
		hspan_flush(h, 0);
	}
	h->slow_classes |= 1ull << sc;
	tc_set_limit(h, sc, tc_default(sc));
	for (;;) {
		/* the ring: collect remote frees, retire exhausted groups */
		while ((m = h->cur[sc]) != &dummy_meta) {
			group_collect_remote(m);
			if (m->avail) goto found;
			heap_ring_remove(h, sc, m);
			full_push(h, sc, m);
		}
		if (atomic_load_explicit(&h->remote_hint[sc], memory_order_relaxed)) {
			atomic_store_explicit(&h->remote_hint[sc], 0, memory_order_relaxed);
			reclaim_remote(h, sc);
			if (h->cur[sc] != &dummy_meta) continue;
		}
		break;
	}
	if ((m = h->spare[sc])) {
		h->spare[sc] = 0;
	} else if (!(m = group_adopt(h, sc)) && !(m = group_create(h, sc))) {
		errno = ENOMEM;
		return 0;
	}
	for (struct meta *more = m->next, *nx; more; more = nx) {
		nx = more->next;        /* (adopted with m) */
		heap_ring_insert(h, sc, more);
	}
	heap_ring_insert(h, sc, m);
	h->cur[sc] = m;
found:;
	uint32_t a = m->avail;
	inuse_add(h, class_stride(sc));
	return enframe(m, a, __builtin_ctz(a), n);
}

/* Called by free when a slot went back to a group that was on the full
 * list or became entirely free.  The current group is kept even when empty
 * (hysteresis), but a big one gives its pages back; one other small (or
 * one-slot) empty group per class is kept as a spare, any other empty
 * group is released. */
void heap_group_regained(struct heap *h, struct meta *m)
{
	int sc = m->sc;
	if (m->in_full) {
		full_remove(h, sc, m);
		heap_ring_insert(h, sc, m);
	}
	group_collect_remote(m);
	if (m->avail != full_mask(m)) return;
	h->emptied++;
	/* (a big class's cache keeps its one slot: the slot pins only the
	 * current group, which stays anyway, and its pages are the ones the
	 * next malloc of the class would fault in again) */
	if (m != h->cur[sc] || class_stride(sc) < SLOT_PURGE_MIN) tc_set_limit(h, sc, 0);
	if (m == h->cur[sc]) {
		/* its pages go back now, or from dirty.c's list: a big
		 * class's freed slots are there, a small one's group may go */
		size_t page = page_size();
		if (m->mapped != MEM_NESTED && m->maplen > PURGE_MIN && m->maplen > page && !m->dirty &&
		    (class_stride(sc) >= SLOT_PURGE_MIN || !dirty_keep_group(h, m)))
			os_purge(m->mem + page, m->maplen - page), m->untouched = full_mask(m);
		return;
	}
	heap_ring_remove(h, sc, m);
	/* the spare: a small group, or a big class's group of one slot (the
	 * first a heap makes: another, bigger, took over when a second
	 * object came, and this one emptying says nothing of shrinking; its
	 * slot's pages are on dirty.c's list, bounded) */
	if (!h->spare[sc] && (group_bytes(sc, m->cnt) <= PURGE_MIN ||
			      (m->cnt == 1 && class_stride(sc) >= SLOT_PURGE_MIN))) {
		h->spare[sc] = m;
		return;
	}
	h->ngroups[sc]--;
	group_release(h, m);    /* (unlists m first: its pages go with it) */
	/* a heap that releases a group of a big class is shrinking: its other
	 * kept slots go too (not for small groups, which a program that
	 * churns small objects releases all the time) */
	if (class_stride(sc) >= SLOT_PURGE_MIN) dirty_purge(h, 1);
}

/* The checked allocation (options that need the slow paths; harden.c has
 * the checked free): inside a meta window, a random free slot with option
 * random, junk with option junk. */
static uint64_t next_random(struct heap *h)
{
	uint64_t x = h->rng;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return h->rng = x;
}

void *malloc_hardened(size_t n, int sc)
{
	int own = !os_caller;
	if (own) CALLER_SET();  /* as malloc_slow */
	int w = meta_open();
	struct heap *h = tl_heap;
	struct meta *m = h->cur[sc];
	unsigned char *p;
	uint32_t a = m->avail;
	if (a && opt.random && h != &empty_heap) {
		int k = __builtin_popcount(a), pick = next_random(h) % k;
		while (pick--) a &= a - 1;
		inuse_add(h, class_stride(sc));
		p = enframe(m, m->avail, __builtin_ctz(a), n);
	} else if (a) {
		inuse_add(h, class_stride(sc));  /* (a group: h is a thread's) */
		p = enframe(m, a, __builtin_ctz(a), n);
	} else {
		p = malloc_slow(n, sc);
	}
	meta_close(w);
	if (p && opt.junk) memset(p, JUNK_ALLOC, n);
	if (own) CALLER_CLEAR();
	return p;
}

/* The slot that holds a nested group of n bytes (group.c): what malloc
 * would give. */
void *heap_alloc_slot(size_t n)
{
	return alloc_class(size_to_class(n), n);
}

/* malloc's steps for class sc after the thread cache (alloc_class, heap.h):
 * the checked path, the current group, the refill. */
__attribute__((noinline)) void *alloc_uncached(size_t sc, size_t n)
{
	if (unlikely(opt_slow)) return malloc_hardened(n, (int)sc);
	struct heap *h = tl_heap;
	struct meta *m = h->cur[sc];
	uint32_t a = m->avail;
	if (likely(a)) {
		inuse_add(h, class_stride(sc));
		return enframe_inline(m, a, __builtin_ctz(a), n);
	}
	return malloc_slow(n, (int)sc);
}
