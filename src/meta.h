/* meta.h - layers 1 and 2: the class table (size_class.c), spans
 * (span.c), meta records and areas (meta.c), first use (init.c), and the
 * slot header's encoding and tag, which name a record. */
#ifndef MALLOCNG_META_H
#define MALLOCNG_META_H

#include "os.h"

/* ---- size classes (size_class.c) ---- */

/* ---- meta records (meta.c) ---- */
struct heap;
struct meta {
	union {
		struct {
		union {
			struct meta *prev; /* ring / full list / abandoned list */
			unsigned char *origin; /* large: the mapping mem was cut from */
		};
		struct meta *next;
		unsigned char *mem;        /* group base; NULL while the record is free */
		struct heap *owner;        /* NULL: abandoned, guarded by the lock */
		union {
			uint32_t avail;    /* free slots; written by the owner only */
			uint32_t rsv_pages; /* guarded large: PROT_NONE pages reserved
			                     * past maplen for growth, before the guard */
		};
		_Atomic uint32_t remote;   /* slots freed by other threads */
		uint32_t index;            /* this record's own index */
		uint8_t sc;                /* size class, or SC_LARGE */
		uint8_t cnt;               /* slots in the group, 1..32; 0 while free */
		uint8_t mapped;            /* enum record_mem: where mem lives */
		uint8_t in_full;           /* on the owner's full list */
		size_t maplen;             /* bytes mapped (mapped groups, large) */
		union {
			size_t size;       /* large: bytes requested */
			struct {
				uint32_t dirty;     /* group: freed slots that may keep
				                     * pages (dirty.c); the owner's only */
				uint32_t untouched; /* mapped group: slots not handed
				                     * out since mapped or given back
				                     * (heap.h: slot_first_touch; malloc.c:
				                     * alloc_paged); the owner's only */
			};
		};
		};
		/* 64 bytes on every ABI (a header's record offset is its
		 * number x 64; ILP32 pointers and size_t leave 20 unused) */
		unsigned char bytes_[64];
	};
};
_Static_assert(sizeof(struct meta) == 64, "a record is 64 bytes");
/* Where a record's memory lives (its `mapped` byte; 0 reads as false). */
enum record_mem {
	MEM_NESTED,     /* a group inside a slot of a bigger class (group.c) */
	MEM_MAPPED,     /* its own mapping of maplen bytes */
	MEM_GUARDED,    /* a large object's own mapping between guard pages,
	                 * rsv_pages more PROT_NONE past maplen (large.c) */
};

#define AREA_SHIFT 14           /* 16384 records of 64 bytes per area */
#define AREA_RECS (1u << AREA_SHIFT)
#define MAX_AREAS 512           /* every 23-bit index has a table entry */
_Static_assert(MAX_AREAS << AREA_SHIFT == 1 << 23, "meta index is 23 bits");

/* The first record of every area is its header (it holds nothing of the
 * secret: an over-read of the area learns no key). */
struct meta_area {
	uint32_t pad[14];          /* zero: read as a record, mem is NULL */
	uint32_t first;            /* its first record's index */
	uint32_t magic;            /* AREA_MAGIC: identifies an area in a dump */
};
#define AREA_MAGIC 0x6d657461u
_Static_assert(sizeof(struct meta_area) == sizeof(struct meta) &&
	       offsetof(struct meta, mem) + sizeof(void *) <= offsetof(struct meta_area, first) &&
	       offsetof(struct meta, cnt) < offsetof(struct meta_area, first),
	       "an area header reads as a free record (mem NULL, cnt 0), on every ABI");

/* The secret, the class table and the area table are written at
 * initialisation and when an area is added, and are read-only (mprotect)
 * the rest of the time: a stray or malicious write cannot forge the secret,
 * change a stride the checks rely on, or redirect an index (size_class.c). */
