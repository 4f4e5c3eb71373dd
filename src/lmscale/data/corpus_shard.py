"""`lmscale corpus-shard`: write one shard of a dataset's train/validation splits as JSONL."""

from __future__ import annotations

import argparse

from lmscale import jobs
from lmscale.data.documents import SPLITS, corpus_files, write_corpus
from lmscale.io.files import folder_of
from lmscale.jobs import CorpusShardJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, CorpusShardJob)
    parser.add_argument("--out", nargs="+", required=True, metavar="FILE",
                        help="the shard's files, in its folder: train.jsonl, validation.jsonl and manifest.json")


def main(args: argparse.Namespace) -> int:
    job = args.job
    write_corpus(job.source, folder_of(args.out, corpus_files(SPLITS)), SPLITS, job.validation_fraction,
                 (job.shard, job.shards))
    return 0
