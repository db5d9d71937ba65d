/* heap.h - the small-object core (layer 3: slot.c, heap.c, release.c,
 * group.c, abandoned.c, dirty.c, populate.c) and what the layers above call: struct
 * heap and its thread cache, struct slot, the inline steps of the fast
 * paths; large.c, harden.c and the entry points' own declarations. */
#ifndef MALLOCNG_HEAP_H
#define MALLOCNG_HEAP_H

#include "meta.h"

/* A validated view of one live allocation. */
struct slot {
	struct meta *meta;
	unsigned char *p;
	size_t n;       /* bytes requested */
	int idx;
	int aligned;    /* of kind K_SLOW: not for the thread cache */
	uint32_t ev;    /* the slot's entry its header verified with */
};

HIDDEN void free_slot(struct slot *s);  /* free.c */
/* release.c */
HIDDEN void free_container(void *p);     /* a nested group's slot (group.c) */
HIDDEN void slot_release_with_pages(struct heap *h, struct meta *m, int idx, unsigned char *p);
HIDDEN void slot_release_or_cache(struct heap *h, struct meta *m, int idx, unsigned char *p);
static inline void slot_release(struct heap *h, struct meta *m, int idx)
{
	slot_release_or_cache(h, m, idx, 0);
}

/* ---- per-thread heaps (heap.c) ---- */
/* The thread cache: per class, a stack of freed slots (still counted as
 * allocated by their groups) that malloc reuses before touching any group.
 * A class's stack is TC_STRIDE entries of tc[], the first a NULL sentinel.
 * tc_top is the byte offset in the heap of the top slot, or of the
 * sentinel when the stack is empty, so that malloc's pop needs no count
 * (it stops at NULL); free may push while tc_top < tc_end (the sentinel's
 * offset + 8 x the class's limit).  Offsets, not pointers: 4 bytes each,
 * which keeps the first heap's head on the page it shares with the other
 * globals (see above; with pointers a first malloc cost a page more).
 * In empty_heap every tc_top and tc_end is the offset of full[0], NULL
 * there and never written: a thread without a heap caches nothing. */
#define TC_CAP 64
#define TC_STRIDE (TC_CAP + 1)
#define RB_N 32         /* the classes up to 1 KiB have an entry each */
#define DIRTY_N 16
#define HSPAN_N 8
#define DIRTY_MAX (4u << 20)    /* bytes of freed big slots a heap keeps */
#define DIRTY_SMALL_MAX (256u << 10) /* of those, emptied small groups */
#define DIRTY_TOTAL_MAX (16u << 20) /* all heaps together (dirty_total) */
struct heap {
	uint32_t tc_top[NCLASS];
	uint32_t tc_end[NCLASS];
	struct meta *cur[NCLASS];   /* ring of groups with free slots */
	struct meta *full[NCLASS];  /* groups found without free slots */
	struct meta *spare[NCLASS]; /* one detached empty group kept for reuse */
	uint16_t ngroups[NCLASS];   /* groups owned, drives new group sizes */
	_Atomic uint8_t remote_hint[NCLASS]; /* set by remote frees, per class */
	struct heap *next_free;
	struct meta *rec_stash;     /* free records kept for new groups */
	uint64_t rng;               /* random slot choice (option random) */
	uint64_t slow_classes;      /* classes malloc_slow served this period */
	uint64_t kept_classes;      /* classes whose ring may hold emptied groups */
	size_t emptied;             /* empty groups seen by heap_group_regained */
	ptrdiff_t inuse;            /* bytes of slots taken minus given back, not yet in os_count.inuse */
	uint32_t slow_ticks;        /* malloc_slow calls, for the decay check */
	uint32_t dirty_n;           /* entries of dirty[] (dirty.c) */
	size_t dirty_bytes;         /* their slots' bytes (dirty.c) */
	unsigned char *probe;       /* a big slot left unpopulated (populate.c) */
	uint32_t probe_n;           /* its request */
	int8_t pop_score;           /* populate big slots while > 0 */
	uint8_t big_n;              /* big requests, picks the probes */
	uint16_t rec_stash_n;       /* records on rec_stash (group.c) */
	void **quar;                /* quarantine ring (option quarantine) */
	uint32_t q_head, q_count;
	size_t q_bytes;
	/* slots freed into other threads' groups, not yet handed over: one
	 * group per entry (its record's index; 0, an area header's, for
	 * none), at its class mod RB_N (release.c).  8 bytes an entry: with
	 * pointers, 32 entries moved the first heap's thread cache across a
	 * page, and a first malloc cost 12 KiB */
	struct remote_batch {
		uint32_t mi;
		uint32_t bits;
	} rb[RB_N];
	/* groups with freed big slots whose pages are kept (dirty.c): the
	 * first dirty_n entries; heap_init clears the heap up to here */
	struct dirty_entry {
		struct meta *m;
		long stamp;         /* ms, when listed */
	} dirty[DIRTY_N];
	/* address ranges of the heap's own for its next mapped groups
	 * (group.c: hspan_take): the first hspan_n entries; an entry's len
	 * has its low bit set when its pages may be resident (a released
	 * group's), else it reads as zeros (the rest of a new mapping).
	 * The owner thread's; none while the heap has no thread (heap_destroy
	 * gives them back), so heap_init need not clear them */
	struct heap_span {
		unsigned char *base;
		size_t len;
		long stamp;         /* ms, when put (resident ones) */
	} hspan[HSPAN_N];
	uint32_t hspan_n;
	uint32_t hspan_kb;          /* KiB of the resident ones */
	/* last, so that a thread that never frees never touches it; a
	 * flexible array, so that empty_heap (which caches nothing) carries
	 * no storage for it: a heap takes HEAP_BYTES */
	void *tc[];                 /* NCLASS stacks of TC_STRIDE */
} __attribute__((aligned(64)));     /* heaps of two threads share no line */
#define HEAP_BYTES ((offsetof(struct heap, tc) + NCLASS * TC_STRIDE * sizeof(void *) + 63) & ~(size_t)63)

