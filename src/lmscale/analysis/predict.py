"""`lmscale predict`: chain the laws, predicted loss and error for every model and target."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from lmscale import jobs
from lmscale.analysis.chain import add_chained_arguments, predict, read_chained, read_pool
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import PredictJob
from lmscale.laws.law import LossLaw, read_law
from lmscale.laws.targets import RESOLVED

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, PredictJob)
    add_chained_arguments(parser)
    parser.add_argument("--backtest", required=True, help="the backtest's table: the out-of-sample residuals")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration", required=True, help="JSON: how the prediction intervals held")


def main(args) -> None:
    job = args.job
    loss, tasks, error_laws = read_chained(args)
    if not error_laws:
        log.info("no tasks table and no error laws (a loss-only study): predicting the loss alone")
    loss_law = read_law(args.loss_law, LossLaw)
    table, summary = predict(loss, tasks, loss_law, error_laws, read_pool(args.backtest), job)
    tables.write_csv(table, args.out)
    atomic_write_json(args.calibration, summary, sort_keys=False)
    measured = table[~table["target"]]
    errors = "err" in table.columns
    log.info("predicted %d models and %d targets; median relative error: loss %.2f%%%s", len(measured),
             int(table["target"].sum()), 100 * measured["loss_rel_err"].median(),
             f", error {100 * measured['err_rel_err'].median():.2f}%" if errors else "")
    for law, calibrated in summary["outside_fit_sets"].items():
        if calibrated["runs"]:
            exact = calibrated.get("width_to_error_if_exact")
            log.info("%s: %d runs outside the fit sets; %.0f%% inside their 95%% prediction interval, median "
                     "half-width %.2f%% against a median error of %.2f%% (%sx%s)%s", law, calibrated["runs"],
                     100 * calibrated["coverage"], 100 * calibrated["median_half_width"],
                     100 * calibrated["median_relative_error"],
                     "-" if calibrated["width_to_error"] is None else f"{calibrated['width_to_error']:.2f}",
                     f"; {exact[0]:.2f}-{exact[2]:.2f}x in 90% of draws had every run landed as its interval "
                     "says" if exact else "",
                     f"; outside: {', '.join(calibrated['misses'])}" if calibrated["misses"] else "")
    for row in table[table["held_out"]].itertuples():
        log.info("held out %s: loss %.4f predicted %.4f (%.2f%%) [%.4f, %.4f]%s", row.model, row.loss, row.loss_pred,
                 100 * row.loss_rel_err, row.loss_pi_lo, row.loss_pi_hi,
                 f", average error {row.err:.4f} predicted {row.err_pred:.4f} ({100 * row.err_rel_err:.2f}%) "
                 f"[{row.err_pi_lo:.4f}, {row.err_pi_hi:.4f}]" if errors else "")
    for row in table[table["target"] & table["loss_pred"].notna()].itertuples():
        log.info("target %s: loss %.4f [%.4f, %.4f]%s%s", row.model, row.loss_pred, row.loss_pi_lo, row.loss_pi_hi,
                 f", average error {row.err_pred:.4f} [{row.err_pi_lo:.4f}, {row.err_pi_hi:.4f}]" if errors else "",
                 " (beyond anything the backtest checked)" if row.beyond_backtest else "")
    if "kind" in table.columns:
        log_resolved(table[table["target"] & (table["kind"] != "run")])


def log_resolved(rows: pd.DataFrame) -> None:
    """Each target asked as a budget or a goal: the run it resolved to, every number with its 95%
    interval over the law's refits, and its note (under Eq. 4: the optimal M does not depend on C);
    a warning with the reason for one the law could not resolve."""
    for row in rows.to_dict("records"):
        if np.isnan(row["N"]):
            log.warning("target %s (%s) %s", row["model"], row["kind"], row["note"])
            continue
        numbers = ", ".join(f"{q} {row[q]:.3g} [{row[f'{q}_ci_lo']:.3g}, {row[f'{q}_ci_hi']:.3g}]" for q in RESOLVED)
        serving = f", serving {row['inference_tokens']:.3g} tokens: {row['total_flops']:.3g} FLOPs in all" if (
            row["inference_tokens"]) else ""
        log.info("target %s (%s) resolved to %s%s%s", row["model"], row["kind"], numbers, serving,
                 f"; {row['note']}" if isinstance(row["note"], str) and row["note"] else "")
