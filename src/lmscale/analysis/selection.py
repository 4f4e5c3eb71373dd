"""Task selection at threshold t (Gadre et al. 2024, Section 3.3).

A task is kept when at least one model of the reference size (any dataset,
any M) reaches the task's random baseline plus t accuracy points. Tasks that
no small model lifts above chance carry no signal for the error law.
"""

from __future__ import annotations

import logging

import pandas as pd

from lmscale.io.files import read_json

log = logging.getLogger(__name__)


def task_margins(tasks: pd.DataFrame, reference_size: str) -> pd.Series:
    """For every task, the best accuracy over chance (in points) among reference-size models."""
    reference = tasks[tasks["size"] == reference_size]
    if reference.empty:
        sizes = ", ".join(sorted(tasks["size"].unique()))
        raise ValueError(
            f"no task results for the reference size {reference_size!r}; set reference_size to one of: {sizes}"
        )
    margin = 100.0 * (reference["acc"] - reference["random_baseline"])
    return margin.groupby(reference["task"]).max().reindex(sorted(tasks["task"].unique()))


def select_tasks(tasks: pd.DataFrame, reference_size: str, threshold: float) -> dict:
    margins = task_margins(tasks, reference_size)
    # The tolerance keeps a margin of exactly t from being lost to float rounding.
    kept = sorted(task for task, margin in margins.items() if margin >= threshold - 1e-9)
    if not kept:
        raise ValueError(
            f"no task reaches {threshold} points above chance at size {reference_size!r} "
            f"(best margin {margins.max():.2f}); lower the threshold"
        )
    return {
        "threshold": threshold,
        "reference_size": reference_size,
        "reference_models": int(tasks.loc[tasks["size"] == reference_size, "model"].nunique()),
        "tasks": kept,
        "margins": {task: round(float(m), 6) for task, m in margins.items()},
    }


def read_selection(path) -> list[str]:
    return read_json(path)["tasks"]