extern HIDDEN struct heap empty_heap;
/* The offset of the sentinel below class sc's stack, and its address (not
 * for empty_heap). */
static inline unsigned tc_bottom_off(int sc)
{
	return (unsigned)(offsetof(struct heap, tc) + (size_t)sc * TC_STRIDE * sizeof(void *));
}
static inline void **tc_at(struct heap *h, unsigned off)
{
	return (void **)((char *)h + off);
}
static inline void **tc_bottom(struct heap *h, int sc)
{
	return tc_at(h, tc_bottom_off(sc));
}
/* Push p on class sc's stack, which has room (below tc_end). */
static inline void tc_push(struct heap *h, size_t sc, void *p)
{
	unsigned top = h->tc_top[sc] + (unsigned)sizeof(void *);
	*tc_at(h, top) = p;
	h->tc_top[sc] = top;
}
static inline unsigned tc_count(struct heap *h, int sc)
{
	return h == &empty_heap ? 0 : (h->tc_top[sc] - tc_bottom_off(sc)) / sizeof(void *);
}
static inline unsigned tc_limit(struct heap *h, int sc)
{
	return h == &empty_heap ? 0 : (h->tc_end[sc] - tc_bottom_off(sc)) / sizeof(void *);
}
static inline void tc_set_limit(struct heap *h, int sc, unsigned limit)
{
	h->tc_end[sc] = (uint32_t)(tc_bottom_off(sc) + limit * sizeof(void *));
}
extern HIDDEN struct meta dummy_meta;
extern HIDDEN __thread struct heap *tl_heap;

/* The bytes in use, counted where slots move between a group and a
 * thread (a thread cache's slots count as in use), never on the thread
 * cache's paths: each heap counts the strides of the slots it takes from
 * groups and gives back, and hands its count to the process's
 * (os_inuse_add, which keeps the peak) when it reaches INUSE_FOLD either
 * way, and at thread exit.  The slot that holds a nested group does not
 * count (group.c, free_container); large objects count their mapping
 * (large.c).  mallocng(7), STATISTICS, says what the figure means. */
