#!/usr/bin/python3
"""run.py [--alone WORKLOAD CONTENDER | --list] - 'make bench': convnet against
PyTorch and ONNX Runtime on this machine, side by side, measured fairly.

Contenders (each run is a fresh process that times its own steps on random
data held in memory, after a warm-up; the ONNX Runtime section's trained rows
on real images, Runner.train_for_ort):
  convnet    build/convnet bench --json
  tuned      PyTorch (bench/torch_bench.py) with OpenBLAS on its AVX-512
             kernels and one BLAS thread (TUNED below)
  tuned+CL   the same with the model and data in channels-last memory format
  ORT        ONNX Runtime for Node (bench/ort_bench.js) on the network
             exported from PyTorch (bench/torch_onnx.py), inference only
  PyTorch    PyTorch as installed: OpenBLAS's threads and PyTorch's OpenMP
             threads oversubscribe the cores; measured apart (see below)

The method.  For each workload, ROUNDS rounds; in each round every contender
runs once, in an order shuffled afresh each round (seeded; the seed is
printed and BENCH_SEED repeats it), with an idle gap between runs, so that
no contender is always measured in the wake of the same other one.  Each
run measures SECONDS after its warm-up.  The table gives the median figures
of each contender, and each ratio is the median of the per-round ratios
(the machine's speed drifts; the contenders of one round ran close in
time).  A spread check follows each table: a warning line for every
workload and contender whose images/s spread by more than 20% across its
rounds, the spread being (max - min) / median.  "PyTorch as installed" gets
its own section after the others, in rounds with convnet only and a longer
cool-down after it, since a process that follows it was measured up to
half as fast.

Sections: training (and LeNet inference) against tuned PyTorch, with
convnet's GFLOP/s and their share of the machine's FMA peak (bench/peak.c,
run right after each convnet run: on a shared machine the peak moves with
the neighbours' load as convnet does, and the share is the median of the
rounds' shares, as the ratios are; the share of the peak measured once at
the start is printed beside it);
peak memory (max RSS) convnet against PyTorch; inference against ONNX
Runtime (batch 1: throughput and the latency of one image, median and 99th
percentile over at least 10 000 calls; batch 1000: throughput; then batch 1
again with the networks trained, on their test images), both given the same
threads; PyTorch as installed; convnet's time to 99.0% MNIST test
accuracy.

--alone WORKLOAD CONTENDER (make bench-alone) measures one contender by
itself on one workload, ROUNDS runs with nothing else in between, and the
same workload as make bench measures it, all its contenders in shuffled
rounds, and prints both medians and their ratio: the two should agree
within 10%.  --list prints the workloads and their contenders.

Environment: BENCH_SECONDS (3.0), BENCH_REPS (5: rounds of the main
workloads; the others get 3), BENCH_GAP (0.5 s idle between runs; 3 s
after PyTorch as installed), BENCH_SEED, BENCH_QUICK=1 (the first workload
of each section, 2 rounds, no time to accuracy)."""
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "convnet")
PEAK = os.path.join(ROOT, "build", "peak")
OUT = os.path.join(ROOT, "build", "bench")
PY = "/usr/bin/python3"
TORCH = [PY, os.path.join(ROOT, "bench", "torch_bench.py")]
REPS = int(os.environ.get("BENCH_REPS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3.0"))
GAP = float(os.environ.get("BENCH_GAP", "0.5"))
COOL = max(GAP, 3.0)  # after PyTorch as installed
QUICK = os.environ.get("BENCH_QUICK") == "1"
# BENCH_ONLY=torch, ort or installed: that section alone (no time to accuracy);
# BENCH_ONLY=tta: the time to accuracy alone.
ONLY = os.environ.get("BENCH_ONLY", "")
SPREAD = 0.20  # the spread check's limit, (max - min) / median of images/s
LATENCY_CALLS = 10000
# "Best tuned" PyTorch: OpenBLAS forced onto its AVX-512 kernels (Debian's 0.3.21
# does not recognise this CPU) and kept from fighting OpenMP for the cores.
TUNED = {"OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_NUM_THREADS": "1"}


