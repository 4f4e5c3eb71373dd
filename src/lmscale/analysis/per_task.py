"""`lmscale per-task`: each task's error law chained from the loss law, with intervals and calibration."""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from lmscale import jobs
from lmscale.analysis.task_laws import per_task
from lmscale.io import tables
from lmscale.io.files import atomic_write_json, read_json
from lmscale.jobs import PerTaskJob
from lmscale.laws.law import LossLaw, read_law

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, PerTaskJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", required=True)
    parser.add_argument("--loss-law", required=True)
    parser.add_argument("--selection", required=True, help="tasks_t{t}.json: the kept tasks, held to no min_signal")
    parser.add_argument("--out", required=True, help="the model x task table (CSV)")
    parser.add_argument("--summary", required=True, help="JSON: the task laws, the tasks without one and why, "
                                                         "the calibration")


def calibration_line(calibrated: dict, unit: str = "runs") -> str:
    """How the prediction intervals held, in words: coverage, median half-width against the median
    error, the runs outside (a run where the law is at or below zero among them)."""
    if not calibrated["runs"]:
        return "no run outside the fit sets"
    misses = [name.split("/", 1)[1] for name in calibrated["misses"]] if calibrated["misses"] else []
    widths = ("" if calibrated["median_half_width"] is None else
              f", median half-width {100 * calibrated['median_half_width']:.2f}% against a median error of "
              f"{100 * calibrated['median_relative_error']:.2f}%")
    return (f"{calibrated['runs']} {unit} outside the fit sets, {100 * calibrated['coverage']:.0f}% inside their 95% "
            f"prediction interval{widths}" + (f"; outside: {', '.join(misses)}" if misses else ""))


def log_summary(rows: pd.DataFrame, summary: dict) -> None:
    """The predict log's per-task lines: one per task (its calibration and law, or why it has none),
    the pooled calibration, and every held-out (task, run) with its interval."""
    for task, law in summary["laws"].items():
        calibrated = summary["calibration"]["per_task"].get(task, {"runs": 0})
        log.info("task %s%s: %s; law %s, signal %.1f", task, " (kept)" if law["kept"] else "",
                 calibration_line(calibrated), {p: round(v, 4) for p, v in law["params"].items()}, law["signal"])
    for task, why in summary["unfit"].items():
        log.info("task %s%s: no law: %s", task, " (kept)" if why["kept"] else "", why["reason"])
    for key in ("outside_fit_sets", "kept_tasks", "held_out"):
        calibrated = summary["calibration"][key]
        if calibrated["runs"]:
            log.info("per-task, %s: %s", key.replace("_", " "),
                     calibration_line({**calibrated, "misses": []}, "(task, run) pairs"))
    for row in rows[rows["held_out"]].itertuples():
        interval = ("no interval: the law is at or below zero here (a miss)" if row.below_zero else
                    f"[{row.err_pi_lo:.4f}, {row.err_pi_hi:.4f}]: {'inside' if row.covered else 'outside'}")
        log.info("held out %s, %s%s: error %.4f predicted %.4f %s", row.model, row.task, " (kept)" if row.kept else "",
                 row.err, row.err_pred, interval)


def main(args) -> None:
    loss, tasks = tables.read_tables(args.loss_table, args.tasks_table)
    loss_law = read_law(args.loss_law, LossLaw)
    rows, summary = per_task(loss, tasks, loss_law, args.job, read_json(args.selection)["tasks"])
    tables.write_csv(rows, args.out)
    atomic_write_json(args.summary, summary, sort_keys=False)
    log_summary(rows, summary)
