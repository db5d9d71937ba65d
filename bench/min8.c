/* min8.c - preloaded by external.sh in front of every allocator (glibc's
 * too) for the stress-ng malloc rows: requests of 0 to 7 bytes become 8.
 * stress-ng 0.15's malloc stressor writes a uintptr_t into every block it
 * allocates, including blocks of 1 to 7 bytes: a heap overflow, which
 * mallocng reports and aborts on.  With this shim the program stays within
 * its blocks and every allocator serves the same requests.  Each call goes
 * on to the next definition (RTLD_NEXT): the preloaded allocator, or libc.
 * free, malloc_usable_size and malloc_trim are not wrapped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void *(*next_memalign)(size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);

/* On first use, not in a constructor: libc and the allocator may call
 * malloc before this library's constructors run. */
static void resolve(void)
{
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
}

static size_t min8(size_t n)
{
	return n < 8 ? 8 : n;
}

void *malloc(size_t n)
{
	if (!next_malloc) resolve();
	return next_malloc(min8(n));
}

void *calloc(size_t k, size_t n)
{
	size_t t;
	if (!next_calloc) resolve();
	if (!__builtin_mul_overflow(k, n, &t) && t < 8) return next_calloc(1, 8);
	return next_calloc(k, n);
}

/* realloc(p, 0) keeps its meaning (the allocator's) */
void *realloc(void *p, size_t n)
{
	if (!next_realloc) resolve();
	return next_realloc(p, n ? min8(n) : 0);
}

void *memalign(size_t a, size_t n)
{
	if (!next_memalign) resolve();
	return next_memalign(a, min8(n));
}

void *aligned_alloc(size_t a, size_t n)
{
	if (!next_aligned_alloc) resolve();
	return next_aligned_alloc(a, min8(n));
}

int posix_memalign(void **r, size_t a, size_t n)
{
	if (!next_posix_memalign) resolve();
	return next_posix_memalign(r, a, min8(n));
}
