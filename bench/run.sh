#!/usr/bin/env bash
# mallocng benchmark runner.  Normally started by `make bench`; can also be
# run by hand from anywhere:  bash bench/run.sh
#
# Environment (all optional):
#   MALLOCNG_LIB     path of libmallocng.so   (default: ../src/.libs/libmallocng.so
#                    relative to this script, or what `make bench` passes)
#   BENCH_REPS       repetitions, medians are reported        (default 5)
#   BENCH_CALLGRIND  0 disables the callgrind instruction counts (default 1)
#   BENCH_ALLOCATORS subset/order, e.g. "mallocng glibc musl"
#                    (default: mallocng glibc jemalloc mimalloc tcmalloc musl)
#   BENCH_WORKLOADS  subset of the timed/memory workloads (default: all)
#   BENCH_THREAD_REPS repetitions of the thread workloads (thread-rounds,
#                    thread-leftover, thread-oversub; default 3, at most
#                    BENCH_REPS): they take ~45 s per repetition for all six
#   BENCH_SCALE      iteration multiplier for the timed runs  (default 1)
#   BENCH_TIMEOUT    seconds before one run is killed (default 30; x4 under
#                    valgrind); a run that timed out is not repeated
#   BENCH_OUTDIR     where results go (default: results/ next to the binaries)
#   BENCH_BUILDDIR   where bench-gcc / bench-musl are built (default: cwd)
#   BENCH_NO_INSTALL 1 = never apt-get install missing tools
#   JEMALLOC_LIB MIMALLOC_LIB TCMALLOC_LIB   override library paths
#   CC MUSL_GCC      compilers (default gcc, musl-gcc)
set -u

SRCDIR=${BENCH_SRCDIR:-$(cd "$(dirname "$0")" && pwd)}
BUILDDIR=${BENCH_BUILDDIR:-$(pwd)}
mkdir -p "$BUILDDIR"
BUILDDIR=$(cd "$BUILDDIR" && pwd)
OUT=${BENCH_OUTDIR:-$BUILDDIR/results}
REPS=${BENCH_REPS:-5}
CALLGRIND=${BENCH_CALLGRIND:-1}
SCALE=${BENCH_SCALE:-1}
TIMEOUT=${BENCH_TIMEOUT:-30}
CC=${CC:-gcc}
MUSL_GCC=${MUSL_GCC:-musl-gcc}
MALLOCNG_LIB=${MALLOCNG_LIB:-$SRCDIR/../src/.libs/libmallocng.so}
ALLOCATORS=${BENCH_ALLOCATORS:-mallocng glibc jemalloc mimalloc tcmalloc musl}
WORKLOADS=${BENCH_WORKLOADS:-st-churn mt-churn-1 mt-churn-2 xthread larson realloc-growth large buffers frag once thread-rounds thread-leftover thread-oversub mt-churn-8 mt-churn-32 xthread-8 xthread-32 larson-8 larson-32}
# 8 and 32 threads on the machine's cores (the 2-thread work split between
# them): time rows and lock counts, not in the geometric mean, which keeps
# the rows it has always had
# threads that come and go (issue 18): time and memory rows, not in the
# geometric mean; run BENCH_THREAD_REPS times only.  "thread-rounds" runs
# thread-rounds-200 once, whose checkpoints give the 25/100/200-round rows.
THREAD_WORKLOADS="thread-rounds thread-leftover thread-oversub"
THREAD_REPS=${BENCH_THREAD_REPS:-3}
[ "$THREAD_REPS" -gt "$REPS" ] && THREAD_REPS=$REPS
# time workloads that enter the geometric mean; frag is a memory workload
# (its peak and residual RSS), whose time is also shown as a second mean
GEO_WORKLOADS="st-churn mt-churn-1 mt-churn-2 xthread larson realloc-growth large buffers"
unset LD_PRELOAD

log() { printf '[bench] %s\n' "$*" >&2; }
T_START=$(date +%s)

