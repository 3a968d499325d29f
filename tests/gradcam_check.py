#!/usr/bin/python3
"""gradcam_check.py - Grad-CAM in PyTorch against convnet's (run by
tests/test_explain.c).

gradcam_check.py MODEL PIXELS MAPS MODULE H W CLASSES

MODEL is a model file, PIXELS n inputs (uint8, n x C x H x W), MAPS
convnet's Grad-CAM maps of them (float32, n x H x W, at the layer's
resolution) for CLASSES (comma-separated, one per input).  The network is
built with scripts/torchnet.py in evaluation mode; MODULE is the layer whose
output the maps weigh (the last of the in-place layers over convnet's
layer).  Grad-CAM here: A = MODULE's output, g = d logit[class] / dA (the
logit: the input of the softmax), alpha = mean of g over each map, map =
relu(sum_k alpha_k A_k).  Exits 1 when a value differs by more than 1e-4
(times the largest value, when that is above 1)."""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402


def main(model_path, pix_path, maps_path, module, h, w, classes):
    meta, tensors = torchnet.read_safetensors(model_path)
    model, _, shape, _ = torchnet.build(meta["convnet.model"])
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optim.")})
    model.eval()
    classes = [int(c) for c in classes.split(",")]
    n = len(classes)
    pix = torch.from_numpy(np.fromfile(pix_path, dtype=np.uint8).reshape((n,) + shape))
    theirs = torch.from_numpy(np.fromfile(maps_path, dtype=np.float32).reshape(n, h, w))
    saved = {}
    getattr(model, module).register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    logits = model(model.prepare(pix))
    a = saved["a"]
    g = torch.autograd.grad(logits[torch.arange(n), classes].sum(), a)[0]
    alpha = g.mean(dim=(2, 3), keepdim=True)
    mine = torch.relu((alpha * a).sum(1)).detach()
    diff = (mine - theirs).abs().max().item()
    top = max(1.0, mine.abs().max().item())
    print("    Grad-CAM at %s, %d inputs: largest value %.4g, largest difference %.2g"
          % (module, n, mine.abs().max().item(), diff))
    return 0 if diff <= 1e-4 * top and mine.abs().max().item() > 0 else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), a[6]))
