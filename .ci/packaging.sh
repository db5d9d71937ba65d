#!/bin/bash
# .ci/packaging.sh - build, install, exercise and remove the Debian packages,
# then build the RPMs from `make dist` and list them.
#
# Runs as root on a fresh Debian 12 (installs its own build dependencies with
# apt-get).  The work tree is never written to: the .debs are built in a copy
# of it and the RPMs from a `make dist` tarball made in another copy.  Results
# (.deb, .changes, .rpm, logs) are left in $PKG_OUT (default
# /tmp/mallocng-packages), outside the tree.
#
# The unit tests are NOT run inside the package builds by default
# (DEB_BUILD_OPTIONS=nocheck, rpmbuild --without check): .ci/run runs
# `make check` on the same sources just before, and running the suite three
# times would triple the CI time.  Set PACKAGING_CHECK=1 to run it in both
# package builds as well (dh_auto_test / %check).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
PKG_OUT=${PKG_OUT:-/tmp/mallocng-packages}
PACKAGING_CHECK=${PACKAGING_CHECK:-0}
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)

step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
die() { printf 'packaging.sh: FAILED: %s\n' "$*" >&2; exit 1; }

version=$(sed -n 's/^AC_INIT(\[mallocng\], *\[\([^]]*\)\].*/\1/p' "$src/configure.ac")
[ -n "$version" ] || die "cannot read the version from configure.ac"
debs=(libmallocng1 libmallocng-dev mallocng-tools)

