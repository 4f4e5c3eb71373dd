"""Sharded corpora (`datasets.<name>.shards`): K shard jobs hold the documents of one, and
training reads their token streams as one stream.

The stdlib cut into 4 shards gives the same documents in the same order, the same validation
split and the same token stream as K = 1; local files and a streamed `datasets` source are cut
between files; an index slices across shards as one array.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmscale import corpus, tokens
from lmscale.config import shard_name, shard_names, shard_of
from lmscale.tokenizer import train_bpe
from tests.workflow import validated_config

SMALL_STDLIB = {"source": "stdlib", "max_bytes": 400_000}


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def whole_and_shards(tmp_path_factory):
    """The small stdlib corpus whole (K = 1) and in 4 shards, each tokenised with the whole's BPE."""
    root = tmp_path_factory.mktemp("shards")
    corpus.write_corpus(SMALL_STDLIB, root / "whole", validation_fraction=0.1)
    shard_dirs = [root / "shards" / shard_name(k, 4) for k in range(4)]
    for k, folder in enumerate(shard_dirs):
        corpus.write_corpus(SMALL_STDLIB, folder, validation_fraction=0.1, shard=(k, 4))
    corpus.join_shards(shard_dirs, root / "joined")
    train_bpe(root / "whole" / "train.jsonl", root / "tokenizer", vocab_size=300)
    tokens.tokenize_split(root / "whole" / "train.jsonl", root / "tokenizer", root / "tokens" / "train.bin")
    streams = [root / "tokens" / "shards" / folder.name / "train.bin" for folder in shard_dirs]
    for folder, stream in zip(shard_dirs, streams):
        tokens.tokenize_split(folder / "train.jsonl", root / "tokenizer", stream)
    tokens.index_streams(streams, root / "tokens" / "train.index.json")
    return root, shard_dirs


def test_four_stdlib_shards_hold_the_documents_of_one(whole_and_shards):
    root, shard_dirs = whole_and_shards
    whole = read_lines(root / "whole" / "train.jsonl")
    shards = [read_lines(folder / "train.jsonl") for folder in shard_dirs]
    assert all(shards), "every shard has documents"
    # The same documents in the same order: each shard a contiguous run of the sorted files.
    assert [line for shard in shards for line in shard] == whole
    # The same validation split, joined byte for byte, and the same totals.
    assert (root / "joined" / "validation.jsonl").read_bytes() == (root / "whole" / "validation.jsonl").read_bytes()
    joined, single = (json.loads((root / name / "manifest.json").read_text()) for name in ("joined", "whole"))
    assert joined["splits"] == single["splits"] and joined["documents"] == single["documents"]
    assert [shard["shard"] for shard in joined["shards"]] == [folder.name for folder in shard_dirs]


def test_the_shards_of_the_standard_library_are_balanced_by_bytes():
    paths = corpus.stdlib_paths({"source": "stdlib"})
    sizes = [path.stat().st_size for path in paths]
    shares = [corpus.shard_share(list(zip(paths, sizes)), (k, 8), sizes, "stdlib") for k in range(8)]
    assert [path for share in shares for path, _ in share] == paths
    totals = [sum(size for _, size in share) for share in shares]
    assert 0.9 * sum(sizes) / 8 < min(totals) <= max(totals) < 1.1 * sum(sizes) / 8, totals


def test_the_index_of_the_shards_is_the_whole_token_stream(whole_and_shards):
    root, _ = whole_and_shards
    whole, summary = tokens.open_tokens(root / "tokens" / "train.bin")
    sharded, index = tokens.open_tokens(root / "tokens" / "train.index.json")
    assert len(sharded) == len(whole) == index["tokens"] == summary["tokens"]
    assert {key: index[key] for key in tokens.SHARED} == {key: summary[key] for key in tokens.SHARED}
    assert index["documents"] == summary["documents"]
    assert np.array_equal(sharded[:], whole[:])
    # Windows across every shard boundary, as training and evaluation slice them.
    boundaries = np.cumsum([shard["tokens"] for shard in index["shards"]])[:-1]
    for start in [0, *(int(b) - 3 for b in boundaries), len(whole) - 5]:
        assert np.array_equal(sharded[start : start + 8], whole[start : start + 8]), start
    assert sharded[-1] == whole[-1] and sharded[int(boundaries[0])] == whole[int(boundaries[0])]


