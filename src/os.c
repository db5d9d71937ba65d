/* os.c - the only file that talks to the kernel: mappings, protections,
 * entropy, the global lock and its fork handlers, the process counters and
 * the fatal-error path.  It calls nothing of the allocator: a mapping that
 * fails here just fails (span.c trims its pools and retries). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
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
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include "internal.h"

HIDDEN struct os_counters os_count __attribute__((aligned(64)));
/* The options (os.h; options.c fills them in): defined here, in the file
 * that reads them, so that options.c may call this one (its warnings start
 * with os_line_start) without a loop between the two. */
HIDDEN struct options opt = { .decay_ms = 1000, .populate = 1 };
/* The page size (os.h): 0 until os_page_init, written once, under the lock,
 * before the first mapping; in .bss next to the counters, on a page that
 * the first malloc writes anyway. */
HIDDEN size_t os_pagesize;
static __thread int lock_held;  /* depth of this thread's hold on the global lock */

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

/* The bytes in use (slots handed out of groups, large mappings: see
 * inuse_add in heap.h) and their peak, as the heaps hand their counts over
 * in steps of at least INUSE_FOLD bytes and large objects at once: a
 * compare-and-swap loop only when a new peak is reached. */
void os_inuse_add(ptrdiff_t d)
{
	size_t now = atomic_fetch_add_explicit(&os_count.inuse, (size_t)d, memory_order_relaxed) + (size_t)d;
	size_t peak = atomic_load_explicit(&os_count.inuse_peak, memory_order_relaxed);
	while ((ptrdiff_t)now > 0 && now > peak &&
	       !atomic_compare_exchange_weak_explicit(&os_count.inuse_peak, &peak, now,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* Install fn for signal sig (SA_RESTART), unless the program has set a
 * disposition of its own for it (a handler, or SIG_IGN, which an exec
 * keeps): 0, else -1. */
int os_signal_install(int sig, void (*fn)(int))
{
	struct sigaction old, sa;
	int e = errno, r = -1;
	if (!sigaction(sig, NULL, &old) && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = fn;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		r = sigaction(sig, &sa, NULL) ? -1 : 0;
	}
	errno = e;
	return r;
}

/* When the allocator started (CLOCK_MONOTONIC, ns): the first of its
 * constructor and its first use, so that the statistics can say how long
 * the process ran.  A racing second store writes a time just as close. */
void os_mark_start(void)
{
	if (atomic_load_explicit(&os_count.start_ns, memory_order_relaxed)) return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	atomic_store_explicit(&os_count.start_ns, (long long)ts.tv_sec * 1000000000 + ts.tv_nsec,
			      memory_order_relaxed);
}

/* Nanoseconds since os_mark_start, 0 before it. */
long long os_elapsed_ns(void)
{
	long long t0 = atomic_load_explicit(&os_count.start_ns, memory_order_relaxed);
	struct timespec ts;
	if (!t0) return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec - t0;
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

long os_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* Entropy: getrandom, else the kernel's AT_RANDOM bytes mixed with ASLR. */
int os_random(void *buf, size_t len)
{
	long r = syscall(SYS_getrandom, buf, len, 1 /* GRND_NONBLOCK */);
	if (r == (long)len) return 0;
	const unsigned char *at = (const unsigned char *)getauxval(AT_RANDOM);
	uint64_t x = (uintptr_t)buf ^ (uintptr_t)&os_count ^ (uint64_t)getpid() << 32;
	unsigned char *b = buf;
	for (size_t i = 0; i < len; i++) {
		x = (x ^ (at ? at[i % 16] : 0)) * 0x9e3779b97f4a7c15ull;
		b[i] = (unsigned char)(x >> 56);
	}
	return 0;
}

/* The global lock: 0 free, 1 held, 2 held with waiters (futex). */
static _Atomic int lock_word __attribute__((aligned(64)));

/* A hint to the core that this is a spin-wait loop (it yields the
 * pipeline to a sibling hardware thread and saves power); a compiler
 * barrier where the architecture has no such instruction. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
	__asm__ volatile("yield" ::: "memory");
#elif defined(__powerpc__) || defined(__powerpc64__)
	__asm__ volatile("or 27,27,27" ::: "memory");   /* lower thread priority */
#elif defined(__riscv) && defined(__riscv_zihintpause)
	__asm__ volatile("pause" ::: "memory");
#else
	__asm__ volatile("" ::: "memory");
#endif
}

/* Recursive for its holder: an open meta window (option protect_meta)
 * holds the lock around code that takes it again. */
/* Every outermost acquisition is counted (os_count.lock_taken), and those
 * that found the lock held (lock_waited): the statistics report them, so
 * that a workload's trips to the shared state can be seen per operation.
 * Both are written by the holder only. */
static void lock_wait(void)
{
	for (int spin = 0; spin < 100; spin++) {
		int c = 0;
		if (atomic_load_explicit(&lock_word, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak(&lock_word, &c, 1))
			return;
		cpu_relax();
	}
	while (atomic_exchange(&lock_word, 2) != 0)
		syscall(SYS_futex, &lock_word, FUTEX_WAIT_PRIVATE, 2, 0, 0, 0);
}

void os_lock(void)
{
	int c = 0;
	if (lock_held++) return;
	if (!atomic_compare_exchange_strong(&lock_word, &c, 1)) {
		lock_wait();
		os_count.lock_waited++;
	}
	os_count.lock_taken++;
}

void os_unlock(void)
{
	if (--lock_held) return;
	if (atomic_exchange(&lock_word, 0) == 2)
		syscall(SYS_futex, &lock_word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
}

static void fork_prepare(void) { os_lock(); }
static void fork_parent(void) { os_unlock(); }
/* The child has one thread: the lock holder is gone, so reset it.  Heaps of
 * threads that did not survive the fork are simply never used again (the
 * heap layer registers a child handler of its own, which runs after this
 * one: heap.c). */
static void fork_child(void)
{
	lock_held = 0;
	atomic_store(&lock_word, 0);
	/* a new process: its statistics count their time from here, and its
	 * peak of mapped bytes from the mappings it inherited (the parent's
	 * earlier peak is not its own) */
	atomic_store_explicit(&os_count.start_ns, 0, memory_order_relaxed);
	os_mark_start();
	atomic_store_explicit(&os_count.mapped_peak,
			      atomic_load_explicit(&os_count.mapped, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&os_count.inuse_peak,
			      atomic_load_explicit(&os_count.inuse, memory_order_relaxed),
			      memory_order_relaxed);
}

__attribute__((constructor)) static void os_constructor(void)
{
	os_mark_start();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The program's short name (argv[0] without its directory, as glibc keeps
 * it; /proc/self/comm elsewhere), at most cap - 1 bytes, each byte outside
 * printable ASCII replaced with '?' so that the report stays one line a
 * terminal shows as it is.  No allocation: callers are the fatal-error
 * path and the verbose lines, which may run inside malloc. */
size_t os_progname(char *buf, size_t cap)
{
	size_t n = 0;
#ifdef __GLIBC__
	const char *s = program_invocation_short_name;
	for (; s && s[n] && n + 1 < cap; n++) buf[n] = s[n];
#else
	int e = errno, fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, buf, cap - 1);
		n = r > 0 ? (size_t)r : 0;
		if (n && buf[n - 1] == '\n') n--;
		close(fd);
	}
	errno = e;
#endif
	if (!n) buf[n++] = '?';
	for (size_t i = 0; i < n; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e) buf[i] = '?';
	buf[n] = 0;
	return n;
}

/* "mallocng: <program>[<pid>]: " at buf (cap >= 48): the start of every
 * line that names the process (the fatal error, the verbose lines). */
size_t os_line_start(char *buf, size_t cap)
{
	size_t n = 10;
	memcpy(buf, "mallocng: ", 10);
	n += os_progname(buf + n, cap - n - 26 < 33 ? cap - n - 26 : 33);
	buf[n++] = '[';
	n += os_utoa(buf + n, (unsigned long long)getpid());
	buf[n++] = ']', buf[n++] = ':', buf[n++] = ' ';
	return n;
}

/* Decimal digits of v at buf; returns their count. */
size_t os_utoa(char *buf, unsigned long long v)
{
	char t[24];
	size_t n = 0, k = 0;
	do t[n++] = (char)('0' + v % 10), v /= 10; while (v);
	while (n) buf[k++] = t[--n];
	return k;
}

HIDDEN __thread const void *os_caller;

/* dladdr, where the C library has it (glibc 2.34 and later, musl): weak,
 * so that the library needs no libdl and a static link none either. */
#pragma weak dladdr

/* Hexadecimal digits of v at buf; returns their count. */
static size_t os_xtoa(char *buf, uintptr_t v)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	int started = 0;
	for (int s = (int)sizeof v * 8 - 4; s >= 0; s -= 4) {
		int d = (v >> s) & 15;
		if (d || started || s == 0) buf[n++] = hex[d], started = 1;
	}
	return n;
}

/* ", caller 0x<address> (<module>+0x<offset>)" at buf (room for 96
 * bytes): the return address of the call into the allocator that found
 * the error, and the file it lies in (without its directory) and its
 * offset there, as addr2line -e takes it, when dladdr is at hand.  An
 * address inside this library is no caller of the program's (a check
 * reached through an internal call): nothing is written then. */
static size_t caller_text(char *buf, const void *ra)
{
	size_t n = 0;
	Dl_info mod, self;
	int known = dladdr && dladdr(ra, &mod) && mod.dli_fbase;
	if (known && dladdr((const void *)fail, &self) && self.dli_fbase == mod.dli_fbase)
		return 0;
	memcpy(buf, ", caller 0x", 11), n = 11;
	n += os_xtoa(buf + n, (uintptr_t)ra);
	if (!known) return n;
	const char *name = mod.dli_fname ? mod.dli_fname : "", *s = name;
	for (; *s; s++)
		if (*s == '/') name = s + 1;
	buf[n++] = ' ', buf[n++] = '(';
	if (*name) {
		size_t l = 0;
		for (; name[l] && l < 40; l++)
			buf[n + l] = name[l] < 0x20 || name[l] > 0x7e ? '?' : name[l];
		n += l;
	} else {
		n += os_progname(buf + n, 41);     /* the program itself */
	}
	memcpy(buf + n, "+0x", 3), n += 3;
	n += os_xtoa(buf + n, (uintptr_t)ra - (uintptr_t)mod.dli_fbase);
	buf[n++] = ')';
	return n;
}

/* The fatal-error line, one write(2) and then abort(), never an allocation
 * (the heap is not to be trusted any more):
 *
 *   mallocng: <program>[<pid>]: <what> at 0x<address>[, caller 0x<address>
 *   (<module>+0x<offset>)] (see mallocng(7))
 *
 * The tests (tests/util.c, test_options.c, fuzz/misuse.sh) parse what
 * follows "]: " and the hexadecimal after " at 0x": keep both.  The caller
 * is os_caller, set by the entry points' checked paths, where most errors
 * are found (free's fast path hands any pointer that fails a check to its
 * general path); malloc's cache, which finds a write after free, is
 * reached by a jump from malloc and names its own return address (see
 * slot.c).  An error found elsewhere names no caller: a core dump or a
 * debugger's backtrace at the abort does. */
_Noreturn void fail(const char *what, const void *p)
{
	char buf[320];
	size_t n = os_line_start(buf, 80), wl = strlen(what);
	if (wl > 60) wl = 60;
	memcpy(buf + n, what, wl), n += wl;
	memcpy(buf + n, " at 0x", 6), n += 6;
	n += os_xtoa(buf + n, (uintptr_t)p);
	if (os_caller) n += caller_text(buf + n, os_caller);
	memcpy(buf + n, " (see mallocng(7))\n", 19), n += 19;
	(void)!write(2, buf, n);
	abort();
}
