"""Sharded corpora (`datasets.<name>.shards`): K shard jobs hold the documents of one, and
training reads their token streams as one stream.

- the library: the stdlib cut into 4 shards gives the same documents in the same order, the
  same validation split and the same token stream as K = 1; local files and a streamed
  `datasets` source are cut between files; an index slices across shards as one array;
- the workflow: a smoke study with 4 shards plans 4 corpus and 4 tokenize jobs and their
  fan-in, trains on the index to the loss of the unsharded study, and a killed shard job is
  the only one a rerun redoes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lmscale.config import shard_name, shard_names, shard_of
from lmscale.data import documents, token_streams
from lmscale.data.vocabulary import train_bpe
from tests.workflow import REPO, offline_env, planned, snakemake, snakemake_command, validated_config

SMALL_STDLIB = {"source": "stdlib", "max_bytes": 400_000}


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def whole_and_shards(tmp_path_factory):
    """The small stdlib corpus whole (K = 1) and in 4 shards, each tokenised with the whole's BPE."""
    root = tmp_path_factory.mktemp("shards")
    documents.write_corpus(SMALL_STDLIB, root / "whole", validation_fraction=0.1)
    shard_dirs = [root / "shards" / shard_name(k, 4) for k in range(4)]
    for k, folder in enumerate(shard_dirs):
        documents.write_corpus(SMALL_STDLIB, folder, validation_fraction=0.1, shard=(k, 4))
    documents.join_shards(shard_dirs, root / "joined")
    train_bpe(root / "whole" / "train.jsonl", root / "tokenizer", vocab_size=300)
    token_streams.tokenize_split(root / "whole" / "train.jsonl", root / "tokenizer", root / "tokens" / "train.bin")
    streams = [root / "tokens" / "shards" / folder.name / "train.bin" for folder in shard_dirs]
    for folder, stream in zip(shard_dirs, streams):
        token_streams.tokenize_split(folder / "train.jsonl", root / "tokenizer", stream)
    token_streams.index_streams(streams, root / "tokens" / "train.index.json")
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
    paths = documents.stdlib_paths({"source": "stdlib"})
    sizes = [path.stat().st_size for path in paths]
    shares = [documents.shard_share(list(zip(paths, sizes)), (k, 8), sizes, "stdlib") for k in range(8)]
    assert [path for share in shares for path, _ in share] == paths
    totals = [sum(size for _, size in share) for share in shares]
    assert 0.9 * sum(sizes) / 8 < min(totals) <= max(totals) < 1.1 * sum(sizes) / 8, totals


def test_the_index_of_the_shards_is_the_whole_token_stream(whole_and_shards):
    root, _ = whole_and_shards
    whole, summary = token_streams.open_tokens(root / "tokens" / "train.bin")
    sharded, index = token_streams.open_tokens(root / "tokens" / "train.index.json")
    assert len(sharded) == len(whole) == index["tokens"] == summary["tokens"]
    assert {key: index[key] for key in token_streams.SHARED} == {key: summary[key] for key in token_streams.SHARED}
    assert index["documents"] == summary["documents"]
    assert np.array_equal(sharded[:], whole[:])
    # Windows across every shard boundary, as training and evaluation slice them.
    boundaries = np.cumsum([shard["tokens"] for shard in index["shards"]])[:-1]
    for start in [0, *(int(b) - 3 for b in boundaries), len(whole) - 5]:
        assert np.array_equal(sharded[start : start + 8], whole[start : start + 8]), start
    assert sharded[-1] == whole[-1] and sharded[int(boundaries[0])] == whole[int(boundaries[0])]