#define CLASS_OF_MAX 4096      /* class_of covers n + SLOT_HDR - 1 below this */
struct ro_globals {
	uint64_t key[4];                   /* mac's keys (key[1], key[3] odd);
	                                    * key[0] is never 0: also the
	                                    * "initialised" flag (init_done) */
	uint32_t stride[256];              /* class_stride; 0 past NCLASS: every
	                                    * value of a record's sc byte */
	uint32_t room[NCLASS];             /* class_room: stride - SLOT_HDR, the
	                                    * most user bytes of a slot */
	uint8_t class_of[CLASS_OF_MAX / UNIT];
	struct area_ref {
		struct meta_area *recs;    /* the area's records */
		_Atomic uint32_t *ents;    /* its slot entries (below) */
	} areas[MAX_AREAS];
} __attribute__((aligned(RO_ALIGN)));    /* whole pages, shared with nothing */
extern HIDDEN struct ro_globals ro;
/* Whether the keys are set (init_secret sets key[0] last, never to 0). */
static inline int init_done(void)
{
	return ro.key[0] != 0;
}
/* The stride of class sc (any value of a record's sc byte: 0 past NCLASS),
 * and its room: the most user bytes of a slot (sc < NCLASS).  Macros, not
 * inline functions: the index keeps the type of its expression, and the
 * fast paths compile as they were tuned (a parameter's conversion changes
 * their register choices). */
#define class_stride(sc) (ro.stride[sc])
#define class_room(sc) (ro.room[sc])
/* Seal ro (writable 0) or open it: whole pages up to RO_ALIGN (os.h). */
static inline void ro_protect(int writable)
{
	os_protect_ro(&ro, sizeof ro, writable);
}

/* Smallest class whose stride holds n user bytes plus SLOT_HDR.
 * Requires n <= MAX_SMALL.  Before initialisation (!init_done()) the table
 * is zero and small sizes map to class 0: malloc_slow recomputes. */
#define TABLE_MAX (CLASS_OF_MAX - SLOT_HDR)     /* the table covers n <= this */
static inline int table_class(size_t n)
{
	return ro.class_of[(n + SLOT_HDR - 1) >> 4];
}
static inline int size_to_class(size_t n)
{
	if (likely(n <= TABLE_MAX)) return table_class(n);
	size_t x = n + SLOT_HDR - 1;
	int b = (int)(sizeof x * 8 - 1) - __builtin_clzl(x);    /* x: size_t, as long */
	return 8 + (b - 7) * 4 + (int)((x >> (b - 2)) & 3);
}
HIDDEN void size_class_init(void);
extern HIDDEN _Atomic uint32_t meta_limit;
#define BOOT_RECS 8             /* area 0 (meta.c): header + 7 records */
extern HIDDEN uint32_t area0_recs;

/* Whether index i names a record that exists and may have been handed
 * out (stats walk records by index; area headers are not records). */
static inline int meta_index_used(uint32_t i)
{
	return (i & (AREA_RECS - 1)) && i < atomic_load_explicit(&meta_limit, memory_order_relaxed) &&
	       (i >= AREA_RECS || i < area0_recs);
}

HIDDEN struct meta *meta_alloc(void);   /* lock held */
HIDDEN void meta_free(struct meta *m);  /* lock held */
/* m, cleared to a free record (mem NULL, cnt 0: no lookup accepts it), on
 * the front of a list of free records through next: the global one
 * (meta_free, lock held) or a heap's own (group.c) */
HIDDEN void meta_push(struct meta **list, struct meta *m);
HIDDEN void init_secret(void);         /* init.c, lock held */
extern HIDDEN int opt_protect;   /* option protect_meta */
/* Option protect_meta: meta areas are read-only except inside a window,
 * which holds the global lock.  meta_open returns whether it opened one;
 * pass that to meta_close.  Both cost one test when the option is off. */
HIDDEN int meta_window_open(void);
HIDDEN void meta_window_close(void);
static inline int meta_open(void)
{
	return unlikely(opt_protect) ? meta_window_open() : 0;
}
static inline void meta_close(int opened)
{
	if (unlikely(opened)) meta_window_close();
}
static inline void ensure_init(void)
{
	extern HIDDEN void init_slow(void);
	if (unlikely(!init_done())) init_slow();
}

/* Record of index mi; only for indices below meta_limit. */
static inline struct meta *meta_at_index(uint32_t mi)
{
	return (struct meta *)ro.areas[mi >> AREA_SHIFT].recs + (mi & (AREA_RECS - 1));
}

static inline uint32_t full_mask(const struct meta *m)
{
	return (uint32_t)((2ull << (m->cnt - 1)) - 1);
}

static inline size_t group_bytes(int sc, int cnt)
{
	return GROUP_HDR + (size_t)cnt * class_stride(sc);
}

/* The user pointer of slot i of m's group (the slot's start: an aligned
 * object lies further in); slot cnt is the group's end. */
static inline unsigned char *slot_at(const struct meta *m, size_t i)
{
	return m->mem + GROUP_HDR + i * class_stride(m->sc);
}

