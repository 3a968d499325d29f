#!/bin/sh
# examples.sh BUILD - the programs of examples/ (built by make into
# BUILD/examples), run on small inputs, their outputs checked against the
# command line's: train_mnist trains and saves a model that 'convnet eval'
# scores as the program said; classify gives the class and probability
# 'convnet predict' gives; embedded's classes make the confusion matrix
# 'convnet eval' makes on the same images, and its forward passes allocate
# nothing (a malloc counter preloaded); from_string prints its layers and
# learns.  Ends with "examples: P passed, F failed, K skipped".
set -u
# Debian's Python: the IDX files and the JSON are read with its standard library
py=/usr/bin/python3
root=$(pwd)
build="$root/${1:-build}"
bin="$build/convnet"
ex="$build/examples"
data="$root/data/mnist"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-examples-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && tail -n 8 "$tmp/out" | sed 's/^/      out| /'
    [ -s "$tmp/err" ] && tail -n 8 "$tmp/err" | sed 's/^/      err| /'
    return 1
}
# run NAME CMD... : CMD's stdout in $tmp/out, stderr in $tmp/err; fails the
# test unless it exits 0 with nothing on stderr
run() {
    name=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" != 0 ]; then
        fail "$name" "exit status $got"
    elif [ -s "$tmp/err" ]; then
        fail "$name" "it wrote on stderr"
    fi
}

# --- the sources: public headers only, each says what it does and how to build it
for src in "$root"/examples/*.c; do
    name=$(basename "$src" .c)
    t="$name: header comment and includes"
    vis=no
    grep -q '^#include <convnet_vis.h>' "$src" && vis=yes
    bad=$(grep '^#include' "$src" | grep -Ev '^#include <(convnet|convnet_vis|assert|ctype|errno|float|inttypes|limits|math|stdbool|stddef|stdint|stdio|stdlib|string|time)\.h>$')
    if ! head -1 "$src" | grep -q "^/\* $name.c - "; then
        fail "$t" "the file does not start with a comment '/* $name.c - what it does'"
    elif [ -n "$bad" ]; then
        fail "$t" "includes other than the public headers and the C library's: $bad"
    elif [ $vis = yes ] && ! { grep -q '^/\* pkg-config: convnet_vis \*/$' "$src" &&
        grep -q "pkg-config --cflags --libs convnet_vis" "$src"; }; then
        fail "$t" "it uses convnet_vis.h: it needs '/* pkg-config: convnet_vis */' and the build line for convnet_vis"
    elif [ $vis = no ] && ! grep -q "pkg-config --cflags --libs convnet)" "$src"; then
        fail "$t" "no build line (cc $name.c \$(pkg-config --cflags --libs convnet) ...)"
    elif [ ! -x "$ex/$name" ]; then
        fail "$t" "make did not build $ex/$name"
    else
        ok "$t"
    fi
done

