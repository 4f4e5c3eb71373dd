"""`lmscale select-tasks`: keep the tasks above chance by a threshold t."""

from __future__ import annotations

import argparse
import logging

from lmscale import jobs
from lmscale.analysis.selection import select_tasks
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import SelectTasksJob

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, SelectTasksJob)
    parser.add_argument("--tasks-table", required=True)
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    selection = select_tasks(tables.read_task_table(args.tasks_table), job.reference_size, job.threshold)
    log.info("kept %d of %d tasks at t = %g: %s", len(selection["tasks"]), len(selection["margins"]),
             job.threshold, ", ".join(selection["tasks"]))
    atomic_write_json(args.out, selection, sort_keys=False)