/* ---- slot header and slot entries ----
 * Every slot (and every large object, as slot 0 of its record) has an
 * entry, out of band: 32 bits per slot, 32 entries per record, in an
 * array of each meta area's own (ro.areas[].ents, meta.c), next to the
 * records and like them never in user memory:
 * bits  0..16  the object's size n (small objects; 0 for a large one,
 *              whose size is in its record; the nested group's bytes for
 *              a container slot)
 * bits 17..31  the slot's generation, which every free advances (with a
 *              compare-and-swap on the entry, which decides two racing
 *              frees) and nothing else changes; it wraps after 2^15 frees
 *              of one slot and is kept across the reuse of a record.
 * The header, the 8 bytes before p:
 * bits  0..4   the slot's index in its group (0 for a large object)
 * bits  5..27  the index of the group's meta record: its record number in
 *              the area (bits 5..18), its area number (bits 19..27)
 * bits 28..30  the check value's length: min(slack, 4), the slack being
 *              the bytes from p + n to the end of the object's room (0:
 *              the object fills its slot; next_header_ok checks the next
 *              slot's header instead)
 * bit  31      K_LIVE: the slot's class less the class of the object's
 *              size (0 or 1: realloc shrinks in place by one class); 0
 *              for the other kinds
 * bits 32..63  tag: a keyed hash (mac, below) of p, bits 0..31, the
 *              header's kind and the slot's generation
 * A header is genuine only if its tag verifies against the secret keys;
 * it is live only if it verifies with the slot's current generation.
 * free leaves the header in place and advances the generation: a freed
 * slot's header is the header of its last use, stale (it verifies with
 * the generation before the current one, and only with it), wherever
 * the slot then waits (a thread cache, its group, the quarantine), and so
 * is any copy of a header saved while the object was live.  Writing a
 * live header back, or forging one, takes the keys; writing a stale one
 * back changes nothing.  The record and the entry are found from the
 * header's bits alone, and free's fast path needs no field of the
 * record: the class follows from the size and bit 31.
 *
 * Kinds (an input of the hash, not a bit of the header): a live object
 * at its slot's start in the class of its size or the next (K_LIVE: the
 * only kind free's fast path accepts); any other live small object
 * (K_SLOW): one moved up in its slot for alignment, whose slot start
 * keeps a header of kind K_VOID (sealed with generation 0; no entry point
 * accepts that kind), or one in a
 * bigger class (an aligned one that needed no move);
 * a large object (K_LARGE); the slot of a nested group (K_CONTAINER: only
 * free_container accepts it).  No genuine header is zero: a zero header
 * is a slot never used or whose pages were given back. */
#define H_IDX_MASK 31
#define H_MI_SHIFT 5
#define H_MI_MASK ((uint64_t)((MAX_AREAS << AREA_SHIFT) - 1) << H_MI_SHIFT)
#define H_CLEN_SHIFT 28
#define H_UP_SHIFT 31
#define H_LOW 0xffffffffull
#define H_IDX(h) ((unsigned)(h) & H_IDX_MASK)
#define H_META(h) ((uint32_t)((h) >> H_MI_SHIFT) & ((MAX_AREAS << AREA_SHIFT) - 1))
#define H_CLEN(h) ((unsigned)((h) >> H_CLEN_SHIFT) & 7)
#define H_UP(h) ((unsigned)((h) >> H_UP_SHIFT) & 1)
#define H_AREA(h) ((uint32_t)((h) >> (H_MI_SHIFT + AREA_SHIFT)) & (MAX_AREAS - 1))
#define H_TAG(h) ((uint32_t)((h) >> 32))
/* the record's byte offset in its area (record number x 64), and the
 * entry's in the area's entries (record number x 128 + index x 4) */
#define H_REC_OFF(h) (((h) << (6 - H_MI_SHIFT)) & ((uint64_t)(AREA_RECS - 1) << 6))
#define H_ENT_OFF(h) (((h) << 2) & ((uint64_t)(AREA_RECS * ENTS_PER_REC - 1) << 2))
_Static_assert(sizeof(struct meta) == 64, "H_REC_OFF is the record's offset");
_Static_assert(H_MI_SHIFT + AREA_SHIFT + 9 == H_CLEN_SHIFT && MAX_AREAS == 1 << 9,
	       "meta index ends below the check length");
