/* heapmap.c - the heap map and the output files (layer 2: it reads the
 * meta records, the slot headers and the slot entries, nothing of the
 * core), and when the map is drawn besides exit (stats.c) and
 * mallocng_heap_map: at the peaks of the bytes in use (option
 * heap_map_peak) and after a signal (option heap_map_signal), both at the
 * next slow path that polls (heap_map_poll: malloc_slow, large objects),
 * never in the signal handler, which only sets a flag (nothing here is
 * async-signal-safe).
 *
 * A slot is cached when its group does not mark it free and its header
 * is stale (K_LIVE, verifying with the generation before its entry's:
 * freed, waiting in a thread cache, a remote batch or the quarantine);
 * else live; a live slot whose own header was voided holds an aligned
 * object.  Slots that hold a nested group are overhead, not user data.
 *
 * Output files (stats_file, heap_map, mallocng_heap_map) are written only
 * when they are, or are created as, regular files of the effective user,
 * reached without a symbolic link at the end of the path: a path that an
 * attacker pointed at another file must not damage that file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

int slot_state(struct meta *m, int i, size_t *n)
{
	uint32_t freed = __atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
			 atomic_load_explicit(&m->remote, memory_order_relaxed);
	if (freed >> i & 1) return S_FREE;
	size_t stride = class_stride(m->sc);
	unsigned char *p = m->mem + GROUP_HDR + i * stride;
	uint64_t hdr = *header_of(p);
	uint32_t ev = ent_load(ent_at(m->index, (unsigned)i));
	/* allocated for the group, with the stale header of its last use: in
	 * a thread cache or the quarantine (only K_LIVE slots go there) */
	if (hdr && tag_ok(hdr, p, K_LIVE, E_GBITS_PREV(ev))) return S_CACHED;
	/* a live object's size; the voided start of an aligned object (its
	 * header is of kind void) counts its whole slot */
	*n = hdr && (tag_ok(hdr, p, K_LIVE, E_GBITS(ev)) || tag_ok(hdr, p, K_SLOW, E_GBITS(ev))) ? (ev & E_N_MASK)
									       : stride - SLOT_HDR;
	uint32_t mi = *(uint32_t *)p;
	if (stride >= 64 && meta_index_used(mi)) {
		struct meta *g = (struct meta *)ro.areas[mi >> AREA_SHIFT].recs + (mi & (AREA_RECS - 1));
		if (g->mem == p) return S_NESTED;
	}
	return S_LIVE;
}

struct meta *meta_at(uint32_t i)
{
	if (!meta_index_used(i)) return 0;
	struct meta *m = (struct meta *)ro.areas[i >> AREA_SHIFT].recs + (i & (AREA_RECS - 1));
	return m->mem ? m : 0;
}

/* Formatted output to a file descriptor without stdio (no allocation). */
void out(int fd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
	if (n > 0) (void)!write(fd, buf, n);
}

/* ---- output files ---- */

/* "mallocng: <program>[<pid>]: " in buf (80 bytes), for a warning line */
static const char *line_start(char *buf)
{
	buf[os_line_start(buf, 80)] = 0;
	return buf;
}

/* Open path for writing, appending or from the start (truncated, but only
 * once it is known to be the caller's).  O_NOFOLLOW refuses a symbolic
 * link (ELOOP); O_NONBLOCK makes a FIFO without a reader fail (ENXIO)
 * instead of blocking, and is cleared again; O_NOCTTY keeps a terminal
 * from becoming the controlling one.  Anything but a regular file is
 * refused with EINVAL, a file of another user with EPERM.  Returns the
 * descriptor, or -1 with errno set and, when what is not NULL, one
 * warning line on stderr. */