#define INUSE_FOLD (32 << 10)
HIDDEN void inuse_fold(struct heap *h);
static inline void inuse_add(struct heap *h, ptrdiff_t d)  /* h: not empty_heap */
{
	h->inuse += d;
	if (unlikely((size_t)(h->inuse + INUSE_FOLD) >= 2 * INUSE_FOLD)) inuse_fold(h);
}
static inline void inuse_add_any(struct heap *h, ptrdiff_t d)
{
	if (h == &empty_heap) os_inuse_add(d);
	else inuse_add(h, d);
}
HIDDEN struct heap *heap_get(void);
HIDDEN void *malloc_slow(size_t n, int sc);
HIDDEN struct heap *heap_for_free(void);
HIDDEN void remote_batch_flush(struct heap *h);
HIDDEN void tc_flush(struct heap *h, int sc, int keep);
HIDDEN int tc_default(int sc);
HIDDEN int heap_trim(struct heap *h);
HIDDEN void dirty_add(struct heap *h, struct meta *m, uint32_t bits);
HIDDEN void dirty_trim(struct heap *h);
HIDDEN void dirty_forget(struct heap *h, struct meta *m);
HIDDEN void dirty_drop(struct heap *h, struct meta *m);
HIDDEN void dirty_move(struct heap *from, struct heap *to, struct meta *m);
HIDDEN int dirty_keep_group(struct heap *h, struct meta *m);
HIDDEN int dirty_purge(struct heap *h, int all);
HIDDEN void dirty_exit(struct heap *h);
HIDDEN void dirty_purge_slot(struct meta *m, int idx, unsigned char *p);
HIDDEN void dirty_fork_child(void);
enum { FRESH_SLOT, FRESH_ZEROED, FRESH_LARGE };
HIDDEN void fresh_pages(void *p, size_t n, size_t room, int how);
HIDDEN void fresh_group(struct heap *h, struct meta *m);
/* Freed pages may be kept (dirty.c): not on the checked paths (hardening
 * options), nor with decay_ms=0, which promises to give them back at once. */
#define dirty_on() (!opt_slow && opt.decay_ms > 0)

/* ---- the opt-in checked paths: malloc_hardened (heap.c), free_hardened
 * (harden.c), the quarantine ring (release.c) ---- */
#define Q_CAP 1024
#define JUNK_ALLOC 0xa5
#define JUNK_FREE 0x5a
HIDDEN void *malloc_hardened(size_t n, int sc);
HIDDEN void free_hardened(struct heap *h, struct slot *s);
HIDDEN void quarantine_drain(struct heap *h, size_t keep_bytes);
HIDDEN void quarantine_push(struct heap *h, unsigned char *p, size_t n);
HIDDEN void *heap_alloc_slot(size_t n);

/* ---- lists of records, over m->prev and m->next ----
 * A list ends at NULL and takes new records at its head: a heap's full
 * groups (heap.c), the abandoned groups with room (abandoned.c).  A ring is
 * circular, entered at *head, which is `none` when the ring is empty: a
 * heap's groups with room (none: &dummy_meta, whose avail malloc reads
 * without a test), the full abandoned groups (none: NULL). */
static inline void list_push(struct meta **head, struct meta *m)
{
	m->prev = 0;
	m->next = *head;
	if (m->next) m->next->prev = m;
	*head = m;
}
static inline void list_remove(struct meta **head, struct meta *m)
{
	if (m->prev) m->prev->next = m->next;
	else *head = m->next;
	if (m->next) m->next->prev = m->prev;
	m->next = m->prev = 0;
}
/* Insert m after *head, or as the ring's only record. */
static inline void ring_insert(struct meta **head, struct meta *m, struct meta *none)
{
	struct meta *c = *head;
	if (c == none) {
		m->next = m->prev = m;
		*head = m;
		return;
	}
	m->prev = c;
	m->next = c->next;
	c->next->prev = m;
	c->next = m;
}
/* Take m out; *head moves on to m's next if it was m. */
static inline void ring_remove(struct meta **head, struct meta *m, struct meta *none)
{
	if (m->next == m) {
		*head = none;
	} else {
		m->prev->next = m->next;
		m->next->prev = m->prev;
		if (*head == m) *head = m->next;
	}
	m->next = m->prev = 0;
}

/* Move the slots other threads freed into m's group (its remote mask) to
 * its free slots; returns whether there were any.  The owner's, or the
 * lock holder's for an abandoned group.  The load first: the exchange
 * writes the record's line, which other threads' frees read. */
static inline int group_collect_remote(struct meta *m)
{
	if (!atomic_load_explicit(&m->remote, memory_order_relaxed)) return 0;
	m->avail |= atomic_exchange(&m->remote, 0);
	return 1;
}

