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

#ifdef __cplusplus
}
#endif
#endif