class Workload:
    """One line of a table: a model description, training or inference, a
    batch and a thread count; minor ones get fewer rounds."""

    def __init__(self, name, model, mode, batch, threads, minor=False, trained=None):
        self.name, self.model, self.mode = name, model, mode
        self.batch, self.threads, self.minor = batch, threads, minor
        # trained: (data set, epochs): inference of the model trained on the
        # data set for that many epochs, timed on its test images in turn
        # (Runner.train_for_ort); None: the starting weights on random data.
        self.trained = trained
        base = os.path.basename(model)[:-len(".cfg")]
        self.base = base + ("-trained" if trained else "")
        self.key = f"{self.base}-{mode}-b{batch}-t{threads}"

    def label(self):
        if self.mode == "infer" and self.name.endswith(" train"):
            return self.name[:-len("train")] + "infer"
        return self.name

    def rounds(self):
        n = min(REPS, 2) if QUICK else REPS
        return max(1, min(n, 3)) if self.minor else n


W = Workload
TORCH_WORKLOADS = [
    W("LeNet train", "models/lenet.cfg", "train", 64, 2),
    W("small train", "models/small.cfg", "train", 64, 2),
    W("LeNet train", "models/lenet.cfg", "infer", 1000, 2),
    W("mnist-best", "models/mnist-best.cfg", "train", 128, 2),
    W("fashion-best", "models/fashion-best.cfg", "train", 128, 2),
    W("cifar10", "models/cifar10.cfg", "train", 128, 2),
    W("LeNet train", "models/lenet.cfg", "train", 16, 2, minor=True),
    W("LeNet train", "models/lenet.cfg", "train", 256, 2, minor=True),
    W("LeNet train", "models/lenet.cfg", "train", 64, 1, minor=True),
    W("small train", "models/small.cfg", "train", 64, 1, minor=True),
]
ORT_WORKLOADS = [
    W("LeNet", "models/lenet.cfg", "infer", 1, 1),
    W("LeNet", "models/lenet.cfg", "infer", 1, 2),
    W("LeNet", "models/lenet.cfg", "infer", 1000, 2),
    W("fashion-best", "models/fashion-best.cfg", "infer", 1, 1),
    W("fashion-best", "models/fashion-best.cfg", "infer", 1, 2),
    W("fashion-best", "models/fashion-best.cfg", "infer", 1000, 2),
    # As deployed: trained, on real images (the one-image pass of convnet
    # skips a fully connected layer's weights where its input is 0, which
    # depends on the weights and the image; ONNX Runtime's does not).
    W("LeNet trained", "models/lenet.cfg", "infer", 1, 1, trained=("mnist", 2)),
    W("LeNet trained", "models/lenet.cfg", "infer", 1, 2, trained=("mnist", 2)),
    W("fashion-best trained", "models/fashion-best.cfg", "infer", 1, 1, trained=("fashion-mnist", 3)),
    W("fashion-best trained", "models/fashion-best.cfg", "infer", 1, 2, trained=("fashion-mnist", 3)),
]
# PyTorch as installed is the historical reference, not the one to beat: fewer rounds.
INSTALLED_WORKLOADS = [W(w.name, w.model, w.mode, w.batch, w.threads, minor=True)
                       for w in TORCH_WORKLOADS[:3]]
SECTIONS = [  # name, workloads, contenders
    ("PyTorch tuned", TORCH_WORKLOADS, ["convnet", "tuned", "tuned+CL"]),
    ("ONNX Runtime", ORT_WORKLOADS, ["convnet", "ORT"]),
    ("PyTorch as installed", INSTALLED_WORKLOADS, ["convnet", "PyTorch"]),
]
# For bench/ab.py: the main table's workloads as (name, model, mode, batch, threads).
WORKLOADS = [(w.name, w.model, w.mode, w.batch, w.threads) for w in TORCH_WORKLOADS]


