/* stats.c - statistics and the heap map (glibc.c has the glibc
 * introspection calls).
 *
 * Nothing here runs on the fast paths: figures are computed on demand by
 * walking every meta record under the lock (groups are unmapped only after
 * their record is freed under the lock, so every group seen is mapped).
 * A slot is live when its group does not mark it free and its header
 * verifies; cached when its header verifies with the freed flag; a live
 * slot whose own header was voided holds an aligned object.  Slots that
 * hold a nested group are overhead, not user data.
 *
 * Output files (stats_file, heap_map, mallocng_heap_map) are written only
 * when they are, or are created as, regular files of the effective user,
 * reached without a symbolic link at the end of the path: a path that an
 * attacker pointed at another file must not damage that file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

enum { S_FREE, S_LIVE, S_CACHED, S_NESTED };

static int slot_state(struct meta *m, int i, size_t *n)
{
	uint32_t freed = __atomic_load_n(&m->avail, __ATOMIC_RELAXED) |
			 atomic_load_explicit(&m->remote, memory_order_relaxed);
	if (freed >> i & 1) return S_FREE;
	size_t stride = class_stride[m->sc];
	unsigned char *p = m->mem + GROUP_HDR + i * stride;
	uint64_t hdr = *header_of(p);
	if (freed_ok(hdr, p)) return S_CACHED;
	/* a live object's size; the voided start of an aligned object (its
	 * header is of kind void) counts its whole slot */
	size_t sz = object_size(p, hdr, stride - SLOT_HDR);
	*n = sz != (size_t)-1 && sealed(hdr, p, sz, K_LIVE) ? sz : stride - SLOT_HDR;
	uint32_t mi = *(uint32_t *)p;
	if (stride >= 64 && meta_index_used(mi)) {
		struct meta *g = (struct meta *)meta_areas[mi >> AREA_SHIFT].recs + (mi & (AREA_RECS - 1));
		if (g->mem == p) return S_NESTED;
	}
	return S_LIVE;
}

static struct meta *meta_at(uint32_t i)
{
	if (!meta_index_used(i)) return 0;
	struct meta *m = (struct meta *)meta_areas[i >> AREA_SHIFT].recs + (i & (AREA_RECS - 1));
	return m->mem ? m : 0;
}

/* The process's resident set now and at its peak, from /proc/self/status
 * (VmRSS, VmHWM, in kB): the whole process, not only the allocator's
 * memory, and the peak is the kernel's, so it costs nothing until it is
 * read.  Read into a buffer on the stack (no allocation); 0 when /proc is
 * not mounted. */
struct resident { size_t now, peak; };

static size_t status_kib(const char *buf, const char *key)
{
	const char *s = strstr(buf, key);
	size_t v = 0;
	if (!s) return 0;
	for (s += strlen(key); *s == ' ' || *s == '\t'; s++)
		;
	for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (size_t)(*s - '0');
	return v << 10;
}

static struct resident resident_bytes(void)
{
	struct resident r = { 0, 0 };
	char buf[4096];
	int e = errno, fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errno = e;
		return r;
	}
	ssize_t len = read(fd, buf, sizeof buf - 1);
	close(fd);
	errno = e;
	if (len <= 0) return r;
	buf[len] = 0;
	r.now = status_kib(buf, "\nVmRSS:");
	r.peak = status_kib(buf, "\nVmHWM:");
	return r;
}

void stats_collect(struct mallocng_stats *st)
{
	memset(st, 0, sizeof *st);
	st->size = sizeof *st;
	st->version = MALLOCNG_STATS_VERSION;
	ensure_init();          /* the class table */
	remote_batch_flush(tl_heap);  /* the caller's own frees count */
	os_lock();
	uint32_t lim = meta_limit;
	for (uint32_t i = 0; i < lim; i++) {
		struct meta *m = meta_at(i);
		if (!m) continue;
		if (m->sc == SC_LARGE) {
			st->large_count++;
			st->large_bytes += m->maplen;
			st->bytes_live += m->size;
			st->objects_live++;
			continue;
		}
		struct mallocng_class_stats *c = &st->classes[m->sc];
		c->groups++;
		c->slots += m->cnt;
		for (int k = 0; k < m->cnt; k++) {
			size_t n = 0;
			switch (slot_state(m, k, &n)) {
			case S_LIVE: c->slots_used++, c->bytes_live += n; break;
			case S_CACHED: c->slots_cached++; break;
			}
		}
	}
	st->bytes_meta = os_count.meta_bytes_mapped + os_count.heaps_mapped;
	st->threads = os_count.heaps_live;
	/* this acquisition included */
	st->lock_acquisitions = os_count.lock_taken;
	st->lock_contended = os_count.lock_waited;
	os_unlock();
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *c = &st->classes[sc];
		c->slot_size = class_stride[sc];
		st->groups += c->groups;
		st->bytes_live += c->bytes_live;
		st->objects_live += c->slots_used;
		st->bytes_slots += c->slots_used * c->slot_size;
	}
	st->bytes_mapped = os_count.mapped;
	st->bytes_resident = resident_bytes().now;
	st->groups_released = os_count.released;
	st->mmap_calls = os_count.mmaps;
	st->munmap_calls = os_count.munmaps;
	st->mremap_calls = os_count.mremaps;
	st->madvise_calls = os_count.madvises;
}

