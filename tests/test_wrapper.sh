#!/bin/sh
# test_wrapper.sh - the mallocng command (tools/mallocng.in): a program that
# would run without mallocng is not started (status 125, one line saying
# why); a program that can is started with the library preloaded.
#
# MALLOCNG_LIB (tests/Makefile.am) is the freshly built library; the
# command is run from its template, which is plain sh (MALLOCNG_LIB spares
# it the substituted default).

lib=${MALLOCNG_LIB:-}
cmd=${MALLOCNG_WRAPPER_IN:-$(dirname "$0")/../tools/mallocng.in}
if test -z "$lib" || test ! -f "$lib"; then
	echo "SKIP: no shared library ($lib)"
	exit 77
fi
test -f "$cmd" || { echo "FAIL: no command template $cmd"; exit 99; }
# A cross build's library (i386 on x86-64, or another architecture under
# an emulator) cannot be preloaded into this machine's programs.
if LD_PRELOAD=$lib /bin/sh -c : 2>&1 | grep -q 'cannot be preloaded'; then
	echo "SKIP: $lib cannot be preloaded into this machine's programs (built for another architecture)"
	exit 77
fi
case $cmd in /*) ;; *) cmd=$PWD/$cmd ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mallocng-wrapper.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0

# expect STATUS WORDS COMMAND...: the command's exit status is STATUS and,
# unless WORDS is empty, its standard error has a line with WORDS.
expect() {
	want=$1 words=$2
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	st=$?
	if test "$st" -ne "$want"; then
		echo "FAIL: $*: status $st, expected $want"
		sed 's/^/  stderr: /' "$tmp/err" | head -5
		failed=$((failed + 1))
	elif test -n "$words" && ! grep -q -- "$words" "$tmp/err"; then
		echo "FAIL: $*: no \"$words\" on stderr"
		sed 's/^/  stderr: /' "$tmp/err" | head -5
		failed=$((failed + 1))
	else
		echo "PASS: $* -> $st${words:+ ($words)}"
	fi
}

run() { MALLOCNG_LIB=${L-$lib} MALLOCNG_OPTIONS= sh "$cmd" "$@"; }

# a dynamically linked program runs, with the library: verbose=1 names the
# process at its first allocation
expect 0 "" run true
expect 0 "]: mallocng .*, options: " run --options verbose=1 ls /

# the library must be a readable ELF shared object
L=$tmp/none expect 125 "allocator library not found" run true
printf 'not a library\n' >"$tmp/text.so"
L=$tmp/text.so expect 125 "not a shared library" run true
# a relative library path works (made absolute for the children)
cp "$lib" "$tmp/libcopy.so"
(cd "$tmp" && L=libcopy.so expect 0 "]: mallocng .*, options: " run --options verbose=1 ls / &&
	test $failed -eq 0) || failed=$((failed + 1))

# a statically linked program does not read LD_PRELOAD: not started
printf 'int main(void) { return 3; }\n' >"$tmp/static.c"
if ${CC:-cc} -static -o "$tmp/static" "$tmp/static.c" 2>/dev/null; then
	expect 125 "statically linked" run "$tmp/static"
	test "$(cat "$tmp/out")" = "" || { echo "FAIL: the static program ran"; failed=$((failed + 1)); }
else
	echo "SKIP: no static C library to build a static program"
fi

# set-user-ID or set-group-ID to someone else: ld.so ignores LD_PRELOAD
true_bin=$(command -v env)
if test "$(id -u)" = 0 && cp "$true_bin" "$tmp/suid" && chown 65534:65534 "$tmp/suid" 2>/dev/null; then
	chmod 4755 "$tmp/suid"
	expect 125 "set-user-ID" run "$tmp/suid" true
	chmod 2755 "$tmp/suid"
	expect 125 "set-group-ID" run "$tmp/suid" true
	# the owner itself runs it normally (no AT_SECURE)
	chown 0:0 "$tmp/suid" && chmod 4755 "$tmp/suid" && expect 0 "" run "$tmp/suid" true
else
	echo "SKIP: set-user-ID cases need root"
fi

# --heap-map: a path the library would refuse at exit is refused at once;
# %p gives one file per process
expect 125 "no directory" run --heap-map /nonexistent-dir/map.svg true
ln -s "$tmp/elsewhere" "$tmp/link.svg"
expect 125 "symbolic link" run --heap-map "$tmp/link.svg" true
expect 125 "not a regular file" run --heap-map "$tmp" true
mkdir "$tmp/maps"
# two children of the shell (which itself leaves by _exit): two maps
expect 0 "" run --all-processes --heap-map "$tmp/maps/map-%p.svg" sh -c 'ls / >/dev/null; ls / >/dev/null'
n=0
for m in "$tmp"/maps/*; do
	case ${m##*/} in
	map-[0-9]*.svg) grep -q "groups of small objects" "$m" && n=$((n + 1)) ;;
	esac
done
if test $n -ge 2; then
	echo "PASS: --heap-map map-%p.svg: one map per process ($(ls "$tmp/maps" | tr '\n' ' '))"
else
	echo "FAIL: --heap-map map-%p.svg: $n maps for two processes: $(ls "$tmp/maps")"
	failed=$((failed + 1))
fi

# --stats reports for PROGRAM (report_pid, kept across exec), not for the
# children that inherit the options, unless --all-processes
expect 0 "" run --stats sh -c 'ls / >/dev/null; exec ls / >/dev/null'
n=$(grep -c "statistics of ls\[" "$tmp/err")
if test "$n" = 1; then echo "PASS: --stats: one report"; else
	echo "FAIL: --stats: $n reports for the exec'd program, expected 1"; failed=$((failed + 1)); fi
expect 0 "" run --stats --all-processes sh -c 'ls / >/dev/null; exec ls / >/dev/null'
n=$(grep -c "statistics of ls\[" "$tmp/err")
if test "$n" = 2; then echo "PASS: --stats --all-processes: two reports"; else
	echo "FAIL: --stats --all-processes: $n reports, expected 2"; failed=$((failed + 1)); fi

test $failed -eq 0
