#!/usr/bin/python3
"""torch_bench.py MODEL.cfg --mode train|infer --batch N --threads T [--seconds S]
                  [--channels-last] [--device cuda]

Times PyTorch on the network a convnet model description gives, the way
'convnet bench --json' times convnet: random data held in memory, training
steps of forward, loss, backward and an SGD-with-momentum update (or
forward passes without gradients for --mode infer), a warm-up first, then
as many steps as fit in --seconds.  Prints one JSON object:
{"images_per_s", "steps", "max_rss_mb", "torch", "threads"}.

--channels-last stores the model and the batch in the NHWC memory format,
for which PyTorch's oneDNN convolutions are faster on this CPU.

--device cuda runs it on the first GPU (make bench-gpu), as PyTorch's users
would: cuDNN's autotuner on (torch.backends.cudnn.benchmark), PyTorch's own
default for TF32 (reported as "tf32"), and the GPU's queue drained only every
10 steps and at the end of the timing.

Run it with the environment of the contender being measured: the benchmark
sets OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 for "best tuned"."""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torchnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    with open(args.model) as f:
        model, _, shape, train = torchnet.build(f.read())
    x = torch.randn(args.batch, *shape)
    model.eval()  # one sample: batch normalisation of rows needs its running statistics
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    model.train()
    y = torch.randint(0, classes, (args.batch,))
    model, x, y = model.to(dev), x.to(dev), y.to(dev)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    lr = float(train.get("lr", 0.01)) * (1 - float(train.get("momentum", 0.9)))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(train.get("momentum", 0.9)),
                          weight_decay=float(train.get("decay", 0)))

    def step():
        if args.mode == "infer":
            with torch.no_grad():
                model(x)
            return
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    if args.mode == "infer":
        model.eval()
    warm_until = time.perf_counter() + min(0.5, args.seconds / 4)
    while time.perf_counter() < warm_until:
        step()
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        if steps % 10 == 0 or not gpu:
            sync()
        elapsed = time.perf_counter() - start
        if elapsed >= args.seconds and steps >= 3 and gpu:
            sync()
            elapsed = time.perf_counter() - start
        if elapsed >= args.seconds and steps >= 3:
            break
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"images_per_s": steps * args.batch / elapsed, "steps": steps,
                      "max_rss_mb": rss, "torch": torch.__version__, "threads": args.threads,
                      "channels_last": args.channels_last, "device": str(dev),
                      "tf32": bool(gpu and torch.backends.cudnn.allow_tf32
                                   and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0")}))


if __name__ == "__main__":
    main()
