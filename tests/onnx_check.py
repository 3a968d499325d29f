#!/usr/bin/python3
"""onnx_check.py BUILD ORT_DIR TMP DATA - convnet export-onnx against ONNX
Runtime (tests/onnx.sh runs it).

Each network is trained briefly by 'convnet train' (512 images, one epoch:
the batch-normalisation running statistics move away from 0 and 1),
exported by 'convnet export-onnx', checked by Debian's python3-onnx
(onnx.checker with full_check, which infers every shape) and by what the
graph must say (opset, symbolic batch, class names, one BatchNormalization
per [batchnorm], no Dropout), then run on the same 1000 inputs by convnet
(BUILD/onnx_probs) and by ONNX Runtime (tests/onnx_run.js with the
onnxruntime-node package in ORT_DIR).  The probabilities must agree within
1e-5 and the best class on every input.  The networks: every shipped
model in models/, random networks that hold every layer kind (random
sizes, strides, padding, pooling windows, shortcuts), and one where rows
(an fc layer's output) and maps meet.  MNIST-shaped networks read DATA's
images; CIFAR-shaped ones random images in CIFAR-10's format.  Prints one
line per test and "onnx: P passed, F failed, K skipped"."""
import glob
import json
import os
import random
import subprocess
import sys

import numpy as np
import onnx

N = 1000     # inputs compared per network
TOL = 1e-5   # largest difference of a probability allowed

build, ort_dir, tmp, data = sys.argv[1:5]
convnet = os.path.join(build, "convnet")
probs_bin = os.path.join(build, "onnx_probs")
passed = failed = 0


def ok(name, what=""):
    global passed
    passed += 1
    print(f"ok    {name}{': ' + what if what else ''}", flush=True)


def fail(name, why):
    global failed
    failed += 1
    print(f"FAIL  {name}: {why}", flush=True)


class Failure(Exception):
    pass


