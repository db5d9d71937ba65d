#!/bin/sh
# check_version.sh - the version is stated in one place, AC_INIT in
# configure.ac.  Fail when a file that states it otherwise disagrees:
#   - debian/changelog, top entry (dpkg takes the package version from it;
#     a native package, so the whole version must equal configure's);
#   - include/mallocng.h, MALLOCNG_VERSION_STRING and _MAJOR/_MINOR/_PATCH
#     (an installed header: not generated, so that it reads the same in
#     every build tree);
#   - the files configure generates from templates (man pages, RPM spec,
#     mallocng.pc), and any literal "mallocng X.Y.Z" left in their
#     templates or in the README;
#   - debian/libmallocng1.symbols: the version each symbol appeared in must
#     not be newer than the current one.
#
# MALLOCNG_PACKAGE_VERSION (set by tests/Makefile.am) is configure's
# PACKAGE_VERSION; srcdir is set by the automake test harness.

srcdir=${srcdir:-.}
top_srcdir=$srcdir/..
top_builddir=..
version=${MALLOCNG_PACKAGE_VERSION:-}
if test -z "$version"; then
	version=$(sed -n 's/^AC_INIT(\[mallocng\], *\[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
fi
if test -z "$version"; then
	echo "ERROR: cannot tell configure's version"
	exit 99
fi
echo "configure (AC_INIT): $version"

failed=0
check() { # what, value found
	if test "x$2" = "x$version"; then
		echo "ok: $1: $2"
	else
		echo "FAIL: $1 states '$2', configure.ac's AC_INIT '$version'"
		failed=$((failed + 1))
	fi
}

# configure.ac itself, against the configured tree (a stale configure).
check "configure.ac AC_INIT" \
	"$(sed -n 's/^AC_INIT(\[mallocng\], *\[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")"

# debian/changelog: first line "mallocng (VERSION) distribution; ...".
if test -f "$top_srcdir/debian/changelog"; then
	check "debian/changelog (top entry)" \
		"$(sed -n '1s/^mallocng (\([^)]*\)).*/\1/p' "$top_srcdir/debian/changelog")"
fi

# The public header.
h=$top_srcdir/include/mallocng.h
check "include/mallocng.h MALLOCNG_VERSION_STRING" \
	"$(sed -n 's/^#define MALLOCNG_VERSION_STRING "\(.*\)"$/\1/p' "$h")"
hv=
for part in MAJOR MINOR PATCH; do
	n=$(sed -n "s/^#define MALLOCNG_VERSION_$part \\([0-9][0-9]*\\)\$/\\1/p" "$h")
	hv=${hv:+$hv.}$n
done
check "include/mallocng.h MALLOCNG_VERSION_MAJOR.MINOR.PATCH" "$hv"

# Generated files, in the build tree.
for n in 1 3 7; do
	f=$top_builddir/man/mallocng.$n
	test -f "$f" || continue
	check "man/mallocng.$n (.TH)" \
		"$(sed -n 's/^\.TH MALLOCNG [0-9] [^ ]* "mallocng \([^"]*\)".*/\1/p' "$f")"
done
if test -f "$top_builddir/rpm/mallocng.spec"; then
	check "rpm/mallocng.spec Version" \
		"$(sed -n 's/^Version: *//p' "$top_builddir/rpm/mallocng.spec")"
fi
if test -f "$top_builddir/mallocng.pc"; then
	check "mallocng.pc Version" "$(sed -n 's/^Version: *//p' "$top_builddir/mallocng.pc")"
fi

# No version written by hand in the templates or the README (none of them
# has any other X.Y.Z number either).
for f in "$top_srcdir"/man/mallocng.*.in "$top_srcdir/rpm/mallocng.spec.in" \
	"$top_srcdir/mallocng.pc.in" "$top_srcdir/README" "$top_srcdir/tools/mallocng.in"; do
	test -f "$f" || continue
	hits=$(grep -n -E '(^|[^0-9.])[0-9]+\.[0-9]+\.[0-9]+' "$f")
	if test -n "$hits"; then
		echo "FAIL: ${f#"$top_srcdir"/} states a version by hand (use @PACKAGE_VERSION@):"
		printf '%s\n' "$hits" | sed 's/^/  /'
		failed=$((failed + 1))
	fi
done

# Symbols file: minimum versions, never newer than the current version.
sym=$top_srcdir/debian/libmallocng1.symbols
if test -f "$sym" && command -v dpkg >/dev/null 2>&1; then
	newer=$(sed -n 's/^ [^ ]*@Base \([^ ]*\).*/\1/p' "$sym" | sort -u | while read -r v; do
		dpkg --compare-versions "$v" gt "$version" && echo "$v"
	done)
	if test -n "$newer"; then
		echo "FAIL: debian/libmallocng1.symbols has symbols from versions newer than $version: $newer"
		failed=$((failed + 1))
	else
		echo "ok: debian/libmallocng1.symbols: no symbol newer than $version"
	fi
fi

test $failed -eq 0
