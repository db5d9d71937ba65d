#!/bin/bash
# .ci/pagesize.sh - the whole test suite on 16 KiB and 64 KiB pages,
# emulated on this kernel (4 KiB): a second build tree configured with
# --enable-page-emulation, where `make check-pagesize` runs `make check`
# once per page size with MALLOCNG_PAGE_SIZE set.  That build maps at the
# emulated page's alignment and aborts on any mapping, guard, purge or
# protection not on whole emulated pages (src/os.h), so a rounding to
# 4 KiB anywhere fails the suite instead of passing silently.
#
# Sources are copied to $PAGESIZE_DIR (default /tmp/mallocng-pagesize);
# the work tree is not written to.  PAGE_SIZES overrides the sizes run
# (default "16384 65536"), JOBS the make jobs (default 2).  Needs what
# `make check` needs (.ci/run installs it).  Prints the time of each run;
# exits 1 if one failed.  .ci/run runs it with both sizes (about 5 min on
# 2 cores: 2.5 min for 16 KiB, 2 min for 64 KiB, the build 15 s).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${PAGESIZE_DIR:-/tmp/mallocng-pagesize}
start=$(date +%s)
rm -rf "$work"
mkdir -p "$work"
(cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf -) | tar -xf - -C "$work"
cd "$work"
autoreconf -fi >/dev/null 2>&1
./configure -q --enable-page-emulation >/dev/null
make -j"${JOBS:-2}" >build.log 2>&1 || { tail -20 build.log; echo "FAIL: build"; exit 1; }
fail=0
for p in ${PAGE_SIZES:-16384 65536}; do
	t0=$(date +%s)
	if make check-pagesize PAGE_SIZES="$p" -j"${JOBS:-2}" >"check-$p.log" 2>&1; then
		echo "PASS: make check on emulated pages of $p bytes ($(( $(date +%s) - t0 )) s)"
	else
		grep -E '^(FAIL|ERROR|XPASS)' "check-$p.log" || tail -30 "check-$p.log"
		cat tests/test-suite.log 2>/dev/null | tail -80 || true
		echo "FAIL: make check on emulated pages of $p bytes ($(( $(date +%s) - t0 )) s)"
		fail=1
	fi
done
echo "pagesize finished in $(( $(date +%s) - start )) s"
exit $fail
