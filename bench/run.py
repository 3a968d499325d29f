#!/usr/bin/python3
"""run.py - 'make bench': convnet against PyTorch on this machine, side by side.

For each workload the contenders run in turn: convnet, PyTorch as installed,
PyTorch tuned (OpenBLAS on its AVX-512 kernels, one BLAS thread), and tuned
PyTorch with the model and data in channels-last memory format (its oneDNN
convolutions are faster so here).  REPS rounds, each contender a fresh
process measuring for SECONDS after a warm-up.  The table gives the median
images/s, convnet's ratio to each contender, its GFLOP/s and their share of
the machine's FMA peak (bench/peak.c, measured in the same run).  The
machine is shared and its speed drifts, so each ratio is the median of the
per-round ratios (the contenders of a round run back to back), not the ratio
of the medians.  Then convnet's training time to 99.0% MNIST test accuracy
with the default network and recipe.  Environment knobs: BENCH_REPS (5),
BENCH_SECONDS (1.0), BENCH_QUICK=1 (only the first workload, one round)."""
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "convnet")
PEAK = os.path.join(ROOT, "build", "peak")
TORCH = [sys.executable, os.path.join(ROOT, "bench", "torch_bench.py")]
REPS = int(os.environ.get("BENCH_REPS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.0"))
# "Best tuned" PyTorch: OpenBLAS forced onto its AVX-512 kernels (Debian's 0.3.21
# does not recognise this CPU) and kept from fighting OpenMP for the cores.
TUNED = {"OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_NUM_THREADS": "1"}

WORKLOADS = [  # name, model, mode, batch, threads
    ("LeNet train", "models/lenet.cfg", "train", 64, 2),
    ("small train", "models/small.cfg", "train", 64, 2),
    ("LeNet infer", "models/lenet.cfg", "infer", 1000, 2),
    ("LeNet train", "models/lenet.cfg", "train", 16, 2),
    ("LeNet train", "models/lenet.cfg", "train", 256, 2),
    ("small train", "models/small.cfg", "train", 16, 2),
    ("small train", "models/small.cfg", "train", 256, 2),
    ("LeNet train", "models/lenet.cfg", "train", 64, 1),
    ("small train", "models/small.cfg", "train", 64, 1),
]


def run_json(cmd, env=None):
    full = dict(os.environ)
    full.update(env or {})
    out = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def convnet(model, mode, batch, threads):
    cmd = [BIN, "bench", model, "--json", "--batch", str(batch), "--threads", str(threads),
           "--seconds", str(SECONDS)] + (["--infer"] if mode == "infer" else [])
    return run_json(cmd)


def torch(model, mode, batch, threads, env, channels_last=False):
    cmd = TORCH + [model, "--mode", mode, "--batch", str(batch), "--threads", str(threads),
                   "--seconds", str(SECONDS)] + (["--channels-last"] if channels_last else [])
    return run_json(cmd, env)


def peak():
    out = subprocess.run([PEAK], capture_output=True, text=True, check=True).stdout.split()
    return {int(out[0]): float(out[1]), int(out[2]): float(out[3])}


def blas():
    try:
        link = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
        return "OpenBLAS" if "openblas" in link else "reference BLAS (" + link + ")"
    except OSError:
        return "unknown"


def main():
    quick = os.environ.get("BENCH_QUICK") == "1"
    workloads = WORKLOADS[:1] if quick else WORKLOADS
    reps = 1 if quick else REPS
    pk = peak()
    print(f"machine FMA peak (bench/peak.c): {pk[1]:.0f} GFLOP/s on 1 core, "
          f"{max(pk):d} cores {pk[max(pk)]:.0f} GFLOP/s")
    print(f"PyTorch's BLAS: {blas()}; tuned = " +
          " ".join(f"{k}={v}" for k, v in TUNED.items()) + "; tuned+CL = tuned with channels-last"
          " tensors;\nenvironment as given otherwise")
    print(f"{reps} rounds per workload, {SECONDS:g} s each after a warm-up, contenders alternating;"
          " medians of img/s and of each round's ratio\n")
    head = (f"{'workload':<14}{'batch':>6}{'thr':>4} | {'convnet':>8} {'PyTorch':>8} {'tuned':>8}"
            f" {'tuned+CL':>8} | {'vs PyT':>6} {'vs tuned':>8} {'vs +CL':>6} | {'GFLOP/s':>7}"
            f" {'of peak':>7}")
    print(head)
    print("-" * len(head))
    rss = {}
    t0 = time.time()
    for name, model, mode, batch, threads in workloads:
        res = {"convnet": [], "torch": [], "tuned": [], "cl": []}
        for _ in range(reps):
            res["convnet"].append(convnet(model, mode, batch, threads))
            res["torch"].append(torch(model, mode, batch, threads, {}))
            res["tuned"].append(torch(model, mode, batch, threads, TUNED))
            res["cl"].append(torch(model, mode, batch, threads, TUNED, True))
        med = {k: statistics.median(r["images_per_s"] for r in v) for k, v in res.items()}
        ratio = {k: statistics.median(c["images_per_s"] / r["images_per_s"]
                                      for c, r in zip(res["convnet"], v)) for k, v in res.items()}
        gflops = statistics.median(r["gflops"] for r in res["convnet"])
        label = name.replace("train", "infer") if mode == "infer" else name
        print(f"{label:<14}{batch:>6}{threads:>4} | {med['convnet']:>8.0f} {med['torch']:>8.0f}"
              f" {med['tuned']:>8.0f} {med['cl']:>8.0f} | {ratio['torch']:>5.2f}x"
              f" {ratio['tuned']:>7.2f}x {ratio['cl']:>5.2f}x"
              f" | {gflops:>7.1f} {100 * gflops / pk[min(threads, max(pk))]:>6.1f}%", flush=True)
        key = (name, mode, batch, threads)
        rss[key] = (max(r["max_rss_mb"] for r in res["convnet"]),
                    min(r["max_rss_mb"] for r in res["tuned"] + res["cl"]))
    print("\npeak memory (MB, max RSS of the process): convnet / PyTorch")
    for (name, mode, batch, threads), (c, t) in rss.items():
        if threads == 2 and batch in (64, 1000):
            print(f"  {name if mode == 'train' else 'LeNet infer':<14}{batch:>6}: {c:7.1f} / {t:7.1f}")
    print(f"(throughput part: {time.time() - t0:.0f} s)\n")
    if quick:
        return
    print("time to 99.0% MNIST test accuracy, default network and recipe "
          "(test set checked every quarter epoch, evaluation time excluded):")
    out = subprocess.run([BIN, "train", "--test-every", "0.25", "--stop-at", "0.99", "--quiet",
                          "-o", os.path.join(ROOT, "build", "bench-tta.safetensors"),
                          "--log", os.path.join(ROOT, "build", "bench-tta.csv")],
                         cwd=ROOT, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if line.startswith(("test after", "reached", "did not"))]
    for line in lines[-3:]:
        print("  " + line)
    m = re.search(r"after ([0-9.]+) s of training", lines[-1] if lines else "")
    if m:
        print(f"  target under 8 s: {'met' if float(m.group(1)) < 8 else 'NOT met'}")


if __name__ == "__main__":
    main()
