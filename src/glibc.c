/* glibc.c - the introspection and tuning calls of glibc's malloc.h:
 * malloc_stats, mallinfo, mallinfo2, malloc_info, malloc_trim, mallopt,
 * answered from mallocng's statistics (stats.c) and trims.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include "internal.h"

EXPORT void malloc_stats(void)
{
	mallocng_print_stats(2);
}

EXPORT struct mallinfo2 mallinfo2(void)
{
	struct mallocng_stats st;
	struct mallinfo2 mi = { 0 };
	stats_collect(&st);
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *c = &st.classes[sc];
		mi.ordblks += c->slots - c->slots_used;
		mi.fordblks += (c->slots - c->slots_used) * c->slot_size;
	}
	mi.arena = st.bytes_mapped - st.large_bytes; /* bytes in groups */
	mi.hblks = st.large_count;
	mi.hblkhd = st.large_bytes;
	mi.uordblks = st.bytes_live;
	return mi;
}

static int sat(size_t v)
{
	return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

EXPORT struct mallinfo mallinfo(void)
{
	struct mallinfo2 m = mallinfo2();
	return (struct mallinfo){ .arena = sat(m.arena), .ordblks = sat(m.ordblks),
		.hblks = sat(m.hblks), .hblkhd = sat(m.hblkhd), .uordblks = sat(m.uordblks),
		.fordblks = sat(m.fordblks), .keepcost = sat(m.keepcost) };
}

EXPORT int malloc_info(int options, FILE *f)
{
	struct mallocng_stats st;
	if (options != 0) {
		errno = EINVAL;
		return -1;
	}
	stats_collect(&st);
	size_t rest_n = 0, rest_b = 0;
	fprintf(f, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
	for (int sc = 0; sc < NCLASS; sc++) {
		struct mallocng_class_stats *c = &st.classes[sc];
		size_t nfree = c->slots - c->slots_used;
		if (!c->groups) continue;
		fprintf(f, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
			sc ? class_stride(sc - 1) - SLOT_HDR + 1 : 0, c->slot_size - SLOT_HDR,
			nfree * c->slot_size, nfree);
		rest_n += nfree, rest_b += nfree * c->slot_size;
	}
	size_t cur = st.bytes_mapped - st.large_bytes;
	fprintf(f, "</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</heap>\n", rest_n, rest_b, cur, cur, cur, cur);
	fprintf(f, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</malloc>\n", rest_n, rest_b, st.large_count, st.large_bytes, cur, cur, cur, cur);
	return 0;
}

EXPORT int malloc_trim(size_t pad)
{
	(void)pad;
	int w = meta_open();
	int n = heap_trim(tl_heap);
	n += abandoned_trim();
	n += span_trim(0);
	meta_close(w);
	return n > 0;
}

/* mallopt: M_PERTURB is honoured (junk filling); the other parameters
 * describe glibc's arenas and have no meaning here: 0 = not applied. */
EXPORT int mallopt(int param, int value)
{
	if (param == M_PERTURB) {
		opt.junk = value != 0;
		options_changed();
		return 1;
	}
	return 0;
}
