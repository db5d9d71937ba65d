/* internal.h - types shared by the allocator's files, and their invariants.
 *
 * Memory is served from groups: one contiguous run cut into cnt <= 32 equal
 * slots of one size class.  A group starts with a 16-byte group header whose
 * first word is the index of its meta record; the user pointer of slot i is
 *
 *     p = mem + GROUP_HDR + i * stride           (plus an offset if aligned)
 *
 * and the 8 bytes just before p hold the slot header (meta.h).  Everything
 * else about a group lives out of band in its meta record, inside a meta area
 * that starts with the process secret.
 */
#ifndef MALLOCNG_INTERNAL_H
#define MALLOCNG_INTERNAL_H

/* One header per floor, each including the one below:
 *   os.h    layer 0: os_map.c, os_proc.c, options.c
 *   meta.h  layers 1-2: size_class.c, span.c, meta.c, init.c
 *   heap.h  layer 3, the core, and the declarations of the layers above */
#include "heap.h"

#endif
