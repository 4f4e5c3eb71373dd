"""Per-task predictions: each task's error law (paper Eq. 5) fitted on its own and chained from the
loss law, with the two intervals every lmscale number carries.

A task's error rate Err_task(L) = eps - k exp(-gamma L) is fitted to the error fit set exactly as
the average's law is (`fit_error.fit_error` over that one task: least squares from the grid, the
parametric bootstrap with `uncertainty.point_noise`), and chained from the loss law: the i-th loss
refit feeds the i-th task refit, so a task's confidence interval carries both laws' uncertainty.
Its prediction interval adds the task law's own error out of sample, measured by the backtest's
rollout run over every task law at once (`backtest.backtest`: the laws refitted with the largest
fit sizes left out, predicting every (task, run) they lack), and each run whose residuals entered
that estimate gets the interval it would have had without them (`predict.add_prediction_intervals`).

Which tasks: every candidate task (the job's list, or every task of the table) whose law fits.
A law does not fit when no start of the grid converges (also with the largest fit sizes left out,
where the backtest must refit it), when it has not Eq. 5's shape (k or gamma at or below zero: an
error that rises as the loss falls, or that grows without a ceiling as the loss grows; a law of
noise), or, for a task not kept at the threshold, when its fall across the fit set is under
`min_signal` times its points' noise. Such a task is listed with the
reason; a task kept at the threshold has signal by that selection and is not held to `min_signal`.
Where a fitted law predicts an error rate at or below zero (Eq. 5 falls without bound as the loss
falls) it does not hold: that (task, run) gets no interval, is flagged `below_zero` and counts
as a miss. A task's error can come near zero, where intervals set in log units need care: a
prediction interval is widened to hold a confidence interval that reaches zero (down to zero), and
ends at an error rate of 1.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from lmscale.analysis import chain, rollout
from lmscale.analysis.fits import fit_error, loss_and_error
from lmscale.io import tables
from lmscale.jobs import BacktestJob, PerTaskJob
from lmscale.laws import fitting, uncertainty
from lmscale.laws.law import ErrorLaw, LossLaw, loss_parameters

log = logging.getLogger(__name__)

# Each task's law runs through predict and backtest as an error law named `task:{name}`: its columns
# cannot meet the tables' own (a task called `loss`) nor the average's laws (`err`, `err_all`).
PREFIX = "task:"

# The tidy table, one row per model (or target) and task.
COLUMNS = ["model", "dataset", "size", "N", "M", "D", "C", "target", "task", "kept", "held_out", "in_fit_set",
           "loss", "loss_pred", "err", "err_pred", "abs_err", "rel_err", "err_ci_lo", "err_ci_hi", "err_pi_lo",
           "err_pi_hi", "pi_left_out", "beyond_backtest", "below_zero", "covered"]
LABELS = ["model", "dataset", "size", "task"]
FLAGS = ["target", "kept", "held_out", "in_fit_set", "pi_left_out", "beyond_backtest", "below_zero"]


# ---------------------------------------------------------------- which tasks have a law


def fall_across(law: ErrorLaw, losses) -> float:
    """How much the law's error falls from the highest loss of the fit set to the lowest."""
    return float(law.predict(np.max(losses)) - law.predict(np.min(losses)))


def signal(law: ErrorLaw) -> float:
    """The law's fall across its fit set in units of its points' noise (inf with no noise)."""
    fall = fall_across(law, [point["loss"] for point in law.fit_set])
    noise = float(np.median(law.noise["sd"]))
    return fall / noise if noise > 0 else float("inf")


def shape_or_signal_reason(law: ErrorLaw, kept: bool, min_signal: float) -> str | None:
    """Why a fitted law is no law of the task, or None."""
    params = law.params
    if params["k"] <= 0 or params["gamma"] <= 0:
        how = ("its error rises as the loss falls" if params["k"] * params["gamma"] <= 0
               else "its error grows without a ceiling as the loss grows")
        return f"not Eq. 5's shape (k = {params['k']:.3g}, gamma = {params['gamma']:.3g}): {how}; the fit follows noise"
    problems = law.problems()  # eps at or below zero, or a parameter that is no finite number
    if problems:
        return f"outside {law.equation}'s region ({'; '.join(problems)}): no error rate it predicts can be trusted"
    strength = signal(law)
    if not kept and strength < min_signal:
        return (f"no signal: the law falls by {fall_across(law, [p['loss'] for p in law.fit_set]):.4f} "
                f"across the fit set, {strength:.2f}x its points' noise (min_signal {min_signal:g})")
    return None


