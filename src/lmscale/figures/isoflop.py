"""The isoFLOP figure: what a budget buys, and what over-training costs.

Left: the fitted loss law along each budget's isoFLOP line (N varies, D = C / 6N), its 95%
confidence band from the bootstrap refits, the compute-optimal N with its interval (the optimum
moves with the law: lmscale.laws.targets resolves every refit), and the measured runs whose compute lies
near the budget. Right: the price of over-training, the loss a run at multiplier M pays against the
optimum of the same compute, 100 (L(C, M) / L*(C) - 1) %, with the measured runs at their own
compute; under Eq. 4 the optimal M* is the same at every budget.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lmscale.figures import style
from lmscale.laws import targets
from lmscale.laws.law import LossLaw

# How far a measured run's compute may lie from a budget and still be drawn beside its isoFLOP line.
NEAR = 10**0.15  # a factor of 1.41 either way
# Budgets drawn when none are given: enough to see the optimum move, few enough to tell apart.
DEFAULT_BUDGETS = 4


def default_budgets(compute, count: int) -> list[float]:
    """`count` budgets where the measured runs are: quantiles of their log compute, two significant digits."""
    levels = np.quantile(np.log(np.asarray(compute, float)), np.linspace(0.15, 0.95, count))
    return sorted({float(f"{value:.1e}") for value in np.exp(levels)})


def isoflop_losses(loss_law: LossLaw, C: float, N) -> np.ndarray:
    """The loss along the isoFLOP line of compute C: runs of size N trained on D = C / 6N tokens."""
    N = np.asarray(N, float)
    return LossLaw.of(loss_law).predict(N, C / (6.0 * N))


def overtraining_price(loss_law: LossLaw, C: float, M) -> np.ndarray:
    """The loss of the run at multiplier M and compute C over the least loss at C, less one."""
    M = np.asarray(M, float)
    N = np.sqrt(C / (6.0 * M))
    loss = LossLaw.of(loss_law).predict(N, M * N)
    return loss / targets.optimal_loss(loss_law, C) - 1.0


def _refit_band(loss_law: LossLaw, C: float, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% band of the isoFLOP line over the bootstrap refits."""
    curves = LossLaw.of(loss_law).sample_predictions(N, C / (6.0 * N))
    if curves is None:
        return np.full(N.shape, np.nan), np.full(N.shape, np.nan)
    return np.percentile(curves, 2.5, axis=0), np.percentile(curves, 97.5, axis=0)


def _near(runs: pd.DataFrame, C: float) -> pd.DataFrame:
    return runs[np.abs(np.log(runs["C"] / C)) <= np.log(NEAR)]


