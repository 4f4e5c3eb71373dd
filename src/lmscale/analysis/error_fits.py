"""Fit the error law Err(L) = eps - k exp(-gamma L) to a declared fit set."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from lmscale.analysis.fits import fit_points
from lmscale.io import tables
from lmscale.jobs import FitErrorJob
from lmscale.laws import forms, uncertainty

log = logging.getLogger(__name__)


def loss_and_error(
    loss: pd.DataFrame, tasks: pd.DataFrame, valset: str, task_names: list[str] | None
) -> pd.DataFrame:
    """Every model's loss on `valset` beside its average error over `task_names` (all when None)."""
    errors = tables.average_error(tasks, task_names)
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
    rows = tables.runs_at(table, dataset, points, "error fit set")
    if len(rows) < len(forms.ERROR_PARAMS):
        raise ValueError(f"the error fit set has {len(rows)} runs; the error law needs at least 3")
    L, err = rows["loss"].to_numpy(float), rows["err"].to_numpy(float)
    params = forms.fit_error_law(L, err)
    predicted = forms.error_law(L, **params)
    if noise_from is None:
        noise = uncertainty.point_noise(list(zip(rows["size"], rows["M"])), err, predicted, len(forms.ERROR_PARAMS))
    else:
        noise = uncertainty.PointNoise.from_dict(noise_from["noise"]).carried_to(list(rows["model"]), noise_from)
    best_start = [tuple(params[p] for p in forms.ERROR_PARAMS)]
    refits = forms.parametric_bootstrap(
        lambda drawn: forms.fit_error_law(L, drawn, starts=best_start),
        predicted, noise.sd, bootstrap_samples, seed, relative=False,
    )
    return {
        "dataset": dataset,
        "valset": valset,
        "tasks": sorted(task_names) if task_names is not None else sorted(tasks["task"].unique()),
        **forms.fitted_law(params, forms.ERROR_PARAMS, refits, bootstrap_samples, seed),
        "noise": noise.as_dict(),
        "rmse": float(np.sqrt(np.mean((predicted - err) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "M": mult, "loss": l, "err": e, "err_pred": float(p)}
            for m, s, mult, l, e, p in zip(rows["model"], rows["size"], rows["M"], L, err, predicted)
        ],
    }
