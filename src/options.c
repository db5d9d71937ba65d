/* options.c - MALLOCNG_OPTIONS, read once at initialisation.
 *
 * Syntax: key=value[,key=value]...  Parsing never allocates and never
 * fails: a bad key or value is reported once on stderr and ignored.
 *
 * In a privileged process (getauxval(AT_SECURE): set-user-ID, set-group-ID,
 * file capabilities) the environment belongs to a less privileged user, so
 * only the options that make the allocator stricter are taken from it (see
 * secure_merge); the others keep their defaults and get one warning line.
 */
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "internal.h"

HIDDEN int opt_slow;
HIDDEN int opt_protect;

/* One warning line: "mallocng: <program>[<pid>]: <what><s>' in
 * MALLOCNG_OPTIONS ignored"
 * and, when accepted is not NULL, " (accepted: <accepted>)", so that a
 * user learns the valid values from the line itself. */
static void warn(const char *what, const char *s, size_t len, const char *accepted)
{
	char buf[480];  /* line start <= 66 */
	size_t n = os_line_start(buf, sizeof buf), wl = strlen(what);
	size_t al = accepted ? strlen(accepted) : 0;
	if (len > 64) len = 64;
	if (al > 250) al = 250;
	memcpy(buf + n, what, wl), n += wl;
	memcpy(buf + n, s, len), n += len;
	memcpy(buf + n, "' in MALLOCNG_OPTIONS ignored", 29), n += 29;
	if (al) {
		memcpy(buf + n, " (", 2), n += 2;
		memcpy(buf + n, accepted, al), n += al;
		buf[n++] = ')';
	}
	buf[n++] = '\n';
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

/* A signal by name (USR2, SIGUSR2) or number (n, -1 if none) for
 * heap_map_signal: not SIGKILL, SIGSTOP or one of the faults. */
static int signal_number(const char *v, size_t vl, long long n)
{
	static const struct { const char *name; int sig; } names[] = {
		{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP }, { "INT", SIGINT },
		{ "QUIT", SIGQUIT }, { "TERM", SIGTERM }, { "WINCH", SIGWINCH }, { "URG", SIGURG },
		{ "PWR", SIGPWR },
	};
	if (vl > 3 && !memcmp(v, "SIG", 3)) v += 3, vl -= 3;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strlen(names[i].name) == vl && !memcmp(names[i].name, v, vl)) return names[i].sig;
	if (n <= 0 || n >= 65 || n == SIGKILL || n == SIGSTOP || n == SIGSEGV || n == SIGBUS ||
	    n == SIGILL || n == SIGFPE || n == SIGABRT || n == SIGTRAP)
		return -1;
	return (int)n;
}

static int set_path(char *dst, const char *v, size_t len)
{
	if (!len || len >= sizeof opt.stats_file) return -1;
	memcpy(dst, v, len);
	dst[len] = 0;
	return 0;
}

static void apply(struct options *o, const char *k, size_t kl, const char *v, size_t vl)
{
	static const struct { const char *name; size_t off; } flags[] = {
		{ "stats", offsetof(struct options, stats) },
		{ "junk", offsetof(struct options, junk) },
		{ "zero_free", offsetof(struct options, zero_free) },
		{ "guard", offsetof(struct options, guard) },
		{ "random", offsetof(struct options, random) },
		{ "hardened", offsetof(struct options, hardened) },
		{ "protect_meta", offsetof(struct options, protect_meta) },
		{ "populate", offsetof(struct options, populate) },
		{ "heap_map_peak", offsetof(struct options, heap_map_peak) },
	};
	const char *accepted = "accepted: 0 or 1";
	long long n = number(v, vl);
	for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
		if (strlen(flags[i].name) != kl || memcmp(flags[i].name, k, kl)) continue;
		if (n != 0 && n != 1) goto bad_value;
		*(int *)((char *)o + flags[i].off) = (int)n;
		return;
	}
#define IS(name) (kl == sizeof name - 1 && !memcmp(k, name, kl))
	if (IS("verbose")) {
		accepted = "accepted: 0, 1 or 2";
		if (n < 0 || n > 2) goto bad_value;
		o->verbose = (int)n;
	} else if (IS("quarantine")) {
		accepted = "accepted: bytes, a decimal with an optional k, m or g suffix";
		if (n < 0) goto bad_value;
		o->quarantine = (size_t)n;
	} else if (IS("decay_ms")) {
		accepted = "accepted: 0 to 3600000";
		if (n < 0 || n > 3600000) goto bad_value;
		o->decay_ms = (int)n;
	} else if (IS("report_pid")) {
		accepted = "accepted: a process ID, 0 for every process";
		if (n < 0 || n > 0x7fffffff) goto bad_value;
		o->report_pid = (long)n;
	} else if (IS("fail_mmap")) {
		accepted = "accepted: a count, 0 for off";
		if (n < 0) goto bad_value;
		o->fail_mmap = (long)n;
	} else if (IS("stats_file")) {
		accepted = "accepted: a path of 1 to 255 bytes without ','";
		if (set_path(o->stats_file, v, vl)) goto bad_value;
		o->stats = 1;
	} else if (IS("heap_map_signal")) {
		accepted = "accepted: USR1, USR2, HUP, INT, QUIT, TERM, WINCH, URG, PWR, "
			   "with or without SIG, or a number";
		if ((o->heap_map_signal = signal_number(v, vl, n)) <= 0) goto bad_value;
	} else if (IS("heap_map")) {
		accepted = "accepted: a path of 1 to 255 bytes without ','";
		if (set_path(o->heap_map, v, vl)) goto bad_value;
	} else {
		warn("unknown option '", k, kl, "known: stats, stats_file, heap_map, verbose, junk, "
		     "zero_free, guard, random, quarantine, hardened, protect_meta, populate, decay_ms, "
		     "report_pid, heap_map_peak, heap_map_signal; "
		     "see mallocng(7)");
	}
	return;
