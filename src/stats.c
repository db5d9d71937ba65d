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

static size_t resident_bytes(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0) return 0;
	buf[r] = 0;
	char *s = strchr(buf, ' ');
	size_t pages = 0;
	for (s = s ? s + 1 : buf; *s >= '0' && *s <= '9'; s++) pages = pages * 10 + (*s - '0');
	return pages * (size_t)sysconf(_SC_PAGESIZE);
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
	st->bytes_resident = resident_bytes();
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

EXPORT void mallocng_print_stats(int fd)
{
	struct mallocng_stats st;
	stats_collect(&st);
	out(fd, "mallocng %s statistics (pid %d)\n", PACKAGE_VERSION, (int)getpid());
	out(fd, "%8s %7s %9s %9s %7s %12s %12s %6s\n", "class", "groups", "slots",
	    "used", "cached", "live bytes", "slot bytes", "waste");
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *c = &st.classes[sc];
		if (!c->groups) continue;
		size_t total = c->slots * c->slot_size;
		out(fd, "%8zu %7zu %9zu %9zu %7zu %12zu %12zu %5.1f%%\n", c->slot_size, c->groups,
		    c->slots, c->slots_used, c->slots_cached, c->bytes_live, total,
		    pct(total - c->bytes_live, total));
	}
	out(fd, "large objects: %zu using %zu bytes mapped\n", st.large_count, st.large_bytes);
	out(fd, "live: %zu bytes in %zu objects; mapped: %zu; resident (process): %zu\n",
	    st.bytes_live, st.objects_live, st.bytes_mapped, st.bytes_resident);
	out(fd, "metadata: %zu bytes mapped; overhead: %.1f%% of mapped; fragmentation: %.1f%% of slots\n",
	    st.bytes_meta, pct(st.bytes_mapped + st.bytes_meta - st.bytes_live, st.bytes_mapped + st.bytes_meta),
	    pct(st.bytes_slots ? st.bytes_mapped - st.large_bytes - st.bytes_slots : 0,
		st.bytes_mapped - st.large_bytes));
	out(fd, "threads: %zu; groups: %zu, %zu released; syscalls: mmap %zu munmap %zu mremap %zu madvise %zu\n",
	    st.threads, st.groups, st.groups_released, st.mmap_calls, st.munmap_calls,
	    st.mremap_calls, st.madvise_calls);
}

/* ---- output files ---- */

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
		out(2, "mallocng: not writing %s to '%s': %s\n", what, path,
		    e == ELOOP ? "it is a symbolic link" :
		    e == EINVAL || e == ENXIO ? "not a regular file" :
		    e == EPERM ? "owned by another user" : strerror(e));
	errno = e;
	return -1;
}

/* ---- heap map: one row of slots per group, grouped by class ---- */

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
	for (uint32_t i = 0; i < lim; i++) {
		struct meta *m = meta_at(i);
		if (m && m->sc < NCLASS && per_class[m->sc] < ROWS_PER_CLASS) per_class[m->sc]++, rows++;
	}
	int classes = 0;
	for (int sc = 0; sc < NCLASS; sc++) classes += per_class[sc] != 0;
	int height = 40 + rows * (CELL + 2) + classes * 14;
	out(fd, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"11\">\n",
	    LEFT + 32 * (CELL + 1) + 260, height);
	out(fd, "<text x=\"4\" y=\"14\">mallocng heap map, pid %d: grey free, blue live, "
	    "orange cached, dark nested group</text>\n", (int)getpid());
	int y = 30;
	for (int sc = 0; sc < NCLASS; sc++) {
		if (!per_class[sc]) continue;
		out(fd, "<text x=\"4\" y=\"%d\">class %u B</text>\n", y + 10, class_stride[sc]);
		y += 14;
		int drawn = 0;
		for (uint32_t i = 0; i < lim && drawn < per_class[sc]; i++) {
			struct meta *m = meta_at(i);
			if (!m || m->sc != sc) continue;
			drawn++;
			out(fd, "<g><title>group %p, %d slots</title>\n", (void *)m->mem, m->cnt);
			for (int k = 0; k < m->cnt; k++) {
				size_t n = 0;
				int s = slot_state(m, k, &n);
				out(fd, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
				    LEFT + k * (CELL + 1), y, CELL, CELL, colour[s]);
			}
			out(fd, "</g>\n");
			y += CELL + 2;
		}
	}
	os_unlock();
	out(fd, "</svg>\n");
	close(fd);
	return 0;
}

/* The caller sees the error; the options at exit warn instead. */
EXPORT int mallocng_heap_map(const char *path)
{
	return heap_map(path, NULL);
}

__attribute__((destructor)) static void stats_at_exit(void)
{
	if (opt.stats) {
		int fd = opt.stats_fd > 0 ? opt.stats_fd : 2;
		if (opt.stats_file[0]) fd = open_output(opt.stats_file, 1, "statistics");
		if (fd >= 0) mallocng_print_stats(fd);
		if (fd > 2) close(fd);
	}
	if (opt.heap_map[0]) heap_map(opt.heap_map, "the heap map");
}
