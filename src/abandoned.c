/* abandoned.c - groups whose thread exited: the abandoned lists, the
 * dormant heaps' bundles, adoption by other threads, and the frees into
 * such groups.
 *
 * Invariants:
 * - owner == NULL  <=>  the group is abandoned (lock held to touch): on
 *   abandoned[sc] if it had a free slot when last looked at (in_full 0),
 *   else (in_full 1) on the ring abandoned_full[sc], or (in_full 2) in the
 *   bundle of the heap whose thread left it (below);
 * - a group on abandoned[sc] is never empty: the free that empties an
 *   abandoned group releases it.
 * Why two lists: adoption takes from the front, and a thread that adopts
 * full groups abandons them again at its exit, at the front; with one
 * list, threads that come and go kept cycling the same full groups while
 * the ones with room behind them were never reached, and every thread
 * made new groups (memory grew with the number of threads).
 */
#include "internal.h"

static struct meta *abandoned[NCLASS] COLD_BSS;      /* with free slots */
static struct meta *abandoned_full[NCLASS] COLD_BSS; /* ring: none seen */
static _Atomic int abandoned_n;  /* groups on the lists and in bundles (a hint outside the lock) */
/* Per class, whether an abandoned group of the class may have a free slot
 * (on abandoned[], or in a bundle with room): set after the room is made
 * (group_abandon, bundle_add, a free into an abandoned group), cleared by
 * group_adopt before it looks (so that room made meanwhile sets it
 * again), so that a thread that needs a group takes the lock only when
 * it may find one: the full groups of dormant heaps are many, and a
 * lookup that finds none cost a lock hold per new group.  full_n counts
 * the groups on abandoned_full[] (which adopt_from_full looks at). */
static _Atomic uint8_t adopt_hint[NCLASS] COLD_BSS;
static _Atomic int full_n[NCLASS] COLD_BSS;

static void hint_room(int sc)
{
	if (!atomic_load_explicit(&adopt_hint[sc], memory_order_relaxed))
		atomic_store(&adopt_hint[sc], 1);
}

/* Bundles.  A heap whose thread exits keeps the groups it still has
 * objects in, abandoned (owner NULL), in a ring per class of its own (its
 * bundle), and waits on the list `dormant` for the next thread that needs
 * a heap: that thread takes the heap and its groups in the lock hold that
 * gives it a heap (heap_get, bundle_pop), instead of adopting them one
 * lock hold at a time, and threads that come and go (a server's
 * generations of workers) keep their memory whole from one to the next.
 * Meanwhile a bundled group is an abandoned one like the others, but for
 * one thing: a free into it always goes into its remote mask (one atomic
 * operation), and the groups such frees may have emptied are released
 * by a sweep of the bundles every SWEEP_AT of them (abandoned_release_slots,
 * bundle_sweep); an adopter that finds no abandoned group
 * of its class takes one with room from a bundle (group_adopt); malloc_trim
 * releases the emptied ones (abandoned_trim).  So a bundle pins no
 * more memory than the same groups abandoned one by one.  The rings are
 * circular through sentinel records kept in the heap's thread cache
 * (unused while its thread is gone: heap.c zeroes them again when the
 * heap is taken), so that a group leaves its ring without its head;
 * groups with room are in front of the sentinel, full ones behind it.
 * dormant, dormant_n, the rings and the in_full 2 mark are the lock's;
 * at most DORMANT_MAX heaps wait (the lookups of group_adopt walk them):
 * the groups of any other exiting heap go to the global lists. */
#define DORMANT_MAX 64
static struct heap *dormant COLD_BSS;   /* through next_free, newest first */
static int dormant_n COLD_BSS;
/* Whether a dormant heap may list kept pages (dirty.c): set when one is
 * parked with some, cleared by bundle_decay when none has any left (a
 * hint for taking the lock). */
static _Atomic int dormant_kept COLD_BSS;
_Static_assert(offsetof(struct heap, tc) + 64 + NCLASS * sizeof(struct meta) <= HEAP_BYTES,
	       "a bundle's sentinels fit in the thread cache");

struct meta *bundle_ring(struct heap *h, int sc)
{
	uintptr_t tc = (uintptr_t)h + offsetof(struct heap, tc);
	return (struct meta *)((tc + 63) & ~(uintptr_t)63) + sc;
}

