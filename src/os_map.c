/* os_map.c - the address space (layer 0): the page size, the mappings
 * (mmap, mremap, munmap) and their counters, protections and guard pages,
 * purges and populates, the tombstones of unmapped large objects, and the
 * test suite's fault injection.  With os_proc.c, the only files that talk
 * to the kernel.  It calls nothing of the allocator, and of its own layer
 * only os_proc.c (the counters, the verbose and the fatal-error lines): a
 * mapping that fails here just fails (span.c trims its pools and retries).
 *
 * Invariants:
 * - os_pagesize is 0 until os_page_init, then written once, under the
 *   lock, before the first mapping; every call here is on whole pages of
 *   it (an emulation build fails on one that is not: page_call);
 * - every function here keeps errno, but os_map, which sets ENOMEM when
 *   it fails;
 * - os_count.mapped is the bytes that os_map and os_remap mapped less those
 *   that os_unmap and os_remap gave back; mapped_peak is raised only here,
 *   never on malloc's or free's path;
 * - a tombstone never names mapped memory: it is set before its object's
 *   unmap and cleared by any later mapping that covers it;
 * - opt (os.h) is defined here, the file that reads it, so that options.c,
 *   which fills it in, may call layer 0 without a loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#include <unistd.h>
#include "internal.h"

/* The options (os.h; options.c fills them in): defined here, in the file
 * that reads them (fail_mmap, verbose), so that options.c may read them
 * and call os_proc.c (its warnings start with os_line_start) without a
 * loop. */
HIDDEN struct options opt = { .decay_ms = 1000, .populate = 1 };
/* The page size (os.h): 0 until os_page_init, written once, under the lock,
 * before the first mapping; in .bss next to the counters (os_proc.c, the
 * next file in src/Makefile.am), on a page that the first malloc writes
 * anyway. */
HIDDEN size_t os_pagesize;

/* Fault injection for the test suite (option fail_mmap=N): the Nth and
 * every later mmap/mremap fails until the count is reset. */
static int inject_failure(void)
{
	if (!opt.fail_mmap) return 0;
	return atomic_fetch_add(&os_count.map_calls, 1) + 1 >= opt.fail_mmap;
}

/* Whether fault injection makes every mapping fail now: a failure it
 * caused is not worth a retry. */
int os_map_failing(void)
{
	return opt.fail_mmap && atomic_load(&os_count.map_calls) >= opt.fail_mmap;
}

/* Tombstones: user pointers of large objects recently unmapped, so that a
 * second free of one is reported instead of faulting on its header.  An
 * entry is set before the unmap and cleared by any later mapping that
 * covers it, so it never names memory that is mapped again. */
HIDDEN _Atomic uintptr_t tombstones[TOMBS] COLD_BSS;

void tomb_set(const void *p)
{
	atomic_store(&tombstones[((uintptr_t)p >> TOMB_SHIFT) % TOMBS], (uintptr_t)p);
}

void tomb_clear(const void *p, size_t len)
{
	for (int i = 0; i < TOMBS; i++) {
		uintptr_t t = atomic_load_explicit(&tombstones[i], memory_order_relaxed);
		if (t && t - (uintptr_t)p < len)
			atomic_compare_exchange_strong(&tombstones[i], &t, 0);
	}
}

/* The bytes mapped now and their peak.  Only mappings raise the peak, so
 * it is kept here, on the system-call path, and never on malloc's or
 * free's: a compare-and-swap loop only when a new peak is reached. */
