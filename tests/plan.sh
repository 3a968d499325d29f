#!/bin/sh
# plan.sh BUILD - convnet plan: the fields of its tables, --json (parsed by
# Python), --memory's sizes and refusals, a GPU planned without one,
# --calibrate, a model file, errors on stderr with the statuses of the other
# commands, and one small case against a real training run (the peak within
# 10%).  Prints "plan: P passed, F failed, K skipped".
set -u
py=/usr/bin/python3
bin="$(cd "$1" && pwd)/convnet"
root=$(pwd)
data="$root/data/mnist"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-plan-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Without --data the sizes are assumed (MNIST's for 28x28): no run reads
# the data set unless it asks for it.
CONVNET_DATA="$tmp/none"
export CONVNET_DATA
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && tail -n 15 "$tmp/out" | sed 's/^/      out| /'
    [ -s "$tmp/err" ] && tail -n 5 "$tmp/err" | sed 's/^/      err| /'
    return 0
}
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
# plan NAME WANT_STATUS ARGS... : runs convnet plan; 0 when the status is WANT
plan() {
    name=$1 want=$2
    shift 2
    "$bin" plan "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" != "$want" ]; then
        fail "$name" "exit status $got, expected $want"
        return 1
    fi
    return 0
}
# has NAME PATTERN : stdout has a line matching PATTERN
has() { if grep -qE -- "$2" "$tmp/out"; then ok "$1"; else fail "$1" "no line matching '$2'"; fi; }
# json NAME EXPR : stdout is one JSON object d for which the Python EXPR holds
json() {
    if $py -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" \
        "$tmp/out" 2>"$tmp/pyerr"; then
        ok "$1"
    else
        fail "$1" "not so: $2 $(tail -1 "$tmp/pyerr")"
    fi
}
# refused NAME WANT_STATUS PATTERN ARGS... : fails with WANT_STATUS, nothing on
# stdout, a message matching PATTERN on stderr
refused() {
    name=$1 want=$2 pat=$3
    shift 3
    plan "$name" "$want" "$@" || return 0
    if [ -s "$tmp/out" ]; then
        fail "$name" "wrote to stdout"
    elif grep -qE -- "$pat" "$tmp/err"; then
        ok "$name"
    else
        fail "$name" "no message matching '$pat' on stderr"
    fi
}

cat >"$tmp/tiny.cfg" <<'EOF'
[net]
channels = 1
height = 28
width = 28
classes = 10
[train]
epochs = 3
batch = 32
[conv]
filters = 4
size = 5
[relu]
[maxpool]
[fc]
outputs = 10
[softmax]
EOF

# --- the help, the tables --------------------------------------------------
if plan "--help" 0 --help && grep -q -- "--memory SIZE" "$tmp/out" && grep -q -- "--calibrate" "$tmp/out"; then
    ok "--help: the options, --memory and --calibrate among them"
else
    fail "--help" "no --memory or --calibrate in it"
fi
refused "--data that does not exist: refused, naming it" 1 "$tmp/none" "$root/models/lenet.cfg" --data "$tmp/none"
if plan "tables" 0 "$root/models/lenet.cfg" --threads 1; then
    has "tables: every layer" "^conv1 +conv +20x24x24 +520 "
    has "tables: softmax last" "^softmax1 +softmax +10x1x1"
    has "tables: the peak of training" "^peak of training: +[0-9.]+ MiB$"
    has "tables: the peak of evaluation" "^peak of evaluation: [0-9.]+ MiB \(convnet eval of"
    has "tables: a step's time, by the roofline" "^time \(roofline: this machine's GEMM at [0-9]+ GFLOP/s"
    has "tables: an epoch's time" "^  an epoch +[0-9.]+ (ms|s|min|h): [0-9]+ steps"
    has "tables: built for the training batch, evaluation's passes too" "the network built for passes of 64 images \\(training's and evaluation's\\)"
fi

