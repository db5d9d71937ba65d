#!/bin/sh
# test_hardened.sh - run the Check suites again with other MALLOCNG_OPTIONS:
# the optional hardening (junk, guard pages, random slots, quarantine,
# read-only meta areas) and the decay/zeroing settings must not change any
# documented behaviour.
#
# Usage: test_hardened.sh [SET]...
#   SET names an option set (below); with none, every set is run in turn.
# `make check` runs one thin wrapper per set (hardened_preset.sh,
# hardened_junk.sh, hardened_random.sh, hardened_protect_meta.sh), so that
# the parallel harness runs them side by side and reports each as it ends.
# Prints one line per suite and option set.  MALLOCNG_TEST_EMULATOR (a
# cross build's make check, tests/Makefile.am) runs the suites through it.

suites="test_malloc test_realloc test_aligned test_death test_interpose test_fork test_stats test_attack"
all_sets="preset junk random protect_meta"

# The option set of each name.
set_options() {
	case $1 in
	preset) echo hardened ;;
	junk) echo "decay_ms=0,junk=1,zero_free=1" ;;
	random) echo "random=1,quarantine=4m,decay_ms=50" ;;
	protect_meta) echo protect_meta=1 ;;
	*) return 1 ;;
	esac
}

test $# -gt 0 || set -- $all_sets
for name in "$@"; do
	set_options "$name" >/dev/null || {
		echo "test_hardened.sh: unknown option set '$name' (known: $all_sets)" >&2
		exit 99
	}
done

ran=0
failed=0
for name in "$@"; do
	opts=$(set_options "$name")
	for t in $suites; do
		# fork is slow (test_attack forks 6 000 times); once (hardened)
		# is enough
		test "$t" = test_fork && test "$opts" != hardened && continue
		test "$t" = test_attack && test "$opts" != hardened && continue
		test -x "./$t" || continue
		ran=$((ran + 1))
		# protect_meta makes two mprotect calls of every meta area per
		# operation (300-1300x slower): the timeouts stretch with it
		mult=1
		test "$opts" = protect_meta=1 && mult=8
		# and under an emulator (tests/Makefile.am)
		test -n "$MALLOCNG_TEST_EMULATOR" && mult=$((mult * 4))
		if out=$(MALLOCNG_OPTIONS=$opts CK_TIMEOUT_MULTIPLIER=$mult CK_VERBOSITY=minimal $MALLOCNG_TEST_EMULATOR "./$t" 2>&1); then
			echo "PASS: $t with MALLOCNG_OPTIONS=$opts"
		else
			echo "FAIL: $t with MALLOCNG_OPTIONS=$opts"
			printf '%s\n' "$out" | sed 's/^/  /' | head -30
			failed=$((failed + 1))
		fi
	done
done
if test $ran -eq 0; then
	echo "SKIP: the Check suites are not built"
	exit 77
fi
test $failed -eq 0
