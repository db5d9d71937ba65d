/* test_static.c - a program linked with the static libmallocng.a (libtool
 * -static) that calls only malloc and free itself.  The C library's own
 * internal calls (realloc in getline, open_memstream and vasprintf,
 * calloc, ...) must still reach mallocng: the archive must not let a
 * program end up with a mix of mallocng's and the C library's allocator
 * functions.  Plain C, automake exit codes (0 pass, 1 fail, 77 skip). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include "mallocng.h"

static int failures;

/* The heap's secret, reached here because a static link resolves hidden
 * symbols: it lives on a page of its own that is read-only once set. */
extern volatile unsigned long long ro;

#define FAIL(...) (printf("FAIL: " __VA_ARGS__), putchar('\n'), failures++)

static int dynamically_linked(void)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) return 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "libmallocng")) found = 1;
	fclose(f);
	return found;
}

static char *format(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) s = NULL;
	va_end(ap);
	return s;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);   /* visible even if we abort */
	if (dynamically_linked()) {
		printf("SKIP: libmallocng is a shared library here (no static archive built)\n");
		return 77;
	}
	printf("mallocng %s linked statically\n", mallocng_version());

	/* getline: the C library grows the buffer with realloc */
	char path[] = "/tmp/mallocng-static-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) return 99;
	FILE *f = fdopen(fd, "w");
	for (int i = 0; i < 300; i++) {
		for (int k = 0; k < i * 37; k++) fputc('a' + k % 26, f);
		fputc('\n', f);
	}
	fclose(f);
	f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t r;
	int lines = 0;
	while ((r = getline(&line, &cap, f)) > 0) lines++;
	fclose(f);
	unlink(path);
	if (lines != 300) FAIL("getline read %d lines", lines);
	free(line);

	/* open_memstream: realloc'ed buffer, freed by us */
	char *buf = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&buf, &size);
	for (int i = 0; i < 100000; i++) fprintf(m, "%d,", i);
	fclose(m);
	if (!buf || strlen(buf) != size) FAIL("open_memstream");
	free(buf);

	/* vasprintf of a long string */
	char *s = format("%0*d", 100000, 5);
	if (!s || strlen(s) != 100000) FAIL("vasprintf");
	free(s);

	/* strdup'ed memory comes from mallocng: its usable size is exact */
	char *d = strdup("hello");
	if (malloc_usable_size(d) != 6)
		FAIL("strdup'ed object: malloc_usable_size %zu, expected 6", malloc_usable_size(d));
	free(d);

	/* and the program's own objects */
	for (int i = 0; i < 10000; i++) free(malloc(i % 3000));

	/* the secret is set and cannot be rewritten: the write faults */
	if (ro == 0) FAIL("the secret is 0 after the first allocation");
	pid_t pid = fork();
	if (pid == 0) {
		ro = 0x4141414141414141ull;
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
		FAIL("writing the secret did not fault (status 0x%x)", st);

	if (!failures) printf("PASS: C library allocations go through the static mallocng\n");
	return failures ? 1 : 0;
}
