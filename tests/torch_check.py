#!/usr/bin/python3
"""torch_check.py - convnet against PyTorch (run by tests/test_torch.c).

torch_check.py replay FILE
    FILE is a safetensors file whose metadata holds a model description; its
    tensors are the initial weights (under the model file's names), the inputs
    x.<t> and labels y.<t> of each step, and convnet's results: loss (one per
    step), grad.<name> (gradients of step 0) and final.<name> (weights and
    running statistics after the last step).  The script builds the same
    network with scripts/torchnet.py, runs the same steps with the lecture's
    SGD (m = mu m + (1 - mu) g; theta -= lr (m + lambda theta)) or
    torch.optim's Adam(W), and compares the losses, the gradients, and the
    updates (final minus initial values: comparing the values themselves would
    let a large weight hide a wrong update).

torch_check.py model MODEL PROBS DATA README CONVNET
    Loads the model file MODEL (written by cn_model_save) into the network
    torchnet builds from its description, strictly (every tensor of the
    network from the file, no tensor of the file left over but the
    optimizer's), in evaluation mode (batch normalisation with the running
    statistics, no dropout), and classifies the MNIST test images in DATA.
    PROBS holds convnet's class probabilities for them ("probs", n x
    classes): the same best class on every image, and every probability
    within 1e-5.  Then runs the README's recipe for a model file in PyTorch
    (the ```python block of its section "Model files") as it is written, in
    the current directory (which must hold mnist.safetensors, scripts/ and
    data/mnist), and compares the accuracy it prints with what
    'CONVNET eval mnist.safetensors' prints: the same to 0.01%.

Exits non-zero when anything differs by more than its tolerance.
"""
import json
import os
import re
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402


def replay(path):
    meta, t = torchnet.read_safetensors(path)
    model, params, _, _ = torchnet.build(meta["convnet.model"])
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(t[name].reshape(p.shape))
    init = {n: p.detach().clone() for n, p in params.items()}
    lr, mu, decay = float(meta["lr"]), float(meta["momentum"]), float(meta["decay"])
    steps = int(meta["steps"])
    trained = {n: p for n, p in params.items() if p.requires_grad}
    mom = {n: torch.zeros_like(p) for n, p in trained.items()}
    kind = meta.get("optimizer", "sgd")
    opt = None
    if kind in ("adam", "adamw"):  # torch.optim's own, not a re-implementation
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(trained.values(), lr=lr, betas=(mu, float(meta["beta2"])), eps=float(meta["eps"]),
                  weight_decay=decay)
    worst = {"loss": 0.0, "grad": 0.0, "update": 0.0}
    where = {}

    def record(kind, name, mine, theirs, floor):
        """Largest difference on the scale of the tensor, or of the floor for
        tensors whose true value is about zero (a bias before batch norm)."""
        err = (mine - theirs).abs().max().item() / max(theirs.abs().max().item(), floor, 1e-30)
        if err > worst[kind]:
            worst[kind], where[kind] = err, name

    model.train()
    for step in range(steps):
        x, y = t[f"x.{step}"], t[f"y.{step}"].long()
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        ours = float(t["loss"][step])
        worst["loss"] = max(worst["loss"], abs(ours - loss.item()) / max(abs(loss.item()), 1e-6))
        with torch.no_grad():
            gscale = max(p.grad.abs().max().item() for p in trained.values())
            for n, p in trained.items():
                if step == 0:
                    record("grad", n, t["grad." + n].reshape(p.shape), p.grad, 1e-3 * gscale)
                if opt is None:  # the lecture's SGD
                    mom[n].mul_(mu).add_((1 - mu) * p.grad)
                    p.sub_(lr * (mom[n] + decay * p))
        if opt is not None:
            opt.step()
    with torch.no_grad():
        # The updates of the weights and of the running statistics, each on
        # its own scale or, where it is about zero, on a thousandth of the
        # largest update of its kind.
        theirs = {n: p - init[n] for n, p in params.items()}
        mine = {n: t["final." + n].reshape(p.shape) - init[n] for n, p in params.items()}
        scale = {k: max([theirs[n].abs().max().item() for n in params if k == (n in trained)] + [0.0])
                 for k in (True, False)}
        for n in params:
            record("update", n, mine[n], theirs[n], 1e-3 * scale[n in trained])
    tol = {"loss": 1e-4, "grad": 1e-3, "update": 1e-3}
    print("    PyTorch %s, %s (%s): worst relative difference: loss %.2g, step-0 gradients %.2g, "
          "updates over %d steps %.2g (%s)" % (torch.__version__, meta.get("name", "model"), kind,
                                               worst["loss"], worst["grad"], steps, worst["update"],
                                               where.get("update", "")))
    bad = [k for k in worst if not worst[k] <= tol[k]]
    if bad:
        print("    differs from PyTorch in: " + ", ".join(f"{k} ({where.get(k, '')})" for k in bad))
        return 1
    return 0