int open_output(const char *path, int append, const char *what)
{
	char start[80];
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
			    (append ? O_APPEND : 0), 0644);
	struct stat st;
	int e = 0;
	if (fd < 0) e = errno;
	else if (fstat(fd, &st)) e = errno;
	else if (!S_ISREG(st.st_mode)) e = EINVAL;
	else if (st.st_uid != geteuid()) e = EPERM;
	else if (!append && ftruncate(fd, 0)) e = errno;
	else if (fcntl(fd, F_SETFL, append ? O_APPEND : 0)) e = errno;
	if (!e) return fd;
	if (fd >= 0) close(fd);
	if (what)
		out(2, "%snot writing %s to '%s': %s\n", line_start(start), what, path,
		    e == ELOOP ? "it is a symbolic link" :
		    e == EINVAL || e == ENXIO ? "not a regular file" :
		    e == EPERM ? "owned by another user" : strerror(e));
	errno = e;
	return -1;
}

/* ---- heap map: one row of slots per group, grouped by class ---- */

/* At most ROWS_PER_CLASS groups of a class are drawn, one row each (the
 * first ones in record order); the others are not dropped silently: one
 * line under the class says how many there are and sums their slots by
 * state, and the title gives the totals. */
int heap_map(const char *path, const char *what)
{
	int fd = open_output(path, 0, what);
	if (fd < 0) return -1;
	enum { CELL = 6, ROWS_PER_CLASS = 40, LEFT = 90 };
	static const char *colour[] = { "#dddddd", "#3465a4", "#f57900", "#888a85" };
	int rows = 0;
	os_lock();
	uint32_t lim = meta_limit;
	int per_class[NCLASS] = { 0 };
	size_t groups[NCLASS] = { 0 }, all_groups = 0, hidden_groups = 0;
	for (uint32_t i = 0; i < lim; i++) {
		struct meta *m = meta_at(i);
		if (!m || m->sc >= NCLASS) continue;
		groups[m->sc]++, all_groups++;
		if (per_class[m->sc] < ROWS_PER_CLASS) per_class[m->sc]++, rows++;
	}
	int classes = 0, summaries = 0;
	for (int sc = 0; sc < NCLASS; sc++) {
		classes += per_class[sc] != 0;
		summaries += groups[sc] > (size_t)per_class[sc];
		hidden_groups += groups[sc] - per_class[sc];
	}
	int height = 58 + rows * (CELL + 2) + classes * 14 + summaries * 14;
	out(fd, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"11\">\n",
	    LEFT + 32 * (CELL + 1) + 360, height);
	char prog[33];
	os_progname(prog, sizeof prog);
	out(fd, "<text x=\"4\" y=\"14\">mallocng heap map of %s[%d]: grey free, blue live, "
	    "orange cached, dark nested group</text>\n", prog, (int)getpid());
	out(fd, "<text x=\"4\" y=\"28\">%zu groups of small objects, %zu drawn (at most %d "
	    "a class), %zu summed up under their class</text>\n", all_groups,
	    all_groups - hidden_groups, ROWS_PER_CLASS, hidden_groups);
	int y = 44;
	for (int sc = 0; sc < NCLASS; sc++) {
		if (!per_class[sc]) continue;
		out(fd, "<text x=\"4\" y=\"%d\">class %u B</text>\n", y + 10, class_stride(sc));
		y += 14;
		int drawn = 0;
		size_t count[4] = { 0 };
		for (uint32_t i = 0; i < lim; i++) {
			struct meta *m = meta_at(i);
			if (!m || m->sc != sc) continue;
			if (drawn == per_class[sc]) {
				/* not drawn: counted */
				for (int k = 0; k < m->cnt; k++) {
					size_t n = 0;
					count[slot_state(m, k, &n)]++;
				}
				continue;
			}
			drawn++;
			out(fd, "<g><title>group %p, %d slots</title>\n", (void *)m->mem, m->cnt);
			for (int k = 0; k < m->cnt; k++) {
				size_t n = 0;
				int st = slot_state(m, k, &n);
				out(fd, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
				    LEFT + k * (CELL + 1), y, CELL, CELL, colour[st]);
			}
			out(fd, "</g>\n");
			y += CELL + 2;
		}
		if (groups[sc] > (size_t)drawn) {
			out(fd, "<text x=\"%d\" y=\"%d\">+ %zu more groups of this class, not drawn: "
			    "%zu slots, %zu live, %zu cached, %zu nested groups, %zu free</text>\n",
			    LEFT, y + 10, groups[sc] - drawn, count[0] + count[1] + count[2] + count[3],
			    count[S_LIVE], count[S_CACHED], count[S_NESTED], count[S_FREE]);
			y += 14;
		}
	}
	os_unlock();
	out(fd, "</svg>\n");
	close(fd);
	return 0;
}

