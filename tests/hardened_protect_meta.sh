#!/bin/sh
# The Check suites again with the option set 'protect_meta' of test_hardened.sh.
exec /bin/sh "$(dirname "$0")/test_hardened.sh" protect_meta
