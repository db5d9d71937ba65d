/* os.h - the ground floor (layer 0): attributes, sizes, the options
 * (options.c), and what os_map.c (mappings, protections, the page size,
 * tombstones) and os_proc.c (the locks, the process counters, clocks,
 * entropy, the messages and the fatal-error line) offer. */
#ifndef MALLOCNG_OS_H
#define MALLOCNG_OS_H

#include "config.h"
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include "mallocng.h"

#define HIDDEN __attribute__((visibility("hidden")))
#define EXPORT __attribute__((visibility("default")))
/* The pages of a first malloc.  ld.so dirties the page where .data ends
 * and .bss begins (it zeroes the .bss part of it) in every process, so the
 * globals that a first malloc writes cost nothing there: .data is small
 * (empty_heap is in .data.rel.ro) and the first .bss bytes hold the lock,
 * the counters, the boot meta records and the first heap's head.  What is
 * page aligned (ro) or only written by large objects goes to COLD_BSS, a
 * NOBITS section after .bss (x86-64's .lbss), so that it neither aligns
 * .bss to a page nor pushes the first heap's head off that page.  The
 * first malloc then writes three new pages: ro's first, one of area 0's
 * slot entries (a mapping: meta.c) and its group's.  Elsewhere COLD_BSS
 * is an ordinary .bss section and it writes four. */
#if defined(__x86_64__) && defined(__ELF__)
#define COLD_BSS __attribute__((section(".lbss")))
#else
#define COLD_BSS __attribute__((section(".bss.mallocng_cold")))
#endif
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define UNIT 16                 /* alignment of every pointer */
#define GROUP_HDR 16            /* bytes before slot 0's user pointer */
#define SLOT_HDR 8              /* in-band header, just before p */
/* A small object needs n + SLOT_HDR bytes of its slot.  The check value
 * (up to 4 bytes at p[n]) is written when the slot has room for it; an
 * object that fills its slot ends right at the next slot's header, which
 * then stands in for it (see next_header_ok in slot.c). */
#define NCLASS 48
#define SC_LARGE 63             /* meta of an individually mapped object */
#define MAX_SMALL (131072 - SLOT_HDR)
#define NEST_MAX 4096           /* groups up to this size live in a slot */

/* ---- options.c (which parses them; opt itself is defined in os_map.c) ---- */
struct options {
	int stats, verbose, junk, zero_free, guard, random, hardened, decay_ms;
	int protect_meta, populate;
	int heap_map_peak, heap_map_signal;     /* heapmap.c */
	size_t quarantine;
	long fail_mmap;             /* testing: make the Nth mmap fail */
	long report_pid;            /* stats and heap map at exit only in this process */
	int stats_fd;               /* copy of stderr taken at start (stats) */
	char stats_file[256], heap_map[256];
};
extern HIDDEN struct options opt;
extern HIDDEN int opt_slow;     /* a knob needs the checked (slow) paths */
HIDDEN void options_changed(void);
HIDDEN void options_init(void);

/* ---- os_map.c and os_proc.c ---- */
HIDDEN void *os_map(size_t len);
HIDDEN void os_populate(void *p, size_t len);
HIDDEN int os_readable(const void *p, size_t len);
HIDDEN void os_unmap(void *p, size_t len);
HIDDEN void *os_map_guarded(size_t len);
HIDDEN void os_purge(void *p, size_t len);
HIDDEN void os_guard(void *p, size_t len);
HIDDEN int os_unguard(void *p, size_t len);
HIDDEN void os_decommit(void *p, size_t len);
HIDDEN int os_map_failing(void);
HIDDEN long os_now_ms(void);     /* CLOCK_MONOTONIC_COARSE, in ms */
#define PURGE_MIN (16 << 10)    /* empty groups above this give pages back */
#define SLOT_PURGE_MIN (32 << 10) /* freed slots from this stride on too */
#define POPULATE_MIN 8192       /* malloc.c: alloc_paged from this size */
#define REALLOC_MAP_MIN (32 << 10) /* realloc growth from here: a mapping */
#define TOMBS 64
/* Tombstones are indexed by p >> TOMB_SHIFT: a large object starts at a
 * page boundary (+ UNIT) and spans more than 128 KiB, so two live ones
 * differ there whatever the page (up to MAX_PAGE); p >> 12 would leave 60
 * of the 64 entries unused with 64 KiB pages. */
#define TOMB_SHIFT 16
extern HIDDEN _Atomic uintptr_t tombstones[TOMBS];
HIDDEN void tomb_set(const void *p);
HIDDEN void tomb_clear(const void *p, size_t len);
static inline int is_tomb(const void *p)
{
	return atomic_load_explicit(&tombstones[((uintptr_t)p >> TOMB_SHIFT) % TOMBS],
				    memory_order_relaxed) == (uintptr_t)p;
}
HIDDEN void os_unmap_guarded(void *p, size_t len);
HIDDEN void os_protect(void *p, size_t len, int writable);
HIDDEN void *os_remap(void *p, size_t old, size_t len);
HIDDEN void os_lock(void);
HIDDEN void os_unlock(void);
HIDDEN void os_span_lock(void);         /* span.c's pools (os_proc.c: order) */
HIDDEN void os_span_unlock(void);
/* Whether the process has one thread, as the C library knows it: glibc's
 * __libc_single_threaded (2.32 and later), which pthread_create clears in
 * the creating thread before the new thread exists, and which is never
 * true while another thread lives (a forked child of a threaded process
 * has one thread).  While it holds, no other thread can read or write the
 * allocator's memory.  0 (assume threads) where the library lacks it. */
