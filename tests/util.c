/* util.c - helpers shared by the mallocng Check suites. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

void fill_pattern(void *p, size_t n, uint32_t seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++) c[i] = pat_byte(seed, i);
}

size_t check_pattern(const void *p, size_t n, uint32_t seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != pat_byte(seed, i)) return i;
	return n;
}

size_t check_bytes(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != c) return i;
	return n;
}

long proc_status_kib(const char *key)
{
	/* read(2) into a stack buffer: no stdio, no malloc involved */
	char buf[16384];
	size_t klen = strlen(key);
	ssize_t len = 0, r;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	while (len < (ssize_t)sizeof buf - 1 &&
	       (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, key, klen) && l[klen] == ':')
			return strtol(l + klen + 1, NULL, 10);
	}
	return -1;
}

int run_in_child(child_fn fn, void *arg, unsigned timeout_s,
                 char *err, size_t errcap)
{
	int fds[2], status = -1;
	size_t len = 0;
	pid_t pid;

	if (errcap) err[0] = 0;
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		struct rlimit nocore = { 0, 0 };
		close(fds[0]);
		dup2(fds[1], 2);
		close(fds[1]);
		setrlimit(RLIMIT_CORE, &nocore);
		signal(SIGALRM, SIG_DFL);
		alarm(timeout_s);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		char tmp[512];
		ssize_t r = read(fds[0], tmp, sizeof tmp);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		for (ssize_t i = 0; i < r; i++)
			if (len + 1 < errcap) err[len++] = tmp[i];
	}
	if (errcap) err[len] = 0;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static void describe(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "wait status 0x%x", status);
}

/* Returns 1 when the child died as expected, else 0 with msg filled. */
static int abort_matches(const char *file, int line, const char *name,
                         child_fn fn, void *arg, const char *words,
                         const void *addr, char *msg, size_t cap)
{
	char err[4096], how[128];
	const char *found = NULL, *wrong_addr = NULL;
	int status = run_in_child(fn, arg, 20, err, sizeof err);

	describe(status, how, sizeof how);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)) {
		snprintf(msg, cap, "%s:%d: case '%s': expected SIGABRT, child %s; stderr: <%s>",
		         file, line, name, how, err);
		return 0;
	}
	for (const char *l = err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *end = strchr(l, '\n');
		size_t ll = end ? (size_t)(end - l) : strlen(l);
		char one[1024];
		const char *at;
		if (ll >= sizeof one) ll = sizeof one - 1;
		memcpy(one, l, ll);
		one[ll] = 0;
		if (strncmp(one, "mallocng: ", 10)) continue;
		if (!(at = strstr(one, " at 0x"))) continue;
		/* "mallocng: <program>[<pid>]: <what> at 0x<address> (see
		 * mallocng(7))": what follows "]: " (src/os_proc.c, fail) */
		const char *what = strstr(one, "]: ");
		if (!what || what > at) continue;
		if (words && !strstr(what + 3, words)) continue;
		if (!strstr(at, " (see mallocng(7))")) continue;
		if (addr) {
			unsigned long long v = strtoull(at + 6, NULL, 16);
			if (v != (unsigned long long)(uintptr_t)addr) {
				wrong_addr = l;
				continue;
			}
		}
		found = l;
		break;
	}
	if (getenv("MALLOCNG_TEST_VERBOSE"))
		printf("%s: %s -> %.*s\n", name, how,
		       found ? (int)(strchr(found, '\n') ? strchr(found, '\n') - found : (long)strlen(found)) : 0,
		       found ? found : "");
	if (!found) {
		snprintf(msg, cap, "%s:%d: case '%s': no diagnostic line \"mallocng: prog[pid]: ...%s... at 0x%s (see mallocng(7))\"%s; "
		         "stderr was: <%s>", file, line, name, words ? words : "",
		         addr ? "<pointer>" : "...",
		         wrong_addr ? " (a line matched except for the address)" : "", err);
		return 0;
	}
	return 1;
}

