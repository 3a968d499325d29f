#!/bin/sh
# ort-install.sh - ONNX Runtime for Node, the npm package
# onnxruntime-node@$ORT_VERSION, installed once with --ignore-scripts (its
# native library is in the package: nothing is downloaded at install time)
# into $CONVNET_CACHE/onnxruntime-node-VERSION (default ~/.cache/convnet),
# outside the repository.  Prints that directory, which holds
# node_modules/onnxruntime-node; fails, saying why on stderr, when npm cannot
# install it (no npm, no network).  Used by tests/onnx.sh and make bench.
set -u
ORT_VERSION=1.30.0
cache=${CONVNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convnet}
ort="$cache/onnxruntime-node-$ORT_VERSION"
if [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]; then
    command -v npm >/dev/null 2>&1 || {
        echo "ort-install: no npm (scripts/deps.sh installs it)" >&2
        exit 1
    }
    # Installed beside its final place, then moved: an interrupted install
    # leaves no half package to be mistaken for a whole one.
    log=$(mktemp "${TMPDIR:-/tmp}/convnet-ort-XXXXXX")
    if ! { mkdir -p "$cache" && rm -rf "$ort.part" &&
        npm install --prefix "$ort.part" --ignore-scripts --no-audit --no-fund \
            "onnxruntime-node@$ORT_VERSION" >"$log" 2>&1 &&
        mv "$ort.part" "$ort"; }; then
        tail -n 5 "$log" | sed 's/^/      npm| /' >&2
        echo "ort-install: npm install onnxruntime-node@$ORT_VERSION failed" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
echo "$ort"
