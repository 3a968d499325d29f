#!/bin/sh
# gpu.sh BUILD - make bench-gpu: the GPU figures of issue 13 with a CUDA=1
# build (BUILD, default build-cuda) on this machine's first GPU, no network:
#   time to 99.0% MNIST test accuracy, models/mnist.cfg's default recipe
#     (test set every 5% of the epoch, evaluation time kept out);
#   models/fashion-best.cfg for 20 epochs without mixup (--val 0: its recipe
#   until session 38), its time and accuracy;
#   LeNet training at batch 256, images/s (convnet bench --json, 5 s);
#   the peak device memory of each;
# then where the time of a LeNet step goes, layer by layer (convnet bench's
# table: the convolutions are cuDNN's, the fully connected layers cuBLAS's,
# the rest this backend's own kernels).  Data: data/mnist and
# data/fashion-mnist (scripts/fetch-data.sh, before going offline); a figure
# whose data is missing is printed as skipped.  Each training run is cut off
# (timeout) at twice or four times its target, so that the whole stays within
# a few minutes even on a slow GPU.
set -u
build=${1:-build-cuda}
bin="$build/convnet"
out=${BENCH_GPU_OUT:-$build/bench-gpu}
mkdir -p "$out"
gpu=$("$bin" info --devices | sed -n 's/^cuda:0 *//p')
if [ -z "$gpu" ]; then
    "$bin" info --devices
    echo "bench-gpu: no GPU to measure" >&2
    exit 1
fi
have() { [ -e "$1/train-images-idx3-ubyte" ] || [ -e "$1/train-images-idx3-ubyte.gz" ]; }
row() { printf '%-44s %-28s %s\n' "$1" "$2" "$3"; }

# 1. time to 99% on MNIST
if have data/mnist; then
    timeout 120 "$bin" train models/mnist.cfg --device cuda --data data/mnist --test-every 0.05 \
        --stop-at 0.99 --verbose --quiet -o "$out/mnist.safetensors" >"$out/mnist.txt" 2>&1
    t99=$(sed -n 's/^reached \([0-9.]*\)% test accuracy after \([0-9.]*\) s of training.*/\2 s (\1%)/p' \
        "$out/mnist.txt")
    mem1=$(sed -n 's/.*, device \([0-9.]*\) MiB$/\1 MiB/p' "$out/mnist.txt" | tail -1)
    [ -n "$t99" ] || t99="not reached: $(grep '^test after' "$out/mnist.txt" | tail -1)"
else
    t99="skipped: no data/mnist" mem1=""
fi
# 2. fashion-best, 20 epochs
if have data/fashion-mnist; then
    timeout 240 "$bin" train models/fashion-best.cfg --device cuda --data data/fashion-mnist --val 0 \
        --epochs 20 --mixup 0 --verbose --quiet -o "$out/fashion.safetensors" >"$out/fashion.txt" 2>&1
    secs=$(awk '/^epoch +20\/20 +loss/ { print $(NF-1) }' "$out/fashion.txt")
    "$bin" eval "$out/fashion.safetensors" --device cuda --data data/fashion-mnist --json \
        >"$out/fashion.json" 2>&1
    acc=$(sed -n 's/.*"n": [0-9]*, "accuracy": \([0-9.]*\),.*/\1/p' "$out/fashion.json")
    mem2=$(sed -n 's/.*, device \([0-9.]*\) MiB$/\1 MiB/p' "$out/fashion.txt" | tail -1)
    fashion="${secs:-?} s, test accuracy ${acc:-?}"
else
    fashion="skipped: no data/fashion-mnist" mem2=""
fi
# 3. LeNet at batch 256
"$bin" bench models/lenet.cfg --device cuda --batch 256 --json --seconds 5 >"$out/lenet.json" 2>&1
ips=$(sed -n 's/.*"images_per_s": \([0-9.]*\),.*/\1/p' "$out/lenet.json")
mem3=$(sed -n 's/.*"device_peak_mb": \([0-9.]*\)}.*/\1 MiB/p' "$out/lenet.json")
"$bin" bench models/lenet.cfg --device cuda --batch 256 --steps 50 >"$out/lenet-layers.txt" 2>&1

# 4. PyTorch with CUDA, where this machine has it: the same LeNet at batch
# 256, side by side (bench/torch_bench.py --device cuda: cuDNN's autotuner
# on; with PyTorch's default TF32 for convolutions, and with TF32 off as
# convnet runs, NVIDIA_TF32_OVERRIDE=0).
py=${PYTHON:-python3}
torch_row=""
if "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    for tf in default off; do
        env $([ $tf = off ] && echo NVIDIA_TF32_OVERRIDE=0) "$py" bench/torch_bench.py \
            models/lenet.cfg --device cuda --batch 256 --seconds 5 >"$out/torch-$tf.json" 2>&1
        t=$(sed -n 's/.*"images_per_s": \([0-9.]*\),.*/\1/p' "$out/torch-$tf.json")
        v=$(sed -n 's/.*"torch": "\([^"]*\)".*/\1/p' "$out/torch-$tf.json")
        torch_row="$torch_row${torch_row:+, }${t:-?} (TF32 $tf)"
    done
    torch_row="$torch_row images/s, PyTorch ${v:-?}"
fi

echo "GPU: cuda:0 $gpu"
echo
row "figure" "measured" "target"
row "time to 99.0% MNIST (mnist.cfg)" "$t99" "< 1 s"
row "fashion-best.cfg, 20 epochs" "$fashion" "< 60 s"
row "LeNet training, batch 256" "${ips:-?} images/s" "> 200000"
[ -n "$torch_row" ] && row "PyTorch LeNet training, batch 256" "$torch_row" ""
row "peak device memory: mnist, fashion, LeNet" "${mem1:--}, ${mem2:--}, ${mem3:--}" ""
echo
echo "where a LeNet step's time goes (convolutions: cuDNN; fc: cuBLAS; the rest: own kernels):"
cat "$out/lenet-layers.txt"
