#!/bin/bash
# .ci/robustness.sh - robustness checks of mallocng beyond `make check`:
#
#  1. a second build with UBSan (-fsanitize=undefined, no recovery) in a
#     separate VPATH build directory, and its full `make check` (unit
#     tests, fault injection, misuse suite, corpus replay, stress);
#  2. the libFuzzer target (fuzz/fuzz_ops.c, allocator sources compiled in,
#     with UBSan) for FUZZ_SECONDS (default 120), then with
#     MALLOCNG_OPTIONS=hardened=1 for FUZZ_HARDENED_SECONDS (default 60);
#  3. fuzz/mt_stress (4 threads, cross-thread frees) under Valgrind DRD and
#     Helgrind, with fuzz/vg_annotate.so preloaded to declare the
#     allocator's futex lock and the free->malloc hand-over, and the
#     suppressions fuzz/drd.supp / fuzz/helgrind.supp for the known benign
#     reports (each explained there).  Any other report fails the script.
#
# The work tree is not written to: sources are copied to $ROBUSTNESS_DIR
# (default /tmp/mallocng-robustness).  Runs as root on Debian 12 (installs
# what it needs with apt-get); as another user the tools must be present.
# Budget: under 8 minutes on 2 CPUs.  Environment: FUZZ_SECONDS,
# FUZZ_HARDENED_SECONDS,
# STRESS_SECONDS (default 6), JOBS (default 2), ROBUSTNESS_DIR.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
work=${ROBUSTNESS_DIR:-/tmp/mallocng-robustness}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
FUZZ_HARDENED_SECONDS=${FUZZ_HARDENED_SECONDS:-60}
STRESS_SECONDS=${STRESS_SECONDS:-6}
JOBS=${JOBS:-2}
start=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
die() { printf 'robustness.sh: FAILED: %s\n' "$*" >&2; exit 1; }

step "tools"
need="autoconf automake libtool pkg-config check make gcc clang libclang-rt-14-dev valgrind python3"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	missing=
	for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		apt-get update -qq
		apt-get install -y -qq $missing >/dev/null
	fi
fi
for t in autoreconf make gcc clang valgrind; do
	command -v $t >/dev/null || die "$t not installed"
done
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >/tmp/rb-probe.$$.c
clang -fsanitize=fuzzer /tmp/rb-probe.$$.c -o /tmp/rb-probe.$$ 2>/dev/null ||
	die "clang cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"
rm -f /tmp/rb-probe.$$ /tmp/rb-probe.$$.c

step "copy of the sources to $work"
rm -rf "$work"
mkdir -p "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$work/src"
else
	(cd "$src" && tar -cf - --exclude='*.o' --exclude='*.lo' --exclude=.libs .) | tar -xf - -C "$work/src"
	(cd "$work/src" && { [ ! -f Makefile ] || make distclean >/dev/null 2>&1 || true; })
fi
cd "$work/src"
autoreconf -fi >/dev/null 2>&1 || die "autoreconf"

# ---- 1. UBSan build and make check ----
# The library is built with UBSan and the tests preload it (LD_PRELOAD):
# the library then pulls libubsan.so in as a dependency, which works since
# GCC's UBSan runtime intercepts nothing (unlike ASan, which would insist
# on coming first and would replace malloc).
step "UBSan build (build-ubsan)"
mkdir build-ubsan
cd build-ubsan
../configure -q CFLAGS="-O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined" \
	LDFLAGS=-fsanitize=undefined >/dev/null || die "configure (UBSan)"
