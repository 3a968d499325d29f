#!/usr/bin/python3
"""plan_check.py [--build DIR] [--threads N] [--seconds S] [--only NAME] -
convnet plan against real training runs (make plan-check).

For every shipped model (models/*.cfg) and 10 random networks (seeded), at
three batch sizes each:
  1. `convnet plan --json` (the roofline: fast) says roughly how long a step
     takes, which sets how many images the real run trains on (--limit: a
     run of about --seconds seconds, at least 6 steps);
  2. `convnet plan --calibrate --json` plans exactly that run: its training
     peak, its evaluation's peak, its epoch's time;
  3. `convnet train` runs it (one epoch of --limit images, --val images
     validated), and `convnet eval` evaluates the model it wrote: their peak
     resident memory (ru_maxrss of each process, as GNU time reports it) and the
     epoch's time (the training time of the log's last line and the
     validation time that --verbose prints) are measured.
The baseline, a convnet process that builds nothing (`convnet plan --help`),
is measured the same way and printed; the plan counts its own as its
baseline.  Bounds: memory within 10%, epoch time within 25%.  The table
shows the ratios planned/measured (and, for information, the roofline's
epoch: a bound, not a forecast); the exit status is 1 when a ratio is out of
its bound.  The machine is shared: times move with the other jobs on it.

CIFAR-10 cannot be downloaded here: models/cifar10.cfg trains on random
images of its shape, written in CIFAR-10's binary format (the time and
memory of training do not depend on the pixels' values).
"""
import argparse
import csv
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEM_BOUND, TIME_BOUND = 0.10, 0.25


