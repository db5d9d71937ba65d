/* test_secure.c - MALLOCNG_OPTIONS in privileged (AT_SECURE) processes and
 * the way the output files (stats_file, heap_map) are opened.
 *
 * Invariants checked: in an AT_SECURE process only the options that make
 * the allocator stricter apply and the others get one warning line; no
 * process writes statistics or a heap map through a symbolic link, into a
 * file that is not regular, or into a file owned by another user, and a
 * refusal gets one warning line naming the path.
 *
 * The allocator decides with getauxval(AT_SECURE).  This program defines
 * getauxval, which the library's call resolves to, and answers 1 for
 * AT_SECURE when MALLOCNG_TEST_FAKE_SECURE is set: that tests the policy
 * without privileges.  test_real_setuid runs a set-user-ID root copy of
 * setuid_helper as user 65534 when the suite runs as root. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mallocng.h"
#include "util.h"

extern unsigned long __getauxval(unsigned long type);

unsigned long getauxval(unsigned long type)
{
	if (type == AT_SECURE && getenv("MALLOCNG_TEST_FAKE_SECURE")) return 1;
	return __getauxval(type);
}

#define SAY(...) (fprintf(stderr, "FAIL: " __VA_ARGS__), fputc('\n', stderr), 1)

/* ---- scenarios, run in the re-executed child ---- */

/* junk filling is on and large allocations work (fail_mmap did not apply) */
static int sc_junk(void)
{
	unsigned char *p = malloc(100);
	if (!p || check_bytes(p, 100, 0xa5) != 100) return SAY("junk is off");
	unsigned char *l = malloc(1 << 20);
	if (!l) return SAY("malloc(1 MiB) failed");
	free(l);
	free(p);
	return 0;
}

static int sc_plain(void)
{
	free(malloc(100));
	return 0;
}

/* mallocng_heap_map() on the path in MALLOCNG_TEST_PATH must fail with
 * the errno in MALLOCNG_TEST_ERRNO */
static int sc_heap_map_api(void)
{
	const char *path = getenv("MALLOCNG_TEST_PATH");
	int want = atoi(getenv("MALLOCNG_TEST_ERRNO"));
	errno = 0;
	int r = mallocng_heap_map(path);
	if (r != -1 || errno != want)
		return SAY("mallocng_heap_map(%s) = %d, errno %d, expected -1, errno %d",
		           path, r, errno, want);
	return 0;
}

static const struct scenario scenarios[] = {
	{ "junk", sc_junk }, { "plain", sc_plain }, { "heap_map_api", sc_heap_map_api },
};

/* ---- helpers of the tests ---- */

static char err[16384];

struct run { const char *options, *scenario; int fake_secure; };

static void exec_scenario(void *arg)
{
	const struct run *r = arg;
	char *argv[] = { "test", "--scenario", (char *)r->scenario, NULL };
	setenv("MALLOCNG_OPTIONS", r->options, 1);
	if (r->fake_secure) setenv("MALLOCNG_TEST_FAKE_SECURE", "1", 1);
	else unsetenv("MALLOCNG_TEST_FAKE_SECURE");
	reexec_self(argv);
	_exit(127);
}

/* Runs the scenario with the options; it must exit 0. */
static void run_ok(const char *options, const char *scenario, int fake_secure)
{
	struct run r = { options, scenario, fake_secure };
	int st = run_in_child(exec_scenario, &r, 20, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "MALLOCNG_OPTIONS=%s%s: status 0x%x, stderr <%s>", options,
	              fake_secure ? " (AT_SECURE)" : "", st, err);
}

