"""torchnet.py - a convnet model description as a torch.nn network.

Shared by tests/torch_check.py (which replays convnet's training steps) and
bench/torch_bench.py (which times PyTorch on the same networks).  Only the
layer kinds convnet has are understood; parameters get convnet's names
(conv1.weight, fc1.bias, ...)."""
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


class Net(torch.nn.Module):
    """The layers in order; a [shortcut] adds the output of an earlier layer."""

    def __init__(self, layers, sources):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)
        self.sources = sources  # per layer: the index a shortcut adds, else None

    def forward(self, x):
        outs = []
        for mod, src in zip(self.layers, self.sources):
            x = x + outs[src] if src is not None else mod(x)
            outs.append(x)
        return x


def build(text):
    """(torch.nn.Module, {name: tensor}, input shape (c, h, w), train settings).

    The dict holds parameters and, for batch normalisation, the running
    statistics (buffers, which have no .grad)."""
    sections = parse_cfg(text)
    net = next(kv for kind, kv in sections if kind == "net")
    train = next((kv for kind, kv in sections if kind == "train"), {})
    shape = (int(net["channels"]), int(net["height"]), int(net["width"]))
    c, h, w = shape
    flat = False  # after a fully connected layer: (n, features)
    layers, params, counts, sources, index = [], {}, {}, [], {}
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
            layers.append(mod)
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            c, h, w = f, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "maxpool":
            k = int(kv.get("size", 2))
            s = int(kv.get("stride", 0)) or k
            layers.append(torch.nn.MaxPool2d(k, s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif kind == "fc":
            o = int(kv["outputs"])
            mod = torch.nn.Linear(c * h * w, o)
            layers.append(torch.nn.Sequential(torch.nn.Flatten(), mod))
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            c, h, w = o, 1, 1
            flat = True
        elif kind == "batchnorm":
            cls = torch.nn.BatchNorm1d if flat else torch.nn.BatchNorm2d
            mod = cls(c, eps=float(kv.get("eps", 1e-5)), momentum=float(kv.get("momentum", 0.1)))
            layers.append(mod)
            params[name + ".weight"], params[name + ".bias"] = mod.weight, mod.bias
            params[name + ".running_mean"] = mod.running_mean
            params[name + ".running_var"] = mod.running_var
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        elif kind == "tanh":
            layers.append(torch.nn.Tanh())
        elif kind == "gelu":
            layers.append(torch.nn.GELU(approximate="tanh"))
        elif kind == "silu":
            layers.append(torch.nn.SiLU())
        elif kind == "leaky":
            layers.append(torch.nn.LeakyReLU(float(kv.get("slope", 0.01))))
        elif kind == "avgpool":
            if int(kv.get("global", 0)):
                layers.append(torch.nn.AvgPool2d(h, 1))
                h = w = 1
            else:
                k = int(kv.get("size", 2))
                s = int(kv.get("stride", 0)) or k
                layers.append(torch.nn.AvgPool2d(k, s))
                h, w = (h - k) // s + 1, (w - k) // s + 1
        elif kind == "dropout":
            layers.append(torch.nn.Dropout(float(kv.get("rate", 0.5))))
        elif kind == "shortcut":
            layers.append(torch.nn.Identity())
            src = index[kv["from"]]
        elif kind == "softmax":
            layers.append(torch.nn.Flatten())  # the loss takes the logits
        else:
            raise ValueError(f"torchnet: layer kind [{kind}] is not supported")
        sources.append(src)
    return Net(layers, sources), params, shape, train