def predict(model_path, probs_path, data):
    meta, tensors = torchnet.read_safetensors(model_path)
    model = torchnet.build(meta["convnet.model"])[0]
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    model.load_state_dict(state)  # strict: raises on a missing or unexpected key
    model.eval()
    theirs = torchnet.read_safetensors(probs_path)[1]["probs"]
    images = torchnet.read_idx(os.path.join(data, "t10k-images-idx3-ubyte"))
    labels = torchnet.read_idx(os.path.join(data, "t10k-labels-idx1-ubyte")).long()
    n = theirs.shape[0]
    with torch.no_grad():
        mine = torch.cat([torch.softmax(model(model.prepare(x)), 1) for x in images[:n].split(500)])
    differ = (mine.argmax(1) != theirs.argmax(1)).nonzero().flatten().tolist()
    diff = (mine - theirs).abs().max().item()
    acc = (mine.argmax(1) == labels[:n]).double().mean().item()
    print("    PyTorch %s on %d MNIST test images: accuracy %.2f%%, best class differs on %d, "
          "largest probability difference %.2g" % (torch.__version__, n, 100 * acc, len(differ), diff))
    if differ:
        i = differ[0]
        print("    image %d: PyTorch says %d (p %.6f), convnet %d (p %.6f)" % (
            i, mine[i].argmax(), mine[i].max(), theirs[i].argmax(), theirs[i].max()))
    return 0 if not differ and diff <= 1e-5 else 1


def readme_recipe(readme):
    """The first ```python block of the README's section "Model files"."""
    with open(readme) as f:
        text = f.read()
    section = re.search(r"^## Model files.*?(?=^## )", text, re.S | re.M)
    block = section and re.search(r"^```python\n(.*?)^```", section.group(0), re.S | re.M)
    if not block:
        sys.exit(f"    {readme}: no ```python block in its section \"Model files\"")
    return block.group(1)


def recipe(readme, convnet):
    with open("recipe.py", "w") as f:
        f.write(readme_recipe(readme))
    run = subprocess.run([sys.executable, "recipe.py"], capture_output=True, text=True)
    printed = re.search(r"accuracy ([0-9.]+)%", run.stdout)
    if run.returncode != 0 or not printed:
        print("    the README's recipe failed (exit %d):\n%s%s" % (run.returncode, run.stdout, run.stderr))
        return 1
    ev = subprocess.run([convnet, "eval", "mnist.safetensors", "--data", "data/mnist", "--json"],
                        capture_output=True, text=True)
    if ev.returncode != 0:
        print("    convnet eval failed:\n" + ev.stdout + ev.stderr)
        return 1
    theirs, ours = float(printed.group(1)), 100 * json.loads(ev.stdout)["accuracy"]
    print("    the README's recipe prints accuracy %.2f%%; convnet eval: %.2f%%" % (theirs, ours))
    return 0 if abs(theirs - ours) <= 0.01 + 1e-9 else 1


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "replay":
        return replay(*args)
    if mode == "model":
        model, probs, data, readme, convnet = args
        return predict(model, probs, data) | recipe(readme, convnet)
    sys.exit(f"torch_check.py: unknown mode '{mode}'")


if __name__ == "__main__":
    sys.exit(main())
