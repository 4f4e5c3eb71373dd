"""Backtest stage: the laws refitted with their largest fit sizes left out, predicting what they
were not fitted to (a rollout), so that a study sees how wrong its laws are out of sample.

Step 0 is the laws as fitted. Step k leaves the k largest sizes out of both fit sets and refits
each law with the same form, method and bootstrap (`fit_loss.fit_loss`, `fit_error.fit_error`),
while the loss law keeps as many distinct runs as it has parameters and an error law three;
`steps` bounds how far it goes. At every step each law predicts every run with a known result
that its fit set at that step lacks (held-out runs excepted: they stay the final check), with
the confidence interval of its bootstrap. These out-of-sample residuals are what
`uncertainty.ModelError` is estimated from, so they set the prediction intervals of `predict`;
here every row also gets its prediction interval from the residuals of the other runs, and each
step its coverage.

Writes `backtest/{dataset}/{valset}_{t...}.csv` (one row per step, law and run) and a JSON
summary beside it (the model errors, and per step the sizes left out and how the intervals held).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from lmscale.analysis.chain import check_predictions, law_predictions, mark_held_out, noise_floor, row_names
from lmscale.analysis.fits import fit_error, fit_loss
from lmscale.jobs import BacktestJob
from lmscale.laws import uncertainty
from lmscale.laws.law import ErrorLaw, Law, LossLaw, loss_parameters

log = logging.getLogger(__name__)


def log_ratio(truth, predicted) -> np.ndarray:
    """log(truth / predicted); NaN where a law predicts a loss or an error rate at or below zero."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(predicted > 0, np.log(truth / np.where(predicted > 0, predicted, 1.0)), np.nan)


def sizes_by_N(table: pd.DataFrame, dataset: str, points) -> list[str]:
    """The sizes of the fit sets, smallest first (by N in the testbed)."""
    rows = table[table["dataset"] == dataset]
    named = {point.size for point in points}
    order = rows[rows["size"].isin(named)].groupby("size")["N"].min().sort_values()
    return list(order.index)


def distinct(points) -> int:
    return len({(point.size, point.M) for point in points})


def rollout(job: BacktestJob, loss: pd.DataFrame, tasks: pd.DataFrame | None, loss_law: LossLaw,
            error_laws: dict[str, ErrorLaw]):
    """Each step: its index, the sizes it leaves out, its laws, and which of them it refitted."""
    error_fit_set = job.error.fit_set if job.error else []
    sizes = sizes_by_N(loss, job.loss.dataset, [*job.loss.fit_set, *error_fit_set])
    current, previous = {"loss": loss_law, **error_laws}, None
    for step in range(job.steps + 1):
        kept = set(sizes[:len(sizes) - step])
        loss_points = [p for p in job.loss.fit_set if p.size in kept]
        error_points = [p for p in error_fit_set if p.size in kept]
        if distinct(loss_points) < len(loss_parameters(job.loss.form)):
            return
        refitted = set(current) if previous is None else set()
        if previous is not None and loss_points != previous[0]:
            current["loss"] = fit_loss(loss, replace(job.loss, fit_set=loss_points), noise_from=loss_law)
            refitted.add("loss")
        if previous is not None and error_laws and error_points != previous[1]:
            for prefix, law in error_laws.items():
                if distinct(error_points) < len(ErrorLaw.names):  # too few runs: no error law from here on
                    current.pop(prefix, None)
                    continue
                error_job = replace(job.error, fit_set=error_points, all_tasks=prefix == "err_all")
                current[prefix] = fit_error(loss, tasks, error_job, law.tasks, noise_from=law)
                refitted.add(prefix)
        previous = (loss_points, error_points)
        if refitted:
            yield step, sizes[len(kept):], dict(current), refitted


