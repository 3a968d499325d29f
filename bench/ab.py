#!/usr/bin/python3
"""ab.py OLD_CONVNET NEW_CONVNET - two builds of convnet side by side on make
bench's workloads, to show that a change made nothing slower.

For each workload (bench/run.py's list) the two binaries run `convnet bench
--json` in turn, ROUNDS rounds, which of the two goes first alternating
from round to round; each run measures SECONDS after its warm-up.  Prints
the median images/s of each and the median of the per-round ratios
new/old, with their spread (lowest and highest ratio).  Environment:
AB_ROUNDS (5), AB_SECONDS (2), AB_FIRST (only the first N workloads)."""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, WORKLOADS  # noqa: E402

ROUNDS = int(os.environ.get("AB_ROUNDS", "5"))
SECONDS = float(os.environ.get("AB_SECONDS", "2"))


def bench(binary, model, mode, batch, threads):
    cmd = [binary, "bench", model, "--json", "--batch", str(batch), "--threads", str(threads),
           "--seconds", str(SECONDS)] + (["--infer"] if mode == "infer" else [])
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = (os.path.abspath(p) for p in sys.argv[1:])
    print(f"old: {old}\nnew: {new}\n{ROUNDS} rounds of {SECONDS:g} s each, the order "
          "alternating; medians, and the lowest and highest round ratio\n")
    print(f"{'workload':<14}{'batch':>6}{'thr':>4} | {'old img/s':>9} {'new img/s':>9} | "
          f"{'new/old':>7} {'range':>13}")
    first = int(os.environ.get("AB_FIRST", str(len(WORKLOADS))))
    for name, model, mode, batch, threads in WORKLOADS[:first]:
        a, b = [], []
        for r in range(ROUNDS):
            pair = [(old, a), (new, b)]
            for binary, into in pair if r % 2 == 0 else pair[::-1]:
                into.append(bench(binary, model, mode, batch, threads))
        ratios = [y / x for x, y in zip(a, b)]
        label = name.replace("train", "infer") if mode == "infer" else name
        print(f"{label:<14}{batch:>6}{threads:>4} | {statistics.median(a):>9.0f} "
              f"{statistics.median(b):>9.0f} | {statistics.median(ratios):>6.3f}x "
              f"{min(ratios):>6.3f}-{max(ratios):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
