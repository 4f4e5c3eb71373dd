"""`lmscale join-shards`: join a sharded dataset's validation splits."""

from __future__ import annotations

import argparse

from lmscale.data.documents import join_shards
from lmscale.io.files import folder_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validation", nargs="+", required=True, metavar="JSONL",
                        help="the shards' validation.jsonl (`lmscale corpus-shard`), in order")
    parser.add_argument("--manifests", nargs="+", required=True, metavar="JSON",
                        help="the shards' manifest.json, in the same order (each beside its validation split)")
    parser.add_argument("--out", nargs="+", required=True, metavar="FILE",
                        help="the joined validation.jsonl and manifest.json, in one folder")


def main(args: argparse.Namespace) -> int:
    if len(args.validation) != len(args.manifests):
        raise ValueError(f"--validation names {len(args.validation)} shards but --manifests {len(args.manifests)}: "
                         "one of each per shard, in the same order")
    files = ["validation.jsonl", "manifest.json"]
    shards = [folder_of([validation, manifest], files) for validation, manifest in zip(args.validation, args.manifests)]
    join_shards(shards, folder_of(args.out, files))
    return 0
