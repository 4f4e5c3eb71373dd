"""The testbed: two tidy tables, the seam between training and analysis.

`testbed/loss.csv`  one row per model x validation set:
    model, dataset, size, N, D, M, C, valset, loss, loss_lo, loss_hi
`testbed/tasks.csv` one row per model x downstream task:
    model, dataset, size, N, D, M, C, task, acc, random_baseline   (fractions in [0, 1])

Everything upstream writes these (a trained study through `collect`, a
published one through the importer); everything downstream reads only them.
"""

from __future__ import annotations

import argparse
import logging
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.files import atomic_writer

MODEL_COLUMNS = ["model", "dataset", "size", "N", "D", "M", "C"]
LOSS_COLUMNS = MODEL_COLUMNS + ["valset", "loss", "loss_lo", "loss_hi"]
TASK_COLUMNS = MODEL_COLUMNS + ["task", "acc", "random_baseline"]

log = logging.getLogger(__name__)


def _require_columns(table: pd.DataFrame, required: list[str], source: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; a testbed table needs {', '.join(required)}"
        )


def complete_model_columns(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Derive M = D / N and C = 6 N D where a table leaves them out."""
    table = table.copy()
    _require_columns(table, ["model", "dataset", "size", "N", "D"], source)
    if "M" not in table.columns:
        table["M"] = table["D"] / table["N"]
    if "C" not in table.columns:
        table["C"] = 6.0 * table["N"] * table["D"]
    for column in ("N", "D", "M", "C"):
        table[column] = pd.to_numeric(table[column], errors="raise").astype(float)
    table["size"] = table["size"].astype(str)
    return table


def normalise_loss_table(table: pd.DataFrame, source: str = "loss table") -> pd.DataFrame:
    table = complete_model_columns(table, source)
    _require_columns(table, ["valset", "loss"], source)
    for column in ("loss_lo", "loss_hi"):
        if column not in table.columns:
            table[column] = np.nan
    bad = table[~np.isfinite(table["loss"].astype(float)) | (table["loss"].astype(float) <= 0)]
    if len(bad):
        first = bad.iloc[0]
        raise ValueError(f"{source}: model {first['model']!r} has loss {first['loss']!r} on {first['valset']!r}")
    return table[LOSS_COLUMNS].sort_values(["dataset", "N", "M", "valset"]).reset_index(drop=True)


def normalise_task_table(table: pd.DataFrame, source: str = "tasks table") -> pd.DataFrame:
    table = complete_model_columns(table, source)
    _require_columns(table, ["task", "acc", "random_baseline"], source)
    return table[TASK_COLUMNS].sort_values(["dataset", "N", "M", "task"]).reset_index(drop=True)


def write_tables(loss: pd.DataFrame, tasks: pd.DataFrame | None, loss_path, tasks_path) -> None:
    write_csv(normalise_loss_table(loss), loss_path)
    write_csv(pd.DataFrame(columns=TASK_COLUMNS) if tasks is None else normalise_task_table(tasks), tasks_path)


def write_csv(table: pd.DataFrame, path) -> None:
    with atomic_writer(path) as handle:
        table.to_csv(handle, index=False)


def read_loss_table(path) -> pd.DataFrame:
    return normalise_loss_table(pd.read_csv(path), str(path))


def read_task_table(path) -> pd.DataFrame:
    return normalise_task_table(pd.read_csv(path), str(path))


def average_error(tasks: pd.DataFrame, task_names: list[str] | None = None) -> pd.DataFrame:
    """Average top-1 error over `task_names` (all tasks when None), one row per model.

    A model missing any of the tasks is an error: an average over fewer tasks
    would not be comparable with the others.
    """
    if task_names is not None:
        tasks = tasks[tasks["task"].isin(task_names)]
        expected = len(set(task_names))
    else:
        expected = tasks["task"].nunique()
    if tasks.empty:
        raise ValueError("no task results to average; is the tasks table empty?")
    grouped = tasks.groupby(["dataset", "model"])
    counts = grouped["task"].nunique()
    short = counts[counts < expected]
    if len(short):
        (dataset, model), count = next(iter(short.items()))
        raise ValueError(
            f"model {model!r} ({dataset}) has results for {count} of the {expected} tasks averaged"
        )
    errors = grouped.agg(err=("acc", lambda acc: float(np.mean(1.0 - acc)))).reset_index()
    return errors


# ---------------------------------------------------------------- collect a trained study


def collect(run_jsons: list[str], loss_evals: list[str], task_evals: list[str], loss_out, tasks_out) -> None:
    """Assemble the tables from a trained study's run.json and evaluation files."""
    runs = {}
    for path in run_jsons:
        run = json.loads(Path(path).read_text())
        runs[(run["dataset"], run["model"])] = {
            "model": run["model"],
            "dataset": run["dataset"],
            "size": run["size"],
            "N": run["N"],
            "D": run["D"],
            "M": run["M"],
            "C": run["C"],
        }

    def model_row(record: dict, path: str) -> dict:
        key = (record["dataset"], record["model"])
        if key not in runs:
            raise ValueError(f"{path}: no run.json for model {record['model']!r} of dataset {record['dataset']!r}")
        return runs[key]

    loss_rows = []
    for path in loss_evals:
        record = json.loads(Path(path).read_text())
        loss_rows.append(
            {
                **model_row(record, path),
                "valset": record["valset"],
                "loss": record["loss"],
                "loss_lo": record.get("loss_lo"),
                "loss_hi": record.get("loss_hi"),
            }
        )
    task_rows = []
    for path in task_evals:
        record = json.loads(Path(path).read_text())
        for task, result in record["tasks"].items():
            task_rows.append(
                {
                    **model_row(record, path),
                    "task": task,
                    "acc": result["acc"],
                    "random_baseline": result["random_baseline"],
                }
            )
    tasks = pd.DataFrame(task_rows, columns=TASK_COLUMNS) if task_rows else None
    write_tables(pd.DataFrame(loss_rows), tasks, loss_out, tasks_out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="*", default=[], help="run.json of every trained model")
    parser.add_argument("--loss-evals", nargs="*", default=[], help="validation-loss JSON files")
    parser.add_argument("--task-evals", nargs="*", default=[], help="downstream-task JSON files")
    parser.add_argument("--loss-out", required=True)
    parser.add_argument("--tasks-out", required=True)


def main(args) -> None:
    collect(args.runs, args.loss_evals, args.task_evals, args.loss_out, args.tasks_out)
    log.info("collected %d runs, %d loss evals, %d task evals", len(args.runs), len(args.loss_evals),
             len(args.task_evals))


def runs_at(table: pd.DataFrame, dataset: str, points: list[tuple[str, float]], purpose: str) -> pd.DataFrame:
    """The rows of `dataset` at each (size, M) of a fit set, in the fit set's order.

    A point with no run is an error naming it and the runs that exist, since a
    fit on fewer points than declared would silently change the law.
    """
    rows = table[table["dataset"] == dataset]
    picked = []
    for size, multiplier in points:
        match = rows[(rows["size"] == size) & np.isclose(rows["M"], multiplier, rtol=1e-6)]
        if match.empty:
            have = sorted({f"{s}@M{m:g}" for s, m in zip(rows["size"], rows["M"])})
            raise ValueError(
                f"{purpose}: no run of size {size!r} at M = {multiplier:g} in dataset {dataset!r}; "
                f"runs present: {', '.join(have) or 'none'}"
            )
        picked.append(match)
    return pd.concat(picked).drop_duplicates().reset_index(drop=True)