/* The low bits of a header: slot idx of record mi, check length clen */
static inline uint64_t h_low(uint32_t mi, unsigned idx, unsigned clen)
{
	return (uint64_t)idx | (uint64_t)mi << H_MI_SHIFT | (uint64_t)clen << H_CLEN_SHIFT;
}
enum { K_LIVE, K_SLOW, K_LARGE, K_CONTAINER, K_VOID };

#define ENTS_PER_REC 32
#define E_N_BITS 17
#define E_N_MASK ((1u << E_N_BITS) - 1)
#define E_GEN_ONE (1u << E_N_BITS)      /* added to an entry: the next generation */
/* The generation of entry e where it sits (the size cleared), as mac
 * takes it, and the one before it (mod 2^15, as the entry wraps). */
#define E_GBITS(e) ((uint32_t)(e) & ~E_N_MASK)
#define E_GBITS_PREV(e) (((uint32_t)(e) - E_GEN_ONE) & ~E_N_MASK)
_Static_assert(MAX_SMALL <= E_N_MASK, "a small object's size fits its entry");
/* The entry of slot idx of record mi (below meta_limit), and the entry
 * that the bits of header h name, or NULL where their area does not exist
 * (a header that is not genuine). */
static inline _Atomic uint32_t *ent_at(uint32_t mi, unsigned idx)
{
	_Atomic uint32_t *e = ro.areas[(mi >> AREA_SHIFT) & (MAX_AREAS - 1)].ents;
	return e + (size_t)(mi & (AREA_RECS - 1)) * ENTS_PER_REC + (idx & H_IDX_MASK);
}
static inline _Atomic uint32_t *ent_of(uint64_t h)
{
	_Atomic uint32_t *e = ro.areas[H_AREA(h)].ents;
	return e ? (_Atomic uint32_t *)((char *)e + H_ENT_OFF(h)) : 0;
}
static inline uint32_t ent_load(_Atomic uint32_t *e)
{
	return atomic_load_explicit(e, memory_order_relaxed);
}

/* The keyed hash: two rounds of a full 64 x 64 -> 128-bit product whose
 * halves are xored (mum), over two key-masked words: p and the kind in
 * the first, the header's low 32 bits and the slot's generation in the
 * second; the second round multiplies the first's result, masked with a
 * third key, by a fourth.  Each output bit depends on every input and
 * key bit through a product of key-dependent terms: not linear in the
 * keys, and no xor or additive difference of inputs gives a predictable
 * difference of tags.  32 bits wide, so that a blind guess passes with
 * probability 2^-32.  Not a proven pseudo-random function
 * (doc/security.md).  p < 2^48: the first word is injective. */
/* The 128-bit product of a and b, its halves xored. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
#if defined(__x86_64__) && defined(__GNUC__)
	/* one mul, its two halves in rax and rdx: gcc's __int128 keeps the
	 * halves on the stack (two stores, two loads per tag) */
	uint64_t lo, hi;
	__asm__("mulq %3" : "=a"(lo), "=d"(hi) : "%0"(a), "rm"(b) : "cc");
	return lo ^ hi;
#elif defined(__SIZEOF_INT128__)
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	uint64_t ah = a >> 32, al = (uint32_t)a, bh = b >> 32, bl = (uint32_t)b;
	uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
	uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
	uint64_t lo = (uint32_t)ll | mid << 32;
	uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	return lo ^ hi;
#endif
}

/* The keys are operands in memory of the xors and of the last mul (x86-64):
 * kept in registers across the two tags of one malloc, they cost the fast
 * paths four registers, and malloc its stack frame.  key_xor is
 * x ^ ro.key[i]; mum_key3 is mum(x, ro.key[3]). */
#if defined(__x86_64__) && defined(__GNUC__)
static inline uint64_t key_xor(uint64_t x, int i)
{
	__asm__("xorq %1, %0" : "+r"(x) : "m"(ro.key[i]) : "cc");
	return x;
}
static inline uint64_t mum_key3(uint64_t x)
{
	uint64_t lo, hi;
	__asm__("mulq %2" : "=a"(lo), "=d"(hi) : "m"(ro.key[3]), "0"(x) : "cc");
	return lo ^ hi;
}
#else
#define key_xor(x, i) ((x) ^ ro.key[i])
#define mum_key3(x) mum(x, ro.key[3])
#endif
/* gbits: the generation as it sits in an entry (E_GBITS) */
static inline uint32_t mac(uint64_t low, const void *p, unsigned kind, uint32_t gbits)
{
	uint64_t a = key_xor((uint64_t)(uintptr_t)p << 16 | kind, 0);
	uint64_t b = key_xor(low | (uint64_t)gbits << (32 - E_N_BITS), 1);
	uint64_t x = mum(a, b);
	return (uint32_t)(mum_key3(key_xor(x, 2)) >> 32);
}