static void abandoned_unlink(struct meta *m)
{
	atomic_fetch_sub_explicit(&abandoned_n, 1, memory_order_relaxed);
	if (m->in_full == 2) {
		m->prev->next = m->next;        /* (a sentinel ring) */
		m->next->prev = m->prev;
		m->next = m->prev = 0;
	} else if (m->in_full) {
		ring_remove(&abandoned_full[m->sc], m, 0);
		atomic_fetch_sub_explicit(&full_n[m->sc], 1, memory_order_relaxed);
	} else {
		list_remove(&abandoned[m->sc], m);
	}
	m->in_full = 0;
}

/* Ready h's bundle (its thread is exiting; no lock needed: nobody else
 * sees h). */
void bundle_open(struct heap *h)
{
	for (int sc = 0; sc < NCLASS; sc++) {
		struct meta *s = bundle_ring(h, sc);
		s->next = s->prev = s;
	}
}

/* Put m (lock held, owner already NULL) in h's bundle. */
void bundle_add(struct heap *h, struct meta *m)
{
	struct meta *s = bundle_ring(h, m->sc);
	atomic_fetch_add_explicit(&abandoned_n, 1, memory_order_relaxed);
	group_collect_remote(m);
	m->in_full = 2;
	if (m->avail) {
		hint_room(m->sc);
		m->prev = s, m->next = s->next;
	} else {
		m->next = s, m->prev = s->prev;
	}
	m->prev->next = m;
	m->next->prev = m;
}

/* Put h, whose bundle holds a group or more, on the dormant list (lock
 * held); 0 if the list is full. */
int bundle_park(struct heap *h)
{
	if (dormant_n >= DORMANT_MAX) return 0;
	if (h->dirty_n) atomic_store_explicit(&dormant_kept, 1, memory_order_relaxed);
	h->next_free = dormant;
	dormant = h;
	dormant_n++;
	return 1;
}

/* Whether an exiting heap may keep its groups in a bundle (lock held). */
int bundle_room(void)
{
	return dormant_n < DORMANT_MAX;
}

/* The newest dormant heap, off the list (lock held), or NULL. */
struct heap *bundle_take(void)
{
	struct heap *h = dormant;
	if (h) {
		dormant = h->next_free;
		dormant_n--;
	}
	return h;
}

/* The first group of class sc of h's bundle, out of it, its remote slots
 * collected (lock held), or NULL. */
struct meta *bundle_pop(struct heap *h, int sc)
{
	struct meta *s = bundle_ring(h, sc), *m = s->next;
	if (m == s) return 0;
	abandoned_unlink(m);
	group_collect_remote(m);
	return m;
}

/* A free that may have emptied a bundled group leaves it to a sweep
 * (bundle_sweep): the group, in a bundle with other groups, needs no
 * move that only the lock may make, so the free is one atomic operation
 * like any other, and a consumer that empties the groups of a producer
 * that exited takes the lock once per SWEEP_AT groups instead of once
 * per group.  sweep_n counts such frees, sweep_class marks their
 * classes (both atomic, reset by the sweep under the lock); at most
 * SWEEP_AT - 1 emptied groups wait for the next sweep, the next thread
 * exit (heap_destroy sweeps in the lock hold it takes anyway), a
 * heap_get that takes their heap, an adopter or malloc_trim. */
#define SWEEP_AT 16
static _Atomic int sweep_n;
static _Atomic uint8_t sweep_class[NCLASS] COLD_BSS;

/* Move the empty groups of the bundle ring s of heap b to *release (lock
 * held), off b's list of kept pages; returns how many groups stay on it. */
static int bundle_sweep_ring(struct heap *b, struct meta *s, struct meta **release)
{
	int kept = 0;
	for (struct meta *m = s->next, *nx; m != s; m = nx) {
		nx = m->next;
		group_collect_remote(m);
		if (m->avail == full_mask(m)) {
			abandoned_unlink(m);
			if (m->dirty) dirty_forget(b, m);
			m->next = *release;
			*release = m;
		} else {
			kept++;
		}
	}
	return kept;
}

/* The same for class sc of every dormant heap's bundle. */
static void bundle_sweep_class(int sc, struct meta **release)
{
	for (struct heap *b = dormant; b; b = b->next_free) bundle_sweep_ring(b, bundle_ring(b, sc), release);
}

/* Move the bundled groups emptied since the last sweep to *release (lock
 * held). */
void bundle_sweep_held(struct meta **release)
{
	if (!atomic_load_explicit(&sweep_n, memory_order_relaxed)) return;
	atomic_store(&sweep_n, 0);
	for (int sc = 0; sc < NCLASS; sc++) {
		if (!atomic_load_explicit(&sweep_class[sc], memory_order_relaxed)) continue;
		atomic_store(&sweep_class[sc], 0);
		bundle_sweep_class(sc, release);
	}
}

