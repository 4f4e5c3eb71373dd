"""Chained predictions: (C, M) -> loss by the loss law -> average error by the error law.

Every model of the testbed gets its prediction beside the truth, and every declared target
(never trained, given by N and M) gets a prediction alone, each with two 95% intervals
(lmscale.laws.uncertainty): the confidence interval of the law's mean (`*_ci_lo`, `*_ci_hi`), from the
bootstrap refits stored with each law (the i-th loss refit feeds the i-th error refit, so the
chained interval carries both), and the prediction interval of a new run's measured value
(`*_pi_lo`, `*_pi_hi`), which adds the law's own error out of sample as the backtest measured it.
A run whose result entered that estimate gets the interval it would have had without it
(`pi_left_out`), so the calibration summary checks every interval on a result it did not see.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from lmscale.analysis.fits import loss_and_error
from lmscale.io import tables
from lmscale.jobs import PredictJob
from lmscale.laws import uncertainty
from lmscale.laws.law import ErrorLaw, Law, LawError, LossLaw, read_law
from lmscale.laws.targets import RESOLVED, as_runs, resolve_target, target_kind

log = logging.getLogger(__name__)


def _relative_error(pred, truth):
    return np.abs(np.asarray(pred, float) - np.asarray(truth, float)) / np.asarray(truth, float)


def target_rows(targets: list[dict], dataset: str) -> pd.DataFrame:
    rows = []
    for target in targets:
        N, M = float(target["N"]), float(target["M"])
        D = M * N
        rows.append(
            {"model": target["name"], "dataset": dataset, "size": target["name"], "N": N, "D": D, "M": M,
             "C": 6.0 * N * D, "loss": np.nan, "target": True}
        )
    return pd.DataFrame(rows)


def loss_predictions(
    loss: pd.DataFrame, loss_law: LossLaw, dataset: str, valset: str, targets: list[dict] = ()
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Predicted loss with its confidence interval for every model of `dataset` on `valset` and every
    target, and how far each run lies outside the fit set (uncertainty.LOSS_DIRECTIONS), which its
    prediction interval needs.

    Also returns the loss predicted by each bootstrap refit (refits x rows), for chaining.
    """
    rows = loss[(loss["dataset"] == dataset) & (loss["valset"] == valset)]
    if rows.empty:
        raise ValueError(f"no loss on validation set {valset!r} for dataset {dataset!r} in the loss table")
    table = pd.concat(
        [rows[tables.MODEL_COLUMNS + ["loss"]].assign(target=False), target_rows(list(targets), dataset)],
        ignore_index=True,
    )
    loss_law = LossLaw.of(loss_law)
    table["loss_pred"] = loss_law.predict(table["N"], table["D"])
    sampled = loss_law.sample_predictions(table["N"], table["D"])
    for column, tail in (("loss_ci_lo", 2.5), ("loss_ci_hi", 97.5)):
        table[column] = np.percentile(sampled, tail, axis=0) if sampled is not None else np.nan
    table["loss_rel_err"] = _relative_error(table["loss_pred"], table["loss"])
    fit_models = {p["model"] for p in loss_law.fit_set}
    table["in_loss_fit"] = table["model"].isin(fit_models) & ~table["target"]
    fit_N, fit_D = ([p[key] for p in loss_law.fit_set] for key in ("N", "D"))
    distances = uncertainty.loss_distances(table["N"], table["D"], fit_N, fit_D)
    return pd.concat([table, distances], axis=1), sampled


def add_error_predictions(
    table: pd.DataFrame,
    loss_samples: np.ndarray | None,
    loss: pd.DataFrame,
    tasks: pd.DataFrame,
    valset: str,
    error_law: ErrorLaw,
    prefix: str,
) -> pd.DataFrame:
    """Columns `{prefix}` (the truth), `{prefix}_pred`, its confidence interval and relative error for one
    error law, and what its prediction interval needs: the law's slope d log Err / d log L at the
    predicted loss and how far below the fit set's losses the prediction lies."""
    error_law = ErrorLaw.of(error_law)
    truth = loss_and_error(loss, tasks, valset, error_law.tasks)[["dataset", "model", "err"]]
    table = table.merge(truth.rename(columns={"err": prefix}), on=["dataset", "model"], how="left")
    table[f"{prefix}_pred"] = error_law.predict(table["loss_pred"])
    chained = error_law.chained(loss_samples)
    for column, tail in ((f"{prefix}_ci_lo", 2.5), (f"{prefix}_ci_hi", 97.5)):
        table[column] = np.percentile(np.array(chained), tail, axis=0) if chained else np.nan
    # How a loss error carries into the error: d log Err / d log L at the predicted loss.
    table[f"{prefix}_slope"] = error_law.log_slope(table["loss_pred"], table[f"{prefix}_pred"])
    table[f"{prefix}_L_below"] = uncertainty.error_distances(
        table["loss_pred"], [p["loss"] for p in error_law.fit_set])["L_below"].to_numpy()
    table[f"{prefix}_rel_err"] = _relative_error(table[f"{prefix}_pred"], table[prefix])
    return table


