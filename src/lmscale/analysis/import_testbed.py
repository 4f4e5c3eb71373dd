"""`lmscale import-testbed`: import published results into the testbed tables."""

from __future__ import annotations

import argparse
import logging

from lmscale import jobs
from lmscale.io import tables
from lmscale.io.importers import read_testbed
from lmscale.jobs import ImportTestbedJob

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, ImportTestbedJob)
    parser.add_argument("--loss-out", required=True)
    parser.add_argument("--tasks-out", required=True)


def main(args) -> None:
    job = args.job
    loss, tasks = read_testbed(job)
    tables.write_tables(loss, tasks, args.loss_out, args.tasks_out)
    log.info("imported %d models (%d loss rows, %d task rows) from %s", loss["model"].nunique(), len(loss),
             0 if tasks is None else len(tasks), job.path)
