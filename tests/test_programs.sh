#!/bin/sh
# test_programs.sh - run real programs with and without mallocng preloaded
# and compare their outputs byte for byte.
#
# MALLOCNG_LIB (set by tests/Makefile.am) is the freshly built shared
# library.  A program that is not installed is skipped; the whole test is
# skipped (77) when the library or every program is missing.

lib=${MALLOCNG_LIB:-}
if test -z "$lib" || test ! -f "$lib"; then
	echo "SKIP: no shared library ($lib)"
	exit 77
fi
# A cross build's library (i386 on x86-64, or another architecture under
# an emulator) cannot be preloaded into this machine's programs.
if LD_PRELOAD=$lib /bin/sh -c : 2>&1 | grep -q 'cannot be preloaded'; then
	echo "SKIP: $lib cannot be preloaded into this machine's programs (built for another architecture)"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mallocng-programs.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

ran=0
failed=0

# compare NAME CMD...: run CMD (stdin from $tmp/stdin.NAME if present)
# without mallocng, with it preloaded, and preloaded in hardened mode; the
# three outputs and exit statuses must be identical.
compare() {
	name=$1; shift
	in=/dev/null
	test -f "$tmp/stdin.$name" && in=$tmp/stdin.$name
	env -u LD_PRELOAD -u MALLOCNG_OPTIONS "$@" <"$in" >"$tmp/$name.ref" 2>"$tmp/$name.referr"
	ref_status=$?
	ran=$((ran + 1))
	if test ! -s "$tmp/$name.ref"; then
		echo "FAIL: $name: no output at all (status $ref_status)"
		sed 's/^/  stderr: /' "$tmp/$name.referr" | head -20
		failed=$((failed + 1))
		return
	fi
	for mode in default hardened; do
		opts=
		test $mode = hardened && opts=hardened
		env LD_PRELOAD="$lib" MALLOCNG_OPTIONS="$opts" "$@" <"$in" \
			>"$tmp/$name.out" 2>"$tmp/$name.err"
		status=$?
		if test $status -ne $ref_status; then
			echo "FAIL: $name ($mode): exit status $status with mallocng, $ref_status without"
			sed 's/^/  stderr: /' "$tmp/$name.err" | head -20
			failed=$((failed + 1))
			return
		elif grep -q '^mallocng: ' "$tmp/$name.err"; then
			echo "FAIL: $name ($mode): mallocng diagnostic"
			sed 's/^/  stderr: /' "$tmp/$name.err" | head -20
			failed=$((failed + 1))
			return
		elif ! cmp -s "$tmp/$name.ref" "$tmp/$name.out"; then
			echo "FAIL: $name ($mode): output differs with mallocng"
			diff "$tmp/$name.ref" "$tmp/$name.out" | head -20
			failed=$((failed + 1))
			return
		fi
	done
	echo "PASS: $name ($(wc -c <"$tmp/$name.ref") bytes of identical output, default and hardened)"
}

# The library really gets loaded (otherwise every comparison is vacuous).
if LD_PRELOAD=$lib cat /proc/self/maps | grep -q "$(basename "$lib")"; then
	echo "PASS: preload (library mapped into the process)"
else
	echo "FAIL: preload: $lib is not mapped with LD_PRELOAD"
	exit 1
fi

# python3: dicts, lists, strings, sorting, json; PYTHONMALLOC=malloc sends
# every object allocation to malloc instead of pymalloc's arenas.
py=$(command -v python3 2>/dev/null)
if test -n "$py"; then
	# resolve wrappers (pyenv shims) to the interpreter itself
	py=$("$py" -c 'import sys; print(sys.executable)' 2>/dev/null) || py=
fi
if test -n "$py" && test -x "$py"; then
	cat >"$tmp/work.py" <<'PYEOF'
import json, random
random.seed(12345)
d = {}
for i in range(60000):
    k = "key%d-%s" % (i, "x" * (i % 37))
    d[k] = [i, str(i) * (i % 13), {"n": i, "sq": i * i, "f": i / 7.0}]