/* ---- groups (group.c) ---- */
HIDDEN struct meta *group_create(struct heap *h, int sc);
HIDDEN void group_release(struct heap *h, struct meta *m); /* lock not held */
HIDDEN void record_stash_flush(struct heap *h); /* lock held */
HIDDEN void hspan_flush(struct heap *h, int all);
HIDDEN void hspan_fork_child(void);
/* ---- groups whose thread exited (abandoned.c) ---- */
HIDDEN struct meta *group_adopt(struct heap *h, int sc);
HIDDEN void group_abandon(struct meta *m);      /* lock held */
/* bundles: the groups an exited thread's heap keeps (abandoned.c) */
HIDDEN struct meta *bundle_ring(struct heap *h, int sc);
HIDDEN void bundle_open(struct heap *h);
HIDDEN void bundle_add(struct heap *h, struct meta *m);   /* lock held */
HIDDEN int bundle_room(void);                             /* lock held */
HIDDEN int bundle_park(struct heap *h);                   /* lock held */
HIDDEN struct heap *bundle_take(void);                    /* lock held */
HIDDEN struct meta *bundle_pop(struct heap *h, int sc);   /* lock held */
HIDDEN void bundle_sweep_held(struct meta **release);     /* lock held */
HIDDEN void bundle_sweep(struct heap *h);
HIDDEN int bundle_sweep_own(struct heap *h, struct meta **release); /* lock held */
HIDDEN int abandoned_release_slots(struct meta *m, uint32_t bits);
HIDDEN void heap_group_regained(struct heap *h, struct meta *m);
HIDDEN int abandoned_trim(void);
HIDDEN void bundle_decay(void);
HIDDEN size_t bundle_dirty_bytes(void);      /* lock held */

/* ---- large objects (large.c) ---- */
HIDDEN void *large_alloc(size_t n, size_t align, int zero);
HIDDEN void large_free(struct meta *m);
HIDDEN void *large_realloc(struct slot *s, size_t n);

/* ---- malloc.c, stats.c ---- */
HIDDEN void stats_collect(struct mallocng_stats *st);  /* stats.c */
HIDDEN void *alloc_small(size_t n);
HIDDEN void *alloc_aligned(size_t align, size_t n);

/* ---- slots (slot.c) ---- */
#define ALWAYS_INLINE static inline __attribute__((always_inline))
HIDDEN struct meta *slot_lookup(void *p, struct slot *s);
HIDDEN void *enframe(struct meta *m, uint32_t avail, int idx, size_t n);
#ifdef __clang__
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
/* A slot taken from a group's bitmap must really be free: its header is
 * zero (never used, or its pages given back), a stale one, or the voided
 * start of an aligned object.  A live header there means the bitmap was
 * rewritten (or the slot freed without passing free). */
HIDDEN NOIPA __attribute__((cold)) void *slot_not_free(void *p);
/* Not known to the compiler as noreturn (noipa), so that the call is a
 * jump and malloc's fast path needs no stack frame; caller: slot.c. */
HIDDEN NOIPA __attribute__((cold)) void *write_after_free(void *p, const void *caller);
HIDDEN __attribute__((noinline)) int next_header_ok(const unsigned char *q, const struct meta *m, int nidx);
HIDDEN _Noreturn __attribute__((noinline, cold)) void bad_header(uint64_t hdr, unsigned char *p, unsigned kind);
/* Whether old, the header at p of a slot its group lists as free, is one
 * a free slot may have: stale, or void (the tag covers p: a genuine header
 * for p names p's slot). */
HIDDEN int slot_free_header(uint64_t old, const unsigned char *p);

/* The first use of slot idx of m since its group was mapped or its pages
 * given back (m->untouched): the header's page may not be resident.  A
 * read there would map the shared zero page, and the header's write right
 * after would replace it: a second fault and, while other threads of the
 * process run, a TLB shootdown on every CPU they ran on.  An atomic add of
 * 0 faults the page in for writing at once and leaves the header as it
 * is, so that enframe's check reads the same value (a write access on
 * x86, and on arm64 with LSE; elsewhere it may read first, as before).
 * Below POPULATE_MIN the mark goes now (alloc_paged, which reads it at
 * and above, forgets it itself: slot_fresh). */
static inline void slot_first_touch(struct meta *m, int idx, unsigned char *p)
{
	if (class_stride(m->sc) < POPULATE_MIN) m->untouched &= ~(1u << idx);
	__atomic_fetch_add((uint32_t *)(void *)header_of(p), 0, __ATOMIC_RELAXED);
}

