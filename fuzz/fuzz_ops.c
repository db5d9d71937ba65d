/* fuzz_ops.c - libFuzzer target: the input is a script of allocator calls.
 *
 * The allocator sources are compiled into the fuzzer binary (see
 * fuzz/Makefile.am, `make fuzz`), so malloc & co. of the whole process are
 * mallocng's and the coverage instrumentation reaches into the allocator.
 * No ASan: it would replace malloc itself.
 *
 * Script format: a sequence of operations, each an opcode byte followed by
 * argument bytes (a missing byte reads as 0, so every input is valid):
 *
 *   op % 16   operation                         arguments
 *   0, 1      malloc(size)                      slot, size
 *   2         calloc(nmemb, size/nmemb)         slot, size, nmemb
 *   3, 4      realloc(obj, size)                slot, size
 *   5         aligned_alloc(align, size)        slot, align, size
 *   6         posix_memalign(align, size)       slot, align, size
 *   7, 8      free(obj)                         slot
 *   9         free_sized(obj, size)             slot
 *   10        free_aligned_sized(obj, al, size) slot
 *   11        malloc_usable_size(obj)           slot
 *   12        memalign / valloc / pvalloc       slot, kind, align, size
 *   13        reallocarray(obj, n, size/n)      slot, size, n
 *   14        check stats and object overlap    -
 *   15        malloc_trim(0), free a run, or    kind, slot, what, bit
 *             corrupt an object in a child
 *
 * "slot" is an index in a table of at most 256 live objects (an operation
 * that needs an object on an empty entry allocates one instead).  Sizes are
 * decoded to hit small sizes, the boundaries of every size class (the
 * largest request a stride holds, one more, one less), the mmap threshold
 * (MAX_SMALL = 131064) and some large sizes.
 *
 * Shadow: the content of object `id` is fully determined by id and offset
 * (pat_at()), so the fuzzer's shadow copy is that function; every byte
 * is checked before free and realloc, and the kept prefix after realloc.  Checked also: calloc zeroes, alignment,
 * malloc_usable_size >= request, no two live objects overlap, errno after
 * a failure is ENOMEM, and mallocng_get_stats: objects_live rises by
 * exactly the number of objects the script holds (a delta against the
 * figure taken when the input started, so libFuzzer's own allocations made
 * outside the callback do not matter), bytes_live by at least their bytes.
 *
 * Corruption (op 15, kind 2 or 6): in a forked child, the object's header
 * gets one bit flipped (its own, or the freed header after a free), or the
 * byte just past it (its check value, or the next slot's header) gets
 * another value; then the object is freed, reallocated or freed with its
 * size.  The child must die by SIGABRT: a child that exits normally means
 * the allocator accepted a corrupted header or check value.
 *
 * Any violation prints one line and aborts; libFuzzer keeps the input.
 * Built with -DFUZZ_STANDALONE_MAIN this file has a main() that runs the
 * files named on the command line (or stdin): used by `make check` to replay
 * the seed corpus, and usable as an AFL++ target (afl-clang-fast).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mallocng.h"

/* not declared by every libc version */
void free_sized(void *, size_t);
void free_aligned_sized(void *, size_t, size_t);

#define MAX_OBJ 256
#define SLOT_HDR 8              /* a small object needs n + 8 bytes of its slot */
#define MAX_SMALL (131072 - SLOT_HDR)
#define STATS_EVERY 64

struct obj {
	unsigned char *p;
	size_t n;
	size_t align;           /* requested alignment, 0 for plain */
	uint32_t id;
};

static struct obj objs[MAX_OBJ];
static size_t live, live_bytes;
static uint32_t next_id;
static struct mallocng_stats base;
static int stats_exact;         /* objects_live must match exactly */

/* the class strides of the library (size_class.c), recomputed */
static uint32_t stride[48];

static void init_strides(void)
{
	int k = 0;
	for (uint32_t s = 16; s <= 128; s += 16) stride[k++] = s;
	for (uint32_t b = 128; b <= 65536; b *= 2) {
		stride[k++] = b * 5 / 4;
		stride[k++] = b * 6 / 4;
		stride[k++] = b * 7 / 4;
		stride[k++] = b * 2;
	}
}

/* The allocator's page (valloc's alignment, pvalloc's rounding): the
 * kernel's, or the one an emulation build takes from MALLOCNG_PAGE_SIZE
 * (make check-pagesize), as tests/util.c: test_page_size. */
static size_t page_size(void)
{
	static size_t page;
	if (page) return page;
	size_t k = (size_t)sysconf(_SC_PAGESIZE), v = 0;
	const char *e = getenv("MALLOCNG_PAGE_SIZE");
	for (; e && *e >= '0' && *e <= '9' && v <= 65536; e++) v = v * 10 + (size_t)(*e - '0');
	return page = e && !*e && v > k && v <= 65536 && !(v & (v - 1)) ? v : k;
}

