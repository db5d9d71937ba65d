#!/usr/bin/env bash
# Other people's benchmarks, run with each allocator preloaded: stress-ng's
# allocation-heavy stressors, redis-server under redis-benchmark, and gcc
# compiling a generated file.  Normally started by `make bench-external`;
# can also be run by hand:  bash bench/external.sh
#
# Environment (all optional):
#   MALLOCNG_LIB     path of libmallocng.so   (default: ../src/.libs/libmallocng.so
#                    relative to this script, or what `make bench-external` passes)
#   BENCH_REPS       repetitions, medians are reported        (default 5)
#   BENCH_ALLOCATORS subset/order (default: mallocng glibc jemalloc mimalloc tcmalloc)
#   BENCH_EXTERNAL   subset/order of the benchmarks
#                    (default: skiplist malloc malloc-2t redis redis-p16 gcc)
#   BENCH_SCALE      multiplier for every operation count      (default 1)
#   BENCH_TIMEOUT    seconds before one run is killed          (default 60)
#   BENCH_OUTDIR     where results go (default: results/ in BENCH_BUILDDIR or cwd)
#   BENCH_NO_INSTALL 1 = never apt-get install missing tools
#   JEMALLOC_LIB MIMALLOC_LIB TCMALLOC_LIB   override library paths
set -u
export LC_ALL=C # EPOCHREALTIME and printf must use '.' as decimal point

SRCDIR=${BENCH_SRCDIR:-$(cd "$(dirname "$0")" && pwd)}
BUILDDIR=${BENCH_BUILDDIR:-$(pwd)}
OUT=${BENCH_OUTDIR:-$BUILDDIR/results}
REPS=${BENCH_REPS:-5}
SCALE=${BENCH_SCALE:-1}
TIMEOUT=${BENCH_TIMEOUT:-60}
MALLOCNG_LIB=${MALLOCNG_LIB:-$SRCDIR/../src/.libs/libmallocng.so}
ALLOCATORS=${BENCH_ALLOCATORS:-mallocng glibc jemalloc mimalloc tcmalloc}
BENCHMARKS=${BENCH_EXTERNAL:-skiplist malloc malloc-2t redis redis-p16 gcc}
unset LD_PRELOAD

