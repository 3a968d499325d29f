#!/bin/sh
# cli.sh BUILD - tests of the convnet command line: help, errors, training,
# evaluation, resume, Ctrl-C and divergence.  Prints "N passed, M failed".
set -u
bin="$(cd "$1" && pwd)/convnet"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s: %s\n' "$1" "$2"; [ -f "$tmp/out" ] && sed 's/^/      | /' "$tmp/out" | tail -n 15; }

# run NAME WANT_STATUS CMD... : runs CMD with stdout+stderr in $tmp/out
run() {
    name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>&1
    got=$?
    if [ "$got" != "$want" ]; then
        fail "$name" "exit status $got, expected $want"
        return 1
    fi
    return 0
}
has() { grep -q -- "$1" "$tmp/out"; }
expect() { # NAME PATTERN... : all patterns in the output
    name=$1
    shift
    for p in "$@"; do
        has "$p" || { fail "$name" "output lacks '$p'"; return 1; }
    done
    ok "$name"
}

# --- help and usage errors ----------------------------------------------------
run help 0 "$bin" --help && expect help "usage: convnet COMMAND" "train" "gradcheck"
for c in train eval info gradcheck bench; do
    run "help $c" 0 "$bin" "$c" --help && expect "help $c" "usage: convnet $c"
done
run "help via help" 0 "$bin" help eval && expect "help via help" "usage: convnet eval"
run "no command" 2 "$bin" && expect "no command" "usage:"
run "unknown command" 2 "$bin" trian && expect "unknown command" "'trian' is not a command"
run "unknown option" 2 "$bin" train --epoch 3 && expect "unknown option" "unknown option '--epoch'" "Try 'convnet train --help'"
run "bad number" 2 "$bin" train --lr fast && expect "bad number" "--lr takes a number"
run "missing value" 2 "$bin" train --batch && expect "missing value" "needs a value"
run "version" 0 "$bin" --version && expect "version" "convnet 0."

# --- info and description errors ------------------------------------------------
run "info lenet" 0 "$bin" info models/lenet.cfg &&
    expect "info lenet" "conv2        conv             50x8x8       25,050      1,600,000" "total .* 431,080 *2,293,000"
run "bad description" 1 "$bin" info tests/fixtures/bad.cfg &&
    expect "bad description" "tests/fixtures/bad.cfg:10: \[conv\] has no key 'strid'"
run "missing file" 1 "$bin" info no/such.cfg && expect "missing file" "no/such.cfg: cannot open"

# --- gradcheck -------------------------------------------------------------------
run "gradcheck lenet" 0 "$bin" gradcheck models/lenet.cfg --coords 40 &&
    expect "gradcheck lenet" "conv1 .* ok" "fc2 .* ok" "network .* ok"

# --- train, eval, resume ------------------------------------------------------------
cd "$tmp" >/dev/null || exit 1
root=$OLDPWD
data="$root/data/mnist"
run "train tiny" 0 "$bin" train "$root/tests/fixtures/tiny.cfg" --data "$data" --quiet &&
    expect "train tiny" "epoch   1/2" "epoch   2/2" "val acc" "model written to tiny.safetensors"
if [ -f tiny.csv ] && [ "$(wc -l < tiny.csv)" = 3 ] && head -1 tiny.csv | grep -q '^epoch,step,train_loss'; then
    ok "csv log"
else
    fail "csv log" "tiny.csv should have a header and 2 lines"
fi
run "eval" 0 "$bin" eval tiny.safetensors --data "$data" &&
    expect "eval" "on 10000 test images: accuracy 9[0-9].[0-9][0-9]%" "confusion matrix" "^    9   1009 "
if run "eval json" 0 "$bin" eval tiny.safetensors --data "$data" --json; then
    if python3 - "$tmp/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["n"] == 10000 and len(d["confusion"]) == 10 and len(d["per_class"]) == 10
assert sum(map(sum, d["confusion"])) == 10000
right = sum(d["confusion"][i][i] for i in range(10))
assert abs(right / 10000 - d["accuracy"]) < 1e-6 and d["accuracy"] > 0.85
PY
    then ok "eval json"; else fail "eval json" "not the JSON expected"; fi
fi
run "info model file" 0 "$bin" info tiny.safetensors && expect "info model file" "trained: 2 epochs"
run "resume" 0 "$bin" train "$root/tests/fixtures/tiny.cfg" --data "$data" --epochs 1 -o half.safetensors --quiet &&
    run "resume" 0 "$bin" train --resume half.safetensors --epochs 2 --data "$data" --quiet &&
    if cmp -s half.safetensors tiny.safetensors; then ok "resume"; else fail "resume" "1 + 1 epochs differ from 2"; fi
run "eval of a description" 2 "$bin" eval "$root/models/lenet.cfg" && expect "eval of a description" "is a model description"
head -c 1000 tiny.safetensors > cut.safetensors
run "truncated model" 1 "$bin" eval cut.safetensors --data "$data" && expect "truncated model" "cut.safetensors"
run "no data" 1 "$bin" train "$root/tests/fixtures/tiny.cfg" --data nowhere && expect "no data" "fetch-data.sh mnist"

# --- divergence ----------------------------------------------------------------------
run "divergence" 1 "$bin" train "$root/tests/fixtures/diverges.cfg" --data "$data" --quiet -o div.safetensors &&
    expect "divergence" "the loss became" "--lr" "no epoch completed"

# --- Ctrl-C: stop, save, resume exactly ------------------------------------------------
"$bin" train "$root/models/small.cfg" --data "$data" --epochs 1 --quiet -o int.safetensors >"$tmp/out" 2>&1 &
pid=$!
sleep 3
kill -INT $pid
wait $pid
st=$?
if [ "$st" = 130 ] && has "continue with: convnet train --resume int.safetensors"; then
    ok "ctrl-c saves"
    run "ctrl-c resume" 0 "$bin" train --resume int.safetensors --data "$data" --quiet &&
        run "ctrl-c resume" 0 "$bin" train "$root/models/small.cfg" --data "$data" --epochs 1 --quiet -o ref.safetensors &&
        if cmp -s int.safetensors ref.safetensors; then ok "ctrl-c resume is exact"; else fail "ctrl-c resume is exact" "interrupted and resumed differs from one run"; fi
else
    fail "ctrl-c saves" "exit status $st"
fi

echo "cli: $passed passed, $failed failed"
