"""`lmscale tokenizer`: train a byte-level BPE tokenizer or fetch a pretrained one."""

from __future__ import annotations

import argparse
import logging

from lmscale import jobs
from lmscale.data.vocabulary import end_of_text_id, fetch_pretrained, train_bpe
from lmscale.io import hub
from lmscale.io.files import folder_of
from lmscale.jobs import TokenizerJob, TokenizerOptions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, TokenizerJob)
    jobs.add_argument(parser, TokenizerOptions, "--options", required=False)
    parser.add_argument("--train", nargs="*", help="train split (JSONL) a BPE tokenizer learns from "
                                                   "(a sharded corpus: its shards' train splits, in order)")
    parser.add_argument("--out", required=True, metavar="TOKENIZER_JSON",
                        help="the tokenizer's tokenizer.json; the rest of its Hugging Face folder is written beside it")


def main(args: argparse.Namespace) -> int:
    job = args.job
    out_dir = folder_of([args.out], ["tokenizer.json"])
    if job.kind == "bpe":
        if not args.train:
            raise ValueError("a bpe tokenizer needs --train <split.jsonl>")
        out = train_bpe(list(args.train), out_dir, job.vocab_size, job.max_bytes)
    else:
        if not job.name:
            raise ValueError("a pretrained tokenizer needs a name: a hub name or a path (tokenizer.name in the config)")
        if args.options:
            hub.use_cache(args.options.hf_cache)
        out = fetch_pretrained(job.name, out_dir)
    log.info("tokenizer saved to %s (end-of-text id %d)", out, end_of_text_id(out))
    return 0