def backtest(job: BacktestJob, loss: pd.DataFrame, tasks: pd.DataFrame | None, loss_law: LossLaw,
             error_laws: dict[str, ErrorLaw]) -> tuple[pd.DataFrame, dict]:
    """The table of out-of-sample predictions of every step and the summary."""
    loss_law, error_laws = LossLaw.of(loss_law), {prefix: ErrorLaw.of(law) for prefix, law in error_laws.items()}
    dataset, valset = job.loss.dataset, job.loss.valset
    held_out = [asdict(point) for point in job.held_out]
    full = {"loss": loss_law, **error_laws}
    rows, steps = [], []
    for step, left_out, step_laws, refitted in rollout(job, loss, tasks, loss_law, error_laws):
        step_error_laws = {prefix: law for prefix, law in step_laws.items() if prefix != "loss"}
        table = mark_held_out(law_predictions(loss, tasks, step_laws["loss"], step_error_laws, dataset, valset),
                              held_out)
        # In the laws' own order (loss, then the error laws): a set's order follows the hash seed.
        for law in [law for law in full if law in refitted]:
            out_of_sample = out_of_sample_rows(table, law, step_laws[law], full[law], step, left_out)
            broken = int((out_of_sample["pred"] <= 0).sum())
            if broken:
                log.warning("step %d: the %s law refitted without %s predicts %d runs at or below zero: it does not "
                            "hold there (no interval; counted as misses)", step, law, ", ".join(left_out), broken)
            rows.append(out_of_sample)
        steps.append({"step": step, "left_out": left_out, "refitted": sorted(refitted),
                      "fit_sets": {law: sorted({p["size"] for p in step_laws[law].fit_set}) for law in step_laws}})
        log.info("step %d: %s left out; refitted %s", step, ", ".join(left_out) or "nothing",
                 ", ".join(sorted(refitted)))
    pool = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=uncertainty.POOL_COLUMNS)
    floors = {"loss": noise_floor(loss_law, "loss"), **{p: noise_floor(law, p) for p, law in error_laws.items()}}
    pool, errors = intervals_left_out(pool, floors)
    # The laws as read (step 0) are checked, and so are their predictions; a refit (a later step) may not
    # hold where it predicts, which is what the rollout measures (warned above, counted as misses).
    as_read = pool[pool["step"] == 0]
    names = row_names(as_read, "law")
    check_predictions(as_read[as_read["law"] == "loss"], [n for n, law in zip(names, as_read["law"]) if law == "loss"],
                      "backtest, step 0", losses=("pred",))
    check_predictions(as_read, names, "backtest, step 0", losses=())
    summary = {
        "level": uncertainty.LEVEL,
        "model_error": {law: error.as_dict() for law, error in errors.items()},
        "steps": [{**entry, "calibration": {law: step_calibration(pool, entry["step"], law) for law in floors}}
                  for entry in steps],
    }
    return pool, summary


def out_of_sample_rows(table: pd.DataFrame, law: str, step_law: Law, full_law: Law, step: int,
                       left_out: list[str]) -> pd.DataFrame:
    """One law's rows of one step: each run with a known result that its refit (`step_law`) was not
    fitted to, held-out runs excepted, with its prediction, confidence interval and log residual,
    and what its prediction interval needs. `table` is `law_predictions` of the step's laws, its
    held-out runs marked; `full_law` the law as fitted to its whole fit set."""
    fitted = {p["model"] for p in step_law.fit_set}
    rows = table[~table["model"].isin(fitted) & ~table["held_out"] & table[law].notna()]
    return pd.DataFrame({
        "step": step, "left_out": ",".join(left_out), "law": law,
        **{c: rows[c] for c in ["model", "size", "N", "M", "D", "C"]},
        "truth": rows[law], "pred": rows[f"{law}_pred"], "ci_lo": rows[f"{law}_ci_lo"], "ci_hi": rows[f"{law}_ci_hi"],
        "residual": log_ratio(rows[law], rows[f"{law}_pred"]),
        "slope": rows[f"{law}_slope"] if law != "loss" else np.nan,
        **{d: rows[d] for d in uncertainty.LOSS_DIRECTIONS},
        "L_below": rows[f"{law}_L_below"] if law != "loss" else 0.0,
        # The runs this step left out of its fit set: the ones a rollout predicts first.
        "left_out_fit_run": rows["model"].isin({p["model"] for p in full_law.fit_set}),
    })


def intervals_left_out(pool: pd.DataFrame, floors: dict[str, float]):
    """Every row's prediction interval from the model errors fitted without its run, and the
    model errors of the whole pool."""
    errors, left_out = uncertainty.left_out_model_errors(pool, floors)
    pool = pool.assign(pi_lo=np.nan, pi_hi=np.nan)
    for (model, law), rows in pool.groupby(["model", "law"]).indices.items():
        part = pool.iloc[rows]
        extra = uncertainty.extra_sd(left_out[model], law, part[list(uncertainty.LOSS_DIRECTIONS)], part["slope"],
                                     part["L_below"])
        low, high = uncertainty.interval(part["pred"], part["ci_lo"], part["ci_hi"], extra)
        pool.iloc[rows, pool.columns.get_loc("pi_lo")] = low
        pool.iloc[rows, pool.columns.get_loc("pi_hi")] = high
    pool["covered"] = (pool["truth"] >= pool["pi_lo"]) & (pool["truth"] <= pool["pi_hi"])
    return pool, errors


def step_calibration(pool: pd.DataFrame, step: int, law: str) -> dict:
    rows = pool[(pool["step"] == step) & (pool["law"] == law)]
    return uncertainty.calibration(rows["model"], rows["truth"], rows["pred"], rows["pi_lo"], rows["pi_hi"],
                                   rows["ci_lo"], rows["ci_hi"]).as_dict()
