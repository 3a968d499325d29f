#!/usr/bin/python3
"""mpi.py - make bench-mpi: what data-parallel training costs and gains.

Measures, on this machine:
  1. training throughput of models/mnist-best.cfg (convnet train, one
     epoch of 12 800 images, medians of ROUNDS runs, the two alternating):
     1 worker x 2 threads against 2 workers x 1 thread;
  2. one machine's training speed T (images/s, convnet bench, batch 128, all
     cores) for models/mnist-best.cfg and models/cifar10.cfg;
  3. the time of one MPI_Allreduce of each model's gradient block (its
     parameters and the step's 3 numbers) between two workers in two network
     namespaces joined by a veth pair shaped with tc to 1, 10 and 25 Gbit/s,
     and of a single float (the latency); needs root.
Then predicts the speed-up of K machines (one worker each) for K = 2, 4, 8,
16 and 64 with the ring allreduce's cost, t(K) = 2 (K-1)/K S/bw + 2 (K-1) a,
bw and a fitted to the measurements (bw from the gradient block's time at 2
workers, a from the single float's): a step of global batch B takes
B / (K T) + t(K) against B / T on one machine.  Also the number of machines
beyond which more stop helping (the minimum of the step time in K) at the
recipe's batch, and the global batch a K-machine run needs for 80%
efficiency.  Then 2 workers training models/mnist-best.cfg in the namespaces at 1 and 10
Gbit/s, the gradients exchanged after the backward pass or in buckets
started during it (--bucket-mb).  Environment: BENCH_MPI_ROUNDS (3)."""
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-mpi")
BIN = os.path.join(BUILD, "convnet")
ALLREDUCE = os.path.join(BUILD, "allreduce")
ROUNDS = int(os.environ.get("BENCH_MPI_ROUNDS", "3"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "none"]
MODELS = [("mnist-best", "models/mnist-best.cfg"), ("cifar10", "models/cifar10.cfg")]
RATES = [1, 10, 25]  # Gbit/s
MACHINES = [2, 4, 8, 16, 64]
OVERLAP_RATES = [1, 10]  # Gbit/s
BUCKETS = [0, 0.1, 0.5]  # MB; 0: one allreduce after the backward pass


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True,
                          **kw).stdout


def train_speed(workers, threads, out):
    cmd = MPIRUN + ["-np", str(workers), BIN, "train", "models/mnist-best.cfg", "--data",
                    os.path.join(ROOT, "data", "mnist"), "--limit", "12800", "--epochs", "1",
                    "--threads", str(threads), "--quiet", "-o", out]
    m = re.search(r"([0-9]+) img/s", sh(cmd))
    return float(m.group(1))


def params(cfg):
    m = re.search(r"^total\s+([0-9,]+)", sh([BIN, "info", cfg]), re.M)
    return int(m.group(1).replace(",", ""))


def speed(cfg):
    out = sh([BIN, "bench", cfg, "--json", "--batch", "128", "--seconds", "3"])
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


