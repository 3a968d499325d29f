"""torchnet.py - a convnet model description as a torch.nn network.

Used by the README's recipe (a model file in PyTorch), tests/torch_check.py
(which replays convnet's training steps and checks model files) and
bench/torch_bench.py (which times PyTorch on the same networks).  Only the
layer kinds convnet has are understood.  Modules take convnet's layer names
(conv1, batchnorm1, fc1, ...) and the input's normalisation is the module
"input", so that the network's state dict has the model file's keys
(conv1.weight, batchnorm1.running_var, input.mean, ...) and a file loads with
load_state_dict's default strict=True once its optim.* entries are dropped."""
import gzip
import json
import struct

import numpy as np
import torch


def parse_cfg(text):
    """[(kind, {key: value})] in file order; comments and blanks dropped."""
    sections = []
    for line in text.splitlines():
        line = line.split("#")[0].split(";")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line[1:-1], {}))
        else:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
    return sections


class Input(torch.nn.Module):
    """The input's normalisation, x = (p / 255 - mean) / std per channel, with
    convnet's float32 arithmetic (p * (1 / (255 std)) - mean / std), so that
    both programs see the same bits.  mean and std are buffers: a model file
    holds them (input.mean, input.std)."""

    def __init__(self, c, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.full((c,), mean, dtype=torch.float32))
        self.register_buffer("std", torch.full((c,), std, dtype=torch.float32))

    def forward(self, pixels):
        """pixels: [n, c, h, w] (or [n, h, w] for one channel), 0..255."""
        p = pixels.to(torch.float32)
        if p.dim() == 3:
            p = p.unsqueeze(1)
        scale = 1.0 / (255.0 * self.std)
        shift = self.mean / self.std
        return p * scale.view(1, -1, 1, 1) - shift.view(1, -1, 1, 1)


class Linear(torch.nn.Linear):
    """convnet's [fc]: a fully connected layer on the flattened (C, H, W) input."""

    def forward(self, x):
        return super().forward(x.flatten(1))


class Net(torch.nn.Module):
    """The layers in order, each an attribute named after the layer; a
    [shortcut] adds the output of an earlier layer.  forward takes the
    normalised input; prepare(pixels) normalises 8-bit pixels as convnet does."""

    def __init__(self, names, layers, sources, norm):
        super().__init__()
        self.names = list(names)
        self.sources = sources  # per layer: the index of the output a shortcut adds, else None
        self.input = norm
        for name, mod in zip(names, layers):
            if hasattr(self, name):
                raise ValueError(f"torchnet: layer name '{name}' is taken by torch.nn.Module; "
                                 "rename the layer in the model description")
            self.add_module(name, mod)

    def prepare(self, pixels):
        return self.input(pixels)

    def forward(self, x):
        outs = []
        for name, src in zip(self.names, self.sources):
            x = x + outs[src] if src is not None else getattr(self, name)(x)
            outs.append(x)
        return x


def build(text):
    """(Net, {name: tensor}, input shape (c, h, w), train settings).

    The dict holds the layers' parameters and, for batch normalisation, the
    running statistics (buffers, which have no .grad), under the model file's
    names."""
    sections = parse_cfg(text)
    net = next(kv for kind, kv in sections if kind == "net")
    train = next((kv for kind, kv in sections if kind == "train"), {})
    shape = (int(net["channels"]), int(net["height"]), int(net["width"]))
    c, h, w = shape
    norm = Input(c, float(net.get("mean", 0)), float(net.get("std", 1)))
    flat = False  # after a fully connected layer: (n, features)
    names, layers, params, counts, sources, index = [], [], {}, {}, [], {}
    for kind, kv in sections:
        if kind in ("net", "train"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
        name = kv.get("name", f"{kind}{counts[kind]}")
        index[name] = len(layers)
        src = None
        if kind == "conv":
            k, s, p = int(kv["size"]), int(kv.get("stride", 1)), int(kv.get("pad", 0))
            f = int(kv["filters"])
            mod = torch.nn.Conv2d(c, f, k, s, p)
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            c, h, w = f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "maxpool":
            k = int(kv.get("size", 2))
            s = int(kv.get("stride", 0)) or k
            mod = torch.nn.MaxPool2d(k, s)
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif kind == "fc":
            o = int(kv["outputs"])
            mod = Linear(c * h * w, o)
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            c, h, w = o, 1, 1
            flat = True
        elif kind == "batchnorm":
            cls = torch.nn.BatchNorm1d if flat else torch.nn.BatchNorm2d
            mod = cls(c, eps=float(kv.get("eps", 1e-5)), momentum=float(kv.get("momentum", 0.1)))
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            params[name + ".running_mean"] = mod.running_mean
            params[name + ".running_var"] = mod.running_var
        elif kind == "relu":
            mod = torch.nn.ReLU()
        elif kind == "sigmoid":
            mod = torch.nn.Sigmoid()
        elif kind == "tanh":
            mod = torch.nn.Tanh()
        elif kind == "gelu":
            mod = torch.nn.GELU(approximate="tanh")
        elif kind == "silu":
            mod = torch.nn.SiLU()
        elif kind == "leaky":
            mod = torch.nn.LeakyReLU(float(kv.get("slope", 0.01)))
        elif kind == "avgpool":
            if int(kv.get("global", 0)):
                mod = torch.nn.AvgPool2d(h, 1)
                h = w = 1
            else:
                k = int(kv.get("size", 2))
                s = int(kv.get("stride", 0)) or k
                mod = torch.nn.AvgPool2d(k, s)
                h, w = (h - k) // s + 1, (w - k) // s + 1
        elif kind == "dropout":
            mod = torch.nn.Dropout(float(kv.get("rate", 0.5)))
        elif kind == "shortcut":
            mod = torch.nn.Identity()
            src = index[kv["from"]]
        elif kind == "softmax":
            mod = torch.nn.Flatten()  # the loss takes the logits
        else:
            raise ValueError(f"torchnet: layer kind [{kind}] is not supported")
        names.append(name)
        layers.append(mod)
        sources.append(src)
    return Net(names, layers, sources, norm), params, shape, train


DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    """(metadata, {name: tensor}) of a safetensors file, without the
    safetensors package (whose safetensors.torch.load_file gives the same
    tensors)."""
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


def read_idx(path):
    """An IDX file of unsigned bytes (MNIST's format, raw or gzip-compressed)
    as a uint8 tensor: images [n, h, w], labels [n]."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[2] != 8:
        raise ValueError(f"{path}: not unsigned-byte IDX data")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(arr.copy())