def isoflop_panel(ax, runs: pd.DataFrame, loss_law: dict, optima: pd.DataFrame, colours: dict) -> None:
    """Loss against N at each budget: the law, its refits' band, the optimum and its interval, the runs near it."""
    fit_models = {point["model"] for point in loss_law.get("fit_set", [])}
    for optimum in optima.itertuples():
        colour, C = colours[optimum.C], optimum.C
        N = np.geomspace(optimum.N / 30, optimum.N * 5, 200)
        ax.plot(N, isoflop_losses(loss_law, C, N), color=colour, lw=1.4,
                label=f"C = {C:.2g}: N* = {optimum.N:.2g} [{optimum.N_ci_lo:.2g}, {optimum.N_ci_hi:.2g}]")
        ax.fill_between(N, *_refit_band(loss_law, C, N), color=colour, alpha=0.12, lw=0)
        ax.axvspan(optimum.N_ci_lo, optimum.N_ci_hi, color=colour, alpha=0.10, lw=0)
        ax.errorbar(optimum.N, optimum.loss_pred, xerr=[[optimum.N - optimum.N_ci_lo], [optimum.N_ci_hi - optimum.N]],
                    fmt="D", ms=7, color=colour, mec="black", capsize=3, zorder=5)
        near = _near(runs, C)
        ax.scatter(near["N"], near["loss"], color=colour, s=26, zorder=3, linewidth=1.2,
                   edgecolor=np.where(near["model"].isin(fit_models), "black", "none"))
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters); D = C / 6N")
    ax.set_ylabel("loss")
    ax.set_title(f"IsoFLOP lines: ◆ the optimum, shaded its 95% interval;\n"
                 f"dots: runs within x{NEAR:.2g} of the budget (black edge: fit set)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def price_panel(ax, runs: pd.DataFrame, loss_law: dict, optima: pd.DataFrame, colours: dict) -> None:
    """The price of over-training, in percent of the optimal loss at the same compute, against M."""
    multipliers = np.geomspace(max(0.5, optima["M"].min() / 10), max(runs["M"].max(), optima["M"].max()) * 3, 200)
    for optimum in optima.itertuples():
        colour = colours[optimum.C]
        ax.plot(multipliers, 100 * overtraining_price(loss_law, optimum.C, multipliers), color=colour, lw=1.4,
                label=f"C = {optimum.C:.2g}")
        ax.axvspan(optimum.M_ci_lo, optimum.M_ci_hi, color=colour, alpha=0.08, lw=0)
        near = _near(runs, optimum.C)
        excess = near["loss"] / targets.optimal_loss(loss_law, near["C"].to_numpy(float)) - 1
        ax.scatter(near["M"], 100 * excess, color=colour, s=26, zorder=3)
        ax.plot(optimum.M, 0.0, "D", ms=6, color=colour, mec="black", zorder=5)
    lowest, highest = optima["M"].min(), optima["M"].max()
    if np.isclose(lowest, highest, rtol=1e-9):
        ax.axvline(lowest, color="black", lw=0.8, ls="--")
        said = f"◆ M* = {lowest:.3g}, the same at every C (Eq. 4)"
    else:
        said = f"◆ M* from {lowest:.3g} to {highest:.3g} over these budgets: it moves with C"
    ax.text(0.98, 0.97, said, transform=ax.transAxes, fontsize=8, ha="right", va="top",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
    largest = optima["C"].iloc[-1]
    for M in (20, 100, 500):
        if 2 * highest < M < multipliers[-1]:  # off the minimum, where the price is worth reading
            price = 100 * float(overtraining_price(loss_law, largest, M))
            ax.plot(M, price, "o", ms=4, mfc="white", mec=colours[largest], zorder=4)
            # Above and to the left of a rising curve: the label stays inside the panel and off the line.
            ax.annotate(f"M = {M}: +{price:.2g}% at C = {largest:.2g}", (M, price), xytext=(-6, 4),
                        textcoords="offset points", fontsize=7, ha="right")
    ax.set_xscale("log")
    ax.set_xlabel("token multiplier M = D / N")
    ax.set_ylabel("loss above the optimum at the same C (%)")
    ax.set_title("The price of over-training: L(C, M) / L*(C) - 1;\nshaded: M*'s 95% interval; "
                 "dots: runs near each budget", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def no_optimum_figure(runs: pd.DataFrame, loss_law: dict, budgets: list[float], reason: str):
    """A law with no optimum (a term or exponent at or below zero) still has isoFLOP lines: drawn over
    the runs' sizes with the runs near each budget, and why no optimum is marked."""
    figure, ax = plt.subplots(figsize=(7, 4.8))
    N = np.geomspace(runs["N"].min() / 3, runs["N"].max() * 3, 200)
    for C, colour in zip(budgets, style.colours(style.BUDGETS, len(budgets))):
        ax.plot(N, isoflop_losses(loss_law, C, N), color=colour, lw=1.4, label=f"C = {C:.2g}")
        near = _near(runs, C)
        ax.scatter(near["N"], near["loss"], color=colour, s=26, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters); D = C / 6N")
    ax.set_ylabel("loss")
    ax.set_title(textwrap.fill(f"No optimum to mark: {reason}", 100), fontsize=7)
    ax.legend(fontsize=7)
    return figure


def isoflop_figure(loss: pd.DataFrame, loss_law: dict, dataset: str, valset: str, budgets: list[float] | None):
    """The two panels for `budgets` (FLOPs; None: DEFAULT_BUDGETS among the runs, default_budgets),
    from the loss table and the fitted loss law."""
    runs = loss[(loss["dataset"] == dataset) & (loss["valset"] == valset)]
    budgets = sorted(budgets) if budgets is not None else default_budgets(runs["C"], DEFAULT_BUDGETS)
    try:
        optima = targets.resolve_targets([{"name": f"{C:.2g}", "C": float(C)} for C in budgets], loss_law)
    except ValueError as error:  # the law has no optimum: say so on the figure, not by failing the study
        return no_optimum_figure(runs, loss_law, budgets, str(error))
    colours = dict(zip(optima["C"], style.colours(style.BUDGETS, len(optima))))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    isoflop_panel(axes[0], runs, loss_law, optima, colours)
    price_panel(axes[1], runs, loss_law, optima, colours)
    figure.suptitle(f"{dataset} ({valset}), {loss_law['form']} law: what each budget buys and what over-training costs",
                    fontsize=10)
    return figure
