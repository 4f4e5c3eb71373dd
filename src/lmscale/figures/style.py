"""The look every figure of a study shares, in matplotlib alone: a white background with a light
grid and type sized for a paper's column, and colours sampled from matplotlib's colormaps.

Seaborn's "whitegrid" / "paper" theme gave this look before; importing seaborn (and through it
scipy.stats) cost every figure job 0.75 s of a 1.6 s start, and a study draws a figure per job.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lmscale.io.files import atomic_writer  # noqa: E402

STYLE = {
    "axes.facecolor": "white", "axes.edgecolor": "0.8", "axes.linewidth": 1.0, "axes.grid": True,
    "axes.axisbelow": True, "axes.labelcolor": "0.15", "grid.color": "0.8", "grid.linestyle": "-",
    "xtick.color": "0.15", "ytick.color": "0.15", "xtick.direction": "out", "ytick.direction": "out",
    "xtick.major.size": 0, "ytick.major.size": 0, "xtick.minor.size": 0, "ytick.minor.size": 0,
    "font.size": 9.6, "axes.labelsize": 8.8, "axes.titlesize": 9.6, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "lines.linewidth": 1.2, "patch.edgecolor": "white",
}
# Sequential colormaps, light for small values, dark for large.
HEAT = "magma_r"  # relative errors: 0 is white-yellow, the worst is near black
BUDGETS = "magma_r"  # isoFLOP budgets, small to large
MULTIPLIERS = "viridis"  # token multipliers, small (dark) to large (light)


def apply() -> None:
    """Set the shared look for the figures this process draws next."""
    plt.rcParams.update(STYLE)


def colours(colormap: str, count: int) -> list[tuple]:
    """`count` colours spread evenly over `colormap`, its two ends left out: they are near white or
    near black, hard to tell from the background or from each other."""
    return [tuple(colour) for colour in matplotlib.colormaps[colormap](np.linspace(0, 1, count + 2)[1:-1])]


def annotated_heatmap(ax, values, columns: list[str], rows: list[str], vmax: float, label: str):
    """A grid of coloured cells, the first row at the top, each cell annotated with its value (one
    decimal; a missing value leaves its cell blank), and a colour bar labelled `label`. Cell (row, column)
    spans [column, column + 1] x [row, row + 1] in the axes' data coordinates, for marks drawn over it."""
    values = np.ma.masked_invalid(np.asarray(values, float))
    mesh = ax.pcolormesh(values, cmap=HEAT, vmin=0, vmax=vmax, edgecolors="white", linewidth=0.5)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    ax.invert_yaxis()
    ax.grid(False)
    ax.set_xticks(np.arange(len(columns)) + 0.5, columns)
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows, rotation=0)
    for (row, column), value in np.ndenumerate(values.filled(np.nan)):
        if np.isfinite(value):
            red, green, blue, _ = mesh.cmap(mesh.norm(value))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45
            ax.text(column + 0.5, row + 0.5, f"{value:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    return mesh


def save(figure, outputs: list[str], dpi: int) -> None:
    figure.tight_layout()
    for path in outputs:
        with atomic_writer(path, "wb") as handle:
            figure.savefig(handle, dpi=dpi, format=Path(path).suffix.lstrip("."))
    plt.close(figure)
