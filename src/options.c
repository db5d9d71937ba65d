/* options.c - MALLOCNG_OPTIONS, read once at initialisation.
 *
 * Syntax: key=value[,key=value]...  Parsing never allocates and never
 * fails: a bad key or value is reported once on stderr and ignored.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

HIDDEN struct options opt = { .decay_ms = 1000, .populate = 1 };
HIDDEN int opt_slow;
HIDDEN int opt_protect;

static void warn(const char *what, const char *s, size_t len)
{
	char buf[160];
	size_t n = 0, wl = strlen(what);
	if (len > 64) len = 64;
	memcpy(buf, "mallocng: ", 10), n = 10;
	memcpy(buf + n, what, wl), n += wl;
	memcpy(buf + n, s, len), n += len;
	memcpy(buf + n, "' in MALLOCNG_OPTIONS ignored\n", 30), n += 30;
	(void)!write(2, buf, n);
}

/* Parse a decimal with an optional k/m/g suffix; -1 if malformed. */
static long long number(const char *s, size_t len)
{
	long long v = 0;
	size_t i = 0;
	if (!len) return -1;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (1ll << 40)) return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0) return -1;
	if (i + 1 == len) {
		switch (s[i] | 32) {
		case 'k': return v << 10;
		case 'm': return v << 20;
		case 'g': return v << 30;
		default: return -1;
		}
	}
	return i == len ? v : -1;
}

static int set_path(char *dst, const char *v, size_t len)
{
	if (!len || len >= sizeof opt.stats_file) return -1;
	memcpy(dst, v, len);
	dst[len] = 0;
	return 0;
}

static void apply(const char *k, size_t kl, const char *v, size_t vl)
{
	static const struct { const char *name; int *flag; } flags[] = {
		{ "stats", &opt.stats }, { "junk", &opt.junk },
		{ "zero_free", &opt.zero_free }, { "guard", &opt.guard },
		{ "random", &opt.random }, { "hardened", &opt.hardened },
		{ "protect_meta", &opt.protect_meta }, { "populate", &opt.populate },
	};
	long long n = number(v, vl);
	for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
		if (strlen(flags[i].name) != kl || memcmp(flags[i].name, k, kl)) continue;
		if (n != 0 && n != 1) goto bad_value;
		*flags[i].flag = (int)n;
		return;
	}
#define IS(name) (kl == sizeof name - 1 && !memcmp(k, name, kl))
	if (IS("verbose")) {
		if (n < 0 || n > 2) goto bad_value;
		opt.verbose = (int)n;
	} else if (IS("quarantine")) {
		if (n < 0) goto bad_value;
		opt.quarantine = (size_t)n;
	} else if (IS("decay_ms")) {
		if (n < 0 || n > 3600000) goto bad_value;
		opt.decay_ms = (int)n;
	} else if (IS("fail_mmap")) {
		if (n < 0) goto bad_value;
		opt.fail_mmap = (long)n;
	} else if (IS("stats_file")) {
		if (set_path(opt.stats_file, v, vl)) goto bad_value;
		opt.stats = 1;
	} else if (IS("heap_map")) {
		if (set_path(opt.heap_map, v, vl)) goto bad_value;
	} else {
		warn("unknown option '", k, kl);
	}
	return;
bad_value:
	warn("bad value in option '", k, kl + 1 + vl);
}

/* not const: in .data, whose pages are resident anyway, rather than on a
 * page of .rodata that a process calling malloc once would fault in */
static char options_env[] = "MALLOCNG_OPTIONS";

void options_init(void)
{
	const char *s = getenv(options_env);
	while (s && *s) {
		const char *end = strchr(s, ','), *eq;
		size_t len = end ? (size_t)(end - s) : strlen(s);
		eq = memchr(s, '=', len);
		if (len) {
			if (eq) apply(s, eq - s, eq + 1, len - (eq - s) - 1);
			else apply(s, len, "1", 1);
		}
		s += len + (end != 0);
	}
	if (opt.hardened) {
		opt.junk = opt.guard = opt.random = 1;
		if (!opt.quarantine) opt.quarantine = 1 << 20;
	}
	/* programs may close stderr before our exit handler runs */
	if (opt.stats && !opt.stats_file[0]) opt.stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
	options_changed();
}

/* Derive the flags the hot paths test from opt (after options_init and
 * mallopt).  Written only when they change: a process with the defaults
 * touches no page for them. */
void options_changed(void)
{
	int slow = opt.junk | opt.zero_free | opt.random | (opt.quarantine != 0) | opt.protect_meta;
	if (opt_slow != slow) opt_slow = slow;
	if (opt_protect != opt.protect_meta) opt_protect = opt.protect_meta;
}