class Failed(Exception):
    pass


def run_json(cmd, env=None, timeout=None):
    full = dict(os.environ)
    full.update(env or {})
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True,
                           timeout=timeout or 120 + 20 * SECONDS)
    except subprocess.TimeoutExpired:
        raise Failed(f"{os.path.basename(cmd[1] if cmd[0] in (PY, 'node') else cmd[0])} "
                     "ran out of time")
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise Failed(f"exit status {p.returncode}: {last}")
    return json.loads(p.stdout.strip().splitlines()[-1])


class Runner:
    """Runs a contender on a workload; knows where ONNX Runtime is."""

    def __init__(self):
        self.ort = None  # the directory scripts/ort-install.sh gives, once installed
        self.ort_why = "not set up"
        self.trained_why = {}  # w.base: why its trained model is missing ("" when made)
        self.trained_notes = []  # what training gave, for the table's notes
        self.with_peak = False  # measure bench/peak.c after each convnet run

    def setup_ort(self, workloads):
        """Installs ONNX Runtime (scripts/ort-install.sh) and exports the
        workloads' networks; False, with the reason in ort_why, when either
        cannot be done."""
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "ort-install.sh")], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.ort_why = (r.stderr.strip().splitlines() or ["ort-install failed"])[-1]
            return False
        ort = r.stdout.strip()
        os.makedirs(OUT, exist_ok=True)
        untrained = {w.base: w for w in workloads if not w.trained}
        for _, w in sorted(untrained.items()):
            r = subprocess.run([PY, os.path.join(ROOT, "bench", "torch_onnx.py"), w.model,
                                self.out(w, ".onnx")], cwd=ROOT, capture_output=True, text=True)
            if r.returncode != 0:
                self.ort_why = f"torch.onnx.export of {w.model} failed: " + \
                    (r.stderr.strip().splitlines() or ["?"])[-1]
                return False
        for w in workloads:
            if w.trained and w.base not in self.trained_why:
                self.trained_why[w.base] = self.train_for_ort(w)
        self.ort = ort
        return True

    def train_for_ort(self, w):
        """Trains w's model on its data set (convnet train, seed 1), exports it
        (bench/torch_onnx.py) and writes the test images as both contenders'
        inputs; "" when done, else why not."""
        data, epochs = w.trained
        ddir = os.path.join(ROOT, "data", data)
        if subprocess.run(["sh", os.path.join(ROOT, "scripts", "fetch-data.sh"), data],
                          cwd=ROOT, capture_output=True).returncode != 0:
            return f"scripts/fetch-data.sh {data} failed"
        images = next((os.path.join(ddir, f) for f in ("t10k-images-idx3-ubyte",
                                                       "t10k-images-idx3-ubyte.gz")
                       if os.path.exists(os.path.join(ddir, f))), None)
        if not images:
            return f"no test images in {ddir}"
        t0 = time.time()
        r = subprocess.run([BIN, "train", w.model, "--data", ddir, "--epochs", str(epochs),
                            "--seed", "1", "--quiet", "-o", self.out(w, ".safetensors")],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            return "convnet train failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        took = time.time() - t0
        r = subprocess.run([PY, os.path.join(ROOT, "bench", "torch_onnx.py"),
                            self.out(w, ".safetensors"), self.out(w, ".onnx"), "--inputs", images,
                            self.out(w, "-test.f32")],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            return "torch.onnx.export failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
        m = re.search(r"(\d+) images .*accuracy in PyTorch ([0-9.]+)%", r.stderr)
        self.trained_notes.append(
            f"{w.base}: {w.model} trained {epochs} epoch{'s' if epochs != 1 else ''} on {data}"
            f" ({took:.0f} s), " + (f"{m.group(2)}% on its {m.group(1)} test images in PyTorch"
                                    if m else "accuracy not reported") +
            "; both contenders take the test images in turn")
        return ""

    @staticmethod
    def out(w, suffix):
        """A file of workload w's network in build/bench: ".onnx" (its export),
        ".safetensors" (the trained model), "-test.f32" (its test images)."""
        return os.path.join(OUT, w.base + suffix)

    def latency(self, w):
        return w.mode == "infer" and w.batch == 1

    def run(self, contender, w):
        common = ["--batch", str(w.batch), "--threads", str(w.threads),
                  "--seconds", str(SECONDS)]
        lat = ["--latency", str(LATENCY_CALLS)] if self.latency(w) else []
        if w.trained:
            if self.trained_why.get(w.base, "not trained") != "":
                raise Failed(self.trained_why.get(w.base, "not trained"))
            lat += ["--input", self.out(w, "-test.f32")]
        model = self.out(w, ".safetensors") if w.trained else w.model
        if contender == "convnet":
            cmd = [BIN, "bench", model, "--json"] + common + \
                (["--infer"] if w.mode == "infer" else []) + lat
            r = run_json(cmd)
            if self.with_peak:  # the machine's FMA peak right after, for the share
                pk = peak()
                r["peak_gflops"] = pk[min(w.threads, max(pk))]
            return r
        if contender == "ORT":
            if not self.ort:
                raise Failed(self.ort_why)
            return run_json(["node", os.path.join(ROOT, "bench", "ort_bench.js"), self.ort,
                             self.out(w, ".onnx")] + common + lat)
        env = {"PyTorch": {}, "tuned": TUNED, "tuned+CL": TUNED}[contender]
        cmd = TORCH + [w.model, "--mode", w.mode] + common + \
            (["--channels-last"] if contender == "tuned+CL" else [])
        return run_json(cmd, env)


def rounds_of(runner, w, contenders, rounds, rng, log):
    """{contender: [result or None per round]}, the order shuffled each round,
    an idle gap before every run (a cool-down after PyTorch as installed)."""
    res = {c: [] for c in contenders}
    last = None
    for r in range(rounds):
        order = list(contenders)
        rng.shuffle(order)
        for c in order:
            time.sleep(COOL if last == "PyTorch" else GAP)
            try:
                res[c].append(runner.run(c, w))
            except Failed as e:
                res[c].append(None)
                log.append(f"  {w.key} {c} round {r + 1}: failed, {e}")
            last = c
    return res


def med(results, field="images_per_s"):
    vals = [r[field] for r in results if r is not None]
    return statistics.median(vals) if vals else None


def ratio(a_results, b_results, field="images_per_s", invert=False):
    """Median over the rounds of a/b (b/a with invert)."""
    vals = []
    for a, b in zip(a_results, b_results):
        if a is not None and b is not None and a[field] > 0 and b[field] > 0:
            vals.append(b[field] / a[field] if invert else a[field] / b[field])
    return statistics.median(vals) if vals else None


def spread(results, field="images_per_s"):
    vals = [r[field] for r in results if r is not None]
    if len(vals) < 2:
        return None
    return (max(vals) - min(vals)) / statistics.median(vals), min(vals), max(vals)


def spread_lines(w, res, fields=("images_per_s",)):
    out = []
    for c, rs in res.items():
        for field in fields:
            s = spread(rs, field)
            if s and s[0] > SPREAD:
                what = "img/s" if field == "images_per_s" else field
                out.append(f"WARNING spread {w.key} {c}: {what} {num(s[1])} to {num(s[2])} "
                           f"across {sum(r is not None for r in rs)} rounds, "
                           f"(max-min)/median {100 * s[0]:.0f}% > {100 * SPREAD:.0f}%")
    return out


def num(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def fmt(v, spec, width):
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}{spec}}"


def fx(v, width):
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width - 1}.2f}x"