/* Release the bundled groups emptied since the last sweep, their records
 * to h's stash; again while releasing them emptied more (the container
 * groups that held nested ones), a level at a time. */
void bundle_sweep(struct heap *h)
{
	for (int pass = 0; pass < 4 && atomic_load_explicit(&sweep_n, memory_order_relaxed); pass++) {
		struct meta *release = 0;
		os_lock();
		bundle_sweep_held(&release);
		os_unlock();
		while (release) {
			struct meta *m = release;
			release = m->next;
			group_release(h, m);
		}
	}
}

/* Move the emptied groups of h's own bundle (its thread exiting, h not
 * parked yet) to *release (lock held); returns the groups it keeps. */
int bundle_sweep_own(struct heap *h, struct meta **release)
{
	int kept = 0;
	for (int sc = 0; sc < NCLASS; sc++) kept += bundle_sweep_ring(h, bundle_ring(h, sc), release);
	return kept;
}

static void bundle_emptied(int sc)
{
	if (!atomic_load_explicit(&sweep_class[sc], memory_order_relaxed))
		atomic_store(&sweep_class[sc], 1);
	if (atomic_fetch_add(&sweep_n, 1) + 1 >= SWEEP_AT) bundle_sweep(tl_heap);
}

/* A bundled group of class sc with a free slot (lock held), or NULL; its
 * kept pages, if any, pass to h's list with it. */
#define ADOPT_BATCH 3
static struct meta *adopt_from_bundles(struct heap *h, int sc)
{
	for (struct heap *b = dormant; b; b = b->next_free) {
		struct meta *s = bundle_ring(b, sc);
		for (struct meta *m = s->next; m != s; m = m->next)
			if (m->avail || atomic_load_explicit(&m->remote, memory_order_relaxed)) {
				abandoned_unlink(m);
				dirty_move(b, h, m);
				return m;
			}
	}
	return 0;
}

/* Put m on the list its free slots say (lock held, owner already NULL). */
void group_abandon(struct meta *m)
{
	atomic_fetch_add_explicit(&abandoned_n, 1, memory_order_relaxed);
	group_collect_remote(m);
	if (!m->avail) {
		/* at the front of the ring: in after the last, then the head */
		struct meta **head = &abandoned_full[m->sc], *last = *head ? (*head)->prev : 0;
		m->in_full = 1;
		ring_insert(&last, m, 0);
		*head = m;
		atomic_fetch_add_explicit(&full_n[m->sc], 1, memory_order_relaxed);
		return;
	}
	m->in_full = 0;
	list_push(&abandoned[m->sc], m);
	hint_room(m->sc);
}

/* Slots that other threads freed into a full abandoned group while its
 * owner was exiting (slot_release_remote read the owner just before) wait in
 * its remote mask: before a new group is made, a few full groups are
 * looked at, in turn around the ring, so that every one is seen again
 * after at most (ring length / ADOPT_LOOK) new groups. */
#define ADOPT_LOOK 4
static struct meta *adopt_from_full(int sc)
{
	for (int k = 0; k < ADOPT_LOOK && abandoned_full[sc]; k++) {
		struct meta *m = abandoned_full[sc];
		abandoned_full[sc] = m->next;
		if (group_collect_remote(m)) {
			abandoned_unlink(m);
			return m;
		}
	}
	return 0;
}

/* Take over groups finished threads left behind that have free slots:
 * a list through next, NULL if none. */
struct meta *group_adopt(struct heap *h, int sc)
{
	struct meta *got, *more = 0;
	if (!atomic_load_explicit(&adopt_hint[sc], memory_order_relaxed) &&
	    !atomic_load_explicit(&full_n[sc], memory_order_relaxed))
		return 0;
	os_lock();
	atomic_store(&adopt_hint[sc], 0);
	if ((got = abandoned[sc])) abandoned_unlink(got);
	else if (!(got = adopt_from_full(sc))) got = adopt_from_bundles(h, sc);
	/* then more with room, from the list and the bundles: up to
	 * ADOPT_BATCH for one lock hold (a thread that needed a group of a
	 * class soon needs the next) */
	for (int k = 0; got;) {
		group_collect_remote(got);
		__atomic_store_n(&got->owner, h, __ATOMIC_RELAXED);
		h->ngroups[sc]++;
		got->next = more;
		more = got;
		if (++k == ADOPT_BATCH) break;
		if ((got = abandoned[sc])) abandoned_unlink(got);
		else got = adopt_from_bundles(h, sc);
	}
	if (more) atomic_store(&adopt_hint[sc], 1);     /* others may remain */
	os_unlock();
	dirty_trim(h);  /* (pages taken from bundles: within h's bounds) */
	return more;
}

