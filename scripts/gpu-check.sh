#!/bin/sh
# gpu-check.sh - everything about the CUDA backend that needs a GPU, in one
# run of under 10 minutes with no network (make gpu-check): the build with
# CUDA=1 (build-cuda/), the GPUs this machine has, tests/cuda.sh (every
# backend operation against the CPU's, 300 steps of models/mnist.cfg on both
# devices, gradient checks on the GPU, model files across devices, two GPU
# runs bit for bit, resume), the C tests with the GPU as their backend,
# compute-sanitizer on the parity tests where it is installed, and make
# bench-gpu (bench/gpu.sh).  Needs nvcc, cuBLAS
# and cuDNN 9 under CUDA_HOME (default /usr/local/cuda), a GPU with its
# driver, and data/mnist (data/fashion-mnist too for the 20-epoch figure):
# fetch them before going offline (scripts/fetch-data.sh).  Fails when any
# check fails or is skipped for want of a GPU or of MNIST: on a GPU machine a
# skip is not a pass.
set -u
cd "$(dirname "$0")/.."
start=$(date +%s)
jobs=$(nproc 2>/dev/null || echo 2)
echo "== build: make BUILD=build-cuda CUDA=1 (nvcc $(${CUDA_HOME:-/usr/local/cuda}/bin/nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
make -j"$jobs" --no-print-directory BUILD=build-cuda CUDA=1 build-cuda/convnet \
    build-cuda/test_convnet >build-cuda.log 2>&1 || {
    tail -30 build-cuda.log
    echo "gpu-check: the CUDA build failed (build-cuda.log)"
    exit 1
}
echo "== devices"
build-cuda/convnet info --devices
echo "== tests/cuda.sh build-cuda"
sh tests/cuda.sh build-cuda | tee build-cuda/cuda-check.log
status=$?
summary=$(tail -1 build-cuda/cuda-check.log)
echo "== the C tests with the GPU as their backend (as the guard run, less the PyTorch comparisons)"
CONVNET_TEST_BACKEND=cuda build-cuda/test_convnet -x kernels/ -x gradcheck/broken/ \
    -x fuzzfound/net_larger_than_memory -x fuzzfound/model_description_larger_than_file \
    -x cuda/ -x torch/ -x explain/gradcam_matches -x explain/deconv_matches \
    >build-cuda/suite-gpu.log 2>&1 || status=1
grep -E "^(FAIL|skip) " build-cuda/suite-gpu.log
echo "gpu suite: $(tail -1 build-cuda/suite-gpu.log)"
cs=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" 2>/dev/null)
if [ -n "$cs" ]; then
    echo "== compute-sanitizer (memcheck) on the parity tests"
    "$cs" --tool memcheck --print-limit 30 build-cuda/test_convnet cuda/ >build-cuda/sanitizer.log 2>&1 ||
        status=1
    grep "ERROR SUMMARY" build-cuda/sanitizer.log | tail -1
fi
echo "== make bench-gpu"
sh bench/gpu.sh build-cuda || status=1
echo
echo "gpu-check: $summary; $(($(date +%s) - start)) s in all"
case $summary in
*" 0 failed, 0 skipped") [ "$status" = 0 ] && exit 0 ;;
esac
echo "gpu-check: FAILED (a check failed, or was skipped: no GPU or no data/mnist)"
exit 1
