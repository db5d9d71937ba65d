/* init.c - first use: the options, the class table, then the keys, after
 * which ro (size_class.c) is read-only. */
#include <string.h>
#include <unistd.h>
#include "internal.h"

/* verbose >= 1: one line on stderr with the version and every option in
 * effect (after MALLOCNG_OPTIONS, the privileged-process policy and the
 * hardened preset), so that a user sees at once whether the library is
 * loaded and what it was told.  Built in a buffer on the stack and written
 * with one write(2): this runs inside the first malloc, lock held. */
static void put(char *b, size_t *n, const char *s)
{
	size_t l = strlen(s);
	memcpy(b + *n, s, l), *n += l;
}

static void put_opt(char *b, size_t *n, const char *key, unsigned long long v)
{
	put(b, n, " "), put(b, n, key), put(b, n, "=");
	*n += os_utoa(b + *n, v);
}

static void print_options(void)
{
	/* line start <= 66, the fixed text and numbers < 400, two paths < 256 */
	char b[1024];
	size_t n = os_line_start(b, sizeof b);
	put(b, &n, "mallocng " PACKAGE_VERSION ", options:");
	put_opt(b, &n, "stats", opt.stats);
	put(b, &n, " stats_file="), put(b, &n, opt.stats_file[0] ? opt.stats_file : "-");
	put(b, &n, " heap_map="), put(b, &n, opt.heap_map[0] ? opt.heap_map : "-");
	put_opt(b, &n, "verbose", opt.verbose);
	put_opt(b, &n, "junk", opt.junk);
	put_opt(b, &n, "zero_free", opt.zero_free);
	put_opt(b, &n, "guard", opt.guard);
	put_opt(b, &n, "random", opt.random);
	put_opt(b, &n, "quarantine", opt.quarantine);
	put_opt(b, &n, "hardened", opt.hardened);
	put_opt(b, &n, "protect_meta", opt.protect_meta);
	put_opt(b, &n, "populate", opt.populate);
	put_opt(b, &n, "decay_ms", opt.decay_ms);
	if (opt.heap_map_peak) put_opt(b, &n, "heap_map_peak", 1);
	if (opt.heap_map_signal) put_opt(b, &n, "heap_map_signal", (unsigned)opt.heap_map_signal);
	if (opt.report_pid) put_opt(b, &n, "report_pid", (unsigned long long)opt.report_pid);
	if (opt.fail_mmap) put_opt(b, &n, "fail_mmap", opt.fail_mmap);
	put(b, &n, "\n");
	(void)!write(2, b, n);
}

/* First use of the heap (lock held): options, then the secret. */
void init_secret(void)
{
	uint64_t k[4] = { 0 };
	os_page_init();         /* before anything is mapped or sealed */
	os_mark_start();
	options_init();
	heap_map_setup();
	if (opt.verbose) print_options();
	size_class_init();
	while (!k[0]) os_random(k, sizeof k);
	ro.key[1] = k[1] | 1;           /* odd: the products lose no bit */
	ro.key[2] = k[2];
	ro.key[3] = k[3] | 1;
	ro.key[0] = k[0];               /* last: the flag that init is done */
	__builtin_memset(k, 0, sizeof k);
	__asm__ volatile("" : : "r"(k) : "memory");   /* no copy left on the stack */
	ro_protect(0);
}

void init_slow(void)
{
	os_lock();
	if (!init_done()) init_secret();
	os_unlock();
}
