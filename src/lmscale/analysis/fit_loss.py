"""`lmscale fit-loss`: fit the loss law to a fit set."""

from __future__ import annotations

import argparse
import logging

from lmscale import jobs
from lmscale.analysis.fits import check_fitted, fit_loss
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import FitLossJob

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FitLossJob)
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--out", required=True)


def main(args) -> None:
    job = args.job
    loss = tables.read_loss_table(args.loss_table)
    law = check_fitted(fit_loss(loss, job), loss, args.loss_table)  # a law outside its region is refused
    outside = law.refits_outside_note()
    log.info("%s %s law on %s/%s: %s (rmse %.4g, %d bootstrap refits)%s", job.form, law.method,
             job.dataset, job.valset, law.params, law.rmse, law.bootstrap["kept"], f"; {outside}" if outside else "")
    atomic_write_json(args.out, law.to_json(), sort_keys=False)
