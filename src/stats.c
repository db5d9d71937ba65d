/* stats.c - statistics, and the report and heap map at exit (glibc.c has
 * the glibc introspection calls; heapmap.c the heap map, the slots' states
 * and the output files).
 *
 * Nothing here runs on the fast paths: figures are computed on demand by
 * walking every meta record under the lock (groups are unmapped only after
 * their record is freed under the lock, so every group seen is mapped).
 * What a slot's state is (live, cached, nested group, free): slot_state,
 * heapmap.c.
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
	st->threads = atomic_load_explicit(&os_count.heaps_live, memory_order_relaxed);
	/* this acquisition included, of each lock (the span lock's counters
	 * are its holder's: os_proc.c) */
	st->lock_acquisitions = os_count.lock_taken;
	st->lock_contended = os_count.lock_waited;
	os_span_lock();
	st->span_lock_acquisitions = os_count.span_lock_taken;
	st->span_lock_contended = os_count.span_lock_waited;
	os_span_unlock();
	os_unlock();
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *c = &st->classes[sc];
		c->slot_size = class_stride(sc);
		st->groups += c->groups;
		st->bytes_live += c->bytes_live;
		st->objects_live += c->slots_used;
		st->bytes_slots += c->slots_used * c->slot_size;
	}
	st->bytes_mapped = os_count.mapped;
	st->bytes_resident = resident_bytes().now;
	st->groups_released = os_count.groups_released;
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
	 * mappings (the walk); the peak: the counters' (os_proc.c), at least that */
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
	out(fd, "span lock: taken %zu times, %zu of them found it held\n", st.span_lock_acquisitions,
	    st.span_lock_contended);
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
	    (size_t)os_count.groups_released);
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
	if (opt.heap_map[0] && heap_map_exit_due() &&
	    expand_path(path, sizeof path, opt.heap_map, "the heap map"))
		heap_map(path, "the heap map");
}