work=$(mktemp -d /tmp/mallocng-pkg.XXXXXX)
installed=0
cleanup() {
	rc=$?
	if [ "$installed" = 1 ]; then
		apt-get remove -y "${debs[@]}" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------- deps
step "build dependencies"
deps=(build-essential debhelper dh-autoreconf dpkg-dev devscripts fakeroot
	autoconf automake libtool pkg-config check make gcc rpm man-db git)
missing=()
for p in "${deps[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1 ||
		{ tail -30 "$work/apt.log"; die "apt-get install of build dependencies"; }
else
	echo "all present"
fi

# A copy of the tree: tracked files plus untracked, non-ignored ones (so a
# working copy with new sources builds too), never build output.
copy_tree() {
	local dst=$1
	mkdir -p "$dst"
	if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$src" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf -) | tar -xf - -C "$dst"
	else
		cp -a "$src/." "$dst/"
		if [ -f "$dst/Makefile" ]; then (cd "$dst" && make -s distclean >/dev/null 2>&1 || true); fi
	fi
}

mkdir -p "$PKG_OUT"
rm -f "$PKG_OUT"/*.deb "$PKG_OUT"/*.rpm "$PKG_OUT"/*.changes "$PKG_OUT"/*.buildinfo

# ---------------------------------------------------------------- .deb
step "dpkg-buildpackage -us -uc -b"
copy_tree "$work/deb/mallocng-$version"
deb_opts=${DEB_BUILD_OPTIONS:-}
[ "$PACKAGING_CHECK" = 1 ] || deb_opts="nocheck $deb_opts"
(cd "$work/deb/mallocng-$version" &&
	DPKG_GENSYMBOLS_CHECK_LEVEL=4 DEB_BUILD_OPTIONS="$deb_opts" dpkg-buildpackage -us -uc -b) \
	>"$PKG_OUT/deb-build.log" 2>&1 ||
	{ tail -40 "$PKG_OUT/deb-build.log"; die "dpkg-buildpackage (log: $PKG_OUT/deb-build.log)"; }
cp "$work"/deb/*.deb "$work"/deb/*.changes "$work"/deb/*.buildinfo "$PKG_OUT"/
for p in "${debs[@]}"; do
	f=$(ls "$PKG_OUT/${p}_${version}"_*.deb)
	echo "--- $(basename "$f")"
	dpkg-deb -c "$f" | awk '$1 !~ /^d/ {print "    " $6, $7, $8}'
done

if command -v lintian >/dev/null 2>&1; then
	step "lintian"
	lintian --tag-display-limit 0 --fail-on error "$PKG_OUT"/mallocng_"$version"_*.changes ||
		die "lintian reported errors"
else
	echo "(lintian not installed: skipped)"
fi

# ---------------------------------------------------------------- install
step "apt-get install ./*.deb"
# Minimised images exclude /usr/share/man from dpkg; re-include our pages so
# that `man -w` can be checked.
apt-get install -y -qq -o 'DPkg::Options::=--path-include=/usr/share/man/*/mallocng.*' \
	"$PKG_OUT/libmallocng1_${version}"_*.deb "$PKG_OUT/libmallocng-dev_${version}"_*.deb \
	"$PKG_OUT/mallocng-tools_${version}"_*.deb >"$work/install.log" 2>&1 ||
	{ tail -30 "$work/install.log"; die "apt-get install of the .debs"; }
installed=1
dpkg -l "${debs[@]}" | tail -n 3

step "use the installed packages"
cat >"$work/t.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mallocng.h>

int main(void)
{
	const char *v = mallocng_version();
	char *p = malloc(strlen(v) + 1);

	if (p == NULL)
		return 1;
	strcpy(p, v);
	printf("%s\n", p);
	free(p);
	return strcmp(v, MALLOCNG_VERSION_STRING) != 0;
}
EOF
echo "pkg-config --cflags --libs mallocng: $(pkg-config --cflags --libs mallocng)"
cc -Wall -o "$work/t" "$work/t.c" $(pkg-config --cflags --libs mallocng)
ldd "$work/t" | grep 'libmallocng\.so\.1 => /' || die "test program not linked with libmallocng.so.1"
out=$("$work/t")
echo "mallocng_version() = $out"
[ "$out" = "$version" ] || die "mallocng_version() returned '$out', expected '$version'"

echo "mallocng --version: $(mallocng --version)"
[ "$(mallocng --version)" = "mallocng $version" ] || die "mallocng --version"
out=$(mallocng /bin/echo hi)
echo "mallocng /bin/echo hi: $out"
[ "$out" = hi ] || die "mallocng /bin/echo hi printed '$out'"
out=$(mallocng sh -c 'echo "$LD_PRELOAD"')
case $out in
/usr/lib/*/libmallocng.so.1*) ;;
*) die "LD_PRELOAD under mallocng is '$out'" ;;
esac
rc=0; mallocng /nonexistent/program 2>/dev/null || rc=$?
[ "$rc" = 127 ] || die "mallocng with a missing program exited $rc, expected 127"

for s in "" 1 3 7; do
	page=$(man -w $s mallocng) || die "man -w $s mallocng does not resolve"
	echo "man -w ${s:+$s }mallocng: $page"
done
MANWIDTH=80 man mallocng 2>&1 >/dev/null | grep . && die "man mallocng printed warnings"

step "apt-get remove"
apt-get remove -y -qq "${debs[@]}" >"$work/remove.log" 2>&1 ||
	{ tail -20 "$work/remove.log"; die "apt-get remove"; }
installed=0
[ ! -e /usr/bin/mallocng ] || die "mallocng still installed after remove"
[ ! -e /usr/include/mallocng.h ] || die "mallocng.h still installed after remove"

# ---------------------------------------------------------------- .rpm
step "make dist"
copy_tree "$work/dist"
(cd "$work/dist" && autoreconf -fi && ./configure -q && make -s dist) >"$PKG_OUT/dist.log" 2>&1 ||
	{ tail -30 "$PKG_OUT/dist.log"; die "make dist (log: $PKG_OUT/dist.log)"; }
tarball=$work/dist/mallocng-$version.tar.gz
[ -f "$tarball" ] || die "no $tarball"
tar -tzf "$tarball" >"$work/dist.list"
grep -qx "mallocng-$version/rpm/mallocng.spec" "$work/dist.list" || die "spec missing from the tarball"

step "rpmbuild -ta mallocng-$version.tar.gz"
rpm_check=(--without check)
[ "$PACKAGING_CHECK" = 1 ] && rpm_check=()
# --nodeps: the rpm database is empty on Debian, so every BuildRequires
# would be reported missing.
rpmbuild --nodeps --define "_topdir $work/rpmtop" "${rpm_check[@]}" -ta "$tarball" \
	>"$PKG_OUT/rpm-build.log" 2>&1 ||
	{ tail -40 "$PKG_OUT/rpm-build.log"; die "rpmbuild (log: $PKG_OUT/rpm-build.log)"; }
find "$work/rpmtop/RPMS" "$work/rpmtop/SRPMS" -name '*.rpm' -exec cp {} "$PKG_OUT"/ \;
for f in "$PKG_OUT"/*.rpm; do
	echo "--- $(basename "$f")"
	rpm -qlp "$f" 2>/dev/null | sed 's/^/    /'
done
for f in "$PKG_OUT"/mallocng-"$version"-*.rpm; do case $f in *.src.rpm) ;; *) main_rpm=$f ;; esac; done
rpm -qlp "$main_rpm" | grep '/libmallocng\.so\.1$' || die "libmallocng.so.1 missing from $main_rpm"
rpm -qlp "$PKG_OUT"/mallocng-devel-"$version"-*.rpm | grep '/pkgconfig/mallocng\.pc$' ||
	die "mallocng.pc missing from the -devel RPM"

# ---------------------------------------------------------------- cross
# The .debs cross-built for other architectures (crossbuild-essential-*,
# build dependencies of the target through dpkg multiarch) and the RPMs
# for aarch64; built, inspected, not installed (this machine cannot run
# them).  DPKG_GENSYMBOLS_CHECK_LEVEL=4 fails a build whose library's
# symbols differ from debian/libmallocng1.symbols in any way, so that the
# file holds on every architecture built.  CROSS_PKG_ARCHS (Debian names)
# and CROSS_RPM_TARGETS (rpm's names, e.g. aarch64) override the lists;
# empty skips them.
CROSS_PKG_ARCHS=${CROSS_PKG_ARCHS-"arm64 i386"}
CROSS_RPM_TARGETS=${CROSS_RPM_TARGETS-aarch64}
deb_machine() {
	case $1 in
	arm64) echo AArch64 ;; i386) echo 'Intel 80386' ;; armhf|armel) echo ARM ;;
	s390x) echo 'IBM S/390' ;; ppc64el) echo PowerPC64 ;; riscv64) echo RISC-V ;;
	amd64) echo X86-64 ;; *) echo '?' ;;
	esac
}
for a in $CROSS_PKG_ARCHS; do
	step "dpkg-buildpackage -a $a -Pcross,nocheck -us -uc -b"
	t=$(dpkg-architecture -qDEB_HOST_MULTIARCH -a"$a" 2>/dev/null)
	dpkg --print-foreign-architectures | grep -qx "$a" || dpkg --add-architecture "$a"
	copy_tree "$work/deb-$a/mallocng-$version"
	dpkg-query -W -f='${Status}\n' "crossbuild-essential-$a" 2>/dev/null | grep -q '^install ok installed$' &&
		dpkg-checkbuilddeps -a "$a" -P cross,nocheck "$work/deb-$a/mallocng-$version/debian/control" 2>/dev/null ||
		{ apt-get update -qq &&
		  apt-get install -y -qq --no-install-recommends "crossbuild-essential-$a" &&
		  apt-get build-dep -y -qq -a "$a" -P cross,nocheck "$work/deb-$a/mallocng-$version"; } \
		>"$work/apt-$a.log" 2>&1 || { tail -30 "$work/apt-$a.log"; die "cross build dependencies for $a"; }
	(cd "$work/deb-$a/mallocng-$version" &&
		DPKG_GENSYMBOLS_CHECK_LEVEL=4 DEB_BUILD_OPTIONS="nocheck $deb_opts" \
		dpkg-buildpackage -a "$a" -Pcross,nocheck -us -uc -b) >"$PKG_OUT/deb-build-$a.log" 2>&1 ||
		{ tail -40 "$PKG_OUT/deb-build-$a.log"; die "dpkg-buildpackage -a $a (log: $PKG_OUT/deb-build-$a.log)"; }
	grep -E 'dpkg-gensymbols: (warning|error)' "$PKG_OUT/deb-build-$a.log" &&
		die "$a: the symbols differ from debian/libmallocng1.symbols"
	for p in "${debs[@]}"; do
		f=$work/deb-$a/${p}_${version}_$a.deb
		[ -f "$f" ] || die "no $(basename "$f")"
		cp "$f" "$PKG_OUT"/
		[ "$(dpkg-deb -f "$f" Architecture)" = "$a" ] || die "$(basename "$f"): Architecture is not $a"
	done
	lib=$(dpkg-deb -c "$PKG_OUT/libmallocng1_${version}_$a.deb" | awk '{print $6}' |
		grep "^\./usr/lib/$t/libmallocng\.so\.1\.")
	[ -n "$lib" ] || die "libmallocng1_${version}_$a.deb: no /usr/lib/$t/libmallocng.so.1.*"
	machine=$(dpkg-deb --fsys-tarfile "$PKG_OUT/libmallocng1_${version}_$a.deb" | tar -xOf - "$lib" |
		{ f=$work/lib-$a.so; cat >"$f"; readelf -h "$f" | sed -n 's/^ *Machine: *//p'; })
	case $machine in
	*"$(deb_machine "$a")"*) ;;
	*) die "libmallocng1_${version}_$a.deb: $lib is for '$machine'" ;;
	esac
	# (read whole first: grep -q would stop reading at its match, and the
	# writer's SIGPIPE fails the pipeline under pipefail, about 1 run in 8)
	tool=$(dpkg-deb --fsys-tarfile "$PKG_OUT/mallocng-tools_${version}_$a.deb" | tar -xOf - ./usr/bin/mallocng)
	grep -q "^default_lib='/usr/lib/$t/libmallocng.so.1'" <<<"$tool" ||
		die "mallocng-tools_${version}_$a.deb: the command does not name /usr/lib/$t/libmallocng.so.1"
	echo "$a: $(cd "$PKG_OUT" && ls ./*_"${version}"_"$a".deb | tr '\n' ' '); ${lib#.} is $machine; symbols as in debian/libmallocng1.symbols"
