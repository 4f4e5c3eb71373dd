"""`lmscale tokenize`: tokenize a split into a flat memmap token stream."""

from __future__ import annotations

import argparse

from lmscale.data.token_streams import tokenize_split
from lmscale.io.files import folder_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, help="a split written by `lmscale corpus` (JSONL)")
    parser.add_argument("--tokenizer", required=True, metavar="TOKENIZER_JSON",
                        help="the tokenizer's tokenizer.json (`lmscale tokenizer`; its folder holds the rest)")
    parser.add_argument("--out", required=True, help="the token stream (.bin); its .json goes beside it")
    parser.add_argument("--threads", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    tokenize_split(args.split, folder_of([args.tokenizer], ["tokenizer.json"]), args.out, args.threads)
    return 0
