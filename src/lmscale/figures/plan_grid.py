"""The plan at a glance: the candidate grid with the chosen runs, and the frontier (the expected
width of each target's 95% prediction interval against the budget: what more budget buys)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from lmscale.figures import style

CHOSEN_COLOUR = style.FIT_COLOUR  # the fit sets' blue: the chosen runs are the plan's fit set
LEFT_OUT_COLOUR = "#d9d9d9"


def grid_panel(ax, candidates: pd.DataFrame, chosen: np.ndarray, usable: np.ndarray, title: str) -> None:
    """Sizes (rows, largest at the top) by M (columns), a seaborn heatmap: each candidate shaded by
    its cost in the budgets' palette, the chosen ones boxed, the ones the planner does not choose
    from (the law misses there) grey; a cell with no candidate is left blank."""
    sizes = list(candidates.sort_values("N", kind="stable").drop_duplicates("size")["size"])[::-1]
    multipliers = sorted(candidates["M"].unique())
    rows = np.array([sizes.index(size) for size in candidates["size"]], int)
    columns = np.array([multipliers.index(m) for m in candidates["M"]], int)
    cost = np.full((len(sizes), len(multipliers)), np.nan)
    cost[rows, columns] = np.log10(candidates["cost"].to_numpy(float))
    left_out = np.zeros(cost.shape, bool)
    left_out[rows, columns] = ~usable
    style.heatmap(ax, pd.DataFrame(cost, index=sizes, columns=[f"{m:g}" for m in multipliers]), "log10 cost",
                  {"fraction": 0.04}, mask=left_out | np.isnan(cost), cmap=style.colour_map(style.BUDGETS),
                  vmin=np.nanmin(cost), vmax=np.nanmax(cost))
    for row, column in zip(*np.nonzero(left_out)):
        ax.add_patch(plt.Rectangle((column, row), 1, 1, facecolor=LEFT_OUT_COLOUR, edgecolor="white"))
    for row, column in zip(rows[chosen], columns[chosen]):
        ax.add_patch(plt.Rectangle((column + 0.06, row + 0.06), 0.88, 0.88, fill=False, edgecolor=CHOSEN_COLOUR,
                                   linewidth=2.5))
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, fill=False, edgecolor=CHOSEN_COLOUR, linewidth=2.5),
                       plt.Rectangle((0, 0), 1, 1, facecolor=LEFT_OUT_COLOUR)],
              labels=["chosen", "not chosen from: the law misses there"], loc="upper left", bbox_to_anchor=(0, -0.13),
              ncol=2, fontsize=8, frameon=False)
    ax.set_xlabel("token multiplier M")
    ax.set_ylabel("model size")
    ax.set_title(title)


def frontier_panel(ax, frontier: pd.DataFrame, budget: float, unit: str) -> None:
    """Each target's expected 95% prediction-interval width (% of the prediction) by budget."""
    for column in [c for c in frontier.columns if c.startswith("width_")]:
        ax.plot(frontier["budget"], 100 * frontier[column], marker="o", label=column.removeprefix("width_"))
    ax.axvline(budget, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap within a decade
    ax.set_xlabel(f"budget ({unit})")
    ax.set_ylabel("expected 95% prediction-interval width (%)")
    ax.set_title("what the budget buys")
    ax.legend(title="target", fontsize=8)


def plan_figure(candidates: pd.DataFrame, chosen: np.ndarray, usable: np.ndarray, frontier: pd.DataFrame,
                budget: float, unit: str, title: str):
    """The grid with the plan at `budget`, beside the frontier, in the study's figures' look
    (style.apply: the planner draws no other figure, so the look is set here, not by its command)."""
    style.apply()
    figure, (grid_ax, frontier_ax) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    grid_panel(grid_ax, candidates, np.asarray(chosen, bool), np.asarray(usable, bool), title)
    frontier_panel(frontier_ax, frontier, budget, unit)
    figure.tight_layout()
    return figure
