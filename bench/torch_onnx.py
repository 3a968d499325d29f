#!/usr/bin/python3
"""torch_onnx.py MODEL OUT.onnx [--inputs IMAGES OUT.f32] - the network of a
convnet model description (MODEL.cfg) or model file (MODEL.safetensors, a
trained network with its weights) built in PyTorch (scripts/torchnet.py) and
exported with torch.onnx.export, for make bench to time in ONNX Runtime
(bench/ort_bench.js).

The network is in evaluation mode (batch normalisation with its running
statistics, which the export folds into the convolutions, no dropout) and
ends in a softmax, as convnet's forward pass does: input "input" (N, C, H, W)
float32, the input normalisation left out as in 'convnet bench' (the input
is normalised already), output "probabilities" (N, classes), the batch
dimension symbolic.  From a .cfg the weights are PyTorch's initialisation
(seeded); ONNX Runtime's time of a forward pass does not depend on them, but
convnet's one-image pass skips the weights of a fully connected layer's
inputs that are 0, fewer with starting weights and random data than with a
trained network on real images (README, Speed).

--inputs IMAGES OUT.f32 also writes the images of an IDX file (MNIST's
format, e.g. data/mnist/t10k-images-idx3-ubyte), normalised as the model
normalises them (with convnet's float32 arithmetic, scripts/torchnet.py's
Input), as float32 values image after image: the file 'convnet bench
--input' and 'ort_bench.js --input' read, so that both time the same
images.  It prints the model's accuracy on them when the labels file lies
beside the images (the same name with labels for images), a check that the
weights were carried over."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402

USAGE = "usage: torch_onnx.py MODEL.cfg|MODEL.safetensors OUT.onnx [--inputs IMAGES OUT.f32]"


def load(path):
    """(net, input shape) of a model description or a model file."""
    if path.endswith(".cfg"):
        torch.manual_seed(1)
        with open(path) as f:
            net, _, shape, _ = torchnet.build(f.read())
        return net, shape
    meta, tensors = torchnet.read_safetensors(path)
    net, _, shape, _ = torchnet.build(meta["convnet.model"])
    net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optim.")})
    return net, shape


def write_inputs(net, shape, images_path, out):
    pixels = torchnet.read_idx(images_path)
    with torch.no_grad():
        x = net.prepare(pixels.reshape((pixels.shape[0],) + tuple(shape))).contiguous()
    x.numpy().astype("<f4").tofile(out)
    labels_path = images_path.replace("images", "labels").replace("idx3", "idx1")
    if labels_path != images_path and os.path.exists(labels_path):
        labels = torchnet.read_idx(labels_path).long()
        with torch.no_grad():
            pred = torch.cat([net(c).argmax(1) for c in x.split(1000)])
        acc = (pred == labels[:len(pred)]).double().mean().item()
        print(f"torch_onnx.py: {len(pred)} images to {out}; accuracy in PyTorch "
              f"{100 * acc:.2f}%", file=sys.stderr)


def main(argv):
    if len(argv) not in (2, 5) or (len(argv) == 5 and argv[2] != "--inputs"):
        sys.exit(USAGE)
    net, shape = load(argv[0])
    model = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.onnx.export(model, (x,), argv[1], input_names=["input"],
                          output_names=["probabilities"], opset_version=13,
                          dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    if len(argv) == 5:
        write_inputs(net.eval(), shape, argv[3], argv[4])


if __name__ == "__main__":
    main(sys.argv[1:])