/* free() of slots (bits) in an abandoned group.  While other slots of the
 * group are in use (neither in avail nor in remote, nor among bits), this
 * free cannot empty it; if the group is also on abandoned[] (it has room:
 * one on the full ring must move there, under the lock, so that adopters
 * find it before they make new groups), the bits go into its remote mask with one atomic
 * operation, as for a group another thread owns, and whoever takes the
 * group next collects them (group_adopt, adopt_from_full, the locked path
 * below, abandoned_trim).  Nothing of m is read after that operation but
 * its owner, for the hint (a record is never unmapped: a stale read only
 * sets a hint).  Two threads that free a group's last two slots at the
 * same moment may both take this path: the group, empty, then waits
 * abandoned until a thread adopts it or malloc_trim releases it.
 * Otherwise, under the lock: the group stays abandoned (it moves to
 * abandoned[] if it was full), and is released when this empties it.
 * The freeing thread does not adopt it: a thread that only frees, or no
 * longer allocates from the class, would collect groups it never looks at
 * again, and the frees of other threads into them would wait there for
 * good; a thread that allocates from the class takes the group from
 * abandoned[] when it needs one (group_adopt).  Returns 0 if another
 * thread adopted the group meanwhile (the caller then frees the slots as
 * remote ones). */
int abandoned_release_slots(struct meta *m, uint32_t bits)
{
	uint32_t avail = __atomic_load_n(&m->avail, __ATOMIC_RELAXED);
	uint32_t remote = atomic_load_explicit(&m->remote, memory_order_relaxed);
	if (avail & bits) fail("double free", m->mem);
	uint8_t in_full = __atomic_load_n(&m->in_full, __ATOMIC_RELAXED);
	int others = (full_mask(m) & ~(avail | remote | bits)) != 0;
	if ((others && in_full != 1) || in_full == 2) {
		int sc = m->sc;
		unsigned char *mem = m->mem;
		if (atomic_fetch_or(&m->remote, bits) & bits) fail("double free", mem);
		struct heap *owner = __atomic_load_n(&m->owner, __ATOMIC_RELAXED);
		if (owner && !atomic_load_explicit(&owner->remote_hint[sc], memory_order_relaxed))
			atomic_store_explicit(&owner->remote_hint[sc], 1, memory_order_relaxed);
		else if (!owner)
			hint_room(sc);
		if (!others && !owner) bundle_emptied(sc);
		return 1;
	}
	os_lock();
	if (m->owner) {
		os_unlock();
		return 0;
	}
	if (m->avail & bits) fail("double free", m->mem);
	m->avail |= bits;
	group_collect_remote(m);
	int empty = m->avail == full_mask(m);
	if (empty) {
		abandoned_unlink(m);
	} else if (m->in_full == 1) {
		abandoned_unlink(m);
		group_abandon(m);               /* to abandoned[]: it has room */
	}
	os_unlock();
	if (empty) group_release(tl_heap, m);
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
			group_collect_remote(m);
			if (m->avail == full_mask(m)) {
				abandoned_unlink(m);
				m->next = release;
				release = m;
			}
		}
		bundle_sweep_class(sc, &release);
	}
	for (struct heap *b = dormant; b; b = b->next_free) n += dirty_purge(b, 1);
	os_unlock();
	while (release) {
		struct meta *m = release;
		release = m->next;
		group_release(tl_heap, m), n++;
	}
	return n;
}

/* The pages dormant heaps keep (listed in their dirty lists, lock held). */
size_t bundle_dirty_bytes(void)
{
	size_t n = 0;
	for (struct heap *b = dormant; b; b = b->next_free) n += b->dirty_bytes;
	return n;
}

/* Give back the pages dormant heaps have kept longer than decay_ms, as
 * their threads would (dirty_purge): called with span_decay from every
 * thread's malloc_slow, at most every decay_ms / 8, and takes the lock
 * only while some dormant heap keeps pages. */
void bundle_decay(void)
{
	static _Atomic long next_check;
	if (!atomic_load_explicit(&dormant_kept, memory_order_relaxed)) return;
	long now = os_now_ms(), next = atomic_load_explicit(&next_check, memory_order_relaxed);
	if (now < next || !atomic_compare_exchange_strong(&next_check, &next, now + opt.decay_ms / 8))
		return;
	int left = 0;
	os_lock();
	for (struct heap *b = dormant; b; b = b->next_free) {
		dirty_purge(b, 0);
		left |= b->dirty_n != 0;
	}
	atomic_store_explicit(&dormant_kept, left, memory_order_relaxed);
	os_unlock();
}
