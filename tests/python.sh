#!/bin/sh
# python.sh BUILD - tests of the Python bindings (python/convnet.py, ctypes
# over BUILD/libconvnet.so) under Debian's /usr/bin/python3 with numpy:
# tests/python_test.py, run in a scratch directory on data/mnist.  Prints one
# line per test and ends with "python: P passed, F failed, K skipped".
set -u
build="$(cd "${1:-build}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
py=/usr/bin/python3
skip() {
    echo "skip  python bindings: $1"
    echo "python: 0 passed, 0 failed, 1 skipped"
    exit 0
}
[ -x "$py" ] || skip "no $py (scripts/deps.sh --test installs it)"
"$py" -c 'import numpy' 2>/dev/null || skip "no numpy for $py (scripts/deps.sh --test installs python3-numpy)"
# A library built with a sanitizer needs its runtime loaded before Python
# starts; make test judges the bindings.
[ -z "${CONVNET_SANITIZER:-}" ] || skip "not run on a $CONVNET_SANITIZER build (make test runs them)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-python-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" && "$py" "$root/tests/python_test.py" "$build" "$root/data/mnist"
