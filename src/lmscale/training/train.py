"""`lmscale train`: train one model of the N x M grid (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmscale.training.launch import add_run_arguments, run
from lmscale.training.setup import Paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)


def main(args: argparse.Namespace) -> int:
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out), Path(args.checkpoint_dir))
    return run(args, args.options.processes, paths)
