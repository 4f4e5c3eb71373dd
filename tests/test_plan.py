"""The run plan (lmscale.training.setup) on a synthetic token stream: the budget from the model's real
parameter count, the data order, and the runs refused before any weight exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmscale.jobs import BranchJob, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training.budget import Budget
from lmscale.training.schedules import Branch, CosineRun, Trunk
from lmscale.training.setup import Paths, plan
from tests.workflow import validated_config

TINY = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 32, "context": 32, "tie_embeddings": True,
        "batch_size": 8, "lr": 0.01, "warmup": 5}


def config(size: dict = TINY, **train) -> dict:
    return validated_config({"sizes": {"tiny": size}, "train": {"schedule": "wsd", "cooldown": 0.25, **train}})


def stream(folder: Path, tokens: int) -> Path:
    """A token stream as `lmscale tokenize` writes it: the .bin and its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    (np.arange(tokens) % 320).astype(np.uint16).tofile(folder / "train.bin")
    (folder / "train.json").write_text(json.dumps({"tokens": tokens, "dtype": "uint16", "vocab_size": 320,
                                                   "end_of_text_id": 0, "tokenizer_sha256": "ab" * 32}))
    return folder / "train.bin"


def test_paths_derive_the_folders_from_the_files_a_rule_names(tmp_path):
    paths = Paths(tmp_path / "train.bin", tmp_path / "tok" / "tokenizer.json", tmp_path / "m" / "run.json",
                  tmp_path / "ckpt", tmp_path / "trunk")
    assert (paths.tokenizer_dir, paths.model_dir, paths.states) == (tmp_path / "tok", tmp_path / "m",
                                                                    tmp_path / "trunk" / "states")
    trunk = Paths(tmp_path / "train.bin", None, tmp_path / "s1_M4.json", tmp_path / "trunk")
    assert (trunk.tokenizer_dir, trunk.states) == (None, None)


def test_each_job_kind_is_planned_by_its_schedule_on_one_data_order(tmp_path):
    tokens = stream(tmp_path, 200_000)
    settings = config()
    cosine = plan(TrainJob.from_config(settings, "stdlib", "tiny", 4), tokens)
    branch = plan(BranchJob.from_config(settings, "stdlib", "tiny", 4), tokens)
    trunk = plan(TrunkJob.from_config(settings, "stdlib", "tiny", 4), tokens, TrunkOptions.from_config(settings, [2, 4]))
    assert [type(p.schedule) for p in (cosine, branch, trunk)] == [CosineRun, Branch, Trunk]
    # N counted on the real model (embeddings included, the schema's default), D = M x N in steps of 8 x 32.
    assert cosine.counts["N"] > cosine.counts["N_non_embedding"] > 0
    assert cosine.budget == Budget.plan(cosine.counts, 4, 8, 32, True) == branch.budget
    assert trunk.budget.steps == branch.schedule.branch and trunk.schedule.states[-1] == branch.schedule.branch
    assert cosine.epochs == cosine.budget.D / cosine.order.usable_tokens
    assert (cosine.micro, cosine.run, trunk.run) == (8, "stdlib/tiny_M4", "stdlib/tiny trunk")
    assert cosine.schedule.stream == {"tokens": 200_000, "tokenizer_sha256": "ab" * 32}
    assert (branch.order.batch(7, 8) == trunk.order.batch(7, 8)).all()  # one data order per size and seed
    # A cosine run's options (how it runs) change nothing of its plan.
    assert plan(TrainJob.from_config(settings, "stdlib", "tiny", 4), tokens,
                TrainOptions.from_config(settings)).schedule == cosine.schedule


def test_runs_that_cannot_be_trained_are_refused_before_any_weight(tmp_path):
    tokens = stream(tmp_path, 5_000)
    settings = config()
    with pytest.raises(ValueError, match="run stdlib/tiny_M4 needs D = .* but its train split has only 4,992"):
        plan(TrainJob.from_config(settings, "stdlib", "tiny", 4), tokens)
    with pytest.raises(ValueError, match="trunk stdlib/tiny: its options"):
        plan(TrunkJob.from_config(settings, "stdlib", "tiny", 4), tokens)
    # A batch that does not split into micro-batches: refused before the stream is read.
    uneven = config(TINY | {"micro_batch_size": 3})
    with pytest.raises(ValueError, match="size tiny: batch_size 8 is not a multiple of micro_batch_size 3"):
        plan(TrainJob.from_config(uneven, "stdlib", "tiny", 4), tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="no training schedule for a TrainOptions"):
        plan(TrainOptions.from_config(settings), tokens)