/* Whether hdr is a header of kind `kind` for p made with generation
 * gbits (E_GBITS). */
static inline int tag_ok(uint64_t hdr, const void *p, unsigned kind, uint32_t gbits)
{
	return H_TAG(hdr) == mac(hdr & H_LOW, p, kind, gbits);
}
/* The header of kind `kind` for p with low bits low and generation gbits. */
static inline uint64_t seal(uint64_t low, const void *p, unsigned kind, uint32_t gbits)
{
	return low | (uint64_t)mac(low, p, kind, gbits) << 32;
}
/* The voided start of an aligned object's slot. */
static inline uint64_t seal_void(uint32_t mi, unsigned idx, const void *q)
{
	return seal(h_low(mi, idx, 0), q, K_VOID, 0);
}
/* Whether hdr is a stale header of kind `kind` for p: made with the
 * generation before the current one of the entry it names (the header of
 * a freed slot's last use). */
static inline int stale_ok(uint64_t hdr, const void *p, unsigned kind)
{
	_Atomic uint32_t *e = ent_of(hdr);
	return e && tag_ok(hdr, p, kind, E_GBITS_PREV(ent_load(e)));
}

static inline uint64_t *header_of(const void *p)
{
	return (uint64_t *)((char *)p - SLOT_HDR);
}

/* Every write of a slot header is one relaxed atomic store (a plain mov):
 * the free of a neighbouring object that fills its slot may be reading it
 * (next_header_ok in slot.c).  Race checkers know it by this name. */
static inline __attribute__((always_inline)) void header_store(const void *p, uint64_t h)
{
	__atomic_store_n(header_of(p), h, __ATOMIC_RELAXED);
}

/* The check value: the min(slack, 4) bytes past the object are the tag's
 * (little-endian order).  An overflow cannot rewrite them blindly. */
static inline unsigned check_len(size_t slack)
{
	return slack < 4 ? (unsigned)slack : 4;
}
/* The tag as 4 bytes in little-endian order, read as a native word. */
static inline uint32_t canary_word(uint32_t tag)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap32(tag);
#else
	return tag;
#endif
}
static inline void put_canary(unsigned char *q, uint32_t tag, size_t len)
{
	if (len == 4) {
		__builtin_memcpy(q, &(uint32_t){ canary_word(tag) }, 4);
	} else if (len == 1) {
		/* 1..3 bytes: no loop (a register for the count) and no
		 * store of a second byte alone (%bh: rbx, callee-saved) */
		q[0] = (unsigned char)tag;
	} else if (len) {
		uint16_t w = (uint16_t)tag;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		w = __builtin_bswap16(w);
#endif
		__builtin_memcpy(q, &w, 2);
		if (len == 3) q[2] = (unsigned char)(tag >> 16);
	}
}
static inline int canary_ok(const unsigned char *q, uint32_t tag, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (q[i] != (unsigned char)(tag >> (8 * i))) return 0;
	return 1;
}

/* Write the live header of kind `kind` (K_LIVE, K_SLOW, K_CONTAINER)
 * of an object of n bytes at p, in slot idx of record mi, class sc, whose
 * room (the bytes from p to the next slot's header) is room (K_LIVE
 * becomes K_SLOW if sc is more than one class above n's): the size in the
 * slot's entry (its generation kept: only free changes it), the check
 * value, then the header, with release order: a thread that reads the
 * header with acquire order (next_header_ok, free) and then the entry
 * sees the size that goes with it.  The entry is the holder's: a free of
 * the slot (the other writer) needs the header written here.  frame_ent
 * takes the entry e (ent_at(mi, idx)) and its value ev, which the caller
 * read; frame reads them. */