def test_training_draws_the_same_batches_from_the_index(whole_and_shards):
    from lmscale.train import SequenceOrder

    root, _ = whole_and_shards
    whole = SequenceOrder(tokens.open_tokens(root / "tokens" / "train.bin")[0], context=64, seed=3)
    sharded = SequenceOrder(tokens.open_tokens(root / "tokens" / "train.index.json")[0], context=64, seed=3)
    assert sharded.usable_tokens == whole.usable_tokens
    for step in (0, 1, 57, whole.sequences // 8 + 1):  # the last one in the second epoch
        assert np.array_equal(sharded.batch(step, 8), whole.batch(step, 8)), step


def test_an_index_refuses_shards_of_another_tokenizer(whole_and_shards, tmp_path):
    root, shard_dirs = whole_and_shards
    train_bpe(shard_dirs[0] / "train.jsonl", tmp_path / "other", vocab_size=280)
    other = tmp_path / "other.bin"
    tokens.tokenize_split(shard_dirs[1] / "train.jsonl", tmp_path / "other", other)
    first = root / "tokens" / "shards" / shard_dirs[0].name / "train.bin"
    with pytest.raises(ValueError, match="vocab_size, tokenizer_sha256.*tokenize again"):
        tokens.index_streams([first, other], tmp_path / "train.index.json")


def test_local_files_are_cut_between_files(tmp_path):
    for name in "abcde":
        (tmp_path / f"{name}.txt").write_text(f"document {name}\n" * (10 if name == "c" else 3))
    source = {"source": "local", "paths": [str(tmp_path / "*.txt")]}
    whole = [doc["text"] for doc in corpus.documents(source)]
    shards = [[doc["text"] for doc in corpus.documents(source, (k, 3))] for k in range(3)]
    assert [text for shard in shards for text in shard] == whole and all(shards)
    two = {"source": "local", "paths": [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]}
    with pytest.raises(ValueError, match="shard 00001-of-00003 of local source gets no file: 2 file.*use fewer shards"):
        list(corpus.documents(two, (1, 3)))


def test_a_streamed_dataset_is_cut_between_its_files(tmp_path):
    """An hf source (here a folder `datasets` streams, as it streams a hub dataset's files)."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    for file in range(3):
        with open(folder / f"part-{file}.jsonl", "w") as handle:
            for row in range(4 + file):
                handle.write(json.dumps({"text": f"file {file} row {row}"}) + "\n")
    source = {"source": "hf", "name": str(folder), "split": "train"}
    whole = list(corpus.documents(source))
    shards = [list(corpus.documents(source, (k, 3))) for k in range(3)]
    assert [doc["text"] for shard in shards for doc in shard] == [doc["text"] for doc in whole]
    assert [doc["id"].rsplit("/", 2)[1:] for doc in shards[2]][:2] == [["2", "0"], ["2", "1"]]
    # max_documents: each shard stops at its share of the cap.
    capped = {**source, "max_documents": 7}
    assert [len(list(corpus.documents(capped, (k, 3)))) for k in range(3)] == [2, 2, 3]
    with pytest.raises(ValueError, match="streams from 3 file.*set shards to at most 3"):
        list(corpus.documents(source, (0, 4)))


def test_shard_names_are_ordered_and_checked():
    assert shard_name(3, 16) == "00003-of-00016" and shard_of("00003-of-00016") == (3, 16)
    config = validated_config({"datasets": {"stdlib": {"shards": 3}}})
    assert shard_names(config, "stdlib") == ["00000-of-00003", "00001-of-00003", "00002-of-00003"]
    for bad in ("3-of-3", "x-of-2", "00001"):
        with pytest.raises(ValueError):
            shard_of(bad)
