"""Tokenizer stage: a byte-level BPE trained on a train split, or a pretrained tokenizer.

Either way the result is a folder in Hugging Face format (`tokenizer.json`,
`tokenizer_config.json`) with an end-of-text token, which the tokenize stage
reads and the train stage copies beside every model, so that
`AutoTokenizer.from_pretrained(model_dir)` works offline.

A BPE learns from the train split, or from the train splits of a sharded
corpus read in order (the same text). A pretrained tokenizer named by its hub
id is read offline from the Hugging Face cache the prefetch stage filled
(`--options`: which cache).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lmscale.data.documents import read_texts

log = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"


def train_bpe(train_jsonl: str | Path | list[str | Path], out_dir: str | Path, vocab_size: int,
              max_bytes: int | None = None, min_frequency: int = 2) -> Path:
    """Train a byte-level BPE (GPT-2 style) on the texts of a split (of its shards, in order); return the folder."""
    # deferred: tokenizers, for training a BPE only
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257 + 1:
        raise ValueError(f"tokenizer vocab_size {vocab_size} is too small: byte-level BPE needs at least 258 "
                         "(256 bytes, the end-of-text token and one merge)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    splits = train_jsonl if isinstance(train_jsonl, list) else [train_jsonl]
    texts = (text for split in splits for text in read_texts(split))
    tokenizer.train_from_iterator(_capped(texts, max_bytes), trainer=trainer)
    return save_hf_tokenizer(tokenizer, out_dir)


def save_hf_tokenizer(tokenizer, out_dir: str | Path) -> Path:
    """Wrap a `tokenizers.Tokenizer` as a PreTrainedTokenizerFast and save it."""
    # deferred: transformers takes seconds to import
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT, pad_token=END_OF_TEXT,
    )
    out_dir = Path(out_dir)
    wrapped.save_pretrained(out_dir)
    return out_dir


def fetch_pretrained(name: str, out_dir: str | Path) -> Path:
    """A pretrained fast tokenizer by hub name or local path, saved to `out_dir`."""
    # deferred: after use_cache, which transformers reads once at import
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"tokenizer {name!r} has no fast (tokenizer.json) version; choose another")
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {name!r} has no end-of-text (eos) token; choose one that has")
    out_dir = Path(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def end_of_text_id(tokenizer_dir: str | Path) -> int:
    """The id that separates documents in token streams: the saved tokenizer's eos token."""
    config = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    eos = config.get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    if eos is None:
        raise ValueError(f"tokenizer in {tokenizer_dir} has no eos_token; retrain or choose another")
    # deferred: tokenizers; lmscale.data.token_streams imports this module
    from tokenizers import Tokenizer

    token_id = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).token_to_id(eos)
    if token_id is None:
        raise ValueError(f"eos token {eos!r} of {tokenizer_dir} is not in its vocabulary")
    return token_id


def _capped(texts, max_bytes):
    if not max_bytes:
        yield from texts
        return
    total = 0
    for text in texts:
        total += len(text.encode("utf-8"))
        if total > max_bytes:
            return
        yield text
