#!/usr/bin/python3
"""torch_onnx.py MODEL.cfg OUT.onnx - the network a convnet model description
gives, built in PyTorch (scripts/torchnet.py) and exported with
torch.onnx.export, for make bench to time in ONNX Runtime (bench/ort_bench.js).

The network is in evaluation mode (batch normalisation with its running
statistics, which the export folds into the convolutions, no dropout) and
ends in a softmax, as convnet's forward pass does: input "input" (N, C, H, W)
float32, the input normalisation left out as in 'convnet bench' (random data
stands for normalised images), output "probabilities" (N, classes), the batch
dimension symbolic.  The weights are PyTorch's initialisation: ONNX Runtime's
time of a forward pass does not depend on them (convnet's one-image pass
skips the weights of a fully connected layer's inputs that are 0, fewer with
starting weights than with trained ones: README, Speed)."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torch_onnx.py MODEL.cfg OUT.onnx")
    torch.manual_seed(1)
    with open(sys.argv[1]) as f:
        net, _, shape, _ = torchnet.build(f.read())
    model = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.onnx.export(model, (x,), sys.argv[2], input_names=["input"],
                          output_names=["probabilities"], opset_version=13,
                          dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})


if __name__ == "__main__":
    main()
