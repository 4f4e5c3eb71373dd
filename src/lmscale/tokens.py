"""Tokenize stage: a split (JSONL) -> one flat token stream on disk.

The stream is a raw `.bin` array (uint16 when the vocabulary fits, else
uint32) that training and evaluation open as a numpy memmap, nanoGPT style.
Every document is followed by the end-of-text token. A `.json` beside it
records the token count and what produced the stream.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from lmscale.corpus import read_texts
from lmscale.files import atomic_write_json, atomic_writer

log = logging.getLogger(__name__)

BATCH_DOCUMENTS = 256


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def tokenize_split(split_jsonl: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                   threads: int = 1) -> dict:
    """Write the token stream of a split and its `.json` summary; return the summary."""
    # The Rust tokenizer encodes a batch on RAYON_NUM_THREADS threads; it reads the
    # variable once, so it is set before the library first runs.
    os.environ["RAYON_NUM_THREADS"] = str(max(1, threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from tokenizers import Tokenizer
    from tqdm import tqdm

    from lmscale.tokenizer import end_of_text_id

    tokenizer_file = Path(tokenizer_dir) / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    eot = end_of_text_id(tokenizer_dir)
    dtype = token_dtype(vocab_size)
    out_bin = Path(out_bin)
    n_tokens = n_documents = 0
    with open(split_jsonl, "rb") as lines:
        total_documents = sum(1 for _ in lines)
    with atomic_writer(out_bin, "wb") as handle, tqdm(
        total=total_documents, unit="doc", desc=f"tokenize {split_jsonl}", mininterval=2.0,
    ) as progress:
        for batch in _batches(read_texts(split_jsonl), BATCH_DOCUMENTS):
            encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
            ids = [np.asarray(e.ids + [eot], dtype=dtype) for e in encodings]
            chunk = np.concatenate(ids)
            chunk.tofile(handle)
            n_tokens += len(chunk)
            n_documents += len(batch)
            progress.update(len(batch))
    if n_documents == 0:
        raise ValueError(f"{split_jsonl} has no documents; the corpus stage wrote an empty split")
    summary = {
        "tokens": n_tokens,
        "documents": n_documents,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "end_of_text_id": eot,
        "source": str(split_jsonl),
        "tokenizer_sha256": hashlib.sha256(tokenizer_file.read_bytes()).hexdigest(),
    }
    atomic_write_json(summary_path(out_bin), summary)
    log.info("%s: %d documents -> %d tokens (%s)", split_jsonl, n_documents, n_tokens, dtype.name)
    return summary


def summary_path(bin_path: str | Path) -> Path:
    return Path(bin_path).with_suffix(".json")


def open_tokens(bin_path: str | Path) -> tuple[np.memmap, dict]:
    """A token stream as a read-only memmap, with its summary."""
    summary = json.loads(summary_path(bin_path).read_text())
    tokens = np.memmap(bin_path, dtype=np.dtype(summary["dtype"]), mode="r")
    if len(tokens) != summary["tokens"]:
        raise ValueError(f"{bin_path} holds {len(tokens)} tokens but its .json says {summary['tokens']}; "
                         "delete both and tokenize again")
    return tokens, summary


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", required=True, help="a split written by `lmscale corpus` (JSONL)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder (tokenizer.json)")
    parser.add_argument("--out", required=True, help="the token stream (.bin); its .json goes beside it")
    parser.add_argument("--threads", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    tokenize_split(args.split, args.tokenizer, args.out, args.threads)
    return 0