/* Take slot idx of m, whose free slots are a (the owner's m->avail):
 * the header first, then the bit, with release order, so that a thread
 * that reads the bit cleared then reads the header written (a zero header
 * of a slot in use is an overflow: next_header_ok).
 * m comes from the heap's ring, which is ordinary memory: it must be the
 * record that its own index names through the read-only area table, so
 * that a rewritten group pointer cannot make malloc follow a record
 * forged outside the meta areas.  The slot must really be free: its
 * header zero (never used, or its pages given back), stale (its last
 * use's), or the voided start of an aligned object; a live one means the
 * bitmap was rewritten, anything else a write after free. */
static inline __attribute__((always_inline)) void *enframe_inline(struct meta *m, uint32_t a, int idx,
								  size_t n)
{
	uint32_t mi = m->index & ((MAX_AREAS << AREA_SHIFT) - 1);
	if (unlikely(meta_at_index(mi) != m)) return slot_not_free(m);
	unsigned char *p = slot_at(m, (size_t)idx);
	if (unlikely(m->untouched >> idx & 1)) slot_first_touch(m, idx, p);
	uint64_t old = *header_of(p);
	_Atomic uint32_t *e = ent_at(mi, (unsigned)idx);
	uint32_t ev = ent_load(e);
	/* the common case inline: the stale live header of the slot's last
	 * use, naming this slot's entry (stale_ok(old, p, K_LIVE) without
	 * reading the entry again); any other header, slot_free_header */
	if (unlikely(old != 0) &&
	    !((old & (H_MI_MASK | H_IDX_MASK)) == h_low(mi, (unsigned)idx, 0) &&
	      tag_ok(old, p, K_LIVE, E_GBITS_PREV(ev))) &&
	    unlikely(!slot_free_header(old, p)))
		return slot_not_free(p);
	frame_ent(p, mi, (unsigned)idx, m->sc, n, class_room(m->sc), K_LIVE, e, ev);
	__atomic_store_n(&m->avail, a & ~(1u << idx), __ATOMIC_RELEASE);
	return p;
}

/* Reuse the slot on top of the thread cache (p, at top): its header must
 * still be the stale one its free left (else something wrote to it after
 * free, or the cache's pointer was rewritten); it names the record and
 * the slot, the class is the cache's, n's own (the header's bit 31 0). */
static inline __attribute__((always_inline)) void *tc_pop(struct heap *h, size_t sc, unsigned top,
							   unsigned char *p, size_t n)
{
	h->tc_top[sc] = (uint32_t)(top - sizeof(void *));     /* first: h and top die here */
	uint64_t old = *header_of(p);
	size_t room = class_room(sc);
	/* the header may have been rewritten: its record index must name an
	 * area before the entry is read */
	_Atomic uint32_t *e = ent_of(old);
	if (unlikely(!e)) return write_after_free(p, __builtin_return_address(0));
	uint32_t ev = ent_load(e);
	if (unlikely(!tag_ok(old, p, K_LIVE, E_GBITS_PREV(ev))))
		return write_after_free(p, __builtin_return_address(0));
	atomic_store_explicit(e, (ev & ~E_N_MASK) | (uint32_t)n, memory_order_relaxed);
	unsigned clen = check_len(room - n);
	uint64_t h2 = seal((old & (H_MI_MASK | H_IDX_MASK)) | (uint64_t)clen << H_CLEN_SHIFT, p, K_LIVE, E_GBITS(ev));
	put_canary(p + n, H_TAG(h2), clen);
	__atomic_store_n(header_of(p), h2, __ATOMIC_RELEASE);
	return p;
}

/* Full validation of p as a live header (K_LIVE for the entry points,
 * which also accept K_SLOW and K_LARGE; K_CONTAINER for free_container).
 * The entry that the header names is read before the tag is verified
 * (every area has an entry for every record number: meta.c), the record
 * only after.  A tag that fails is an invalid pointer, a corrupted
 * header, or (stale) a double free; a tag that verifies with a record
 * that does not match p is corrupted metadata. */