static inline __attribute__((always_inline)) void frame_ent(unsigned char *p, uint32_t mi, unsigned idx,
							    unsigned sc, size_t n, size_t room, unsigned kind,
							    _Atomic uint32_t *e, uint32_t ev)
{
	atomic_store_explicit(e, (ev & ~E_N_MASK) | (uint32_t)n, memory_order_relaxed);
	unsigned clen = check_len(room - n);
	uint64_t low = h_low(mi, idx, clen);
	if (kind == K_LIVE) {
		unsigned up = sc - (unsigned)size_to_class(n);
		if (up <= 1) low |= (uint64_t)up << H_UP_SHIFT;
		else kind = K_SLOW;
	}
	uint64_t h = seal(low, p, kind, E_GBITS(ev));
	put_canary(p + n, H_TAG(h), clen);
	__atomic_store_n(header_of(p), h, __ATOMIC_RELEASE);
}
static inline __attribute__((always_inline)) void frame(unsigned char *p, uint32_t mi, unsigned idx,
							unsigned sc, size_t n, size_t room, unsigned kind)
{
	_Atomic uint32_t *e = ent_at(mi, idx);
	frame_ent(p, mi, idx, sc, n, room, kind, e, ent_load(e));
}

/* A large object: its size is in its record (the entry's size is 0), its
 * check value as long as the mapping allows. */
static inline void frame_large(unsigned char *p, uint32_t mi, size_t n, size_t room)
{
	_Atomic uint32_t *e = ent_at(mi, 0);
	uint32_t ev = ent_load(e) & ~E_N_MASK;
	atomic_store_explicit(e, ev, memory_order_relaxed);
	unsigned clen = check_len(room - n);
	uint64_t h = seal(h_low(mi, 0, clen), p, K_LARGE, E_GBITS(ev));
	put_canary(p + n, H_TAG(h), clen);
	__atomic_store_n(header_of(p), h, __ATOMIC_RELEASE);
}

/* The live-to-freed transition: one compare-and-swap from the entry ev
 * that the live header verified with to the next generation, so that of
 * two threads freeing one pointer at the same moment only one succeeds;
 * returns 0 for the other (a double free).  The header stays: stale.
 * In a process of one thread (os_single_threaded) nothing can write the
 * entry between the caller's read of ev and this write: a plain store,
 * which, unlike a locked instruction on x86, does not wait for every
 * earlier load to complete (the check value's, often a cache miss). */
static inline __attribute__((always_inline)) int ent_advance(_Atomic uint32_t *e, uint32_t ev)
{
	if (os_single_threaded()) {
		atomic_store_explicit(e, ev + E_GEN_ONE, memory_order_relaxed);
		return 1;
	}
	return atomic_compare_exchange_strong_explicit(e, &ev, ev + E_GEN_ONE, memory_order_relaxed,
						       memory_order_relaxed);
}

/* ---- spans: address ranges without an owner (span.c) ---- */
/* os_map, os_map_guarded, os_remap, retried once after span_trim(1) when
 * the mapping fails: address space may be short.  Legal with the lock
 * held (the lock is recursive). */
HIDDEN void *span_map(size_t len);
HIDDEN void *span_map_guarded(size_t len);
HIDDEN void *span_remap(void *p, size_t old, size_t len);
HIDDEN int span_trim(int all);
HIDDEN void span_decay(void);
#define DECAY_TICKS 256         /* malloc_slow calls between decay checks */
HIDDEN void span_retire(unsigned char *base, size_t len);
HIDDEN void span_retire_many(unsigned char *const *base, const size_t *len, int n);
HIDDEN void span_give_clean(unsigned char *base, size_t len);
HIDDEN int span_warm_has(size_t len);
HIDDEN void span_heap_left(void);
HIDDEN unsigned char *map_group(size_t *len, int *dirty, size_t *rest, int many);
HIDDEN unsigned char *span_map_cached(size_t len, size_t *got, int *fresh, unsigned char **origin);
HIDDEN void span_unmap_cached(unsigned char *base, size_t len, unsigned char *origin);

/* ---- heapmap.c: the heap map and the output files ---- */
enum { S_FREE, S_LIVE, S_CACHED, S_NESTED };
HIDDEN int slot_state(struct meta *m, int i, size_t *n);   /* lock held */
HIDDEN struct meta *meta_at(uint32_t i);                   /* a record in use, or NULL */
HIDDEN void out(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
HIDDEN int open_output(const char *path, int append, const char *what);
HIDDEN const char *expand_path(char *dst, size_t cap, const char *pat, const char *what);
HIDDEN int heap_map(const char *path, const char *what);
#define PEAK_FIRST (256u << 10) /* heap_map_peak: the first drawing */
extern HIDDEN int heap_map_armed;
HIDDEN void heap_map_setup(void);
HIDDEN void heap_map_poll(void);     /* test heap_map_armed first */
HIDDEN int heap_map_exit_due(void);

#endif
