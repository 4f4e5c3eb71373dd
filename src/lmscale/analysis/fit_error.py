"""`lmscale fit-error`: fit the error law to a fit set."""

from __future__ import annotations

import argparse
import logging

from lmscale import jobs
from lmscale.analysis.fits import check_fitted, fit_error
from lmscale.analysis.selection import read_selection
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import FitErrorJob

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FitErrorJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--tasks-table", required=True)
    parser.add_argument("--selection", nargs="?", help="tasks_t{t}.json, the tasks averaged (a job without all_tasks)")
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    if job.all_tasks == (args.selection is not None):
        raise ValueError("give --selection (tasks_t{t}.json) for a job over selected tasks, none for all_tasks")
    task_names = None if job.all_tasks else read_selection(args.selection)
    loss, tasks = tables.read_tables(args.loss_table, args.tasks_table)
    law = check_fitted(fit_error(loss, tasks, job, task_names), tasks, args.tasks_table)  # outside its region: refused
    outside = law.refits_outside_note()
    log.info("error law on %s/%s over %d tasks: %s (rmse %.4g, %d bootstrap refits)%s", job.dataset,
             job.valset, len(law.tasks), law.params, law.rmse, law.bootstrap["kept"], f"; {outside}" if outside else "")
    atomic_write_json(args.out, law.to_json(), sort_keys=False)