def rollout_error_fit_sets(job: BacktestJob, loss: pd.DataFrame) -> list[list]:
    """The error fit sets the backtest refits on, past step 0 (as `backtest.rollout` steps down)."""
    error_fit_set = job.error.fit_set
    sizes = rollout.sizes_by_N(loss, job.loss.dataset, [*job.loss.fit_set, *error_fit_set])
    fit_sets = []
    for step in range(1, job.steps + 1):
        kept = set(sizes[:len(sizes) - step])
        if rollout.distinct([p for p in job.loss.fit_set if p.size in kept]) < len(loss_parameters(job.loss.form)):
            break
        points = [p for p in error_fit_set if p.size in kept]
        if rollout.distinct(points) >= len(ErrorLaw.names):
            fit_sets.append(points)
    return fit_sets


def refit_reason(task_rows: pd.DataFrame, job: BacktestJob, loss: pd.DataFrame, task: str) -> str | None:
    """Why the backtest could not refit a task's law on its smaller fit sets, or None."""
    table = loss_and_error(loss, task_rows, job.loss.valset, [task])
    for points in rollout_error_fit_sets(job, loss):
        rows = tables.runs_at(table, job.loss.dataset, points, "error fit set")
        try:
            fitting.fit_error_law(rows["loss"].to_numpy(float), rows["err"].to_numpy(float))
        except RuntimeError:
            sizes = sorted({p.size for p in points})
            return (f"no start of the grid converged on the fit set of sizes {', '.join(sizes)} (the backtest's "
                    f"refit): its model error cannot be measured")
    return None


def fit_task_laws(loss: pd.DataFrame, tasks: pd.DataFrame, job: PerTaskJob, kept: list[str]) -> tuple[dict, dict]:
    """The law of every candidate task that fits, and why each other one does not."""
    candidates = sorted(tasks["task"].unique()) if job.tasks is None else list(job.tasks)
    fitted, unfit = {}, {}
    for task in candidates:
        task_rows = tasks[tasks["task"] == task]
        if task_rows.empty:
            raise ValueError(f"per_task.tasks names {task!r}, which the tasks table lacks (its tasks: "
                             f"{', '.join(sorted(tasks['task'].unique()))}); name one of them")
        try:
            law = fit_error(loss, task_rows, job.backtest.error, [task])
            reason = shape_or_signal_reason(law, task in kept, job.min_signal)
        except RuntimeError:
            law, reason = None, "no start of the grid converged on the error fit set"
        reason = reason or refit_reason(task_rows, job.backtest, loss, task)
        if reason is None:
            fitted[task] = ErrorLaw.from_json({**law.to_json(), "kept": task in kept, "signal": signal(law)})
        else:
            unfit[task] = {"kept": task in kept, "reason": reason}
    return fitted, unfit


# ---------------------------------------------------------------- the chained predictions


def prefixed(task_laws: dict) -> dict:
    return {PREFIX + task: law for task, law in task_laws.items()}


