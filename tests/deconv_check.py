#!/usr/bin/python3
"""deconv_check.py - the deconvnet (Zeiler and Fergus) and guided
backpropagation in PyTorch against convnet's (run by tests/test_explain.c).

deconv_check.py MODEL PIXELS PROJ MODULE UNITS

MODEL is a model file, PIXELS n inputs (uint8, n x C x H x W), PROJ
convnet's projections of them (float32, 2 x n x C x H x W, in the network's
input units: the deconvnet's, then guided backpropagation's), MODULE the
layer whose output the projection starts from (the last of the in-place
layers over convnet's layer), UNITS one channel:row:column per input (comma-separated): the position whose
response alone is carried back.

The reference is written independently of convnet's code: the network is
built with scripts/torchnet.py in evaluation mode, every ReLU replaced by a
function whose backward pass applies the rule (deconvnet: relu of the
incoming signal, whatever the forward input; guided: that and the
gradient's mask), and autograd does the rest: transposed convolution,
unpooling through the max positions PyTorch recorded, batch normalisation's
evaluation-mode map.  Exits 1 when a value differs by more than 1e-4 times
the largest magnitude, or when every projection is zero."""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402


class Rectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, guided):
        ctx.save_for_backward(x)
        ctx.guided = guided
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        back = g.clamp(min=0)
        if ctx.guided:
            back = back * (x > 0).to(g.dtype)
        return back, None


class RuleReLU(torch.nn.Module):
    def __init__(self, guided):
        super().__init__()
        self.guided = guided

    def forward(self, x):
        return Rectifier.apply(x, self.guided)


def check(model_path, pix, theirs, module, rule, units):
    meta, tensors = torchnet.read_safetensors(model_path)
    model, _, shape, _ = torchnet.build(meta["convnet.model"])
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optim.")})
    model.eval()
    for name, mod in list(model.named_children()):
        if isinstance(mod, torch.nn.ReLU):
            setattr(model, name, RuleReLU(rule == "guided"))
    n = len(units)
    pix = torch.from_numpy(pix.reshape((n,) + shape))
    theirs = torch.from_numpy(theirs.reshape((n,) + shape))
    saved = {}
    getattr(model, module).register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    x = model.prepare(pix).requires_grad_(True)
    model(x)
    a = saved["a"]
    seed = torch.zeros_like(a)
    for s, (c, r, q) in enumerate(units):
        seed[s, c, r, q] = a[s, c, r, q]
    mine = torch.autograd.grad(a, x, grad_outputs=seed)[0]
    diff = (mine - theirs).abs().max().item()
    top = mine.abs().max().item()
    print("    %s from %s, %d inputs: largest value %.4g, largest difference %.2g"
          % (rule, module, n, top, diff))
    return top > 0 and diff <= 1e-4 * top


def main(model_path, pix_path, proj_path, module, units):
    units = [tuple(int(v) for v in u.split(":")) for u in units.split(",")]
    pix = np.fromfile(pix_path, dtype=np.uint8)
    proj = np.fromfile(proj_path, dtype=np.float32).reshape(2, -1)
    ok = [check(model_path, pix, proj[r], module, rule, units)
          for r, rule in enumerate(("deconv", "guided"))]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(a[0], a[1], a[2], a[3], a[4]))
