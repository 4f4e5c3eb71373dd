"""What `lmscale train`, `trunk` and `branch` share: their arguments and how a job starts.

Each takes its job description (`--job`, lmscale.jobs) and options (`--options`)
as JSON, the files its rule names (the token stream, tokenizer.json, the record
it writes last) and the folders it keeps outside the workflow's outputs
(checkpoints, a trunk's folder). A job granted several GPUs (or, on the CPU,
`train.processes` processes) runs itself again under torchrun first.
"""

from __future__ import annotations

import argparse

from lmscale import jobs
from lmscale.jobs import TrainJob, TrainOptions
from lmscale.training import distributed
from lmscale.training.loop import train
from lmscale.training.setup import Paths


def add_run_arguments(parser: argparse.ArgumentParser, job=TrainJob) -> None:
    """The arguments of `lmscale train`, which `lmscale branch` shares (with `job` BranchJob)."""
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


def run(args: argparse.Namespace, processes: int, paths: Paths) -> int:
    """Train the job, under torchrun first when it is granted several processes."""
    distributed.relaunch(distributed.process_count(args.gpus, processes), args.argv)
    train(args.job, args.options, paths, args.threads)
    return 0
