"""Fit the loss law and the error law Err(L) = eps - k exp(-gamma L) to a declared fit set, with the
confidence intervals of a parametric bootstrap (the fit points drawn again with the noise each has:
lmscale.laws.uncertainty). Each fit is a law object (lmscale.laws.law), written as its JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lmscale.config import Point
from lmscale.io import tables
from lmscale.jobs import FitErrorJob, FitLossJob
from lmscale.laws import fitting, uncertainty
from lmscale.laws.law import ErrorLaw, FitPoint, Law, LawError, LossLaw, loss_parameters

log = logging.getLogger(__name__)


def fit_set_rows(loss: pd.DataFrame, dataset: str, valset: str, points: list[Point]) -> pd.DataFrame:
    on_valset = loss[loss["valset"] == valset]
    return tables.runs_at(on_valset, dataset, points, f"loss fit set on {valset}")


def fit_loss(loss: pd.DataFrame, job: FitLossJob, noise_from: Mapping | None = None) -> LossLaw:
    """The law, its bootstrap refits and intervals. With `noise_from`, a law fitted to more runs
    than these (the backtest refits on fewer), each run keeps the noise that law found for it."""
    dataset, valset = job.dataset, job.valset
    form, method, huber_delta, bootstrap_samples, seed = job.form, job.method, job.huber_delta, job.bootstrap, job.seed
    rows = fit_set_rows(loss, dataset, valset, job.fit_set)
    names = loss_parameters(form)
    if len(rows) < len(names):
        raise ValueError(
            f"the loss fit set has {len(rows)} runs but the {form} law has {len(names)} "
            f"parameters; add runs to loss_fit_set"
        )
    N, D, L = (rows[c].to_numpy(float) for c in ("N", "D", "loss"))
    params = fitting.fit_loss_law(form, N, D, L, method, huber_delta)
    predicted = LossLaw.given(form, params).predict(N, D)
    if noise_from is None:
        noise = uncertainty.point_noise(list(zip(rows["size"], rows["M"])), np.log(L), np.log(predicted),
                                        len(names), evaluation_sd(rows), robust=method == "huber")
    else:
        noise = uncertainty.PointNoise.from_dict(noise_from["noise"]).carried_to(list(rows["model"]), noise_from)
    # Each refit starts at the full fit and runs to the optimum a cold start from the grid reaches.
    best_start = [tuple(params[p] for p in names)]
    refits = fitting.parametric_bootstrap(
        lambda drawn: fitting.fit_loss_law(form, N, D, drawn, method, huber_delta, starts=best_start),
        predicted, noise.sd, bootstrap_samples, seed, relative=True,
    )
    return LossLaw.fitted(
        {"dataset": dataset, "valset": valset, "form": form, "method": method},
        params, refits, bootstrap_samples, seed,
        noise=noise.as_dict(),
        rmse=float(np.sqrt(np.mean((predicted - L) ** 2))),
        fit_set=[
            {"model": m, "size": s, "N": n, "D": d, "M": mult, "loss": l, "loss_pred": float(p)}
            for m, s, n, d, mult, l, p in zip(
                rows["model"], rows["size"], N, D, rows["M"], L, predicted
            )
        ],
    )


def evaluation_sd(rows: pd.DataFrame):
    """Each loss's standard error in log units, from its evaluation's 95% interval; None where a
    table has none (a published testbed may give losses alone)."""
    low, high = rows["loss_lo"].to_numpy(float), rows["loss_hi"].to_numpy(float)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low > 0)):
        return None
    return (np.log(high) - np.log(low)) / (2 * uncertainty.Z)


# ---------------------------------------------------------------- the error law


def loss_and_error(
    loss: pd.DataFrame, tasks: pd.DataFrame, valset: str, task_names: list[str] | None
) -> pd.DataFrame:
    """Every model's loss on `valset` beside its average error over `task_names` (all when None)."""
    errors = tables.average_error(tasks, task_names)
    on_valset = loss[loss["valset"] == valset]
    return on_valset.merge(errors, on=["dataset", "model"], how="inner")