def test_training_draws_the_same_batches_from_the_index(whole_and_shards):
    from lmscale.training.budget import SequenceOrder

    root, _ = whole_and_shards
    whole = SequenceOrder(token_streams.open_tokens(root / "tokens" / "train.bin")[0], context=64, seed=3)
    sharded = SequenceOrder(token_streams.open_tokens(root / "tokens" / "train.index.json")[0], context=64, seed=3)
    assert sharded.usable_tokens == whole.usable_tokens
    for step in (0, 1, 57, whole.sequences // 8 + 1):  # the last one in the second epoch
        assert np.array_equal(sharded.batch(step, 8), whole.batch(step, 8)), step


def test_an_index_refuses_shards_of_another_tokenizer(whole_and_shards, tmp_path):
    root, shard_dirs = whole_and_shards
    train_bpe(shard_dirs[0] / "train.jsonl", tmp_path / "other", vocab_size=280)
    other = tmp_path / "other.bin"
    token_streams.tokenize_split(shard_dirs[1] / "train.jsonl", tmp_path / "other", other)
    first = root / "tokens" / "shards" / shard_dirs[0].name / "train.bin"
    with pytest.raises(ValueError, match="vocab_size, tokenizer_sha256.*tokenize again"):
        token_streams.index_streams([first, other], tmp_path / "train.index.json")


def test_local_files_are_cut_between_files(tmp_path):
    for name in "abcde":
        (tmp_path / f"{name}.txt").write_text(f"document {name}\n" * (10 if name == "c" else 3))
    source = {"source": "local", "paths": [str(tmp_path / "*.txt")], "text_field": "text"}
    whole = [doc["text"] for doc in documents.documents(source)]
    shards = [[doc["text"] for doc in documents.documents(source, (k, 3))] for k in range(3)]
    assert [text for shard in shards for text in shard] == whole and all(shards)
    two = {**source, "paths": [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]}
    with pytest.raises(ValueError, match="shard 00001-of-00003 of local source gets no file: 2 file.*use fewer shards"):
        list(documents.documents(two, (1, 3)))


def test_a_streamed_dataset_is_cut_between_its_files(tmp_path):
    """An hf source (here a folder `datasets` streams, as it streams a hub dataset's files)."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    for file in range(3):
        with open(folder / f"part-{file}.jsonl", "w") as handle:
            for row in range(4 + file):
                handle.write(json.dumps({"text": f"file {file} row {row}"}) + "\n")
    source = {"source": "hf", "name": str(folder), "split": "train", "text_field": "text"}
    whole = list(documents.documents(source))
    shards = [list(documents.documents(source, (k, 3))) for k in range(3)]
    assert [doc["text"] for shard in shards for doc in shard] == [doc["text"] for doc in whole]
    assert [doc["id"].rsplit("/", 2)[1:] for doc in shards[2]][:2] == [["2", "0"], ["2", "1"]]
    # max_documents: each shard stops at its share of the cap.
    capped = {**source, "max_documents": 7}
    assert [len(list(documents.documents(capped, (k, 3)))) for k in range(3)] == [2, 2, 3]
    with pytest.raises(ValueError, match="streams from 3 file.*set shards to at most 3"):
        list(documents.documents(source, (0, 4)))


def test_shard_names_are_ordered_and_checked():
    assert shard_name(3, 16) == "00003-of-00016" and shard_of("00003-of-00016") == (3, 16)
    config = validated_config({"datasets": {"stdlib": {"shards": 3}}})
    assert shard_names(config, "stdlib") == ["00000-of-00003", "00001-of-00003", "00002-of-00003"]
    for bad in ("3-of-3", "x-of-2", "00001"):
        with pytest.raises(ValueError):
            shard_of(bad)


# ---- the workflow ------------------------------------------------------------------------------


def smoke_config(study: str, shards: int) -> dict:
    """The smoke study on less text, its corpus in `shards` shards."""
    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["study"] = study
    config["datasets"]["stdlib"] |= {"shards": shards, "max_bytes": 1_500_000}  # s1 at M = 5 reads ~0.1M tokens
    return config


def kill_when_running(workdir: Path, marker: str, found: list, seconds: float = 300) -> threading.Thread:
    """A thread that SIGKILLs the `lmscale` process (not its shell) that runs in `workdir` with `marker`
    (a shard's path) in its command line: a shard job killed as a cluster kills one."""

    def watch():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for entry in Path("/proc").iterdir():
                try:
                    argv = (entry / "cmdline").read_bytes().decode().split("\0")
                    here = Path(os.readlink(entry / "cwd")) == workdir
                except (OSError, ValueError):
                    continue
                command = " ".join(argv)
                if here and marker in command and Path(argv[0]).name not in ("bash", "sh") and any(
                        Path(arg).name == "lmscale" or arg == "lmscale.cli" for arg in argv[:3]):
                    os.kill(int(entry.name), signal.SIGKILL)
                    found.append(command)
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_killing(workdir: Path, configfile: Path, marker: str, *targets: str) -> list:
    """The workflow up to `targets` (--keep-going), the shard job whose command holds `marker` killed."""
    killed: list = []
    watcher = kill_when_running(workdir, marker, killed)
    result = subprocess.run(snakemake_command(workdir, "--keep-going", *targets, "--configfile", str(configfile)),
                            capture_output=True, text=True, env=offline_env(), timeout=900)
    watcher.join(timeout=1)
    assert killed, f"no job with {marker} was seen running:\n{result.stderr[-3000:]}"
    assert result.returncode != 0, "a killed job fails the run"
    return killed


def shard_files(results: Path, kind: str) -> dict[str, float]:
    pattern = {"corpus": "data/stdlib/shards/*/train.jsonl", "tokens": "tokens/stdlib/shards/*/train.bin"}[kind]
    return {path.parent.name: path.stat().st_mtime_ns for path in results.glob(pattern)}


@pytest.fixture(scope="module")
def sharded_study(tmp_path_factory):
    """The smoke study in 4 shards, one shard job of each kind killed on the way, then s1 at M = 5
    trained; and the same run of the study in one piece."""
    workdir = tmp_path_factory.mktemp("sharded_study")
    configs = {}
    for study, shards in (("sharded", 4), ("whole", 1)):
        configs[study] = workdir / f"{study}.yaml"
        configs[study].write_text(yaml.safe_dump(smoke_config(study, shards)))
    results = workdir / "results" / "sharded"
    record = {"plan": planned(workdir, "--configfile", str(configs["sharded"]))}
    shard_dirs = [f"results/sharded/data/stdlib/shards/{shard_name(k, 4)}" for k in range(4)]

    # A corpus shard job killed: the other shards are written, the tokenizer (which reads them all) waits.
    record["killed_corpus"] = run_killing(workdir, configs["sharded"], f"--out {shard_dirs[1]}/",
                                          *(f"{folder}/manifest.json" for folder in shard_dirs))
    record["corpus_before"] = shard_files(results, "corpus")
    record["corpus_rerun"] = planned(workdir, *(f"{folder}/manifest.json" for folder in shard_dirs),
                                     "--configfile", str(configs["sharded"]))
    # A tokenize shard job killed on the way to the index.
    index = "results/sharded/tokens/stdlib/train.index.json"
    record["killed_tokens"] = run_killing(workdir, configs["sharded"],
                                          f"results/sharded/tokens/stdlib/shards/{shard_name(2, 4)}/train.bin", index)
    record["corpus_after"] = shard_files(results, "corpus")
    record["tokens_before"] = shard_files(results, "tokens")
    record["tokens_rerun"] = planned(workdir, index, "--configfile", str(configs["sharded"]))
    run = "results/{study}/models/stdlib/s1_M5/run.json"
    snakemake(workdir, run.format(study="sharded"), "--configfile", str(configs["sharded"]))
    record["tokens_after"] = shard_files(results, "tokens")
    snakemake(workdir, run.format(study="whole"), "--configfile", str(configs["whole"]))
    return workdir, record


def rules(jobs: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for job in jobs:
        found.setdefault(job["rule"], []).append(job["wildcards"])
    return found


@pytest.mark.slow
def test_the_sharded_study_plans_a_job_per_shard_and_their_fan_in(sharded_study):
    _, record = sharded_study
    plan = rules(record["plan"])
    assert sorted(job["shard"] for job in plan["corpus_shard"]) == [shard_name(k, 4) for k in range(4)]
    assert len(plan["tokenize_shard"]) == 4 and len(plan["index_tokens"]) == 1
    assert "corpus" not in plan  # the sharded dataset's; the pydoc validation set has its own rule
    # The held-out split (loss evaluation, task suite) is the shards' joined.
    assert plan["join_shards"] == [{"dataset": "stdlib"}]


@pytest.mark.slow
def test_a_killed_shard_job_is_the_only_one_redone(sharded_study):
    _, record = sharded_study
    # The killed corpus shard left no output; a rerun plans it alone of the four.
    assert shard_name(1, 4) not in record["corpus_before"] and len(record["corpus_before"]) == 3
    assert rules(record["corpus_rerun"]) == {"corpus_shard": [{"dataset": "stdlib", "shard": shard_name(1, 4)}]}
    # The finished ones were not written again when the run went on.
    assert {k: v for k, v in record["corpus_after"].items() if k != shard_name(1, 4)} == record["corpus_before"]
    # Likewise a killed tokenize shard: it and the index (the fan-in) are all that is left to do.
    assert sorted(record["tokens_before"]) == [shard_name(k, 4) for k in (0, 1, 3)]
    assert rules(record["tokens_rerun"]) == {"tokenize_shard": [{"dataset": "stdlib", "shard": shard_name(2, 4)}],
                                             "index_tokens": [{"dataset": "stdlib"}]}
    assert {k: v for k, v in record["tokens_after"].items() if k != shard_name(2, 4)} == record["tokens_before"]


@pytest.mark.slow
def test_the_sharded_study_has_the_data_and_loss_of_the_whole(sharded_study):
    workdir, _ = sharded_study
    sharded, whole = workdir / "results" / "sharded", workdir / "results" / "whole"
    # The same tokenizer, learnt from the shards' train splits in order.
    assert (sharded / "tokenizer" / "tokenizer.json").read_bytes() == (whole / "tokenizer" / "tokenizer.json").read_bytes()
    # The same token count and stream, and the same validation split.
    index = json.loads((sharded / "tokens" / "stdlib" / "train.index.json").read_text())
    summary = json.loads((whole / "tokens" / "stdlib" / "train.json").read_text())
    assert index["tokens"] == summary["tokens"] and index["documents"] == summary["documents"]
    assert b"".join((sharded / "tokens" / "stdlib" / shard["path"]).read_bytes() for shard in index["shards"]) == (
        whole / "tokens" / "stdlib" / "train.bin").read_bytes()
    shard_validation = b"".join(path.read_bytes() for path in sorted(sharded.glob("data/stdlib/shards/*/validation.jsonl")))
    assert shard_validation == (whole / "data/stdlib/validation.jsonl").read_bytes()
    # A run on the index reads the batches of the whole stream: the same budget, fingerprint and
    # losses. (Seed noise would allow ~1% between the final losses; they agree exactly.)
    runs = [json.loads((study / "models" / "stdlib" / "s1_M5" / "run.json").read_text()) for study in (sharded, whole)]
    assert runs[0]["fingerprint"] == runs[1]["fingerprint"] and runs[0]["D"] == runs[1]["D"]
    assert runs[0]["train_tokens_available"] == runs[1]["train_tokens_available"] == (index["tokens"] - 1) // 64 * 64
    logs = [[json.loads(line)["loss"] for line in read_lines(study / "models" / "stdlib" / "s1_M5" / "train_log.jsonl")]
            for study in (sharded, whole)]
    print(f"\ntrain loss of s1_M5 at its last step: 4 shards {logs[0][-1]:.4f}, one piece {logs[1][-1]:.4f}")
    assert logs[0] == logs[1] and len(logs[0]) > 5


def test_join_shards_takes_the_files_a_rule_names(whole_and_shards, tmp_path, caplog):
    """`lmscale join-shards` as the rule calls it: each shard's validation split and manifest, in order,
    and the two files it writes; the same bytes as the library's join."""
    from lmscale import cli

    root, shard_dirs = whole_and_shards
    validation = [str(folder / "validation.jsonl") for folder in shard_dirs]
    manifests = [str(folder / "manifest.json") for folder in shard_dirs]
    out = [str(tmp_path / "validation.jsonl"), str(tmp_path / "manifest.json")]
    assert cli.main(["join-shards", "--validation", *validation, "--manifests", *manifests, "--out", *out]) == 0
    for name in ("validation.jsonl", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (root / "joined" / name).read_bytes()
    assert cli.main(["join-shards", "--validation", *validation, "--manifests", *manifests[:-1], "--out", *out]) == 1
    assert "--validation names 4 shards but --manifests 3" in caplog.text
    # A shard's manifest beside another shard's split is no pair.
    swapped = manifests[::-1]
    assert cli.main(["join-shards", "--validation", *validation, "--manifests", *swapped, "--out", *out]) == 1
    assert "expected validation.jsonl, manifest.json in one folder" in caplog.text
