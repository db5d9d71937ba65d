#!/bin/sh
# quickstart.sh - set up, build, and show mallocng serving a real program.
#
# On Debian/Ubuntu as root, installs the build dependencies first.  Then
# builds the library in this tree and runs python3 with it preloaded,
# printing the allocator's statistics when python3 exits.
set -e
cd "$(dirname "$0")"

deps="autoconf automake libtool pkg-config check make gcc python3"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	missing=
	for p in $deps; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "quickstart: installing$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	fi
fi

[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc 2>/dev/null || echo 2)"

echo
echo "== python3 running on mallocng (statistics printed at exit) =="
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3   # not a wrapper script
MALLOCNG_LIB="$PWD/src/.libs/libmallocng.so" ./mallocng --stats "$py" -c '
import json, random
random.seed(1)
data = {str(i): [random.random() for _ in range(20)] for i in range(20000)}
text = json.dumps(data)
words = sorted(set(text.split(",")))[:5]
print("python3 built", len(data), "lists,", len(text), "bytes of JSON; first:", words[0])
'

echo
echo "== built in $PWD; nothing is installed yet =="
echo "run the tests:  make check -j2   (about 1 min on 2 cores)"
echo "install:        sudo make install && sudo ldconfig   (into /usr/local;"
echo "                undo with sudo make uninstall), or build the Debian or"
echo "                RPM packages: see Installing in README"