# --- train_mnist: 2000 images, 5 epochs of models/small.cfg ---------------------------
model="$tmp/small.safetensors"
if run "train_mnist" "$ex/train_mnist" "$data" "$root/models/small.cfg" "$model" 2000; then
    acc=$(sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
    if ! grep -q '^epoch 5/5: loss ' "$tmp/out" || [ -z "$acc" ]; then
        fail "train_mnist" "no 'epoch 5/5' or 'test accuracy' line"
    elif ! awk -v a="$acc" 'BEGIN { exit !(a >= 85) }'; then
        fail "train_mnist" "test accuracy $acc%, expected 85% or more from 2000 images"
    elif ! "$bin" eval "$model" --data "$data" --json >"$tmp/eval.json" 2>"$tmp/err"; then
        fail "train_mnist" "convnet eval cannot read the model it saved"
    elif [ "$($py -c 'import json,sys; print("%.2f" % (100 * json.load(open(sys.argv[1]))["accuracy"]))' "$tmp/eval.json")" != "$acc" ]; then
        fail "train_mnist" "it printed $acc% but convnet eval finds $(cat "$tmp/eval.json")"
    else
        ok "train_mnist: $acc% on the test set, as convnet eval finds"
    fi
fi
"$ex/train_mnist" "$tmp/nowhere" >"$tmp/out" 2>"$tmp/err"
if [ $? = 1 ] && grep -q "^train_mnist: .*nowhere" "$tmp/err"; then
    ok "train_mnist: no data"
else
    fail "train_mnist: no data" "expected status 1 and the directory named on stderr"
fi

# --- classify: ten test images as PNG files, as convnet predict sees them ------------
if [ -f "$model" ] && "$bin" export --out "$tmp/png" --count 10 --data "$data" >/dev/null 2>&1; then
    same=0
    for png in "$tmp"/png/*.png; do
        "$ex/classify" "$model" "$png" >"$tmp/out" 2>"$tmp/err" || break
        mine=$(sed -n 's/.*: class \([0-9]*\), probability \([0-9.]*%\)$/\1 (\2)/p' "$tmp/out")
        theirs=$("$bin" predict "$model" "$png" --top 1 | sed 's/^[^:]*:  //')
        [ -n "$mine" ] && [ "$mine" = "$theirs" ] || break
        same=$((same + 1))
    done
    if [ $same = 10 ]; then
        ok "classify: the class and probability of convnet predict, 10 images"
    else
        fail "classify" "image $same: classify says '$(cat "$tmp/out")', predict '${theirs:-}'"
    fi
else
    fail "classify" "no model from train_mnist, or convnet export failed"
fi
"$ex/classify" "$model" "$root/README.md" >"$tmp/out" 2>"$tmp/err"
if [ $? = 1 ] && grep -q "^classify: .*README.md" "$tmp/err" && [ ! -s "$tmp/out" ]; then
    ok "classify: not an image"
else
    fail "classify: not an image" "expected status 1 and the file named on stderr"
fi

# --- embedded: 200 test images as raw floats; a subset of MNIST for convnet eval ------
# inputs.f32: (pixel / 255 - mean) / std with small.cfg's mean and std;
# sub/: the same images and their labels as IDX files
mean=$(sed -n 's/^mean *= *\([0-9.]*\).*/\1/p' "$root/models/small.cfg")
std=$(sed -n 's/^std *= *\([0-9.]*\).*/\1/p' "$root/models/small.cfg")
mkdir -p "$tmp/sub"
$py - "$data" "$tmp" "$mean" "$std" <<'EOF'
import array, struct, sys
data, tmp, mean, std, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), 200
images = open(data + "/t10k-images-idx3-ubyte", "rb").read()
labels = open(data + "/t10k-labels-idx1-ubyte", "rb").read()
pixels = images[16 : 16 + 784 * n]
array.array("f", [(p / 255 - mean) / std for p in pixels]).tofile(open(tmp + "/inputs.f32", "wb"))
open(tmp + "/labels.txt", "w").write("".join("%d\n" % b for b in labels[8 : 8 + n]))
open(tmp + "/sub/t10k-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 2051, n, 28, 28) + pixels)
open(tmp + "/sub/t10k-labels-idx1-ubyte", "wb").write(struct.pack(">II", 2049, n) + labels[8 : 8 + n])
EOF
if [ ! -f "$model" ]; then
    fail "embedded" "no model from train_mnist"
elif run "embedded" "$ex/embedded" "$model" "$tmp/inputs.f32" 5; then
    cp "$tmp/out" "$tmp/embedded.out"
    if ! "$bin" eval "$model" --data "$tmp/sub" --json >"$tmp/eval.json" 2>"$tmp/err"; then
        fail "embedded" "convnet eval on the same 200 images failed"
    elif ! $py - "$tmp" <<'EOF'; then
import json, sys
tmp = sys.argv[1]
labels = [int(l) for l in open(tmp + "/labels.txt")]
rows = [l.split() for l in open(tmp + "/embedded.out") if not l.startswith("latency")]
ev = json.load(open(tmp + "/eval.json"))
k = len(ev["confusion"])
confusion = [[0] * k for _ in range(k)]
for i, (s, c, p) in enumerate(rows):
    assert int(s) == i and 0 < float(p) <= 1, "line %d: %s" % (i, rows[i])
    confusion[labels[i]][int(c)] += 1
assert len(rows) == len(labels) == 200, "%d lines for 200 inputs" % len(rows)
assert confusion == ev["confusion"], "embedded %s, convnet eval %s" % (confusion, ev["confusion"])
EOF
        fail "embedded" "its classes do not make convnet eval's confusion matrix (above)"
    elif ! grep -Eq '^latency over 1000 calls: median [0-9.]+ us, 99th percentile [0-9.]+ us$' "$tmp/out"; then
        fail "embedded" "no latency line for 1000 calls"
    else
        ok "embedded: 200 raw inputs, the classes of convnet eval; $(tail -1 "$tmp/out")"
    fi
fi
# Its forward passes allocate nothing: as many mallocs for 10 passes over
# the inputs as for 2 (1600 passes more).  Not under the sanitizers, whose
# own allocator must come first.
if [ -n "${CONVNET_SANITIZER:-}" ]; then
    skip "embedded: no allocation per call" "the malloc counter cannot be preloaded under $CONVNET_SANITIZER"
elif ! cc -O2 -shared -fPIC "$root/tests/preload/malloc_count.c" -o "$tmp/malloc_count.so" 2>"$tmp/err"; then
    fail "embedded: no allocation per call" "cannot build tests/preload/malloc_count.c"
elif [ -f "$model" ]; then
    for r in 2 10; do
        MALLOC_COUNT_FILE="$tmp/mallocs.$r" LD_PRELOAD="$tmp/malloc_count.so" \
            "$ex/embedded" "$model" "$tmp/inputs.f32" $r >"$tmp/out" 2>"$tmp/err"
    done
    a=$(cat "$tmp/mallocs.2" 2>/dev/null) b=$(cat "$tmp/mallocs.10" 2>/dev/null)
    if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = 0 ]; then
        fail "embedded: no allocation per call" "the malloc counter counted nothing ('$a', '$b')"
    elif [ "$a" != "$b" ]; then
        fail "embedded: no allocation per call" "$a mallocs for 400 calls, $b for 2000: $(((b - a) / 1600)) per call"
    else
        ok "embedded: no allocation per call ($a mallocs for 400 calls and for 2000)"
    fi