#if defined(HAVE_SYS_SINGLE_THREADED_H) && HAVE_DECL___LIBC_SINGLE_THREADED
#include <sys/single_threaded.h>
static inline int os_single_threaded(void)
{
	return __libc_single_threaded;
}
#else
static inline int os_single_threaded(void)
{
	return 0;
}
#endif
HIDDEN int os_random(void *buf, size_t len);
HIDDEN _Noreturn void fail(const char *what, const void *p);
/* The return address of the call into the allocator whose checks run now
 * (fail names it), or NULL.  Set by the entry points' checked paths (free's
 * general path, realloc, free_sized, ...) and cleared when they return;
 * never touched by the fast paths. */
extern HIDDEN __thread const void *os_caller;
#define CALLER_SET() (os_caller = __builtin_return_address(0))
#define CALLER_CLEAR() (os_caller = 0)
HIDDEN size_t os_progname(char *buf, size_t cap);    /* no allocation */
HIDDEN size_t os_utoa(char *buf, unsigned long long v);
HIDDEN size_t os_line_start(char *buf, size_t cap);  /* "mallocng: prog[pid]: " */
HIDDEN void os_mark_start(void);
HIDDEN void os_inuse_add(ptrdiff_t d);
HIDDEN int os_signal_install(int sig, void (*fn)(int));
HIDDEN long long os_elapsed_ns(void);

struct os_counters {
	_Atomic size_t mmaps, munmaps, mremaps, madvises;
	_Atomic size_t mapped;      /* bytes currently mapped by us */
	_Atomic size_t mapped_peak; /* the most mapped at once (os_map, os_remap) */
	_Atomic size_t inuse;       /* bytes in use: os_inuse_add (heap.h, inuse_add) */
	_Atomic size_t inuse_peak;  /* their most at once, as counted */
	_Atomic long long start_ns; /* os_mark_start: CLOCK_MONOTONIC at start */
	_Atomic size_t groups_released; /* groups given back (group_release) */
	_Atomic long map_calls;     /* for fault injection */
	_Atomic size_t heaps_live;  /* heaps of live threads (heap.c: changed
	                             * with the global lock held; span.c reads it) */
	/* span lock held: */
	size_t span_lock_taken;     /* acquisitions of the span lock */
	size_t span_lock_waited;    /* of those, found it held */
	/* global lock held: */
	size_t lock_taken;          /* acquisitions of the global lock */
	size_t lock_waited;         /* of those, found the lock held */
	size_t heaps_mapped;        /* bytes mapped for heaps (heap.c) */
	size_t meta_bytes_mapped;   /* bytes mapped for meta areas (meta.c) */
};
extern HIDDEN struct os_counters os_count;

/* ---- pages ----
 * The page size is the kernel's, read once at first use (os_page_init,
 * called by init_secret before anything is mapped: getauxval(AT_PAGESZ),
 * else sysconf): 4 KiB on x86, 4, 16 or 64 KiB on arm64, 64 KiB on
 * Debian's ppc64el.  Every mapping, guard, purge, protection and populate
 * is rounded to it (page_round, page_trunc).  It lives in os_map.c, not in ro
 * (meta.h), although it too is written once at initialisation: the OS
 * layer, below ro, needs it, and it is needed to seal ro itself (ro is
 * whole pages).  It is no input of a check: a stray write to it breaks
 * mappings, it forges nothing.
 *
 * MIN_PAGE is the smallest page of any kernel (every page size is a
 * multiple of it), for tests that only need a lower bound: free's fast
 * path routes by p & (MIN_PAGE - 1) (free.c).  MAX_PAGE is the largest
 * page for which ro is sealed read-only off x86 (it is aligned to
 * RO_ALIGN and takes whole RO_ALIGN blocks): a kernel with bigger pages
 * runs with ro writable.
 *
 * A build configured with --enable-page-emulation (tests only, never a
 * package) takes MALLOCNG_PAGE_SIZE=16384 or 65536 from the environment
 * on a kernel of smaller pages (not in a privileged process), maps at
 * that alignment and fails on any system call that is not aligned to it
 * (os_map.c: os_page_choose; doc/design.md, "Page size"). */
#define MIN_PAGE 4096
#define MAX_PAGE 65536
/* ro's alignment (meta.h): whole pages of any kernel of the architecture.
 * x86 kernels have 4 KiB pages only, and there a 64 KiB-aligned section
 * after .bss (x86-64's .lbss) becomes a load segment of its own, past
 * which Valgrind reads no symbols; other architectures' kernels may have
 * pages up to MAX_PAGE. */
#if defined(__x86_64__) || defined(__i386__)
#define RO_ALIGN MIN_PAGE
#else
#define RO_ALIGN MAX_PAGE
#endif
/* ro's protection, on the kernel's own pages (an emulation build's
 * bigger page does not apply: ro is aligned to RO_ALIGN); nothing when
 * the kernel's pages are bigger than RO_ALIGN */
HIDDEN void os_protect_ro(void *p, size_t len, int writable);
extern HIDDEN size_t os_pagesize;
HIDDEN void os_page_init(void);
HIDDEN size_t os_page_choose(size_t kernel, const char *env, int secure);
static inline size_t page_size(void) { return os_pagesize; }
static inline size_t page_round(size_t n) { return (n + os_pagesize - 1) & -os_pagesize; }
static inline uintptr_t page_trunc(uintptr_t a) { return a & -(uintptr_t)os_pagesize; }
#ifdef MALLOCNG_PAGE_EMULATION
/* the emulation build's trace of page calls (test_pagesize) */
enum { OS_MAP, OS_UNMAP, OS_REMAP, OS_PURGE, OS_GUARD, OS_UNGUARD, OS_PROTECT, OS_DECOMMIT,
       OS_POPULATE, OS_READABLE };
extern HIDDEN void (*os_trace)(int op, const void *p, size_t len);
#endif

#endif