class Namespaces:
    """Two network namespaces joined by a veth pair, 10.98.0.1 and .2."""

    def __init__(self):
        self.ns = [f"cnbench1-{os.getpid()}", f"cnbench2-{os.getpid()}"]
        self.dev = [f"cnba{os.getpid() % 100000}", f"cnbb{os.getpid() % 100000}"]

    def __enter__(self):
        for n in self.ns:
            subprocess.run(["ip", "netns", "add", n], check=True)
        a, b = self.dev
        subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
        for i in (0, 1):
            subprocess.run(["ip", "link", "set", self.dev[i], "netns", self.ns[i]], check=True)
            ip = ["ip", "-n", self.ns[i]]
            subprocess.run(ip + ["addr", "add", f"10.98.0.{i + 1}/24", "dev", self.dev[i]],
                           check=True)
            subprocess.run(ip + ["link", "set", self.dev[i], "mtu", "9000", "up"], check=True)
            subprocess.run(ip + ["link", "set", "lo", "up"], check=True)
        self.agent = tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False)
        self.agent.write("#!/bin/sh\nhost=$1\nshift\ncase $host in\n"
                         f"10.98.0.1) exec ip netns exec {self.ns[0]} sh -c \"$*\" ;;\n"
                         f"10.98.0.2) exec ip netns exec {self.ns[1]} sh -c \"$*\" ;;\n"
                         "esac\nexit 1\n")
        self.agent.close()
        os.chmod(self.agent.name, 0o755)
        return self

    def shape(self, gbit):
        """Both directions limited to gbit Gbit/s (a token bucket, 4 ms of burst)."""
        burst = max(int(gbit * 1e9 / 8 * 0.004), 200000)
        for i in (0, 1):
            subprocess.run(["ip", "netns", "exec", self.ns[i], "tc", "qdisc", "replace", "dev",
                            self.dev[i], "root", "tbf", "rate", f"{gbit}gbit", "burst",
                            str(burst), "latency", "100ms"], check=True)

    def allreduce(self, floats, reps=20):
        cmd = ["ip", "netns", "exec", self.ns[0]] + MPIRUN + [
            "--host", "10.98.0.1,10.98.0.2", "-np", "2", "--mca", "plm_rsh_agent",
            self.agent.name, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include",
            "10.98.0.0/24", "--mca", "oob_tcp_if_include", "10.98.0.0/24", ALLREDUCE,
            str(floats), str(reps)]
        out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
        return float(re.search(r"median ([0-9.]+) s", out).group(1))

    def train(self, bucket_mb, images=6400):
        """images/s of 2 workers x 1 thread, one per namespace, training
        models/mnist-best.cfg for one epoch; --bucket-mb bucket_mb."""
        with tempfile.TemporaryDirectory() as tmp:
            cmd = ["ip", "netns", "exec", self.ns[0]] + MPIRUN + [
                "--host", "10.98.0.1,10.98.0.2", "-np", "2", "--mca", "plm_rsh_agent",
                self.agent.name, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include",
                "10.98.0.0/24", "--mca", "oob_tcp_if_include", "10.98.0.0/24", BIN, "train",
                os.path.join(ROOT, "models", "mnist-best.cfg"), "--data",
                os.path.join(ROOT, "data", "mnist"), "--limit", str(images), "--val", "0",
                "--epochs", "1", "--threads", "1", "--quiet", "--bucket-mb", str(bucket_mb),
                "-o", os.path.join(tmp, "m.safetensors")]
            out = subprocess.run(cmd, env=ENV, cwd=tmp, capture_output=True, text=True,
                                 check=True).stdout
        return float(re.search(r"([0-9]+) img/s", out).group(1))

    def __exit__(self, *exc):
        for n in self.ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        os.unlink(self.agent.name)