# --- --json ------------------------------------------------------------------
if plan "--json" 0 "$root/models/lenet.cfg" --threads 1 --json; then
    json "--json: parses, one object with the layers" "len(d['layers']) == 10 and d['layers'][0]['name'] == 'conv1'"
    json "--json: the peaks hold the model" "d['train_peak'] > d['memory']['model'] > 0 and d['infer_peak'] > d['memory']['model']"
    json "--json: the memory adds up" "d['train_peak'] == sum(d['memory'][k] for k in ('model','host_arrays','data','loop','transient','baseline'))"
    json "--json: the parts of the model add up" "d['memory']['model'] == sum(d['memory'][k] for k in ('weights','gradients','optimizer','activations','scratch','io','backend'))"
    json "--json: times by the roofline" "d['timing'] == 'roofline' and d['step_s'] > 0 and abs(d['epoch_s'] / (d['train_s'] + d['val_s']) - 1) < 1e-5"
    json "--json: no max_batch without --memory" "d['max_batch'] is None"
fi
# SGD keeps a momentum as large as the weights, Adam two averages (LeNet
# has no buffers: its buffer block is one empty float)
if plan "--optimizer adam" 0 "$root/models/lenet.cfg" --threads 1 --json --optimizer adam; then
    json "--optimizer adam: two values per parameter" "d['optimizer'] == 'adam' and d['memory']['optimizer'] == 2 * (d['memory']['weights'] - 4)"
fi

# --- --memory ----------------------------------------------------------------
if plan "--memory 2G" 0 "$root/models/lenet.cfg" --threads 1 --memory 2G --json; then
    json "--memory 2G: 2 GiB, a batch found" "d['max_batch']['memory'] == 2 * 2**30 and 256 < d['max_batch']['batch'] <= 65536"
    # each run counts its own program's size: the search's counts here
    set -- $($py -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['max_batch']['batch'], d['memory']['baseline'])" "$tmp/out")
    mb=$1 base=$2
    for b in "$mb" "$((mb + 1))"; do
        plan "--memory: batch $b" 0 "$root/models/lenet.cfg" --threads 1 --batch "$b" --json || continue
        peak="(d['train_peak'] - d['memory']['baseline'] + $base)"
        if [ "$b" = "$mb" ]; then
            json "--memory 2G: its batch $b fits" "$peak <= 2 * 2**30"
        else
            json "--memory 2G: batch $b, one more, does not" "$peak > 2 * 2**30"
        fi
    done
fi
if plan "--memory 1.5G" 0 "$root/models/lenet.cfg" --threads 1 --memory 1.5G; then
    has "--memory 1.5G: the largest batch, in words" "^within 1536.0 MiB: batches of up to [0-9]+ \(training peak"
fi
for size in 512M 300000000 64MiB 1t; do
    if plan "--memory $size" 0 "$root/models/lenet.cfg" --threads 1 --memory "$size" --json; then
        json "--memory $size: read" "d['max_batch']['memory'] == {'512M': 512 << 20, '300000000': 300000000, '64MiB': 64 << 20, '1t': 1 << 40}['$size']"
    fi
done
plan "--memory 48M: nothing fits" 0 "$root/models/lenet.cfg" --threads 1 --memory 48M &&
    has "--memory 48M: not even a batch of 1" "^within 48.0 MiB: not even a batch of 1 fits"
for bad in 2X 0 -1 G 1.5.3G "" 2GG 1e3 0x10 1.G; do
    refused "--memory '$bad' refused" 2 "--memory takes a size such as 512M" "$root/models/lenet.cfg" --memory "$bad"
done

# --- usage and failures: stderr, the statuses of the other commands ----------
refused "an unknown option" 2 "unknown option '--batches'" "$root/models/lenet.cfg" --batches 3
refused "--batch 0" 2 "batch" "$root/models/lenet.cfg" --batch 0
refused "two models" 2 "takes one model" "$root/models/lenet.cfg" "$root/models/mnist.cfg"
refused "a model that is not there" 1 "nothere.cfg" "$tmp/nothere.cfg"
printf '[net]\nchannels=1\nheight=28\nwidth=28\n[conv]\nfilters=2\nsize=40\n[softmax]\n' >"$tmp/bad.cfg"
refused "an impossible network" 1 "bad.cfg:[0-9]+" "$tmp/bad.cfg"
refused "--val leaves no images" 1 "--val 70000 leaves no training images" "$root/models/lenet.cfg" --val 70000
refused "--calibrate --seconds 0" 2 "--seconds takes a number" "$root/models/lenet.cfg" --seconds 0