void expect_abort_at(const char *file, int line, const char *name,
                     child_fn fn, void *arg, const char *words,
                     const void *addr)
{
	char msg[6000];
	int ok = abort_matches(file, line, name, fn, arg, words, addr, msg, sizeof msg);
	ck_assert_msg(ok, "%s", msg);
}

void soft_expect_abort_at(struct soft *soft, const char *file, int line,
                          const char *name, child_fn fn, void *arg,
                          const char *words, const void *addr)
{
	char msg[6000];
	if (abort_matches(file, line, name, fn, arg, words, addr, msg, sizeof msg))
		return;
	soft->failed++;
	if (soft->len + 2 < sizeof soft->text) {
		int w = snprintf(soft->text + soft->len, sizeof soft->text - soft->len,
		                 "%s\n", msg);
		if (w > 0) soft->len += (size_t)w;
		if (soft->len >= sizeof soft->text) soft->len = sizeof soft->text - 1;
	}
}

void expect_clean_exit_at(const char *file, int line, const char *name,
                          child_fn fn, void *arg, unsigned timeout_s)
{
	char err[4096], how[128];
	int status = run_in_child(fn, arg, timeout_s, err, sizeof err);

	describe(status, how, sizeof how);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "%s:%d: case '%s': child %s; stderr: <%s>",
	              file, line, name, how, err);
	ck_assert_msg(!strstr(err, "mallocng: "),
	              "%s:%d: case '%s': unexpected diagnostic: <%s>",
	              file, line, name, err);
}

struct self_args { const char *options, *scenario; };

static void exec_self(void *arg)
{
	const struct self_args *a = arg;
	char *argv[] = { "test", "--scenario", (char *)a->scenario, NULL };
	if (a->options) setenv("MALLOCNG_OPTIONS", a->options, 1);
	else unsetenv("MALLOCNG_OPTIONS");
	reexec_self(argv);
	_exit(127);
}

int run_self(const char *options, const char *scenario, unsigned timeout_s,
             char *err, size_t errcap)
{
	struct self_args a = { options, scenario };
	return run_in_child(exec_self, &a, timeout_s, err, errcap);
}

const char *self_scenario(int argc, char **argv)
{
	return argc == 3 && !strcmp(argv[1], "--scenario") ? argv[2] : NULL;
}

int run_scenario_named(const char *name, const struct scenario *table, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(table[i].name, name)) return table[i].fn();
	fprintf(stderr, "unknown scenario %s\n", name);
	return 99;
}

int has_message(const char *text, const char *msg)
{
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *end = strchr(l, '\n'), *s = l + 10;
		if (strncmp(l, "mallocng: ", 10)) continue;
		while (*s && *s != '[' && *s != '\n') s++;
		if (*s++ != '[' || *s < '0' || *s > '9') continue;
		while (*s >= '0' && *s <= '9') s++;
		if (strncmp(s, "]: ", 3)) continue;
		s += 3;
		if (!strncmp(s, msg, strlen(msg)) && (!end || s + strlen(msg) <= end + 1)) return 1;
	}
	return 0;
}

size_t test_page_size(void)
{
	size_t k = (size_t)sysconf(_SC_PAGESIZE), v = 0;
	const char *e = getenv("MALLOCNG_PAGE_SIZE");
	for (; e && *e >= '0' && *e <= '9' && v <= 65536; e++) v = v * 10 + (size_t)(*e - '0');
	return e && !*e && v > k && v <= 65536 && !(v & (v - 1)) ? v : k;
}

long page_pinned_extra_kib(void *const *p, int count, size_t slot, size_t groups)
{
	uintptr_t P = test_page_size(), extra = 0;
	if (P == 4096) return 0;
	for (int i = 0; i < count; i++) {
		if (!p[i]) continue;
		uintptr_t a = (uintptr_t)p[i] - 8, b = a + slot;
		extra += ((b + P - 1) & -P) - (a & -P) - (((b + 4095) & -(uintptr_t)4096) - (a & -(uintptr_t)4096));
	}
	return (long)((extra + groups * (P - 4096)) / 1024);
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
