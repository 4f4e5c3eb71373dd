"""Fit the loss law to a declared fit set, with bootstrap intervals."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from lmscale import jobs, laws, testbed
from lmscale.files import atomic_write_json
from lmscale.jobs import FitLossJob

log = logging.getLogger(__name__)


def fit_set_rows(loss: pd.DataFrame, dataset: str, valset: str, points) -> pd.DataFrame:
    on_valset = loss[loss["valset"] == valset]
    return testbed.runs_at(on_valset, dataset, points, f"loss fit set on {valset}")


def fit_loss(loss: pd.DataFrame, job: FitLossJob) -> dict:
    dataset, valset, points = job.dataset, job.valset, fit_points(job.fit_set)
    form, method, huber_delta, bootstrap_samples, seed = job.form, job.method, job.huber_delta, job.bootstrap, job.seed
    rows = fit_set_rows(loss, dataset, valset, points)
    law_form = laws.loss_form(form)
    if len(rows) < len(law_form.params):
        raise ValueError(
            f"the loss fit set has {len(rows)} runs but the {form} law has {len(law_form.params)} "
            f"parameters; add runs to loss_fit_set"
        )
    N, D, L = (rows[c].to_numpy(float) for c in ("N", "D", "loss"))
    params = laws.fit_loss_law(form, N, D, L, method, huber_delta)

    best_start = [tuple(params[p] for p in law_form.params)]
    resampled = laws.bootstrap(
        lambda idx: laws.fit_loss_law(form, N[idx], D[idx], L[idx], method, huber_delta, starts=best_start),
        len(rows),
        len(law_form.params),
        bootstrap_samples,
        seed,
    )
    predicted = law_form.predict(params, N, D)
    return {
        "dataset": dataset,
        "valset": valset,
        "form": form,
        "method": method,
        **laws.fitted_law(params, law_form.params, resampled, bootstrap_samples, seed),
        "rmse": float(np.sqrt(np.mean((predicted - L) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "N": n, "D": d, "M": mult, "loss": l, "loss_pred": float(p)}
            for m, s, n, d, mult, l, p in zip(
                rows["model"], rows["size"], N, D, rows["M"], L, predicted
            )
        ],
    }


def fit_points(job_points) -> list[tuple[str, float]]:
    """A job's fit set as (size, M) pairs."""
    return [(point.size, point.M) for point in job_points]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FitLossJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    law = fit_loss(testbed.read_loss_table(args.loss_table), job)
    log.info("%s %s law on %s/%s: %s (rmse %.4g, %d bootstrap refits)", law["form"], law["method"],
             job.dataset, job.valset, law["params"], law["rmse"], law["bootstrap"]["kept"])
    atomic_write_json(args.out, law, sort_keys=False)
