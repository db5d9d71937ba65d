/* meta.c - meta areas, the secret, and meta records.
 *
 * Invariants:
 * - every meta record lives in an area of AREA_RECS records mapped on its
 *   own (area 0: boot_area, below), followed by the records' slot
 *   entries (ENTS_PER_REC of 32 bits each, meta.h), between guard
 *   pages; record 0 of each area is the area header (AREA_MAGIC, its
 *   first index: no secret); protect_meta seals the records, not the
 *   entries, which every malloc and free writes;
 * - record index i lives at ro.areas[i >> AREA_SHIFT].recs, slot i & (AREA_RECS-1);
 *   only indices below meta_limit have ever been handed out, so a group
 *   header can be resolved to a record without trusting any pointer in it;
 * - a free record has mem == NULL and sits on records.free_list (lock held),
 *   its bit set in free_listed (lock held), or on a heap's stash
 *   (group.c: its entries stay);
 * - a slot's generation is kept across the reuse of its record, except
 *   that a page of entries whose records are all on the free list (or
 *   never handed out) is given back once PURGE_MIN_FREE of its area's
 *   records are there (entries_purge), and a record handed
 *   out with all its entries zero gets random generations
 *   (record_entries_ready): a header saved from an earlier use of the
 *   record does not verify on the next one but by chance (2^-15).
 * - area 0 is boot_area, BOOT_RECS records in .bss next to the other
 *   globals, so that a process that mallocs a little touches no meta
 *   page of its own but its entries' (the first malloc: 12 KiB, see os.h: COLD_BSS); its
 *   indices BOOT_RECS..AREA_RECS-1 are never handed out
 *   (meta_index_used).  Under protect_meta area 0 is mapped like the
 *   others, since boot_area shares its page with globals that must stay
 *   writable.
 */
#include "internal.h"

/* Read on every malloc and free, written almost never: kept on cache
 * lines of their own, away from the counters and the lock. */
HIDDEN _Atomic uint32_t meta_limit __attribute__((aligned(64)));

/* The record allocator (lock held): freed records, and the next index
 * never handed out. */
static struct {
	struct meta *free_list;
	uint32_t next_index;
} __attribute__((aligned(64))) records;

static struct meta boot_area[BOOT_RECS] __attribute__((aligned(64)));
/* An area's entries: one for every record number, since free's fast path
 * reads the entry that any header names before its tag is verified; area
 * 0's are mapped on their own (between guards) when the boot records are
 * first used, not in .bss, where 2 MiB would push the globals that a
 * first malloc writes off their page on targets without COLD_BSS. */
#define AREA_ENTS_BYTES (AREA_RECS * ENTS_PER_REC * sizeof(uint32_t))
/* A mapped area: records, entries, then the bitmap of its records on the
 * free list (AREA_RECS bits, in a MAX_PAGE of its own) */
#define AREA_BYTES (AREA_RECS * sizeof(struct meta) + AREA_ENTS_BYTES + MAX_PAGE)
_Static_assert(AREA_BYTES % MAX_PAGE == 0 && AREA_RECS * sizeof(struct meta) % MAX_PAGE == 0 &&
	       AREA_RECS / 8 <= MAX_PAGE, "an area and its records are whole pages (guards, protect_meta)");
HIDDEN uint32_t area0_recs = AREA_RECS;  /* records that exist in area 0 */


/* The bitmap of a mapped area's records on records.free_list (lock
 * held), or NULL for the boot records (never purged).  Read by
 * entries_purge alone, so that it reads no field of records in use. */
/* Records of each area on the free list (lock held): its pages of
 * entries go back only from PURGE_MIN_FREE on, so that a program whose
 * groups come and go a few at a time does not fault its entries in again
 * at every new group; what stays is at most PURGE_MIN_FREE records'
 * pages (32 records share a page of 4 KiB), 128 KiB an area. */
#define PURGE_MIN_FREE 1024
static uint32_t area_free_n[MAX_AREAS] COLD_BSS;

static uint64_t *free_listed(uint32_t i)
{
	unsigned char *a = (unsigned char *)ro.areas[i >> AREA_SHIFT].recs;
	if (a == (unsigned char *)boot_area) return 0;
	return (uint64_t *)(a + AREA_RECS * sizeof(struct meta) + AREA_ENTS_BYTES);
}

static void record_entries_ready(struct meta *m)
{
	static _Atomic uint64_t seq;
	_Atomic uint32_t *e = ent_at(m->index, 0);
	for (int i = 0; i < ENTS_PER_REC; i++)
		if (ent_load(e + i)) return;
	/* a keyed mix of a counter: the generations of one record look
	 * unrelated to another's, and to anything outside the process */
	uint64_t x = atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed);
	for (int i = 0; i < ENTS_PER_REC; i += 2) {
		x = mum(x ^ ro.key[2], ro.key[1] + (uint64_t)i);
		atomic_store_explicit(e + i, (uint32_t)x & ~E_N_MASK, memory_order_relaxed);
		atomic_store_explicit(e + i + 1, (uint32_t)(x >> 32) & ~E_N_MASK, memory_order_relaxed);
	}
}