static _Noreturn void die(const char *what, const struct obj *o, size_t off)
{
	char buf[256];
	int len = snprintf(buf, sizeof buf, "fuzz_ops: %s (object id %u at %p, size %zu, align %zu, offset %zu)\n",
			   what, o ? o->id : 0, o ? (void *)o->p : 0, o ? o->n : 0,
			   o ? o->align : 0, off);
	(void)!write(2, buf, len);
	abort();
}

/* Contents: a pseudo-random byte table repeated with a period of PERIOD (a
 * prime, so objects of different ids are shifted against each other); fill
 * and check are memcpy/memcmp runs, so even 1 MiB objects are cheap. */
#define PERIOD 4093
static unsigned char ptab[2 * PERIOD];

static void init_ptab(void)
{
	uint32_t x = 0x12345678;
	for (int i = 0; i < PERIOD; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		ptab[i] = ptab[i + PERIOD] = (unsigned char)(x >> 11) | 1; /* never 0 */
	}
}

static inline const unsigned char *pat_at(uint32_t id, size_t i)
{
	return ptab + (i + (size_t)id * 1237) % PERIOD;
}

static void fill(struct obj *o, size_t from)
{
	for (size_t i = from; i < o->n;) {
		size_t k = o->n - i < PERIOD ? o->n - i : PERIOD;
		memcpy(o->p + i, pat_at(o->id, i), k);
		i += k;
	}
}

static void check(const struct obj *o, size_t upto)
{
	for (size_t i = 0; i < upto;) {
		size_t k = upto - i < PERIOD ? upto - i : PERIOD;
		if (memcmp(o->p + i, pat_at(o->id, i), k)) {
			while (o->p[i] == *pat_at(o->id, i)) i++;
			die("content changed", o, i);
		}
		i += k;
	}
}

static void check_zero(const struct obj *o)
{
	static const unsigned char zero[4096];
	for (size_t i = 0; i < o->n;) {
		size_t k = o->n - i < sizeof zero ? o->n - i : sizeof zero;
		if (memcmp(o->p + i, zero, k)) {
			while (!o->p[i]) i++;
			die("calloc memory not zero", o, i);
		}
		i += k;
	}
}

/* ---- input decoding ---- */
struct in { const uint8_t *d; size_t n, i; };

static unsigned byte(struct in *in)
{
	return in->i < in->n ? in->d[in->i++] : 0;
}

static size_t decode_size(struct in *in)
{
	unsigned sel = byte(in), b = byte(in);
	int delta = (int)(sel >> 5) - 3;        /* -3..4 */
	switch (sel & 7) {
	case 0: case 1: return b;               /* tiny (0..255) */
	case 2: return b * 4 + (sel >> 3);      /* small (0..1051) */
	case 3: case 4: {                       /* class boundaries */
		long v = (long)stride[b % 48] - SLOT_HDR + delta;
		return v < 0 ? 0 : (size_t)v;
	}
	case 5: return MAX_SMALL + delta;       /* the mmap threshold */
	case 6: return (size_t)b << 8 | byte(in); /* medium (up to 64 KiB) */
	default:                                /* large, up to 1 MiB + 4 KiB */
		if (b & 1) return ((size_t)1 << (12 + b % 9)) + delta;
		return ((size_t)b << 12 | byte(in) << 4) + delta + 4096;
	}
}

static size_t decode_align(struct in *in)
{
	unsigned b = byte(in);
	/* mostly up to a page; sometimes up to 64 KiB (the largest alignment
	 * small slots serve) and beyond (over-mapped large objects) */
	unsigned s = b < 160 ? 3 + b % 10 : b < 240 ? 13 + b % 4 : 17 + b % 4;
	return (size_t)1 << s;
}

/* ---- bookkeeping ---- */
static void add(struct obj *o, void *p, size_t n, size_t align, int zeroed)
{
	o->p = p;
	o->n = n;
	o->align = align;
	o->id = ++next_id;
	if ((uintptr_t)p & 15) die("pointer not 16-byte aligned", o, 0);
	if (align && (uintptr_t)p & (align - 1)) die("alignment not honoured", o, 0);
	if (malloc_usable_size(p) < n) die("malloc_usable_size below the request", o, 0);
	if (zeroed) check_zero(o);
	fill(o, 0);
	live++;
	live_bytes += n;
}

static void drop(struct obj *o)
{
	live--;
	live_bytes -= o->n;
	memset(o, 0, sizeof *o);
}