def fit_error(loss: pd.DataFrame, tasks: pd.DataFrame, job: FitErrorJob, task_names: list[str] | None,
              noise_from: Mapping | None = None) -> ErrorLaw:
    """The law, its bootstrap refits and intervals; `noise_from` as in fit_loss."""
    dataset, valset = job.dataset, job.valset
    bootstrap_samples, seed = job.bootstrap, job.seed
    if tasks.empty:
        raise ValueError("the tasks table is empty: the error law needs downstream results (testbed/tasks.csv)")
    table = loss_and_error(loss, tasks, valset, task_names)
    rows = tables.runs_at(table, dataset, job.fit_set, "error fit set")
    names = ErrorLaw.names
    if len(rows) < len(names):
        raise ValueError(f"the error fit set has {len(rows)} runs; the error law needs at least 3")
    L, err = rows["loss"].to_numpy(float), rows["err"].to_numpy(float)
    params = fitting.fit_error_law(L, err)
    predicted = ErrorLaw.given(params).predict(L)
    if noise_from is None:
        noise = uncertainty.point_noise(list(zip(rows["size"], rows["M"])), err, predicted, len(names))
    else:
        noise = uncertainty.PointNoise.from_dict(noise_from["noise"]).carried_to(list(rows["model"]), noise_from)
    best_start = [tuple(params[p] for p in names)]
    refits = fitting.parametric_bootstrap(
        lambda drawn: fitting.fit_error_law(L, drawn, starts=best_start),
        predicted, noise.sd, bootstrap_samples, seed, relative=False,
    )
    return ErrorLaw.fitted(
        {"dataset": dataset, "valset": valset,
         "tasks": sorted(task_names) if task_names is not None else sorted(tasks["task"].unique())},
        params, refits, bootstrap_samples, seed,
        noise=noise.as_dict(),
        rmse=float(np.sqrt(np.mean((predicted - err) ** 2))),
        fit_set=[
            {"model": m, "size": s, "M": mult, "loss": l, "err": e, "err_pred": float(p)}
            for m, s, mult, l, e, p in zip(rows["model"], rows["size"], rows["M"], L, err, predicted)
        ],
    )


# ---------------------------------------------------------------- a law is valid or refused


def check_fitted(law: Law, table: pd.DataFrame, source: str | None = None) -> Law:
    """`law` if it lies inside its form's physical region (Law.problems); else LawError, one line: the
    law, each parameter outside with its value, its farthest fit point (`farthest_point`: by its row
    of `table`, the loss table for a loss law and the tasks table for an error law, or by its line
    in `source`, the file `table` was read from) and the fix. A fit job writes no law it refuses."""
    problems = law.problems()
    if not problems:
        return law
    over = f" over {len(law.tasks)} tasks" if isinstance(law, ErrorLaw) else ""
    raise LawError(f"{law.kind} on {law['dataset']}/{law['valset']}{over}: {' and '.join(problems)} "
                   f"({law.equation}'s region)", farthest_point(law, table, source), fit_fix(law))


def fit_fix(law: Law) -> str:
    """What to do about a fitted law outside its region."""
    if isinstance(law, ErrorLaw):
        return ("check that model's task results, or drop its run from the error fit set (loss_fit_set, "
                "error_fit_extra)")
    if law.method == "nonnegative_least_squares":
        return "check or drop that row, or add runs to loss_fit_set"
    return "check or drop that row, or fit with fit: {method: nonnegative_least_squares}"


def standardised_residuals(law: Law) -> tuple[np.ndarray, bool]:
    """Each fit point's residual over its noise's standard deviation (`law.noise["sd"]`): for a loss
    law in log units, (log L - log L_pred) / sd; for an error law (err - err_pred) / sd. The
    residuals unscaled (False) where some point has no noise estimate; inf where a loss law
    predicts a fit point's loss at or below zero."""
    points = law.fit_set
    if isinstance(law, LossLaw):
        predicted = np.array([point["loss_pred"] for point in points], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            residual = np.log([point["loss"] for point in points]) - np.log(np.where(predicted > 0, predicted, np.nan))
    else:
        residual = np.array([point["err"] - point["err_pred"] for point in points], float)
    sd = np.asarray(law.noise.get("sd") or [], float)
    scaled = sd.shape == residual.shape and bool(np.all(np.isfinite(sd) & (sd > 0)))
    residual = residual / sd if scaled else residual
    return np.where(np.isfinite(residual), residual, np.inf), scaled


def farthest_point(law: Law, table: pd.DataFrame, source: str | None = None) -> FitPoint | None:
    """The fit point with the largest standardised residual (`standardised_residuals`), the row
    that most likely bent the law; None for a law without fit points."""
    if not law.fit_set:
        return None
    residual, scaled = standardised_residuals(law)
    position = int(np.argmax(np.abs(residual)))
    point = law.fit_set[position]
    if not np.isfinite(residual[position]):
        off = f"the law predicts a loss of {point['loss_pred']:.4g} there"
    elif scaled:
        off = f"{abs(residual[position]):.1f} sd off the law"
    elif isinstance(law, LossLaw):
        off = f"{100 * abs(residual[position]):.2g}% off the law"
    else:
        off = f"{abs(residual[position]):.3g} off the law in error rate"
    labels = {"task": law.tasks} if isinstance(law, ErrorLaw) else {"valset": law["valset"]}
    if source is not None:
        row = tables.lines_in_file(source, law["dataset"], point["model"], **labels)
    else:
        source = "the tasks table" if isinstance(law, ErrorLaw) else "the loss table"
        row = tables.rows_named(table, tables.rows_of(table, law["dataset"], point["model"], **labels))
    return FitPoint(str(point["model"]), str(source), row, off)