def run(*cmd, want=0):
    """Runs cmd; its output when the exit status is want, else Failure."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != want:
        raise Failure(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])}... exited with "
                      f"{p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}")
    return p


# --- data -------------------------------------------------------------------

def mnist_inputs(path):
    """The first N test images of MNIST, (N, 1, 28, 28) bytes."""
    with open(os.path.join(data, "t10k-images-idx3-ubyte"), "rb") as f:
        raw = f.read(16 + N * 784)
    with open(path, "wb") as f:
        f.write(raw[16:])


def fake_cifar(d):
    """Random images in CIFAR-10's binary format: five training batches of 128
    records and a test batch of N (CIFAR-10 itself cannot be downloaded
    here).  Smooth-ish pictures (a random colour per quadrant plus noise), so
    that per-channel statistics are not all alike."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)

    def batch(name, n):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        base = rng.integers(0, 200, (n, 3, 2, 2)).repeat(16, axis=2).repeat(16, axis=3)
        pix = np.clip(base + rng.integers(0, 56, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
        rec = np.concatenate([labels[:, None], pix.reshape(n, 3072)], axis=1)
        rec.tofile(os.path.join(d, name))
        return pix

    for k in range(1, 6):
        batch(f"data_batch_{k}.bin", 128)
    return batch("test_batch.bin", N)


# --- networks ---------------------------------------------------------------

TRAIN = "[train]\nepochs = 1\nbatch = 32\nlr = 0.05\nmomentum = 0.9\nseed = {seed}\n"
KINDS = ["conv", "maxpool", "avgpool", "fc", "batchnorm", "dropout", "relu", "leaky",
         "sigmoid", "tanh", "gelu", "silu", "shortcut"]


def random_net(seed, channels, size):
    """A model description holding every layer kind, in a random order with
    random settings, each layer named l<i>."""
    r = random.Random(seed)
    kinds = KINDS[:]
    r.shuffle(kinds)
    kinds += [r.choice(KINDS) for _ in range(4)]
    while kinds[0] == "shortcut":  # it needs an earlier layer to add
        kinds.append(kinds.pop(0))
    norm = "normalise = channel" if channels == 3 else "mean = 0.13\nstd = 0.31"
    text = (f"[net]\nchannels = {channels}\nheight = {size}\nwidth = {size}\nclasses = 10\n"
            f"{norm}\n" + TRAIN.format(seed=seed))
    shape, made = (channels, size, size), []
    for i, k in enumerate(kinds):
        c, h, _ = shape
        keys = [f"name = l{i}"]
        if k == "conv":
            while True:
                kk = r.randint(1, 5)
                pad = r.randint(0, kk - 1)
                if kk <= h + 2 * pad:
                    break
            st, f = r.randint(1, 2), r.randint(2, 8)
            keys += [f"filters = {f}", f"size = {kk}", f"stride = {st}", f"pad = {pad}"]
            o = (h + 2 * pad - kk) // st + 1
            shape = (f, o, o)
        elif k == "avgpool" and r.random() < 0.3:
            keys.append("global = 1")
            shape = (c, 1, 1)
        elif k in ("maxpool", "avgpool"):
            kk, st = r.randint(1, min(3, h)), r.randint(0, 2)
            keys += [f"size = {kk}", f"stride = {st}"]
            o = (h - kk) // (st or kk) + 1
            shape = (c, o, o)
        elif k == "fc":
            o = r.randint(6, 24)
            keys.append(f"outputs = {o}")
            shape = (o, 1, 1)
        elif k == "batchnorm":
            keys += [f"eps = {r.choice(['1e-5', '1e-3'])}", "momentum = 0.3"]
        elif k == "dropout":
            keys.append("rate = 0.25")
        elif k == "leaky":
            keys.append(f"slope = {r.choice([0.01, 0.1, 0.3])}")
        elif k == "shortcut":
            keys.append("from = " + r.choice([n for n, s in made if s == shape]))
        made.append((f"l{i}", shape))
        text += f"[{k}]\n" + "\n".join(keys) + "\n"
    return text + "[fc]\noutputs = 10\n[softmax]\n"


# Rows (an fc layer's output) meet maps: a shortcut adds a map (10x1x1) to
# rows, batch normalisation and a convolution take a 1x1 map after fc, and
# the softmax takes a map.  (The map is a convolution's, not a global
# average's: batch normalisation of averages, which vary little from image to
# image, magnifies float rounding, convnet's more than ONNX Runtime's: with
# a global average here the probabilities differed by 6e-6 to 9e-6.)
ROWS_AND_MAPS = """[net]
channels = 1
height = 28
width = 28
classes = 10
mean = 0.13
std = 0.31
""" + TRAIN.format(seed=5) + """[conv]
filters = 10
size = 3
stride = 2
pad = 1
[leaky]
[conv]
filters = 10
size = 14
name = g
[fc]
outputs = 10
[shortcut]
from = g
[batchnorm]
momentum = 0.5
[conv]
filters = 10
size = 3
pad = 1
[fc]
outputs = 10
[batchnorm]
momentum = 0.5
[conv]
filters = 10
size = 1
[silu]
[softmax]
"""


# --- one network --------------------------------------------------------------

def check_graph(model, cfg_text, shape, classes):
    """What the exported graph must say, beyond onnx.checker."""
    if [(o.domain, o.version) for o in model.opset_import] != [("", 13)]:
        raise Failure(f"opset_import {model.opset_import}, expected the default domain's 13")
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    if inp.name != "input" or dims(inp) != ["batch", *shape]:
        raise Failure(f"input {inp.name} {dims(inp)}, expected input ['batch', {shape}]")
    if out.name != "probabilities" or dims(out) != ["batch", classes]:
        raise Failure(f"output {out.name} {dims(out)}")
    meta = {p.key: p.value for p in model.metadata_props}
    if json.loads(meta.get("class_names", "null")) != [str(k) for k in range(classes)]:
        raise Failure(f"class_names {meta.get('class_names')!r}")
    ops = [n.op_type for n in model.graph.node]
    want_bn = sum(1 for line in cfg_text.splitlines() if line.strip() == "[batchnorm]")
    if ops.count("BatchNormalization") != want_bn or "Dropout" in ops:
        raise Failure(f"{ops.count('BatchNormalization')} BatchNormalization nodes for "
                      f"{want_bn} [batchnorm], Dropout {'Dropout' in ops}")


def compare(name, cfg, data_dir, inputs, shape):
    """Trains, exports and compares one network; returns the line's figures."""
    stem = os.path.join(tmp, name.replace("/", "_").replace(" ", "_"))
    st, path = stem + ".safetensors", stem + ".onnx"
    run(convnet, "train", cfg, "--epochs", "1", "--limit", "512", "--val", "0", "--quiet",
        "--threads", "1", "--data", data_dir, "-o", st)
    run(convnet, "export-onnx", st, "-o", path, "--threads", "1")
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise Failure(f"onnx.checker: {str(e).strip()[:400]}")
    with open(cfg) as f:
        check_graph(model, f.read(), list(shape), 10)
    run(probs_bin, st, inputs, str(N), stem + ".convnet")
    run("node", os.path.join(os.path.dirname(__file__), "onnx_run.js"), ort_dir, path, inputs,
        str(N), *map(str, shape), stem + ".ort")
    a = np.fromfile(stem + ".convnet", dtype=np.float32).reshape(N, -1)
    b = np.fromfile(stem + ".ort", dtype=np.float32).reshape(N, -1)
    if a.shape != (N, 10) or b.shape != a.shape:
        raise Failure(f"probabilities of shapes {a.shape} and {b.shape}")
    diff = float(np.abs(a - b).max())
    agree = int((a.argmax(1) == b.argmax(1)).sum())
    figures = f"max |p_convnet - p_ort| {diff:.1e}, top class agrees on {agree}/{N}"
    if not diff <= TOL or agree != N:
        raise Failure(figures + f" (allowed: {TOL:.0e}, all)")
    return figures


def network(name, cfg, data_dir, inputs, shape):
    try:
        ok(name, compare(name, cfg, data_dir, inputs, shape))
    except Failure as e:
        fail(name, str(e))


def cli():
    """The command's help and refusals."""
    def expect(name, want, *args, says=""):
        p = subprocess.run([convnet, "export-onnx", *args], capture_output=True, text=True)
        text = p.stdout if want == 0 else p.stderr
        if p.returncode != want or says not in text:
            fail(name, f"exit status {p.returncode} (expected {want}), output "
                       f"{(p.stdout + p.stderr).strip()[:300]!r} lacks {says!r}")
        else:
            ok(name)

    expect("export-onnx --help", 0, "--help", says="usage: convnet export-onnx MODEL_FILE")
    expect("export-onnx without -o", 2, "m.safetensors", says="needs -o FILE.onnx")
    expect("export-onnx without a model", 2, "-o", "x.onnx", says="takes a model file")
    expect("export-onnx of a description", 2, "models/lenet.cfg", "-o", "x.onnx",
           says="is a model description")
    expect("export-onnx of a missing file", 1, os.path.join(tmp, "none.safetensors"), "-o",
           "x.onnx", says="none.safetensors")
    st = os.path.join(tmp, "models_small.cfg.safetensors")
    if os.path.exists(st):
        expect("export-onnx into a missing directory", 1, st, "-o",
               os.path.join(tmp, "no", "dir", "x.onnx"), says="no/dir/x.onnx")


def main():
    mnist = os.path.join(tmp, "mnist.u8")
    mnist_inputs(mnist)
    cifar_dir = os.path.join(tmp, "cifar")
    cifar = os.path.join(tmp, "cifar.u8")
    fake_cifar(cifar_dir).tofile(cifar)
    for cfg in sorted(glob.glob("models/*.cfg")):
        with open(cfg) as f:
            colour = "channels = 3" in f.read()
        if colour:
            network(cfg, cfg, cifar_dir, cifar, (3, 32, 32))
        else:
            network(cfg, cfg, data, mnist, (1, 28, 28))
    for seed, channels, size in [(1, 1, 28), (2, 1, 28), (3, 1, 28), (4, 3, 32)]:
        cfg = os.path.join(tmp, f"random{seed}.cfg")
        with open(cfg, "w") as f:
            f.write(random_net(seed, channels, size))
        network(f"random network {seed} ({channels}x{size}x{size})", cfg,
                cifar_dir if channels == 3 else data, cifar if channels == 3 else mnist,
                (channels, size, size))
    cfg = os.path.join(tmp, "rows_and_maps.cfg")
    with open(cfg, "w") as f:
        f.write(ROWS_AND_MAPS)
    network("rows meet maps", cfg, data, mnist, (1, 28, 28))
    cli()
    print(f"onnx: {passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