/* Give back the page of entries that m's (just freed) share, if every
 * record of that page is on the free list or was never handed out (an
 * area's header counts as free).  Not area 0's boot records (.bss), nor
 * under protect_meta (whose windows are too costly to scan in). */
static void entries_purge(struct meta *m)
{
	uint32_t i = m->index;
	uint64_t *bits = free_listed(i);
	if (opt_protect || !bits || area_free_n[i >> AREA_SHIFT] < PURGE_MIN_FREE) return;
	size_t per = page_size() / (ENTS_PER_REC * sizeof(uint32_t));
	uint32_t first = i & ~(uint32_t)(per - 1);
	for (uint32_t k = first; k < first + per && k < records.next_index; k++) {
		uint32_t r = k & (AREA_RECS - 1);
		if (r && !(bits[r / 64] >> (r % 64) & 1)) return;
	}
	os_purge((void *)ent_at(first, 0), page_size());
}

struct meta *meta_alloc(void)
{
	struct meta *m = records.free_list;
	if (m) {
		records.free_list = m->next;
		m->next = m->prev = 0;
		uint64_t *bits = free_listed(m->index);
		uint32_t r = m->index & (AREA_RECS - 1);
		if (bits) bits[r / 64] &= ~(1ull << (r % 64)), area_free_n[m->index >> AREA_SHIFT]--;
		record_entries_ready(m);
		return m;
	}
	if (!init_done()) init_secret();
	uint32_t i = records.next_index;
	if (i == area0_recs) i = AREA_RECS;     /* boot_area is full */
	if ((i & (AREA_RECS - 1)) == 0) {
		if ((i >> AREA_SHIFT) >= MAX_AREAS) return 0;   /* 8 M: 23-bit index */
		struct meta_area *a;
		_Atomic uint32_t *ents;
		if (i == 0 && !opt_protect) {
			ents = span_map_guarded(AREA_ENTS_BYTES);
			if (!ents) return 0;
			os_count.meta_bytes_mapped += AREA_ENTS_BYTES + 2 * page_size();
			a = (struct meta_area *)boot_area;
			area0_recs = BOOT_RECS;
		} else {
			/* the records, then their entries, between guards */
			a = span_map_guarded(AREA_BYTES);
			if (!a) return 0;
			ents = (_Atomic uint32_t *)((unsigned char *)a + AREA_RECS * sizeof(struct meta));
			os_count.meta_bytes_mapped += AREA_BYTES + 2 * page_size();
		}
		a->magic = AREA_MAGIC;
		a->first = i;
		ro_protect(1);
		ro.areas[i >> AREA_SHIFT].recs = a;
		ro.areas[i >> AREA_SHIFT].ents = ents;
		ro_protect(0);
		i++;
	}
	records.next_index = i + 1;
	m = (struct meta *)ro.areas[i >> AREA_SHIFT].recs + (i & (AREA_RECS - 1));
	m->index = i;
	atomic_store_explicit(&meta_limit, records.next_index, memory_order_release);
	record_entries_ready(m);
	return m;
}

void meta_push(struct meta **list, struct meta *m)
{
	uint32_t i = m->index;
	*m = (struct meta){ .index = i, .next = *list };
	*list = m;
}

void meta_free(struct meta *m)
{
	meta_push(&records.free_list, m);
	uint64_t *bits = free_listed(m->index);
	uint32_t r = m->index & (AREA_RECS - 1);
	if (bits) bits[r / 64] |= 1ull << (r % 64), area_free_n[m->index >> AREA_SHIFT]++;
	entries_purge(m);
}

/* Windows of option protect_meta.  Guarded by the lock: window_depth
 * counts nested opens of the holder; the last close seals every area. */
static int window_depth;

static void areas_protect(int writable)
{
	uint32_t limit = atomic_load_explicit(&meta_limit, memory_order_relaxed);
	for (uint32_t a = 0; a < MAX_AREAS && (a << AREA_SHIFT) < limit; a++)
		if (ro.areas[a].recs != (struct meta_area *)boot_area)
			os_protect(ro.areas[a].recs, AREA_RECS * sizeof(struct meta), writable);
}

int meta_window_open(void)
{
	os_lock();
	if (window_depth++ == 0) areas_protect(1);
	return 1;
}

void meta_window_close(void)
{
	if (--window_depth == 0) areas_protect(0);
	os_unlock();
}
