#!/bin/sh
# run.sh BUILD - the whole test suite: the C tests, the C tests again on the
# "guard" backend (whose tensor memory the host cannot touch outside the
# backend's own operations: anything that reaches past the device seam
# crashes), then the command-line tests; ends with "N passed, M failed" and
# fails if any test did.
set -u
build=${1:-build}
export TMPDIR="$PWD/$build/tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
"$build/test_convnet" | tee "$TMPDIR/c.log"
# Not on the guard: the test that swaps broken kernels into the backend's
# table (they work below the seam, on the CPU's memory), and the two that cap
# the process's address space (the guard reserves 4 GiB of it).
echo "the C tests on the guard backend:"
CONVNET_TEST_BACKEND=guard "$build/test_convnet" -x gradcheck/catches_broken_backward \
    -x fuzzfound/net_larger_than_memory -x fuzzfound/model_description_larger_than_file |
    sed -E 's/^([0-9]+ passed, [0-9]+ failed)/guard: \1/' | tee "$TMPDIR/guard.log"
sh tests/cli.sh "$build" | tee "$TMPDIR/cli.log"
count() { grep -E "^(cli: |guard: )?[0-9]+ passed, [0-9]+ failed" "$1" | tail -1 | sed -E "s/^(cli: |guard: )?([0-9]+) passed, ([0-9]+) failed/\\$2/"; }
p=$(( $(count "$TMPDIR/c.log" 2) + $(count "$TMPDIR/guard.log" 2) + $(count "$TMPDIR/cli.log" 2) ))
f=$(( $(count "$TMPDIR/c.log" 3) + $(count "$TMPDIR/guard.log" 3) + $(count "$TMPDIR/cli.log" 3) ))
c_done=$(grep -cE "^[0-9]+ passed" "$TMPDIR/c.log")
guard_done=$(grep -cE "^guard: [0-9]+ passed" "$TMPDIR/guard.log")
cli_done=$(grep -cE "^cli: [0-9]+ passed" "$TMPDIR/cli.log")
[ "$c_done" = 1 ] && [ "$guard_done" = 1 ] && [ "$cli_done" = 1 ] ||
    { f=$((f + 1)); echo "a test runner did not finish"; }
rm -rf "$TMPDIR"
echo "$p passed, $f failed"
[ "$f" = 0 ]
