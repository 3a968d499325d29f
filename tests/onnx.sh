#!/bin/sh
# onnx.sh BUILD - convnet export-onnx checked by Debian's python3-onnx and run
# by ONNX Runtime (tests/onnx_check.py says what is compared).  ONNX Runtime
# comes from npm: onnxruntime-node@$ORT_VERSION, installed once with
# --ignore-scripts (its native library is in the package) into
# $CONVNET_CACHE/onnxruntime-node-VERSION (default ~/.cache/convnet), outside
# the repository.  Prints one line per test and "onnx: P passed, F failed,
# K skipped"; what cannot run here (no python3-onnx, no node, npm without
# network) is skipped, and said so.
set -u
build=${1:-build}
py=/usr/bin/python3
ORT_VERSION=1.30.0
root=$(pwd)
data=${CONVNET_DATA:-$root/data/mnist}
cache=${CONVNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convnet}
ort="$cache/onnxruntime-node-$ORT_VERSION"
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
if [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]; then
    # Installed beside its final place, then moved: an interrupted install
    # leaves no half package to be mistaken for a whole one.
    mkdir -p "$cache" && rm -rf "$ort.part" &&
        npm install --prefix "$ort.part" --ignore-scripts --no-audit --no-fund \
            "onnxruntime-node@$ORT_VERSION" >"$tmp/npm.log" 2>&1 &&
        mv "$ort.part" "$ort" ||
        { tail -n 5 "$tmp/npm.log" | sed 's/^/      npm| /'; skip "npm install onnxruntime-node@$ORT_VERSION failed"; }
fi
"$py" "$root/tests/onnx_check.py" "$build" "$ort" "$tmp" "$data"