EXPORT int mallocng_get_stats(struct mallocng_stats *st)
{
	struct mallocng_stats all;
	size_t want = st->size;
	if (want < offsetof(struct mallocng_stats, classes)) {
		errno = EINVAL;
		return -1;
	}
	stats_collect(&all);
	if (want > sizeof all) want = sizeof all;
	memcpy(st, &all, want);
	st->size = want;
	return 0;
}

/* Formatted output to a file descriptor without stdio (no allocation). */
static void out(int fd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
	if (n > 0) (void)!write(fd, buf, n);
}

static double pct(size_t a, size_t b)
{
	return b ? 100.0 * a / b : 0;
}

/* v bytes in human units: "512 B", "12.5 KiB", "3.0 MiB", "1.2 GiB"
 * (binary units, 1 KiB = 1024 bytes), at most 11 characters. */
static const char *human(char buf[16], size_t v)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB" };
	if (v < 1024) {
		snprintf(buf, 16, "%zu B", v);
		return buf;
	}
	double x = v / 1024.0;
	int u = 0;
	while (x >= 1024 && u < 3) x /= 1024, u++;
	snprintf(buf, 16, "%.1f %s", x, unit[u]);
	return buf;
}

/* The figures of the report that the public struct does not carry: they
 * come from the OS layer's counters and from /proc, never from malloc's or
 * free's paths. */
struct extra {
	size_t mapped_peak, inuse_peak;
	struct resident res;
	double elapsed_s;
	char prog[33];
};

static void extra_collect(struct extra *x)
{
	x->mapped_peak = atomic_load_explicit(&os_count.mapped_peak, memory_order_relaxed);
	x->inuse_peak = atomic_load_explicit(&os_count.inuse_peak, memory_order_relaxed);
	x->res = resident_bytes();
	x->elapsed_s = os_elapsed_ns() / 1e9;
	os_progname(x->prog, sizeof x->prog);
}

/* The report of stats=1, mallocng_print_stats and `mallocng --stats`.
 * Every line is explained in mallocng(7), STATISTICS: keep the two in
 * step.  Written with write(2) line by line, allocating nothing (the
 * program may be inside a failed allocation, or at exit). */
