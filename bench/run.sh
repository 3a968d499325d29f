#!/bin/sh
# run.sh [ARGS] - what 'make bench' (and make bench-alone) runs: installs what
# the comparison needs, builds, then bench/run.py ARGS (which installs ONNX
# Runtime for Node itself, through scripts/ort-install.sh, and skips that
# section, saying why, when npm cannot).  PyTorch (Debian's python3-torch)
# runs on whatever libblas.so.3 is installed; OpenBLAS is installed for it,
# since the reference BLAS would make it slower than anyone would run it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh --test
if ! readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 | grep -q openblas; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing OpenBLAS for PyTorch"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >/dev/null ||
            { apt-get update -qq >/dev/null && apt-get install -y -qq libopenblas0-pthread >/dev/null; }
    else
        echo "bench: PyTorch will use the reference BLAS; for a fair comparison run" >&2
        echo "       sudo apt-get install -y libopenblas0-pthread" >&2
    fi
fi
sh scripts/fetch-data.sh mnist >/dev/null
make -s all build/peak
exec /usr/bin/python3 bench/run.py "$@"
