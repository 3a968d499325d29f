#!/bin/sh
# explain.sh BUILD - tests of 'convnet explain' and 'predict --explain': the
# three methods write pictures of the right size, --true draws two maps,
# classes by name, and bad input (an unreadable image, a class out of range
# or not among the model's names, a layer that does not exist) is reported while the other images are still explained
# (exit status 1).  Trains a small model for a few seconds on MNIST (skips
# without data/mnist).  Ends "explain: P passed, F failed, K skipped".
set -u
py=/usr/bin/python3
bin="$(cd "$1" && pwd)/convnet"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-explain-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && tail -n 5 "$tmp/out" | sed 's/^/      out| /'
    [ -s "$tmp/err" ] && tail -n 5 "$tmp/err" | sed 's/^/      err| /'
    return 0
}
# run NAME WANT_STATUS CMD...: stdout in $tmp/out, stderr in $tmp/err
run() {
    name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" = "$want" ] || { fail "$name" "exit status $got, expected $want"; return 1; }
}
# png_size FILE: "W H" of a PNG file (its IHDR)
png_size() { $py -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print(*struct.unpack(">II", d[16:24]))' "$1"; }

data=${CONVNET_DATA:-data/mnist}
if [ ! -f "$data/train-images-idx3-ubyte" ] && [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
    skip "explain" "no MNIST in $data (make data)"
    echo "explain: $passed passed, $failed failed, $skipped skipped"
    exit 0
fi
cat >"$tmp/small.cfg" <<'CFG'
[net]
channels = 1
height = 28
width = 28
classes = 10
[train]
epochs = 1
batch = 64
lr = 0.1
momentum = 0.9
[conv]
filters = 8
size = 5
[relu]
[maxpool]
size = 2
[fc]
outputs = 10
[softmax]
CFG
# MNIST with named classes (a classes.txt beside the IDX files), so that
# --class and --true can take names
mkdir "$tmp/named"
for f in "$data"/*-ubyte*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$tmp/named/"; done
printf '%s\n' zero one two three four five six seven eight nine >"$tmp/named/classes.txt"
if run "train a small model" 0 "$bin" train "$tmp/small.cfg" --data "$tmp/named" --limit 4000 \
    -o "$tmp/m.safetensors" --threads 2; then ok "train a small model"; fi
run "export test images" 0 "$bin" export --data "$data" --out "$tmp/png" --count 3 && ok "export test images"
img=$(ls "$tmp/png"/*.png | head -1)

run "help" 0 "$bin" explain --help && grep -q -- "--method" "$tmp/out" && ok "help"
for m in gradcam saliency occlusion; do
    if run "$m" 0 "$bin" explain "$tmp/m.safetensors" "$img" --method "$m" -o "$tmp/$m.png"; then
        size=$(png_size "$tmp/$m.png")
        grep -q "$m" "$tmp/out" && [ ! -s "$tmp/err" ] && [ "${size%% *}" -gt 280 ] &&
            ok "$m" || fail "$m" "no picture or no line (size $size)"
    fi
done
# --occlusion and --true: two maps side by side, twice as wide
run "occlusion with the true class" 0 "$bin" explain "$tmp/m.safetensors" "$img" --occlusion \
    --patch 5 --stride 3 --class 1 --true 2 -o "$tmp/two.png" &&
    w1=$(png_size "$tmp/occlusion.png") && w2=$(png_size "$tmp/two.png") &&
    [ "${w2%% *}" -gt $((2 * ${w1%% *})) ] && ok "occlusion with the true class" ||
    fail "occlusion with the true class" "widths ${w1:-} and ${w2:-}"
# bad input: the other images are still explained, exit status 1
echo "not an image" >"$tmp/bad.png"
if run "an unreadable image" 1 "$bin" explain "$tmp/m.safetensors" "$tmp/bad.png" "$img" \
    --out "$tmp/dir"; then
    grep -q "bad.png" "$tmp/err" && [ -f "$tmp/dir/$(basename "$img" .png).gradcam.png" ] &&
        ok "an unreadable image" || fail "an unreadable image" "no message or no picture"
fi
if run "a class out of range" 1 "$bin" explain "$tmp/m.safetensors" "$img" --class 10 \
    -o "$tmp/x.png"; then
    grep -q "class 10 does not exist" "$tmp/err" && ok "a class out of range" ||
        fail "a class out of range" "no clear message"
fi
if run "a class by name" 0 "$bin" explain "$tmp/m.safetensors" "$img" --class Seven --true two \
    -o "$tmp/named.png"; then
    grep -q "seven" "$tmp/out" && ok "a class by name" || fail "a class by name" "no 'seven' in the line"
fi
if run "a class name the model lacks" 1 "$bin" explain "$tmp/m.safetensors" "$img" --class eleven \
    -o "$tmp/x.png"; then
    grep -q "no class 'eleven'; its classes are: zero, one, two" "$tmp/err" &&
        ok "a class name the model lacks" || fail "a class name the model lacks" "no list of names"
fi
if run "a layer that does not exist" 1 "$bin" explain "$tmp/m.safetensors" "$img" \
    --layer conv --out "$tmp/dir2"; then
    grep -q "no layer named 'conv'.*conv1" "$tmp/err" && ok "a layer that does not exist" ||
        fail "a layer that does not exist" "no clear message"
fi
run "-o with two images" 2 "$bin" explain "$tmp/m.safetensors" "$img" "$img" -o "$tmp/y.png" &&
    ok "-o with two images"
run "an unknown method" 2 "$bin" explain "$tmp/m.safetensors" "$img" --method lime &&
    grep -q "saliency, gradcam or occlusion" "$tmp/err" && ok "an unknown method"
if run "predict --explain" 0 "$bin" predict "$tmp/m.safetensors" "$tmp/png" --explain "$tmp/pe" \
    --method saliency; then
    n=$(ls "$tmp/pe" 2>/dev/null | grep -c '\.saliency\.png$')
    [ "$n" = 3 ] && ok "predict --explain" || fail "predict --explain" "$n pictures, expected 3"
fi
echo "explain: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
