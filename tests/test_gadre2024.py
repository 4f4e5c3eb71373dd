"""The analysis half on the paper's released testbed, through the real workflow:
the 17 tasks at t = 10, Table 6's laws, Figure 1's relative errors, the heatmaps,
the per-task predictions (of one task here: every task takes minutes, test_per_task.py
checks them in-process), and reruns limited to what is stale."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import shared_testbed
from tests.workflow import REPO, planned_jobs, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.testbed]

PAPER_17_TASKS = {
    "arc_easy", "bigbench_cs_algorithms", "bigbench_dyck_languages", "bigbench_novel_concepts",
    "bigbench_operators", "bigbench_qa_wikidata", "boolq", "commonsense_qa", "copa", "coqa", "hellaswag",
    "hellaswag_zeroshot", "lambada_openai", "piqa", "pubmed_qa_labeled", "squad", "winograd",
}
DATASETS = ["c4_original", "rpj", "rw_original"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    testbed = shared_testbed("gadre2024")
    workdir = tmp_path_factory.mktemp("gadre2024")
    args = ["--configfile", str(REPO / "configs" / "gadre2024.yaml"), "--config", f"testbed_path={testbed}",
            "per_task={tasks: [piqa]}"]
    snakemake(workdir, *args)
    return workdir, args, workdir / "results" / "gadre2024"


def test_threshold_10_keeps_the_papers_17_tasks(study):
    _, _, results = study
    selection = json.loads((results / "laws" / "tasks_t10.json").read_text())
    assert set(selection["tasks"]) == PAPER_17_TASKS
    assert len(selection["margins"]) == 46


def test_redpajama_laws_match_table_6(study):
    _, _, results = study
    loss_law = json.loads((results / "laws/rpj/c4_val/loss_law.json").read_text())
    error_law = json.loads((results / "laws/rpj/c4_val/error_law_t10.json").read_text())
    assert round(loss_law["E"], 2) == 1.84
    assert round(loss_law["a"]) == 212
    assert round(loss_law["b"]) == 367
    assert round(loss_law["eta"], 3) == 0.136
    assert round(error_law["eps"], 3) == 0.857
    assert round(error_law["k"], 2) == 2.21
    assert round(error_law["gamma"], 3) == 0.715
    for law, names in ((loss_law, "E a b eta"), (error_law, "eps k gamma")):
        for name in names.split():
            low, high = law["intervals"][name]
            assert low <= law[name] <= high


def test_every_dataset_has_both_laws(study):
    _, _, results = study
    for dataset in DATASETS:
        loss_law = json.loads((results / f"laws/{dataset}/c4_val/loss_law.json").read_text())
        assert {"E", "a", "b", "eta"} <= set(loss_law)
        assert len(loss_law["fit_set"]) == 5
        error_law = json.loads((results / f"laws/{dataset}/c4_val/error_law_t10.json").read_text())
        assert {"eps", "k", "gamma"} <= set(error_law)
        assert len(error_law["fit_set"]) == 6


def test_predictions_reproduce_figure_1(study):
    _, _, results = study
    table = pd.read_csv(results / "predictions/rpj/c4_val_t10.csv")
    for column in ["model", "size", "N", "M", "D", "C", "loss", "loss_pred", "loss_rel_err", "err", "err_pred",
                   "err_rel_err", "in_loss_fit", "in_error_fit"]:
        assert column in table.columns
    by_run = table.set_index(["size", "M"])
    assert round(100 * by_run.loc[("1.4B", 640.0), "loss_rel_err"], 1) == 0.7
    assert round(100 * by_run.loc[("6.9B", 20.0), "loss_rel_err"], 1) == 0.7
    assert round(100 * by_run.loc[("1.4B", 640.0), "err_rel_err"], 1) == 3.6
    assert round(100 * by_run.loc[("6.9B", 20.0), "err_rel_err"], 2) == 0.05
    assert by_run["in_loss_fit"].sum() == 5 and by_run["in_error_fit"].sum() == 6
    assert set(table.loc[table["held_out"], "model"]) == set(table.loc[
        table["size"].eq("1.4B") & table["M"].eq(640) | table["size"].eq("6.9B") & table["M"].eq(20), "model"])
    assert table["held_out"].sum() == 2
    targets = table[table["target"]]
    assert set(targets["model"]) == {"70B", "6.9B_M320"}
    assert targets["loss"].isna().all() and targets["loss_pred"].notna().all()
    for law in ("loss", "err", "err_all"):  # the law's mean inside its confidence interval, inside the prediction interval
        assert (targets[f"{law}_pi_lo"] <= targets[f"{law}_ci_lo"]).all()
        assert (targets[f"{law}_ci_lo"] <= targets[f"{law}_pred"]).all()
        assert (targets[f"{law}_pred"] <= targets[f"{law}_ci_hi"]).all()
        assert (targets[f"{law}_ci_hi"] <= targets[f"{law}_pi_hi"]).all()
    assert targets["beyond_backtest"].all()  # 70B and 6.9B at M = 320 lie past every run the backtest predicted


def test_a_held_out_run_in_a_fit_set_is_refused(study):
    from lmscale.analysis import chain
    from lmscale.io import tables
    from lmscale.jobs import Point, PredictJob

    _, _, results = study
    laws = results / "laws" / "rpj" / "c4_val"
    with pytest.raises(ValueError, match=r"held-out run 0.079B at M = 20 is in a fit set"):
        chain.predict(
            tables.read_loss_table(results / "testbed/loss.csv"), tables.read_task_table(results / "testbed/tasks.csv"),
            json.loads((laws / "loss_law.json").read_text()),
            {prefix: json.loads((laws / f"error_law_{name}.json").read_text())
             for prefix, name in (("err", "t10"), ("err_all", "all"))},
            chain.read_pool(results / "backtest/rpj/c4_val_t10.csv"),
            PredictJob("rpj", "c4_val", targets=[], held_out=[Point("0.079B", 20.0)]),
        )


@pytest.mark.parametrize("law", ["loss", "err"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_prediction_intervals_are_calibrated_on_the_runs_outside_the_fit_sets(study, dataset, law):
    """Issue 14's check: 85-100% of the runs outside the fit sets inside their 95% prediction interval,
    each interval set without its run, with a median half-width at most 3x the median error."""
    _, _, results = study
    summary = json.loads((results / f"predictions/{dataset}/c4_val_t10_calibration.json").read_text())
    calibrated = summary["outside_fit_sets"][law]
    assert calibrated["runs"] >= 28
    assert 0.85 <= calibrated["coverage"] <= 1.0
    assert summary["held_out"][law]["coverage"] == 1.0
    if (dataset, law) == ("rpj", "loss"):
        # The one shortfall (docs/uncertainty.md): 4.0x; RedPajama's median error is 0.71% and its
        # 0.079B runs at large M miss by 2% with nothing in N or M to tell them apart.
        assert 3.0 < calibrated["width_to_error"] < 4.5
    else:
        assert calibrated["width_to_error"] <= 3.0


def test_heatmaps_exist_for_every_dataset(study):
    _, _, results = study
    for dataset in DATASETS:
        for name in ("loss_heatmap", "error_heatmap_t10", "loss_vs_compute", "error_vs_loss_t10", "backtest_t10",
                     "calibration_t10"):
            for ext in ("png", "pdf"):
                assert (results / f"figures/{dataset}/c4_val/{name}.{ext}").stat().st_size > 5000


def test_rerun_does_only_what_is_stale(study):
    workdir, args, _ = study
    assert planned_jobs(workdir, *args) == {}
    planned = planned_jobs(workdir, *args, "threshold=20")
    assert planned == {
        "select_tasks": 1, "fit_error": 3, "backtest": 3, "predict": 3, "error_heatmap": 3, "error_vs_loss": 3,
        "backtest_figure": 3, "calibration_figure": 3, "per_task": 3, "per_task_figure": 3, "all": 1,
    }
    preset = yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text())
    preset["figures"]["heatmap_max_percent"] = 10
    restyled = workdir / "restyled.yaml"
    restyled.write_text(yaml.safe_dump(preset))
    assert planned_jobs(workdir, "--configfile", str(restyled), *args[2:]) == {
        "loss_heatmap": 3, "error_heatmap": 3, "all": 1,
    }


def test_per_task_predictions_of_every_dataset_and_only_they_rerun_on_their_settings(study):
    """Each dataset's per-task table, summary and figure; the log's line per task; changing the
    `per_task` block reruns the per-task jobs and their figures, nothing else."""
    workdir, args, results = study
    for dataset in DATASETS:
        table = pd.read_csv(results / f"per_task/{dataset}/c4_val_t10.csv")
        summary = json.loads((results / f"per_task/{dataset}/c4_val_t10.json").read_text())
        assert set(table["task"]) == set(summary["laws"]) == {"piqa"} and summary["laws"]["piqa"]["kept"]
        assert set(table.loc[table["held_out"], "size"]) == ({"6.9B", "1.4B"} if dataset == "rpj" else {"6.9B"})
        assert summary["calibration"]["outside_fit_sets"]["runs"] >= 28
        log = (results / f"logs/predict/{dataset}/c4_val_t10_per_task.log").read_text()
        assert "task piqa (kept): " in log and "inside their 95% prediction interval" in log
        assert (results / f"figures/{dataset}/c4_val/per_task_t10.png").stat().st_size > 5000
    preset = yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text())
    rechosen = workdir / "rechosen.yaml"
    rechosen.write_text(yaml.safe_dump({**preset, "per_task": {"tasks": ["piqa"], "min_signal": 2}}))
    assert planned_jobs(workdir, "--configfile", str(rechosen), "--config", args[3]) == {
        "per_task": 3, "per_task_figure": 3, "all": 1,
    }
