/* misuse.h - shared by the misuse programs (run by misuse.sh).
 *
 * Each program commits one misuse that mallocng should detect: it is run
 * with the library preloaded and must die of SIGABRT after a "mallocng: "
 * line.  If the misuse goes unnoticed the program says so and exits 0.
 * Built with -O0 -fno-builtin so that the compiler keeps every call. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* not in every libc: weak, resolved from the preloaded library */
void free_sized(void *, size_t) __attribute__((weak));
void free_aligned_sized(void *, size_t, size_t) __attribute__((weak));

/* the compiler must not see through these */
static void *volatile sink;
static inline void *opaque(void *p) { sink = p; return sink; }

static inline int not_detected(const char *what)
{
	fprintf(stderr, "misuse: %s not detected\n", what);
	return 0;
}
