#!/bin/sh
# onnx.sh BUILD - convnet export-onnx checked by Debian's python3-onnx and run
# by ONNX Runtime (tests/onnx_check.py says what is compared).  ONNX Runtime
# comes from npm: onnxruntime-node, installed once by scripts/ort-install.sh
# into a cache outside the repository.  Prints one line per test and "onnx:
# P passed, F failed, K skipped"; what cannot run here (no python3-onnx, no
# node, npm without network) is skipped, and said so.
set -u
build=${1:-build}
py=/usr/bin/python3
root=$(pwd)
data=${CONVNET_DATA:-$root/data/mnist}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnet-onnx-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

skip() {
    echo "skip  onnx export against ONNX Runtime: $1"
    echo "onnx: 0 passed, 0 failed, 1 skipped"
    exit 0
}
"$py" -c 'import onnx, numpy' 2>/dev/null || skip "no python3-onnx (scripts/deps.sh --test installs it)"
command -v node >/dev/null 2>&1 || skip "no node (scripts/deps.sh installs npm, which brings it)"
[ -x "$build/convnet" ] && [ -x "$build/onnx_probs" ] || skip "$build/convnet and $build/onnx_probs are not built (make)"
ort=$(sh "$root/scripts/ort-install.sh" 2>"$tmp/ort.log") || {
    sed 's/^/      /' "$tmp/ort.log"
    skip "$(tail -n 1 "$tmp/ort.log" | sed 's/^ort-install: //')"
}
"$py" "$root/tests/onnx_check.py" "$build" "$ort" "$tmp" "$data"