def out_of_sample(job: PerTaskJob, loss: pd.DataFrame, tasks: pd.DataFrame, loss_law: LossLaw,
                  task_laws: dict[str, ErrorLaw]) -> pd.DataFrame:
    """The backtest's out-of-sample residuals of the loss law and every task law at once (the pool,
    `uncertainty.POOL_COLUMNS`): `backtest.backtest`'s rows without the intervals it sets per row,
    which the predictions set again, each without its own run."""
    dataset, valset = job.backtest.loss.dataset, job.backtest.loss.valset
    held_out = [{"size": point.size, "M": point.M} for point in job.backtest.held_out]
    chosen = tasks[tasks["task"].isin(task_laws)]
    full = {"loss": loss_law, **prefixed(task_laws)}
    parts = []
    for step, left_out, step_laws, refitted in rollout.rollout(job.backtest, loss, chosen, loss_law,
                                                                prefixed(task_laws)):
        step_error_laws = {prefix: law for prefix, law in step_laws.items() if prefix != "loss"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # a column per law and task
            table = chain.mark_held_out(
                chain.law_predictions(loss, chosen, step_laws["loss"], step_error_laws, dataset, valset), held_out)
        parts += [rollout.out_of_sample_rows(table, law, step_laws[law], full[law], step, left_out)
                  for law in sorted(refitted)]
    return pd.concat(parts, ignore_index=True)[uncertainty.POOL_COLUMNS]


def placed_targets(targets: list[dict], loss_law: LossLaw) -> list[dict]:
    """The targets as the runs {name, N, M} the task laws predict: a budget or a loss goal resolved by
    the loss law as the predictions resolve it (`predict.resolve`). An error goal asks of the average
    over the kept tasks, whose law the predictions resolve it by: it is left out here, as is a target
    the loss law cannot resolve, each named in the log."""
    for target in targets:
        if "err" in target:
            log.info("target %s: an error goal of the kept tasks' average, resolved in the predictions table; "
                     "no per-task prediction", target["name"])
    runs, resolved = chain.resolve([target for target in targets if "err" not in target], loss_law, None)
    for row in [] if resolved is None else resolved[resolved["N"].isna()].itertuples():
        log.info("target %s: %s; no per-task prediction", row.name, row.note)
    return runs


def wide_predictions(job: PerTaskJob, loss: pd.DataFrame, tasks: pd.DataFrame, loss_law: LossLaw,
                     task_laws: dict[str, ErrorLaw],
                     pool: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Every model and target with each task's prediction and both intervals (predict's columns per
    law), each run's prediction interval set without its own residuals; and the model errors."""
    dataset, valset = job.backtest.loss.dataset, job.backtest.loss.valset
    chosen = tasks[tasks["task"].isin(task_laws)]
    floors = {"loss": chain.noise_floor(loss_law, "loss"),
              **{prefix: chain.noise_floor(law, prefix) for prefix, law in prefixed(task_laws).items()}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # a column per law and task
        table = chain.law_predictions(loss, chosen, loss_law, prefixed(task_laws), dataset, valset,
                                        placed_targets(job.targets, loss_law))
        table = chain.mark_held_out(table, [{"size": p.size, "M": p.M} for p in job.backtest.held_out])
        return chain.add_prediction_intervals(table, pool[uncertainty.POOL_COLUMNS], floors)


def tidy(table: pd.DataFrame, task_laws: dict, errors: dict) -> pd.DataFrame:
    """One row per model (or target) and task, from the wide table."""
    loss_beyond = errors["loss"].beyond_backtest(table[list(uncertainty.LOSS_DIRECTIONS)])
    in_fit = table["in_loss_fit"] | table["in_error_fit"]
    parts = []
    for task, law in task_laws.items():
        prefix = PREFIX + task
        below_zero = (table[f"{prefix}_pred"] <= 0).to_numpy()
        own_beyond = errors[prefix].beyond_backtest(table[[f"{prefix}_L_below"]].set_axis(["L_below"], axis=1))
        predicted = table[f"{prefix}_pred"].to_numpy(float)
        ci_lo, ci_hi = table[f"{prefix}_ci_lo"].to_numpy(float), table[f"{prefix}_ci_hi"].to_numpy(float)
        # The interval is set in log units, where a confidence interval reaching zero (refits of a law that
        # falls steeply) has no width on that side: the prediction interval is widened to hold it, to zero.
        # A run's error rate is at most 1: its interval ends there (unless the law's own prediction is above).
        pi_lo = np.minimum(table[f"{prefix}_pi_lo"].to_numpy(float), np.maximum(ci_lo, 0.0))
        pi_hi = np.minimum(np.maximum(table[f"{prefix}_pi_hi"].to_numpy(float), ci_hi), np.maximum(predicted, 1.0))
        part = table[[c for c in COLUMNS if c in table.columns]].assign(
            task=task, kept=law["kept"], in_fit_set=in_fit, err=table[prefix], err_pred=predicted,
            err_ci_lo=ci_lo, err_ci_hi=ci_hi, err_pi_lo=np.where(below_zero, np.nan, pi_lo),
            err_pi_hi=np.where(below_zero, np.nan, pi_hi), beyond_backtest=loss_beyond | own_beyond,
            below_zero=below_zero)
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    rows["abs_err"] = (rows["err_pred"] - rows["err"]).abs()
    rows["rel_err"] = rows["abs_err"] / rows["err"]
    inside = (rows["err"] >= rows["err_pi_lo"]) & (rows["err"] <= rows["err_pi_hi"])
    rows["covered"] = inside.astype("boolean").mask(rows["err"].isna())  # empty for a target
    return rows[COLUMNS].sort_values(["target", "task", "N", "M"]).reset_index(drop=True)


# ---------------------------------------------------------------- calibration


def calibration(rows: pd.DataFrame) -> dict:
    """How the prediction intervals held on (task, run) pairs: coverage over every pair, a law below
    zero (no interval) counted as a miss; the widths and errors over the pairs with an interval."""
    holds = rows[~rows["below_zero"]]
    names = holds["task"] + "/" + holds["model"]
    with np.errstate(divide="ignore"):  # an interval widened to zero has no spread in log units: no exact ratio
        summary = uncertainty.calibration(names, holds["err"], holds["err_pred"], holds["err_pi_lo"],
                                          holds["err_pi_hi"], holds["err_ci_lo"], holds["err_ci_hi"]).as_dict()
    below = rows[rows["below_zero"]]
    if summary["runs"] or len(below):
        inside = round((summary["coverage"] or 0.0) * summary["runs"])
        summary["coverage"] = inside / len(rows)
        summary["runs"] = int(len(rows))
        summary["misses"] += list(below["task"] + "/" + below["model"])
    summary["below_zero"] = int(len(below))
    if summary["width_to_error_if_exact"] is None and len(holds):
        # An interval widened to zero has no spread in log units: the ratio if exact, over the others.
        positive = holds[holds["err_pi_lo"] > 0]
        summary["width_to_error_if_exact"] = uncertainty.width_to_error_if_exact(
            positive["err_pred"], positive["err_pi_lo"], positive["err_pi_hi"])
    return summary


def calibration_summary(rows: pd.DataFrame) -> dict:
    """Calibration over the (task, run) pairs outside the fit sets with a measured error: all tasks,
    the kept ones, the held-out runs, and each task alone."""
    outside = rows[~rows["target"] & ~rows["in_fit_set"] & rows["err"].notna()]
    return {
        "level": uncertainty.LEVEL,
        "outside_fit_sets": calibration(outside),
        "kept_tasks": calibration(outside[outside["kept"]]),
        "held_out": calibration(outside[outside["held_out"]]),
        "per_task": {task: calibration(part) for task, part in outside.groupby("task")},
    }


def per_task(loss: pd.DataFrame, tasks: pd.DataFrame, loss_law: LossLaw, job: PerTaskJob,
             kept: list[str]) -> tuple[pd.DataFrame, dict]:
    """The tidy `model x task` table and the summary: the task laws (with their model errors), the
    tasks without one and why, and the calibration."""
    loss_law = LossLaw.of(loss_law)
    task_laws, unfit = fit_task_laws(loss, tasks, job, kept)
    if task_laws:
        pool = out_of_sample(job, loss, tasks, loss_law, task_laws)
        table, errors = wide_predictions(job, loss, tasks, loss_law, task_laws, pool)
        rows = tidy(table, task_laws, errors)
        chain.check_predictions(rows, chain.row_names(rows, "task"), "per-task predictions")
    else:  # a study whose tasks are all noise at its sizes: the table is empty, the summary says why
        log.warning("no candidate task's error law fits on %s: no per-task prediction", job.backtest.loss.dataset)
        rows, errors = pd.DataFrame({column: pd.Series(dtype=bool if column in FLAGS else object if column in LABELS
                                                       else float) for column in COLUMNS}), {}
    summary = {
        "dataset": job.backtest.loss.dataset, "valset": job.backtest.loss.valset, "min_signal": job.min_signal,
        "kept": sorted(kept),
        "laws": {task: {**law.to_json(), "model_error": errors[PREFIX + task].as_dict()}
                 for task, law in task_laws.items()},
        "unfit": unfit,
        "loss_model_error": errors["loss"].as_dict() if errors else None,
        "calibration": calibration_summary(rows),
    }
    return rows, summary


# ---------------------------------------------------------------- command
