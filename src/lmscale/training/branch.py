"""`lmscale branch` (train.schedule wsd): one model of the grid: its trunk's state, then its cooldown."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmscale.jobs import BranchJob
from lmscale.training.launch import add_run_arguments, run
from lmscale.training.setup import Paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, BranchJob)
    parser.add_argument("--trunk-dir", required=True, help="the trunk's folder: its log and, in states/, its states")


def main(args: argparse.Namespace) -> int:
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out), Path(args.checkpoint_dir),
                  Path(args.trunk_dir))
    return run(args, args.options.processes, paths)