static void make_dir(char *dir)
{
	strcpy(dir, "/tmp/mallocng-secure-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The file's contents (NUL-terminated, truncated to cap - 1) and its size;
 * -1 when it does not exist. */
static long read_file(const char *path, char *buf, size_t cap)
{
	struct stat st;
	buf[0] = 0;
	if (lstat(path, &st)) return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return (long)st.st_size;
}

static void expect_contents(const char *path, const char *want)
{
	char buf[256];
	long n = read_file(path, buf, sizeof buf);
	ck_assert_msg(n == (long)strlen(want) && !strcmp(buf, want),
	              "%s was changed: %ld bytes <%.100s>, expected <%s>; stderr <%s>",
	              path, n, buf, want, err);
}

static int count_lines(const char *text, const char *prefix)
{
	int n = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += !strncmp(l, prefix, strlen(prefix));
	return n;
}

static void expect_refusal(const char *what, const char *path)
{
	char line[512];
	snprintf(line, sizeof line, "not writing %s to '%s': ", what, path);
	ck_assert_msg(has_message(err, line), "no warning <%s...>; stderr <%s>", line, err);
}

/* ---- secure mode (AT_SECURE faked through getauxval) ---- */

START_TEST(test_secure_mode_policy)
{
	char dir[64], target[128], victim[128], opts[512];
	make_dir(dir);
	snprintf(target, sizeof target, "%s/target", dir);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	write_file(victim, "precious\n");

	/* options that write or print, and the tuning and testing knobs, are
	 * ignored: one warning names them */
	snprintf(opts, sizeof opts, "stats=1,stats_file=%s,heap_map=%s,verbose=1,fail_mmap=1,"
	         "decay_ms=0,populate=0,heap_map_peak=1,heap_map_signal=USR2,junk=1", target, victim);
	run_ok(opts, "junk", 1);
	struct stat st;
	ck_assert_msg(lstat(target, &st) && errno == ENOENT,
	              "stats_file was created in an AT_SECURE process; stderr <%s>", err);
	expect_contents(victim, "precious\n");
	ck_assert_msg(!strstr(err, "statistics"), "statistics printed: <%s>", err);
	ck_assert_msg(count_lines(err, "mallocng: ") == 1 &&
	              has_message(err, "MALLOCNG_OPTIONS in a privileged (AT_SECURE) process: ignored "),
	              "expected one warning line, stderr <%s>", err);
	static const char *const names[] = { "stats_file", "heap_map", "verbose", "fail_mmap",
		"decay_ms", "populate", "stats", "heap_map_peak", "heap_map_signal" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		ck_assert_msg(strstr(err, names[i]), "the warning does not name %s: <%s>",
		              names[i], err);

	/* statistics on stderr are ignored as well */
	run_ok("stats=1", "plain", 1);
	ck_assert_msg(!strstr(err, "statistics"), "statistics printed: <%s>", err);
	ck_assert_msg(count_lines(err, "mallocng: ") == 1, "stderr <%s>", err);

	/* options that only tighten apply, without a warning */
	run_ok("hardened,zero_free,protect_meta,quarantine=64k", "junk", 1);
	ck_assert_msg(!strstr(err, "mallocng: "), "unexpected warning <%s>", err);
	remove_dir(dir);
}
END_TEST

/* ---- how output files are opened, in every process ---- */

START_TEST(test_output_symlink)
{
	char dir[64], victim[128], victim2[128], link[128], link2[128], opts[600];
	make_dir(dir);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(victim2, sizeof victim2, "%s/victim2", dir);
	snprintf(link, sizeof link, "%s/stats", dir);
	snprintf(link2, sizeof link2, "%s/map.svg", dir);
	write_file(victim, "precious\n");
	write_file(victim2, "precious too\n");
	ck_assert_int_eq(symlink(victim, link), 0);
	ck_assert_int_eq(symlink(victim2, link2), 0);
	snprintf(opts, sizeof opts, "stats_file=%s,heap_map=%s", link, link2);
	run_ok(opts, "plain", 0);
	expect_contents(victim, "precious\n");
	expect_contents(victim2, "precious too\n");
	expect_refusal("statistics", link);
	expect_refusal("the heap map", link2);
	ck_assert_msg(count_lines(err, "mallocng: ") == 2, "stderr <%s>", err);
	remove_dir(dir);
}
END_TEST

/* the public call refuses too, with errno and without a message */
START_TEST(test_heap_map_api_symlink)
{
	char dir[64], victim[128], link[128], opts[300];
	make_dir(dir);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(link, sizeof link, "%s/map.svg", dir);
	write_file(victim, "precious\n");
	ck_assert_int_eq(symlink(victim, link), 0);
	setenv("MALLOCNG_TEST_PATH", link, 1);
	snprintf(opts, sizeof opts, "%d", ELOOP);
	setenv("MALLOCNG_TEST_ERRNO", opts, 1);
	run_ok("junk=0", "heap_map_api", 0);
	expect_contents(victim, "precious\n");
	ck_assert_msg(!strstr(err, "mallocng: "), "unexpected message <%s>", err);
	unsetenv("MALLOCNG_TEST_PATH");
	unsetenv("MALLOCNG_TEST_ERRNO");
	remove_dir(dir);
}
END_TEST

/* a FIFO: refused at once (opening it for writing would wait for a reader) */
START_TEST(test_output_not_regular)
{
	char dir[64], fifo[128], opts[300];
	make_dir(dir);
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	snprintf(opts, sizeof opts, "stats_file=%s", fifo);
	run_ok(opts, "plain", 0);
	expect_refusal("statistics", fifo);
	remove_dir(dir);
}
END_TEST

START_TEST(test_output_other_owner)
{
	if (geteuid() != 0) {
		printf("test_output_other_owner: skipped, needs root to own a file as user 65534\n");
		return;
	}
	char dir[64], other[128], other2[128], opts[600];
	make_dir(dir);
	snprintf(other, sizeof other, "%s/other", dir);
	snprintf(other2, sizeof other2, "%s/other.svg", dir);
	write_file(other, "not yours\n");
	write_file(other2, "not yours either\n");
	ck_assert_int_eq(chown(other, 65534, 65534), 0);
	ck_assert_int_eq(chown(other2, 65534, 65534), 0);
	snprintf(opts, sizeof opts, "stats_file=%s,heap_map=%s", other, other2);
	run_ok(opts, "plain", 0);
	expect_contents(other, "not yours\n");
	expect_contents(other2, "not yours either\n");
	expect_refusal("statistics", other);
	expect_refusal("the heap map", other2);
	remove_dir(dir);
}
END_TEST

/* the caller's own regular files: statistics appended, heap map replaced */
START_TEST(test_output_own_file)
{
	char dir[64], own[128], map[128], opts[600];
	static char buf[1 << 17], old[1 << 16];
	make_dir(dir);
	snprintf(own, sizeof own, "%s/stats", dir);
	snprintf(map, sizeof map, "%s/map.svg", dir);
	write_file(own, "previous\n");
	memset(old, 'x', sizeof old - 1);
	write_file(map, old);
	snprintf(opts, sizeof opts, "stats_file=%s,heap_map=%s", own, map);
	run_ok(opts, "plain", 0);
	ck_assert_msg(!strstr(err, "mallocng: "), "unexpected warning <%s>", err);
	long n = read_file(own, buf, sizeof buf);
	ck_assert_msg(n > 100 && !strncmp(buf, "previous\n", 9) && strstr(buf, "statistics"),
	              "stats_file: %ld bytes <%.200s>", n, buf);
	n = read_file(map, buf, sizeof buf);
	/* the old bytes past the new end would follow the closing tag */
	ck_assert_msg(n > 0 && n < (long)sizeof buf - 1 && (long)strlen(buf) == n &&
	              !strncmp(buf, "<?xml", 5) && strstr(buf, "</svg>\n") &&
	              strlen(strstr(buf, "</svg>\n")) == 7,
	              "heap_map not rewritten from the start: %ld bytes <%.100s>", n, buf);
	remove_dir(dir);
}
END_TEST

/* ---- a real set-user-ID program ---- */

struct as_nobody { const char *prog, *options; };

static void exec_as_nobody(void *arg)
{
	const struct as_nobody *a = arg;
	setenv("MALLOCNG_OPTIONS", a->options, 1);
	unsetenv("MALLOCNG_TEST_FAKE_SECURE");
	execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534",
	      "--clear-groups", "--", a->prog, (char *)NULL);
	_exit(126);
}

START_TEST(test_real_setuid)
{
	const char *helper = getenv("MALLOCNG_SETUID_HELPER");
	SKIP_IF_EMULATED("a set-user-ID program of another architecture cannot be started "
	                 "(it would need binfmt_misc, and the emulator is not set-user-ID)");
	if (geteuid() != 0) {
		printf("test_real_setuid: skipped, the suite does not run as root\n");
		return;
	}
	if (!helper || access(helper, X_OK) || access("/usr/bin/setpriv", X_OK)) {
		printf("test_real_setuid: skipped, no setuid_helper or no setpriv\n");
		return;
	}
	char dir[64], prog[128], target[128], victim[128], opts[600], cmd[600];
	make_dir(dir);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(prog, sizeof prog, "%s/helper", dir);
	snprintf(target, sizeof target, "%s/target", dir);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", helper, prog);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(chown(prog, 0, 0), 0);
	ck_assert_int_eq(chmod(prog, 04755), 0);
	write_file(victim, "precious\n");

	snprintf(opts, sizeof opts, "stats_file=%s,heap_map=%s,junk=1", target, victim);
	struct as_nobody a = { prog, opts };
	int st = run_in_child(exec_as_nobody, &a, 20, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, stderr <%s>", st, err);
	if (!strstr(err, "helper: secure=1 euid=0 ")) {
		/* a nosuid mount, or no privilege to change users: nothing to test */
		printf("test_real_setuid: skipped, the set-user-ID bit had no effect (%s)\n", err);
		remove_dir(dir);
		return;
	}
	struct stat sb;
	ck_assert_msg(lstat(target, &sb) && errno == ENOENT,
	              "a set-user-ID root program created %s; stderr <%s>", target, err);
	expect_contents(victim, "precious\n");
	ck_assert_msg(strstr(err, " junk=1"), "junk=1 was not applied: <%s>", err);
	ck_assert_msg(count_lines(err, "mallocng: ") == 1, "stderr <%s>", err);

	a.options = "stats=1,junk=1";
	st = run_in_child(exec_as_nobody, &a, 20, err, sizeof err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, stderr <%s>", st, err);
	ck_assert_msg(!strstr(err, "statistics"), "statistics printed: <%s>", err);
	ck_assert_msg(strstr(err, " junk=1"), "junk=1 was not applied: <%s>", err);
	remove_dir(dir);
}
END_TEST

static Suite *secure_suite(void)
{
	Suite *s = suite_create("secure");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_secure_mode_policy);
	tcase_add_test(tc, test_output_symlink);
	tcase_add_test(tc, test_heap_map_api_symlink);
	tcase_add_test(tc, test_output_not_regular);
	tcase_add_test(tc, test_output_other_owner);
	tcase_add_test(tc, test_output_own_file);
	tcase_add_test(tc, test_real_setuid);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	const char *sc = self_scenario(argc, argv);
	if (sc) return run_scenario_named(sc, scenarios, sizeof scenarios / sizeof *scenarios);
	return run_suite(secure_suite());
}
