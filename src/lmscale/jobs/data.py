"""The data stages' jobs: a corpus and its shards, the tokenizer, the Hub prefetch."""

from __future__ import annotations

from dataclasses import dataclass

from lmscale.config import ConfigError, shard_of
from lmscale.jobs.base import Job, Options, section

# Keys of a `datasets` or `validation_sets` entry that are not part of where its text comes from.
SPLIT_KEYS = ("validation_fraction", "tokens", "dataset", "shards")


@dataclass(frozen=True)
class CorpusJob(Job):
    """A text source cut into splits: a training dataset's train and validation, or a validation set's own."""

    source: dict
    splits: list[str]
    validation_fraction: float | None  # None for a single split: every document goes into it

    @classmethod
    def from_config(cls, config: dict, dataset: str | None = None, valset: str | None = None) -> "CorpusJob":
        if dataset is not None:
            entry = config["datasets"][dataset]
            return cls(text_source(entry), ["train", "validation"], entry["validation_fraction"])
        return cls(text_source(config["validation_sets"][valset]), ["validation"], None)


@dataclass(frozen=True)
class CorpusShardJob(Job):
    """Shard `shard` of the `shards` a training dataset's source is cut into, in train and validation.

    The same source and split as its dataset's CorpusJob: the shards together hold its documents.
    """

    source: dict
    validation_fraction: float
    shard: int  # from 0
    shards: int

    @classmethod
    def from_config(cls, config: dict, dataset: str, shard: str) -> "CorpusShardJob":
        entry = config["datasets"][dataset]
        index, count = shard_of(shard)
        if count != entry["shards"]:
            raise ConfigError(f"shard {shard} of dataset {dataset!r}: the dataset is cut into "
                              f"datasets.{dataset}.shards = {entry['shards']} shards, not {count}")
        return cls(text_source(entry), entry["validation_fraction"], index, count)


def text_source(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key not in SPLIT_KEYS}


@dataclass(frozen=True)
class TokenizerJob(Job):
    """A byte-level BPE trained on a split, or a pretrained tokenizer fetched by name."""

    kind: str
    vocab_size: int
    max_bytes: int | None
    name: str | None

    @classmethod
    def from_config(cls, config: dict) -> "TokenizerJob":
        return cls(**section(config, "tokenizer", cls))


@dataclass(frozen=True)
class TokenizerOptions(Options):
    """Where a pretrained tokenizer is read from, offline: changes no result."""

    hf_cache: str | None  # the Hugging Face cache the prefetch job filled (None: Hugging Face's default)

    @classmethod
    def from_config(cls, config: dict) -> "TokenizerOptions":
        return cls(config["hf_cache"])


@dataclass(frozen=True)
class PrefetchJob(Job):
    """What the offline jobs will read from the Hugging Face Hub, fetched into the cache once.

    The datasets of the lm-eval tasks the study evaluates, and a pretrained tokenizer named by
    its hub id; the cache they go to decides where the data are, so it is part of the job.
    """

    tasks: dict | None  # the `tasks` section's choice of tasks (suite, table, include, exclude); None: no lm-eval data
    tokenizer: str | None  # a pretrained tokenizer's hub id; None: a BPE of the study's own or a local folder
    hf_cache: str | None  # None: Hugging Face's default cache

    @classmethod
    def from_config(cls, config: dict, tasks: dict | None, tokenizer: str | None) -> "PrefetchJob":
        return cls(tasks, tokenizer, config["hf_cache"])

    def needed(self) -> bool:
        """Whether the study reads anything from the Hub at all (the default study does not)."""
        return self.tasks is not None or self.tokenizer is not None
