"""How long the bootstrap behind a confidence interval takes: refits of a Huber fit to the 240
Chinchilla points (Epoch AI's extraction), each started at the full fit and run to where a cold
start from the grid ends. Run by hand; prints a table.

    python benchmarks/bootstrap_refits.py --testbed ../shared/testbeds/chinchilla_epoch2024 --refits 1000

The fit stages run their refits in one process (one thread of the job).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.laws import fitting, forms, uncertainty


def cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, required=True, help="folder of chinchilla_epoch2024 (points.csv)")
    parser.add_argument("--refits", type=int, default=1000)
    args = parser.parse_args()
    points = pd.read_csv(args.testbed / "points.csv").sort_values("loss").iloc[:-5]
    N = points["Model Size"].to_numpy(float)
    D = points["Training FLOP"].to_numpy(float) / (6 * N)
    L = points["loss"].to_numpy(float)

    started = time.perf_counter()
    fitted = fitting.fit_loss_law("chinchilla", N, D, L, "huber", 1e-3)
    cold_seconds = time.perf_counter() - started
    form = forms.loss_form("chinchilla")
    center = form.predict(fitted, N, D)
    noise = uncertainty.point_noise(list(zip(N, D)), np.log(L), np.log(center), len(form.params), robust=True)
    start = [tuple(fitted[p] for p in form.params)]
    started = time.perf_counter()
    refits = fitting.parametric_bootstrap(
        lambda drawn: fitting.fit_loss_law("chinchilla", N, D, drawn, "huber", 1e-3, starts=start),
        center, noise.sd, args.refits, seed=0, relative=True)
    seconds = time.perf_counter() - started
    print(f"CPU: {cpu()}, one process")
    print(f"{'points':>8} {'cold fit (s)':>13} {'refits':>7} {'kept':>5} {'total (s)':>10} {'per refit (ms)':>15}")
    print(f"{len(L):>8} {cold_seconds:>13.2f} {args.refits:>7} {len(refits):>5} {seconds:>10.1f} "
          f"{1000 * seconds / args.refits:>15.1f}")
    for name in form.params:
        low, high = fitting.interval([fit[name] for fit in refits])
        print(f"  {name:>6} {fitted[name]:.4g} [{low:.4g}, {high:.4g}]")


if __name__ == "__main__":
    main()