bad_value:
	warn("bad value in option '", k, kl + 1 + vl, accepted);
}

/* not const: in .data, whose pages are resident anyway, rather than on a
 * page of .rodata that a process calling malloc once would fault in */
static char options_env[] = "MALLOCNG_OPTIONS";

static void parse(struct options *o, const char *s)
{
	while (s && *s) {
		const char *end = strchr(s, ','), *eq;
		size_t len = end ? (size_t)(end - s) : strlen(s);
		eq = memchr(s, '=', len);
		if (len) {
			if (eq) apply(o, s, eq - s, eq + 1, len - (eq - s) - 1);
			else apply(o, s, len, "1", 1);
		}
		s += len + (end != 0);
	}
}

/* buf has room for the names of all 10 options below, their separators
 * and a newline */
static void add_name(char *buf, size_t *n, const char *name)
{
	size_t l = strlen(name);
	if (*n) buf[(*n)++] = ',', buf[(*n)++] = ' ';
	memcpy(buf + *n, name, l), *n += l;
}

/* The policy of a privileged process: from the options the environment
 * asked for (o, parsed from a copy of opt), take those that only make the
 * allocator stricter (junk, zero_free, guard, random, quarantine, hardened,
 * protect_meta: they cost the program speed and memory, never safety).
 * Everything else keeps its value: stats, stats_file, heap_map,
 * heap_map_peak, heap_map_signal (which installs a signal handler) and
 * verbose write files or messages, which would let the invoking user
 * create or overwrite files with the program's privileges or read its heap
 * statistics; fail_mmap makes allocations fail where privileged code may
 * not expect it; decay_ms and populate are tuning with nothing to gain
 * there; report_pid only selects output that is not written there anyway.  So the rule is "only what tightens", which also keeps an option
 * added later out until it is classified here.  The options ignored are
 * named in one line on stderr, if stderr is open (the C library reopens a
 * closed one on /dev/null in such a process; the test costs one call). */
#define SECURE_WARNING "MALLOCNG_OPTIONS in a privileged (AT_SECURE) process: ignored "
static void secure_merge(const struct options *o)
{
	char buf[72 + sizeof SECURE_WARNING + 160];  /* line start <= 66 */
	size_t start = os_line_start(buf, 72), n = 0;
	char *names = buf + start + sizeof SECURE_WARNING - 1;
	opt.junk = o->junk, opt.zero_free = o->zero_free, opt.guard = o->guard;
	opt.random = o->random, opt.hardened = o->hardened, opt.protect_meta = o->protect_meta;
	opt.quarantine = o->quarantine;
	memcpy(buf + start, SECURE_WARNING, sizeof SECURE_WARNING - 1);
	if (o->stats != opt.stats) add_name(names, &n, "stats");
	if (o->stats_file[0]) add_name(names, &n, "stats_file");
	if (o->heap_map[0]) add_name(names, &n, "heap_map");
	if (o->heap_map_peak != opt.heap_map_peak) add_name(names, &n, "heap_map_peak");
	if (o->heap_map_signal != opt.heap_map_signal) add_name(names, &n, "heap_map_signal");
	if (o->verbose != opt.verbose) add_name(names, &n, "verbose");
	if (o->fail_mmap != opt.fail_mmap) add_name(names, &n, "fail_mmap");
	if (o->report_pid != opt.report_pid) add_name(names, &n, "report_pid");
	if (o->decay_ms != opt.decay_ms) add_name(names, &n, "decay_ms");
	if (o->populate != opt.populate) add_name(names, &n, "populate");
	if (!n || fcntl(2, F_GETFD) < 0) return;
	names[n++] = '\n';
	(void)!write(2, buf, start + sizeof SECURE_WARNING - 1 + n);
}

void options_init(void)
{
	const char *s = getenv(options_env);
	if (s && getauxval(AT_SECURE)) {
		struct options o = opt;
		parse(&o, s);
		secure_merge(&o);
	} else {
		parse(&opt, s);
	}
	if (opt.hardened) {
		opt.junk = opt.guard = opt.random = 1;
		if (!opt.quarantine) opt.quarantine = 1 << 20;
	}
	/* programs may close stderr before our exit handler runs (the copy is
	 * taken in every process: a child forked before it exits is not the
	 * one report_pid names, but an exec keeps the process ID) */
	if ((opt.stats && !opt.stats_file[0]) || opt.verbose >= 2)
		opt.stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
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