mkdir -p "$OUT" "$OUT/logs"
RAW=$OUT/raw.tsv
STATUS=$OUT/status.tsv
REPORT_ONLY=${BENCH_REPORT_ONLY:-0} # 1 = only rebuild the report from raw.tsv
if [ "$REPORT_ONLY" != 1 ]; then
	rm -f "$OUT"/logs/* "$RAW" "$STATUS"
	: >"$RAW"
	: >"$STATUS"
fi

# ---------------------------------------------------------------- tools
. "$SRCDIR/common.sh"

has_w() { case " $WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }

install_missing() {
	local need=()
	command -v gnuplot >/dev/null 2>&1 || need+=("gnuplot-nox|gnuplot")
	while read -r e; do need+=("$e"); done < <(need_allocators)
	wants musl && ! command -v "$MUSL_GCC" >/dev/null 2>&1 && need+=("musl-tools")
	[ "$CALLGRIND" != 0 ] && ! command -v valgrind >/dev/null 2>&1 && need+=("valgrind")
	apt_install "$OUT/logs/apt.log" ${need[@]+"${need[@]}"}
}
install_missing

# ---------------------------------------------------------------- build
BIN_GCC=$BUILDDIR/bench-gcc
BIN_MUSL=$BUILDDIR/bench-musl
log "building $BIN_GCC"
if ! $CC -O2 -g -pthread -o "$BIN_GCC" "$SRCDIR/bench.c" 2>"$OUT/logs/build-gcc.log"; then
	cat "$OUT/logs/build-gcc.log" >&2
	log "cannot build bench.c with $CC"
	exit 1
fi
HAVE_MUSL=0
if wants musl; then
	if command -v "$MUSL_GCC" >/dev/null 2>&1 &&
		"$MUSL_GCC" -static -O2 -g -pthread -o "$BIN_MUSL" "$SRCDIR/bench.c" 2>"$OUT/logs/build-musl.log"; then
		HAVE_MUSL=1
	else
		log "musl-gcc not available or failed: skipping musl"
	fi
fi

# ---------------------------------------------------------------- allocators
# For each usable allocator: BIN[a], PRE[a] (LD_PRELOAD value or empty)
declare -A BIN PRE SKIP
BIN[cpu]=$BIN_GCC PRE[cpu]="" # pseudo-allocator for the no-malloc CPU baseline
ACTIVE=()
SKIPPED=()
check_preload() { # check_preload NAME LIB
	local got want
	got=$(env LD_PRELOAD="$2" "$BIN_GCC" whoami 2>"$OUT/logs/whoami-$1.err" | awk '$1 == "malloc_from" { print $2 }')
	want=$(readlink -f "$2")
	[ -n "$got" ] && [ "$(readlink -f "$got")" = "$want" ]
}
for a in $ALLOCATORS; do
	case $a in
	glibc) BIN[$a]=$BIN_GCC PRE[$a]=""; ACTIVE+=("$a"); continue ;;
	musl)
		if [ $HAVE_MUSL = 1 ]; then BIN[$a]=$BIN_MUSL PRE[$a]=""; ACTIVE+=("$a"); else SKIPPED+=("musl(no musl-gcc)"); fi
		continue ;;
	esac
	find_preload "$a" || continue
	lib=$LIB
	if ! check_preload "$a" "$lib"; then
		log "$a: LD_PRELOAD=$lib does not take over malloc, skipped (see $OUT/logs/whoami-$a.err)"
		SKIPPED+=("$a(preload failed)")
		continue
	fi
	BIN[$a]=$BIN_GCC PRE[$a]=$lib
	ACTIVE+=("$a")
done
[ ${#ACTIVE[@]} -gt 0 ] || { log "no allocator to run"; exit 1; }
REF=mallocng
wants mallocng && [ -n "${BIN[mallocng]:-}" ] || REF=${ACTIVE[0]}
log "allocators: ${ACTIVE[*]}  (reference: $REF; skipped: ${SKIPPED[*]:-none})"

cmdline() { # printable reproduction command
	local a=$1; shift
	if [ -n "${PRE[$a]}" ]; then echo "LD_PRELOAD=${PRE[$a]} ${BIN[$a]} $*"; else echo "${BIN[$a]} $*"; fi
}

NOASLR=()
if setarch "$(uname -m)" -R true 2>/dev/null; then NOASLR=(setarch "$(uname -m)" -R); fi

# run_one ALLOC REP WORKLOAD ARG [WRAPPER...]: appends key/values to raw.tsv
run_one() {
	local a=$1 rep=$2 w=$3 arg=$4; shift 4
	local out=$OUT/logs/.out err=$OUT/logs/$a-$w-$rep.err rc sig tmo=$TIMEOUT
	[ "$rep" = cg ] && tmo=$((TIMEOUT * 4))
	if [ -n "${SKIP[$a/$w]:-}" ]; then
		printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$w" "$rep" "${SKIP[$a/$w]}(skipped)" "$(cmdline "$a" "$w" $arg)" >>"$STATUS"
		return 1
	fi
	timeout -k 5 "$tmo" env ${PRE[$a]:+LD_PRELOAD=${PRE[$a]}} "$@" "${BIN[$a]}" "$w" $arg >"$out" 2>"$err"
	rc=$?
	if [ $rc = 0 ] && grep -q . "$out"; then
		awk -v a="$a" -v w="$w" -v r="$rep" -v sfx="${KEY_SUFFIX:-}" 'NF == 2 { print a "\t" w "\t" $1 sfx "\t" $2 "\t" r }' "$out" >>"$RAW"
		[ -s "$err" ] || rm -f "$err"
		return 0
	fi
	if [ $rc = 124 ] || [ $rc = 137 ]; then sig=TIMEOUT SKIP[$a/$w]=TIMEOUT
	elif [ $rc -gt 128 ]; then sig=$(kill -l $((rc - 128)) 2>/dev/null || echo "signal$((rc - 128))"); sig=SIG${sig#SIG}
	else sig="exit$rc"; fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$w" "$rep" "$sig" "$(cmdline "$a" "$w" $arg)" >>"$STATUS"
	log "FAILED: $a $w rep $rep: $sig  ($(cmdline "$a" "$w" $arg))"
	return 1
}

# ---------------------------------------------------------------- timed runs
n=${#ACTIVE[@]}
[ "$REPORT_ONLY" = 1 ] && REPS_RUN=0 || REPS_RUN=$REPS
for ((rep = 1; rep <= REPS_RUN; rep++)); do
	log "repetition $rep/$REPS ($(($(date +%s) - T_START))s elapsed)"
	for w in $WORKLOADS; do
		case " $THREAD_WORKLOADS " in *" $w "*) [ "$rep" -le "$THREAD_REPS" ] || continue ;; esac
		if [ "$w" = mt-churn-1 ] || { [ "$w" = mt-churn-2 ] && ! has_w mt-churn-1; }; then
			# how many cores are really free right now: no-malloc 1 vs 2 threads
			run_one cpu "$rep" spin-1 "$SCALE"
			run_one cpu "$rep" spin-2 "$SCALE"
		fi
		for ((i = 0; i < n; i++)); do
			a=${ACTIVE[$(((i + rep - 1) % n))]} # rotate the order every rep
			if [ "$w" = once ]; then
				run_one "$a" "$rep" once-none "" "${NOASLR[@]}"
				run_one "$a" "$rep" once-malloc "" "${NOASLR[@]}"
			elif [ "$w" = thread-rounds ]; then
				run_one "$a" "$rep" thread-rounds-200 "$SCALE"
			else
				run_one "$a" "$rep" "$w" "$SCALE"
			fi
		done
	done
done

# ---------------------------------------------------------------- steady state
# The lock counts of the 8- and 32-thread rows are mostly what each thread's
# birth and exit cost (a heap, its first groups, its bundle), spread over a
# thread's few tens of thousands of calls.  Once, mallocng only: the same
# rows with threads that live STEADY_SCALE times longer (keys *_x16).
STEADY_SCALE=16
if [ "$REPORT_ONLY" != 1 ] && [ -n "${BIN[mallocng]:-}" ] && [ "$REPS_RUN" -gt 0 ]; then
	for w in xthread-8 xthread-32 larson-8 larson-32; do
		has_w "$w" || continue
		log "steady state: mallocng $w at scale $STEADY_SCALE x $SCALE"
		KEY_SUFFIX=_x16 run_one mallocng 1 "$w" "$(awk -v s="$SCALE" -v k=$STEADY_SCALE 'BEGIN { print s * k }')"
	done
fi

# ---------------------------------------------------------------- callgrind
HAVE_CG=0
[ "$REPORT_ONLY" = 1 ] && grep -q "	cg$" "$RAW" && HAVE_CG=1
if [ "$REPORT_ONLY" != 1 ] && [ "$CALLGRIND" != 0 ] && command -v valgrind >/dev/null 2>&1; then
	HAVE_CG=1
	for w in st-churn realloc-growth; do
		case $w in
		st-churn) fn='churn_loop*' sc=0.02 ;;
		realloc-growth) fn='realloc_loop*' sc=0.1 ;;
		esac
		case " $WORKLOADS " in *" $w "*) ;; *) continue ;; esac
		for a in "${ACTIVE[@]}"; do
			log "callgrind: $a $w"
			cgf=$OUT/logs/callgrind-$a-$w.out
			run_one "$a" cg "$w" "$sc" valgrind -q --tool=callgrind --callgrind-out-file="$cgf" \
				--toggle-collect="$fn" || continue
			ir=$(awk '$1 == "totals:" { print $2; f = 1; exit } $1 == "summary:" { s = $2 } END { if (!f && s != "") print s }' "$cgf" 2>/dev/null)
			[ -n "$ir" ] && printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$w" ir "$ir" cg >>"$RAW"
		done
	done
fi

# ---------------------------------------------------------------- report
MED=$OUT/medians.tsv
# median of every (allocator, workload, key) over the timed repetitions
awk -F'\t' '
	$5 == "cg" { key = $1 SUBSEP $2 SUBSEP "cg_" $3; v[key, ++c[key]] = $4; next }
	{ key = $1 SUBSEP $2 SUBSEP $3; v[key, ++c[key]] = $4 }
	END {
		for (k in c) {
			m = c[k]
			for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
			for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
			med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
			split(k, p, SUBSEP)
			printf "%s\t%s\t%s\t%.10g\t%d\n", p[1], p[2], p[3], med, m
		}
	}' "$RAW" | sort >"$MED"

# the "once" delta is computed per repetition, then the median is taken
awk -F'\t' '
	$2 == "once-none" && $3 == "rss_kib" { none[$1, $5] = $4 }
	$2 == "once-malloc" && $3 == "rss_kib" { mal[$1, $5] = $4 }
	END { for (k in mal) if (k in none) { split(k, p, SUBSEP); printf "%s\tonce\tdelta_kib\t%s\t%s\n", p[1], mal[k] - none[k], p[2] } }
' "$RAW" >"$OUT/once.tsv"
awk -F'\t' '
	{ key = $1; v[key, ++c[key]] = $4 }
	END { for (k in c) { m = c[k]; for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
		for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
		printf "%s\tonce\tdelta_kib\t%.10g\t%d\n", k, (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2, m } }
' "$OUT/once.tsv" | sort >>"$MED"

cpu=$(awk -F': *' '/^model name/ { n = $2 } /^cpu family/ { f = $2 } /^model[ \t]*:/ { m = $2 } /^$/ { exit } END { printf "%s (family %s model %s)", n, f, m }' /proc/cpuinfo 2>/dev/null)
rev=$(cd "$SRCDIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
TABLE=$OUT/latest.txt
CHARTDATA=$OUT/ratios.dat
{
	echo "mallocng benchmark results"
	thr=""
	for w in $THREAD_WORKLOADS; do has_w "$w" && thr="   thread workloads: $THREAD_REPS reps"; done
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')   git: $rev   reps: $REPS (median)$thr   scale: $SCALE"
	echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr), glibc $(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
	for a in "${ACTIVE[@]}"; do
		case $a in
		glibc) echo "  $a: no preload (system malloc)" ;;
		musl) echo "  $a: $BIN_MUSL (musl-gcc -static, musl $(dpkg-query -W -f='${Version}' musl 2>/dev/null || echo '?'))" ;;
		*)
			pkg=$(dpkg -S "${PRE[$a]}" 2>/dev/null | awk -F: 'NR == 1 { print $1 }')
			ver=${pkg:+$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)}
			echo "  $a: LD_PRELOAD=${PRE[$a]}${pkg:+ ($pkg $ver)}" ;;
		esac
	done
	[ ${#SKIPPED[@]} -gt 0 ] && echo "  skipped: ${SKIPPED[*]}"
	echo "cells: median (ratio = allocator / $REF; >1.00x means $REF is faster or smaller)"
	echo
} >"$TABLE"

awk -F'\t' -v ref="$REF" -v allocs="${ACTIVE[*]}" -v workloads="$WORKLOADS" \
	-v geo="$GEO_WORKLOADS" -v have_cg="$HAVE_CG" -v chart="$CHARTDATA" -v status="$STATUS" '
function has(w) { return (" " workloads " ") ~ (" " w " ") }
function fmtv(v, unit) {
	if (unit == "s") return sprintf("%.3fs", v)
	if (unit == "K") return sprintf("%dK", v)
	if (unit == "x") return sprintf("%.2f", v)
	if (unit == "i") return sprintf("%.1f", v)
	return v
}
# row: label, workload, key, unit, in-chart(1/0)
function row(label, w, key, unit, inchart,    i, a, v, r, cell, line, fails, dl) {
	line = sprintf("%-26s", label)
	dl = label
	dline = dl
	for (i = 1; i <= na; i++) {
		a = A[i]
		fails = F[a, w]
		if ((a, w, key) in M) {
			v = M[a, w, key]
			cell = fmtv(v, unit)
			if ((ref, w, key) in M && M[ref, w, key] > 0 && v > 0) {
				r = v / M[ref, w, key]
				cell = cell sprintf(" (%.2fx)", r)
				if (a != ref) dline = dline "\t" sprintf("%.4f", r)
			} else if (a != ref) dline = dline "\t?"
			if (fails != "") cell = cell "!"
		} else {
			cell = (fails != "") ? fails : "-"
			if (a != ref) dline = dline "\t?"
		}
		line = line sprintf("  %-18s", cell)
	}
	sub(/ +$/, "", line)
	print line
	if (inchart) print dline > chart
}
BEGIN {
	na = split(allocs, A, " ")
	while ((getline l < status) > 0) {
		split(l, st, "\t")
		# remember the first failure kind per (allocator, workload)
		ww = st[2]; if (ww ~ /^once-/) ww = "once"
		if (!((st[1], ww) in F)) F[st[1], ww] = st[4]
		nfail++
		FL[nfail] = sprintf("  %s %s rep %s: %s   reproduce: %s", st[1], st[2], st[3], st[4], st[5])
	}
}
{ M[$1, $2, $3] = $4 }
END {
	hdr = sprintf("%-26s", "workload")
	ch = "workload"
	for (i = 1; i <= na; i++) { hdr = hdr sprintf("  %-18s", A[i]); if (A[i] != ref) ch = ch "\t" A[i] }
	sub(/ +$/, "", hdr)
	print hdr
	print ch > chart
	sep = hdr; gsub(/./, "-", sep); print sep
	if (has("st-churn"))       row("st-churn", "st-churn", "time", "s", 1)
	if (has("mt-churn-1"))     row("mt-churn 1 thread", "mt-churn-1", "time", "s", 1)
	if (has("mt-churn-2"))     row("mt-churn 2 threads", "mt-churn-2", "time", "s", 1)
	if (has("mt-churn-1") && has("mt-churn-2")) {
		for (i = 1; i <= na; i++) { a = A[i]
			if ((a, "mt-churn-1", "time") in M && (a, "mt-churn-2", "time") in M && M[a, "mt-churn-1", "time"] > 0)
				M[a, "mt-scaling", "x"] = M[a, "mt-churn-2", "time"] / M[a, "mt-churn-1", "time"]
			if (F[a, "mt-churn-2"] != "") F[a, "mt-scaling"] = F[a, "mt-churn-2"] }
		row("mt scaling t2/t1 (1=ideal)", "mt-scaling", "x", "x", 0)
		if (("cpu", "spin-1", "time") in M && ("cpu", "spin-2", "time") in M && M["cpu", "spin-1", "time"] > 0)
			printf "  (CPU baseline: the same t2/t1 for a loop without malloc = %.2f; 1.00 = two idle cores, 2.00 = one)\n", M["cpu", "spin-2", "time"] / M["cpu", "spin-1", "time"]
	}
	if (has("xthread"))        row("xthread", "xthread", "time", "s", 1)
	if (has("larson"))         row("larson", "larson", "time", "s", 1)
	split("mt-churn-8 mt-churn-32 xthread-8 xthread-32 larson-8 larson-32", MW, " ")
	for (j = 1; j <= 6; j++) if (has(MW[j])) row(MW[j], MW[j], "time", "s", 0)
	if (has("realloc-growth")) row("realloc-growth", "realloc-growth", "time", "s", 1)
	if (has("large"))          row("large", "large", "time", "s", 1)
	if (has("buffers"))        row("buffers", "buffers", "time", "s", 1)
	if (has("frag")) {
		row("frag", "frag", "time", "s", 0)
		row("frag peakRSS/peakLive", "frag", "peak_ratio", "x", 1)
		row("frag RSS after free (KiB)", "frag", "residual_kib", "K", 1)
	}
	if (has("once")) {
		row("once: malloc(1) dRSS (KiB)", "once", "delta_kib", "K", 0)
		row("once: total RSS (KiB)", "once-malloc", "rss_kib", "K", 1)
		row("once: anonymous RSS (KiB)", "once-malloc", "anon_kib", "K", 1)
	}
	if (has("thread-rounds")) {
		split("25 100 200", TR, " ")
		for (j = 1; j <= 3; j++) {
			row("thread-rounds-" TR[j] " time", "thread-rounds-200", "time_r" TR[j], "s", 0)
			row("thread-rounds-" TR[j] " peak RSS", "thread-rounds-200", "hwm_kib_r" TR[j], "K", TR[j] == 200)
			row("thread-rounds-" TR[j] " RSS end", "thread-rounds-200", "rss_end_kib_r" TR[j], "K", 0)
		}
	}
	if (has("thread-leftover")) {
		row("thread-leftover time", "thread-leftover", "time", "s", 0)
		row("thread-leftover peak RSS", "thread-leftover", "hwm_kib", "K", 1)
	}
	if (has("thread-oversub")) {
		row("thread-oversub time", "thread-oversub", "time", "s", 0)
		row("thread-oversub peak RSS", "thread-oversub", "hwm_kib", "K", 1)
	}
	# the global lock and the span lock (mallocng only: its statistics
	# count acquisitions), per million allocator calls in the measured part
	split("st-churn mt-churn-2 mt-churn-8 mt-churn-32 xthread xthread-8 xthread-32 larson larson-8 larson-32", LW, " ")
	for (j = 1; j <= 10; j++) { w = LW[j]
		if (!has(w)) continue
		for (i = 1; i <= na; i++) { a = A[i]
			if ((a, w, "locks") in M && M[a, w, "calls"] > 0) M[a, w, "lock_pm"] = M[a, w, "locks"] * 1e6 / M[a, w, "calls"]
			if ((a, w, "span_locks") in M && M[a, w, "calls"] > 0) M[a, w, "span_pm"] = M[a, w, "span_locks"] * 1e6 / M[a, w, "calls"] }
		if ((ref, w, "lock_pm") in M) row(w " locks/M calls", w, "lock_pm", "i", 0)
		if ((ref, w, "span_pm") in M) row(w " span locks/M", w, "span_pm", "i", 0) }
	# the same with threads that live 16 times longer (mallocng only)
	for (j = 1; j <= 10; j++) { w = LW[j]
		if (!has(w) || !((ref, w, "calls_x16") in M) || M[ref, w, "calls_x16"] <= 0) continue
		if ((ref, w, "locks_x16") in M) M[ref, w, "lock_pm_x16"] = M[ref, w, "locks_x16"] * 1e6 / M[ref, w, "calls_x16"]
		if ((ref, w, "span_locks_x16") in M) M[ref, w, "span_pm_x16"] = M[ref, w, "span_locks_x16"] * 1e6 / M[ref, w, "calls_x16"]
		if ((ref, w, "lock_pm_x16") in M) row(w " x16 locks/M", w, "lock_pm_x16", "i", 0)
		if ((ref, w, "span_pm_x16") in M) row(w " x16 span locks/M", w, "span_pm_x16", "i", 0) }
	if (have_cg == 1) {
		if (has("st-churn"))       row("st-churn instr/op", "st-churn", "cg_ir_per_op", "i", 1)
		if (has("realloc-growth")) row("realloc-growth instr/op", "realloc-growth", "cg_ir_per_op", "i", 1)
	}
	# geometric mean of time ratios, per column
	ng = split(geo, G, " ")
	line = sprintf("%-26s", "geomean time ratio")
	for (i = 1; i <= na; i++) { a = A[i]; s = 0; k = 0
		for (j = 1; j <= ng; j++) { w = G[j]
			if ((a, w, "time") in M && (ref, w, "time") in M && M[ref, w, "time"] > 0) { s += log(M[a, w, "time"] / M[ref, w, "time"]); k++ } }
		line = line sprintf("  %-18s", k ? sprintf("%.2fx (%d)", exp(s / k), k) : "-") }
	print sep
	sub(/ +$/, "", line)
	print line
	# reference vs best of glibc/jemalloc/mimalloc per workload
	s = 0; k = 0; det = ""
	for (j = 1; j <= ng; j++) { w = G[j]; best = ""; bn = ""
		if (!((ref, w, "time") in M)) continue
		split("glibc jemalloc mimalloc", B, " ")
		for (b = 1; b <= 3; b++) if ((B[b], w, "time") in M && (best == "" || M[B[b], w, "time"] < best)) { best = M[B[b], w, "time"]; bn = B[b] }
		if (best == "") continue
		s += log(M[ref, w, "time"] / best); k++
		det = det sprintf("    %-16s %s %.3fs vs best %-8s %.3fs  -> %.2fx\n", w, ref, M[ref, w, "time"], bn, best, M[ref, w, "time"] / best)
	}
	if (k) {
		g = exp(s / k)
		printf "geomean %s / best-of(glibc,jemalloc,mimalloc) over %d time workloads: %.2fx (%s)\n", ref, k, g, g <= 1 ? sprintf("%s is %.2fx faster", ref, 1 / g) : sprintf("%s is %.2fx slower", ref, g)
		printf "%s", det
		# frag (its time) too, when it was run
		best = ""; bn = ""; w = "frag"
		for (b = 1; b <= 3; b++) if ((B[b], w, "time") in M && (best == "" || M[B[b], w, "time"] < best)) { best = M[B[b], w, "time"]; bn = B[b] }
		if (best != "" && (ref, w, "time") in M) {
			printf "    %-16s %s %.3fs vs best %-8s %.3fs  -> %.2fx (memory workload; with its time: %.2fx over %d)\n", w, ref, M[ref, w, "time"], bn, best, M[ref, w, "time"] / best, exp((s + log(M[ref, w, "time"] / best)) / (k + 1)), k + 1
		}
	}
	if (nfail) { print ""; print "FAILED RUNS (cells marked ! had failures; a cell showing only a signal failed every rep):"; for (i = 1; i <= nfail; i++) print FL[i] }
}' < <(
	cat "$MED"
	# instructions per operation from callgrind
	awk -F'\t' '$5 == "cg" && $3 == "ops" { ops[$1, $2] = $4 } $5 == "cg" && $3 == "ir" { ir[$1, $2] = $4 }
		END { for (k in ir) if (k in ops && ops[k] > 0) { split(k, p, SUBSEP); printf "%s\t%s\tcg_ir_per_op\t%.4f\t1\n", p[1], p[2], ir[k] / ops[k] } }' "$RAW"
) >>"$TABLE"

{
	echo
	echo "workloads: st-churn = 8M free+malloc pairs (8..1024 B, 10k live); mt-churn-N = same per thread on N threads (8, 32: the 2-thread work split between them);"
	echo "  xthread = 1.5M objects malloc'd by a producer and freed by a consumer thread (-8, -32: 4, 16 pairs sharing them); larson = 2 threads (-8, -32: 8, 32 sharing the work) x 4 generations"
	echo "  replacing random slots of a shared 20k-slot array; locks/M calls = acquisitions of mallocng's global lock (span locks/M: of its span lock) per
  million malloc/free calls in the measured part (mt-churn: the loops only, after every thread has filled); x16 = one run at 16 times the"
	echo "  scale (threads that live 16 times longer: what remains of each thread's birth and exit); realloc-growth = 4 buffers grown to 1 MiB by 16..496 B steps;"
	echo "  large = 600 x malloc/touch/free of 64 KiB..16 MiB; buffers = 20k rounds of 1..4 buffers of 32..128 KiB taken,"
	echo "  every page written, given back; frag = ~136 MiB of mixed sizes freed/re-allocated in patterns;"
	echo "  once = RSS after one malloc(1) (dRSS = minus the same process without malloc, ASLR off; total RSS"
	echo "  includes code pages faulted in, which move with the libraries' layout; anonymous RSS does not);"
	echo "  instr/op = callgrind instructions per free+malloc pair / per realloc call (noise-free)."
	echo "  thread-rounds-N = N rounds of 4 short-lived threads making 1000..8000 objects of 8 B..32 KiB"
	echo "  (log-uniform, 1/200 of 512 KiB), keeping half until exit, freeing a quarter at once, swapping a"
	echo "  quarter into a shared 1000-slot table; main frees every other slot between rounds (one run of"
	echo "  200 rounds, figures after 25/100/200); thread-leftover = 50k threads (4 at a time) each swapping"
	echo "  one 128 B object into a 1000-slot ring; thread-oversub = 8 threads on the cores, each replaced"
	echo "  after 25k malloc+swap+free ops on a shared 8192-slot table (20 generations); peak RSS = VmHWM,"
	echo "  RSS end = VmRSS after the last round / thread, both of the whole process in KiB."
	echo "total run time: $(($(date +%s) - T_START))s"
} >>"$TABLE"

# ---------------------------------------------------------------- chart
if command -v gnuplot >/dev/null 2>&1 && [ "$(wc -l <"$CHARTDATA")" -gt 1 ] && [ $n -gt 1 ]; then
	term=png
	gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && term=pngcairo
	yr=$(awk -F'\t' 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "?" && $i > 0) { if (mn == "" || $i < mn) mn = $i; if ($i > mx) mx = $i } }
		END { if (mn == "" || mn > 1) mn = 1; if (mx < 1) mx = 1
			lo = 1; while (lo > mn / 1.2) lo /= 2; hi = 2; while (hi < mx * 1.2) hi *= 2
			printf "ymin=%g; ymax=%g", lo, hi }' "$CHARTDATA")
	if gnuplot -e "datafile='$CHARTDATA'; outfile='$OUT/ratios.png'; ref='$REF'; term='$term'; ncols=$((n - 1)); $yr" \
		"$SRCDIR/plot.gp" 2>"$OUT/logs/gnuplot.log"; then
		log "chart: $OUT/ratios.png"
	else
		log "gnuplot failed, see $OUT/logs/gnuplot.log"
	fi
else
	log "no chart (gnuplot missing or nothing to compare)"
fi

rm -f "$OUT/logs/.out"
cat "$TABLE"
log "results: $TABLE"
log "copy them with: cp $TABLE <dest>  (or: make -C bench bench-publish to update doc/)"
