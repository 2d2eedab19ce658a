"""Measures Shapes generation throughput (images/s) at 224 px.

Usage:
    python bench/shapes_speed.py [--n 1024] [--runs 5] [--size 224] [--threads 2]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vit_core.data import shapes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1024, help="images per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    shapes.generate(64, seed=0, size=args.size)  # builds the cached templates once
    rates, cpu_rates = [], []
    for run in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        shapes.generate(args.n, seed=run + 1, size=args.size)
        rates.append(args.n / (time.perf_counter() - wall))
        cpu_rates.append(args.n / (time.process_time() - cpu))
    print(f"runs (img/s): {', '.join(f'{r:.0f}' for r in rates)}")
    # Wall-clock rates suffer when other jobs share the cores; the per-CPU-second rate
    # and the load average make a contended measurement recognisable.
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"per CPU-second: median {statistics.median(cpu_rates):.0f} images")
    print(f"shapes @ {args.size}px, {args.threads} threads: "
          f"median {statistics.median(rates):.0f} images/s")


if __name__ == "__main__":
    main()
