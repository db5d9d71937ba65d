#!/bin/bash
# .ci/arch.sh - `make check` (the Check suites, the shell tests, fuzz/'s
# tests) built for other architectures than the machine's:
#
#   i386    cross-built with i686-linux-gnu-gcc and run natively (an x86-64
#           kernel runs 32-bit programs): the whole make check.
#   arm64   cross-built and run under qemu-user (qemu-aarch64);
#   s390x   the same (qemu-s390x), the big-endian one.
#
# Each is built against the target's libcheck, installed with dpkg
# multiarch (check:<arch>, pkgconf:<arch> for <triplet>-pkg-config).  Under
# the emulator `make check MALLOCNG_TEST_EMULATOR=qemu-<arch>` runs every
# test program through it (tests/Makefile.am): no binfmt_misc needed.
# Tests that cannot mean anything there are skipped and print why (RSS and
# RLIMIT_AS are the emulator's, qemu-user ignores MADV_POPULATE_*, a
# set-user-ID program of another architecture cannot be started, host
# programs cannot preload the library): this script lists every skip.
#
# Under emulation CI runs a named subset: every test of tests/ and fuzz/
# but the four reruns in EMULATED_EXCLUDE below (tests/hardened_*.sh, which
# repeat eight Check suites under other MALLOCNG_OPTIONS sets, and would
# double the time there) and fuzz/fault_inject, whose sweep starts hundreds
# of fresh processes (each a new emulator: more than 6 minutes under
# qemu-s390x, even in one of its two modes).  `.ci/arch.sh --full` runs the whole make check on
# every architecture.
#
# Usage: .ci/arch.sh [--full] [ARCH...]     (default: i386 arm64 s390x)
# Sources are copied to $ARCH_DIR (default /tmp/mallocng-arch); the work
# tree is not written to.  Runs as root on Debian 12 (installs what it
# needs: dpkg --add-architecture, apt-get).  JOBS (default 2) for make -j.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${ARCH_DIR:-/tmp/mallocng-arch}
full=0
if [ "${1:-}" = --full ]; then full=1; shift; fi
ARCHS=${*:-"i386 arm64 s390x"}
jobs=${JOBS:-2}
start=$(date +%s)

# The tests run under an emulator in CI (not --full): every test of
# tests/ and fuzz/ (their Makefiles' TESTS) but these reruns.
EMULATED_EXCLUDE="hardened_preset.sh hardened_junk.sh hardened_random.sh hardened_protect_meta.sh
	fault_inject"
# the TESTS of a configured directory's Makefile, less EMULATED_EXCLUDE
tests_of() {
	local t out=
	for t in $(printf 'print-tests:\n\t@echo $(TESTS)\n' | make -s --no-print-directory -C "$1" -f Makefile -f - print-tests); do
		case " $(echo $EMULATED_EXCLUDE) " in *" $t "*) ;; *) out="$out $t" ;; esac
	done
	echo $out
}

# the architectures' triplets, emulators and packages
. "$src/.ci/archs.sh"
# the emulator, none when this machine runs the programs itself
emulator() {
	case $1 in
	i386) [ "$(dpkg --print-architecture)" = amd64 ] && return ;;
	esac
	arch_qemu "$1"
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	pkgs="qemu-user autoconf automake libtool make pkg-config"
	for a in $ARCHS; do
		pkgs="$pkgs $(arch_target_pkgs "$a")"
	done
	missing=
	for p in $pkgs; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		for a in $ARCHS; do
			[ "$a" = "$(dpkg --print-architecture)" ] ||
				dpkg --print-foreign-architectures | grep -qx "$a" ||
				dpkg --add-architecture "$a"
		done
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
fi

rm -rf "$work"
mkdir -p "$work/src"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf -) | tar -xf - -C "$work/src"
(cd "$work/src" && autoreconf -fi >/dev/null 2>&1)

