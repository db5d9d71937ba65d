#!/bin/sh
# misuse.sh - run every misuse program (fuzz/misuse/*.c) with mallocng
# preloaded, in the default mode and with MALLOCNG_OPTIONS=hardened=1, and
# print a table: DETECTED when the program died of SIGABRT after a line
# "mallocng: ...", MISSED otherwise.
#
# A MISSED entry fails the test unless it is listed in EXPECTED_MISS below
# with the reason the design cannot catch it.  An expected miss that gets
# detected is reported (so the list can be shortened) but does not fail.
#
# Environment: MALLOCNG_LIB (set by `make check`), MISUSE_DIR (directory
# of the built programs, default ./misuse), MISUSE_VERBOSE=1 shows stderr.
#
# tests/test_death.c has overlapping cases in-process (linked, each in a
# forked child): it checks the exact message of each check; these programs
# the preloaded path, and the hardened mode.

# case:mode   reason
EXPECTED_MISS='
uaf_write:default
'
# uaf_write:default - without quarantine a freed small slot goes to the
#   thread cache and is handed out again by the next malloc of its class;
#   only its 8-byte header is verified on reuse (tc_pop), the user bytes are
#   not checked (that would cost a pass over the object on every malloc).
#   The write is caught in hardened mode, where freed slots are junk-filled
#   and verified when they leave the quarantine.

lib=${MALLOCNG_LIB:-../src/.libs/libmallocng.so}
# a cross build's make check runs the programs through an emulator
# (MALLOCNG_TEST_EMULATOR, tests/Makefile.am)
EMU=${MALLOCNG_TEST_EMULATOR:-}
export EMU
dir=${MISUSE_DIR:-./misuse}
srcdir=${srcdir:-.}
if [ ! -f "$lib" ]; then
	echo "misuse.sh: $lib not found (shared library not built?)"
	exit 77
fi
cases=$(cd "$srcdir/misuse" && ls *.c | sed 's/\.c$//')
tmp=${TMPDIR:-/tmp}/misuse.$$
trap 'rm -f "$tmp"' EXIT INT TERM
fail=0
detected=0
missed=0
printf '%-28s %-10s %-10s %s\n' case default hardened 'diagnostic (default)'
for c in $cases; do
	line=$(printf '%-28s' "$c")
	what=-
	for mode in default hardened; do
		if [ $mode = default ]; then opts=; else opts=hardened=1; fi
		if [ ! -x "$dir/$c" ]; then
			echo "misuse.sh: $dir/$c not built"
			exit 99
		fi
		# ulimit -c 0: no core files for the expected aborts; the inner
		# shell's own stderr (its "Aborted" message) goes to /dev/null
		st=$(MALLOCNG_OPTIONS=$opts LD_PRELOAD=$lib OUT=$tmp sh -c \
			'ulimit -c 0; $EMU "$1" >"$OUT" 2>&1; echo $?' sh "$dir/$c" 2>/dev/null)
		# the line: "mallocng: <program>[<pid>]: <what> at 0x<address>[,
		# caller 0x<address> (<module>+0x<offset>)] (see mallocng(7))"
		diag=$(sed -n 's/^mallocng: [^[]*\[[0-9]*\]: \(.*\) at 0x[0-9a-f]*\(, caller 0x[0-9a-f]*\( ([^)]*)\)\{0,1\}\)\{0,1\} (see mallocng(7))$/\1/p' "$tmp" | head -1)
		if [ "$st" -eq 134 ] && [ -n "$diag" ]; then
			res=DETECTED
			detected=$((detected + 1))
			[ $mode = default ] && what=$diag
		else
			res=MISSED
			missed=$((missed + 1))
		fi
		case "$EXPECTED_MISS" in
		*"
$c:$mode
"*)
			expected=1 ;;
		*)	expected=0 ;;
		esac
		if [ $res = MISSED ] && [ $expected = 0 ]; then
			fail=1
			res="MISSED!"
		elif [ $res = MISSED ]; then
			res="MISSED(x)"
		elif [ $expected = 1 ]; then
			res="DETECTED+"
		fi
		line="$line $(printf '%-10s' "$res")"
		if [ "${MISUSE_VERBOSE:-0}" = 1 ] || [ "$res" = "MISSED!" ]; then
			sed "s/^/    $c [$mode] exit $st: /" "$tmp" >&2
		fi
	done
	echo "$line $what"
done
echo "(x) expected miss, see EXPECTED_MISS in misuse.sh; ! unexpected miss; + expected miss now detected"
echo "$detected detected, $missed missed"
exit $fail