/* The path of an output file named by an option: "%p" stands for the
 * process ID (so that each process of a pipeline or script, which inherit
 * MALLOCNG_OPTIONS, writes its own file) and "%%" for "%"; any other "%"
 * is kept.  Returns dst, or NULL (with a warning) if the result does not
 * fit. */
const char *expand_path(char *dst, size_t cap, const char *pat, const char *what)
{
	size_t n = 0;
	char start[80];
	for (const char *s = pat; *s; s++) {
		char num[24];
		const char *add = s, *end = s + 1;
		if (s[0] == '%' && s[1] == 'p') {
			num[os_utoa(num, (unsigned long long)getpid())] = 0;
			add = num, end = num + strlen(num), s++;
		} else if (s[0] == '%' && s[1] == '%') {
			end = s + 1, s++;
		}
		size_t l = (size_t)(end - add);
		if (n + l >= cap) {
			out(2, "%snot writing %s to '%s': the path is too long\n", line_start(start),
			    what, pat);
			return NULL;
		}
		memcpy(dst + n, add, l), n += l;
	}
	dst[n] = 0;
	return dst;
}


/* ---- when the map is drawn ---- */

HIDDEN int heap_map_armed;      /* heap_map_poll has work: peak or signal */
static _Atomic int map_signalled, map_busy, map_drawn;
static _Atomic size_t map_next = PEAK_FIRST;  /* in use at the next peak drawing */

static void on_signal(int sig)
{
	(void)sig;
	atomic_store_explicit(&map_signalled, 1, memory_order_relaxed);
}

/* At first use (init.c), after the options: the signal's handler, if the
 * program has no disposition of its own for it (else one warning). */
void heap_map_setup(void)
{
	if (!opt.heap_map[0]) return;
	if (opt.heap_map_signal && os_signal_install(opt.heap_map_signal, on_signal)) {
		char b[160], num[24];
		size_t n = os_line_start(b, 80);
		static const char m1[] = "heap_map_signal: signal ", m2[] =
			" already has a handler or is ignored: not installed (see mallocng(7))\n";
		memcpy(b + n, m1, sizeof m1 - 1), n += sizeof m1 - 1;
		size_t l = os_utoa(num, (unsigned)opt.heap_map_signal);
		memcpy(b + n, num, l), n += l;
		memcpy(b + n, m2, sizeof m2 - 1), n += sizeof m2 - 1;
		(void)!write(2, b, n);
		opt.heap_map_signal = 0;
	}
	heap_map_armed = opt.heap_map_peak || opt.heap_map_signal;
}

/* Draw the map if a signal came, or the bytes in use reached the next
 * peak mark (first PEAK_FIRST, then an eighth above the peak of the last
 * drawing).  One thread draws at a time; another that finds it drawing
 * leaves the work to the next poll. */
void heap_map_poll(void)
{
	size_t peak = atomic_load_explicit(&os_count.inuse_peak, memory_order_relaxed);
	int peak_due = opt.heap_map_peak && peak >= atomic_load_explicit(&map_next, memory_order_relaxed);
	if (!peak_due && !atomic_load_explicit(&map_signalled, memory_order_relaxed)) return;
	if (atomic_exchange(&map_busy, 1)) return;
	atomic_store(&map_signalled, 0);
	if (peak_due) atomic_store(&map_next, peak + peak / 8);
	char path[512];
	if ((!opt.report_pid || opt.report_pid == (long)getpid()) &&
	    expand_path(path, sizeof path, opt.heap_map, "the heap map"))
		heap_map(path, "the heap map");
	atomic_store(&map_drawn, 1);
	atomic_store(&map_busy, 0);
}

/* Whether the map is drawn at exit: without heap_map_peak and
 * heap_map_signal; with them, if it never was, or a signal is pending. */
int heap_map_exit_due(void)
{
	if (!heap_map_armed) return 1;
	return !atomic_load(&map_drawn) || atomic_load(&map_signalled);
}