def peak():
    out = subprocess.run([PEAK], capture_output=True, text=True, check=True).stdout.split()
    return {int(out[0]): float(out[1]), int(out[2]): float(out[3])}


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            return m.group(1).strip() if m else "unknown"
    except OSError:
        return "unknown"


def blas():
    try:
        link = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
        return "OpenBLAS" if "openblas" in link else "reference BLAS (" + link + ")"
    except OSError:
        return "unknown"


def section_torch(runner, workloads, rng, pk, record):
    print("== convnet against PyTorch tuned (training, and LeNet inference) ==")
    print("tuned = " + " ".join(f"{k}={v}" for k, v in TUNED.items()) +
          "; tuned+CL = tuned with channels-last tensors; best = the faster of the two in each"
          " round; target 2x")
    print("of peak: convnet's GFLOP/s over the FMA peak (bench/peak.c) measured right after each"
          " of its runs,\nthe median of the rounds' shares (start: over the peak measured at the"
          " start of make bench)")
    head = (f"{'workload':<14}{'batch':>6}{'thr':>4}{'rnd':>4} | {'convnet':>8} {'tuned':>8}"
            f" {'tuned+CL':>8} | {'vs tuned':>8} {'vs +CL':>7} {'vs best':>7} | {'GFLOP/s':>7}"
            f" {'of peak':>7} {'start':>6}")
    print(head)
    print("-" * len(head))
    warn, log, mem, peaks = [], [], [], []
    runner.with_peak = True
    for w in workloads:
        res = rounds_of(runner, w, ["convnet", "tuned", "tuned+CL"], w.rounds(), rng, log)
        record[("torch", w.key)] = res
        best = [None if t is None and c is None else
                max((x for x in (t, c) if x is not None), key=lambda r: r["images_per_s"])
                for t, c in zip(res["tuned"], res["tuned+CL"])]
        m = {k: med(v) for k, v in res.items()}
        g = med(res["convnet"], "gflops")
        start = None if g is None else 100 * g / pk[min(w.threads, max(pk))]
        shares = [100 * r["gflops"] / r["peak_gflops"] for r in res["convnet"] if r]
        share = statistics.median(shares) if shares else None
        peaks += [(w.threads, r["peak_gflops"]) for r in res["convnet"] if r]
        vs = [ratio(res["convnet"], other) for other in (res["tuned"], res["tuned+CL"], best)]
        print(f"{w.label():<14}{w.batch:>6}{w.threads:>4}{w.rounds():>4} |"
              f" {fmt(m['convnet'], '.0f', 8)} {fmt(m['tuned'], '.0f', 8)}"
              f" {fmt(m['tuned+CL'], '.0f', 8)} | {fx(vs[0], 8)} {fx(vs[1], 7)} {fx(vs[2], 7)} |"
              f" {fmt(g, '.1f', 7)} {fmt(share, '.1f', 6)}% {fmt(start, '.1f', 5)}%", flush=True)
        warn += spread_lines(w, res)
        c_rss = [r["max_rss_mb"] for r in res["convnet"] if r]
        t_rss = [r["max_rss_mb"] for r in res["tuned"] + res["tuned+CL"] if r]
        mem.append((w, max(c_rss) if c_rss else None, min(t_rss) if t_rss else None))
    runner.with_peak = False
    finish_table(warn, log, workloads)
    for t in sorted({t for t, _ in peaks}):
        v = [p for u, p in peaks if u == t]
        print(f"FMA peak after convnet's runs, {t} thread{'s' if t > 1 else ''}: median"
              f" {statistics.median(v):.0f} GFLOP/s, {min(v):.0f} to {max(v):.0f} over {len(v)} runs")
    print("\npeak memory (MB, max RSS of the process: convnet's largest run, PyTorch's smallest"
          " of tuned and tuned+CL); target: convnet at most 1/4 of PyTorch")
    for w, c, t in mem:
        r = c / t if c and t else None
        verdict = "" if r is None else ("met" if r <= 0.25 else "NOT met")
        print(f"  {w.label():<14}{w.batch:>6}{w.threads:>4}: convnet {fmt(c, '.1f', 7)}"
              f"  PyTorch {fmt(t, '.1f', 7)}  = {fmt(r, '.2f', 5)}  {verdict}")


