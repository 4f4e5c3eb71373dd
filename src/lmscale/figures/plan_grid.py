"""The plan at a glance: the candidate grid with the chosen runs, and the frontier (the expected
width of each target's 95% prediction interval against the budget: what more budget buys)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CHOSEN_COLOUR = "#1f77b4"  # the fit sets' blue of lmscale.figures.figure
LEFT_OUT_COLOUR = "#d9d9d9"
# Greens without its white end (a cheap run stays visible) or its dark one (the box stays visible).
COST_COLOURS = matplotlib.colors.ListedColormap(plt.cm.Greens(np.linspace(0.15, 0.75, 256)))


def grid_panel(ax, candidates: pd.DataFrame, chosen: np.ndarray, usable: np.ndarray, title: str) -> None:
    """Sizes (rows, largest at the top) by M (columns); each candidate shaded by its cost, the
    chosen ones boxed, the ones the planner does not choose from (the law misses there) grey."""
    sizes = list(candidates.sort_values("N", kind="stable").drop_duplicates("size")["size"])[::-1]
    multipliers = sorted(candidates["M"].unique())
    cost = np.log10(candidates["cost"].to_numpy(float))
    scale = plt.Normalize(cost.min(), cost.max())
    for i, (size, m) in enumerate(zip(candidates["size"], candidates["M"])):
        x, y = multipliers.index(m), sizes.index(size)
        colour = COST_COLOURS(scale(cost[i])) if usable[i] else LEFT_OUT_COLOUR
        ax.add_patch(plt.Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="white"))
        if chosen[i]:
            ax.add_patch(plt.Rectangle((x + 0.06, y + 0.06), 0.88, 0.88, fill=False, edgecolor=CHOSEN_COLOUR,
                                       linewidth=2.5))
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, fill=False, edgecolor=CHOSEN_COLOUR, linewidth=2.5),
                       plt.Rectangle((0, 0), 1, 1, facecolor=LEFT_OUT_COLOUR)],
              labels=["chosen", "not chosen from: the law misses there"], loc="upper left", bbox_to_anchor=(0, -0.13),
              ncol=2, fontsize=8, frameon=False)
    ax.figure.colorbar(plt.cm.ScalarMappable(norm=scale, cmap=COST_COLOURS), ax=ax, label="log10 cost", fraction=0.04)
    ax.set_xlim(0, len(multipliers))
    ax.set_ylim(len(sizes), 0)
    ax.set_xticks(np.arange(len(multipliers)) + 0.5, [f"{m:g}" for m in multipliers])
    ax.set_yticks(np.arange(len(sizes)) + 0.5, sizes)
    ax.set_xlabel("token multiplier M")
    ax.set_ylabel("model size")
    ax.set_title(title)


def frontier_panel(ax, frontier: pd.DataFrame, budget: float, unit: str) -> None:
    """Each target's expected 95% prediction-interval width (% of the prediction) by budget."""
    for column in [c for c in frontier.columns if c.startswith("width_")]:
        ax.plot(frontier["budget"], 100 * frontier[column], marker="o", label=column.removeprefix("width_"))
    ax.axvline(budget, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labelled minor ticks overlap within a decade
    ax.set_xlabel(f"budget ({unit})")
    ax.set_ylabel("expected 95% prediction-interval width (%)")
    ax.set_title("what the budget buys")
    ax.legend(title="target", fontsize=8)


def plan_figure(candidates: pd.DataFrame, chosen: np.ndarray, usable: np.ndarray, frontier: pd.DataFrame,
                budget: float, unit: str, title: str):
    """The grid with the plan at `budget`, beside the frontier."""
    figure, (grid_ax, frontier_ax) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    grid_panel(grid_ax, candidates, np.asarray(chosen, bool), np.asarray(usable, bool), title)
    frontier_panel(frontier_ax, frontier, budget, unit)
    figure.tight_layout()
    return figure
