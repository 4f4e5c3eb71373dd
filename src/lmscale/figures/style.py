"""The look every figure of a study shares: seaborn's "whitegrid" theme in its "paper" context
(a white background with a light grid, type sized for a paper's column), colours from seaborn's
palettes, heatmaps through `seaborn.heatmap`; and `save`, a figure in every format asked.

Colours keep one meaning in every figure: blue marks a fit set (or a plan's chosen runs), red a
held-out run; a budget (compute, or its price) is shaded in BUDGETS, a token multiplier in
MULTIPLIERS, a relative error in HEAT.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from lmscale.io.files import atomic_writer

# Seaborn's palettes, light for small values and dark for large unless said.
HEAT = "rocket_r"  # relative errors: 0 is pale, the worst dark
BUDGETS = "flare"  # budgets: isoFLOP compute, small to large; a planned run's cost
MULTIPLIERS = "viridis"  # token multipliers, small (dark) to large (light)
FIT_COLOUR = "#1f77b4"  # a fit set: the heatmaps' boxes, the per-task panels' points, a plan's chosen runs
HELD_OUT_COLOUR = "#d62728"  # held-out runs, in every figure


def apply() -> None:
    """Set the shared look for the figures this process draws next."""
    sns.set_theme(style="whitegrid", context="paper")


def colours(palette: str, count: int) -> list[tuple]:
    """`count` colours of the seaborn palette `palette`, evenly spread."""
    return list(sns.color_palette(palette, count))


def colour_map(palette: str):
    """The seaborn palette `palette` as a continuous colormap."""
    return sns.color_palette(palette, as_cmap=True)


def heatmap(ax, values, label: str, colour_bar: dict | None = None, **options):
    """`values` (a DataFrame: its index the rows, the first at the top, its columns the columns) as
    seaborn.heatmap's cells, white-edged, with a colour bar labelled `label` (more of its settings in
    `colour_bar`); `options` go to seaborn.heatmap (cmap, vmin, vmax, annot, mask...). A missing
    value leaves its cell blank. Cell (row, column) spans [column, column + 1] x [row, row + 1] in
    the axes' data coordinates, for marks drawn over it."""
    sns.heatmap(values, ax=ax, linewidths=0.5, linecolor="white", cbar_kws={"label": label, **(colour_bar or {})},
                **options)
    ax.grid(False)  # the theme's grid would show through a blank cell
    ax.tick_params(axis="y", labelrotation=0)  # row names read across, as the column names do
    return ax


def save(figure, outputs: list[str], dpi: int) -> None:
    figure.tight_layout()
    for path in outputs:
        with atomic_writer(path, "wb") as handle:
            figure.savefig(handle, dpi=dpi, format=Path(path).suffix.lstrip("."))
    plt.close(figure)
