"""`lmscale corpus`: write a dataset's train/validation splits as JSONL."""

from __future__ import annotations

import argparse

from lmscale import jobs
from lmscale.data.documents import corpus_files, write_corpus
from lmscale.io.files import folder_of
from lmscale.jobs import CorpusJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, CorpusJob)
    parser.add_argument("--out", nargs="+", required=True, metavar="FILE",
                        help="the files to write, in one folder: {split}.jsonl of each of the job's splits "
                             "and manifest.json")


def main(args: argparse.Namespace) -> int:
    job = args.job
    splits = tuple(job.splits)
    write_corpus(job.source, folder_of(args.out, corpus_files(splits)), splits, job.validation_fraction)
    return 0
