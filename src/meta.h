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
				uint32_t untouched; /* mapped group: slots whose pages
				                     * past the first were never written
				                     * since mapped or given back (malloc.c:
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
	uint64_t recip[64];                /* slot_of's reciprocal
	                                    * of the stride; 0 past NCLASS: every
	                                    * value of a header's class field */
	uint8_t class_of[CLASS_OF_MAX / UNIT];
	struct area_ref {
		struct meta_area *recs;    /* the area's records */
		unsigned char *gens;       /* its slot generations (meta.c) */
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

/* The slot of a group at mem, class sc, that holds the byte at mem +
 * GROUP_HDR + off: off / stride by a reciprocal (RECIP_SHIFT), exact for
 * off below 32 strides, every group's size (size_class_init checks it,
 * and test_whitebox).  Any other off (p below mem, a corrupted header)
 * gives some number: callers test idx < cnt and the position. */
#define RECIP_SHIFT 40
static inline size_t slot_of(size_t off, unsigned sc)
{
	return (size_t)(((uint64_t)off * ro.recip[sc & 63]) >> RECIP_SHIFT);
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

/* ---- slot header ----
 * bits  0..5   size class of the slot (0..NCLASS-1), SC_LARGE for a large
 *              object; any other value fails (its stride is 0).  In a
 *              freed header: the slot index (bits 0..4, H_IDX), which
 *              malloc needs for the generation before it can trust the
 *              record, while the thread cache knows the class
 * bits  6..8   slack code r (small objects; 0 for large): the bytes from
 *              p + n to the next slot's header (the object's slack) when
 *              below 7; 7 means 7 or more, the exact count then being the
 *              32-bit word that ends the slot (slack_word)
 * bits  9..31  index of the group's meta record: its record number in the
 *              area (bits 9..22), its area number (bits 23..31)
 * bits 32..63  tag: a keyed hash (mac, below) of p, the object's size n,
 *              bits 0..31, the slot's generation and the header's kind
 * A header is genuine only if its tag verifies against the secret keys.
 * A live header has no slot index: it follows from p, the record's mem
 * and the class's stride (slot_of); the class gives the stride, so the
 * slack word's address (and the object's size) follows from the header
 * alone, without waiting for the record.
 * The kind is an input of the hash, not a bit of the header: turning a
 * live header into a freed one (free) or back (malloc from the thread
 * cache) takes the keys, and so does forging either.  The requested size
 * is an input too (stored in r and the slack word, both in-band): a
 * rewritten size makes the tag fail.
 *
 * Kinds: a live object's header (n its size; for a large object the size
 * is in its record and the hash takes n = 0); a freed slot's (n = 0, r =
 * 0); the slot of a nested group (container: only free_container accepts
 * it); the voided start of a slot whose object was moved up for alignment
 * (void).  No genuine header is zero: a zero header is a slot never used
 * or whose pages were given back. */
#define H_C_MASK 63
#define H_R_SHIFT 6
#define H_R_ESC 7
#define H_MI_SHIFT 9
#define H_MI_MASK ((uint64_t)((MAX_AREAS << AREA_SHIFT) - 1) << H_MI_SHIFT)
#define H_LOW 0xffffffffull
#define H_META(h) ((uint32_t)((h) >> H_MI_SHIFT) & ((MAX_AREAS << AREA_SHIFT) - 1))
#define H_CLASS(h) ((unsigned)(h) & H_C_MASK)
#define H_IDX(h) ((unsigned)(h) & 31)          /* freed headers only */
#define H_R(h) ((unsigned)((h) >> H_R_SHIFT) & 7)
#define H_AREA(h) ((uint32_t)((h) >> (H_MI_SHIFT + AREA_SHIFT)) & (MAX_AREAS - 1))
/* the record's byte offset in its area (record number x 64) */
#define H_REC_OFF(h) (((h) >> (H_MI_SHIFT - 6)) & ((uint64_t)(AREA_RECS - 1) << 6))
_Static_assert(sizeof(struct meta) == 64, "H_REC_OFF is the record's offset");
_Static_assert(NCLASS <= SC_LARGE && SC_LARGE <= H_C_MASK, "classes fit the header");
_Static_assert(H_MI_SHIFT + AREA_SHIFT + 9 == 32 && MAX_AREAS == 1 << 9, "meta index ends at bit 31");
#define H_TAG(h) ((uint32_t)((h) >> 32))
/* The low bits of a live header that a void one keeps: class and record */
#define H_KEEP (H_MI_MASK | H_C_MASK)
enum { K_LIVE, K_FREED, K_CONTAINER, K_VOID };

/* The keyed hash: two rounds of a full 64 x 64 -> 128-bit product whose
 * halves are xored (mum), over two key-masked words: p, n and the kind in
 * the first, the header's low 32 bits and the slot's generation in the
 * second; the second round multiplies the first's result, masked with a
 * third key, by a fourth.  Each output bit depends on every input and
 * key bit through a product of key-dependent terms: not linear in the
 * keys, and no xor or additive difference of inputs gives a predictable
 * difference of tags.  32 bits wide, so that a blind guess passes with
 * probability 2^-32.  Not a proven pseudo-random function
 * (doc/security.md).  p < 2^48 and is a multiple of UNIT, n < 2^18 for a
 * small object (0 for the others): the first word is injective. */
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
 * kept in registers across the two tags of one malloc or free, they cost
 * the fast paths four registers, and malloc its stack frame.  key_xor is
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
static inline uint32_t mac(uint64_t low, const void *p, size_t n, unsigned kind, unsigned gen)
{
	uint64_t a = key_xor((uint64_t)(uintptr_t)p << 16 | (uint64_t)n << 2 | kind, 0);
	uint64_t b = key_xor(low | (uint64_t)gen << 32, 1);
	uint64_t x = mum(a, b);
	return (uint32_t)(mum_key3(key_xor(x, 2)) >> 32);
}

/* ---- slot generations ----
 * Every slot (and every large object, as slot 0 of its record) has a
 * generation byte, out of band: 32 bytes per record, in an array of each
 * meta area's own (ro.areas[].gens, meta.c).  It is an input of the tag,
 * and free advances it before it seals the freed header: a header saved
 * while the object was live no longer verifies once the object is freed,
 * wherever the slot then waits (a thread cache, its group), and neither
 * does any header of an earlier use of the record.  (8 bits: it repeats
 * after 256 frees of one slot.)  Voided starts of aligned objects are
 * sealed with generation 0: they are never accepted as live. */
#define GENS_PER_REC 32
static inline unsigned char *gen_at(uint32_t mi, unsigned idx)
{
	unsigned char *g = ro.areas[(mi >> AREA_SHIFT) & (MAX_AREAS - 1)].gens;
	return g + (size_t)(mi & (AREA_RECS - 1)) * GENS_PER_REC + (idx & 31);
}
/* The generation of the slot that the bits low of a freed header name;
 * 0 where their area does not exist (the tag then fails anyway). */
static inline unsigned gen_of_freed(uint64_t low)
{
	uint32_t mi = H_META(low);
	if (unlikely(!ro.areas[(mi >> AREA_SHIFT) & (MAX_AREAS - 1)].gens)) return 0;
	return __atomic_load_n(gen_at(mi, H_IDX(low)), __ATOMIC_RELAXED);
}
/* The generation of the slot at p whose live (or container) header bits
 * low name its record (the index from p and the record's mem); 0 where
 * their area does not exist. */
static inline unsigned gen_of(uint64_t low, const void *p)
{
	uint32_t mi = H_META(low);
	const struct area_ref *ar = &ro.areas[(mi >> AREA_SHIFT) & (MAX_AREAS - 1)];
	if (unlikely(!ar->gens)) return 0;
	const struct meta *m = (const struct meta *)ar->recs + (mi & (AREA_RECS - 1));
	unsigned char *mem = __atomic_load_n(&((struct meta *)m)->mem, __ATOMIC_RELAXED);
	size_t idx = slot_of((size_t)((const unsigned char *)p - GROUP_HDR - mem), H_CLASS(low)) & 31;
	return __atomic_load_n(ar->gens + (size_t)(mi & (AREA_RECS - 1)) * GENS_PER_REC + idx,
			       __ATOMIC_RELAXED);
}
static inline unsigned kind_gen(uint64_t low, const void *p, unsigned kind)
{
	return kind == K_VOID ? 0 : kind == K_FREED ? gen_of_freed(low) : gen_of(low, p);
}

static inline uint64_t seal(uint64_t low, const void *p, size_t n, unsigned kind)
{
	return low | (uint64_t)mac(low, p, n, kind, kind_gen(low, p, kind)) << 32;
}

static inline int sealed(uint64_t hdr, const void *p, size_t n, unsigned kind)
{
	return H_TAG(hdr) == mac(hdr & H_LOW, p, n, kind, kind_gen(hdr, p, kind));
}

/* Whether hdr is a freed header for p. */
static inline int freed_ok(uint64_t hdr, const void *p)
{
	return (hdr & (7u << H_R_SHIFT)) == 0 && sealed(hdr, p, 0, K_FREED);
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

/* The 32-bit word that ends an object's room, holding its slack when the
 * slack code is H_R_ESC (unaligned: rooms are multiples of 8 only). */
static inline uint32_t slack_word(const unsigned char *p, size_t room)
{
	uint32_t w;
	__builtin_memcpy(&w, p + room - 4, 4);
	return w;
}

/* The check value: the bytes past the object, up to 4, are the tag's
 * (little-endian order); with an escaped slack code the slack word's 4
 * bytes are not among them.  An overflow cannot rewrite them blindly. */
static inline size_t canary_len(size_t slack, unsigned r)
{
	size_t k = r == H_R_ESC ? slack - 4 : slack;
	return k < 4 ? k : 4;
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

/* Write the header of kind K_LIVE (or K_CONTAINER) of an object of n
 * bytes at p whose room (the bytes from p to the next slot's header) is
 * room, with its slack code, its slack word and its check value; base is
 * the header's class and record bits (frame: of sc and mi), gen the
 * slot's generation (*gen_at(mi, idx)), or 0 with the generation in bits
 * 32..39 of base, as mac takes it.  The header goes last, with release
 * order: a reader of the header with acquire order (next_header_ok) sees
 * the slack word that goes with it. */
static inline __attribute__((always_inline)) void frame_bits(unsigned char *p, uint64_t base,
							     size_t n, size_t room, unsigned kind,
							     unsigned gen)
{
	size_t slack = room - n;
	unsigned r = slack < H_R_ESC ? (unsigned)slack : H_R_ESC;
	uint64_t low = base | (uint64_t)r << H_R_SHIFT;
	uint64_t h = (low & H_LOW) | (uint64_t)mac(low, p, n, kind, gen) << 32;
	if (r == H_R_ESC) {
		uint32_t w = (uint32_t)slack;
		__builtin_memcpy(p + room - 4, &w, 4);
	}
	put_canary(p + n, H_TAG(h), canary_len(slack, r));
	__atomic_store_n(header_of(p), h, __ATOMIC_RELEASE);
}

/* frame_bits with the header's record index mi and class sc */
static inline __attribute__((always_inline)) void frame(unsigned char *p, uint32_t mi, unsigned sc,
							size_t n, size_t room, unsigned kind,
							unsigned gen)
{
	frame_bits(p, (uint64_t)sc | (uint64_t)mi << H_MI_SHIFT, n, room, kind, gen);
}

/* A large object: its size is in its record, the header has r = 0 and
 * the hash takes n = 0; its check value is as long as the mapping allows. */
static inline void frame_large(unsigned char *p, uint32_t mi, size_t n, size_t room)
{
	uint64_t h = seal((uint64_t)mi << H_MI_SHIFT | SC_LARGE, p, 0, K_LIVE);
	put_canary(p + n, H_TAG(h), room - n < 4 ? room - n : 4);
	header_store(p, h);
}

/* The size of the small object at p whose header (verified or not) is
 * hdr, given its room; (size_t)-1 if its slack code or word is impossible. */
static inline size_t object_size(const unsigned char *p, uint64_t hdr, size_t room)
{
	unsigned r = H_R(hdr);
	if (r != H_R_ESC) return r <= room ? room - r : (size_t)-1;
	uint32_t slack = slack_word(p, room);
	return slack >= H_R_ESC && slack <= room ? room - slack : (size_t)-1;
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
