"""python_test.py BUILD DATA - tests of the Python bindings (python/convnet.py)
against the command line built in BUILD, on the MNIST files in DATA.  Run by
tests/python.sh under /usr/bin/python3 in a scratch directory; prints one line
per test and ends with "python: P passed, F failed, K skipped"."""

import gc
import json
import os
import signal
import struct
import subprocess
import sys
import traceback

import numpy as np

build, data = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "python"))
os.environ["CONVNET_LIB"] = os.path.join(build, "libconvnet.so")
import convnet  # noqa: E402

cli = os.path.join(build, "convnet")
counts = {"ok": 0, "FAIL": 0, "skip": 0}


class Skip(Exception):
    pass


def test(fn):
    """Runs fn now as the test named by its docstring's first line."""
    name = fn.__doc__.strip().splitlines()[0]
    try:
        fn()
        word, why = "ok", ""
    except Skip as e:
        word, why = "skip", ": %s" % e
    except Exception as e:
        word = "FAIL"
        why = ": %s: %s" % (type(e).__name__, e)
        print("".join("      | " + line + "\n" for line in traceback.format_exc().splitlines()[-6:]), end="")
    counts[word] += 1
    print("%-4s  %s%s" % (word, name, why), flush=True)
    return fn


def run(*args, ok=True):
    """The command line's output; it must succeed (or fail when ok=False)."""
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    if (p.returncode == 0) != ok:
        raise AssertionError("convnet %s: exit status %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def raises(kind, fn, *words):
    """fn() must raise kind with every word in its message; returns it."""
    try:
        fn()
    except kind as e:
        for w in words:
            assert w in str(e), "%s's message %r lacks %r" % (type(e).__name__, str(e), w)
        return e
    raise AssertionError("no %s raised" % kind.__name__)


def close(a, b, tol, what):
    d = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    assert d <= tol, "%s differ by %.3g (allowed %.3g)" % (what, d, tol)


def pgm(path, pixels):
    """An 8-bit grey PGM file of pixels (H, W)."""
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (pixels.shape[1], pixels.shape[0]) + pixels.tobytes())


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# A model trained by the command line, and the data sets.
conv_cfg = os.path.join(root, "tests", "fixtures", "conv.cfg")
run("train", conv_cfg, "--data", data, "--limit", "3000", "--val", "1000", "--epochs", "1", "--quiet",
    "-o", "conv.safetensors")
test_x, test_y = convnet.load_data(data, "test")
train_x, train_y = convnet.load_data(data, "train")
model = convnet.Model.load("conv.safetensors")

# A small network for the training tests, as text.
DESCRIPTION = """[net]
channels = 1
height = 28
width = 28
classes = 10
mean = 0.1307
std = 0.3081

[train]
epochs = 1
batch = 32
lr = 0.05
momentum = 0.9
seed = 5

[conv]
filters = 8
size = 5

[maxpool]
size = 2

[relu]

[fc]
outputs = 10

[softmax]
"""


@test
def _():
    """library: loaded from BUILD ($CONVNET_LIB)"""
    assert os.path.samefile(convnet.library_path(), os.path.join(build, "libconvnet.so")), convnet.library_path()


