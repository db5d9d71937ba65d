#!/bin/bash
# .ci/cross.sh - the library built with Debian's cross compilers for other
# architectures (32 and 64 bits, little and big endian) and
# tests/test_portable.c run on each under qemu-user: arm64, armhf, armel
# (ARMv5, whose 64-bit atomics are libatomic's), i386, s390x (big-endian),
# ppc64el, riscv64, mips64el.  The whole make check runs for i386, arm64
# and s390x in .ci/arch.sh.
#
# Sources are copied to $CROSS_DIR (default /tmp/mallocng-cross); the work
# tree is not written to.  Runs as root on Debian 12 (installs what it
# needs).  ARCHS overrides the list (Debian architecture names).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${CROSS_DIR:-/tmp/mallocng-cross}
ARCHS=${ARCHS:-"arm64 armhf armel i386 s390x ppc64el riscv64 mips64el"}
start=$(date +%s)
# the architectures' triplets, emulators and packages
. "$src/.ci/archs.sh"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	pkgs="qemu-user autoconf automake libtool make"
	for a in $ARCHS; do pkgs="$pkgs $(arch_cross_pkgs "$a")"; done
	missing=
	for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -n "$missing" ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq $missing >/dev/null
	fi
fi
rm -rf "$work"
mkdir -p "$work/src"
(cd "$src" && git ls-files -z | xargs -0 tar -cf -) | tar -xf - -C "$work/src"
(cd "$work/src" && autoreconf -fi >/dev/null 2>&1)
pass=0 fail=0
for a in $ARCHS; do
	t=$(arch_triplet "$a")
	printf '\n=== %s (%s) (%ss)\n' "$a" "$t" "$(( $(date +%s) - start ))"
	b="$work/build-$a"
	mkdir -p "$b"
	if ! (cd "$b" && ../src/configure -q --host="$t" --disable-static >/dev/null &&
		make -j"${JOBS:-2}" -C src >build.log 2>&1); then
		tail -20 "$b/build.log"
		echo "FAIL: $a: build"; fail=$((fail + 1)); continue
	fi
	if grep -E 'warning:' "$b/build.log"; then
		echo "FAIL: $a: compiler warnings"; fail=$((fail + 1)); continue
	fi
	"$t-gcc" -O1 -pthread -Wall -I"$work/src/include" -o "$b/test_portable" \
		"$work/src/tests/test_portable.c" -L"$b/src/.libs" -lmallocng
	# qemu-i386 (7.2) hangs in pthread_create and in a forked child's
	# abort, with any malloc: single-threaded parts only there
	args=
	[ "$a" = i386 ] && args=--single
	# the cross libc's directory in the search path: once dpkg multiarch
	# has installed the target's own libc (packaging.sh, arch.sh), the
	# cross loader would otherwise find that one under /lib/<triplet>
	# (qemu falls back to the host's files) and mix two builds of glibc
	# (s390x: "stack smashing detected" at start; arm64: a hang)
	if out=$(timeout 300 "$(arch_qemu "$a")" -L "/usr/$t" \
		-E LD_LIBRARY_PATH="$b/src/.libs:/usr/$t/lib" "$b/test_portable" $args 2>&1); then
		echo "$out" | tail -1
		echo "PASS: $a"; pass=$((pass + 1))
	else
		echo "$out" | tail -20
		echo "FAIL: $a: test_portable"; fail=$((fail + 1))
	fi
done
echo "cross: $pass passed, $fail failed ($(( $(date +%s) - start )) s)"
[ "$fail" = 0 ]