static void alloc_failed(const char *call, size_t n)
{
	if (errno != ENOMEM) die(call, 0, n);
	/* nothing the script asks for is beyond reach: the heap is small */
	if (n < ((size_t)64 << 20)) die("allocation failed unexpectedly", 0, n);
}

static int cmp_obj(const void *a, const void *b)
{
	const struct obj *x = *(const struct obj *const *)a, *y = *(const struct obj *const *)b;
	return x->p < y->p ? -1 : x->p > y->p;
}

static void check_all(void)
{
	struct obj *v[MAX_OBJ];
	size_t k = 0;
	for (int i = 0; i < MAX_OBJ; i++)
		if (objs[i].p) v[k++] = &objs[i];
	if (k != live) die("live count out of step", 0, k);
	qsort(v, k, sizeof *v, cmp_obj);
	for (size_t i = 0; i + 1 < k; i++)
		if (v[i]->p + v[i]->n + SLOT_HDR > v[i + 1]->p) die("objects overlap", v[i], 0);

	struct mallocng_stats st;
	st.size = sizeof st;
	if (mallocng_get_stats(&st)) die("mallocng_get_stats failed", 0, 0);
	if (stats_exact && st.objects_live != base.objects_live + live) {
		char m[96];
		snprintf(m, sizeof m, "stats: objects_live %zu, expected %zu + %zu",
			 st.objects_live, base.objects_live, live);
		die(m, 0, 0);
	}
	/* aligned small objects count their whole slot, so only >= holds */
	if (stats_exact && st.bytes_live < base.bytes_live + live_bytes) die("stats: bytes_live too low", 0, st.bytes_live);
}

static void release(struct obj *o, int how)
{
	check(o, o->n);
	switch (how) {
	case 0: free(o->p); break;
	case 1: free_sized(o->p, o->n); break;
	default: free_aligned_sized(o->p, o->align ? o->align : 16, o->n); break;
	}
	drop(o);
}

/* Corrupt o in a child (see the head of the file); the child must abort. */
static void corrupt_in_child(struct obj *o, unsigned what, unsigned bit)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) return;
	if (pid == 0) {
		/* libFuzzer's handler would turn abort() into an exit */
		signal(SIGABRT, SIG_DFL);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) dup2(null, 2);
		unsigned char *p = o->p;
		uint64_t h;
		switch (what % 3) {
		case 0:                         /* a live header's bit */
			memcpy(&h, p - 8, 8), h ^= 1ull << (bit % 64), memcpy(p - 8, &h, 8);
			break;
		case 1:                         /* a freed header's bit, then again */
			free(p);
			memcpy(&h, p - 8, 8), h ^= 1ull << (bit % 64), memcpy(p - 8, &h, 8);
			break;
		default:                        /* the byte past the object */
			p[o->n] ^= (unsigned char)(1 + bit % 255);
			break;
		}
		switch ((what / 3) % 3) {
		case 0: free(p); break;
		case 1: free(realloc(p, o->n + 1)); break;
		default: free_sized(p, o->n); break;
		}
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
		char m[96];
		snprintf(m, sizeof m, "corruption %u/bit %u of an object of %zu bytes not detected",
			 what % 9, bit % 64, o->n);
		die(m, o, 0);
	}
}

