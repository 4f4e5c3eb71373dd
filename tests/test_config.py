"""The study config's grid: runs, their names, and seed replicates of the fit sets."""

from __future__ import annotations

import pytest

from lmscale import config as study_config

GRID = {
    "datasets": {"web": {}},
    "sizes": {"s1": {}, "s2": {}, "s3": {}},
    "grid": [{"sizes": ["s1", "s2", "s3"], "multipliers": [10, 20]}, {"sizes": ["s1"], "multipliers": [80]}],
    "loss_fit_set": [{"size": "s1", "M": 20}, {"size": "s2", "M": 20}, {"size": "s1", "M": 80}],
    "error_fit_extra": [{"size": "s3", "M": 20}],
    "train": {"seed": 3},
}


def test_replicates_repeat_the_fit_runs_with_each_seed():
    runs = study_config.training_runs({**GRID, "replicate_seeds": [4, 7]})
    names = [run.name for run in runs]
    single = [run.name for run in study_config.training_runs(GRID)]
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
        study_config.training_runs({**GRID, "replicate_seeds": [3]})
    with pytest.raises(study_config.ConfigError, match="twice"):
        study_config.training_runs({**GRID, "replicate_seeds": [1, 1]})


def test_run_names_carry_the_replicate_seed():
    assert study_config.run_name("s1", 20) == "s1_M20"
    assert study_config.run_name("s1", 2.5, 1) == "s1_M2.5_seed1"
    assert [study_config.replicate_seed_of(study_config.replicate_suffix(seed)) for seed in (None, 0, 7)] == [None, 0, 7]
