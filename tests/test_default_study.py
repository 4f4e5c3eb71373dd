"""The embedded default study (config.yaml) keeps the shape a miniature of the paper needs:
fit sets in the manner of its Table 1, and held-out runs that are real extrapolations."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmscale import config as study_config
from lmscale.jobs.resources import embedding_count, parameter_count, study_vocab_size
from lmscale.training.budget import Budget
from tests.workflow import validated_config

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


@pytest.fixture(scope="module")
def default():
    return validated_config(study_config.load_yaml(CONFIG))


def compute(config: dict, size: str, multiplier: float) -> float:
    """C = 6 N D with N and D as training counts them."""
    settings = study_config.size_settings(config, size)
    vocab = study_vocab_size(config)
    total = parameter_count(settings, vocab)
    counts = {"N": total, "N_non_embedding": total - embedding_count(settings, vocab)}
    budget = Budget.plan(counts, multiplier, settings["batch_size"], settings["context"],
                         settings["count_embeddings"])
    return 6.0 * budget.N * budget.D


def test_fit_sets_follow_table_1(default):
    loss_fit = study_config.loss_fit_set(default)
    error_fit = study_config.error_fit_set(default)
    # The near-optimal M is the one most fit sizes share.
    near_optimal = max({p.M for p in loss_fit}, key=[p.M for p in loss_fit].count)
    fit_sizes = [p.size for p in loss_fit if p.M == near_optimal]
    assert len(fit_sizes) >= 4, "at least four fit sizes at one near-optimal M"
    smallest = min(fit_sizes, key=lambda s: compute(default, s, near_optimal))
    assert any(p.size == smallest and p.M > near_optimal for p in loss_fit), "plus the smallest size over-trained"
    assert set(loss_fit) <= set(error_fit)
    extra = [run for run in error_fit if run not in loss_fit]
    largest_loss_fit = max(compute(default, p.size, p.M) for p in loss_fit)
    assert extra and all(compute(default, p.size, p.M) > largest_loss_fit for p in extra), "plus one larger run"


def test_held_out_runs_are_extrapolations(default):
    grid = {(run.size, run.multiplier) for run in study_config.training_runs(default)}
    fit = {(p.size, p.M) for p in study_config.error_fit_set(default)}
    held_out = {(entry["size"], float(entry["M"])) for entry in default["held_out"]}
    assert held_out <= grid and not held_out & fit
    largest_fit = max(compute(default, s, m) for s, m in fit)
    # A larger size at the fit sets' M with at least 4x the compute of the largest fit run.
    fit_multipliers = {m for _, m in fit}
    assert any(m in fit_multipliers and compute(default, s, m) >= 4 * largest_fit for s, m in held_out)
    # The smallest size at the largest M, its multipliers spanning at least 16x.
    smallest = min(default["sizes"], key=lambda s: parameter_count(default["sizes"][s], study_vocab_size(default)))
    multipliers = sorted(m for s, m in grid if s == smallest)
    assert multipliers[-1] / multipliers[0] >= 16
    assert (smallest, multipliers[-1]) in held_out
