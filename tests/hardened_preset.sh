#!/bin/sh
# The Check suites again with the option set 'preset' of test_hardened.sh.
exec /bin/sh "$(dirname "$0")/test_hardened.sh" preset
