"""`lmscale index-tokens`: index the token streams of a dataset's shards as one stream."""

from __future__ import annotations

import argparse

from lmscale.data.token_streams import INDEX_SUFFIX, index_streams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", nargs="+", required=True, help="the shards' token streams (.bin), in order")
    parser.add_argument("--out", required=True, help=f"the index (*{INDEX_SUFFIX}), beside the shards' folder")


def main(args: argparse.Namespace) -> int:
    index_streams(args.streams, args.out)
    return 0
