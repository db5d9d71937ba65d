#!/bin/sh
# check_layers.sh - the layering of src/, checked on the built objects: no
# object may reference a symbol that an object of a higher layer defines,
# and two files of one layer may not reference each other (the exported
# entry points aside: malloc.c names them all for static links), except in
# the core layer ("loop" in the table).  The table is src/layers.txt.  Prints
# one line per violation; exit 1 if there is one (0 with LAYERS_REPORT_ONLY
# set), 77 (skipped) without nm or without the objects.  An object of a
# file that src/layers.txt does not list is a violation too.
#
# LAYERS_TABLE   the table (default: src/layers.txt beside this script)
# LAYERS_NM      the nm command (tests/Makefile.am: configure's)
# LAYERS_OBJDIR  the directory of libmallocng_la-*.o (default: src/.libs
#                of the build tree, else src/)
here=$(dirname "$0")
table=${LAYERS_TABLE:-$here/../src/layers.txt}
objdir=${LAYERS_OBJDIR:-../src/.libs}
[ -f "$objdir/libmallocng_la-os_map.o" ] || objdir=$(dirname "$objdir")
# LAYERS_NM: configure's nm (a cross build's reads the target's objects)
nm=${LAYERS_NM:-nm}
command -v ${nm%% *} >/dev/null 2>&1 || { echo "$nm not found: skipped"; exit 77; }
[ -f "$table" ] || { echo "no layer table $table"; exit 1; }
[ -f "$objdir/libmallocng_la-os_map.o" ] || { echo "no objects in $objdir: skipped"; exit 77; }

out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
# Lines "D sym file" (defined) and "U sym file" (referenced), then the table.
srcdir=$(dirname "$table")
for o in "$objdir"/libmallocng_la-*.o; do
	f=${o##*/libmallocng_la-}; f=${f%.o}
	[ -f "$srcdir/$f.c" ] || continue       # left over from a renamed file
	$nm --defined-only "$o" | awk -v f="$f" 'NF == 3 && $2 ~ /[TDBRCV]/ { print "D", $3, f }'
	# exported (default visibility) definitions: the API
	readelf -sW "$o" 2>/dev/null |
	awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print "X", $8 }'
	$nm --undefined-only "$o" | awk -v f="$f" '{ print "U", $NF, f }'
done | awk -v table="$table" '
	BEGIN {
		while ((getline line < table) > 0) {
			n = split(line, w, " ")
			if (n < 2 || w[1] ~ /^#/) continue
			if (w[1] == "loop") loop[w[2]] = 1
			else layer[w[2]] = w[1]
		}
	}
	$1 == "D" { owner[$2] = $3; files[$3] = 1; next }
	$1 == "X" { api[$2] = 1; next }
	{ refs[++nr] = $3 " " $2; files[$3] = 1 }
	END {
		for (f in files)
			if (!(f in layer)) print f ".c has no layer in src/layers.txt"
		for (i = 1; i <= nr; i++) {
			split(refs[i], r, " "); f = r[1]; s = r[2]
			if (!(s in owner) || owner[s] == f) continue
			o = owner[s]
			if (!(f in layer) || !(o in layer)) continue
			if (layer[o] > layer[f])
				print f ".c (layer " layer[f] ") -> " o ".c (layer " layer[o] "): " s
			else if (layer[o] == layer[f] && !(layer[f] in loop) && !(s in api))
				calls[f " " o] = calls[f " " o] " " s
		}
		for (k in calls) {
			split(k, p, " ")
			if ((p[2] " " p[1]) in calls)
				print p[1] ".c <-> " p[2] ".c (layer " layer[p[1]] ", no loop allowed):" calls[k]
		}
	}' | sort > "$out"
[ -s "$out" ] || { echo "layers: no violation"; exit 0; }
cat "$out"
echo "layers: $(wc -l < "$out") violation(s)"
[ -n "$LAYERS_REPORT_ONLY" ] && exit 0
exit 1