static void run(const uint8_t *data, size_t size)
{
	struct in in = { data, size, 0 };
	unsigned ops = 0;

	if (!stride[0]) init_strides(), init_ptab();
	base.size = sizeof base;
	stats_exact = !mallocng_get_stats(&base);

	while (in.i < in.n && ops < 4096) {
		unsigned op = byte(&in) % 16;
		struct obj *o = &objs[byte(&in) % MAX_OBJ];
		void *p;
		size_t n, a;
		ops++;
		/* operations on an object: on an empty entry, allocate instead */
		if (!o->p && ((op >= 3 && op <= 4) || (op >= 7 && op <= 11) || op == 13)) op = 0;
		/* allocations into a used entry free the old object first */
		if (o->p && (op <= 2 || (op >= 5 && op <= 6) || op == 12)) release(o, 0);
		switch (op) {
		case 0: case 1:
			n = decode_size(&in);
			errno = 0;
			if ((p = malloc(n))) add(o, p, n, 0, 0);
			else alloc_failed("malloc errno", n);
			break;
		case 2: {
			n = decode_size(&in);
			size_t k = byte(&in) % 8 + 1;
			errno = 0;
			if ((p = calloc(k, n / k))) add(o, p, k * (n / k), 0, 1);
			else alloc_failed("calloc errno", n);
			break;
		}
		case 3: case 4: case 13: {
			n = decode_size(&in);
			size_t k = op == 13 ? byte(&in) % 4 + 1 : 1;
			n = k * (n / k);
			size_t keep = n < o->n ? n : o->n;
			check(o, o->n);
			errno = 0;
			p = op == 13 ? reallocarray(o->p, k, n / k) : realloc(o->p, n);
			if (!p) {
				if (n == 0) { drop(o); break; }       /* freed (glibc style) */
				alloc_failed("realloc errno", n);
				check(o, o->n);                       /* old object intact */
				break;
			}
			size_t old_n = o->n;
			o->p = p;
			live_bytes += n - old_n;
			o->n = n;
			if ((uintptr_t)p & 15) die("realloc: pointer not 16-byte aligned", o, 0);
			if (malloc_usable_size(p) < n) die("realloc: usable size below the request", o, 0);
			check(o, keep);                               /* prefix preserved */
			o->align = 0;
			fill(o, keep);
			break;
		}
		case 5: case 6:
			a = decode_align(&in);
			n = decode_size(&in);
			errno = 0;
			if (op == 5) {
				p = aligned_alloc(a, n);
				if (p) add(o, p, n, a, 0);
				else alloc_failed("aligned_alloc errno", n);
			} else {
				int e = posix_memalign(&p, a, n);
				if (!e) add(o, p, n, a, 0);
				else if (e != ENOMEM || n < ((size_t)64 << 20)) die("posix_memalign failed", 0, n);
			}
			break;
		case 7: case 8: release(o, 0); break;
		case 9: release(o, 1); break;
		case 10: release(o, 2); break;
		case 11:
			if (malloc_usable_size(o->p) < o->n) die("malloc_usable_size below the request", o, 0);
			check(o, o->n);
			break;
		case 12: {
			unsigned kind = byte(&in) % 3;
			a = decode_align(&in);
			n = decode_size(&in);
			errno = 0;
			if (kind == 0) p = memalign(a, n);
			else if (kind == 1) p = valloc(n), a = page_size();
			else p = pvalloc(n), a = page_size(), n = n ? (n + a - 1) & ~(a - 1) : a;
			if (p) add(o, p, n, a, 0);
			else alloc_failed("memalign errno", n);
			break;
		}
		case 14: check_all(); break;
		case 15:
			a = byte(&in);
			if (o->p && (a & 3) == 2) {
				unsigned what = byte(&in);
				corrupt_in_child(o, what, byte(&in));
			} else if (o->p && a & 1) {
				/* free a run of objects: empties groups, releases them */
				for (struct obj *e = objs + MAX_OBJ; o < e && o->p; o++) release(o, 0);
			} else {
				malloc_trim(0);
			}
			break;
		}
		if (ops % STATS_EVERY == 0) check_all();
	}
	check_all();
	for (int i = 0; i < MAX_OBJ; i++)
		if (objs[i].p) release(&objs[i], i % 3);
	check_all();
}

#ifndef FUZZ_STANDALONE_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size);
	return 0;
}
#else
#include <dirent.h>
#include <sys/stat.h>

static int run_stream(FILE *f, const char *name)
{
	static uint8_t buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf, f);
	if (ferror(f)) {
		fprintf(stderr, "fuzz_ops: cannot read %s\n", name);
		return 1;
	}
	run(buf, n);
	return 0;
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fuzz_ops: cannot open %s\n", path);
		return 1;
	}
	int bad = run_stream(f, path);
	fclose(f);
	return bad;
}

/* every regular file of a directory, in readdir order */
static int run_dir(const char *dir, int *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int bad = 0;
	if (!d) {
		fprintf(stderr, "fuzz_ops: cannot open directory %s\n", dir);
		return 1;
	}
	while ((e = readdir(d))) {
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
		bad |= run_file(path);
		++*count;
	}
	closedir(d);
	return bad;
}

/* replay_corpus [FILE|DIR]...: without arguments, the directory named by
 * FUZZ_CORPUS (make check), else stdin.  AFL++ builds loop on stdin. */
int main(int argc, char **argv)
{
	int bad = 0, count = 0;
#ifdef __AFL_LOOP
	while (__AFL_LOOP(10000)) bad |= run_stream(stdin, "stdin");
	return bad;
#endif
	if (argc < 2 && getenv("FUZZ_CORPUS")) {
		bad = run_dir(getenv("FUZZ_CORPUS"), &count);
	} else if (argc < 2) {
		bad = run_stream(stdin, "stdin"), count = 1;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (!stat(argv[i], &st) && S_ISDIR(st.st_mode)) bad |= run_dir(argv[i], &count);
		else bad |= run_file(argv[i]), count++;
	}
	if (!bad) printf("fuzz_ops: %d input(s) replayed without error\n", count);
	return bad;
}
#endif
