/* setuid_helper.c - the program test_secure installs set-user-ID root in a
 * temporary directory and runs as an unprivileged user.  Linked with the
 * static libmallocng.a, so that the dynamic loader's rules for privileged
 * programs (no LD_LIBRARY_PATH) cannot keep it from finding the library.
 * It reports on stderr, in one line, whether the kernel marked it AT_SECURE,
 * its effective user and whether junk filling is on, then exits 0: the
 * test checks the files the allocator did or did not write. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

int main(void)
{
	unsigned char *p = malloc(100);
	int junk = p != NULL;
	for (int i = 0; p && i < 100; i++)
		if (p[i] != 0xa5) junk = 0;
	free(p);
	fprintf(stderr, "helper: secure=%lu euid=%u junk=%d\n", getauxval(AT_SECURE),
	        (unsigned)geteuid(), junk);
	return 0;
}