def section_ort(runner, workloads, rng, record):
    print("\n== convnet against ONNX Runtime (inference; the network exported from PyTorch) ==")
    if not runner.setup_ort(workloads):
        print(f"skipped: {runner.ort_why}")
        return
    print(f"ONNX Runtime {ort_version(runner.ort)} for Node, CPU execution provider:"
          " intraOpNumThreads = thr, interOpNumThreads = 1, sequential, graph optimisation all;"
          "\nconvnet on the same thread count.  img/s: convnet/ORT; latency of one image"
          f" (batch 1, >= {LATENCY_CALLS} calls per run): ORT/convnet; target 2x")
    head = (f"{'workload':<26}{'batch':>6}{'thr':>4}{'rnd':>4} | {'convnet':>8} {'ORT':>8}"
            f" {'ratio':>6} | {'p50 ms':>7} {'ORT':>7} {'ratio':>6} | {'p99 ms':>7} {'ORT':>7}"
            f" {'ratio':>6}")
    print(head)
    print("-" * len(head))
    warn, log, mem = [], [], []
    for w in workloads:
        res = rounds_of(runner, w, ["convnet", "ORT"], w.rounds(), rng, log)
        record[("ort", w.key)] = res
        c, o = res["convnet"], res["ORT"]
        line = (f"{w.label() + ' infer':<26}{w.batch:>6}{w.threads:>4}{w.rounds():>4} |"
                f" {fmt(med(c), '.0f', 8)} {fmt(med(o), '.0f', 8)} {fx(ratio(c, o), 6)} |")
        if runner.latency(w):
            for f in ("latency_ms_p50", "latency_ms_p99"):
                line += (f" {fmt(med(c, f), '.4f', 7)} {fmt(med(o, f), '.4f', 7)}"
                         f" {fx(ratio(c, o, f, invert=True), 6)} |")
        print(line.rstrip(" |"), flush=True)
        warn += spread_lines(w, res, ("images_per_s", "latency_ms_p50") if runner.latency(w)
                             else ("images_per_s",))
        c_rss = [r["max_rss_mb"] for r in c if r]
        o_rss = [r["max_rss_mb"] for r in o if r]
        mem.append((w, max(c_rss) if c_rss else None, min(o_rss) if o_rss else None))
    finish_table(warn, log, workloads)
    for note in runner.trained_notes:
        print("  " + note)
    print("\npeak memory (MB, max RSS): convnet / ORT (a Node process, Node itself about 40 MB)")
    for w, c, o in mem:
        print(f"  {w.label() + ' infer':<26}{w.batch:>6}{w.threads:>4}: {fmt(c, '.1f', 7)} /"
              f" {fmt(o, '.1f', 7)}")


