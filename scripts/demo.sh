#!/bin/sh
# demo.sh - what 'make demo' runs: install what is missing, fetch MNIST,
# build, train the default network, evaluate it on the test set and write
# its report (one HTML page with every picture inside).
set -eu
start=$(date +%s)
sh scripts/deps.sh
sh scripts/fetch-data.sh mnist
make -s all
mkdir -p out
build/convnet train -o out/mnist.safetensors
# eval's first line names the data it found; the accuracy line is the one
# that counts here (and the demo fails without it).
build/convnet eval out/mnist.safetensors | grep -m 1 ' test images: accuracy '
build/convnet report out/mnist.safetensors -o out/report.html >/dev/null
end=$(date +%s)
echo "demo: done in $((end - start)) s; the model is out/mnist.safetensors, its log out/mnist.csv"
echo "report: $(pwd)/out/report.html (open it in a browser)"