@test
def _():
    """library: found beside the repository, or named; a bad path is an OSError"""
    code = "import convnet, sys; print(convnet.library_path())"
    env = {k: v for k, v in os.environ.items() if k != "CONVNET_LIB"}
    env["PYTHONPATH"] = os.path.join(root, "python")
    repo_lib = os.path.join(root, "build", "libconvnet.so")
    if os.path.exists(repo_lib):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert os.path.samefile(out.stdout.strip(), repo_lib), out.stdout
    env["CONVNET_LIB"] = "/nowhere/libconvnet.so"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "OSError: cannot load the convnet library" in out.stderr, out.stderr
    assert "/nowhere/libconvnet.so (no such file)" in out.stderr, out.stderr
    del env["CONVNET_LIB"]
    code = "import convnet; print(convnet.load_library(%r))" % os.path.join(build, "libconvnet.so.0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("libconvnet.so.0"), out.stdout


@test
def _():
    """load: input shape, classes, layers, tensors and recipe as convnet info"""
    info = run("info", "conv.safetensors").stdout
    assert model.input_shape == (1, 28, 28) and model.classes == 10
    assert "input 1x28x28, 10 classes" in info
    layers = model.layers
    for layer in layers:  # "conv1        conv            8x24x24          208        115,200"
        row = "%s %s %s %s %s" % (layer.name, layer.kind, "x".join(map(str, layer.output)),
                                  "{:,}".format(layer.params), "{:,}".format(layer.macs))
        assert row in " ".join(" ".join(line.split()) for line in info.splitlines()), row
    assert [layer.kind for layer in layers] == ["conv", "maxpool", "relu", "conv", "maxpool", "relu", "fc", "softmax"]
    params = model.parameters()
    assert list(params) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"]
    assert params["conv2.weight"].shape == (16, 8, 5, 5) and params["fc1.weight"].shape == (10, 256)
    assert sum(a.size for a in params.values()) == sum(layer.params for layer in layers) == 5994
    assert model.buffers() == {}
    r = model.recipe
    assert (r["lr"], r["lr_policy"], r["batch"], r["seed"], r["epochs"]) == (0.5, "onecycle", 64, 2, 1), r
    assert model.state["epoch"] == 1 and model.state["global_step"] == 3000 // 64
    assert "[conv]" in model.description


@test
def _():
    """evaluate: the accuracy, loss and confusion matrix of convnet eval"""
    ev = model.evaluate(test_x, test_y)
    js = json.loads(run("eval", "conv.safetensors", "--data", data, "--json").stdout)
    assert js["n"] == len(test_y) == 10000
    close(ev.accuracy, js["accuracy"], 5e-7, "accuracies")
    close(ev.loss, js["loss"], 5e-7, "losses")
    assert (ev.confusion == np.array(js["confusion"])).all(), "confusion matrices differ"
    assert 0.5 < ev.accuracy < 1, ev.accuracy
    assert ev.predicted.shape == ev.probability.shape == (10000,)
    assert abs((ev.predicted == test_y).mean() - ev.accuracy) < 1e-12


@test
def _():
    """predict: the classes and probabilities evaluate gives, any batch size"""
    p = model.predict(test_x)
    assert p.shape == (10000, 10) and p.dtype == np.float32
    close(p.sum(1), 1, 1e-5, "row sums and 1")
    ev = model.evaluate(test_x, test_y)
    assert (p.argmax(1) == ev.predicted).all()
    close(p.max(1), ev.probability, 1e-6, "probabilities")
    close(model.predict(test_x[:300], batch=7), p[:300], 1e-6, "batches of 7 and 256")
    one = model.predict(test_x[42])
    assert one.shape == (10,)
    close(one, p[42], 1e-6, "one sample alone and in a batch")
    # predict's forward-only network (cn_model_reserve_inference) gives way
    # to the full one when training follows, and the model trains as one
    # that never predicted does
    fresh = convnet.Model.create(DESCRIPTION, epochs=1)
    other = convnet.Model.create(DESCRIPTION, epochs=1)
    fresh.predict(test_x[:600], batch=512)
    for m in (fresh, other):
        m.train(train_x[:640], train_y[:640])
    for name, w in fresh.parameters().items():
        assert (w == other.parameters()[name]).all(), name
    close(fresh.predict(test_x[:50]), other.predict(test_x[:50]), 0, "after training")


@test
def _():
    """predict: prepared float input gives what pixels give"""
    x = model.prepare(test_x[:200])
    assert x.dtype == np.float32 and x.shape == (200, 1, 28, 28)
    close(x, (test_x[:200] / 255.0 - 0.1307) / 0.3081, 1e-5, "prepared input and (p/255 - mean)/std")
    p = model.predict(test_x[:200])
    close(model.predict(x), p, 1e-6, "float and uint8 predictions")
    close(model.predict(x.astype(np.float64)), p, 1e-6, "float64 and uint8 predictions")


@test
def _():
    """predict_image: the probabilities of convnet predict on image files"""
    files = []
    for i in range(4):  # dark ink on paper, larger than the input
        f = "digit%d.pgm" % i
        big = np.kron(255 - test_x[i, 0], np.ones((3, 3), np.uint8))
        pgm(f, np.pad(big, 10, constant_values=255))
        files.append(f)
    try:
        from PIL import Image

        rgb = np.stack([test_x[7, 0], test_x[7, 0] // 2, np.zeros((28, 28), np.uint8)], -1)
        Image.fromarray(rgb, "RGB").save("colour.png")
        files.append("colour.png")
    except ImportError:
        pass
    out = run("predict", "conv.safetensors", *files, "--json", "--top", "10").stdout.splitlines()
    assert len(out) == len(files)
    probs = model.predict_image(files)
    assert probs.shape == (len(files), 10)
    for f, line, p in zip(files, out, probs):
        d = json.loads(line)
        want = np.zeros(10)
        for t in d["top"]:
            want[t["index"]] = t["probability"]
        close(p, want, 1e-6, "%s's probabilities" % f)  # printed with 6 decimals
        assert p.argmax() == d["index"]
        close(model.predict_image(f), p, 1e-6, "one file alone and in a list")
    right = sum(p.argmax() == test_y[i] for i, p in enumerate(probs[:4]))
    assert right >= 3, "%d of 4 digits right" % right
    x = model.image_input(files[0], fit="stretch")
    assert x.shape == (1, 28, 28) and x.dtype == np.uint8
    assert convnet.read_image(files[0]).shape == (104, 104, 1)


@test
def _():
    """load_idx and load_data: the IDX files as Python reads them"""
    with open(os.path.join(data, "t10k-images-idx3-ubyte"), "rb") as f:
        magic, n, h, w = struct.unpack(">4I", f.read(16))
        pix = np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)
    with open(os.path.join(data, "t10k-labels-idx1-ubyte"), "rb") as f:
        f.read(8)
        lab = np.frombuffer(f.read(), np.uint8)
    assert magic == 0x803
    x, y = convnet.load_idx(os.path.join(data, "t10k-images-idx3-ubyte"), os.path.join(data, "t10k-labels-idx1-ubyte"))
    assert x.dtype == np.uint8 and y.dtype == np.int32
    assert (x == pix).all() and (y == lab).all() and (test_x == pix).all() and (test_y == lab).all()


trained = {}


@test
def _():
    """train: a description as text on numpy arrays learns MNIST"""
    m = convnet.Model.create(DESCRIPTION, threads=2)
    batches = []
    hist = m.train(train_x[:4000], train_y[:4000], train_x[-1000:], train_y[-1000:],
                   on_batch=lambda p: batches.append((p.step, p.steps, p.loss)))
    assert [b[0] for b in batches] == list(range(1, 4000 // 32 + 1)), "on_batch's steps"
    assert len(hist) == 1 and hist[0].epoch == 0 and hist[0].val_accuracy is not None
    assert batches[-1][2] < batches[0][2], "the loss did not fall"
    ev = m.evaluate(test_x, test_y)
    assert ev.accuracy > 0.85, "test accuracy %.4f" % ev.accuracy
    assert m.state == {"epoch": 1, "step": 0, "global_step": 125}
    m.save("text.safetensors")
    trained["text"] = ev.accuracy
    # the file is a model file like any other
    js = json.loads(run("eval", "text.safetensors", "--data", data, "--json").stdout)
    close(js["accuracy"], ev.accuracy, 5e-7, "the accuracies of convnet eval and Python")
    again = convnet.Model.load("text.safetensors")
    close(again.predict(test_x[:500]), m.predict(test_x[:500]), 0, "predictions after save and load")
    assert again.source == "text.safetensors (its model description)" and again.description == DESCRIPTION


@test
def _():
    """train: the same seed, data and recipe give convnet train's model file, byte for byte"""
    with open("same.cfg", "w") as f:
        f.write(DESCRIPTION)
    run("train", "same.cfg", "--data", data, "--limit", "2000", "--val", "1000", "--lr", "0.03",
        "--epochs", "1", "--quiet", "-o", "cli.safetensors")
    m = convnet.Model.create("same.cfg", lr=0.03)
    m.train(train_x[:2000], train_y[:2000], train_x[-1000:], train_y[-1000:], epochs=1)
    # convnet train notes the data it read in the file; so does this model
    cli = convnet.Model.load("cli.safetensors")
    keys = ("data.dir", "data.limit", "data.val", "data.fingerprint", "data.kind")
    assert cli.info("data.limit") == "2000" and cli.info("data.val") == "1000"
    for k in keys:
        m.set_info(k, cli.info(k))
    cli.close()
    m.save("py.safetensors")
    with open("cli.safetensors", "rb") as a, open("py.safetensors", "rb") as b:
        assert a.read() == b.read(), "the files differ"
    # class names: kept in the file, read back; a wrong count refused
    assert m.class_names is None
    names = ["n%d" % k for k in range(10)]
    m.class_names = names
    m.save("named.safetensors")
    named = convnet.Model.load("named.safetensors")
    assert named.class_names == names, named.class_names
    raises(ValueError, lambda: setattr(named, "class_names", names[:3]), "3 class names")
    raises(convnet.Error, lambda: setattr(named, "class_names", ["a"] * 10), "same name")
    named.close()
    # and the comparison can tell: another seed is another model
    m = convnet.Model.create("same.cfg", lr=0.03, seed=6)
    m.train(train_x[:2000], train_y[:2000], epochs=1)
    m.save("seed6.safetensors")
    with open("cli.safetensors", "rb") as a, open("seed6.safetensors", "rb") as b:
        assert a.read() != b.read(), "seed 6 gave seed 5's model"


@test
def _():
    """train: stopped after an epoch, saved, loaded and resumed = trained at once"""
    x, y = train_x[:1000], train_y[:1000]
    m = convnet.Model.create(DESCRIPTION, epochs=2, lr_policy="cosine")
    assert len(m.train(x, y, on_epoch=lambda p: False)) == 1  # stop after the first
    assert m.state["epoch"] == 1
    m.save("half.safetensors")
    m.close()
    m = convnet.Model.load("half.safetensors")
    assert m.state["epoch"] == 1 and m.recipe["epochs"] == 2 and m.recipe["lr_policy"] == "cosine"
    assert [p.epoch for p in m.train(x, y)] == [1]
    m.save("resumed.safetensors")
    whole = convnet.Model.create(DESCRIPTION, epochs=2, lr_policy="cosine")
    assert [p.epoch for p in whole.train(x, y)] == [0, 1]
    whole.save("whole.safetensors")
    with open("resumed.safetensors", "rb") as a, open("whole.safetensors", "rb") as b:
        assert a.read() == b.read(), "1 + 1 epochs differ from 2"


@test
def _():
    """train: a callback stops training or raises; the model stays usable"""
    m = convnet.Model.create(DESCRIPTION)
    hist = m.train(train_x[:1000], train_y[:1000], on_batch=lambda p: p.step < 5)
    assert hist == [] and m.state == {"epoch": 0, "step": 5, "global_step": 5}, m.state

    def boom(p):
        raise RuntimeError("boom at %d" % p.step)

    raises(RuntimeError, lambda: m.train(train_x[:1000], train_y[:1000], on_batch=boom), "boom at 6")
    assert m.state["step"] == 6
    m.train(train_x[:1000], train_y[:1000])
    assert m.state == {"epoch": 1, "step": 0, "global_step": 31}, m.state


@test
def _():
    """train: Ctrl-C stops after the batch, raises KeyboardInterrupt, and the model saves"""
    # faulthandler: a crash says where
    child = """
import sys, faulthandler, numpy as np
faulthandler.enable()
sys.path.insert(0, %r)
import convnet
x, y = convnet.load_data(%r, "train")
m = convnet.Model.create(%r, epochs=50)
try:
    m.train(x[:4000], y[:4000], on_batch=lambda p: print("training", flush=True) if p.global_step == 3 else None)
except KeyboardInterrupt:
    m.save("interrupted.safetensors")
    print("interrupted at", m.state["epoch"], m.state["global_step"], flush=True)
""" % (os.path.join(root, "python"), data, DESCRIPTION)
    # The child starts with Ctrl-C's default action, as from a terminal: a
    # suite started in the background by a shell without job control (nohup
    # make test-stress &) inherits SIGINT ignored, and a Python started so
    # ignores it too; the child then trained to the end and said nothing.
    p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = p.stdout.readline()
    if first == "training\n":
        p.send_signal(2)
    else:
        p.kill()
    out = p.stdout.read()
    rc = p.wait(60)
    err = p.stderr.read()
    assert first == "training\n" and rc == 0 and out.startswith("interrupted at 0 "), \
        "first line %r, exit status %d, then %r; stderr: %s" % (first, rc, out, err[-1500:])
    with convnet.Model.load("interrupted.safetensors") as m:
        assert m.state["global_step"] == int(out.split()[3]) >= 3, (m.state, out)


@test
def _():
    """parameters: set_parameters changes what the model computes"""
    m = convnet.Model.load("conv.safetensors")
    params = m.parameters()
    w = params["fc1.bias"].copy()
    w[3] += 100.0
    m.set_parameters({"fc1.bias": w})
    assert (m.parameters()["fc1.bias"] == w).all()
    assert (m.predict(test_x[:50]).argmax(1) == 3).all()
    raises(KeyError, lambda: m.set_parameters({"fc9.bias": w}), "fc9.bias", "fc1.bias")
    raises(ValueError, lambda: m.set_parameters({"fc1.bias": w[:5]}), "(10,)", "(5,)")


@test
def _():
    """errors: a missing file is an Error with convnet's message"""
    e = raises(convnet.Error, lambda: convnet.Model.load("nowhere.safetensors"), "nowhere.safetensors")
    assert e.name == "CN_ERR_IO" and not isinstance(e, ValueError)
    p = run("eval", "nowhere.safetensors", "--data", data, ok=False)
    assert e.message in p.stderr, "convnet eval says %r, Python %r" % (p.stderr, e.message)
    raises(convnet.Error, lambda: convnet.Model.create("nowhere.cfg"), "nowhere.cfg")
    e = raises(convnet.Error, lambda: model.predict_image("nowhere.png"), "nowhere.png")
    assert e.name == "CN_ERR_IO"
    e = raises(convnet.Error, lambda: model.predict_image(conv_cfg), "conv.cfg", "not an image")
    assert e.name == "CN_ERR_FORMAT"
    pgm("blank.pgm", np.zeros((28, 28), np.uint8))
    e = raises(convnet.Error, lambda: model.predict_image("blank.pgm"), "blank.pgm", "blank")
    e = raises(convnet.Error, lambda: convnet.Model.load(conv_cfg), "is a model description")
    assert e.name == "CN_ERR_FORMAT"
    e = raises(convnet.Error, lambda: model.save("/nonexistent/dir/m.safetensors"), "/nonexistent/dir/m.safetensors")
    assert e.name == "CN_ERR_IO"
    raises(convnet.Error, lambda: convnet.load_data("/nonexistent", "test"), "/nonexistent")


@test
def _():
    """errors: a malformed description is an Error with convnet's message"""
    bad = DESCRIPTION.replace("outputs = 10", "outputs = ten")
    line = bad.splitlines().index("outputs = ten") + 1
    e = raises(convnet.Error, lambda: convnet.Model.create(bad), "<string>:%d: 'outputs' must be a whole number, got 'ten'" % line)
    assert e.name == "CN_ERR_SPEC" and e.status == 5
    raises(convnet.Error, lambda: convnet.Model.create(bad, source="mine.cfg"), "mine.cfg:%d: " % line)
    with open("bad.cfg", "w") as f:
        f.write(bad)
    e = raises(convnet.Error, lambda: convnet.Model.create("bad.cfg"), "bad.cfg:%d: " % line)
    p = run("train", "bad.cfg", "--data", data, ok=False)
    assert e.message in p.stderr, "convnet train says %r, Python %r" % (p.stderr, e.message)
    e = raises(convnet.Error, lambda: convnet.Model.create(DESCRIPTION, lr="fast"), "lr takes a number", "'fast'")
    assert e.name == "CN_ERR_ARG"
    raises(convnet.Error, lambda: convnet.Model.create(DESCRIPTION, lr_polcy="step"), "no key 'lr_polcy'", "lr_policy")
    raises(convnet.Error, lambda: model.set_recipe(batch=0), "batch")
    assert model.recipe["batch"] == 64, "a refused change changed the recipe"
    raises(TypeError, lambda: convnet.Model.create(42), "description")


@test
def _():
    """errors: a wrong shape or type is a ValueError or TypeError"""
    raises(ValueError, lambda: model.predict(test_x[:5, 0]), "(N, 1, 28, 28)", "(5, 28, 28)", "x[:, None]")
    raises(ValueError, lambda: model.predict(np.zeros((2, 3, 32, 32), np.uint8)), "(2, 3, 32, 32)")
    raises(TypeError, lambda: model.predict(test_x.astype(np.int32)), "int32")
    raises(TypeError, lambda: model.predict(test_x.tolist()), "list")
    raises(ValueError, lambda: model.predict(test_x, batch=0), "batch")
    # data that does not fit: the library's ShapeError, also a ValueError
    colour = np.zeros((4, 3, 32, 32), np.uint8)
    e = raises(convnet.ShapeError, lambda: model.evaluate(colour, [0, 1, 2, 3]), "3x32x32", "1x28x28")
    assert isinstance(e, ValueError) and isinstance(e, convnet.Error) and e.name == "CN_ERR_SHAPE"
    m = convnet.Model.create(DESCRIPTION, source="net.cfg")
    raises(convnet.ShapeError, lambda: m.train(colour, [0, 1, 2, 3]), "net.cfg:1: [net] takes images of 1x28x28", "3x32x32")
    raises(convnet.ShapeError, lambda: m.train(test_x[:100], test_y[:100] + 5), "classes = 10", "15 classes")
    raises(ValueError, lambda: m.train(test_x[:100], test_y[:99]), "one label per image")
    raises(ValueError, lambda: m.train(test_x[:100], test_y[:100] - 1), ">= 0")
    raises(TypeError, lambda: m.train(test_x[:100].astype(np.float32), test_y[:100]), "uint8")
    raises(ValueError, lambda: m.train(test_x[:100], test_y[:100], test_x[:10]), "val_labels")
    m.close()
    raises(ValueError, lambda: m.predict(test_x[:1]), "closed")
    m.close()  # twice: nothing


@test
def _():
    """handles: models made and freed many times do not leak memory or files"""
    def fds():
        return len(os.listdir("/proc/self/fd"))

    def cycle(i):
        if i % 2:
            with convnet.Model.load("conv.safetensors") as m:
                m.predict(test_x[:64])
        else:
            m = convnet.Model.create(DESCRIPTION, batch=64)  # dropped: freed when collected
            m.predict(test_x[:64])

    for i in range(20):
        cycle(i)
    gc.collect()
    before, fd0 = rss_mib(), fds()
    for i in range(60):
        cycle(i)
    gc.collect()
    grew = rss_mib() - before
    # a model and its activations take over 1 MiB (about 20 on this
    # machine): 60 leaked would be hundreds
    assert grew < 16, "resident memory grew by %.1f MiB over 60 models" % grew
    assert fds() == fd0, "open files: %d before, %d after" % (fd0, fds())


@test
def _():
    """guard backend: the same predictions through the device seam"""
    with convnet.Model.load("conv.safetensors", backend="guard", threads=1) as g:
        assert g.threads == 1
        close(g.predict(test_x[:100]), model.predict(test_x[:100]), 1e-6, "guard and cpu predictions")
    raises(convnet.Error, lambda: convnet.Model.load("conv.safetensors", backend="tpu"), "tpu")


print("python: %d passed, %d failed, %d skipped" % (counts["ok"], counts["FAIL"], counts["skip"]))
sys.exit(1 if counts["FAIL"] else 0)