done

# rpmbuild --target only names the architecture: %configure keeps the
# machine's --host, CC and strip, so the cross tools are passed in.  Only
# the package build is checked (rpmbuild --nodeps: Debian's rpm database is
# empty); %check is not run (--without check).
for r in $CROSS_RPM_TARGETS; do
	case $r in
	aarch64) da=arm64 ;; i686) da=i386 ;; s390x) da=s390x ;; ppc64le) da=ppc64el ;;
	riscv64) da=riscv64 ;; *) die "unknown RPM target $r" ;;
	esac
	t=$(dpkg-architecture -qDEB_HOST_GNU_TYPE -a"$da" 2>/dev/null)
	step "rpmbuild --target $r -ta mallocng-$version.tar.gz (with $t-gcc)"
	dpkg-query -W -f='${Status}\n' "gcc-$t" 2>/dev/null | grep -q '^install ok installed$' ||
		{ apt-get update -qq && apt-get install -y -qq "gcc-$t" "binutils-$t"; } >"$work/apt-rpm-$r.log" 2>&1 ||
		{ tail -20 "$work/apt-rpm-$r.log"; die "apt-get install gcc-$t"; }
	rpmbuild --nodeps --define "_topdir $work/rpmtop-$r" --without check --target "$r" \
		--define "_build $(dpkg-architecture -qDEB_BUILD_GNU_TYPE)" --define "_host $t" \
		--define "__strip $t-strip" --define "__objdump $t-objdump" \
		-ta "$tarball" >"$PKG_OUT/rpm-build-$r.log" 2>&1 ||
		{ tail -40 "$PKG_OUT/rpm-build-$r.log"; die "rpmbuild --target $r (log: $PKG_OUT/rpm-build-$r.log)"; }
	for f in "$work/rpmtop-$r/RPMS/$r"/*.rpm; do
		cp "$f" "$PKG_OUT"/
		echo "--- $(basename "$f")"
	done
	f=$PKG_OUT/mallocng-$version-1.$r.rpm
	[ -f "$f" ] || f=$(ls "$PKG_OUT"/mallocng-"$version"-*."$r".rpm | head -1)
	mkdir -p "$work/rpmx-$r"
	(cd "$work/rpmx-$r" && rpm2cpio "$f" | cpio -idm --quiet)
	so=$(ls "$work/rpmx-$r"/usr/lib*/libmallocng.so.1.* | head -1)
	[ -n "$so" ] || die "$(basename "$f"): no libmallocng.so.1"
	machine=$(readelf -h "$so" | sed -n 's/^ *Machine: *//p')
	case $machine in
	*"$(deb_machine "$da")"*) echo "$r: ${so#"$work/rpmx-$r"} is $machine" ;;
	*) die "$(basename "$f"): ${so#"$work/rpmx-$r"} is for '$machine'" ;;
	esac
done

step "done: packages in $PKG_OUT"
ls -1 "$PKG_OUT"
echo "packaging.sh finished in $(( $(date +%s) - start )) s"
