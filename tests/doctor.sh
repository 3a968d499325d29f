#!/bin/sh
# doctor.sh BUILD - convnet doctor against planted faults: a learning rate
# 100 times too high, relus killed by very negative biases, a weight so large
# that a layer's output overflows, and a healthy network that must get no
# warning.  Each fault's finding must appear; prints "doctor: P passed, F
# failed, K skipped".
set -u
py=/usr/bin/python3
bin="$(cd "$1" && pwd)/convnet"
root=$(pwd)
data="$root/data/mnist"
cfg="$root/tests/fixtures/doctor.cfg"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-doctor-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && sed 's/^/      out| /' "$tmp/out" | tail -n 25
    [ -s "$tmp/err" ] && tail -n 5 "$tmp/err" | sed 's/^/      err| /'
    return 1
}
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
# doctor NAME WANT_STATUS ARGS... : the check-up, quick (a subset, few steps)
doctor() {
    name=$1 want=$2
    shift 2
    "$bin" doctor "$@" --data "$data" --limit 256 --steps 60 >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" = "$want" ] || fail "$name" "exit status $got, expected $want"
}
# finding NAME VERDICT WHAT PATTERN : a line "VERDICT  WHAT: ..." matching PATTERN
finding() {
    if grep -E "^$2 +$3: " "$tmp/out" | grep -q -- "$4"; then ok "$1"; else fail "$1" "no '$2 $3' finding with '$4'"; fi
}
# no_finding NAME VERDICT WHAT : no such line
no_finding() {
    if grep -qE "^$2 +$3: " "$tmp/out"; then fail "$1" "an unexpected '$2 $3' finding"; else ok "$1"; fi
}

if [ ! -e "$data/train-images-idx3-ubyte" ] && [ ! -e "$data/train-images-idx3-ubyte.gz" ]; then
    skip "doctor" "no MNIST in $data (make data)"
    echo "doctor: $passed passed, $failed failed, $skipped skipped"
    exit 0
fi

# --- a healthy network: no false alarms -------------------------------------
if doctor "healthy" 0 "$cfg" --html "$tmp/page.html" --png "$tmp/lr.png"; then
    if grep -qE "^(warning|problem) " "$tmp/out"; then
        fail "healthy: no warning or problem" "$(grep -E '^(warning|problem) ' "$tmp/out" | head -3)"
    else
        ok "healthy: no warning or problem"
    fi
    for w in gradients "first batch" activations "dead relus" "gradients flow" updates overfit "learning rate"; do
        finding "healthy: $w ok" ok "$w" "nothing to change"
    done
    if grep -q "data:image/png;base64," "$tmp/page.html" && grep -q "learning rate" "$tmp/page.html"; then
        ok "healthy: --html page with the findings and the range test inline"
    else
        fail "healthy: --html page" "no findings or inline plot in it"
    fi
    if [ "$(head -c 4 "$tmp/lr.png" | od -An -c | tr -d ' ')" = "211PNG" ]; then ok "healthy: --png plot"; else fail "healthy: --png plot" "not a PNG"; fi
fi

# --- a rate 100 times too high: named, and one in range suggested -----------
lr=$(sed -n 's/^lr = \([0-9.]*\).*/\1/p' "$cfg")
high=$(awk -v l="$lr" 'BEGIN { print l * 100 }')
if doctor "lr x100" 1 "$cfg" --lr "$high"; then
    finding "lr x100: named" problem "learning rate" "lr $high is too high"
    sug=$(sed -n 's/^problem  learning rate: .*use --lr \([0-9.e+-]*\).*/\1/p' "$tmp/out")
    if [ -n "$sug" ] && awk -v s="$sug" -v h="$high" 'BEGIN { exit !(s >= h / 1000 && s <= h / 10) }'; then
        ok "lr x100: suggests $sug, in range"
    else
        fail "lr x100: suggests a rate in range" "suggested '$sug' for $high"
    fi
fi

# --- planted faults in a weights file ----------------------------------------
"$bin" train "$cfg" --data "$data" --limit 256 --val 0 --epochs 1 -o "$tmp/base.safetensors" \
    --quiet >"$tmp/out" 2>"$tmp/err" || fail "a model file to plant faults in" "train failed"
