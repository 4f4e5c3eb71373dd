"""`lmscale backtest`: refit the laws without their largest fit sizes and predict what they lack."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from lmscale import jobs
from lmscale.analysis.chain import add_chained_arguments, read_chained
from lmscale.analysis.rollout import backtest
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import BacktestJob
from lmscale.laws.law import LossLaw, read_law

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, BacktestJob)
    add_chained_arguments(parser)
    parser.add_argument("--out", required=True, help="the table: one row per step, law and run")
    parser.add_argument("--summary", required=True, help="JSON: the model errors and each step's coverage")


def main(args) -> None:
    job = args.job
    loss, tasks, error_laws = read_chained(args)
    if not error_laws:
        job = replace(job, error=None)
    pool, summary = backtest(job, loss, tasks, read_law(args.loss_law, LossLaw), error_laws)
    tables.write_csv(pool, args.out)
    atomic_write_json(args.summary, summary, sort_keys=False)
    for entry in summary["steps"]:
        for law, calibrated in entry["calibration"].items():
            if calibrated["runs"]:
                log.info("step %d (%s left out), %s: %d runs predicted, %.0f%% inside their 95%% prediction "
                         "interval, median half-width %.2f%%, median error %.2f%%", entry["step"],
                         ", ".join(entry["left_out"]) or "nothing", law, calibrated["runs"],
                         100 * calibrated["coverage"], 100 * calibrated["median_half_width"],
                         100 * calibrated["median_relative_error"])
