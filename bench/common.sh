# common.sh - shared by run.sh and external.sh (sourced): where the other
# allocators' libraries are, and installing what is missing from Debian.
# Needs $ALLOCATORS and a log() function from the sourcing script.

multiarch=$(${CC:-gcc} -print-multiarch 2>/dev/null || true)

find_lib() { # find_lib SONAME -> prints path or fails
	local so=$1 d p
	p=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so && /x86-64|x86_64|64bit/ { print $NF; exit }')
	if [ -z "$p" ]; then
		p=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so { print $NF; exit }')
	fi
	if [ -n "$p" ] && [ -e "$p" ]; then echo "$p"; return 0; fi
	for d in ${multiarch:+/usr/lib/$multiarch /lib/$multiarch} /usr/lib /usr/lib64 /usr/local/lib; do
		if [ -e "$d/$so" ]; then echo "$d/$so"; return 0; fi
	done
	return 1
}
lib_jemalloc() { [ -n "${JEMALLOC_LIB:-}" ] && echo "$JEMALLOC_LIB" || find_lib libjemalloc.so.2; }
lib_mimalloc() { [ -n "${MIMALLOC_LIB:-}" ] && echo "$MIMALLOC_LIB" || find_lib libmimalloc.so.2 || find_lib libmimalloc.so.2.0 || find_lib libmimalloc.so; }
lib_tcmalloc() { [ -n "${TCMALLOC_LIB:-}" ] && echo "$TCMALLOC_LIB" || find_lib libtcmalloc_minimal.so.4 || find_lib libtcmalloc.so.4; }

wants() { case " $ALLOCATORS " in *" $1 "*) return 0 ;; esac; return 1; }

# The Debian packages of the allocators in $ALLOCATORS that are missing.
need_allocators() {
	wants jemalloc && ! lib_jemalloc >/dev/null && echo "libjemalloc2"
	wants mimalloc && ! lib_mimalloc >/dev/null && echo "libmimalloc2.0|libmimalloc2"
	wants tcmalloc && ! lib_tcmalloc >/dev/null && echo "libtcmalloc-minimal4|libtcmalloc-minimal4t64|libgoogle-perftools4"
	return 0
}

# apt_install LOGFILE ENTRY...: each entry is a package, or alternatives
# separated by '|' (names differ across releases); only as root with apt,
# never with BENCH_NO_INSTALL=1.
apt_install() {
	local logf=$1 apt_updated=0 alts p ok
	shift
	[ $# -eq 0 ] && return 0
	if [ "${BENCH_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		log "missing (not installing): $*"
		return 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	for alts in "$@"; do
		ok=0
		for p in ${alts//|/ }; do
			if apt-get install -y --no-install-recommends "$p" >>"$logf" 2>&1; then ok=1; break; fi
			if [ $apt_updated = 0 ]; then
				apt_updated=1
				apt-get update >>"$logf" 2>&1
				if apt-get install -y --no-install-recommends "$p" >>"$logf" 2>&1; then ok=1; break; fi
			fi
		done
		[ $ok = 1 ] && log "installed $p" || log "could not install $alts (see $logf)"
	done
}

# allocator_lib NAME: the library to preload for a preloaded allocator
# (empty if not found); fails with status 2 for a name it does not know.
allocator_lib() {
	case $1 in
	mallocng) [ -e "$MALLOCNG_LIB" ] && echo "$MALLOCNG_LIB" ;;
	jemalloc) lib_jemalloc ;;
	mimalloc) lib_mimalloc ;;
	tcmalloc) lib_tcmalloc ;;
	*) return 2 ;;
	esac
	return 0
}

# find_preload NAME: sets LIB to the resolved library of NAME; otherwise
# logs why NAME is skipped, adds it to SKIPPED and fails.
find_preload() {
	LIB=""
	if ! LIB=$(allocator_lib "$1"); then
		log "unknown allocator $1"; SKIPPED+=("$1(unknown)"); return 1
	fi
	if [ -z "$LIB" ]; then
		log "$1: library not found, skipped"; SKIPPED+=("$1(not found)"); return 1
	fi
	LIB=$(readlink -f "$LIB")
}
