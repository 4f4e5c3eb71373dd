"""Fit the error law Err(L) = eps - k exp(-gamma L) to a declared fit set."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from lmscale import jobs, laws, testbed, uncertainty
from lmscale.files import atomic_write_json
from lmscale.fit_loss import fit_points
from lmscale.jobs import FitErrorJob
from lmscale.select import read_selection

log = logging.getLogger(__name__)


def loss_and_error(
    loss: pd.DataFrame, tasks: pd.DataFrame, valset: str, task_names: list[str] | None
) -> pd.DataFrame:
    """Every model's loss on `valset` beside its average error over `task_names` (all when None)."""
    errors = testbed.average_error(tasks, task_names)
    on_valset = loss[loss["valset"] == valset]
    return on_valset.merge(errors, on=["dataset", "model"], how="inner")


def fit_error(loss: pd.DataFrame, tasks: pd.DataFrame, job: FitErrorJob, task_names: list[str] | None,
              noise_from: dict | None = None) -> dict:
    """The law, its bootstrap refits and intervals; `noise_from` as in fit_loss.fit_loss."""
    dataset, valset, points = job.dataset, job.valset, fit_points(job.fit_set)
    bootstrap_samples, seed = job.bootstrap, job.seed
    if tasks.empty:
        raise ValueError("the tasks table is empty: the error law needs downstream results (testbed/tasks.csv)")
    table = loss_and_error(loss, tasks, valset, task_names)
    rows = testbed.runs_at(table, dataset, points, "error fit set")
    if len(rows) < len(laws.ERROR_PARAMS):
        raise ValueError(f"the error fit set has {len(rows)} runs; the error law needs at least 3")
    L, err = rows["loss"].to_numpy(float), rows["err"].to_numpy(float)
    params = laws.fit_error_law(L, err)
    predicted = laws.error_law(L, **params)
    if noise_from is None:
        noise = uncertainty.point_noise(list(zip(rows["size"], rows["M"])), err, predicted, len(laws.ERROR_PARAMS))
    else:
        noise = uncertainty.PointNoise.from_dict(noise_from["noise"]).carried_to(list(rows["model"]), noise_from)
    best_start = [tuple(params[p] for p in laws.ERROR_PARAMS)]
    refits = laws.parametric_bootstrap(
        lambda drawn: laws.fit_error_law(L, drawn, starts=best_start),
        predicted, noise.sd, bootstrap_samples, seed, relative=False,
    )
    return {
        "dataset": dataset,
        "valset": valset,
        "tasks": sorted(task_names) if task_names is not None else sorted(tasks["task"].unique()),
        **laws.fitted_law(params, laws.ERROR_PARAMS, refits, bootstrap_samples, seed),
        "noise": noise.as_dict(),
        "rmse": float(np.sqrt(np.mean((predicted - err) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "M": mult, "loss": l, "err": e, "err_pred": float(p)}
            for m, s, mult, l, e, p in zip(rows["model"], rows["size"], rows["M"], L, err, predicted)
        ],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FitErrorJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", required=True)
    parser.add_argument("--selection", nargs="?", help="tasks_t{t}.json, the tasks averaged (a job without all_tasks)")
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    if job.all_tasks == (args.selection is not None):
        raise ValueError("give --selection (tasks_t{t}.json) for a job over selected tasks, none for all_tasks")
    task_names = None if job.all_tasks else read_selection(args.selection)
    law = fit_error(*testbed.read_tables(args.loss_table, args.tasks_table), job, task_names)
    log.info("error law on %s/%s over %d tasks: %s (rmse %.4g, %d bootstrap refits)", job.dataset,
             job.valset, len(law["tasks"]), law["params"], law["rmse"], law["bootstrap"]["kept"])
    atomic_write_json(args.out, law, sort_keys=False)