# --- a GPU that is not here --------------------------------------------------
if "$bin" info --devices 2>/dev/null | grep -q '^cuda:'; then
    skip "--device cuda without a GPU" "a GPU is here (tests/cuda.sh plans on it)"
else
    if plan "--device cuda" 0 "$root/models/lenet.cfg" --device cuda; then
        has "--device cuda: the device's peak" "^peak of training: +[0-9.]+ MiB of the device's memory"
        has "--device cuda: cuDNN's workspace said to be missing" "cuDNN's workspace is not included"
        has "--device cuda: no time, and why" "^time: not predicted: cuda:0 is not on this machine"
    fi
    if plan "--device cuda --json" 0 "$root/models/lenet.cfg" --device cuda --json; then
        json "--device cuda --json: the device's peaks, not exact, untimed" "d['device'] == 'cuda' and d['device_train_peak'] > d['memory']['model'] > 0 and d['exact'] is False and d['timing'] == 'none' and d['step_s'] is None"
    fi
    refused "--device cuda --calibrate" 1 "--calibrate: cuda:0 is not on this machine" "$root/models/lenet.cfg" --device cuda --calibrate
fi

# --- --calibrate, a model file, data assumed ----------------------------------
if plan "--calibrate" 0 "$tmp/tiny.cfg" --threads 1 --calibrate --seconds 0.3 --json; then
    json "--calibrate: timed, every layer too" "d['timing'] == 'calibrated' and d['step_s'] > 0 and d['eval_s'] > 0 and all(l['fwd_s'] is not None for l in d['layers'])"
fi
if [ ! -e "$data/train-images-idx3-ubyte" ] && [ ! -e "$data/train-images-idx3-ubyte.gz" ]; then
    skip "a model file; the peak against training's" "no MNIST in $data (make data)"
else
    if "$bin" train "$tmp/tiny.cfg" --data "$data" --threads 1 --limit 512 --val 1000 --epochs 1 \
        --batch 64 -o "$tmp/tiny.safetensors" --verbose --quiet >"$tmp/train" 2>&1; then
        measured=$(sed -n 's/^peak memory: \([0-9.]*\) MiB resident$/\1/p' "$tmp/train")
        # A sanitizer's shadow memory and quarantine make the resident size
        # its own (tests/asan.sh sets CONVNET_SANITIZER); make test judges it.
        if [ -n "${CONVNET_SANITIZER:-}" ]; then
            skip "a small case: the planned peak against training's" \
                "the resident size under $CONVNET_SANITIZER is the sanitizer's (make test judges it)"
        elif plan "the peak against training's" 0 "$tmp/tiny.cfg" --data "$data" --threads 1 \
            --limit 512 --val 1000 --batch 64 --json; then
            json "a small case: the planned peak within 10% of training's ($measured MiB)" \
                "abs(d['train_peak'] / 2**20 / $measured - 1) < 0.10"
        fi
        if plan "a model file" 0 "$tmp/tiny.safetensors" --threads 1 --json; then
            json "a model file: its recipe (batch 64), its data and split (--limit 512, --val 1000)" "d['batch'] == 64 and d['train_images'] == 512 and d['val_images'] == 1000 and d['data'] == '$data'"
        fi
    else
        fail "a model file" "training the tiny model failed: $(tail -1 "$tmp/train")"
    fi
fi
if CONVNET_DATA="$tmp/none" "$bin" plan "$root/models/cifar10.cfg" --threads 1 >"$tmp/out" 2>"$tmp/err"; then
    has "no data here: CIFAR-10's sizes assumed, and said so" "^data \(assumed: CIFAR-10's sizes\): 40,000 training images"
else
    fail "no data here: sizes assumed" "exit status $?"
fi

printf '[net]\nchannels=3\nheight=20\nwidth=20\nclasses=5\n[conv]\nfilters=4\nsize=3\n[fc]\noutputs=5\n[softmax]\n' >"$tmp/odd.cfg"
if plan "no data of the shape" 0 "$tmp/odd.cfg" --threads 1; then
    has "no data of the shape: the network planned, the data and the epoch left out, and said so" "^data: none of 3x20x20 images in .*: the data and an epoch are not counted"
    has "no data of the shape: no epoch" "^  an epoch +not counted: no data"
fi

echo "plan: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
