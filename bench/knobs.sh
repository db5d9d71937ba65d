#!/bin/bash
# knobs.sh - the cost of each MALLOCNG_OPTIONS hardening knob: the time
# workloads of bench.c run with mallocng preloaded, once per option set,
# interleaved, REPS times; prints the median time of each and its ratio to
# the default configuration (1.00 = free, 2.00 = twice as slow), plus the
# peak RSS of the fragmentation run.
#
#     bash bench/knobs.sh [path/to/libmallocng.so]      (REPS=5 by default)
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")" && pwd)
LIB=${1:-${MALLOCNG_LIB:-$PWD/src/.libs/libmallocng.so}}
REPS=${REPS:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
${CC:-gcc} -O2 -pthread -o "$WORK/bench" "$SRCDIR/bench.c"
sets=(default junk=1 zero_free=1 random=1 quarantine=1m guard=1 protect_meta=1 hardened=1)
loads=(st-churn mt-churn-2 xthread larson realloc-growth large frag)
# protect_meta is orders of magnitude slower on the threaded loads: scaled down
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
scale_for() { case "$1" in protect_meta=1) echo 0.05 ;; *) echo 1 ;; esac; }
for r in $(seq "$REPS"); do
	for w in "${loads[@]}"; do
		for s in "${sets[@]}"; do
			o=$s; test "$o" = default && o=
			sc=$(scale_for "$s")
			t=$(MALLOCNG_OPTIONS=$o LD_PRELOAD=$LIB timeout 300 "$WORK/bench" "$w" "$sc" |
			    awk -v sc="$sc" '$1 == "time" { printf "%.6f", $2 / sc } $1 == "peak_ratio" { printf " %s", $2 }')
			echo "$w $s $t" >>"$WORK/raw"
		done
	done
done
printf '%-15s' workload; printf ' %13s' "${sets[@]}"; echo
for w in "${loads[@]}"; do
	printf '%-15s' "$w"
	base=$(awk -v w="$w" '$1 == w && $2 == "default" { print $3 }' "$WORK/raw" | median)
	for s in "${sets[@]}"; do
		m=$(awk -v w="$w" -v s="$s" '$1 == w && $2 == s { print $3 }' "$WORK/raw" | median)
		printf ' %12.2fx' "$(echo "$m / $base" | bc -l)"
	done
	echo
done
echo "(median time of $REPS runs relative to the default configuration; protect_meta runs at 1/20 scale)"
printf '%-15s' "frag peak/live"
for s in "${sets[@]}"; do
	m=$(awk -v s="$s" '$1 == "frag" && $2 == s && NF > 3 { print $4 }' "$WORK/raw" | median)
	printf ' %13s' "${m:-?}"
done
echo