def mark_held_out(table: pd.DataFrame, held_out: list[dict]) -> pd.DataFrame:
    """Column `held_out`: the trained runs kept out of every fit set to test the chained prediction."""
    table = table.assign(held_out=False)
    for point in held_out:
        rows = (table["size"] == str(point["size"])) & np.isclose(table["M"], float(point["M"])) & ~table["target"]
        if not rows.any():  # e.g. a published testbed where only one dataset has the run
            log.warning("held-out run %s at M = %g is not in this testbed (%s): nothing to flag",
                        point["size"], float(point["M"]), ", ".join(sorted(set(table["dataset"]))))
            continue
        fit_columns = [c for c in ("in_loss_fit", "in_error_fit") if c in table.columns]
        if table.loc[rows, fit_columns].any(axis=None):
            raise ValueError(f"held-out run {point['size']} at M = {point['M']:g} is in a fit set: "
                             "drop it from `held_out`, or from `loss_fit_set` / `error_fit_extra`")
        table.loc[rows, "held_out"] = True
    return table


def law_predictions(
    loss: pd.DataFrame,
    tasks: pd.DataFrame | None,
    loss_law: LossLaw,
    error_laws: dict[str, ErrorLaw],
    dataset: str,
    valset: str,
    targets: list[dict] = (),
) -> pd.DataFrame:
    """Every model and target: each law's prediction and confidence interval, and what the
    prediction intervals need. `error_laws` maps a column prefix (err, err_all) to its law."""
    table, loss_samples = loss_predictions(loss, loss_law, dataset, valset, targets)
    for prefix, error_law in error_laws.items():
        table = add_error_predictions(table, loss_samples, loss, tasks, valset, error_law, prefix)
    if error_laws:
        error_fit_models = {p["model"] for p in ErrorLaw.of(next(iter(error_laws.values()))).fit_set}
        table["in_error_fit"] = table["model"].isin(error_fit_models) & ~table["target"]
    return table


def noise_floor(law: Law, prefix: str) -> float:
    """What a new run is known to scatter by (log units): the seed-to-seed spread of replicates, or
    else the evaluation's own standard error; no prediction of a run is surer than that. A spread
    estimated from the fit's residuals is no floor: the law's error out of sample is measured
    apart (uncertainty.ModelError)."""
    noise = law.noise
    measured = noise.get("replicate_sd") or noise.get("evaluation_sd") or 0.0
    if prefix != "loss":  # an error rate's noise, as a share of the rate
        measured = measured / float(np.median([p["err"] for p in law.fit_set]))
    return float(measured)


def add_prediction_intervals(table: pd.DataFrame, pool: pd.DataFrame, floors: dict[str, float]) -> tuple[
        pd.DataFrame, dict[str, uncertainty.ModelError]]:
    """Columns `{law}_pi_lo`, `{law}_pi_hi`, `pi_left_out` and `beyond_backtest`; returns the model errors.

    A run whose own result is among the out-of-sample residuals (`pool`) gets its interval from
    the residuals of the other runs, so that it is checked on a result it did not shape.
    """
    errors, left_out = uncertainty.left_out_model_errors(pool, floors)
    table = table.assign(pi_left_out=table["model"].isin(left_out) & ~table["target"])
    loss_distances = table[list(uncertainty.LOSS_DIRECTIONS)]
    extra = {law: np.zeros(len(table)) for law in floors}
    for model, rows in table.groupby(np.where(table["pi_left_out"], table["model"], "")).indices.items():
        model_error = left_out[model] if model else errors
        part = table.iloc[rows]
        for law in floors:
            extra[law][rows] = uncertainty.extra_sd(model_error, law, part[list(uncertainty.LOSS_DIRECTIONS)],
                                                    part.get(f"{law}_slope"), part.get(f"{law}_L_below"))
    beyond = errors["loss"].beyond_backtest(loss_distances)
    for law in floors:
        table[f"{law}_pi_lo"], table[f"{law}_pi_hi"] = uncertainty.interval(
            table[f"{law}_pred"], table[f"{law}_ci_lo"], table[f"{law}_ci_hi"], extra[law])
        if law != "loss":
            beyond |= errors[law].beyond_backtest(table[[f"{law}_L_below"]].set_axis(["L_below"], axis=1))
    table["beyond_backtest"] = beyond
    return table, errors


