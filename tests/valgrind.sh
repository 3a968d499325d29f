#!/bin/sh
# valgrind.sh BUILD - the C tests (build/test_convnet) under valgrind's
# memcheck: no invalid read or write, no use of uninitialised memory, no
# memory definitely or indirectly lost, in any test.
#
# Which tests: all of them but eight: seven repeat heavy arithmetic that other
# tests cover on small sizes and would take minutes each under valgrind, and
# one runs hundreds of passes on 2 threads, each handing shares to a worker
# that spins for them, which valgrind (one thread at a time) makes take about
# a second a pass:
#   kernels/gemm_matches_reference   (2.5 minutes under valgrind)
#   kernels/conv_matches_reference   (2 minutes)
#   kernels/conv_pool_is_conv_then_pool  (8 minutes for its AVX2 set; the
#                                    network-level infer/pooling_folded_in runs
#                                    the same pooled paths on small shapes)
#   torch/lenet_matches_pytorch      (1.5 minutes; the batch-norm, Adam and
#                                     residual replays run the same code)
#   train/mnist_end_to_end           two epochs on 20 000 real images
#   torch/model_file_in_pytorch      an epoch on 6 000 real images, then the
#                                    10 000 test images (io tests cover the file)
#   train/kernel_sets_agree          forces the AVX-512 kernels, which valgrind
#                                    cannot run (it offers the processor without
#                                    AVX-512, and the library then picks AVX2)
#   infer/small_passes_leave_slow_threads  544 team passes (the windows that
#                                    send a network alone; the small passes'
#                                    other test runs the team under valgrind)
# The sanitizer build (make test-asan) runs every test.
#
# Leaks: fontconfig's static caches are suppressed (tests/valgrind.supp says
# why).  "possibly lost" blocks are not errors: the only ones (checked with
# --show-leak-kinds=possible) are the TLS vectors that pthread_create
# allocates for libgomp's worker threads, which are still alive, parked, when
# a test ends, and which glibc points to only from inside the block.
# Definitely and indirectly lost blocks are errors.
set -u
build=${1:-build}
export TMPDIR="$PWD/$build/tmp-valgrind"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
command -v valgrind >/dev/null 2>&1 || {
    echo "valgrind is not installed (scripts/deps.sh --test installs it)"
    exit 1
}
# tests whose CPU-time bounds allow for valgrind's slowness
export CONVNET_SANITIZER=valgrind
t0=$(date +%s)
valgrind --quiet --suppressions=tests/valgrind.supp --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
    --log-file="$TMPDIR/vg.%p" \
    "$build/test_convnet" -x kernels/gemm_matches_reference -x kernels/conv_matches_reference \
    -x kernels/conv_pool_is_conv_then_pool \
    -x torch/lenet_matches_pytorch -x train/mnist_end_to_end -x train/kernel_sets_agree \
    -x torch/model_file_in_pytorch -x infer/small_passes_leave_slow_threads |
    tee "$TMPDIR/tests.log"
status=0
# Every process's report: a test that valgrind found errors in exits with 1
# (so the harness fails it), and its report says why.
bad=0
for f in "$TMPDIR"/vg.*; do
    if [ -s "$f" ] && grep -q -E "ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]|Invalid|uninitialised" "$f"; then
        echo "--- valgrind report $f"
        cat "$f"
        bad=$((bad + 1))
    fi
done
# The summary line: "N passed, 0 failed, K skipped" (the kernels/*/avx512
# tests are skipped: valgrind offers a processor without AVX-512).
grep -q -E "^[0-9]+ passed, 0 failed, [0-9]+ skipped$" "$TMPDIR/tests.log" || status=1
[ "$bad" = 0 ] || status=1
echo "valgrind: $bad report(s) with errors, $(($(date +%s) - t0)) s"
[ "$status" = 0 ] && rm -rf "$TMPDIR"
exit $status
