"""The smoke study end to end through real Snakemake: every model on the offline task suite,
the testbed tables, the laws and predictions, and a second run with nothing to do."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from lmscale.evaluation.offline_tasks import offline_suite
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
    for law in ("loss", "err", "err_all"):  # a prediction interval holds the confidence interval
        assert (table[f"{law}_pi_lo"] <= table[f"{law}_ci_lo"]).all() and (table[f"{law}_ci_hi"] <= table[
            f"{law}_pi_hi"]).all()
        assert (table[f"{law}_pi_hi"] > table[f"{law}_pi_lo"]).all()


def test_backtest_refits_without_the_largest_size_and_predicts_it(smoke_study):
    """Every smoke run is in the fit sets, so the rollout alone checks the laws: s3 left out, its runs predicted."""
    import json

    config = smoke_study["config"]
    tag = f"{config['valsets'][0]}_t{config['threshold']:g}"
    backtest = pd.read_csv(smoke_study["results"] / "backtest" / "stdlib" / f"{tag}.csv")
    summary = json.loads((smoke_study["results"] / "backtest" / "stdlib" / f"{tag}.json").read_text())
    # Step 0 is the laws as fitted; s1 alone (2 runs) is too few for the loss law's parameters.
    assert [step["left_out"] for step in summary["steps"]] == [[], ["s3"]]
    assert set(backtest.loc[backtest["law"] == "loss", "model"]) == {"s3_M5", "s3_M10"}
    assert backtest["left_out_fit_run"].all() and (backtest["C_above"] > 0).all()
    assert summary["model_error"]["loss"]["residuals"] == 2
    calibration = json.loads((smoke_study["results"] / "predictions" / "stdlib" / f"{tag}_calibration.json").read_text())
    assert calibration["outside_fit_sets"]["loss"]["runs"] == 0  # nothing outside the fit sets to check


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
        {"dataset": "stdlib", "size": "s1", "mult": "20", "replica": ""}  # the study's own seed
    ]

    assert planned_jobs(workdir, *args, "--config", f"threshold={config['threshold'] + 5}") == {
        "select_tasks": 1, "fit_error": 1, "backtest": 1, "predict": 1, "error_heatmap": 1, "error_vs_loss": 1,
        "backtest_figure": 1, "calibration_figure": 1, "per_task": 1, "per_task_figure": 1, "all": 1,
    }

    restyled = {**config, "figures": {"heatmap_max_percent": 7}}
    restyled_file = workdir / "restyled.yaml"
    restyled_file.write_text(yaml.safe_dump(restyled))
    assert planned_jobs(workdir, "--configfile", str(restyled_file)) == {
        "loss_heatmap": 1, "error_heatmap": 1, "all": 1,
    }

    # How jobs run (log cadence, devices, the cache) is no reason to redo them.
    operational = {**config, "train": {**config["train"], "log_every": 5, "device": "cpu"},
                   "tasks": {**config["tasks"], "device": "cpu"}, "hf_cache": str(workdir / "hf")}
    operational_file = workdir / "operational.yaml"
    operational_file.write_text(yaml.safe_dump(operational))
    assert planned_jobs(workdir, "--configfile", str(operational_file)) == {}


def test_replicate_seeds_train_only_the_fit_runs_again_and_the_laws_use_them(smoke_study, tmp_path):
    """`replicate_seeds` trains each fit-set run once more per seed, leaves the study's own runs
    alone, and fits both laws to every replicate."""
    import json
    import shutil

    # A copy of the finished study (mtimes and Snakemake's records kept), so the other tests
    # still see the study as the smoke config left it.
    workdir = tmp_path / "smoke"
    shutil.copytree(smoke_study["workdir"], workdir, symlinks=True)
    # The fit sets cut to s1 and s2 (four runs, as many as the loss law has parameters): fewer
    # replicates to train, the same behaviour.
    small_fit_set = [point for point in smoke_study["config"]["loss_fit_set"] if point["size"] != "s3"]
    config = {**smoke_study["config"], "replicate_seeds": [1], "loss_fit_set": small_fit_set}
    configfile = workdir / "replicated.yaml"
    configfile.write_text(yaml.safe_dump(config))
    fit_runs = sorted(f"{p['size']}_M{p['M']:g}" for p in config["loss_fit_set"] + config["error_fit_extra"])

    planned = planned_jobs(workdir, "--configfile", str(configfile))
    assert planned["train"] == planned["eval_loss"] == planned["eval_tasks"] == len(fit_runs)
    assert sorted(f"{w['size']}_M{w['mult']}{w['replica']}" for w in
                  planned_wildcards(workdir, "train", "--configfile", str(configfile))) == [
        f"{run}_seed1" for run in fit_runs]

    # Only the files read below: the predictions, backtest, per-task laws and figures downstream of
    # them are the smoke study's own tests' business (and would double this test's time).
    results = workdir / "results" / config["study"]
    valset, threshold = config["valsets"][0], config["threshold"]
    laws = results / "laws" / "stdlib" / valset
    targets = [str(path.relative_to(workdir)) for path in
               (laws / "loss_law.json", laws / f"error_law_t{threshold:g}.json", results / "testbed" / "tasks.csv")]
    snakemake(workdir, *targets, "--configfile", str(configfile))
    replicate = json.loads((results / "models" / "stdlib" / f"{fit_runs[0]}_seed1" / "run.json").read_text())
    own = json.loads((results / "models" / "stdlib" / fit_runs[0] / "run.json").read_text())
    assert replicate["seed"] == 1 and replicate["model"] == f"{fit_runs[0]}_seed1"
    assert replicate["D"] == own["D"] and replicate["fingerprint"] != own["fingerprint"]
    loss_law = json.loads((laws / "loss_law.json").read_text())
    assert sorted(point["model"] for point in loss_law["fit_set"]) == sorted(
        fit_runs + [f"{run}_seed1" for run in fit_runs])
    losses = {point["model"]: point["loss"] for point in loss_law["fit_set"]}
    assert all(losses[run] != losses[f"{run}_seed1"] for run in fit_runs)  # another seed, another model
    error_law = json.loads((laws / f"error_law_t{threshold:g}.json").read_text())
    assert sorted(point["model"] for point in error_law["fit_set"]) == sorted(
        fit_runs + [f"{run}_seed1" for run in fit_runs])
    tasks = pd.read_csv(results / "testbed" / "tasks.csv")
    assert {f"{run}_seed1" for run in fit_runs} <= set(tasks["model"])
    assert planned_jobs(workdir, *targets, "--configfile", str(configfile)) == {}