# plant IN OUT TENSOR VALUE [COUNT]: OUT is IN with the first COUNT (default:
# all) floats of TENSOR set to VALUE (safetensors: 8-byte little-endian header
# length, JSON header, raw little-endian data)
plant() {
    "$py" - "$@" <<'PY'
import json, struct, sys
src, dst, name, value = sys.argv[1:5]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
a, b = head[name]["data_offsets"]
count = (b - a) // 4 if len(sys.argv) < 6 else int(sys.argv[5])
body = bytearray(raw[8 + n:])
body[a:a + 4 * count] = struct.pack("<%df" % count, *([float(value)] * count))
open(dst, "wb").write(raw[:8 + n] + bytes(body))
PY
}
if plant "$tmp/base.safetensors" "$tmp/dead1.safetensors" conv1.bias -100 &&
    plant "$tmp/dead1.safetensors" "$tmp/dead.safetensors" conv2.bias -100; then
    if doctor "dead relus" 1 "$tmp/dead.safetensors"; then
        finding "dead relus: named" problem "dead relus" "relu1 100%"
        finding "dead relus: no gradient reaches the layers below" problem "gradients flow" "conv1.weight"
    fi
else
    fail "dead relus" "could not plant the biases"
fi
if plant "$tmp/base.safetensors" "$tmp/nan.safetensors" fc1.weight 3e38 200; then
    if doctor "nan" 1 "$tmp/nan.safetensors"; then
        finding "nan: the layer and tensor named" problem "non-finite" "forward pass, step 1.*layer fc1 (\[fc\].*fc1 output"
        if grep -q "largest |value| in fc1.weight: 3e+38" "$tmp/out"; then ok "nan: the huge weight shown"; else fail "nan: the huge weight shown" "no line with fc1.weight's largest value"; fi
    fi
else
    fail "nan" "could not plant the weight"
fi
# the base file itself is healthy enough: no non-finite finding
doctor "base model" 0 "$tmp/base.safetensors" && no_finding "base model: no non-finite finding" problem "non-finite"

# --- train --doctor: NaN traced during a real run, figures in the log ----------
cd "$tmp" || exit 1
"$bin" train "$root/tests/fixtures/diverges.cfg" --data "$data" --limit 2048 --val 0 --doctor --quiet \
    -o div.safetensors >"$tmp/out" 2>"$tmp/err"
if [ $? = 1 ] && grep -q "the first NaN or infinite value appeared in the forward pass, in layer fc1 (\[fc\], line 13): fc1 output" "$tmp/err"; then
    ok "train --doctor: the divergence traced to its layer and tensor"
else
    fail "train --doctor: the divergence traced" "no trace naming fc1's output"
fi
if "$bin" train "$cfg" --data "$data" --limit 640 --val 0 --epochs 1 --doctor --quiet -o t.safetensors \
    >"$tmp/out" 2>"$tmp/err" && [ -s t.doctor.csv ]; then
    # a row per layer output and per weight tensor at each of the 9 log lines inside the epoch
    rows=$(grep -c ',relu1,relu,' t.doctor.csv) ratios=$(grep -cE '^[0-9]+,conv1.weight,tensor,,,,[0-9.e+-]+,[0-9.e+-]+$' t.doctor.csv)
    if [ "$(head -1 t.doctor.csv)" = "step,name,kind,mean,spread,dead,grad_norm,update_ratio" ] && [ "$rows" = 9 ] && [ "$ratios" = 9 ]; then
        ok "train --doctor: per-layer figures at each log line"
    else
        fail "train --doctor: per-layer figures" "$rows relu1 rows, $ratios conv1.weight rows with an update ratio (9 expected)"
    fi
else
    fail "train --doctor: per-layer figures" "train failed or wrote no t.doctor.csv"
fi
# A convolution's output that its max pooling's gradient is written over in
# each step's backward pass: its figures are the forward pass's, kept by the
# step (cn_model_keep_stats), at every log line.
printf '[net]\nchannels=1\nheight=28\nwidth=28\nclasses=10\n[train]\nbatch=32\nlr=0.05\n[conv]\nfilters=4\nsize=3\npad=1\n[maxpool]\nsize=2\n[batchnorm]\n[relu]\n[fc]\noutputs=10\n[softmax]\n' >pool.cfg
if "$bin" train pool.cfg --data "$data" --limit 640 --val 0 --epochs 1 --doctor --quiet -o p.safetensors \
    >"$tmp/out" 2>"$tmp/err" && [ -s p.doctor.csv ]; then
    rows=$(grep -cE '^[0-9]+,conv1,conv,-?[0-9][0-9.e+-]*,[0-9][0-9.e+-]*,' p.doctor.csv)
    if [ "$rows" = 9 ]; then
        ok "train --doctor: figures of an output that backward writes over, at each log line"
    else
        fail "train --doctor: figures of an output written over" "$rows conv1 rows (9 expected)"
    fi
else
    fail "train --doctor: figures of an output written over" "train failed or wrote no p.doctor.csv"
fi
cd "$root" || exit 1

echo "doctor: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
