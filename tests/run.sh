#!/bin/sh
# run.sh BUILD - the whole test suite: the C tests, the C tests again on the
# "guard" backend (whose tensor memory the host cannot touch outside the
# backend's own operations: anything that reaches past the device seam
# crashes), then the command-line tests (plan's among them), make install's, the ONNX export's,
# the examples', the API reference's, the Python bindings' and --device
# cuda's (tests/cuda.sh);
# ends with "N passed, M failed, K skipped" (the sums of the runs; skipped:
# tests that cannot run on this machine, never counted as passed) and fails
# if any test did.
set -u
build=${1:-build}
export TMPDIR="$PWD/$build/tmp"
# OpenMP's threads sleep when they have no work instead of spinning for it
# (unless the caller chose otherwise): on a machine that other processes keep
# busy, spinning threads take the cores from the threads that have work, and
# two-thread runs went 2-5 times slower (README, "A busy machine").  The
# results are the same bit for bit either way.
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
"$build/test_convnet" | tee "$TMPDIR/c.log"
# Not on the guard: the kernel tests and the tests that swap broken kernels
# into the backend's table (they work below the seam, on CPU backends of
# their own whatever the guard run asks: they would only repeat), and the two
# that cap the process's address space (the guard reserves 4 GiB of it).
echo "the C tests on the guard backend:"
CONVNET_TEST_BACKEND=guard "$build/test_convnet" -x kernels/ -x gradcheck/broken/ \
    -x fuzzfound/net_larger_than_memory -x fuzzfound/model_description_larger_than_file -x cuda/ |
    sed -E 's/^([0-9]+ passed, [0-9]+ failed)/guard: \1/' | tee "$TMPDIR/guard.log"
sh tests/cli.sh "$build" | tee "$TMPDIR/cli.log"
# training from folders of pictures and CSV lists, the cache, bad input, and
# a data set larger than a memory cgroup allows
sh tests/folders.sh "$build" | tee "$TMPDIR/folders.log"
sh tests/explain.sh "$build" | tee "$TMPDIR/explain.log"
# convnet doctor against planted faults (tests/doctor.sh)
sh tests/doctor.sh "$build" | tee "$TMPDIR/doctor.log"
# convnet plan: its tables, --json, --memory, a GPU that is not here, and a
# small case against a real training run (tests/plan.sh)
sh tests/plan.sh "$build" | tee "$TMPDIR/plan.log"
sh tests/install.sh "$build" | tee "$TMPDIR/install.log"
sh tests/onnx.sh "$build" | tee "$TMPDIR/onnx.log"
# the programs of examples/ and the API reference (docs/api.md)
sh tests/examples.sh "$build" | tee "$TMPDIR/examples.log"
sh tests/docs.sh "$build" | tee "$TMPDIR/docs.log"
# The Python bindings (python/convnet.py) under /usr/bin/python3.
sh tests/python.sh "$build" | tee "$TMPDIR/python.log"
# --device cuda: refused clearly without a GPU; the GPU checks where there is
# one (skipped, and counted, where there is none)
sh tests/cuda.sh "$build" | tee "$TMPDIR/cuda.log"
# The numbers of a run's summary line: "[NAME: ]P passed, F failed[,
# K skipped]", as "P F K" (K empty when the line has none).
summary='^([a-z]+: )?([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$'
numbers() { grep -E "$summary" "$1" | tail -1 | sed -E "s/$summary/\\2 \\3 \\5/"; }
p=0 f=0 k=0
for run in c guard cli folders explain doctor plan install onnx examples docs python cuda; do
    set -- $(numbers "$TMPDIR/$run.log")
    if [ $# -lt 2 ]; then
        f=$((f + 1))
        echo "the $run tests did not finish (no summary line)"
        continue
    fi
    # cli.sh prints its skipped tests as "skip  ..." lines
    [ $# -ge 3 ] || set -- "$1" "$2" "$(grep -c '^skip  ' "$TMPDIR/$run.log")"
    p=$((p + $1)) f=$((f + $2)) k=$((k + $3))
done
rm -rf "$TMPDIR"
echo "$p passed, $f failed, $k skipped"
[ "$f" = 0 ]