def section_installed(runner, workloads, rng, record):
    print("\n== convnet against PyTorch as installed (measured apart) ==")
    print("PyTorch's environment as given: its OpenBLAS threads and its OpenMP threads share the"
          f" cores;\nrounds of convnet and it alone, shuffled, {COOL:g} s of cool-down after it")
    head = (f"{'workload':<14}{'batch':>6}{'thr':>4}{'rnd':>4} | {'convnet':>8} {'PyTorch':>8}"
            f" | {'vs PyT':>7}")
    print(head)
    print("-" * len(head))
    warn, log = [], []
    for w in workloads:
        res = rounds_of(runner, w, ["convnet", "PyTorch"], w.rounds(), rng, log)
        record[("installed", w.key)] = res
        print(f"{w.label():<14}{w.batch:>6}{w.threads:>4}{w.rounds():>4} |"
              f" {fmt(med(res['convnet']), '.0f', 8)} {fmt(med(res['PyTorch']), '.0f', 8)} |"
              f" {fx(ratio(res['convnet'], res['PyTorch']), 7)}", flush=True)
        warn += spread_lines(w, res)
    finish_table(warn, log, workloads)


def finish_table(warn, log, workloads):
    if max(w.rounds() for w in workloads) < 2:
        print("spread check: not made, it needs 2 rounds or more")
        for line in log:
            print("  " + line)
        return
    what = "img/s" + (", and p50 latency at batch 1," if any(w.batch == 1 for w in workloads)
                      else "")
    print(f"spread check ({what} across rounds, (max-min)/median, limit {100 * SPREAD:.0f}%): " +
          ("all within" if not warn else f"{len(warn)} over"))
    for line in warn + log:
        print("  " + line)


