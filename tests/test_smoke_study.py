"""The smoke study end to end through real Snakemake: every model on the offline task suite,
the testbed tables, the laws and predictions, and a second run with nothing to do."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from lmscale.task_suite import offline_suite
from tests.workflow import planned_jobs, planned_wildcards, snakemake

pytestmark = pytest.mark.slow


def test_tasks_table_holds_one_row_per_model_and_task(smoke_study):
    tasks = pd.read_csv(smoke_study["results"] / "testbed" / "tasks.csv")
    models = {run.name for run in smoke_study["runs"]}
    assert set(tasks["model"]) == models
    assert set(tasks["task"]) == set(offline_suite())
    assert len(tasks) == len(models) * len(offline_suite())
    assert not tasks.duplicated(["model", "task"]).any()
    assert tasks["acc"].between(0, 1).all() and tasks["random_baseline"].between(0, 1).all()


def test_loss_table_holds_one_row_per_model_and_validation_set(smoke_study):
    loss = pd.read_csv(smoke_study["results"] / "testbed" / "loss.csv")
    assert len(loss) == len(smoke_study["runs"]) * len(smoke_study["config"]["validation_sets"])
    assert (loss["loss_lo"] < loss["loss"]).all() and (loss["loss"] < loss["loss_hi"]).all()
    assert (loss["C"] == 6 * loss["N"] * loss["D"]).all()


def test_predictions_cover_every_model(smoke_study):
    config = smoke_study["config"]
    valset = config["valsets"][0]
    table = pd.read_csv(smoke_study["results"] / "predictions" / "stdlib" / f"{valset}_t{config['threshold']:g}.csv")
    assert set(table["model"]) == {run.name for run in smoke_study["runs"]}
    assert table["loss_pred"].notna().all() and table["err_pred"].notna().all()
    # Six fit points, four parameters: the law fits the smoke grid to a few percent.
    assert table["loss_rel_err"].max() < 0.05


def test_second_run_has_nothing_to_do_and_lint_is_clean(smoke_study):
    args = ["--configfile", str(smoke_study["configfile"])]
    assert planned_jobs(smoke_study["workdir"], *args) == {}
    lint = snakemake(smoke_study["workdir"], "--lint", *args, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_rerun_does_only_what_is_stale(smoke_study):
    """A new multiplier trains only its runs; a new t redoes selection, error law, predictions and
    figures; a plot setting redraws only the figures it touches."""
    workdir, config = smoke_study["workdir"], smoke_study["config"]
    args = ["--configfile", str(smoke_study["configfile"])]

    grown = {**config, "grid": [*config["grid"], {"sizes": ["s1"], "multipliers": [20]}]}
    grown_file = workdir / "grown.yaml"
    grown_file.write_text(yaml.safe_dump(grown))
    planned = planned_jobs(workdir, "--configfile", str(grown_file))
    assert planned["train"] == planned["eval_loss"] == planned["eval_tasks"] == 1
    assert not {"corpus", "tokenizer", "tokenize", "task_suite"} & set(planned)
    assert planned_wildcards(workdir, "train", "--configfile", str(grown_file)) == [
        {"dataset": "stdlib", "size": "s1", "mult": "20"}
    ]

    assert planned_jobs(workdir, *args, "--config", f"threshold={config['threshold'] + 5}") == {
        "select_tasks": 1, "fit_error": 1, "predict": 1, "error_heatmap": 1, "error_vs_loss": 1, "all": 1,
    }

    restyled = {**config, "figures": {"heatmap_max_percent": 7}}
    restyled_file = workdir / "restyled.yaml"
    restyled_file.write_text(yaml.safe_dump(restyled))
    assert planned_jobs(workdir, "--configfile", str(restyled_file)) == {
        "loss_heatmap": 1, "error_heatmap": 1, "all": 1,
    }