def main():
    print(f"machine: {sh(['sh', '-c', 'lscpu | sed -n s/^Model.name:.//p']).strip()}, "
          f"{os.cpu_count()} cores\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "m.safetensors")
        one, two = [], []
        for r in range(ROUNDS):
            order = [(1, 2, one), (2, 1, two)] if r % 2 == 0 else [(2, 1, two), (1, 2, one)]
            for w, t, into in order:
                into.append(train_speed(w, t, out))
    a, b = statistics.median(one), statistics.median(two)
    print("training models/mnist-best.cfg (one epoch of 12 800 images, medians of "
          f"{ROUNDS}):\n  1 worker x 2 threads {a:8.0f} img/s\n  2 workers x 1 thread "
          f"{b:8.0f} img/s  ({b / a:.2f}x)\n")

    info = {}
    for name, cfg in MODELS:
        info[name] = {"cfg": cfg, "params": params(cfg), "T": speed(cfg)}
        print(f"{cfg}: {info[name]['params']:,} parameters; one machine trains "
              f"{info[name]['T']:.0f} img/s (batch 128, all cores)")
    print()
    if os.geteuid() != 0:
        print("allreduce over a shaped link: skipped (needs root for network namespaces)")
        return
    times = {}
    with Namespaces() as ns:
        for gbit in RATES:
            ns.shape(gbit)
            lat = ns.allreduce(1, 50)
            row = {"latency": lat}
            for name in info:
                row[name] = ns.allreduce(info[name]["params"] + 3)
            times[gbit] = row
        # The exchange after the backward pass against buckets started
        # during it: rounds alternate the order; medians of per-round ratios.
        overlap = {}
        for gbit in OVERLAP_RATES:
            ns.shape(gbit)
            speeds = {b: [] for b in BUCKETS}
            for r in range(ROUNDS):
                for b in (BUCKETS if r % 2 == 0 else BUCKETS[::-1]):
                    speeds[b].append(ns.train(b))
            overlap[gbit] = speeds
    print("one MPI_Allreduce between 2 workers over a veth pair shaped with tc (medians of 20):")
    print(f"  {'link':>11} | {'1 float':>9} | " + " | ".join(f"{n:>12}" for n in info))
    for gbit in RATES:
        t = times[gbit]
        print(f"  {gbit:>4} Gbit/s | {1e3 * t['latency']:7.3f} ms | " +
              " | ".join(f"{1e3 * t[n]:9.2f} ms" for n in info))
    print()
    print("predicted speed-up of K machines, one worker each, the recipe's global batch 128\n"
          "(ring allreduce: 2 (K-1)/K S/bw + 2 (K-1) a, bw and a fitted above):")
    for name in info:
        T, S = info[name]["T"], 4.0 * (info[name]["params"] + 3)
        print(f"  {info[name]['cfg']}")
        print(f"    {'link':>11} | " + " ".join(f"{'K=' + str(k):>6}" for k in MACHINES) +
              " | best K | batch for 80% at K=8, 64")
        for gbit in RATES:
            t = times[gbit]
            a = t["latency"] / 2
            bw = S / max(t[name] - 2 * a, 1e-9)  # bytes/s at K = 2: (2-1)/2*2 = 1 S/bw

            def ar(k):
                return 2 * (k - 1) / k * S / bw + 2 * (k - 1) * a

            def step(k, batch):
                return batch / (k * T) + (ar(k) if k > 1 else 0.0)

            sp = [step(1, 128) / step(k, 128) for k in MACHINES]
            best = max(range(1, 129), key=lambda k: step(1, 128) / step(k, 128))
            # 80% efficiency: B/(K T) >= 4 ar(K)  ->  B >= 4 K T ar(K)
            need = [4 * k * T * ar(k) for k in (8, 64)]
            print(f"    {gbit:>4} Gbit/s | " + " ".join(f"{s:6.2f}" for s in sp) +
                  f" | {best:6d} | {need[0]:8.0f}, {need[1]:8.0f}")
    print("\ngradients exchanged after the backward pass (bucket 0) or in buckets started "
          "during it:\n2 workers x 1 thread in the namespaces, models/mnist-best.cfg, 6 400 "
          f"images, medians of {ROUNDS}")
    print(f"  {'link':>11} | " + " | ".join(f"{'bucket ' + str(b) + ' MB':>15}" for b in BUCKETS))
    for gbit in OVERLAP_RATES:
        sp = overlap[gbit]
        base = sp[0]
        cells = []
        for b in BUCKETS:
            ratio = statistics.median(x / y for x, y in zip(sp[b], base))
            cells.append(f"{statistics.median(sp[b]):6.0f} ({ratio:.2f}x)")
        print(f"  {gbit:>4} Gbit/s | " + " | ".join(f"{c:>15}" for c in cells))
    print("\n(best K: more machines than that make a step of batch 128 slower; the last "
          "columns: the global batch at which communication is a fifth of a step)")


if __name__ == "__main__":
    sys.exit(main())
