"""The study config's grid: runs, their names, and seed replicates of the fit sets; a size's settings over
the train block."""

from __future__ import annotations

import pytest

from lmscale import config as study_config
from lmscale.jobs import Hyperparameters
from tests.workflow import validated_config

SHAPE = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 48, "context": 64}
GRID = {
    "datasets": {"web": {}},
    "sizes": {"s1": SHAPE, "s2": SHAPE, "s3": SHAPE},
    "grid": [{"sizes": ["s1", "s2", "s3"], "multipliers": [10, 20]}, {"sizes": ["s1"], "multipliers": [80]}],
    "loss_fit_set": [{"size": "s1", "M": 20}, {"size": "s2", "M": 20}, {"size": "s1", "M": 80}],
    "error_fit_extra": [{"size": "s3", "M": 20}],
    "train": {"seed": 3},
    "reference_size": "s1",
}


def study(**changes) -> dict:
    """GRID as the workflow reads it: validated, the schema's defaults filled in."""
    return validated_config({**GRID, **changes})


def test_replicates_repeat_the_fit_runs_with_each_seed():
    runs = study_config.training_runs(study(replicate_seeds=[4, 7]))
    names = [run.name for run in runs]
    single = [run.name for run in study_config.training_runs(study())]
    assert single == ["s1_M10", "s1_M20", "s1_M80", "s2_M10", "s2_M20", "s3_M10", "s3_M20"]
    replicates = sorted(set(names) - set(single))
    assert replicates == sorted(f"{run}_seed{seed}" for run in ["s1_M20", "s2_M20", "s1_M80", "s3_M20"]
                                for seed in (4, 7))
    assert {run.replicate_seed for run in runs if run.name in replicates} == {4, 7}
    # Each run of the study, then its replicates: s1_M20, s1_M20_seed4, s1_M20_seed7, s1_M80, ...
    assert names[1:4] == ["s1_M20", "s1_M20_seed4", "s1_M20_seed7"]
    assert all(run.replicate_seed is None for run in runs if run.name in single)


def test_a_replicate_seed_must_differ_from_the_studys():
    with pytest.raises(study_config.ConfigError, match=r"train.seed.*e.g. \[4, 5\]"):
        study_config.training_runs(study(replicate_seeds=[3]))
    with pytest.raises(study_config.ConfigError, match="twice"):
        study_config.training_runs({**study(), "replicate_seeds": [1, 1]})  # the schema refuses it too


def test_run_names_carry_the_replicate_seed():
    assert study_config.run_name("s1", 20) == "s1_M20"
    assert study_config.run_name("s1", 2.5, 1) == "s1_M2.5_seed1"
    assert [study_config.replicate_seed_of(study_config.replicate_suffix(seed)) for seed in (None, 0, 7)] == [None, 0, 7]


def test_a_sizes_setting_overrides_the_train_block():
    config = study(sizes={"s1": SHAPE | {"lr": 0.01, "gpus": 2, "micro_batch_size": None}, "s2": SHAPE},
                   train={"lr": 0.002, "micro_batch_size": 4})
    own, other = study_config.size_settings(config, "s1"), study_config.size_settings(config, "s2")
    assert (own["lr"], own["gpus"], other["lr"], other["gpus"]) == (0.01, 2, 0.002, 0)
    # A size's null leaves the train block's value; the shape comes along, its own nulls included.
    assert own["micro_batch_size"] == other["micro_batch_size"] == 4
    assert (own["width"], own["kv_heads"], own["threads"]) == (16, None, 1)


def test_hyperparameters_default_to_the_paper_and_sizes_override_train():
    size = {"width": 8, "depth": 1, "heads": 1, "mlp_width": 8, "context": 8, "lr": 1e-2}
    config = validated_config({"train": {"lr": 5e-3, "weight_decay": 0.1, "threads": 2}, "sizes": {"s": size}})
    hp = Hyperparameters.resolve(study_config.size_settings(config, "s"))
    assert (hp.lr, hp.weight_decay, hp.z_loss, hp.lr_floor, hp.beta2) == (1e-2, 0.1, 1e-4, 3e-5, 0.95)
