"""Fit the error law Err(L) = eps - k exp(-gamma L) to a declared fit set."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from lmscale import laws, testbed
from lmscale.fit_loss import parse_points, write_json
from lmscale.select import read_selection

log = logging.getLogger(__name__)


def loss_and_error(
    loss: pd.DataFrame, tasks: pd.DataFrame, valset: str, task_names: list[str] | None
) -> pd.DataFrame:
    """Every model's loss on `valset` beside its average error over `task_names` (all when None)."""
    errors = testbed.average_error(tasks, task_names)
    on_valset = loss[loss["valset"] == valset]
    return on_valset.merge(errors, on=["dataset", "model"], how="inner")


def fit_error(
    loss: pd.DataFrame,
    tasks: pd.DataFrame,
    dataset: str,
    valset: str,
    points: list[tuple[str, float]],
    task_names: list[str] | None,
    bootstrap_samples: int = 200,
    seed: int = 0,
) -> dict:
    if tasks.empty:
        raise ValueError("the tasks table is empty: the error law needs downstream results (testbed/tasks.csv)")
    table = loss_and_error(loss, tasks, valset, task_names)
    rows = testbed.runs_at(table, dataset, points, "error fit set")
    if len(rows) < len(laws.ERROR_PARAMS):
        raise ValueError(f"the error fit set has {len(rows)} runs; the error law needs at least 3")
    L, err = rows["loss"].to_numpy(float), rows["err"].to_numpy(float)
    params = laws.fit_error_law(L, err)
    best_start = [tuple(params[p] for p in laws.ERROR_PARAMS)]
    resampled = laws.bootstrap(
        lambda idx: laws.fit_error_law(L[idx], err[idx], starts=best_start),
        len(rows),
        len(laws.ERROR_PARAMS),
        bootstrap_samples,
        seed,
    )
    predicted = laws.error_law(L, **params)
    return {
        "dataset": dataset,
        "valset": valset,
        "tasks": sorted(task_names) if task_names is not None else sorted(tasks["task"].unique()),
        **laws.fitted_law(params, laws.ERROR_PARAMS, resampled, bootstrap_samples, seed),
        "rmse": float(np.sqrt(np.mean((predicted - err) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "M": mult, "loss": l, "err": e, "err_pred": float(p)}
            for m, s, mult, l, e, p in zip(rows["model"], rows["size"], rows["M"], L, err, predicted)
        ],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--valset", required=True)
    parser.add_argument("--fit-set", required=True, help='JSON list of {"size": ..., "M": ...}')
    tasks = parser.add_mutually_exclusive_group(required=True)
    tasks.add_argument("--selection", help="tasks_t{t}.json: average over the selected tasks")
    tasks.add_argument("--all-tasks", action="store_true", help="average over every task")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)


def main(args) -> None:
    task_names = None if args.all_tasks else read_selection(args.selection)
    law = fit_error(
        *testbed.read_tables(args.loss_table, args.tasks_table),
        args.dataset,
        args.valset,
        parse_points(args.fit_set),
        task_names,
        args.bootstrap,
        args.seed,
    )
    log.info("error law on %s/%s over %d tasks: %s (rmse %.4g, %d bootstrap refits)", args.dataset,
             args.valset, len(law["tasks"]), law["params"], law["rmse"], law["bootstrap"]["kept"])
    write_json(law, args.out)
