/* meta.c - meta areas, the secret, and meta records.
 *
 * Invariants:
 * - every meta record lives in an area of AREA_RECS records mapped on its
 *   own (area 0: boot_area, below), followed by the records' slot
 *   generations (GENS_PER_REC bytes each, meta.h), between guard
 *   pages; record 0 of each area is the area header (AREA_MAGIC, its
 *   first index: no secret); protect_meta seals the records, not the
 *   generations, which every free writes;
 * - record index i lives at ro.areas[i >> AREA_SHIFT].recs, slot i & (AREA_RECS-1);
 *   only indices below meta_limit have ever been handed out, so a group
 *   header can be resolved to a record without trusting any pointer in it;
 * - a free record has mem == NULL and sits on records.free_list (lock held).
 * - area 0 is boot_area, BOOT_RECS records in .bss next to the other
 *   globals, so that a process that mallocs a little touches no meta
 *   page of its own (the first malloc: 8 KiB, see os.h: COLD_BSS); its
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
/* written by the first free only: off the first malloc's pages */
static unsigned char boot_gens[BOOT_RECS * GENS_PER_REC] COLD_BSS;
#define AREA_BYTES (AREA_RECS * (sizeof(struct meta) + GENS_PER_REC))
_Static_assert(AREA_BYTES % MAX_PAGE == 0 && AREA_RECS * sizeof(struct meta) % MAX_PAGE == 0,
	       "an area and its records are whole pages (guards, protect_meta)");
HIDDEN uint32_t area0_recs = AREA_RECS;  /* records that exist in area 0 */


struct meta *meta_alloc(void)
{
	struct meta *m = records.free_list;
	if (m) {
		records.free_list = m->next;
		m->next = m->prev = 0;
		return m;
	}
	if (!init_done()) init_secret();
	uint32_t i = records.next_index;
	if (i == area0_recs) i = AREA_RECS;     /* boot_area is full */
	if ((i & (AREA_RECS - 1)) == 0) {
		if ((i >> AREA_SHIFT) >= MAX_AREAS) return 0;   /* 8 M: 23-bit index */
		struct meta_area *a;
		unsigned char *gens;
		if (i == 0 && !opt_protect) {
			a = (struct meta_area *)boot_area;
			gens = boot_gens;
			area0_recs = BOOT_RECS;
		} else {
			/* the records, then their generations, between guards */
			a = span_map_guarded(AREA_BYTES);
			if (!a) return 0;
			gens = (unsigned char *)a + AREA_RECS * sizeof(struct meta);
			os_count.meta_bytes_mapped += AREA_BYTES + 2 * page_size();
		}
		a->magic = AREA_MAGIC;
		a->first = i;
		ro_protect(1);
		ro.areas[i >> AREA_SHIFT].recs = a;
		ro.areas[i >> AREA_SHIFT].gens = gens;
		ro_protect(0);
		i++;
	}
	records.next_index = i + 1;
	m = (struct meta *)ro.areas[i >> AREA_SHIFT].recs + (i & (AREA_RECS - 1));
	m->index = i;
	atomic_store_explicit(&meta_limit, records.next_index, memory_order_release);
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