log() { printf '[external] %s\n' "$*" >&2; }
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# results/logs/ belongs to run.sh (which empties it), so logs go elsewhere
LOGS=$OUT/external-logs
RAW=$OUT/external-raw.tsv       # allocator, benchmark, key, value, rep
STATUS=$OUT/external-status.tsv # allocator, benchmark, rep, short reason, detail
mkdir -p "$OUT" "$LOGS"
rm -f "$LOGS"/*
: >"$RAW"
: >"$STATUS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mallocng-external.XXXXXX")
SERVER_PID=""
cleanup() {
	if [ -n "$SERVER_PID" ]; then kill -9 "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

has_b() { case " $BENCHMARKS " in *" $1 "*) return 0 ;; esac; return 1; }
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); print v < 1 ? 1 : v }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

# ---------------------------------------------------------------- tools
. "$SRCDIR/common.sh"

install_missing() {
	local need=()
	{ has_b skiplist || has_b malloc || has_b malloc-2t; } && ! command -v stress-ng >/dev/null 2>&1 && need+=("stress-ng")
	if has_b redis || has_b redis-p16; then
		command -v redis-server >/dev/null 2>&1 || need+=("redis-server")
		command -v redis-benchmark >/dev/null 2>&1 || need+=("redis-tools")
	fi
	has_b gcc && ! command -v gcc >/dev/null 2>&1 && need+=("gcc")
	while read -r e; do need+=("$e"); done < <(need_allocators)
	apt_install "$LOGS/apt.log" ${need[@]+"${need[@]}"}
}
install_missing

# The program whose malloc each benchmark exercises.  For gcc that is cc1
# (the driver and the assembler allocate little); LD_PRELOAD reaches it
# through the environment.
declare -A PROG
PROG[stress-ng]=$(command -v stress-ng)
PROG[redis-server]=$(command -v redis-server)
PROG[cc1]=$(command -v gcc >/dev/null 2>&1 && gcc -print-prog-name=cc1)
command -v redis-benchmark >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || PROG[redis-server]=""
prog_of() {
	case $1 in
	skiplist | malloc | malloc-2t) echo stress-ng ;;
	redis | redis-p16) echo redis-server ;;
	gcc) echo cc1 ;;
	esac
}
ACTIVE_B=()
SKIPPED_B=()
for b in $BENCHMARKS; do
	p=$(prog_of "$b")
	if [ -z "$p" ]; then log "unknown benchmark $b"; SKIPPED_B+=("$b(unknown)"); continue; fi
	if [ -z "${PROG[$p]}" ] || [ ! -x "${PROG[$p]}" ]; then
		log "$b: $p not found, skipped"
		SKIPPED_B+=("$b(no $p)")
		continue
	fi
	ACTIVE_B+=("$b")
done
[ ${#ACTIVE_B[@]} -gt 0 ] || { log "no benchmark to run"; exit 1; }

# ---------------------------------------------------------------- allocators
# PRE[a]: LD_PRELOAD value (empty = none).  redis-server is linked with
# libjemalloc, so "no preload" would measure jemalloc there: its glibc column
# preloads libc.so.6 instead, which puts libc's malloc first in the symbol
# search order (checked below, like every other column).
LIBC=$(find_lib libc.so.6)
declare -A PRE
ACTIVE=()
SKIPPED=()
for a in $ALLOCATORS; do
	case $a in
	glibc) PRE[$a]=""; ACTIVE+=("$a"); continue ;;
	esac
	find_preload "$a" || continue
	PRE[$a]=$LIB
	ACTIVE+=("$a")
done
[ ${#ACTIVE[@]} -gt 0 ] || { log "no allocator to run"; exit 1; }
REF=mallocng
wants mallocng && [ -n "${PRE[mallocng]:-}" ] || REF=${ACTIVE[0]}

preload_for() { # preload_for ALLOCATOR PROGRAM-KEY
	if [ "$1" = glibc ] && [ "$2" = redis-server ]; then echo "$LIBC"; else echo "${PRE[$1]}"; fi
}

# Which library a program's own calls to malloc bind to, as the dynamic
# linker reports it (LD_BIND_NOW makes it resolve every symbol at startup).
malloc_from() { # malloc_from PRELOAD PROGRAM-PATH
	env ${1:+LD_PRELOAD=$1} LD_BIND_NOW=1 LD_DEBUG=bindings "$2" --version </dev/null 2>&1 >/dev/null |
		awk -v prog="$2" '$2 == "binding" && $4 == prog && $11 == "`malloc'"'"'" { print $7; exit }'
}
declare -A BOUND BADBIND # BOUND[a/prog] = library; BADBIND[a/prog] set when it is not the intended one
for p in stress-ng redis-server cc1; do
	[ -n "${PROG[$p]}" ] || continue
	for a in "${ACTIVE[@]}"; do
		pre=$(preload_for "$a" "$p")
		got=$(malloc_from "$pre" "${PROG[$p]}")
		BOUND[$a/$p]=${got:-?}
		# without a preload, stress-ng and cc1 must get glibc's malloc
		want=$(readlink -f "${pre:-$LIBC}")
		if [ -z "$got" ] || [ "$(readlink -f "$got")" != "$want" ]; then
			BADBIND[$a/$p]=1
			log "$a: ${PROG[$p]} takes malloc from ${got:-?}, not $want; its benchmarks are marked failed"
		fi
	done
done
log "allocators: ${ACTIVE[*]}  (reference: $REF; skipped: ${SKIPPED[*]:-none})"
log "benchmarks: ${ACTIVE_B[*]}  (skipped: ${SKIPPED_B[*]:-none})"

# ---------------------------------------------------------------- benchmarks
# stress-ng stressors that spend their time in malloc/free (perf, glibc):
# skiplist (a node calloc'd per insert, all freed each round: ~25 % of the
# time in the allocator) and malloc (random malloc/calloc/realloc/memalign/
# free of up to 1 KiB, up to 64k live: ~45 %; the rest is mostly its
# clock_gettime calls).  tsearch, hsearch, list and randlist were left out:
# under 8 % of their time is in the allocator.  Fixed op counts, so wall
# times are comparable; --malloc-pthreads 1 runs the loop on the main
# thread plus one pthread, sharing the op count.  stress-ng 0.15 (Debian
# 12) writes 8 bytes into malloc blocks smaller than that; mallocng detects
# it and aborts.
# So the malloc rows preload bench/min8.c first, in every column (glibc's
# too), which rounds requests of 0..7 bytes up to 8; without a C compiler
# they run without it, and mallocng's cells show the abort.
MIN8=
if { has_b malloc || has_b malloc-2t; } &&
	"${CC:-cc}" -O2 -shared -fPIC -o "$WORK/min8.so" "$SRCDIR/min8.c" >"$LOGS/min8.log" 2>&1; then
	MIN8=$WORK/min8.so
fi
declare -A SNG_OPS SNG_ARGS
SNG_OPS[skiplist]=40 SNG_ARGS[skiplist]="--skiplist 1 --skiplist-size 65536 --skiplist-ops"
SNG_OPS[malloc]=1000000 SNG_ARGS[malloc]="--malloc 1 --malloc-bytes 1k --malloc-ops"
SNG_OPS[malloc-2t]=2000000 SNG_ARGS[malloc-2t]="--malloc 1 --malloc-bytes 1k --malloc-pthreads 1 --malloc-ops"
# redis: requests per run (~1.5 s each on 2 cores) and pipeline depth.
# Without pipelining the server spends ~75 % of its time in the kernel
# (one read and one write per request); with -P 16 its own work, malloc
# included, weighs more.
declare -A REDIS_N REDIS_P
REDIS_N[redis]=20000 REDIS_P[redis]=1
REDIS_N[redis-p16]=150000 REDIS_P[redis-p16]=16
REDIS_TESTS=set,get,lpush,lpop,sadd,hset
IFS=, read -ra REDIS_TEST_LIST <<<"$REDIS_TESTS"
GCC_FUNCS=300 # ~4800 lines, about 1.5 s at -O2

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
fail() { # fail ALLOCATOR BENCHMARK REP SHORT DETAIL
	printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$STATUS"
	log "FAILED: $1 $2 rep $3: $4 ($5)"
}
# why a run failed: mallocng's own diagnostic if it printed one, else SHORT
reason() { # reason LOGFILE SHORT -> "short<TAB>detail"
	local m
	m=$(grep -m1 '^mallocng: ' "$1" 2>/dev/null)
	if [ -n "$m" ]; then printf 'aborted\t%s' "$m"; return; fi
	m=$(tail -n 1 "$1" 2>/dev/null)
	printf '%s\t%s' "$2" "${m:-no output}"
}
rc_text() { # rc_text RC
	if [ "$1" = 124 ] || [ "$1" = 137 ]; then echo "timeout ${TIMEOUT}s"
	elif [ "$1" -gt 128 ]; then echo "SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
	else echo "exit $1"; fi
}

run_stress() { # run_stress ALLOCATOR REP BENCHMARK
	local a=$1 rep=$2 b=$3 pre ops lg t0 t1 rc done_ops s d
	pre=$(preload_for "$a" stress-ng)
	case $b in malloc*) [ -z "$MIN8" ] || pre="$MIN8${pre:+ $pre}" ;; esac
	ops=$(scaled "${SNG_OPS[$b]}")
	lg=$LOGS/$a-$b-$rep.log
	t0=$EPOCHREALTIME
	# shellcheck disable=SC2086 # SNG_ARGS holds several words
	(cd "$WORK" && timeout -k 5 "$TIMEOUT" env ${pre:+"LD_PRELOAD=$pre"} "${PROG[stress-ng]}" \
		${SNG_ARGS[$b]} "$ops" --metrics-brief --temp-path "$WORK") >"$lg" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	# stress-ng exits 0 even when its worker was killed by abort(), so the
	# op count it reports must be checked as well
	done_ops=$(awk '$2 == "metrc:" && $5 ~ /^[0-9]+$/ { print $5; exit }' "$lg")
	if [ $rc != 0 ]; then
		IFS=$'\t' read -r s d < <(reason "$lg" "$(rc_text $rc)")
		fail "$a" "$b" "$rep" "$s" "$d"
	elif [ "${done_ops:-0}" != "$ops" ]; then
		IFS=$'\t' read -r s d < <(reason "$lg" "${done_ops:-0}/$ops ops")
		fail "$a" "$b" "$rep" "$s" "$d; ${done_ops:-0} of $ops ops done"
	else
		record "$a" "$b" time "$(elapsed "$t0" "$t1")" "$rep"
	fi
}

# A fresh redis-server per run, on a Unix socket in $WORK, with the
# allocator preloaded; the client (redis-benchmark) runs without preload.
run_redis() { # run_redis ALLOCATOR REP BENCHMARK
	local a=$1 rep=$2 b=$3 pre n dir sock lg blog i rc rps ntests info s d cpu0 cpu1
	pre=$(preload_for "$a" redis-server)
	n=$(scaled "${REDIS_N[$b]}")
	dir=$WORK/redis-$a-$b-$rep
	sock=$dir/s
	lg=$LOGS/$a-$b-$rep.server.log
	blog=$LOGS/$a-$b-$rep.log
	mkdir -p "$dir"
	env ${pre:+"LD_PRELOAD=$pre"} "${PROG[redis-server]}" --port 0 --unixsocket "$sock" \
		--save '' --appendonly no --daemonize no --dir "$dir" >"$lg" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < 100; i++)); do
		redis-cli -s "$sock" ping >/dev/null 2>&1 && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if ! redis-cli -s "$sock" ping >/dev/null 2>&1; then
		IFS=$'\t' read -r s d < <(reason "$lg" "no server")
		fail "$a" "$b" "$rep" "$s" "$d"
		stop_server "$sock"
		rm -rf "$dir"
		return
	fi
	cpu0=$(cpu_ticks "$SERVER_PID")
	timeout -k 5 "$TIMEOUT" redis-benchmark -s "$sock" -q -n "$n" -P "${REDIS_P[$b]}" \
		-r 100000 -d 100 -t "$REDIS_TESTS" >"$blog" 2>&1
	rc=$?
	cpu1=$(cpu_ticks "$SERVER_PID")
	# -q prints one "TEST: N requests per second, ..." line per test
	read -r ntests rps < <(tr '\r' '\n' <"$blog" |
		awk '/^[A-Z_]+: [0-9.]+ requests per second/ { k++; s += log($2) } END { printf "%d %.1f\n", k, k ? exp(s / k) : 0 }')
	info=$(redis-cli -s "$sock" info memory 2>/dev/null | tr -d '\r')
	if ! stop_server "$sock"; then
		IFS=$'\t' read -r s d < <(reason "$lg" "server $(rc_text "$STOP_RC")")
		fail "$a" "$b" "$rep" "$s" "$d"
	elif [ $rc != 0 ]; then
		fail "$a" "$b" "$rep" "bench $(rc_text $rc)" "$(tr '\r' '\n' <"$blog" | tail -n 1)"
	elif [ "$ntests" != ${#REDIS_TEST_LIST[@]} ]; then
		fail "$a" "$b" "$rep" "$ntests/${#REDIS_TEST_LIST[@]} tests" "$(tr '\r' '\n' <"$blog" | tail -n 1)"
	else
		record "$a" "$b" rps "$rps" "$rep"
		record "$a" "$b" cpu "$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" 'BEGIN { print t / hz }')" "$rep"
		# used_memory_rss: the server's RSS after the run; allocator_allocated:
		# jemalloc's own count, near zero when another allocator served redis
		awk -F: -v a="$a" -v b="$b" -v r="$rep" '
			$1 == "used_memory_rss" { printf "%s\t%s\trss\t%s\t%s\n", a, b, $2, r }
			$1 == "allocator_allocated" { printf "%s\t%s\tje_allocated\t%s\t%s\n", a, b, $2, r }' <<<"$info" >>"$RAW"
	fi
	rm -rf "$dir"
}
# CPU time (user + system, in clock ticks) a process has used so far; its
# server's CPU depends much less than requests/s on what else the machine runs
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
STOP_RC=0
stop_server() { # stop_server SOCKET: shut down, wait, kill if needed; fails unless exit status 0
	local i
	redis-cli -s "$1" shutdown nosave >/dev/null 2>&1
	for ((i = 0; i < 100; i++)); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID"
	STOP_RC=$?
	SERVER_PID=""
	[ $STOP_RC = 0 ]
}

GEN_C=$WORK/gen.c
# A C file of GCC_FUNCS functions (list walks with table lookups and
# branches) and one function calling them all; fixed seed, so every run
# compiles the same text.
awk -v N="$(scaled $GCC_FUNCS)" 'BEGIN {
	srand(1)
	print "struct rec { struct rec *next; long key; int kind; double w[4]; char name[16]; };"
	for (f = 0; f < N; f++) {
		printf "static const short tab%d[8] = {", f
		for (i = 0; i < 8; i++) printf " %d%s", int(rand() * 1000), i < 7 ? "," : " };\n"
		printf "long f%d(struct rec *r, long a, long b)\n{\n\tlong s = a ^ %d;\n\tdouble d = 0;\n", f, f * 7919
		printf "\tfor (; r; r = r->next) {\n"
		printf "\t\ts += tab%d[(r->key + b) & 7] * r->kind;\n", f
		printf "\t\td += r->w[%d] * %d.5;\n", f % 4, int(rand() * 100)
		printf "\t\tif (r->name[%d] == '"'%c'"')\n\t\t\ts -= %d;\n", f % 16, 97 + int(rand() * 26), int(rand() * 1000)
		printf "\t\telse if (s > %d)\n\t\t\ts = (s >> 3) - b;\n", int(rand() * 100000)
		printf "\t}\n\treturn s + (long)d;\n}\n"
	}
	printf "long entry(struct rec *r, long a)\n{\n\tlong s = 0;\n"
	for (f = 0; f < N; f++) printf "\ts += f%d(r, a, s);\n", f
	print "\treturn s;\n}"
}' >"$GEN_C"
GEN_LINES=$(wc -l <"$GEN_C")

run_gcc() { # run_gcc ALLOCATOR REP
	local a=$1 rep=$2 pre lg t0 t1 rc s d
	pre=$(preload_for "$a" cc1)
	lg=$LOGS/$a-gcc-$rep.log
	rm -f "$WORK/gen.o"
	t0=$EPOCHREALTIME
	timeout -k 5 "$TIMEOUT" env ${pre:+"LD_PRELOAD=$pre"} gcc -O2 -c "$GEN_C" -o "$WORK/gen.o" >"$lg" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	if [ $rc != 0 ] || [ ! -s "$WORK/gen.o" ]; then
		IFS=$'\t' read -r s d < <(reason "$lg" "$(rc_text $rc)")
		fail "$a" gcc "$rep" "$s" "$d"
	else
		record "$a" gcc time "$(elapsed "$t0" "$t1")" "$rep"
	fi
}

run_one() { # run_one ALLOCATOR REP BENCHMARK
	local p
	p=$(prog_of "$3")
	if [ -n "${BADBIND[$1/$p]:-}" ]; then
		fail "$1" "$3" "$2" "not preloaded" "${PROG[$p]} takes malloc from ${BOUND[$1/$p]}"
		return
	fi
	case $3 in
	skiplist | malloc | malloc-2t) run_stress "$1" "$2" "$3" ;;
	redis | redis-p16) run_redis "$1" "$2" "$3" ;;
	gcc) run_gcc "$1" "$2" ;;
	esac
}

# ---------------------------------------------------------------- runs
# Interleaved: each repetition runs every benchmark with every allocator
# (order rotated per repetition), so noise from other jobs hits all alike.
n=${#ACTIVE[@]}
for ((rep = 1; rep <= REPS; rep++)); do
	log "repetition $rep/$REPS ($(($(date +%s) - T_START))s elapsed)"
	for b in "${ACTIVE_B[@]}"; do
		for ((i = 0; i < n; i++)); do
			run_one "${ACTIVE[$(((i + rep - 1) % n))]}" "$rep" "$b"
		done
	done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
pkg_of() { # the package owning a file (dpkg knows some by their /lib, some by their /usr/lib name)
	{ dpkg -S "$1" || dpkg -S "$(readlink -f "$1")"; } 2>/dev/null | awk -F': ' 'NR == 1 { sub(/:.*/, "", $1); print $1 }'
}
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
rev=$(cd "$SRCDIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
TABLE=$OUT/external.txt
{
	echo "mallocng: other people's benchmarks with each allocator preloaded (bench/external.sh)"
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')   git: $rev   reps: $REPS (median)   scale: $SCALE"
	echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), glibc $(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
	echo "load average (1/5/15 min): $LOAD_START at start, $LOAD_END at end"
	printf 'programs:'
	[ -n "${PROG[stress-ng]}" ] && printf ' stress-ng %s;' "$(pkgver stress-ng)"
	[ -n "${PROG[redis-server]}" ] && printf ' redis-server %s (linked with %s), redis-benchmark %s;' \
		"$(pkgver redis-server)" "$(ldd "${PROG[redis-server]}" | awk '/libjemalloc|libtcmalloc|libmimalloc/ { print $1; f = 1 } END { if (!f) print "glibc malloc" }')" "$(pkgver redis-tools)"
	[ -n "${PROG[cc1]}" ] && p=$(pkg_of "${PROG[cc1]}") && printf ' gcc %s (%s %s)' "$(gcc -dumpfullversion)" "$p" "$(pkgver "$p")"
	echo
	echo "allocators:"
	for a in "${ACTIVE[@]}"; do
		if [ "$a" = glibc ]; then
			echo "  glibc: no preload; for redis-server LD_PRELOAD=$LIBC (it is linked with jemalloc)"
		else
			p=$(pkg_of "${PRE[$a]}")
			echo "  $a: LD_PRELOAD=${PRE[$a]}${p:+ ($p $(pkgver "$p"))}"
		fi
	done
	[ ${#SKIPPED[@]} -gt 0 ] && echo "  skipped allocators: ${SKIPPED[*]}"
	[ ${#SKIPPED_B[@]} -gt 0 ] && echo "  skipped benchmarks: ${SKIPPED_B[*]}"
	echo "malloc() of each program bound to (LD_DEBUG=bindings):"
	for p in stress-ng redis-server cc1; do
		[ -n "${PROG[$p]}" ] || continue
		printf '  %s:' "$p"
		for a in "${ACTIVE[@]}"; do printf ' %s=%s%s' "$a" "${BOUND[$a/$p]}" "${BADBIND[$a/$p]:+(WRONG)}"; done
		echo
	done
	echo "cells: median; (ratio): median of the per-repetition ratios, above 1.00x means $REF is faster"
	echo "  or smaller: allocator/$REF for times and RSS, $REF/allocator for requests per second;"
	echo "  geomean over the rows above the first rule"
	echo
} >"$TABLE"

# Cells: the median value over the repetitions.  Ratios: the median of the
# per-repetition ratios (allocator and reference from the same repetition,
# a few seconds apart), which cancels most of the drift of a shared machine.
awk -F'\t' -v ref="$REF" -v allocs="${ACTIVE[*]}" -v benches="${ACTIVE_B[*]}" -v status="$STATUS" \
	-v reps="$REPS" -v glines="$GEN_LINES" '
function has(b) { return (" " benches " ") ~ (" " b " ") }
function fmtv(v, unit) {
	if (unit == "s") return sprintf("%.3fs", v)
	if (unit == "rps") return sprintf("%.0f/s", v)
	if (unit == "M") return sprintf("%.1fM", v / 1048576)
	return v
}
function median(x, m,    i, j, t) { # sorts x[1..m]
	for (i = 2; i <= m; i++) { t = x[i]; j = i - 1; while (j > 0 && x[j] > t) { x[j + 1] = x[j]; j-- } x[j + 1] = t }
	return (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
}
# row LABEL BENCH KEY UNIT INGEO: a cell per allocator; a failed run wins
# over numbers.  For requests per second the ratio is inverted, so that
# above 1 always means the reference is better.  INGEO: enters the geomean.
function row(label, b, key, unit, ingeo,    i, a, r, m, n, v, x, vals, rats, cell, line) {
	line = sprintf("%-30s", label)
	for (i = 1; i <= na; i++) {
		a = A[i]
		m = n = 0
		for (r = 1; r <= reps; r++) {
			if (!((a, b, key, r) in V)) continue
			v = vals[++m] = V[a, b, key, r]
			if (!((ref, b) in F) && (ref, b, key, r) in V && V[ref, b, key, r] > 0 && v > 0)
				rats[++n] = (unit == "rps") ? V[ref, b, key, r] / v : v / V[ref, b, key, r]
		}
		if ((a, b) in F) cell = "FAILED: " F[a, b]
		else if (m == 0) cell = "-"
		else {
			cell = fmtv(median(vals, m), unit)
			if (n) {
				x = median(rats, n)
				cell = cell sprintf(" (%.2fx)", x)
				if (ingeo) { gs[a] += log(x); gk[a]++ }
			}
		}
		line = line sprintf("  %-21s", cell)
	}
	sub(/ +$/, "", line)
	print line
}
BEGIN {
	na = split(allocs, A, " ")
	while ((getline l < status) > 0) {
		split(l, st, "\t")
		if (!((st[1], st[2]) in F)) { F[st[1], st[2]] = st[4]; D[st[1], st[2]] = st[5]; nf++; FK[nf] = st[1] SUBSEP st[2] }
		FN[st[1], st[2]]++
	}
}
{ V[$1, $2, $3, $5] = $4 }
END {
	hdr = sprintf("%-30s", "benchmark")
	for (i = 1; i <= na; i++) hdr = hdr sprintf("  %-21s", A[i])
	sub(/ +$/, "", hdr)
	print hdr
	sep = hdr; gsub(/./, "-", sep); print sep
	if (has("skiplist"))  row("stress-ng skiplist", "skiplist", "time", "s", 1)
	if (has("malloc"))    row("stress-ng malloc 1 thread", "malloc", "time", "s", 1)
	if (has("malloc-2t")) row("stress-ng malloc 2 threads", "malloc-2t", "time", "s", 1)
	if (has("redis"))     row("redis req/s (geomean)", "redis", "rps", "rps", 1)
	if (has("redis-p16")) row("redis -P 16 req/s (geomean)", "redis-p16", "rps", "rps", 1)
	if (has("gcc"))       row(sprintf("gcc -O2 -c (%d lines)", glines), "gcc", "time", "s", 1)
	print sep
	if (has("redis"))     row("redis server CPU", "redis", "cpu", "s", 0)
	if (has("redis-p16")) row("redis -P 16 server CPU", "redis-p16", "cpu", "s", 0)
	if (has("redis"))     row("redis RSS after run", "redis", "rss", "M", 0)
	if (has("redis-p16")) row("redis -P 16 RSS after run", "redis-p16", "rss", "M", 0)
	print sep
	line = sprintf("%-30s", "geomean speed ratio")
	for (i = 1; i <= na; i++) { a = A[i]; line = line sprintf("  %-21s", gk[a] ? sprintf("%.2fx (%d)", exp(gs[a] / gk[a]), gk[a]) : "-") }
	sub(/ +$/, "", line)
	print line
	# which allocator really served redis: jemalloc counts only its own
	line = ""
	for (i = 1; i <= na; i++) {
		m = 0
		for (r = 1; r <= reps; r++) if ((A[i], "redis", "je_allocated", r) in V) vals[++m] = V[A[i], "redis", "je_allocated", r]
		if (!m) continue
		v = median(vals, m)
		line = line sprintf(" %s %s", A[i], v < 1048576 ? sprintf("%.0fK", v / 1024) : sprintf("%.1fM", v / 1048576))
	}
	if (line != "") print "jemalloc stats.allocated inside redis (INFO allocator_allocated; ~0 = jemalloc unused):" line
	if (nf) {
		print ""
		print "FAILED (a cell that failed in any repetition shows no number):"
		for (i = 1; i <= nf; i++) {
			split(FK[i], k, SUBSEP)
			printf "  %s, %s: %s in %d of the reps; first: %s\n", k[1], k[2], F[k[1], k[2]], FN[k[1], k[2]], D[k[1], k[2]]
			if (k[1] == "mallocng" && k[2] ~ /^malloc/ && D[k[1], k[2]] ~ /heap overflow/ && !noted++)
				print "    (a stress-ng bug, not a mallocng one: this version of the malloc stressor allocates\n" \
				      "     blocks smaller than 8 bytes and writes a uintptr_t, 8 bytes, into them; valgrind under\n" \
				      "     glibc reports the same write. Later stress-ng releases allocate at least sizeof(uintptr_t).)"
		}
	}
}' "$RAW" >>"$TABLE"

{
	echo
	echo "benchmarks: stress-ng skiplist = $(scaled "${SNG_OPS[skiplist]}") rounds of inserting 65536 integers into a skip list"
	echo "  (a node allocated each), searching and freeing them; stress-ng malloc = $(scaled "${SNG_OPS[malloc]}") random"
	echo "  malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign/free of up to 1 KiB, up to 65536 live"
	echo "  (2 threads: $(scaled "${SNG_OPS[malloc-2t]}") ops shared by the main thread and one pthread); the stressor also"
	echo "  calls malloc_trim(0) about every 8 ops.  Times are wall times of the stress-ng run."
	if [ -n "$MIN8" ]; then
		echo "  In the malloc rows every column (glibc's too) preloads bench/min8.c first: requests of 0..7"
		echo "  bytes become 8, since this stress-ng writes 8 bytes into every block, the smaller ones too."
	elif has_b malloc || has_b malloc-2t; then
		echo "  The malloc rows ran without bench/min8.c (no C compiler): see FAILED below."
	fi
	echo "  redis = a fresh redis-server on a Unix socket, redis-benchmark"
	echo "  -n $(scaled "${REDIS_N[redis]}") (-P 16: -n $(scaled "${REDIS_N[redis-p16]}")) -r 100000 -d 100 -t $REDIS_TESTS, 50 clients,"
	echo "  the client without preload; server CPU = user + system time of redis-server during"
	echo "  redis-benchmark; RSS = INFO used_memory_rss after the run.  gcc = gcc -O2 -c of a generated"
	echo "  file of $(scaled $GCC_FUNCS) functions (list walks, table lookups)."
	echo "total run time: $(($(date +%s) - T_START))s"
} >>"$TABLE"

cat "$TABLE"
log "results: $TABLE (raw data: $RAW, logs: $LOGS)"