make -j"$JOBS" >/dev/null || die "make (UBSan)"
step "UBSan make check"
if ! make -j"$JOBS" check >make-check.log 2>&1; then
	grep -E '^(FAIL|ERROR|XPASS)' make-check.log || true
	for f in $(grep -l -E '^(FAIL|ERROR)' */*.trs 2>/dev/null); do
		echo "--- ${f%.trs}.log"; tail -40 "${f%.trs}.log"
	done
	die "make check with UBSan"
fi
grep -h -E '^# (TOTAL|PASS|FAIL|SKIP|ERROR):' */test-suite.log | paste -sd' ' || true
grep -h 'runtime error' */*.log && die "UBSan runtime errors" || true
cat fuzz/fault_inject.log | grep '^fault_inject:' || true
cat fuzz/misuse.log | sed -n '/^case/,/missed$/p' || true

# ---- 2. fuzzing ----
step "libFuzzer: fuzz_ops for ${FUZZ_SECONDS}s"
if ! make -C fuzz fuzz FUZZ_SECONDS="$FUZZ_SECONDS" >fuzz/fuzz-run.log 2>&1; then
	tail -40 fuzz/fuzz-run.log
	ls fuzz/fuzz-artifacts || true
	die "fuzz_ops found a failure (inputs in $work/src/build-ubsan/fuzz/fuzz-artifacts)"
fi
grep -E '^(Done|stat::)' fuzz/fuzz-run.log || true
if [ "$FUZZ_HARDENED_SECONDS" -gt 0 ]; then
	step "libFuzzer: fuzz_ops with MALLOCNG_OPTIONS=hardened=1 for ${FUZZ_HARDENED_SECONDS}s"
	if ! make -C fuzz fuzz FUZZ_SECONDS="$FUZZ_HARDENED_SECONDS" FUZZ_OPTIONS=hardened=1 \
		>fuzz/fuzz-run-hardened.log 2>&1; then
		tail -40 fuzz/fuzz-run-hardened.log
		die "fuzz_ops (hardened) found a failure (inputs in $work/src/build-ubsan/fuzz/fuzz-artifacts)"
	fi
	grep -E '^(Done|stat::)' fuzz/fuzz-run-hardened.log || true
fi
cd ..

# ---- 3. threads under Valgrind ----
# A plain build (UBSan would only slow Valgrind down).  --soname-synonyms=
# somalloc=nouserintercepts: Valgrind must not replace the malloc of
# libmallocng.so with its own (it does by default), mt_stress checks that.
step "plain build for Valgrind (build-plain)"
mkdir build-plain
cd build-plain
../configure -q >/dev/null || die "configure (plain)"
make -j"$JOBS" >/dev/null || die "make (plain)"
make -C fuzz mt_stress >/dev/null || die "make mt_stress"
gcc -shared -fPIC -O1 -g -o fuzz/vg_annotate.so ../fuzz/vg_annotate.c || die "vg_annotate.so"
for tool in drd helgrind; do
	step "mt_stress under valgrind --tool=$tool (${STRESS_SECONDS}s)"
	st=0
	# --fair-sched=yes: with Valgrind's default lock hand-over, the four
	# busy workers can starve the main thread when its nanosleep returns,
	# so it never sets `stop` (seen as a stall at 99% CPU).  The timeout
	# stays as a bound; a stall is reported, a race report fails the run.
	# --vex-guest-chase=no: by default Valgrind translates a jump and the
	# code it jumps to as one block, and may then report an access of a
	# tail-called function (slot_release_or_cache's relaxed owner load) at the
	# caller's jump, under a frame no suppression names.
	./libtool --mode=execute env LD_PRELOAD="$PWD/fuzz/vg_annotate.so" \
		timeout -s KILL "${VALGRIND_TIMEOUT:-120}" valgrind --tool=$tool --fair-sched=yes --vex-guest-chase=no --soname-synonyms=somalloc=nouserintercepts \
		--suppressions=../fuzz/$tool.supp --error-exitcode=3 --gen-suppressions=all \
		--num-callers=12 fuzz/mt_stress "$STRESS_SECONDS" 4 >fuzz/$tool.log 2>&1 || st=$?
	grep -E 'mt_stress:|ERROR SUMMARY' fuzz/$tool.log | sed 's/^==[0-9]*== //' || true
	if [ $st -eq 137 ] && ! grep -qE 'Conflicting|Possible data race|lock order' fuzz/$tool.log; then
		echo "WARNING: $tool run stalled and was stopped after ${VALGRIND_TIMEOUT:-120}s (no race reported until then)"
		continue
	fi
	if [ $st -ne 0 ]; then
		sed 's/^==[0-9]*== //' fuzz/$tool.log | head -150
		die "$tool: new report(s) or failure (exit $st); full log $work/src/build-plain/fuzz/$tool.log"
	fi
done

step "robustness checks passed"