ALWAYS_INLINE struct meta *lookup(void *ptr, struct slot *s, unsigned want)
{
	unsigned char *p = ptr;
	if ((uintptr_t)p & (UNIT - 1)) fail("invalid pointer", p);
	if (unlikely(((uintptr_t)p & (MIN_PAGE - 1)) <= GROUP_HDR) && is_tomb(p)) fail("double free", p);
	uint64_t hdr = __atomic_load_n(header_of(p), __ATOMIC_ACQUIRE);
	_Atomic uint32_t *e = ent_of(hdr);
	if (!hdr || !e) bad_header(hdr, p, want);
	/* the tag first, with each kind the entry point accepts: nothing of
	 * the record is read before the header is known to be genuine (the
	 * record that a forged index names may not exist) */
	uint32_t ev = ent_load(e);
	unsigned kind = want;
	if (!tag_ok(hdr, p, want, E_GBITS(ev))) {
		if (want == K_LIVE && tag_ok(hdr, p, K_SLOW, E_GBITS(ev))) kind = K_SLOW;
		else if (want == K_LIVE && tag_ok(hdr, p, K_LARGE, E_GBITS(ev))) kind = K_LARGE;
		else bad_header(hdr, p, want);
	}
	struct meta *m = meta_at_index(H_META(hdr));
	int idx = (int)H_IDX(hdr);
	/* a genuine header whose record does not match p: the record was
	 * rewritten, or the header replayed after its generation came round */
	if (!m->mem || idx >= m->cnt || (kind == K_LARGE) != (m->sc == SC_LARGE)) fail("corrupted metadata", p);
	size_t n = (size_t)-1, room = 0, off = (size_t)(p - m->mem);
	if (kind == K_LARGE) {
		if (off < SLOT_HDR || off >= m->maplen) fail("corrupted metadata", p);
		room = m->maplen - off;
		if (m->size < room) n = m->size;
	} else if (m->sc < NCLASS) {
		size_t stride = class_stride(m->sc);
		/* p in slot idx (d < room: off below the slot's start wraps); at
		 * its start for K_LIVE and K_CONTAINER */
		size_t d = off - (GROUP_HDR + (size_t)idx * stride);
		if (d >= stride - SLOT_HDR || (d && kind != K_SLOW)) fail("corrupted metadata", p);
		room = stride - SLOT_HDR - d;
		if ((ev & E_N_MASK) <= room) n = ev & E_N_MASK;
	}
	int aligned = kind == K_SLOW;
	if (n == (size_t)-1) fail("corrupted metadata", p);
	/* a genuine header on a slot its group lists as free: a replayed
	 * header whose generation came round again */
	if (m->sc != SC_LARGE && (__atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
				  atomic_load_explicit(&m->remote, memory_order_relaxed)) >> idx & 1)
		fail("double free", p);
	size_t clen = check_len(room - n);
	if (H_CLEN(hdr) != clen) fail("corrupted metadata", p);
	if (clen ? !canary_ok(p + n, H_TAG(hdr), clen)
		 : m->sc != SC_LARGE && !next_header_ok(p + n + SLOT_HDR, m, idx + 1))
		fail("heap overflow", p);
	s->meta = m;
	s->p = p;
	s->n = n;
	s->idx = idx;
	s->aligned = aligned;
	s->ev = ev;
	return m;
}

/* The end of every free that passed its checks: the generation of the
 * entry e advances from ev, the value the header verified with. */
ALWAYS_INLINE void seal_freed(unsigned char *p, _Atomic uint32_t *e, uint32_t ev)
{
	if (unlikely(!ent_advance(e, ev))) fail("double free", p);
}

/* malloc's steps for class sc after the thread cache: the checked path,
 * the current group, the refill (heap.c). */
HIDDEN void *alloc_uncached(size_t sc, size_t n);
/* malloc's steps for class sc: the thread cache, else alloc_uncached, out
 * of line, so that the cache's path needs no callee-saved register and
 * malloc no stack frame. */
static inline __attribute__((always_inline)) void *alloc_class(size_t sc, size_t n)
{
	struct heap *h = tl_heap;
	unsigned top = h->tc_top[sc];
	unsigned char *p = *tc_at(h, top);  /* NULL: the sentinel, empty */
	if (likely(p)) return tc_pop(h, sc, top, p, n);
	return alloc_uncached(sc, n);
}

/* ---- populate.c ---- */
/* Slot i of m has no resident page (populate.c); the test forgets an
 * untouched slot's mark, as it is handed out now. */
static inline int slot_fresh(struct meta *m, int i)
{
	uint32_t bit = 1u << i;
	if (class_stride(m->sc) >= SLOT_PURGE_MIN) return !(m->dirty & bit);
	int fresh = (m->untouched & bit) != 0;
	m->untouched &= ~bit;
	return fresh;
}

#endif
