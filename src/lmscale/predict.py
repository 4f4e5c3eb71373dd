"""Chained predictions: (C, M) -> loss by the loss law -> average error by the error law.

Every model of the testbed gets its prediction beside the truth, and every
declared target (never trained, given by N and M) gets a prediction alone.
Intervals come from the bootstrap refits stored with each law: the i-th loss
refit feeds the i-th error refit, so the chained interval carries both.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from lmscale import jobs, laws, testbed
from lmscale.files import read_json
from lmscale.jobs import PredictJob
from lmscale.fit_error import loss_and_error

log = logging.getLogger(__name__)


def _law_samples(law: dict, names) -> list[dict]:
    return [dict(zip(names, sample)) for sample in law.get("bootstrap", {}).get("samples", [])]


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
    loss: pd.DataFrame, loss_law: dict, dataset: str, valset: str, targets: list[dict] = ()
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Predicted loss (with its bootstrap interval) for every model of `dataset` on `valset` and every target.

    Also returns the loss predicted by each bootstrap refit (refits x rows), for chaining.
    """
    rows = loss[(loss["dataset"] == dataset) & (loss["valset"] == valset)]
    if rows.empty:
        raise ValueError(f"no loss on validation set {valset!r} for dataset {dataset!r} in the loss table")
    table = pd.concat(
        [rows[testbed.MODEL_COLUMNS + ["loss"]].assign(target=False), target_rows(list(targets), dataset)],
        ignore_index=True,
    )
    form = laws.loss_form(loss_law["form"])
    table["loss_pred"] = form.predict(loss_law["params"], table["N"], table["D"])
    samples = _law_samples(loss_law, form.params)
    sampled = np.array([form.predict(s, table["N"], table["D"]) for s in samples]) if samples else None
    for column, tail in (("loss_pred_lo", 2.5), ("loss_pred_hi", 97.5)):
        table[column] = np.percentile(sampled, tail, axis=0) if sampled is not None else np.nan
    table["loss_rel_err"] = _relative_error(table["loss_pred"], table["loss"])
    fit_models = {p["model"] for p in loss_law["fit_set"]}
    table["in_loss_fit"] = table["model"].isin(fit_models) & ~table["target"]
    return table, sampled


def add_error_predictions(
    table: pd.DataFrame,
    loss_samples: np.ndarray | None,
    loss: pd.DataFrame,
    tasks: pd.DataFrame,
    valset: str,
    error_law: dict,
    prefix: str,
) -> pd.DataFrame:
    """Columns `{prefix}`, `{prefix}_pred`, intervals and relative error for one error law."""
    truth = loss_and_error(loss, tasks, valset, error_law["tasks"])[["dataset", "model", "err"]]
    table = table.merge(truth.rename(columns={"err": prefix}), on=["dataset", "model"], how="left")
    table[f"{prefix}_pred"] = laws.error_law(table["loss_pred"], **error_law["params"])
    error_samples = _law_samples(error_law, laws.ERROR_PARAMS)
    count = min(len(error_samples), 0 if loss_samples is None else len(loss_samples))
    chained = np.array([laws.error_law(loss_samples[i], **error_samples[i]) for i in range(count)])
    for column, tail in ((f"{prefix}_pred_lo", 2.5), (f"{prefix}_pred_hi", 97.5)):
        table[column] = np.percentile(chained, tail, axis=0) if count else np.nan
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


def predict(
    loss: pd.DataFrame,
    tasks: pd.DataFrame | None,
    loss_law: dict,
    error_law_selected: dict | None,
    error_law_all: dict | None,
    job: PredictJob,
) -> pd.DataFrame:
    """The chained predictions; without error laws (a loss-only study), the loss columns alone."""
    dataset, valset, targets = job.dataset, job.valset, job.targets
    held_out = [asdict(point) for point in job.held_out]
    table, loss_samples = loss_predictions(loss, loss_law, dataset, valset, targets)
    if error_law_selected is not None:
        table = add_error_predictions(table, loss_samples, loss, tasks, valset, error_law_selected, "err")
        table = add_error_predictions(table, loss_samples, loss, tasks, valset, error_law_all, "err_all")
        error_fit_models = {p["model"] for p in error_law_selected["fit_set"]}
        table["in_error_fit"] = table["model"].isin(error_fit_models) & ~table["target"]
    table = mark_held_out(table, list(held_out))
    leading = [c for c in ["model", "dataset", "size", "N", "M", "D", "C", "target", "held_out", "loss", "loss_pred",
                           "loss_rel_err", "err", "err_pred", "err_rel_err", "in_loss_fit", "in_error_fit"]
               if c in table.columns]
    return table[leading + [c for c in table.columns if c not in leading]].sort_values(["target", "N", "M"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, PredictJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", help="without it and the error laws: loss predictions only")
    parser.add_argument("--loss-law", required=True)
    parser.add_argument("--error-law", help="error law over the selected tasks")
    parser.add_argument("--error-law-all", help="error law over every task")
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    chained = [args.tasks_table, args.error_law, args.error_law_all]
    if any(chained) and not all(chained):
        raise ValueError("give --tasks-table, --error-law and --error-law-all together, or none (loss only)")
    if all(chained):
        loss, tasks = testbed.read_tables(args.loss_table, args.tasks_table)
        error_laws = [read_json(args.error_law), read_json(args.error_law_all)]
    else:
        log.info("no tasks table and no error laws (a loss-only study): predicting the loss alone")
        loss, tasks, error_laws = testbed.read_loss_table(args.loss_table), None, [None, None]
    table = predict(
        loss,
        tasks,
        read_json(args.loss_law),
        *error_laws,
        job,
    )
    testbed.write_csv(table, args.out)
    measured = table[~table["target"]]
    errors = "err" in table.columns
    log.info("predicted %d models and %d targets; median relative error: loss %.2f%%%s", len(measured),
             int(table["target"].sum()), 100 * measured["loss_rel_err"].median(),
             f", error {100 * measured['err_rel_err'].median():.2f}%" if errors else "")
    for row in table[table["held_out"]].itertuples():
        log.info("held out %s: loss %.4f predicted %.4f (%.2f%%)%s", row.model, row.loss, row.loss_pred,
                 100 * row.loss_rel_err, f", average error {row.err:.4f} predicted {row.err_pred:.4f} "
                 f"({100 * row.err_rel_err:.2f}%)" if errors else "")