def calibration_summary(table: pd.DataFrame, laws_predicted: list[str], errors: dict) -> dict:
    """Coverage of the prediction intervals, and their width against the errors, on every run with a
    known result outside the fit sets (held-out runs among them, and apart)."""
    fit_columns = [c for c in ("in_loss_fit", "in_error_fit") if c in table.columns]
    outside = ~table["target"] & ~table[fit_columns].any(axis=1)
    summary = {"level": uncertainty.LEVEL, "outside_fit_sets": {}, "held_out": {},
               "model_error": {law: errors[law].as_dict() for law in laws_predicted}}
    for key, rows in (("outside_fit_sets", outside), ("held_out", outside & table["held_out"])):
        for law in laws_predicted:
            measured = table[rows & table[law].notna()]
            summary[key][law] = uncertainty.calibration(
                measured["model"], measured[law], measured[f"{law}_pred"], measured[f"{law}_pi_lo"],
                measured[f"{law}_pi_hi"], measured[f"{law}_ci_lo"], measured[f"{law}_ci_hi"]).as_dict()
    return summary


# What a target asked as a budget or a goal adds to its row (lmscale.laws.targets.COLUMNS): how it was
# asked, the interval of each number of its run, the serving load and what a reader must know.
RESOLVED_COLUMNS = ["kind", *[f"{q}{s}" for q in RESOLVED for s in ("_ci_lo", "_ci_hi")], "inference_tokens",
                    "total_flops", "note"]


def resolve(targets: list[dict], loss_law: LossLaw, error_law: ErrorLaw | None
            ) -> tuple[list[dict], pd.DataFrame | None]:
    """The targets as the runs {name, N, M} that law_predictions chains, and the table of their
    resolution (lmscale.laws.targets.resolve_target: by the loss law, an error goal by `error_law` too);
    None where every target is already a run, which passes as given. A target this law cannot
    resolve (a goal at or below its floor, a law with no optimum) is not chained: its row says why
    (`note`), and every other run and target is predicted as ever."""
    if all(target_kind(target) == "run" for target in targets):
        return list(targets), None
    rows = []
    for target in targets:
        try:
            rows.append(resolve_target(target, loss_law, error_law))
        except ValueError as error:
            rows.append({"name": target["name"], "kind": target_kind(target), "note": f"not resolved: {error}"})
    resolved = pd.DataFrame(rows, columns=["name", *RESOLVED, *RESOLVED_COLUMNS])
    return as_runs(resolved[resolved["N"].notna()]), resolved


def add_resolved(table: pd.DataFrame, resolved: pd.DataFrame) -> pd.DataFrame:
    """The targets' rows with their run as resolved (a budget's C as given, not 6ND rounded) and
    RESOLVED_COLUMNS, a row for each target left unresolved; the measured runs' rows are left as
    they are (those columns empty)."""
    by_name = resolved.set_index("name")
    rows = table["target"].to_numpy(bool)
    for quantity in RESOLVED:
        table.loc[rows, quantity] = table.loc[rows, "model"].map(by_name[quantity]).to_numpy(float)
    unresolved = resolved.loc[resolved["N"].isna(), "name"]
    if len(unresolved):
        flags = {column: False for column in table.columns if table[column].dtype == bool}  # kept bool
        table = pd.concat([table, pd.DataFrame({**flags, "model": unresolved, "dataset": table["dataset"].iloc[0],
                                                "size": unresolved, "target": True})], ignore_index=True)
    extra = resolved[["name", *RESOLVED_COLUMNS]].rename(columns={"name": "model"}).assign(target=True)
    return table.merge(extra, on=["model", "target"], how="left", validate="many_to_one")


# Columns the intervals are computed from, not results: left out of the predictions table.
def _internal(column: str) -> bool:
    return column.endswith(("_slope", "_L_below")) or column in uncertainty.LOSS_DIRECTIONS


