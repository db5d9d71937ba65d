/* exec_self.h - re-execute the running test program (a fresh process, for
 * options that are read once, at the first malloc).  In a cross build's
 * `make check MALLOCNG_TEST_EMULATOR=qemu-<arch>` (tests/Makefile.am) the
 * kernel cannot start the program by itself (no binfmt_misc): it is
 * started through the emulator, with the same argv[0].  Returns only on
 * failure, like execv. */
#ifndef MALLOCNG_TEST_EXEC_SELF_H
#define MALLOCNG_TEST_EXEC_SELF_H

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static inline const char *test_emulator(void)
{
	const char *emu = getenv("MALLOCNG_TEST_EMULATOR");
	return emu && *emu ? emu : NULL;
}

static inline int reexec_self(char **argv)
{
	const char *emu = test_emulator();
	char self[PATH_MAX];
	ssize_t n;
	int argc = 0;

	if (!emu)
		return execv("/proc/self/exe", argv);
	/* the emulator makes /proc/self/exe name the program, not itself */
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return -1;
	self[n] = 0;
	while (argv[argc])
		argc++;
	{
		char *args[argc + 4];
		args[0] = (char *)emu;
		args[1] = "-0";         /* qemu-user: the program's argv[0] */
		args[2] = argv[0];
		args[3] = self;
		for (int i = 1; i <= argc; i++)
			args[3 + i] = argv[i];
		return execvp(emu, args);
	}
}

#endif
