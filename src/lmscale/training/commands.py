"""`lmscale train`, and under `train.schedule: wsd` `lmscale trunk` and `lmscale branch`.

Each takes its job description (`--job`, lmscale.jobs) and options (`--options`)
as JSON, the files its rule names (the token stream, tokenizer.json, the record
it writes last) and the folders it keeps outside the workflow's outputs
(checkpoints, a trunk's folder). A job granted several GPUs (or, on the CPU,
`train.processes` processes) runs itself again under torchrun first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmscale import jobs
from lmscale.jobs import BranchJob, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training import distributed
from lmscale.training.loop import train
from lmscale.training.plan import Paths


def add_arguments(parser: argparse.ArgumentParser, job=TrainJob) -> None:
    """`lmscale train` (and, with `job` BranchJob, the arguments `lmscale branch` shares with it)."""
    jobs.add_argument(parser, job)
    jobs.add_argument(parser, TrainOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--tokenizer", required=True,
                        help="tokenizer.json; its folder's tokenizer files are copied beside the model")
    parser.add_argument("--out", required=True,
                        help="run.json, written last when the run is whole; the model (Hugging Face format) and "
                             "train_log.jsonl go to its folder")
    parser.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints; not a workflow output")
    add_process_arguments(parser)


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, required=True,
                        help="CPU threads the scheduler granted the job; under torchrun, divided among its processes")
    parser.add_argument("--gpus", type=int, required=True,
                        help="GPUs the scheduler granted the job: above one, the command runs again under torchrun "
                             "with one process per GPU (on the CPU, options.processes gloo processes)")


def add_branch_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, BranchJob)
    parser.add_argument("--trunk-dir", required=True, help="the trunk's folder: its log and, in states/, its states")


def add_trunk_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, TrunkJob)
    jobs.add_argument(parser, TrunkOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--trunk-dir", required=True,
                        help="the trunk's folder: its log, checkpoints and, in states/, its state at every branch "
                             "point; not a workflow output")
    parser.add_argument("--out", required=True, help="the trunk's record (JSON): written last, when it is whole")
    add_process_arguments(parser)


def main(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.processes), args.argv)
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out), Path(args.checkpoint_dir))
    train(args.job, args.options, paths, args.threads)
    return 0


def main_branch(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.processes), args.argv)
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out), Path(args.checkpoint_dir),
                  Path(args.trunk_dir))
    train(args.job, args.options, paths, args.threads)
    return 0


def main_trunk(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.train.processes), args.argv)
    trunk = Path(args.trunk_dir)
    train(args.job, args.options, Paths(Path(args.tokens), None, Path(args.out), trunk, trunk), args.threads)
    return 0


# cli.py's entry of each command: (add its arguments, run it).
COMMANDS = {"train": (add_arguments, main), "trunk": (add_trunk_arguments, main_trunk),
            "branch": (add_branch_arguments, main_branch)}
