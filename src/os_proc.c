/* os_proc.c - the process (layer 0): the global lock, the span lock and their fork
 * handlers, the process counters (os_count: the bytes in use and their
 * peak, the start time), clocks, signal dispositions, entropy, and what
 * the library says: the program's name, the start of every line, and the
 * fatal-error line (fail).  With os_map.c, the only files that talk to the
 * kernel.  It calls nothing of the allocator, os_map.c included.
 *
 * Invariants:
 * - two futex locks: the global lock (os_lock) and the span lock
 *   (os_span_lock: span.c's pools, nothing else).  Each word is 0 (free),
 *   1 (held) or 2 (held, waiters on the futex).  The global lock is
 *   recursive: lock_held is this thread's depth of hold, and lock_word
 *   changes only when lock_held leaves 0 or comes back to it; the span
 *   lock is not (its holder takes no lock: it is a leaf);
 * - lock order: the global lock before the span lock, never the other
 *   way (a span operation may run with the global lock held: heap_get
 *   maps heap chunks under it);
 * - each lock's counters (os_count.lock_taken and lock_waited,
 *   span_lock_taken and span_lock_waited) are written by its holder only;
 * - fork: prepare takes the global lock then the span lock, the parent
 *   lets them go in the reverse order, and a forked child starts with
 *   both free (fork_child runs before the heap layer's handler), its start
 *   time and peaks from the fork;
 * - nothing here allocates, and only os_lock and os_span_lock (and the
 *   fork handlers through them) take the locks: the messages are written
 *   into the caller's buffer, and fail writes its line with one write(2)
 *   and aborts (the heap is not to be trusted any more);
 * - the functions that may run inside malloc and call what can fail
 *   (os_signal_install, os_progname) keep errno.
 */
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
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include "internal.h"

/* The process counters (os.h): os_map.c counts the mappings, this file
 * the bytes in use, the start time and the lock's acquisitions. */
HIDDEN struct os_counters os_count __attribute__((aligned(64)));
static __thread int lock_held;  /* depth of this thread's hold on the global lock */

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

long os_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* The locks' words: 0 free, 1 held, 2 held with waiters (futex); each
 * on a line of its own, so that the span lock's traffic does not slow
 * the global lock's holder. */
static _Atomic int lock_word __attribute__((aligned(64)));
static _Atomic int span_word __attribute__((aligned(64)));

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

/* Every outermost acquisition of a lock is counted (lock_taken,
 * span_lock_taken), and those that found it held (lock_waited,
 * span_lock_waited): the statistics report them, so that a workload's
 * trips to the shared state can be seen per operation.  All are written
 * by the lock's holder only. */
static void lock_wait(_Atomic int *word)
{
	for (int spin = 0; spin < 100; spin++) {
		int c = 0;
		if (atomic_load_explicit(word, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak(word, &c, 1))
			return;
		cpu_relax();
	}
	/* the wait fails with EAGAIN (the word changed) or EINTR: a malloc
	 * or free that succeeds leaves errno as it was (POSIX: free) */
	int e = errno;
	while (atomic_exchange(word, 2) != 0)
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 2, 0, 0, 0);
	errno = e;
}

/* 1 if the lock had to be waited for. */
static int word_lock(_Atomic int *word)
{
	int c = 0;
	if (atomic_compare_exchange_strong(word, &c, 1)) return 0;
	lock_wait(word);
	return 1;
}

static void word_unlock(_Atomic int *word)
{
	if (atomic_exchange(word, 0) == 2) {
		int e = errno;
		syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
		errno = e;
	}
}

/* Recursive for its holder: an open meta window (option protect_meta)
 * holds the lock around code that takes it again. */
void os_lock(void)
{
	if (lock_held++) return;
	os_count.lock_waited += word_lock(&lock_word);
	os_count.lock_taken++;
}

void os_unlock(void)
{
	if (--lock_held) return;
	word_unlock(&lock_word);
}

/* The span lock (span.c): a leaf, taken with or without the global lock. */
void os_span_lock(void)
{
	os_count.span_lock_waited += word_lock(&span_word);
	os_count.span_lock_taken++;
}

void os_span_unlock(void)
{
	word_unlock(&span_word);
}

static void fork_prepare(void)
{
	os_lock();
	os_span_lock();
}

static void fork_parent(void)
{
	os_span_unlock();
	os_unlock();
}

/* The child has one thread: the holders are gone, so reset the locks.
 * Heaps of threads that did not survive the fork are simply never used
 * again (the heap layer registers a child handler of its own, which runs
 * after this one: heap.c). */
static void fork_child(void)
{
	lock_held = 0;
	atomic_store(&lock_word, 0);
	atomic_store(&span_word, 0);
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