static void mapped_add(size_t len)
{
	size_t now = atomic_fetch_add_explicit(&os_count.mapped, len, memory_order_relaxed) + len;
	size_t peak = atomic_load_explicit(&os_count.mapped_peak, memory_order_relaxed);
	while ((ptrdiff_t)(now - peak) > 0 &&
	       !atomic_compare_exchange_weak_explicit(&os_count.mapped_peak, &peak, now,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* The page the allocator uses: the kernel's (AT_PAGESZ, else sysconf);
 * in an emulation build, a bigger one that env (MALLOCNG_PAGE_SIZE) names,
 * a power of two up to MAX_PAGE, unless the process is privileged
 * (secure): the environment belongs to another user there. */
size_t os_page_choose(size_t kernel, const char *env, int secure)
{
#ifdef MALLOCNG_PAGE_EMULATION
	size_t v = 0;
	for (; env && *env >= '0' && *env <= '9' && v <= MAX_PAGE; env++) v = v * 10 + (size_t)(*env - '0');
	if (env && !*env && !secure && v > kernel && v <= MAX_PAGE && !(v & (v - 1))) return v;
#endif
	(void)env, (void)secure;
	return kernel;
}

#ifdef MALLOCNG_PAGE_EMULATION
HIDDEN void (*os_trace)(int op, const void *p, size_t len);
static size_t kernel_page;
/* Every call of the emulation build is aligned to the emulated page, or
 * the process fails: on a kernel of that page it would fail (EINVAL) or,
 * a length rounded up, reach the next page (a purge of live data). */
static void page_call(int op, const void *p, size_t len)
{
	if (os_trace) os_trace(op, p, len);
	if (((uintptr_t)p | len) & (os_pagesize - 1)) fail("misaligned page call", p);
}
#define PAGE_CALL(op, p, len) page_call(op, p, len)
#else
#define PAGE_CALL(op, p, len) ((void)0)
#endif

void os_page_init(void)
{
	size_t k = getauxval(AT_PAGESZ);
	if (!k) {
		long s = sysconf(_SC_PAGESIZE);
		k = s > 0 ? (size_t)s : MIN_PAGE;
	}
	if (k < MIN_PAGE || (k & (k - 1))) fail("unsupported page size", (void *)k);
#ifdef MALLOCNG_PAGE_EMULATION
	kernel_page = k;
#endif
	os_pagesize = os_page_choose(k, getenv("MALLOCNG_PAGE_SIZE"), (int)getauxval(AT_SECURE));
}

/* mmap, at the page's alignment: the kernel's pages are the page, but for
 * the emulation build, which over-maps and trims. */
static void *map_pages(size_t len)
{
#ifdef MALLOCNG_PAGE_EMULATION
	size_t extra = os_pagesize - kernel_page;
	unsigned char *r = mmap(0, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED || !extra) return r;
	unsigned char *p = (unsigned char *)(((uintptr_t)r + extra) & -(uintptr_t)os_pagesize);
	if (p > r) munmap(r, p - r);
	if (p + len < r + len + extra) munmap(p + len, r + len + extra - (p + len));
	return p;
#else
	return mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
}

/* mremap, at the page's alignment: in the emulation build, in place, else
 * into an aligned reservation. */
static void *remap_pages(void *p, size_t old, size_t len)
{
#ifdef MALLOCNG_PAGE_EMULATION
	size_t extra = os_pagesize - kernel_page;
	if (!extra) return mremap(p, old, len, MREMAP_MAYMOVE);
	void *q = mremap(p, old, len, 0);
	if (q != MAP_FAILED) return q;
	unsigned char *r = mmap(0, len + extra, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED) return r;
	unsigned char *a = (unsigned char *)(((uintptr_t)r + extra) & -(uintptr_t)os_pagesize);
	q = mremap(p, old, len, MREMAP_MAYMOVE | MREMAP_FIXED, a);
	if (q == MAP_FAILED) {
		munmap(r, len + extra);
		return q;
	}
	if (a > r) munmap(r, a - r);
	if (a + len < r + len + extra) munmap(a + len, r + len + extra - (a + len));
	return q;
#else
	return mremap(p, old, len, MREMAP_MAYMOVE);
#endif
}

void *os_map(size_t len)
{
	int e = errno;
	if (inject_failure()) {
		errno = ENOMEM;
		return 0;
	}
	void *p = map_pages(len);
	if (p == MAP_FAILED) {
		if (opt.verbose >= 2) {
			char buf[192];  /* line start <= 66, the rest <= 60 */
			size_t n = os_line_start(buf, sizeof buf);
			memcpy(buf + n, "mmap of ", 8), n += 8;
			n += os_utoa(buf + n, len);
			memcpy(buf + n, " bytes failed, errno ", 21), n += 21;
			n += os_utoa(buf + n, (unsigned)errno);
			buf[n++] = '\n';
			(void)!write(2, buf, n);
		}
		errno = ENOMEM;
		return 0;
	}
	errno = e;
	PAGE_CALL(OS_MAP, p, len);
	tomb_clear(p, len);
	atomic_fetch_add_explicit(&os_count.mmaps, 1, memory_order_relaxed);
	mapped_add(len);
	return p;
}

/* A mapping of len bytes (whole pages) between two PROT_NONE guard pages. */
void *os_map_guarded(size_t len)
{
	size_t g = os_pagesize;
	unsigned char *p = os_map(len + 2 * g);
	if (!p) return 0;
	os_guard(p, g);
	os_guard(p + g + len, g);
	return p + g;
}

void os_unmap_guarded(void *p, size_t len)
{
	os_unmap((char *)p - os_pagesize, len + 2 * os_pagesize);
}

/* Fault in every page [p, p + len) touches for writing, in one call: a
 * page fault per page costs more (1.9 against 1.1 us per page on the
 * benchmark machine, memset included).  Kernels before 5.14 lack it, and
 * a system call filter may refuse it: the first EINVAL, EPERM or ENOSYS
 * turns it off. */
void os_populate(void *p, size_t len)
{
	static _Atomic int unsupported;
	uintptr_t a = page_trunc((uintptr_t)p), b = page_round((uintptr_t)p + len);
	if (b <= a || atomic_load_explicit(&unsupported, memory_order_relaxed)) return;
	PAGE_CALL(OS_POPULATE, (void *)a, b - a);
	int e = errno;
	if (madvise((void *)a, b - a, MADV_POPULATE_WRITE) &&
	    (errno == EINVAL || errno == EPERM || errno == ENOSYS))
		atomic_store_explicit(&unsupported, 1, memory_order_relaxed);
	errno = e;
}

/* Whether the pages of [p, p + len) (page aligned) can be read without a
 * fault: a program may have made part of a block it got from malloc
 * PROT_NONE.  Faulting them in for reading fails instead of faulting (a
 * page never written maps the shared zero page); so does a kernel before
 * 5.14 or a filter on the advice, which then reads as "no". */
int os_readable(const void *p, size_t len)
{
	PAGE_CALL(OS_READABLE, p, len);
	int e = errno, ok = !madvise((void *)p, len, MADV_POPULATE_READ);
	errno = e;
	return ok;
}

/* Give back the pages of [p, p + len) (page aligned, len > 0) but keep
 * the mapping: they read as zeros when next touched. */
void os_purge(void *p, size_t len)
{
	int e = errno;
	PAGE_CALL(OS_PURGE, p, len);
	madvise(p, len, MADV_DONTNEED);
	errno = e;
	atomic_fetch_add_explicit(&os_count.madvises, 1, memory_order_relaxed);
}

/* Make [p, p + len) read-only or writable again (hardening: a failure
 * leaves the protection as it was, and is not an error). */
void os_protect(void *p, size_t len, int writable)
{
	int e = errno;
	PAGE_CALL(OS_PROTECT, p, len);
	mprotect(p, len, writable ? PROT_READ | PROT_WRITE : PROT_READ);
	errno = e;
}

void os_protect_ro(void *p, size_t len, int writable)
{
#ifdef MALLOCNG_PAGE_EMULATION
	size_t k = kernel_page;
#else
	size_t k = os_pagesize;
#endif
	if (k > RO_ALIGN) return;
	int e = errno;
	mprotect(p, len, writable ? PROT_READ | PROT_WRITE : PROT_READ);
	errno = e;
}

/* Guard pages: make [p, p + len) (page aligned) inaccessible, or
 * accessible again (os_unguard returns 0, else -1: it failed and nothing
 * changed); os_decommit also gives the pages back, uncounted.  errno is
 * kept. */
void os_guard(void *p, size_t len)
{
	int e = errno;
	PAGE_CALL(OS_GUARD, p, len);
	mprotect(p, len, PROT_NONE);
	errno = e;
}

int os_unguard(void *p, size_t len)
{
	PAGE_CALL(OS_UNGUARD, p, len);
	int e = errno, r = mprotect(p, len, PROT_READ | PROT_WRITE);
	errno = e;
	return r ? -1 : 0;
}

void os_decommit(void *p, size_t len)
{
	int e = errno;
	PAGE_CALL(OS_DECOMMIT, p, len);
	mprotect(p, len, PROT_NONE);
	madvise(p, len, MADV_DONTNEED);
	errno = e;
}

void os_unmap(void *p, size_t len)
{
	int e = errno;
	PAGE_CALL(OS_UNMAP, p, len);
	munmap(p, len);
	errno = e;
	atomic_fetch_add_explicit(&os_count.munmaps, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&os_count.mapped, len, memory_order_relaxed);
}

void *os_remap(void *p, size_t old, size_t len)
{
	int e = errno;
	PAGE_CALL(OS_REMAP, p, old);        /* (traced twice: from and to) */
	if (inject_failure()) return 0;
	void *q = remap_pages(p, old, len);
	errno = e;      /* on failure too: the callers fall back to a copy */
	if (q == MAP_FAILED) return 0;
	PAGE_CALL(OS_REMAP, q, len);
	tomb_clear(q, len);
	atomic_fetch_add_explicit(&os_count.mremaps, 1, memory_order_relaxed);
	mapped_add(len - old);  /* modulo 2^64: a shrink subtracts */
	return q;
}
