"""The study's figures, after the paper's: relative-error heatmaps over N x M (Figures 5, 11,
12), loss vs compute with the fitted law per M (Figures 1 left, 2), and average error vs loss with
the fitted error law (Figures 1 right, 3); and how far the intervals can be trusted: the
backtest's rollout and the prediction intervals of every run outside the fit sets, each with its
coverage. Each function draws one figure from the files its stage writes and returns it;
`lmscale figure` (lmscale.figures.figure) picks one by its kind and saves it. The isoFLOP figure
is lmscale.figures.isoflop's, each task's error law lmscale.figures.task_panels'."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lmscale.analysis.chain import loss_predictions, mark_held_out
from lmscale.figures import style
from lmscale.figures.style import FIT_COLOUR, HELD_OUT_COLOUR
from lmscale.io import tables
from lmscale.io.files import read_json
from lmscale.laws.law import ErrorLaw, LossLaw, read_law

LAW_NAMES = {"loss": "loss", "err": "average error, selected tasks", "err_all": "average error, all tasks"}


def _size_order(table: pd.DataFrame) -> list[str]:
    return list(table.sort_values("N").drop_duplicates("size")["size"])


def heatmap_panel(ax, table: pd.DataFrame, value: str, fit_column: str, max_percent: float, title: str):
    """Relative error in percent by size (rows, largest at the top) and M (columns); fit cells
    boxed in blue, held-out runs in dashed red."""
    measured = table[table[value].notna() & ~table["target"]]
    sizes = _size_order(measured)[::-1]
    percent = measured.assign(percent=100 * measured[value]).pivot_table(
        index="size", columns="M", values="percent", aggfunc="mean"
    ).reindex(sizes)
    multipliers = list(percent.columns)
    # Columns named as read ("10", not "10.0"): seaborn labels every column of a small grid and a
    # subset of a large one (an irregular testbed), each by its own name.
    style.heatmap(ax, percent.set_axis([f"{multiplier:g}" for multiplier in multipliers], axis="columns"),
                  "relative error (%)", cmap=style.HEAT, vmin=0, vmax=max_percent, annot=True, fmt=".1f",
                  annot_kws={"size": 7})
    for marked, outline in ((measured[fit_column], {"edgecolor": FIT_COLOUR}),
                            (measured["held_out"], {"edgecolor": HELD_OUT_COLOUR, "linestyle": "--"})):
        for size, multiplier in zip(measured.loc[marked, "size"], measured.loc[marked, "M"]):
            row, column = sizes.index(size), multipliers.index(multiplier)
            # Not clipped: a box on the grid's edge keeps its full width.
            ax.add_patch(plt.Rectangle((column, row), 1, 1, fill=False, linewidth=2.5, clip_on=False, **outline))
    ax.set_xlabel("token multiplier M")
    ax.set_ylabel("model size N")
    ax.set_title(title)


def loss_heatmap(loss_table, loss_law, dataset, valset, max_percent, held_out=()):
    table, _ = loss_predictions(tables.read_loss_table(loss_table), read_law(loss_law, LossLaw), dataset, valset)
    table = mark_held_out(table, list(held_out))
    figure, ax = plt.subplots(figsize=(7, 4))
    heatmap_panel(ax, table, "loss_rel_err", "in_loss_fit", max_percent,
                  f"Loss relative error, {dataset} ({valset}); boxed: fit set, dashed: held out")
    return figure


def error_heatmap(predictions, dataset, valset, max_percent):
    table = pd.read_csv(predictions)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4))
    heatmap_panel(axes[0], table, "err_rel_err", "in_error_fit", max_percent,
                  f"Average error, selected tasks, {dataset}; boxed: fit set, dashed: held out")
    heatmap_panel(axes[1], table, "err_all_rel_err", "in_error_fit", max_percent,
                  f"Average error, all tasks, {dataset}; boxed: fit set, dashed: held out")
    return figure


def multiplier_palette(multipliers) -> dict:
    """One colour per token multiplier, dark (small M) to light (large M), shared by every figure."""
    multipliers = sorted(set(multipliers))
    return dict(zip(multipliers, style.colours(style.MULTIPLIERS, len(multipliers))))


def edge_colours(points: pd.DataFrame, fit_column: str) -> np.ndarray:
    """Marker outlines: black for the fit set, red for held-out runs, none otherwise."""
    return np.where(points[fit_column], "black", np.where(points["held_out"], HELD_OUT_COLOUR, "none"))


def loss_vs_compute(loss_table, loss_law, dataset, valset, held_out=()):
    law = read_law(loss_law, LossLaw)
    table, _ = loss_predictions(tables.read_loss_table(loss_table), law, dataset, valset)
    table = mark_held_out(table, list(held_out))
    table = table[~table["target"]]
    palette = multiplier_palette(table["M"])
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    compute_range = np.geomspace(table["C"].min() / 2, table["C"].max() * 4, 200)
    for multiplier, colour in palette.items():
        # At fixed M, N = sqrt(C / (6 M)) and D = M N trace the law's line.
        N = np.sqrt(compute_range / (6 * multiplier))
        ax.plot(compute_range, law.predict(N, multiplier * N), color=colour, lw=1)
        points = table[table["M"] == multiplier]
        ax.scatter(points["C"], points["loss"], color=colour, label=f"M = {multiplier:g}", s=22,
                   edgecolor=edge_colours(points, "in_loss_fit"), linewidth=1.2, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C = 6ND (FLOPs)")
    ax.set_ylabel(f"loss on {valset}")
    ax.set_title(f"{dataset}: fitted loss law per M (black edge: fit set, red: held out)")
    ax.legend(fontsize=7, ncol=2)
    return figure


def error_vs_loss(predictions, error_law, error_law_all, dataset, valset):
    table = pd.read_csv(predictions)
    table = table[~table["target"]]
    palette = multiplier_palette(table["M"])
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, column, law_path, title in (
        (axes[0], "err", error_law, "selected tasks"),
        (axes[1], "err_all", error_law_all, "all tasks"),
    ):
        law = read_law(law_path, ErrorLaw)
        losses = np.linspace(table["loss"].min() * 0.95, table["loss"].max() * 1.05, 200)
        ax.plot(losses, law.predict(losses), color="black", lw=1, label="error law")
        for multiplier, colour in palette.items():
            points = table[table["M"] == multiplier]
            ax.scatter(points["loss"], points[column], color=colour, label=f"M = {multiplier:g}", s=22,
                       edgecolor=edge_colours(points, "in_error_fit"), linewidth=1.2, zorder=3)
        ax.set_xlabel(f"loss on {valset}")
        ax.set_ylabel("average top-1 error")
        ax.set_title(f"{dataset}: {title} ({len(law.tasks)}); black edge: fit set, red: held out")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    return figure


def interval_panel(ax, truth, predicted, low, high, x, highlighted, title: str) -> None:
    """Each run's prediction and 95% prediction interval relative to its measured value (0: exact),
    against `x`; an interval that does not cross zero missed. Highlighted runs in red."""
    truth, predicted, low, high = (np.asarray(v, float) for v in (truth, predicted, low, high))
    inside = (truth >= low) & (truth <= high)
    drawn = np.isfinite(low) & np.isfinite(high) & (predicted > 0)  # a law predicting <= 0 has no interval
    for chosen, colour in ((~highlighted & drawn, "#1f77b4"), (highlighted & drawn, HELD_OUT_COLOUR)):
        if not chosen.any():
            continue
        relative = 100 * (predicted[chosen] / truth[chosen] - 1)
        bars = 100 * np.vstack([predicted[chosen] - low[chosen], high[chosen] - predicted[chosen]]) / truth[chosen]
        ax.errorbar(np.asarray(x)[chosen], relative, yerr=bars, fmt="o", ms=3.5, color=colour, ecolor=colour,
                    elinewidth=0.8, capsize=1.5, alpha=0.85)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylabel("(predicted - measured) / measured (%)")
    # Intervals of a law refitted on few runs can be wider than every error: the axis follows the
    # errors (and the median interval), cutting the widest bars.
    errors = np.abs(100 * (predicted[drawn] / truth[drawn] - 1))
    widths = 100 * (high[drawn] - low[drawn]) / 2 / truth[drawn]
    if errors.size:
        limit = 1.25 * max(errors.max(), np.median(widths), 1.0)
        ax.set_ylim(-limit, limit)
    undrawn = f" ({(~drawn).sum()} predicted <= 0)" if (~drawn).any() else ""
    ax.set_title(f"{title}: {inside.sum()} of {len(truth)} inside{undrawn}", fontsize=8)


def backtest(table, summary, dataset, valset):
    """One panel per law and step: the runs each step's refitted law predicts, the runs it left out
    of its fit set in red."""
    pool, steps = pd.read_csv(table), read_json(summary)["steps"]
    laws_shown = [law for law in LAW_NAMES if law in set(pool["law"])]
    figure, axes = plt.subplots(len(laws_shown), len(steps), figsize=(4.2 * len(steps), 3.4 * len(laws_shown)),
                                squeeze=False)
    for row, law in enumerate(laws_shown):
        for column, entry in enumerate(steps):
            ax = axes[row][column]
            rows = pool[(pool["law"] == law) & (pool["step"] == entry["step"])]
            left_out = ", ".join(entry["left_out"]) or "nothing"
            if rows.empty:
                ax.set_axis_off()
                ax.set_title(f"step {entry['step']} ({left_out} left out):\n{law} as at the step before", fontsize=8)
                continue
            interval_panel(ax, rows["truth"], rows["pred"], rows["pi_lo"], rows["pi_hi"], rows["C"],
                           rows["left_out_fit_run"].to_numpy(bool),
                           f"{LAW_NAMES[law]}\nstep {entry['step']} ({left_out} left out)")
            ax.set_xlabel("compute C (FLOPs)")
    figure.suptitle(f"Backtest, {dataset} ({valset}): laws refitted without their largest fit sizes; "
                    "red: the fit runs left out", fontsize=9)
    return figure


def calibration(predictions, summary, dataset, valset):
    """One panel per law: every run outside the fit sets with its prediction interval; held-out runs in red."""
    table, summary = pd.read_csv(predictions), read_json(summary)
    fit_columns = [c for c in ("in_loss_fit", "in_error_fit") if c in table.columns]
    outside = table[~table["target"] & ~table[fit_columns].any(axis=1)]
    laws_shown = [law for law in summary["outside_fit_sets"] if summary["outside_fit_sets"][law]["runs"]]
    figure, axes = plt.subplots(1, max(1, len(laws_shown)), figsize=(4.4 * max(1, len(laws_shown)), 3.6),
                                squeeze=False)
    for ax, law in zip(axes[0], laws_shown):
        rows = outside[outside[law].notna()]
        calibrated = summary["outside_fit_sets"][law]
        interval_panel(ax, rows[law], rows[f"{law}_pred"], rows[f"{law}_pi_lo"], rows[f"{law}_pi_hi"], rows["C"],
                       rows["held_out"].to_numpy(bool), LAW_NAMES[law])
        exact = calibrated.get("width_to_error_if_exact")
        ratio = (f": {calibrated['width_to_error']:.2f}x" + (f" ({exact[0]:.1f}-{exact[2]:.1f}x if exact)" if exact else "")
                 if calibrated["width_to_error"] else "")
        ax.set_xlabel(f"compute C (FLOPs)\nmedian half-width {100 * calibrated['median_half_width']:.2f}%, "
                      f"median error {100 * calibrated['median_relative_error']:.2f}%{ratio}", fontsize=7)
    figure.suptitle(f"95% prediction intervals, {dataset} ({valset}): every run outside the fit sets, "
                    "each checked on a result it did not shape; red: held out", fontsize=9)
    return figure


