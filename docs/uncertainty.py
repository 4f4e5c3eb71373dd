"""The figure of docs/uncertainty.md on bootstrap refits: Chinchilla's points (Epoch AI's extraction),
Huber fit of L = E + A/N^alpha + B/D^beta, and the spread of each parameter over bootstrap refits of the
same draws done three ways:

- started at the full fit with L-BFGS's default tolerances on the raw Huber objective (lmscale before
  the fix: the optimizer stops where it starts);
- started at the full fit on the scaled objective, polished with tight tolerances (lmscale now);
- from the start grid alone (a cold fit, the reference).

    python docs/uncertainty.py --testbed ../shared/testbeds/chinchilla_epoch2024 --draws 100 --out docs/uncertainty

Prints the table of standard deviations and writes refits_chinchilla.png.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from lmscale.laws import fitting, forms, uncertainty  # noqa: E402

NAMES = ("E", "A", "B", "alpha", "beta")


def stopped_refit(arguments):
    """A refit as lmscale did it before: the raw objective, scipy's default tolerances."""
    N, D, L, start = arguments
    log_N, log_D, log_L = np.log(N), np.log(D), np.log(L)
    result = minimize(forms._huber_objective, np.asarray(start, float), args=(log_N, log_D, log_L, 1e-3, False),
                      jac=True, method="L-BFGS-B")
    e, log_A, log_B, alpha, beta = result.x
    return dict(zip(NAMES, (np.exp(e), np.exp(log_A), np.exp(log_B), alpha, beta)))


def cold_refit(arguments):
    N, D, L = arguments
    return fitting.fit_loss_law("chinchilla", N, D, L, "huber", 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, required=True)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("docs/uncertainty"))
    args = parser.parse_args()
    points = pd.read_csv(args.testbed / "points.csv").sort_values("loss").iloc[:-5]
    N = points["Model Size"].to_numpy(float)
    D = points["Training FLOP"].to_numpy(float) / (6 * N)
    L = points["loss"].to_numpy(float)
    fitted = fitting.fit_loss_law("chinchilla", N, D, L, "huber", 1e-3)
    form = forms.loss_form("chinchilla")
    center = form.predict(fitted, N, D)
    noise = uncertainty.point_noise(list(zip(N, D)), np.log(L), np.log(center), 5, robust=True)
    draws = []
    now = fitting.parametric_bootstrap(
        lambda drawn: draws.append(drawn) or fitting.fit_loss_law("chinchilla", N, D, drawn, "huber", 1e-3,
                                                              starts=[tuple(fitted[p] for p in NAMES)]),
        center, noise.sd, args.draws, seed=0, relative=True)
    start = forms._to_huber_start(form, fitted)
    before = [stopped_refit((N, D, drawn, start)) for drawn in draws]
    with ProcessPoolExecutor(2) as pool:
        cold = list(pool.map(cold_refit, [(N, D, drawn) for drawn in draws], chunksize=5))

    spreads = pd.DataFrame({name: [np.std([fit[p] for fit in fits]) for p in NAMES]
                            for name, fits in (("stopped (before)", before), ("converged (now)", now),
                                               ("cold (reference)", cold))}, index=NAMES)
    print(f"point noise: {noise.source}, {100 * noise.residual_sd:.2f}% of the loss; {args.draws} draws")
    print(spreads.to_string(float_format=lambda v: f"{v:.4g}"))
    print((spreads.div(spreads["cold (reference)"], axis=0)).to_string(float_format=lambda v: f"{v:.3g}"))

    args.out.mkdir(parents=True, exist_ok=True)
    figure, ax = plt.subplots(figsize=(6.5, 3.4))
    ratios = spreads.div(spreads["cold (reference)"], axis=0)
    for offset, column, colour in ((-0.2, "stopped (before)", "#d62728"), (0.2, "converged (now)", "#1f77b4")):
        ax.bar(np.arange(len(NAMES)) + offset, ratios[column], width=0.38, color=colour, label=column)
    ax.axhline(1, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(NAMES)), NAMES)
    ax.set_ylabel("spread over refits / cold refits")
    ax.set_title(f"Huber fit to Chinchilla's points: {args.draws} bootstrap draws", fontsize=9)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "refits_chinchilla.png", dpi=130)


if __name__ == "__main__":
    main()
