"""Fit the loss law to a declared fit set, with the confidence intervals of a parametric bootstrap
(the fit points drawn again with the noise each has: lmscale.laws.uncertainty)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from lmscale.io import tables
from lmscale.jobs import FitLossJob
from lmscale.laws import forms, uncertainty

log = logging.getLogger(__name__)


def fit_set_rows(loss: pd.DataFrame, dataset: str, valset: str, points) -> pd.DataFrame:
    on_valset = loss[loss["valset"] == valset]
    return tables.runs_at(on_valset, dataset, points, f"loss fit set on {valset}")


def fit_loss(loss: pd.DataFrame, job: FitLossJob, noise_from: dict | None = None) -> dict:
    """The law, its bootstrap refits and intervals. With `noise_from`, a law fitted to more runs
    than these (the backtest refits on fewer), each run keeps the noise that law found for it."""
    dataset, valset, points = job.dataset, job.valset, fit_points(job.fit_set)
    form, method, huber_delta, bootstrap_samples, seed = job.form, job.method, job.huber_delta, job.bootstrap, job.seed
    rows = fit_set_rows(loss, dataset, valset, points)
    law_form = forms.loss_form(form)
    if len(rows) < len(law_form.params):
        raise ValueError(
            f"the loss fit set has {len(rows)} runs but the {form} law has {len(law_form.params)} "
            f"parameters; add runs to loss_fit_set"
        )
    N, D, L = (rows[c].to_numpy(float) for c in ("N", "D", "loss"))
    params = forms.fit_loss_law(form, N, D, L, method, huber_delta)
    predicted = law_form.predict(params, N, D)
    if noise_from is None:
        noise = uncertainty.point_noise(list(zip(rows["size"], rows["M"])), np.log(L), np.log(predicted),
                                        len(law_form.params), evaluation_sd(rows), robust=method == "huber")
    else:
        noise = uncertainty.PointNoise.from_dict(noise_from["noise"]).carried_to(list(rows["model"]), noise_from)
    # Each refit starts at the full fit and runs to the optimum a cold start from the grid reaches.
    best_start = [tuple(params[p] for p in law_form.params)]
    refits = forms.parametric_bootstrap(
        lambda drawn: forms.fit_loss_law(form, N, D, drawn, method, huber_delta, starts=best_start),
        predicted, noise.sd, bootstrap_samples, seed, relative=True,
    )
    return {
        "dataset": dataset,
        "valset": valset,
        "form": form,
        "method": method,
        **forms.fitted_law(params, law_form.params, refits, bootstrap_samples, seed),
        "noise": noise.as_dict(),
        "rmse": float(np.sqrt(np.mean((predicted - L) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "N": n, "D": d, "M": mult, "loss": l, "loss_pred": float(p)}
            for m, s, n, d, mult, l, p in zip(
                rows["model"], rows["size"], N, D, rows["M"], L, predicted
            )
        ],
    }


def evaluation_sd(rows: pd.DataFrame):
    """Each loss's standard error in log units, from its evaluation's 95% interval; None where a
    table has none (a published testbed may give losses alone)."""
    low, high = rows["loss_lo"].to_numpy(float), rows["loss_hi"].to_numpy(float)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low > 0)):
        return None
    return (np.log(high) - np.log(low)) / (2 * uncertainty.Z)


def fit_points(job_points) -> list[tuple[str, float]]:
    """A job's fit set as (size, M) pairs."""
    return [(point.size, point.M) for point in job_points]
