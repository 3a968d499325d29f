#!/usr/bin/python3
"""torch_check.py FILE - replays convnet's training steps in PyTorch.

FILE (written by the test torch/matches_pytorch) is a safetensors file whose
metadata holds a model description; its tensors are the initial weights
(under PyTorch's names), the inputs x.<t> and labels y.<t> of each step, and
convnet's results: loss (one per step), grad.<name> (gradients of step 0) and
final.<name> (weights after the last step).  The script builds the same
network with torch.nn, runs the same steps with the lecture's SGD
(m = mu m + (1 - mu) g; theta -= lr (m + lambda theta)) and exits non-zero if
any result differs by more than the tolerance.
"""
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, e in header.items():
        b, t = e["data_offsets"]
        arr = np.frombuffer(data[b:t], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return meta, tensors


def parse_cfg(text):
    sections = []
    for line in text.splitlines():
        line = line.split("#")[0].split(";")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line[1:-1], {}))
        else:
            k, v = line.split("=", 1)
            sections[-1][1][k.strip()] = v.strip()
    return sections


def build(sections):
    net = dict(sections)["net"] if any(s[0] == "net" for s in sections) else None
    c, h, w = int(net["channels"]), int(net["height"]), int(net["width"])
    layers, names, counts = [], [], {}
    shape = (c, h, w)
    for kind, kv in sections:
        if kind in ("net", "train"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
        name = kv.get("name", f"{kind}{counts[kind]}")
        if kind == "conv":
            k, s, p = int(kv["size"]), int(kv.get("stride", 1)), int(kv.get("pad", 0))
            f = int(kv["filters"])
            layers.append(torch.nn.Conv2d(shape[0], f, k, s, p))
            shape = (f, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
        elif kind == "maxpool":
            k = int(kv.get("size", 2))
            s = int(kv.get("stride", 0)) or k
            layers.append(torch.nn.MaxPool2d(k, s))
            shape = (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
        elif kind == "fc":
            o = int(kv["outputs"])
            layers.append(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(shape[0] * shape[1] * shape[2], o)))
            shape = (o, 1, 1)
        elif kind in ("relu", "sigmoid", "tanh"):
            layers.append({"relu": torch.nn.ReLU(), "sigmoid": torch.nn.Sigmoid(), "tanh": torch.nn.Tanh()}[kind])
        elif kind == "softmax":
            layers.append(torch.nn.Flatten())  # the loss takes the logits
        names.append(name)
    return layers, names


def params_of(layers, names):
    out = {}
    for layer, name in zip(layers, names):
        mod = layer[1] if isinstance(layer, torch.nn.Sequential) else layer
        if hasattr(mod, "weight") and mod.weight is not None:
            out[name + ".weight"] = mod.weight
            out[name + ".bias"] = mod.bias
    return out


def main():
    meta, t = read_safetensors(sys.argv[1])
    layers, names = build(parse_cfg(meta["convnet.model"]))
    model = torch.nn.Sequential(*layers)
    params = params_of(layers, names)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(t[name].reshape(p.shape))
    lr, mu, decay = float(meta["lr"]), float(meta["momentum"]), float(meta["decay"])
    steps = int(meta["steps"])
    mom = {n: torch.zeros_like(p) for n, p in params.items()}
    worst = {"loss": 0.0, "grad": 0.0, "final": 0.0}
    for step in range(steps):
        x, y = t[f"x.{step}"], t[f"y.{step}"].long()
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        ours = float(t["loss"][step])
        worst["loss"] = max(worst["loss"], abs(ours - loss.item()) / max(abs(loss.item()), 1e-6))
        with torch.no_grad():
            for n, p in params.items():
                if step == 0:
                    g, mine = p.grad, t["grad." + n].reshape(p.shape)
                    err = (mine - g).abs().max().item() / max(g.abs().max().item(), 1e-12)
                    worst["grad"] = max(worst["grad"], err)
                mom[n].mul_(mu).add_((1 - mu) * p.grad)
                p.sub_(lr * (mom[n] + decay * p))
    with torch.no_grad():
        for n, p in params.items():
            mine = t["final." + n].reshape(p.shape)
            err = (mine - p).abs().max().item() / max(p.abs().max().item(), 1e-12)
            worst["final"] = max(worst["final"], err)
    tol = {"loss": 1e-4, "grad": 1e-3, "final": 1e-3}
    print("    PyTorch %s: worst relative difference: loss %.2g, step-0 gradients %.2g, "
          "weights after %d steps %.2g" % (torch.__version__, worst["loss"], worst["grad"], steps, worst["final"]))
    bad = [k for k in worst if not worst[k] <= tol[k]]
    if bad:
        print("    differs from PyTorch in: " + ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