def predict(
    loss: pd.DataFrame,
    tasks: pd.DataFrame | None,
    loss_law: LossLaw,
    error_laws: dict[str, ErrorLaw],
    pool: pd.DataFrame,
    job: PredictJob,
) -> tuple[pd.DataFrame, dict]:
    """The chained predictions and their calibration summary; without error laws (a loss-only
    study), the loss columns alone. `pool` is the backtest's table of out-of-sample residuals.
    Targets asked as a budget or a goal are resolved to runs first (`resolve`) by the loss law and
    the error law of the selected tasks (`err`)."""
    loss_law, error_laws = LossLaw.of(loss_law), {prefix: ErrorLaw.of(law) for prefix, law in error_laws.items()}
    runs, resolved = resolve(job.targets, loss_law, error_laws.get("err"))
    table = law_predictions(loss, tasks, loss_law, error_laws, job.dataset, job.valset, runs)
    table = mark_held_out(table, [asdict(point) for point in job.held_out])
    floors = {"loss": noise_floor(loss_law, "loss"), **{prefix: noise_floor(law, prefix)
                                                       for prefix, law in error_laws.items()}}
    table, errors = add_prediction_intervals(table, pool, floors)
    summary = calibration_summary(table, list(floors), errors)
    if resolved is not None:
        table = add_resolved(table, resolved)
    predicted = table["N"].notna()  # a target the law could not resolve has no run, and no prediction
    check_predictions(table[predicted], row_names(table[predicted]), "predictions")
    leading = [c for c in ["model", "dataset", "size", "N", "M", "D", "C", "target", "held_out", "loss", "loss_pred",
                           "loss_rel_err", "err", "err_pred", "err_rel_err", "in_loss_fit", "in_error_fit"]
               if c in table.columns]
    public = [c for c in table.columns if c not in leading and not _internal(c)]
    return table[leading + public].sort_values(["target", "N", "M"]), summary


def check_predictions(table: pd.DataFrame, names: list[str], where: str, losses: tuple[str, ...] = ("loss_pred",)
                      ) -> None:
    """Before a table of predictions is written (predict, per-task, backtest): every predicted loss
    (the `losses` columns) finite and above zero, and every interval ordered (each `*_lo` column at
    or below its `*_hi` where both are given); else LawError naming the row (`names`, one per row of
    `table`) and the value. A law inside its region predicts no other loss, so on a checked law
    this is a guard: no table goes out with a loss or an interval no reader should take for one."""
    for column in losses:
        values = table[column].to_numpy(float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if len(bad):
            raise LawError(f"{where}: {names[bad[0]]}: predicted loss {values[bad[0]]:.4g} ({column}) is not a finite "
                           "loss above zero; no table is written")
    for low in [column for column in table.columns if column.endswith("_lo") and f"{column[:-3]}_hi" in table.columns]:
        high = f"{low[:-3]}_hi"
        with np.errstate(invalid="ignore"):
            reversed_ = np.flatnonzero(table[low].to_numpy(float) > table[high].to_numpy(float))
        if len(reversed_):
            row = table.iloc[reversed_[0]]
            law = low[:-6]  # loss of loss_pi_lo; nothing of a backtest's pi_lo, whose prediction is `pred`
            prediction = f"{law}_pred" if law else "pred"
            predicted = (f" around the prediction {row[prediction]:.4g}" if low.endswith(("ci_lo", "pi_lo"))
                         and prediction in table.columns else "")
            raise LawError(f"{where}: {names[reversed_[0]]}: the interval {low[:-3]} [{row[low]:.4g}, {row[high]:.4g}]"
                           f"{predicted} is reversed (its low end above its high end); no table is written")


def row_names(table: pd.DataFrame, *columns: str) -> list[str]:
    """Each row as a refusal names it: 'model s3_M20' (or 'target 70B'), then the other `columns`."""
    heads = [f"{'target' if target else 'model'} {model}" for model, target in
             zip(table["model"], table["target"] if "target" in table.columns else [False] * len(table))]
    return [", ".join([head, *(f"{column} {value}" for column, value in zip(columns, values))])
            for head, *values in zip(heads, *(table[column] for column in columns))]


def read_pool(path) -> pd.DataFrame:
    """The backtest's out-of-sample residuals (its table, in the pool's columns)."""
    backtest = tables.read_csv(path)
    return backtest[uncertainty.POOL_COLUMNS]


def add_chained_arguments(parser) -> None:
    """The inputs a chain of laws reads: the tables and the laws (the error laws and the tasks table
    together, or none for the loss alone: absent, or given no file, as a loss-only study's rule
    gives them). predict and backtest take the same."""
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", nargs="?", help="without it and the error laws: the loss law alone")
    parser.add_argument("--loss-law", required=True)
    parser.add_argument("--error-law", nargs="?", help="error law over the selected tasks")
    parser.add_argument("--error-law-all", nargs="?", help="error law over every task")


def read_chained(args) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, ErrorLaw]]:
    """The loss table, the tasks table (None for the loss alone) and the error laws by prefix."""
    chained = [args.tasks_table, args.error_law, args.error_law_all]
    if any(chained) and not all(chained):
        raise ValueError("give --tasks-table, --error-law and --error-law-all together, or none (loss only)")
    if not all(chained):
        return tables.read_loss_table(args.loss_table), None, {}
    loss, tasks = tables.read_tables(args.loss_table, args.tasks_table)
    return loss, tasks, {"err": read_law(args.error_law, ErrorLaw), "err_all": read_law(args.error_law_all, ErrorLaw)}
