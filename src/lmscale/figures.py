"""The study's figures, after the paper's: relative-error heatmaps over N x M
(Figures 5, 11, 12), loss vs compute with the fitted law per M (Figures 1 left, 2),
and average error vs loss with the fitted error law (Figures 1 right, 3)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lmscale import jobs, laws, testbed  # noqa: E402
from lmscale.files import atomic_writer, read_json  # noqa: E402
from lmscale.jobs import FigureJob  # noqa: E402
from lmscale.predict import loss_predictions, mark_held_out  # noqa: E402

HELD_OUT_COLOUR = "#d62728"  # held-out runs: red outlines in every figure

FIGURES = ("loss-heatmap", "error-heatmap", "loss-vs-compute", "error-vs-loss")


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
    sns.heatmap(
        percent, ax=ax, annot=True, fmt=".1f", cmap="rocket_r", vmin=0, vmax=max_percent,
        cbar_kws={"label": "relative error (%)"}, linewidths=0.5, linecolor="white", annot_kws={"size": 7},
    )
    # Seaborn labels every column of a small grid and a subset of a large one (an irregular testbed).
    ax.set_xticklabels([f"{float(label.get_text()):g}" for label in ax.get_xticklabels()])
    for marked, style in ((measured[fit_column], {"edgecolor": "#1f77b4"}),
                          (measured["held_out"], {"edgecolor": HELD_OUT_COLOUR, "linestyle": "--"})):
        for size, multiplier in zip(measured.loc[marked, "size"], measured.loc[marked, "M"]):
            row, column = sizes.index(size), list(percent.columns).index(multiplier)
            ax.add_patch(plt.Rectangle((column, row), 1, 1, fill=False, linewidth=2.5, **style))
    ax.set_xlabel("token multiplier M")
    ax.set_ylabel("model size N")
    ax.set_title(title)


def loss_heatmap(loss_table, loss_law, dataset, valset, max_percent, held_out=()):
    table, _ = loss_predictions(testbed.read_loss_table(loss_table), read_json(loss_law), dataset, valset)
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
    return dict(zip(multipliers, sns.color_palette("viridis", len(multipliers))))


def edge_colours(points: pd.DataFrame, fit_column: str) -> np.ndarray:
    """Marker outlines: black for the fit set, red for held-out runs, none otherwise."""
    return np.where(points[fit_column], "black", np.where(points["held_out"], HELD_OUT_COLOUR, "none"))


def loss_vs_compute(loss_table, loss_law, dataset, valset, held_out=()):
    law = read_json(loss_law)
    table, _ = loss_predictions(testbed.read_loss_table(loss_table), law, dataset, valset)
    table = mark_held_out(table, list(held_out))
    table = table[~table["target"]]
    palette = multiplier_palette(table["M"])
    form = laws.loss_form(law["form"])
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    compute_range = np.geomspace(table["C"].min() / 2, table["C"].max() * 4, 200)
    for multiplier, colour in palette.items():
        # At fixed M, N = sqrt(C / (6 M)) and D = M N trace the law's line.
        N = np.sqrt(compute_range / (6 * multiplier))
        ax.plot(compute_range, form.predict(law["params"], N, multiplier * N), color=colour, lw=1)
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
        law = read_json(law_path)
        losses = np.linspace(table["loss"].min() * 0.95, table["loss"].max() * 1.05, 200)
        ax.plot(losses, laws.error_law(losses, **law["params"]), color="black", lw=1, label="error law")
        for multiplier, colour in palette.items():
            points = table[table["M"] == multiplier]
            ax.scatter(points["loss"], points[column], color=colour, label=f"M = {multiplier:g}", s=22,
                       edgecolor=edge_colours(points, "in_error_fit"), linewidth=1.2, zorder=3)
        ax.set_xlabel(f"loss on {valset}")
        ax.set_ylabel("average top-1 error")
        ax.set_title(f"{dataset}: {title} ({len(law['tasks'])}); black edge: fit set, red: held out")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    return figure


def save(figure, outputs: list[str], dpi: int) -> None:
    figure.tight_layout()
    for path in outputs:
        with atomic_writer(path, "wb") as handle:
            figure.savefig(handle, dpi=dpi, format=Path(path).suffix.lstrip("."))
    plt.close(figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FigureJob)
    parser.add_argument("--loss-table", help="loss-heatmap, loss-vs-compute")
    parser.add_argument("--loss-law", help="loss-heatmap, loss-vs-compute")
    parser.add_argument("--predictions", help="error-heatmap, error-vs-loss")
    parser.add_argument("--error-law", help="error-vs-loss")
    parser.add_argument("--error-law-all", help="error-vs-loss")
    parser.add_argument("--out", nargs="+", required=True, help="one file per format (.png, .pdf, .svg)")


def main(args) -> None:
    job = args.job
    if job.kind not in FIGURES:
        raise ValueError(f"unknown figure {job.kind!r}; one of {', '.join(FIGURES)}")
    sns.set_theme(style="whitegrid", context="paper")
    held_out = [asdict(point) for point in job.held_out or []]
    if job.kind == "loss-heatmap":
        figure = loss_heatmap(args.loss_table, args.loss_law, job.dataset, job.valset, job.max_percent, held_out)
    elif job.kind == "error-heatmap":
        figure = error_heatmap(args.predictions, job.dataset, job.valset, job.max_percent)
    elif job.kind == "loss-vs-compute":
        figure = loss_vs_compute(args.loss_table, args.loss_law, job.dataset, job.valset, held_out)
    else:
        figure = error_vs_loss(args.predictions, args.error_law, args.error_law_all, job.dataset, job.valset)
    save(figure, args.out, job.dpi)