def ort_version(ort_dir):
    try:
        with open(os.path.join(ort_dir, "node_modules", "onnxruntime-node", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


TTA_EVERY = 0.05  # epochs between checks of the test set
TTA_RUNS = 3  # the same run repeated: a shared machine's minute can be 1.6x slower than the next


def tta_once(k):
    """One training run of the default network and recipe with the test set
    checked every TTA_EVERY epochs: the checks as (epochs, accuracy %, seconds
    of training), or an error line."""
    out = subprocess.run([BIN, "train", "--test-every", str(TTA_EVERY), "--quiet",
                          "-o", os.path.join(OUT, f"tta{k}.safetensors"),
                          "--log", os.path.join(OUT, f"tta{k}.csv")],
                         cwd=ROOT, capture_output=True, text=True).stdout
    checks = []
    for line in out.splitlines():
        m = re.match(r"test after ([0-9.]+) epochs: accuracy ([0-9.]+)%.*\(([0-9.]+) s of training\)",
                     line)
        if m:
            checks.append(tuple(float(g) for g in m.groups()))
    if not checks:
        return "no test-set checks in convnet's output: " + (out.strip().splitlines() or [""])[-1]
    return checks


def time_to_accuracy():
    """The default network and recipe trained for its epoch with the test set
    checked every TTA_EVERY epochs, TTA_RUNS times (the same seed: the same
    model, only the time differs).  Reported: the training time (evaluation
    excluded) of the first check from which every later check, to the end of
    the run, is at 99.0% or above (a model that only touched 99% once and
    fell back does not count), for each run, and their median, which the
    target is judged on, as the other tables' medians.  Checks every quarter
    epoch, as until session 34, overstate the time by up to a quarter epoch
    (about 1 s here)."""
    print("\ntime to 99.0% MNIST test accuracy, default network and recipe "
          f"(test set checked every {TTA_EVERY:g} epochs, evaluation time excluded; "
          "the time from which every later check is at 99.0% or above; "
          f"{TTA_RUNS} runs, their median):")
    times = []
    for k in range(TTA_RUNS):
        checks = tta_once(k)
        if isinstance(checks, str):
            print("  " + checks)
            return
        first = None
        for i in range(len(checks)):
            if all(c[1] >= 99.0 for c in checks[i:]):
                first = checks[i]
                break
        last = checks[-1]
        if first is None:
            print(f"  run {k + 1}: 99.0% not held at the end of the run ({last[1]:.2f}% after "
                  f"{last[0]:.2f} epochs); target under 3 s: NOT met")
            return
        times.append(first[2])
        print(f"  run {k + 1}: {len(checks)} checks, the last {last[1]:.2f}% after {last[0]:.2f} "
              f"epochs ({last[2]:.2f} s of training); at or above 99.0% from {first[0]:.2f} "
              f"epochs on: {first[1]:.2f}% after {first[2]:.2f} s of training")
    med = statistics.median(times)
    print(f"  median {med:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}); "
          f"target under 3 s: {'met' if med < 3 else 'NOT met'}")


def find(key, contender):
    for name, workloads, contenders in SECTIONS:
        for w in workloads:
            if w.key == key and contender in contenders:
                return name, w, contenders
    return None


def list_workloads():
    for name, workloads, contenders in SECTIONS:
        print(f"{name}: contenders {', '.join(contenders)}")
        for w in workloads:
            print(f"  {w.key}")


def alone(runner, key, contender, seed):
    found = find(key, contender)
    if not found:
        print(f"run.py: no workload '{key}' with contender '{contender}'; --list shows them",
              file=sys.stderr)
        return 2
    section, w, contenders = found
    if "ORT" in contenders and not runner.setup_ort([w]):
        print(f"run.py: ONNX Runtime: {runner.ort_why}", file=sys.stderr)
        return 1
    rng = random.Random(seed)
    n = REPS
    print(f"{w.key} ({section}), {contender}: {n} rounds of {SECONDS:g} s, gaps of {GAP:g} s;"
          f" seed {seed}")
    log = []
    inside = rounds_of(runner, w, contenders, n, rng, log)[contender]
    by_itself = rounds_of(runner, w, [contender], n, rng, log)[contender]
    a, b = med(by_itself), med(inside)
    print(f"  inside make bench (with {', '.join(c for c in contenders if c != contender)},"
          f" shuffled): median {fmt(b, '.1f', 0)} img/s, runs: " +
          " ".join(fmt(r and r["images_per_s"], ".0f", 0) for r in inside))
    print(f"  alone:                                 median {fmt(a, '.1f', 0)} img/s, runs: " +
          " ".join(fmt(r and r["images_per_s"], ".0f", 0) for r in by_itself))
    for what, rs in (("inside", inside), ("alone", by_itself)):
        s = spread(rs)
        if s and s[0] > SPREAD:
            print(f"  WARNING spread {what}: (max-min)/median {100 * s[0]:.0f}% > "
                  f"{100 * SPREAD:.0f}%")
    for line in log + runner.trained_notes:
        print(line)
    if a and b:
        r = a / b
        print(f"  alone / inside = {r:.3f}: " +
              ("agree within 10%" if abs(r - 1) <= 0.10 else "DIFFER by more than 10%"))
    return 0


def main(argv):
    seed = int(os.environ.get("BENCH_SEED", str(int(time.time()) % 100000)))
    runner = Runner()
    if argv[:1] == ["--list"]:
        list_workloads()
        return 0
    if argv[:1] == ["--alone"]:
        if len(argv) != 3:
            print("usage: run.py --alone WORKLOAD CONTENDER (run.py --list)", file=sys.stderr)
            return 2
        return alone(runner, argv[1], argv[2], seed)
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    rng = random.Random(seed)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.time()
    pk = peak()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores seen; FMA peak (bench/peak.c):"
          f" {pk[1]:.0f} GFLOP/s on 1 core, {max(pk):d} cores {pk[max(pk)]:.0f} GFLOP/s")
    print(f"PyTorch's BLAS: {blas()}; environment as given otherwise")
    print(f"{SECONDS:g} s per run after a warm-up; rounds per workload in column 'rnd'; the"
          f" contenders in a shuffled order each round (seed {seed}: BENCH_SEED={seed} repeats"
          f" it),\n{GAP:g} s idle between runs; medians of the figures and of each round's ratio\n")
    pick = (lambda ws: ws[:1]) if QUICK else (lambda ws: ws)
    record = {}
    if ONLY not in ("", "torch", "ort", "installed", "tta"):
        print(f"BENCH_ONLY={ONLY}: not a section (torch, ort, installed or tta)", file=sys.stderr)
        return 2
    if ONLY in ("", "torch"):
        section_torch(runner, pick(TORCH_WORKLOADS), rng, pk, record)
    t1 = time.time()
    if ONLY in ("", "ort"):
        section_ort(runner, pick(ORT_WORKLOADS), rng, record)
    t2 = time.time()
    if ONLY in ("", "installed"):
        section_installed(runner, pick(INSTALLED_WORKLOADS), rng, record)
    t3 = time.time()
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"seed": seed, "seconds": SECONDS, "reps": REPS,
                   "runs": [{"section": s, "workload": k, "contender": c, "results": rs}
                            for (s, k), res in record.items() for c, rs in res.items()]}, f)
    print(f"\n(time: PyTorch tuned {t1 - t0:.0f} s, ONNX Runtime {t2 - t1:.0f} s, as installed"
          f" {t3 - t2:.0f} s; every run in build/bench/results.json)")
    if not QUICK and ONLY in ("", "tta"):
        time_to_accuracy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