fi

# --- from_string: its layers as the description says; it learns ------------------
if run "from_string" "$ex/from_string" 100; then
    first=$(sed -n 's/^step   1: loss \([0-9.]*\)$/\1/p' "$tmp/out")
    last=$(sed -n 's/^step 100: loss \([0-9.]*\)$/\1/p' "$tmp/out")
    third=$(sed -n 's/^a bar in third \([0-2]\): probabilities.*/\1/p' "$tmp/out")
    best=$(sed -n 's/^a bar in third .: probabilities //p' "$tmp/out" |
        awk '{ b = 0; for (i = 2; i <= 3; i++) if ($i > $(b + 1)) b = i - 1; print b }')
    if ! grep -Eq '^conv1 +conv +\(1, 8, 8\) -> \(4, 8, 8\) +40 parameters$' "$tmp/out" ||
        ! grep -Eq '^relu1 +relu +\(4, 8, 8\) -> \(4, 8, 8\) +0 parameters$' "$tmp/out" ||
        ! grep -Eq '^maxpool1 +maxpool +\(4, 8, 8\) -> \(4, 4, 4\) +0 parameters$' "$tmp/out" ||
        ! grep -Eq '^fc1 +fc +\(4, 4, 4\) -> \(3, 1, 1\) +195 parameters$' "$tmp/out" ||
        ! grep -Eq '^softmax1 +softmax +\(3, 1, 1\) -> \(3, 1, 1\) +0 parameters$' "$tmp/out"; then
        fail "from_string" "the layers are not the description's five"
    elif [ -z "$first" ] || [ -z "$last" ] || ! awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a / 10) }'; then
        fail "from_string" "the loss went from '$first' to '$last' in 100 steps, not down tenfold"
    elif [ -z "$third" ] || [ "$best" != "$third" ]; then
        fail "from_string" "the new image's bar is in third '$third', the network says '$best'"
    else
        ok "from_string: five layers, loss $first -> $last, a new image right"
    fi
fi

echo "examples: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
