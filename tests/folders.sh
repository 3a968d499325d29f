#!/bin/sh
# folders.sh BUILD - training from folders of pictures and CSV lists: the
# layouts, the cache (built once, up to date, built again when the folder
# changes), the byte-exact round trip of MNIST written as PNG files, the
# commands that read a model's folder data, bad input, and a data set four
# times larger than the memory a cgroup allows.  Ends with "folders: P
# passed, F failed, K skipped".
set -u
py=/usr/bin/python3
build=$(cd "$1" && pwd)
bin="$build/convnet"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-folders-XXXXXX")
cg=/sys/fs/cgroup/memory/convnet-folders-$$
trap 'umount "$tmp/ro" 2>/dev/null; rmdir "$cg" 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
skip() { skipped=$((skipped + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
fail() {
    failed=$((failed + 1))
    printf 'FAIL  %s: %s\n' "$1" "$2"
    [ -s "$tmp/out" ] && tail -n 8 "$tmp/out" | sed 's/^/      out| /'
    [ -s "$tmp/err" ] && tail -n 8 "$tmp/err" | sed 's/^/      err| /'
    return 0
}
# run WANT_STATUS CMD...: output in $tmp/out and $tmp/err; 0 if the status is WANT
run() {
    want=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" = "$want" ] && return 0
    echo "exit status $got, expected $want" >>"$tmp/err"
    return 1
}
# expect NAME out|err PATTERN...: after run, each pattern in the stream
expect() {
    name=$1 stream=$2
    shift 2
    for p in "$@"; do
        grep -q -- "$p" "$tmp/$stream" || { fail "$name" "std$stream lacks '$p'"; return 0; }
    done
    ok "$name"
}

mnist="$PWD/data/mnist"
cd "$tmp" || exit 1
# A small network for 28x28 grey pictures of 10 classes, quick to train.
cat >net.cfg <<'EOF'
[net]
channels = 1
height = 28
width = 28
classes = 10

[train]
epochs = 1
batch = 32
lr = 0.05
seed = 1

[conv]
filters = 4
size = 5

[maxpool]
size = 4

[fc]
outputs = 10

[softmax]
EOF
sed 's/classes = 10/classes = 3/; s/outputs = 10/outputs = 3/' net.cfg >net3.cfg

# MNIST's first test images as PNG files NNNNN-L.png, sorted into class folders.
# tree DIR FIRST COUNT [SET]
tree() {
    rm -rf x && mkdir x && "$bin" export --out x --data "$mnist" --set "${4:-test}" --first "$2" --count "$3" \
        >/dev/null || return 1
    for f in x/*.png; do
        b=${f##*/}
        l=${b%.png}
        l=${l##*-}
        mkdir -p "$1/$l" && mv "$f" "$1/$l/" || return 1
    done
}
if ! tree d 0 300; then
    echo "folders: cannot write pictures with convnet export (data/mnist missing?)"
    echo "folders: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
train() {
    want=$1
    shift
    run "$want" "$bin" train net.cfg --quiet -o m.safetensors "$@"
}

# --- a folder of class folders -----------------------------------------------
if train 0 --data d; then
    expect "train on a folder: the cache is built and the split stated" out \
        "cache: .*d/.convnet-cache/data-1x28x28-crop.safetensors (built" \
        "split: 240 train, 30 val, 30 test (seeded: --val-split 0.1 --test-split 0.1 of the 300" \
        "done: 1 epoch"
else fail "train on a folder" "failed"; fi
cp m.safetensors first.safetensors
if train 0 --data d; then
    expect "a second run finds the cache up to date" out "(up to date: 300 images"
else fail "a second run finds the cache up to date" "failed"; fi
cmp -s m.safetensors first.safetensors && ok "the second run trains the same model, bit for bit" ||
    fail "the second run trains the same model, bit for bit" "the model files differ"
cp d/3/$(ls d/3 | head -1) d/3/extra.png
if train 0 --data d; then
    expect "a changed folder is read again" out "the data changed: built again" "of the 301"
else fail "a changed folder is read again" "failed"; fi
if run 0 "$bin" eval m.safetensors; then
    expect "eval reads the model's folder data and its test part" out "on 30 test images"
else fail "eval reads the model's folder data" "failed"; fi
if run 0 "$bin" report m.safetensors -o report.html; then
    expect "report reads the model's folder data" out "report written to report.html (test accuracy"
else fail "report reads the model's folder data" "failed"; fi
if run 0 "$bin" viz m.safetensors --out viz; then
    [ -s viz/filters-conv1.png ] || ls viz | grep -q '^filters' && ok "viz reads the model's folder data" ||
        fail "viz reads the model's folder data" "no filters picture"
else fail "viz reads the model's folder data" "failed"; fi
# predict prepares new pictures as the folder reader read the training ones:
# levels as they are, so a picture and its negative are different inputs
# (predict's photo preparation would turn both into the same light ink on black)
one=$(ls d/3 | head -1)
"$py" -c 'import sys; from PIL import Image, ImageOps; ImageOps.invert(Image.open(sys.argv[1]).convert("L")).save(sys.argv[2])' \
    "d/3/$one" negative.png
if run 0 "$bin" predict m.safetensors "d/3/$one" negative.png --json --top 10; then
    if grep -q '"probability"' "$tmp/out" && [ "$(sed -n 1p "$tmp/out" | sed 's/^{"file": "[^"]*"//')" != "$(sed -n 2p "$tmp/out" | sed 's/^{"file": "[^"]*"//')" ] &&
        run 0 "$bin" predict m.safetensors "d/3/$one"; then
        expect "predict prepares pictures as the folder reader did" out "^fit: crop, levels as they are"
    else fail "predict prepares pictures as the folder reader did" "a picture and its negative gave the same probabilities"; fi
else fail "predict prepares pictures as the folder reader did" "failed"; fi
if run 0 "$bin" train --resume m.safetensors --epochs 2 --quiet; then
    expect "resume finds the same folder split" out "of the 301" "continuing at epoch 2"
else fail "resume finds the same folder split" "failed"; fi

# --- train/ and test/ folders: MNIST read back byte for byte ------------------
tree s/train 0 200 train && tree s/test 0 50 test
if run 0 "$bin" train net.cfg --quiet -o s.safetensors --data s --val 20; then
    expect "split folders are used" out "split: 180 train, 20 val (the last of train/: no val/ folder), 50 test"
else fail "split folders are used" "failed"; fi
# The cache's pixels and labels against the IDX files' (train/'s first, then test/'s).
if $py - s/.convnet-cache/data-1x28x28-crop.safetensors "$mnist" <<'EOF' 2>"$tmp/err"
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
h = struct.unpack('<Q', b[:8])[0]
head, d = json.loads(b[8:8 + h]), b[8 + h:]
p0, p1 = head['pixels']['data_offsets']
l0, l1 = head['labels']['data_offsets']
px, lb = d[p0:p1], list(struct.unpack('<%di' % ((l1 - l0) // 4), d[l0:l1]))
def idx(name, skip, n):
    return open('%s/%s' % (sys.argv[2], name), 'rb').read()[skip:skip + n]
want_px = idx('train-images-idx3-ubyte', 16, 200 * 784) + idx('t10k-images-idx3-ubyte', 16, 50 * 784)
want_lb = list(idx('train-labels-idx1-ubyte', 8, 200) + idx('t10k-labels-idx1-ubyte', 8, 50))
assert head['pixels']['shape'] == [250, 1, 28, 28], head['pixels']
assert px == want_px, 'pixels differ'
assert lb == want_lb, 'labels differ'
EOF
then ok "MNIST as PNG files reads back in IDX order, byte for byte"
else fail "MNIST as PNG files reads back in IDX order, byte for byte" "$(tail -1 "$tmp/err")"; fi

# --- a CSV list ---------------------------------------------------------------
mkdir -p pics && cp d/1/* d/2/* d/7/* pics/
{
    echo "file,label"
    for f in pics/*.png; do
        b=${f##*/}
        l=${b%.png}
        l=${l##*-}
        case $l in 1) n=one ;; 2) n='"two, or 2"' ;; *) n=seven ;; esac
        echo "\"$f\",$n"
    done
} >list.csv
if run 0 "$bin" train net3.cfg --quiet -o c.safetensors --data list.csv; then
    expect "a CSV list with quoted fields" out "cache: .*/.convnet-cache/list-1x28x28-crop.safetensors (built" "split:"
else fail "a CSV list with quoted fields" "failed"; fi
printf 'file,label\npics/a.png,one\npics/b.png\n' >bad.csv
run 1 "$bin" train net3.cfg --quiet -o c.safetensors --data bad.csv &&
    expect "a bad CSV line is named by its number" err "bad.csv:3: one field"
printf 'name,class\n' >bad2.csv
run 1 "$bin" train net3.cfg --quiet -o c.safetensors --data bad2.csv &&
    expect "a CSV list needs its header" err "bad2.csv:1: the first line must be the header file,label"

# --- bad input ----------------------------------------------------------------
echo "not a picture" >d/5/broken.png
if run 1 "$bin" train net.cfg --quiet -o b.safetensors --data d; then
    expect "an unreadable file is named and training refused" err "1 file in d cannot be read" \
        "d/5/broken.png:" "--skip-unreadable"
else fail "an unreadable file is named and training refused" "wrong status"; fi
if train 0 --data d --skip-unreadable; then
    expect "--skip-unreadable leaves it out and says so" out "skipped 1 unreadable file" "of the 301"
else fail "--skip-unreadable leaves it out and says so" "failed"; fi
i=0
while [ $i -lt 24 ]; do
    head -c 100 /dev/urandom >d/6/junk$i.jpg
    i=$((i + 1))
done
if run 1 "$bin" train net.cfg --quiet -o b.safetensors --data d; then
    listed=$(grep -c '^  d/' "$tmp/err")
    if [ "$listed" = 20 ]; then
        expect "25 unreadable files: the first 20 are listed and all counted" err \
            "25 files in d cannot be read" "the first 20"
    else fail "25 unreadable files: the first 20 are listed" "$listed listed"; fi
else fail "25 unreadable files" "wrong status"; fi
rm -f d/5/broken.png d/6/junk*.jpg
mkdir -p e/a e/b && cp d/1/$(ls d/1 | head -1) e/a/
run 1 "$bin" train net.cfg --quiet --data e && expect "an empty class folder is refused" err "class folder e/b holds no images"
rmdir e/b
run 1 "$bin" train net.cfg --quiet --data e && expect "a single class is refused" err "one class (a)"
mkdir -p flat && cp d/1/$(ls d/1 | head -1) flat/
run 1 "$bin" train net.cfg --quiet --data flat && expect "pictures without class folders are refused" err "has no class folders"
mkdir -p empty
run 1 "$bin" train net.cfg --quiet --data empty && expect "an empty folder gets the data readers' message" err "no data in empty"
mkdir -p three && cp -r d/1 d/2 d/3 three/
run 1 "$bin" train net.cfg --quiet -o t.safetensors --data three &&
    expect "a network and data whose classes differ are refused, naming the classes" err \
        'the network has 10 outputs' '3 classes: \["1","2","3"\]'
mkdir -p other && for c in 0 1 2 3 4 5 6 7 8 9; do cp -r d/$c other/n$c; done
cp first.safetensors r.safetensors
run 1 "$bin" train --resume r.safetensors --data other --quiet &&
    expect "resuming on data of other classes is refused with both lists" err \
        '\["n0","n1",' 'are not those the model was trained on, \["0","1",'

# --- where the cache goes -------------------------------------------------------
mkdir -p caches three2 && cp -r d/1 d/2 d/3 three2/
if run 0 "$bin" train net3.cfg --quiet -o t.safetensors --data three2 --cache caches; then
    ls caches | grep -q '^data-three2-[0-9a-f]*-1x28x28-crop.safetensors$' && [ ! -e three2/.convnet-cache ] &&
        ok "--cache DIR keeps the cache there" || fail "--cache DIR keeps the cache there" "$(ls caches)"
else fail "--cache DIR keeps the cache there" "failed"; fi
mkdir -p ro
if [ "$(id -u)" != 0 ]; then
    cp -r three ro/three && chmod a-w ro/three && rokind=chmod
elif mount -t tmpfs -o size=2m tmpfs ro 2>/dev/null; then
    cp -r three ro/three && mount -o remount,ro ro && rokind=mount
else rokind=; fi
if [ -n "$rokind" ]; then
    run 1 "$bin" train net3.cfg --quiet -o t.safetensors --data ro/three &&
        expect "a data folder that cannot be written says so and suggests --cache" err \
            "cannot keep the decoded images in ro/three/.convnet-cache" "give --cache DIR"
    [ "$rokind" = mount ] && umount ro
else
    skip "a data folder that cannot be written" "as root, it needs to mount a read-only tmpfs"
fi

# --- larger than memory ---------------------------------------------------------
# A 400 MB data cache (synthetic pictures written through the library's
# streaming writer) trained for one epoch in a memory cgroup of 100 MB: the
# cgroup counts the page cache too, so the pixels must be read from the
# mapped file and dropped as training goes; a loader that read the data into
# memory would be killed.
# A sanitizer's shadow memory and quarantine do not fit such a cgroup: under
# tests/asan.sh the run is skipped, and make test runs it.
if [ -n "${CONVNET_SANITIZER:-}" ]; then
    skip "a data set larger than memory" "not under $CONVNET_SANITIZER (its shadow memory does not fit a 100 MiB cgroup; make test runs it)"
elif [ -w /sys/fs/cgroup/memory ] && mkdir "$cg" 2>/dev/null &&
    echo 100M >"$cg/memory.limit_in_bytes" 2>/dev/null; then
    sed 's/channels = 1/channels = 3/; s/height = 28/height = 64/; s/width = 28/width = 64/; s/size = 4/size = 16/' \
        net.cfg >big.cfg
    sed -i 's/batch = 32/batch = 256/' big.cfg
    # shellcheck disable=SC2016
    sh -c 'echo $$ >"$1/cgroup.procs" && "$2" big.safetensors 35000 3 64 64 10 >/dev/null &&
           exec "$3" train big.cfg --data big.safetensors -o big-model.safetensors --quiet' \
        sh "$cg" "$build/synth_cache" "$bin" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    # The process's own memory (anonymous), sampled while it runs.
    anon=0
    while kill -0 $pid 2>/dev/null; do
        for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do
            a=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$p/status 2>/dev/null)
            [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
        done
        sleep 0.2
    done
    wait $pid
    rc=$?
    size=$(stat -c %s big.safetensors 2>/dev/null || echo 0)
    max=$(cat "$cg/memory.max_usage_in_bytes")
    limit=$(cat "$cg/memory.limit_in_bytes")
    hits=$(cat "$cg/memory.failcnt")
    ips=$(sed -n 's/.* \([0-9]*\) img\/s .*/\1/p' "$tmp/out" | tail -1)
    echo "      larger than memory: data $((size / 1048576)) MiB, cgroup limit $((limit / 1048576)) MiB," \
        "peak usage (with page cache) $((max / 1048576)) MiB, limit reached $hits times," \
        "peak anonymous memory $((anon / 1024)) MiB, ${ips:-?} images/s"
    if [ $rc != 0 ]; then
        fail "a data set 4 times larger than memory trains" "exit status $rc"
    elif [ "$size" -lt $((4 * limit)) ]; then
        fail "a data set 4 times larger than memory trains" "the data ($size bytes) is not 4 times the limit"
    elif [ "$anon" = 0 ] || [ "$anon" -gt $((size / 1024 / 4)) ]; then
        fail "a data set 4 times larger than memory trains" "anonymous memory $anon kB: not measured, or more than a quarter of the data"
    else
        expect "a data set 4 times larger than memory trains in flat memory" out "done: 1 epoch"
    fi
    # (a killed process's memory may take a moment to leave the cgroup)
    for i in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.3; done
else
    skip "a data set larger than memory" "no writable memory cgroup (cgroup v1 memory controller)"
fi

echo "folders: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