EXPORT void mallocng_print_stats(int fd)
{
	struct mallocng_stats st;
	struct extra x;
	char a[16], b[16], c[16];
	stats_collect(&st);
	extra_collect(&x);
	size_t small_mapped = st.bytes_mapped > st.large_bytes + st.bytes_meta ?
			      st.bytes_mapped - st.large_bytes - st.bytes_meta : 0;
	/* in use now: the slots of live and cached objects, the large
	 * mappings (the walk); the peak: the counters' (os.c), at least that */
	size_t inuse = st.large_bytes;
	for (int sc = 0; sc < NCLASS; sc++)
		inuse += (st.classes[sc].slots_used + st.classes[sc].slots_cached) * st.classes[sc].slot_size;
	if (x.inuse_peak < inuse) x.inuse_peak = inuse;
	out(fd, "mallocng %s statistics of %s[%d], %.3f s after start\n", PACKAGE_VERSION, x.prog,
	    (int)getpid(), x.elapsed_s);
	out(fd, "%-10s %11s %11s\n", "", "now", "peak");
	out(fd, "%-10s %11s %11s  %zu objects requested and not freed (their peak: in use)\n", "live",
	    human(a, st.bytes_live), "-", st.objects_live);
	out(fd, "%-10s %11s %11s  their slots, the thread caches' and large objects' mappings\n",
	    "in use", human(a, inuse), human(b, x.inuse_peak));
	out(fd, "%-10s %11s %11s  by the allocator, %zu mmap and %zu munmap calls so far\n", "mapped",
	    human(a, st.bytes_mapped), human(b, x.mapped_peak), st.mmap_calls, st.munmap_calls);
	out(fd, "%-10s %11s %11s  the whole process (VmRSS, VmHWM)\n", "resident",
	    human(a, x.res.now), human(b, x.res.peak));
	out(fd, "mapped now: %s in %zu groups of small objects, %s in %zu large objects, %s of metadata\n",
	    human(a, small_mapped), st.groups, human(b, st.large_bytes), st.large_count,
	    human(c, st.bytes_meta));
	out(fd, "overhead: %.1f%% of mapped is not live data; fragmentation: %.1f%% of the small "
	    "objects' mapping is outside live slots\n",
	    pct(st.bytes_mapped > st.bytes_live ? st.bytes_mapped - st.bytes_live : 0, st.bytes_mapped),
	    pct(small_mapped > st.bytes_slots ? small_mapped - st.bytes_slots : 0, small_mapped));
	out(fd, "threads: %zu with a heap; groups released: %zu; OS calls: mmap %zu, munmap %zu, "
	    "mremap %zu, madvise %zu\n", st.threads, st.groups_released, st.mmap_calls,
	    st.munmap_calls, st.mremap_calls, st.madvise_calls);
	out(fd, "global lock: taken %zu times, %zu of them found it held\n", st.lock_acquisitions,
	    st.lock_contended);
	out(fd, "allocation and free counts: not kept (most are served by the thread caches, "
	    "where a count would cost the fast paths; see mallocng(7))\n");
	out(fd, "%9s %7s %7s %7s %7s %11s %11s %6s\n", "class", "groups", "slots",
	    "used", "cached", "live", "slots", "waste");
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *k = &st.classes[sc];
		if (!k->groups) continue;
		size_t total = k->slots * k->slot_size;
		out(fd, "%7zu B %7zu %7zu %7zu %7zu %11s %11s %5.1f%%\n", k->slot_size, k->groups,
		    k->slots, k->slots_used, k->slots_cached, human(a, k->bytes_live),
		    human(b, total), pct(total - k->bytes_live, total));
	}
}

/* verbose >= 2: one line at exit with what the OS layer counted, cheap
 * (no walk of the records): mapped and resident bytes now and at their
 * peak, and the system calls. */
static void verbose_exit_line(int fd)
{
	struct extra x;
	char a[16], b[16], c[16], d[16], line[80];
	extra_collect(&x);
	size_t n = os_line_start(line, sizeof line);
	line[n] = 0;
	out(fd, "%sat exit after %.3f s: mapped %s (peak %s), resident %s (peak %s); "
	    "mmap %zu, munmap %zu, mremap %zu, madvise %zu calls; %zu groups released\n",
	    line, x.elapsed_s, human(a, os_count.mapped), human(b, x.mapped_peak),
	    human(c, x.res.now), human(d, x.res.peak), (size_t)os_count.mmaps,
	    (size_t)os_count.munmaps, (size_t)os_count.mremaps, (size_t)os_count.madvises,
	    (size_t)os_count.released);
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
static int open_output(const char *path, int append, const char *what)
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
static int heap_map(const char *path, const char *what)
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
		out(fd, "<text x=\"4\" y=\"%d\">class %u B</text>\n", y + 10, class_stride[sc]);
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
static const char *expand_path(char *dst, size_t cap, const char *pat, const char *what)
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

/* The caller sees the error; the options at exit warn instead. */
EXPORT int mallocng_heap_map(const char *path)
{
	return heap_map(path, NULL);
}

__attribute__((destructor)) static void stats_at_exit(void)
{
	char path[512];
	if (opt.verbose >= 2) verbose_exit_line(opt.stats_fd > 0 ? opt.stats_fd : 2);
	/* report_pid: the process the mallocng command started (an exec keeps
	 * its ID), not the children that inherited the options */
	if (opt.report_pid && opt.report_pid != (long)getpid()) return;
	if (opt.stats) {
		int fd = opt.stats_fd > 0 ? opt.stats_fd : 2;
		if (opt.stats_file[0]) {
			const char *p = expand_path(path, sizeof path, opt.stats_file, "statistics");
			fd = p ? open_output(p, 1, "statistics") : -1;
		}
		if (fd >= 0) mallocng_print_stats(fd);
		if (fd > 2) close(fd);
	}
	if (opt.heap_map[0] && expand_path(path, sizeof path, opt.heap_map, "the heap map"))
		heap_map(path, "the heap map");
}
