"""Tokenize stage: a split (JSONL) -> one flat token stream on disk.

The stream is a raw `.bin` array (uint16 when the vocabulary fits, else
uint32) that training and evaluation open as a numpy memmap, nanoGPT style.
Every document is followed by the end-of-text token. A `.json` beside it
records the token count and what produced the stream.

A sharded corpus (`datasets.<name>.shards`) has one stream per shard of its
train split and an index of them (`train.index.json`, `index-tokens`): its
summary's fields over the whole, and each shard's path and token count.
`open_tokens` reads an index as one stream, the shards in order, without
copying them into one file; the shards of a file source in order are the
stream the whole corpus would have given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from lmscale.data.documents import read_texts
from lmscale.data.vocabulary import end_of_text_id
from lmscale.io.files import atomic_write_json, atomic_writer

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
    # deferred: tokenizers reads RAYON_NUM_THREADS (set above) once; training and eval-loss import this module
    from tokenizers import Tokenizer
    from tqdm import tqdm

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


# The summary fields every shard of an index must share.
SHARED = ("dtype", "vocab_size", "end_of_text_id", "tokenizer_sha256")
INDEX_SUFFIX = ".index.json"


def index_streams(streams: list[str | Path], out: str | Path) -> dict:
    """Write the index of token streams (the shards of one split, in order) and return it."""
    out = Path(out)
    if not out.name.endswith(INDEX_SUFFIX):
        raise ValueError(f"an index of token streams is named *{INDEX_SUFFIX}, not {out.name}")
    summaries = [json.loads(summary_path(stream).read_text()) for stream in streams]
    for stream, summary in zip(streams, summaries):
        different = [key for key in SHARED if summary[key] != summaries[0][key]]
        if different:
            raise ValueError(f"{stream} differs from {streams[0]} in {', '.join(different)}: the shards of a stream "
                             f"must come from one tokenizer; delete the shards' .bin files and tokenize again")
    index = {key: summaries[0][key] for key in SHARED}
    index |= {
        "tokens": sum(summary["tokens"] for summary in summaries),
        "documents": sum(summary["documents"] for summary in summaries),
        "shards": [{"path": os.path.relpath(stream, out.parent), "tokens": summary["tokens"],
                    "documents": summary["documents"]} for stream, summary in zip(streams, summaries)],
    }
    atomic_write_json(out, index)
    log.info("%s: %d shards, %d tokens", out, len(streams), index["tokens"])
    return index


class ShardedTokens:
    """Token streams read as one, in order, without a copy: what `tokens[a:b]` and `len` see.

    A slice across the end of a shard joins the two pieces; an array of positions (a training
    step's windows) is gathered from each shard it touches.
    """

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.ends = np.cumsum([len(part) for part in parts])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, key):
        if isinstance(key, np.ndarray) and key.ndim:
            return self._gather(key)
        if not isinstance(key, slice):
            position = int(key) + (len(self) if int(key) < 0 else 0)
            return self[position : position + 1][0]
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("a sharded token stream is read in contiguous slices")
        pieces = []
        part = int(np.searchsorted(self.ends, start, side="right"))
        while start < stop:
            begin = int(self.ends[part - 1]) if part else 0
            piece = self.parts[part][start - begin : min(stop, int(self.ends[part])) - begin]
            pieces.append(piece)
            start += len(piece)
            part += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty(0, dtype=self.dtype)

    def _gather(self, positions: np.ndarray) -> np.ndarray:
        flat = positions.ravel()
        flat = np.where(flat < 0, flat + len(self), flat)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"a position outside the sharded stream's {len(self)} tokens")
        parts = np.searchsorted(self.ends, flat, side="right")
        gathered = np.empty(flat.shape, dtype=self.dtype)
        for part in np.unique(parts):
            chosen = parts == part
            begin = int(self.ends[part - 1]) if part else 0
            gathered[chosen] = self.parts[part][flat[chosen] - begin]
        return gathered.reshape(positions.shape)


def open_tokens(bin_path: str | Path) -> tuple[np.memmap | ShardedTokens, dict]:
    """A token stream as a read-only memmap, with its summary; an index of shards as one stream."""
    if str(bin_path).endswith(INDEX_SUFFIX):
        index = json.loads(Path(bin_path).read_text())
        parts = [open_tokens(Path(bin_path).parent / shard["path"])[0] for shard in index["shards"]]
        for part, shard in zip(parts, index["shards"]):
            if len(part) != shard["tokens"]:
                raise ValueError(f"{shard['path']} holds {len(part)} tokens but the index {bin_path} says "
                                 f"{shard['tokens']}; index the shards again (`lmscale index-tokens`)")
        return ShardedTokens(parts), index
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