# counts of a test-suite.log: "pass fail skip"
counts() {
	local p=0 f=0 s=0 e=0
	if [ -f "$1" ]; then
		p=$(sed -n 's/^# PASS: *//p' "$1" | head -1)
		f=$(sed -n 's/^# FAIL: *//p' "$1" | head -1)
		e=$(sed -n 's/^# ERROR: *//p' "$1" | head -1)
		s=$(sed -n 's/^# SKIP: *//p' "$1" | head -1)
	fi
	echo "$p $((f + e)) $s"
}

failed=0
summary=
for a in $ARCHS; do
	t=$(arch_triplet "$a")
	emu=$(emulator "$a")
	b="$work/build-$a"
	t0=$(date +%s)
	printf '\n=== %s (%s, %s) (%ss)\n' "$a" "$t" "${emu:-native}" "$(( t0 - start ))"
	mkdir -p "$b"
	if ! (cd "$b" && ../src/configure -q --host="$t" >configure.log 2>&1 &&
		make -j"$jobs" >build.log 2>&1); then
		tail -20 "$b/configure.log" "$b/build.log" 2>/dev/null
		echo "FAIL: $a: build"; failed=$((failed + 1))
		summary="$summary$(printf '%-8s %-10s %s' "$a" "${emu:-native}" "build failed")\n"
		continue
	fi
	if grep -q 'warning:' "$b/build.log"; then
		grep 'warning:' "$b/build.log"
		echo "FAIL: $a: compiler warnings"; failed=$((failed + 1))
	fi
	grep -q '^CHECK_LIBS = -l' "$b/tests/Makefile" ||
		{ echo "FAIL: $a: configure did not find the target's libcheck"; failed=$((failed + 1)); }
	what=all
	rc=0
	if [ -z "$emu" ]; then
		(cd "$b" && make -k -j"$jobs" check) >"$b/check.log" 2>&1 || rc=$?
	elif [ "$full" = 1 ]; then
		(cd "$b" && make -k -j"$jobs" check MALLOCNG_TEST_EMULATOR="$emu") >"$b/check.log" 2>&1 || rc=$?
	else
		what=subset
		{ for d in tests fuzz; do
			(cd "$b/$d" && make -k -j"$jobs" check MALLOCNG_TEST_EMULATOR="$emu" \
				TESTS="$(tests_of "$b/$d")") || rc=$?
		  done
		} >"$b/check.log" 2>&1
	fi
	grep -E '^(FAIL|ERROR|XPASS):' "$b/check.log" || true
	read -r p1 f1 s1 < <(counts "$b/tests/test-suite.log")
	read -r p2 f2 s2 < <(counts "$b/fuzz/test-suite.log")
	pass=$((p1 + p2)) fail=$((f1 + f2)) skip=$((s1 + s2))
	# every skip says why: whole tests (SKIP: in their log) and test cases
	# (the Check suites print "<test>: skipped ...")
	for log in "$b"/tests/*.log "$b"/fuzz/*.log; do
		case $log in */test-suite.log|*/check.log|*/build.log|*/configure.log) continue ;; esac
		{ grep -a -h -E '^SKIP: |skipped' "$log" 2>/dev/null || true; } |
			sed "s|^|  skip: $(basename "$log" .log): |" | sort -u
	done
	secs=$(( $(date +%s) - t0 ))
	if [ "$rc" != 0 ] || [ "$fail" != 0 ]; then
		failed=$((failed + 1))
		tail -30 "$b/check.log"
		echo "FAIL: $a: make check ($what): $pass passed, $fail failed, $skip skipped (${secs}s)"
	else
		echo "PASS: $a: make check ($what): $pass passed, $skip skipped (${secs}s)"
	fi
	summary="$summary$(printf '%-8s %-14s %-7s %4s passed %3s failed %3s skipped %5ss' \
		"$a" "${emu:-native}" "$what" "$pass" "$fail" "$skip" "$secs")\n"
done
printf '\n%b' "$summary"
echo "arch: $failed failed ($(( $(date +%s) - start )) s)"
[ "$failed" = 0 ]