words = ["".join(random.choice("abcdefghij") for _ in range(random.randint(1, 40)))
         for _ in range(80000)]
words.sort()
big = " ".join(words)
parts = big.split(" ")
s = json.dumps(d, sort_keys=True)
back = json.loads(s)
assert back == d
lists = [list(range(i % 500)) for i in range(3000)]
lists.sort(key=lambda l: (-len(l), l[:1]))
del d
print(len(s), len(parts), len(big), hash(tuple(parts[:1000])) & 0xffff)
print(json.dumps(sorted(set(words))[:50]))
print(sum(len(l) for l in lists), sum(map(len, words)))
print(json.dumps(back["key77-" + "x" * 3]))
# threads: objects made in one thread, freed in another
from concurrent.futures import ThreadPoolExecutor
def work(k):
    d = {("t%d-%d" % (k, i)): [i] * (i % 20) for i in range(20000)}
    return json.dumps(d, sort_keys=True)
with ThreadPoolExecutor(4) as ex:
    outs = list(ex.map(work, range(16)))
print(sum(map(len, outs)), len(set(outs)))
PYEOF
	compare python3 env PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$py" "$tmp/work.py"
else
	echo "SKIP: python3 not installed"
fi

# sort: a generated 200k-line file.
if command -v sort >/dev/null 2>&1 && command -v awk >/dev/null 2>&1; then
	awk 'BEGIN { x = 1; for (i = 0; i < 200000; i++) {
		x = (x * 1103515245 + 12345) % 2147483648;
		printf "%d %s%d\n", x % 100000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 17), i } }' \
		>"$tmp/stdin.sort"
	# GNU sort sorts with several threads when asked to
	par=
	sort --parallel=2 </dev/null >/dev/null 2>&1 && par=--parallel=2
	compare sort env LC_ALL=C sort $par -k1,1n -k2,2 -S 4M
else
	echo "SKIP: sort not installed"
fi

# sqlite3: table filled through a recursive CTE, aggregate queries.
if command -v sqlite3 >/dev/null 2>&1; then
	cat >"$tmp/stdin.sqlite3" <<'SQLEOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t SELECT x, x % 97, printf('name-%d-%s', x, substr('abcdefghijklmnop', 1, x % 16)), x * 1.5 FROM c;
CREATE INDEX t_grp ON t(grp, name);
SELECT grp, count(*), sum(val), min(name), max(name), group_concat(id % 10, '') FROM t GROUP BY grp ORDER BY grp;
SELECT count(DISTINCT name), avg(length(name)) FROM t;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 AND a.grp = b.grp + 1 GROUP BY a.grp ORDER BY 2 DESC, 1 LIMIT 5;
SQLEOF
	compare sqlite3 sqlite3 :memory:
else
	echo "SKIP: sqlite3 not installed"
fi

# perl: hashes of strings and arrays.
if command -v perl >/dev/null 2>&1; then
	compare perl env PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 perl -e '
		my %h;
		for my $i (1 .. 200000) { $h{"k$i" . ("y" x ($i % 29))} = [$i, "v" x ($i % 50)]; }
		my %inv;
		while (my ($k, $v) = each %h) { push @{$inv{$v->[0] % 1000}}, $k; }
		delete $h{"k$_" . ("y" x ($_ % 29))} for grep { $_ % 3 } 1 .. 200000;
		my $s = join(",", map { scalar(@{$inv{$_}}) } sort { $a <=> $b } keys %inv);
		my $t = 0; $t += length($_->[1]) for values %h;
		print scalar(keys %h), " $t ", length($s), "\n";
		print join("\n", (sort keys %h)[0 .. 20]), "\n";'
else
	echo "SKIP: perl not installed"
fi

