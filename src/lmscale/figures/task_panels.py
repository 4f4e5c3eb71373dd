"""The per-task figure: one small panel per task with a law, error against loss as in the paper's
Figure 3, the task's fitted law, and the held-out runs with their 95% prediction intervals; the
tasks without a law named below the panels."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lmscale.figures.style import FIT_COLOUR, HELD_OUT_COLOUR
from lmscale.io.files import read_json
from lmscale.laws.law import ErrorLaw

OTHER_COLOUR = "#9a9a9a"  # runs neither in the fit set nor held out
COLUMNS = 6


def task_order(summary: dict) -> list[str]:
    """The kept tasks first, then the others with a law, each group by name."""
    return sorted(summary["laws"], key=lambda task: (not summary["laws"][task]["kept"], task))


def task_panel(ax, rows: pd.DataFrame, law: dict, calibrated: dict | None) -> None:
    """One task: its measured runs (fit set in blue, others grey), its law, and each held-out run's
    measured error (red circle) beside its prediction at the predicted loss with its 95% interval."""
    measured = rows[~rows["target"]]
    fit, held_out = measured[measured["in_fit_set"]], measured[measured["held_out"]]
    others = measured[~measured["in_fit_set"] & ~measured["held_out"]]
    low = min(measured["loss"].min(), measured["loss_pred"].min()) * 0.98
    high = max(measured["loss"].max(), measured["loss_pred"].max()) * 1.01
    losses = np.linspace(low, high, 200)
    ax.plot(losses, ErrorLaw.of(law).predict(losses), color="black", lw=0.9, zorder=2)
    ax.scatter(others["loss"], others["err"], s=7, color=OTHER_COLOUR, zorder=3)
    ax.scatter(fit["loss"], fit["err"], s=9, color=FIT_COLOUR, zorder=4)
    drawn = held_out[~held_out["below_zero"]]
    ax.errorbar(drawn["loss_pred"], drawn["err_pred"],
                yerr=[drawn["err_pred"] - drawn["err_pi_lo"], drawn["err_pi_hi"] - drawn["err_pred"]],
                fmt="D", ms=3, color=HELD_OUT_COLOUR, mfc="white", elinewidth=1, capsize=2, zorder=5)
    ax.scatter(held_out["loss"], held_out["err"], s=14, color=HELD_OUT_COLOUR, zorder=6)
    top = max(measured["err"].max(), drawn["err_pi_hi"].max() if len(drawn) else 0)
    ax.set_ylim(max(0.0, min(measured["err"].min(), drawn["err_pi_lo"].min() if len(drawn) else 1) - 0.03),
                min(1.1, top + 0.03))
    ax.tick_params(labelsize=6, pad=1)
    star = " *" if law["kept"] else ""
    inside = ("" if not calibrated or not calibrated["runs"]
              else f"\n{round(calibrated['coverage'] * calibrated['runs'])}/{calibrated['runs']} inside PI")
    below = ", held out: law <= 0" if held_out["below_zero"].any() else ""
    ax.set_title(f"{rows['task'].iloc[0]}{star}{inside}{below}", fontsize=7, pad=2)


def unfit_note(summary: dict, width: int = 230) -> str:
    """The tasks without a law, grouped by the first words of their reason, wrapped."""
    groups: dict[str, list[str]] = {}
    for task, why in sorted(summary["unfit"].items()):
        groups.setdefault(why["reason"].split(":")[0].split(" (")[0], []).append(task + (" *" if why["kept"] else ""))
    if not groups:
        return "Every candidate task has a law."
    words = ["No law:"] + [f"{reason}: {', '.join(tasks)}." for reason, tasks in groups.items()]
    words = " ".join(words + ["Each reason in full in the per-task JSON."]).split(" ")
    lines, line = [], ""
    for word in words:
        if len(line) + len(word) > width:
            lines.append(line.rstrip())
            line = ""
        line += word + " "
    return "\n".join(lines + [line.rstrip()])


def per_task_figure(table: pd.DataFrame, summary: dict, dataset: str, valset: str):
    """The panels, COLUMNS to a row, with a shared legend line and the tasks without a law."""
    order = task_order(summary)
    rows_of_panels = max(1, math.ceil(len(order) / COLUMNS))
    figure, axes = plt.subplots(rows_of_panels, COLUMNS, figsize=(2.35 * COLUMNS, 1.95 * rows_of_panels + 1.1),
                                squeeze=False)
    per_task = summary["calibration"]["per_task"]
    for ax, task in zip(axes.flat, order):
        task_panel(ax, table[table["task"] == task], summary["laws"][task], per_task.get(task))
    for ax in list(axes.flat)[len(order):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("top-1 error", fontsize=7)
    for ax in axes[-1, :]:
        ax.set_xlabel(f"loss on {valset}", fontsize=7)
    overall = summary["calibration"]["outside_fit_sets"]
    coverage = (f"All (task, run) pairs outside the fit sets: {round(overall['coverage'] * overall['runs'])} of "
                f"{overall['runs']} inside their interval, each set without its own run" if overall["runs"]
                else "No run outside the fit sets to check the intervals on")
    figure.suptitle(
        f"Per-task error laws, {dataset} ({valset}); * kept at t. Blue: fit set; grey: other runs; black: the task's "
        f"law. Red: held-out runs, dot measured, diamond predicted\n(at the predicted loss) with its 95% prediction "
        f"interval. {coverage}", fontsize=8)
    # A figure label, not free text: the layout (here and when lmscale.figures.figure saves it) makes room for it.
    figure.supxlabel(unfit_note(summary), x=0.01, ha="left", fontsize=6.5)
    figure.tight_layout()
    return figure


def draw(table_path, summary_path, dataset: str, valset: str):
    """The figure from the per-task table (CSV) and summary (JSON) files."""
    return per_task_figure(pd.read_csv(table_path), read_json(summary_path), dataset, valset)
