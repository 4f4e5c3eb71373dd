"""`lmscale trunk` (train.schedule wsd): one size's stable phase to its largest M's branch point."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmscale import jobs
from lmscale.jobs import TrunkJob, TrunkOptions
from lmscale.training.launch import add_process_arguments, run
from lmscale.training.setup import Paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, TrunkJob)
    jobs.add_argument(parser, TrunkOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--trunk-dir", required=True,
                        help="the trunk's folder: its log, checkpoints and, in states/, its state at every branch "
                             "point; not a workflow output")
    parser.add_argument("--out", required=True, help="the trunk's record (JSON): written last, when it is whole")
    add_process_arguments(parser)


def main(args: argparse.Namespace) -> int:
    trunk = Path(args.trunk_dir)
    return run(args, args.options.train.processes, Paths(Path(args.tokens), None, Path(args.out), trunk, trunk))
