/* util.h - helpers shared by the mallocng Check suites. */
#ifndef MALLOCNG_TEST_UTIL_H
#define MALLOCNG_TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>
#include "exec_self.h"

/* C23 sized deallocation; older C libraries do not declare these. */
void free_sized(void *p, size_t n);
void free_aligned_sized(void *p, size_t align, size_t n);

/* Hide a pointer's provenance from the compiler (no optimisation of
 * deliberately invalid frees / out-of-bounds writes). */
#define OPAQUE(p) ({ __typeof__(p) o_ = (p); __asm__ volatile("" : "+r"(o_)); o_; })

/* 1 << n for the huge requests of the tests, which must stay huge with a
 * 32-bit size_t: there a count past the width gives the largest power of
 * two, 1 << 31 (a plain (size_t)1 << 62 is undefined there; GCC made it
 * 0, and malloc(0) succeeds). */
#define POW2(n) ((n) < 8 * sizeof(size_t) ? (size_t)1 << ((n) & (8 * sizeof(size_t) - 1)) \
                                          : (size_t)1 << (8 * sizeof(size_t) - 1))

/* Under an emulator (MALLOCNG_TEST_EMULATOR: a cross build's make check,
 * exec_self.h) the process's RSS and address space are the emulator's,
 * threads and forks cost a hundred times more, and qemu-user (7.2) takes
 * madvise's MADV_POPULATE_* for no-ops: a test that depends on these
 * returns at once and says why (a Check test case) ... */
#define SKIP_IF_EMULATED(why) do { \
		if (test_emulator()) { \
			printf("%s: skipped under the emulator (%s): %s\n", __func__, \
			       test_emulator(), (why)); \
			return; \
		} \
	} while (0)
/* ... or a whole suite (main returns 77: SKIP in make check). */
#define SKIP_SUITE_IF_EMULATED(why) do { \
		if (test_emulator()) { \
			printf("SKIP: skipped under the emulator (%s): %s\n", \
			       test_emulator(), (why)); \
			return 77; \
		} \
	} while (0)

/* Cheap assertion for hot loops: Check's ck_assert_* records a "last
 * passed point" with a system call every time, this one only on failure. */
#define REQUIRE(cond, ...) \
	do { if (__builtin_expect(!(cond), 0)) ck_abort_msg(__VA_ARGS__); } while (0)

/* Small deterministic PRNG (xorshift64*); state must be non-zero. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
	return lo + (size_t)(rng_next(s) % (hi - lo + 1));
}

/* Per-object byte pattern depending on a seed and the byte offset. */
static inline unsigned char pat_byte(uint32_t seed, size_t i)
{
	return (unsigned char)(seed ^ (seed >> 8) ^ (i * 131u) ^ (i >> 8) ^ (i >> 16));
}
void fill_pattern(void *p, size_t n, uint32_t seed);
/* Returns n if all n bytes equal c, else the index of the first other one.
 * (Never ck_assert per byte: every Check assertion costs a system call.) */
size_t check_bytes(const void *p, size_t n, unsigned char c);
/* Returns n if all bytes match, else the index of the first bad byte. */
size_t check_pattern(const void *p, size_t n, uint32_t seed);

/* Value (kB) of a "Key:" line of /proc/self/status, -1 when missing. */
long proc_status_kib(const char *key);
static inline long vm_rss_kib(void) { return proc_status_kib("VmRSS"); }
static inline long vm_size_kib(void) { return proc_status_kib("VmSize"); }

/* Run fn(arg) in a forked child with its stderr captured.  The child
 * exits 0 when fn returns and is killed by SIGALRM after timeout_s.
 * Returns the waitpid status; err receives the NUL-terminated stderr. */
typedef void (*child_fn)(void *arg);
int run_in_child(child_fn fn, void *arg, unsigned timeout_s,
                 char *err, size_t errcap);

/* Check assertion: fn(arg) must die by SIGABRT after printing a line that
 * starts with "mallocng: ", contains `words` (any words when NULL) and
 * " at 0x"; when addr is non-NULL the reported address must equal it. */
#define expect_abort(name, fn, arg, words, addr) \
	expect_abort_at(__FILE__, __LINE__, name, fn, arg, words, addr)
void expect_abort_at(const char *file, int line, const char *name,
                     child_fn fn, void *arg, const char *words,
                     const void *addr);

/* The same, but a mismatch is only recorded in `soft` so that a test can
 * run all its cases and report every failing one; soft_check() asserts. */
struct soft { int failed; size_t len; char text[8192]; };
#define soft_expect_abort(soft, name, fn, arg, words, addr) \
	soft_expect_abort_at(soft, __FILE__, __LINE__, name, fn, arg, words, addr)
void soft_expect_abort_at(struct soft *soft, const char *file, int line,
                          const char *name, child_fn fn, void *arg,
                          const char *words, const void *addr);
#define soft_check(soft) \
	ck_assert_msg((soft)->failed == 0, "%d case(s) failed:\n%s", \
	              (soft)->failed, (soft)->text)

/* Check assertion: fn(arg) must return normally (exit 0) and must not
 * print any "mallocng: " diagnostic. */
#define expect_clean_exit(name, fn, arg, timeout_s) \
	expect_clean_exit_at(__FILE__, __LINE__, name, fn, arg, timeout_s)
void expect_clean_exit_at(const char *file, int line, const char *name,
                          child_fn fn, void *arg, unsigned timeout_s);

/* Re-run this test program in a fresh process with MALLOCNG_OPTIONS set to
 * `options` (unset when NULL) and argv[1..2] = "--scenario" name, so that
 * the allocator starts with those options.  Returns the wait status; err
 * receives the child's stderr.  self_scenario() tells main() whether it
 * runs as such a child (returns the scenario name or NULL). */
int run_self(const char *options, const char *scenario, unsigned timeout_s,
             char *err, size_t errcap);
const char *self_scenario(int argc, char **argv);

/* A table of named scenarios for run_self; run_scenario_named runs the
 * one called name (exit status 99 for an unknown name). */
struct scenario {
	const char *name;
	int (*fn)(void);
};
int run_scenario_named(const char *name, const struct scenario *table, size_t n);

/* Whether text (stderr) has a line "mallocng: <program>[<pid>]: " followed
 * by msg (the start of the rest of the line, or all of it and its newline
 * when msg ends with one): the form of every message of the library. */
int has_message(const char *text, const char *msg);

/* The page size the allocator runs on: MALLOCNG_PAGE_SIZE when a test
 * build emulates one (make check-pagesize: a power of two above the
 * kernel's, up to 64 KiB, as src/os_map.c takes it), else the kernel's. */
size_t test_page_size(void);

/* What a page bigger than 4 KiB adds, in kB, to the memory that big slots
 * given back around live ones still keep: 0 on 4 KiB pages (bounds
 * measured there stay as they are).  p[0..count) are live objects (NULL:
 * none) at the start of slots of `slot` bytes: each keeps the pages its
 * slot touches, which reach further past it on a bigger page; and each of
 * the class's `groups` keeps its first page (the group header's). */
long page_pinned_extra_kib(void *const *p, int count, size_t slot, size_t groups);

/* Run a Check suite; returns the process exit status. */
struct Suite;
int run_suite(struct Suite *s);

#endif
