# resume.sh - sourced by tests/cli.sh (its run, ok, fail and expect, $bin,
# $root and $tmp): training stopped by SIGTERM in the middle of a one-cycle or
# cosine learning-rate schedule, with SGD, Adam or AdamW, on a network with
# batch normalisation and dropout, and with a moving average of the weights,
# label smoothing and augmentation, resumes exactly: the model file (weights,
# running statistics, optimizer state, moving average, training state) is the
# uninterrupted run's, byte for byte.
#
# The stop comes at a step fixed in advance: CONVNET_TEST_SIGTERM_AT=N makes
# convnet train send itself SIGTERM once batch N of the run is done (through
# the same handler as a kill from outside, which could arrive after training
# has ended).

resume_dir=$tmp/resume
mkdir -p "$resume_dir"
cd "$resume_dir" || exit 1
# A small network with what a checkpoint must carry: batch normalisation
# after a convolution and after a fully connected layer (running statistics,
# one with another momentum), dropout (its masks follow the step), pooling.
cat >bn.cfg <<'EOF'
[net]
channels = 1
height = 28
width = 28
classes = 10
mean = 0.1307
std = 0.3081
[train]
epochs = 2
batch = 50
lr = 0.5
momentum = 0.9
decay = 0.0005
lr_policy = onecycle
lr_warmup = 0.3
seed = 7
[conv]
filters = 4
size = 5
stride = 2
[batchnorm]
[relu]
[maxpool]
[dropout]
rate = 0.2
[fc]
outputs = 32
[batchnorm]
momentum = 0.3
[relu]
[fc]
outputs = 10
[softmax]
EOF
# 1 500 training images in batches of 50: 30 batches an epoch, 60 in all;
# the warm-up (30%) ends after batch 18.
rdata="--data ${data:-$root/data/mnist} --limit 1500 --val 500 --threads 1 --quiet"

# stopped NAME FILE STEP EPOCH BATCH [OPTIONS...]: trains bn.cfg (from FILE
# when it exists, else from the start) until SIGTERM after batch STEP; the
# run must say it stopped at EPOCH, BATCH and exit with 143.
stopped() {
    sname=$1 sfile=$2 sstep=$3 sepoch=$4 sbatch=$5
    shift 5
    if [ -f "$sfile" ]; then
        set -- --resume "$sfile" "$@"
    else
        set -- bn.cfg -o "$sfile" "$@"
    fi
    run "$sname: stopped" 143 env CONVNET_TEST_SIGTERM_AT="$sstep" "$bin" train "$@" $rdata &&
        expect_err "$sname: stopped" "stopped by SIGTERM at epoch $sepoch, batch $sbatch; saved to $sfile"
}

# resumed NAME FILE REF EPOCH BATCH: resumes FILE to its end; the file must
# then be REF, byte for byte.
resumed() {
    run "$1: resumed" 0 "$bin" train --resume "$2" $rdata &&
        expect "$1: resumed" "continuing at epoch $4, batch $5" "done: 2 epochs" || return
    if cmp -s "$2" "$3"; then
        ok "$1: resumed exactly"
    else
        fail "$1: resumed exactly" "$2, stopped and resumed, differs from $3, trained without a stop"
    fi
}

# One-cycle SGD: stopped in the warm-up; stopped after the first epoch's
# last batch (the epoch then ends and is saved as it is).
run "resume: one-cycle reference" 0 "$bin" train bn.cfg -o onecycle.safetensors $rdata
stopped "resume: one-cycle warm-up" oc1.safetensors 12 1 12
resumed "resume: one-cycle warm-up" oc1.safetensors onecycle.safetensors 1 12
stopped "resume: one-cycle epoch end" oc2.safetensors 30 2 0
resumed "resume: one-cycle epoch end" oc2.safetensors onecycle.safetensors 2 0

# Cosine SGD, stopped on the way down, in the second epoch.
run "resume: cosine reference" 0 "$bin" train bn.cfg -o cosine.safetensors --lr-policy cosine $rdata
stopped "resume: cosine" cos.safetensors 41 2 11 --lr-policy cosine
resumed "resume: cosine" cos.safetensors cosine.safetensors 2 11

# Adam (moments and bias correction) with a cosine schedule; AdamW with a
# one-cycle one, stopped twice: in the first epoch, then again in the second.
run "resume: adam reference" 0 "$bin" train bn.cfg -o adam.safetensors --optimizer adam \
    --lr 0.003 --lr-policy cosine $rdata
stopped "resume: adam" adam1.safetensors 23 1 23 --optimizer adam --lr 0.003 --lr-policy cosine
resumed "resume: adam" adam1.safetensors adam.safetensors 1 23
run "resume: adamw reference" 0 "$bin" train bn.cfg -o adamw.safetensors --optimizer adamw \
    --lr 0.003 --decay 0.01 $rdata
stopped "resume: adamw, first stop" adamw1.safetensors 7 1 7 --optimizer adamw --lr 0.003 --decay 0.01
stopped "resume: adamw, second stop" adamw1.safetensors 47 2 17
resumed "resume: adamw" adamw1.safetensors adamw.safetensors 2 17

# One-cycle SGD with a moving average of the weights (the file keeps the
# average and, beside it, the trained weights), label smoothing and every
# augmentation and mixup, stopped in the first epoch and after it; the resumed runs
# take the recipe from the file.
extra="--ema 0.95 --label-smoothing 0.1 --rotate 10 --scale 0.1 --shear 5 --erase 0.3 --shift 1 --elastic 1.5 --mixup 0.5"
# shellcheck disable=SC2086 # $extra: several options
run "resume: ema reference" 0 "$bin" train bn.cfg -o ema.safetensors $extra $rdata
# shellcheck disable=SC2086
stopped "resume: ema" ema1.safetensors 17 1 17 $extra
resumed "resume: ema" ema1.safetensors ema.safetensors 1 17
# shellcheck disable=SC2086
stopped "resume: ema, epoch end" ema2.safetensors 30 2 0 $extra
resumed "resume: ema, epoch end" ema2.safetensors ema.safetensors 2 0

cd "$tmp" || exit 1