# gcc: compile a generated C file at -O2 to assembly (cc1 allocates a lot).
if command -v gcc >/dev/null 2>&1; then
	awk 'BEGIN { print "#include <stddef.h>"
		for (i = 0; i < 300; i++) {
			printf "struct s%d { int a[%d]; struct s%d *next; };\n", i, i % 13 + 1, i
			printf "int f%d(struct s%d *p, int n) { int t = 0; for (int i = 0; i < n; i++) t += p->a[i %% %d] * %d; return p->next ? t + f%d(p->next, n - 1) : t; }\n", i, i, i % 13 + 1, i, i
		} }' >"$tmp/gen.c"
	compare gcc gcc -O2 -S -o - "$tmp/gen.c"
else
	echo "SKIP: gcc not installed"
fi

# git: a repository of generated files, two commits, log with stats and a
# diff (fixed identities and dates: the outputs must match byte for byte).
if command -v git >/dev/null 2>&1; then
	mkdir -p "$tmp/repo"
	for i in $(seq 1 60); do seq $i $((i * 50)) >"$tmp/repo/f$i.txt"; done
	export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t \
		GIT_COMMITTER_EMAIL=t@example.org GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' \
		GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' GIT_CONFIG_NOSYSTEM=1 HOME=$tmp
	(cd "$tmp/repo" && git init -q && git add . && git commit -qm one &&
	 for i in $(seq 1 60 | awk 'NR % 3 == 0'); do seq 7 $((i * 40)) >"f$i.txt"; done &&
	 git commit -qam two) >/dev/null 2>&1
	compare git git -C "$tmp/repo" log --stat -p --no-color
else
	echo "SKIP: git not installed"
fi

# redis-server: a server on a Unix socket, driven by redis-cli (not
# preloaded); the replies to the same commands must match.  Debian's
# redis-server links libjemalloc but calls the standard names (malloc,
# free, realloc, malloc_usable_size), so the preloaded mallocng serves it.
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
	cat >"$tmp/redis.sh" <<'REDISEOF'
#!/bin/sh
# run a fresh redis-server (inheriting LD_PRELOAD), feed it, print replies
dir=$(mktemp -d) || exit 99
sock=$dir/redis.sock
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no \
	--dir "$dir" --logfile "$dir/log" --daemonize no &
pid=$!
i=0
while ! test -S "$sock" && test $i -lt 100; do sleep 0.05; i=$((i + 1)); done
env -u LD_PRELOAD awk 'BEGIN {
	for (i = 0; i < 3000; i++) printf "SET key:%d %s\n", i, substr("abcdefghijklmnopqrstuvwxyz0123456789", 1, i % 36 + 1)
	for (i = 0; i < 2000; i++) printf "RPUSH list:%d %d %d %d\n", i % 50, i, i * 2, i * 3
	for (i = 0; i < 1500; i++) printf "HSET h:%d f%d %d\n", i % 30, i, i * 7
	for (i = 0; i < 3000; i += 3) printf "DEL key:%d\n", i
	for (i = 0; i < 3000; i += 7) printf "APPEND key:%d %s\n", i, "xyzxyzxyzxyzxyzxyzxyzxyz"
	print "DBSIZE"; print "LRANGE list:7 0 -1"; print "HGETALL h:3"
	print "MGET key:1 key:2 key:3 key:700 key:2999"; print "STRLEN key:2998"
}' | env -u LD_PRELOAD redis-cli -s "$sock" >"$dir/out"
st=$?
env -u LD_PRELOAD redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1
wait $pid
cat "$dir/out"
rm -rf "$dir"
exit $st
REDISEOF
	if env -u LD_PRELOAD sh "$tmp/redis.sh" 2>/dev/null | grep -q .; then
		compare redis-server sh "$tmp/redis.sh"
	else
		echo "SKIP: redis-server does not start here"
	fi
else
	echo "SKIP: redis-server not installed"
fi

if test $ran -eq 0; then
	echo "SKIP: none of the programs is installed"
	exit 77
fi
test $failed -eq 0
