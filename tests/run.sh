#!/bin/sh
# run.sh BUILD - the whole test suite: the C tests, then the command-line
# tests; ends with "N passed, M failed" and fails if any test did.
set -u
build=${1:-build}
export TMPDIR="$PWD/$build/tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
"$build/test_convnet" | tee "$TMPDIR/c.log"
sh tests/cli.sh "$build" | tee "$TMPDIR/cli.log"
count() { grep -E "^(cli: )?[0-9]+ passed, [0-9]+ failed" "$1" | tail -1 | sed -E "s/^(cli: )?([0-9]+) passed, ([0-9]+) failed/\\$2/"; }
p=$(( $(count "$TMPDIR/c.log" 2) + $(count "$TMPDIR/cli.log" 2) ))
f=$(( $(count "$TMPDIR/c.log" 3) + $(count "$TMPDIR/cli.log" 3) ))
c_done=$(grep -cE "^[0-9]+ passed" "$TMPDIR/c.log")
cli_done=$(grep -cE "^cli: [0-9]+ passed" "$TMPDIR/cli.log")
[ "$c_done" = 1 ] && [ "$cli_done" = 1 ] || { f=$((f + 1)); echo "a test runner did not finish"; }
rm -rf "$TMPDIR"
echo "$p passed, $f failed"
[ "$f" = 0 ]