def run(cmd, timeout=600):
    """(status, stdout, stderr) of a command."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


GNU_TIME = "/usr/bin/time"


def run_peak(cmd, timeout=600):
    """(status, stdout, stderr, peak resident MiB) of a command.

    The peak of a process survives exec: a child forked from this Python
    (15 MiB resident) would count those 15 MiB until its own peak passes
    them.  GNU time (about 2 MiB) starts it instead when it is there and
    reports the child's ru_maxrss; otherwise wait4 gives it, with Python's
    size under it."""
    with tempfile.NamedTemporaryFile("r") as tf:
        use_time = os.access(GNU_TIME, os.X_OK)
        full = [GNU_TIME, "-f", "%M", "-o", tf.name] + cmd if use_time else cmd
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=timeout)
        if use_time:
            lines = [l for l in open(tf.name).read().splitlines() if l.strip()]
            peak = int(lines[-1]) / 1024.0
        else:
            _, _, ru = os.wait4(p.pid, 0) if p.returncode is None else (0, 0, None)
            peak = (ru.ru_maxrss if ru else resource.getrusage(
                resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
        return p.returncode, out, err, peak


def cifar_like(dir_, n_batch, n_test, seed=7):
    """Random images in CIFAR-10's binary format: five training batches of
    n_batch records and a test batch of n_test (a label byte, 3072 pixels)."""
    os.makedirs(dir_, exist_ok=True)
    rng = random.Random(seed)
    for name, n in [(f"data_batch_{i}.bin", n_batch) for i in range(1, 6)] + [
            ("test_batch.bin", n_test)]:
        with open(os.path.join(dir_, name), "wb") as f:
            for _ in range(n):
                f.write(bytes([rng.randrange(10)]))
                f.write(rng.randbytes(3072))


def random_net(rng, k):
    """A random network for 28x28 images: convolution blocks (with batch
    normalisation, activations, pooling, a residual pair, dropout at
    random), fully connected layers, and a recipe."""
    acts = ["relu", "relu", "leaky", "tanh", "gelu", "silu", "sigmoid"]
    lines = ["[net]", "channels = 1", "height = 28", "width = 28", "classes = 10",
             "normalise = " + rng.choice(["global", "channel"]), "",
             "[train]", "epochs = 1", "batch = 64", "lr = 0.01",
             "optimizer = " + rng.choice(["sgd", "sgd", "adam", "adamw"]),
             f"shift = {rng.choice([0, 0, 1, 2])}", f"flip = {rng.choice([0, 1])}",
             f"seed = {k + 1}", ""]
    side = 28
    for b in range(rng.randint(1, 3)):
        f = rng.choice([4, 8, 12, 16, 24, 32])
        size = rng.choice([3, 3, 5])
        pad = size // 2 if rng.random() < 0.6 else 0
        lines += ["[conv]", f"name = block{b}", f"filters = {f}", f"size = {size}",
                  f"pad = {pad}"]
        side = side - size + 1 + 2 * pad
        if rng.random() < 0.4:
            lines += ["[batchnorm]"]
        lines += [f"[{rng.choice(acts)}]"]
        if rng.random() < 0.3 and side >= 3:  # a residual pair keeps the shape
            lines += ["[conv]", f"filters = {f}", "size = 3", "pad = 1", "[relu]",
                      "[conv]", f"filters = {f}", "size = 3", "pad = 1",
                      "[shortcut]", f"from = block{b}", "[relu]"]
        if side >= 4:
            pool = rng.choice(["maxpool", "maxpool", "avgpool"])
            lines += [f"[{pool}]", "size = 2"]
            side //= 2
    for _ in range(rng.randint(0, 2)):
        lines += ["[fc]", f"outputs = {rng.choice([16, 32, 64, 128, 256])}",
                  f"[{rng.choice(acts)}]"]
        if rng.random() < 0.3:
            lines += ["[dropout]", f"rate = {rng.choice([0.1, 0.25, 0.5])}"]
    lines += ["[fc]", "outputs = 10", "[softmax]", ""]
    return "\n".join(lines)


def plan_json(binary, cfg, args):
    st, out, err = run([binary, "plan", cfg, "--json"] + args)
    if st != 0:
        raise RuntimeError(f"plan {cfg} {' '.join(args)}: {err.strip()}")
    return json.loads(out)


def check_case(binary, tmp, name, cfg, data, batch, threads, seconds, val):
    """Plans and runs one case; a dict of what was planned and measured."""
    common = ["--data", data, "--threads", str(threads), "--batch", str(batch)]
    rough = plan_json(binary, cfg, common + ["--val", str(val)])
    # The roofline is a bound; real steps have taken 2-4 times as long.
    step = 3.0 * rough["step_s"]
    steps = max(6, min(int(seconds / step), rough["train_images"] // batch))
    limit = steps * batch
    run_args = common + ["--val", str(val), "--limit", str(limit)]
    roof = plan_json(binary, cfg, run_args)
    cal = plan_json(binary, cfg, run_args + ["--calibrate"])
    model = os.path.join(tmp, "m.safetensors")
    log = os.path.join(tmp, "m.csv")
    for f in (model, log):
        if os.path.exists(f):
            os.remove(f)
    st, out, err, peak = run_peak([binary, "train", cfg] + run_args +
                                  ["--epochs", "1", "-o", model, "--log", log, "--verbose",
                                   "--quiet"])
    if st != 0:
        raise RuntimeError(f"train {name} batch {batch}: {err.strip()}")
    with open(log) as f:
        rows = [r for r in csv.DictReader(f) if r["val_loss"] != "" or val == 0]
    train_s = float(rows[-1]["elapsed_s"])
    m = re.search(r"^epoch +1/1 +validation ([0-9.]+) s$", out, re.M)
    val_s = float(m.group(1)) if m else 0.0
    st, out, err, eval_peak = run_peak([binary, "eval", model, "--data", data,
                                        "--threads", str(threads)])
    if st != 0:
        raise RuntimeError(f"eval {name} batch {batch}: {err.strip()}")
    return {
        "name": name, "batch": batch, "images": limit, "val": val,
        "peak_plan": cal["train_peak"] / 2**20, "peak": peak,
        "eval_plan": cal["infer_peak"] / 2**20, "eval_peak": eval_peak,
        "epoch_plan": cal["epoch_s"], "epoch": train_s + val_s,
        "roof": roof["epoch_s"], "baseline": cal["memory"]["baseline"] / 2**20,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="about how long each real training run lasts")
    ap.add_argument("--only", help="only the cases whose name contains this")
    ap.add_argument("--random", type=int, default=10, help="random networks (default 10)")
    a = ap.parse_args()
    binary = os.path.join(a.build, "convnet")
    mnist = os.path.join(ROOT, "data", "mnist")
    fashion = os.path.join(ROOT, "data", "fashion-mnist")
    if not os.path.isdir(fashion):
        fashion = mnist
    tmp = tempfile.mkdtemp(prefix="convnet-plan-check-")
    try:
        cifar = os.path.join(tmp, "cifar")
        cifar_like(cifar, 2000, 2000)
        cases = []
        for cfg in sorted(os.listdir(os.path.join(ROOT, "models"))):
            if not cfg.endswith(".cfg"):
                continue
            path = os.path.join(ROOT, "models", cfg)
            recipe = int(re.search(r"^batch *= *(\d+)", open(path).read(), re.M).group(1))
            if cfg == "cifar10.cfg":
                cases += [(cfg, path, cifar, b, 2000) for b in (32, recipe, 300)]
            else:
                data = fashion if cfg.startswith("fashion") else mnist
                cases += [(cfg, path, data, b, 2000) for b in (32, recipe, 512)]
        rng = random.Random(2024)
        for k in range(a.random):
            path = os.path.join(tmp, f"random{k}.cfg")
            with open(path, "w") as f:
                f.write(random_net(rng, k))
            batches = sorted(rng.sample([8, 16, 32, 64, 100, 128, 256, 300, 400], 3))
            cases += [(f"random{k}", path, mnist, b, 2000) for b in batches]
        if a.only:
            cases = [c for c in cases if a.only in c[0]]
        cpu = ""
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        _, _, _, base = run_peak([binary, "plan", "--help"])
        print(f"convnet plan against training, {a.threads} thread{'s' * (a.threads > 1)} "
              f"on {cpu} ({os.cpu_count()} cores, shared)")
        print(f"a convnet process that builds nothing: {base:.1f} MiB resident; the bounds: "
              f"memory within {MEM_BOUND:.0%}, an epoch's time within {TIME_BOUND:.0%}")
        print()
        head = (f"{'network':<18} {'batch':>5} {'images':>6} | {'train MiB':>9} {'plan':>7} "
                f"{'ratio':>6} | {'eval MiB':>8} {'plan':>7} {'ratio':>6} | {'epoch s':>7} "
                f"{'plan':>7} {'ratio':>6} | {'roofline':>8}")
        print(head)
        print("-" * len(head))
        bad, results, t0 = [], [], time.time()
        for name, path, data, batch, val in cases:
            try:
                r = check_case(binary, tmp, name, path, data, batch, a.threads, a.seconds, val)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{name:<18} {batch:>5}  FAILED: {e}")
                bad.append(f"{name} batch {batch}: {e}")
                continue
            results.append(r)
            pm = r["peak_plan"] / r["peak"]
            em = r["eval_plan"] / r["eval_peak"]
            et = r["epoch_plan"] / r["epoch"]
            flags = ""
            if abs(pm - 1) > MEM_BOUND:
                flags += " train memory"
            if abs(em - 1) > MEM_BOUND:
                flags += " eval memory"
            if abs(et - 1) > TIME_BOUND:
                flags += " time"
            if flags:
                bad.append(f"{name} batch {batch}:{flags}")
            print(f"{name:<18} {batch:>5} {r['images']:>6} | {r['peak']:>9.1f} "
                  f"{r['peak_plan']:>7.1f} {pm:>6.3f} | {r['eval_peak']:>8.1f} "
                  f"{r['eval_plan']:>7.1f} {em:>6.3f} | {r['epoch']:>7.2f} "
                  f"{r['epoch_plan']:>7.2f} {et:>6.3f} | {r['roof'] / r['epoch']:>8.3f}"
                  f"{'  OUT:' + flags if flags else ''}", flush=True)
        if results:
            def spread(key_plan, key):
                v = [r[key_plan] / r[key] for r in results]
                return min(v), sorted(v)[len(v) // 2], max(v)
            print()
            for what, kp, k in [("training peak", "peak_plan", "peak"),
                                ("evaluation peak", "eval_plan", "eval_peak"),
                                ("epoch time", "epoch_plan", "epoch"),
                                ("roofline epoch", "roof", "epoch")]:
                lo, med, hi = spread(kp, k)
                print(f"{what + ' planned/measured':<34} min {lo:.3f}  median {med:.3f}  "
                      f"max {hi:.3f}")
        print(f"\n{len(results)} cases in {time.time() - t0:.0f} s; "
              f"{len(bad)} out of bounds or failed")
        for b in bad:
            print("  " + b)
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
