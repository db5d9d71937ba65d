# .ci/archs.sh - the architectures CI builds for other than the machine's,
# sourced by .ci/arch.sh (make check per architecture) and .ci/cross.sh
# (tests/test_portable.c per architecture): one table, so that the two
# cannot disagree on a triplet, an emulator or a package name.
#
#   arch      Debian's architecture name (dpkg --print-architecture)
#   triplet   the GNU triplet: configure --host, the cross compiler
#             <triplet>-gcc (package gcc-<triplet>), the cross libc's
#             directory /usr/<triplet>
#   qemu      qemu-user's name for it: the emulator is qemu-<qemu>
#             (package qemu-user)
#
# Packages besides gcc-<triplet>: cross.sh links against the cross libc
# (libc6-dev-<arch>-cross); arch.sh builds the test suites against the
# target's libcheck, installed with dpkg multiarch (check:<arch>,
# pkgconf:<arch>, which gives <triplet>-pkg-config).
#
# Not executable: `. .ci/archs.sh`.  Defines the functions below only.

# arch      triplet                   qemu
ARCH_TABLE='
arm64     aarch64-linux-gnu         aarch64
armhf     arm-linux-gnueabihf       arm
armel     arm-linux-gnueabi         arm
i386      i686-linux-gnu            i386
s390x     s390x-linux-gnu           s390x
ppc64el   powerpc64le-linux-gnu     ppc64le
riscv64   riscv64-linux-gnu         riscv64
mips64el  mips64el-linux-gnuabi64   mips64el
'

# arch_field ARCH COLUMN: column 2 (triplet) or 3 (qemu) of ARCH's row;
# status 1, nothing printed, for an architecture the table lacks
arch_field() {
	local a t q
	while read -r a t q; do
		[ "$a" = "$1" ] || continue
		case $2 in 2) echo "$t" ;; 3) echo "$q" ;; esac
		return 0
	done <<EOF
$ARCH_TABLE
EOF
	return 1
}

# arch_triplet ARCH: the GNU triplet; an unknown ARCH is fatal (status 2,
# the message on stderr names the calling script)
arch_triplet() {
	arch_field "$1" 2 || { echo "${0##*/}: unknown architecture $1" >&2; exit 2; }
}

# arch_qemu ARCH: the emulator's command (qemu-aarch64, ...), nothing for
# an unknown ARCH
arch_qemu() {
	local q
	q=$(arch_field "$1" 3) || return 0
	echo "qemu-$q"
}

# arch_cross_pkgs ARCH: the packages of a cross build against the cross
# libc (cross.sh)
arch_cross_pkgs() {
	local t
	t=$(arch_triplet "$1") || exit 2
	echo "gcc-$t libc6-dev-$1-cross"
}

# arch_target_pkgs ARCH: the packages of a cross build of the test suites
# against the target's own libraries (arch.sh)
arch_target_pkgs() {
	local t
	t=$(arch_triplet "$1") || exit 2
	echo "gcc-$t check:$1 pkgconf:$1"
}
