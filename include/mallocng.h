/* mallocng.h - public extras of the mallocng allocator.
 *
 * The standard entry points (malloc, free, calloc, realloc, reallocarray,
 * aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
 * malloc_usable_size, free_sized, free_aligned_sized) are declared by
 * <stdlib.h> / <malloc.h>; this header only adds what is mallocng's own.
 */
#ifndef MALLOCNG_H
#define MALLOCNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MALLOCNG_VERSION_MAJOR 0
#define MALLOCNG_VERSION_MINOR 1
#define MALLOCNG_VERSION_PATCH 0
#define MALLOCNG_VERSION_STRING "0.1.0"

/* Version of the library actually loaded (may differ from the header). */
const char *mallocng_version(void);

/* Statistics.  The struct only ever grows at its end: callers set `size`
 * to sizeof(struct mallocng_stats) as they know it, and the library fills
 * no more than that.  Figures are a snapshot taken under the allocator's
 * lock; other threads keep running. */
#define MALLOCNG_STATS_VERSION 3
#define MALLOCNG_NCLASS 48

struct mallocng_class_stats {
	size_t slot_size;      /* stride of a slot, bytes (header included) */
	size_t groups;         /* groups of this class */
	size_t slots;          /* slots in those groups */
	size_t slots_used;     /* slots holding a live object */
	size_t slots_cached;   /* freed slots held by thread caches */
	size_t bytes_live;     /* bytes requested by the live objects */
};

struct mallocng_stats {
	size_t size;           /* in: sizeof(struct mallocng_stats) */
	size_t version;        /* out: MALLOCNG_STATS_VERSION of the library */
	size_t bytes_live;     /* bytes requested and not yet freed */
	size_t objects_live;
	size_t bytes_slots;    /* bytes of the slots holding live small objects */
	size_t bytes_mapped;   /* bytes currently mapped by the allocator */
	size_t bytes_resident; /* resident set of the whole process */
	size_t bytes_meta;     /* meta areas and thread heaps (mapped) */
	size_t large_count;    /* individually mapped objects */
	size_t large_bytes;    /* their mapped bytes */
	size_t groups;         /* small-object groups */
	size_t groups_released;/* groups given back so far */
	size_t threads;        /* thread heaps in use */
	size_t mmap_calls, munmap_calls, mremap_calls, madvise_calls;
	struct mallocng_class_stats classes[MALLOCNG_NCLASS];
	/* version 2 */
	size_t lock_acquisitions; /* of the global lock, since start */
	size_t lock_contended;    /* of those, found it held by another thread */
	/* version 3 */
	size_t span_lock_acquisitions; /* of the lock of the pools of address
	                                  ranges, since start */
	size_t span_lock_contended;    /* of those, found it held */
};

/* Fill *st (st->size must be set); returns 0, or -1 if st->size is too
 * small to hold the fixed fields. */
int mallocng_get_stats(struct mallocng_stats *st);

/* Print the per-class table and totals to file descriptor fd. */
void mallocng_print_stats(int fd);

/* Write an SVG picture of the heap (one row of slots per group). */
int mallocng_heap_map(const char *path);

#ifdef __cplusplus
}
#endif
#endif
