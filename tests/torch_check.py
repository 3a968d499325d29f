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
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402

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


def main():
    meta, t = read_safetensors(sys.argv[1])
    model, params, _, _ = torchnet.build(meta["convnet.model"])
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(t[name].reshape(p.shape))
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
    worst = {"loss": 0.0, "grad": 0.0, "final": 0.0}
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
        pscale = max(p.abs().max().item() for p in params.values())
        for n, p in params.items():  # weights and running statistics
            record("final", n, t["final." + n].reshape(p.shape), p, 1e-3 * pscale)
    tol = {"loss": 1e-4, "grad": 1e-3, "final": 1e-3}
    print("    PyTorch %s, %s (%s): worst relative difference: loss %.2g, step-0 gradients %.2g, "
          "weights after %d steps %.2g" % (torch.__version__, meta.get("name", "model"), kind, worst["loss"],
                                            worst["grad"], steps, worst["final"]))
    bad = [k for k in worst if not worst[k] <= tol[k]]
    if bad:
        print("    differs from PyTorch in: " + ", ".join(f"{k} ({where.get(k, '')})" for k in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
