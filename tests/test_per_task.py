"""Per-task predictions: each task's error law fitted on its own and chained from the loss law, the
tasks whose law does not fit listed with why, and intervals that hold per task: on a synthetic study
with known laws (fast), and on the paper's testbed (the must-show of issue 24)."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from lmscale import cli
from lmscale.analysis import selection, task_laws
from lmscale.analysis.fits import fit_loss
from lmscale.figures import task_panels
from lmscale.io import importers, tables
from lmscale.io.files import atomic_write_json, read_json
from lmscale.jobs import BacktestJob, FigureJob, FitErrorJob, FitLossJob, PerTaskJob, Point
from lmscale.laws import forms
from tests.conftest import shared_testbed
from tests.workflow import REPO, validated_config

SIZES = {f"s{i}": N for i, N in enumerate(np.geomspace(1e7, 2e9, 6), start=1)}
MULTIPLIERS = (5, 10, 20, 40, 80, 160, 320)
LOSS_LAW = {"E": 1.84, "a": 212.0, "b": 367.0, "eta": 0.136}
# Two tasks whose error follows Eq. 5 (from 0.74 and 0.55 at the smallest run to 0.38 and 0.22 at the
# largest), and one at chance whatever the loss: no law of it can hold.
TASK_LAWS = {"rises": {"eps": 0.76, "k": 5.4, "gamma": 1.0}, "steep": {"eps": 0.55, "k": 12.0, "gamma": 1.5}}
TASK_NOISE = 0.006  # one standard deviation of a task's error rate (a task of about 6,000 questions)


def synthetic_study(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The loss and tasks tables of a 6 x 7 grid drawn from the laws: each loss off by 1%, each
    error rate by TASK_NOISE."""
    rng = np.random.default_rng(seed)
    loss_rows, task_rows = [], []
    for size, N in SIZES.items():
        for M in MULTIPLIERS:
            D = M * N
            run = {"model": f"{size}_M{M}", "dataset": "web", "size": size, "N": N, "D": D, "M": float(M),
                   "C": 6 * N * D}
            true_loss = forms.gadre_loss(6 * N * D, M, **LOSS_LAW)
            loss_rows.append({**run, "valset": "val", "loss": true_loss * np.exp(0.01 * rng.standard_normal()),
                              "loss_lo": np.nan, "loss_hi": np.nan})
            errors = {task: forms.error_law(true_loss, **law) for task, law in TASK_LAWS.items()}
            errors["chance"] = 0.75
            for task, err in errors.items():
                acc = 1 - (err + TASK_NOISE * rng.standard_normal())
                task_rows.append({**run, "task": task, "acc": acc, "random_baseline": 0.25})
    return pd.DataFrame(loss_rows), pd.DataFrame(task_rows)


def synthetic_job(bootstrap: int) -> PerTaskJob:
    """The paper's design: four sizes at M = 20 and the smallest at M = 320 for the loss law, the fifth
    size at M = 20 added for the error laws, the largest held out; a target beyond it, a budget (its
    run resolved by the loss law) and an error goal (the average's: not predicted per task)."""
    loss_fit_set = [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 320.0)]
    loss_job = FitLossJob("web", "val", loss_fit_set, "gadre", "least_squares", 1e-3, bootstrap, 0)
    error_job = FitErrorJob("web", "val", loss_fit_set + [Point("s5", 20.0)], False, bootstrap, 0)
    return PerTaskJob(BacktestJob(loss_job, error_job, [Point("s6", 20.0)], 3),
                      [{"name": "big", "N": 1e11, "M": 20}, {"name": "budget", "C": 1.0e24},
                       {"name": "goal", "err": 0.3}], None, 3.0)


def run_synthetic(seed: int, bootstrap: int = 40):
    loss, tasks = synthetic_study(seed)
    job = synthetic_job(bootstrap)
    return task_laws.per_task(loss, tasks, fit_loss(loss, job.backtest.loss), job, ["rises"])


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    """`lmscale per-task` run in-process on the synthetic study's files: the table, the summary, the
    log's lines and the folder."""
    folder = tmp_path_factory.mktemp("per_task")
    loss, tasks = synthetic_study(0)
    job = synthetic_job(40)
    tables.write_csv(loss, folder / "loss.csv")
    tables.write_csv(tasks, folder / "tasks.csv")
    atomic_write_json(folder / "loss_law.json", fit_loss(loss, job.backtest.loss).to_json())
    atomic_write_json(folder / "tasks_t10.json", {"tasks": ["rises"]})
    logger, lines = logging.getLogger("lmscale.analysis"), Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    try:
        assert cli.main(["per-task", "--job", job.to_json(), "--loss-table", str(folder / "loss.csv"),
                         "--tasks-table", str(folder / "tasks.csv"), "--loss-law", str(folder / "loss_law.json"),
                         "--selection", str(folder / "tasks_t10.json"), "--out", str(folder / "per_task.csv"),
                         "--summary", str(folder / "per_task.json")]) == 0
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    return tables.read_csv(folder / "per_task.csv"), read_json(folder / "per_task.json"), lines.lines, folder


@pytest.fixture(scope="module")
def synthetic(synthetic_files):
    return synthetic_files[:2]


def test_each_task_law_recovers_the_law_it_was_drawn_from(synthetic):
    """Within the error fit set's range of losses each law's prediction lies within 0.01 of the law it
    was drawn from, and the held-out run's true error inside its prediction interval; every prediction
    is the task's law at the loss law's prediction (the chain)."""
    table, summary = synthetic
    assert set(summary["laws"]) == {"rises", "steep"}
    for task, truth in TASK_LAWS.items():
        law = summary["laws"][task]
        rows = table[table["task"] == task]
        inside_range = rows[rows["loss_pred"] >= min(point["loss"] for point in law["fit_set"])]
        assert len(inside_range) >= 30
        assert np.abs(inside_range["err_pred"] - forms.error_law(inside_range["loss_pred"], **truth)).max() < 0.01
        held_out = rows[rows["held_out"]].iloc[0]
        assert held_out["err_pi_lo"] < forms.error_law(held_out["loss_pred"], **truth) < held_out["err_pi_hi"]
        np.testing.assert_allclose(rows["err_pred"], forms.error_law(rows["loss_pred"], **law["params"]))
        assert law["bootstrap"]["kept"] >= 36
    assert summary["laws"]["rises"]["kept"] and not summary["laws"]["steep"]["kept"]


def test_a_task_without_a_law_is_listed_with_its_reason(synthetic):
    table, summary = synthetic
    assert set(summary["unfit"]) == {"chance"}
    reason = summary["unfit"]["chance"]["reason"]
    assert reason.startswith(("no signal", "not Eq. 5's shape")), reason
    assert "chance" not in set(table["task"])


def test_the_table_has_one_row_per_model_and_task_with_both_intervals_and_its_flags(synthetic):
    table, summary = synthetic
    assert list(table.columns) == task_laws.COLUMNS
    assert len(table) == 2 * (len(SIZES) * len(MULTIPLIERS) + 2)  # two targets placed, the error goal not
    assert not table.duplicated(["model", "task"]).any()
    measured = table[~table["target"]]
    holds = measured[~measured["below_zero"]]
    assert (holds["err_pi_lo"] < holds["err_pred"]).all() and (holds["err_pred"] < holds["err_pi_hi"]).all()
    assert (holds["err_pi_lo"] <= holds["err_ci_lo"].clip(lower=0)).all()
    assert (holds["err_ci_hi"].clip(upper=1) <= holds["err_pi_hi"]).all() and (holds["err_pi_hi"] <= 1).all()
    assert set(measured.loc[measured["in_fit_set"], "model"]) == {"s1_M20", "s2_M20", "s3_M20", "s4_M20", "s1_M320",
                                                                  "s5_M20"}
    assert set(measured.loc[measured["held_out"], "model"]) == {"s6_M20"}
    # Each run whose residuals the backtest saw is checked without them (held-out runs it never sees).
    assert measured.loc[~measured["in_fit_set"] & ~measured["held_out"], "pi_left_out"].all()
    target = table[table["target"]]
    assert target["err"].isna().all() and target["beyond_backtest"].all()
    np.testing.assert_allclose(target.loc[target["model"] == "budget", "C"], 1.0e24, rtol=1e-9)
    # Eq. 5 falls without bound: where a law reaches zero it does not hold, and no interval is drawn.
    assert target["below_zero"].any()
    assert target["err_pi_hi"].isna().equals(target["below_zero"])
    np.testing.assert_allclose(measured["rel_err"], (measured["err_pred"] - measured["err"]).abs() / measured["err"])
    assert summary["calibration"]["outside_fit_sets"]["runs"] == 2 * (len(SIZES) * len(MULTIPLIERS) - 6)


def test_per_task_intervals_cover_runs_drawn_from_the_laws(synthetic):
    """Over three draws of the noise (the fixture's and two more, with fewer bootstrap refits), 85-100%
    of the (task, run) pairs outside the fit sets fall inside their 95% prediction interval, each
    interval set without its own run."""
    summaries = [synthetic[1]] + [run_synthetic(seed, bootstrap=20)[1] for seed in (1, 2)]
    inside, pairs = 0, 0
    for summary in summaries:
        calibrated = summary["calibration"]["outside_fit_sets"]
        inside += round(calibrated["coverage"] * calibrated["runs"])
        pairs += calibrated["runs"]
    assert 0.85 <= inside / pairs <= 1.0


def test_the_log_has_a_line_per_task_and_one_per_held_out_run(synthetic_files):
    """The predict log's per-task part: each task's calibration (or why it has no law), the pooled
    calibration, each held-out (task, run) with its interval; the target it cannot place, named."""
    _, summary, lines, _ = synthetic_files
    for task in ("rises", "steep"):
        [line] = [line for line in lines if line.startswith(f"task {task}")]
        calibrated = summary["calibration"]["per_task"][task]
        assert (f"{calibrated['runs']} runs outside the fit sets, {100 * calibrated['coverage']:.0f}% inside their "
                f"95% prediction interval, median half-width" in line), line
        assert ("(kept)" in line) == (task == "rises")
    assert [line for line in lines if line.startswith("task chance: no law: ")]
    assert len([line for line in lines if line.startswith("per-task, ")]) == 3
    assert len([line for line in lines if line.startswith("held out s6_M20, ")]) == 2
    assert any(line.startswith("target goal: an error goal of the kept tasks' average") for line in lines)


def test_a_task_the_table_lacks_is_named_with_the_tasks_there_are():
    loss, tasks = synthetic_study(0)
    job = replace(synthetic_job(0), tasks=["chanse", "rises"])
    with pytest.raises(ValueError, match=r"per_task.tasks names 'chanse', which the tasks table lacks \(its "
                                         r"tasks: chance, rises, steep\)"):
        task_laws.fit_task_laws(loss, tasks, job, ["rises"])


def test_the_figure_kind_draws_a_panel_per_task(synthetic_files, tmp_path):
    """`lmscale figure` of kind per-task, as the per_task_figure rule runs it: a file per format; a
    panel per task with a law."""
    table, summary, _, folder = synthetic_files
    job = FigureJob.from_config(validated_config(), "per-task", "web", "val")
    outputs = [tmp_path / "per_task_t10.png", tmp_path / "per_task_t10.pdf"]
    assert cli.main(["figure", "--job", job.to_json(), "--inputs", str(folder / "per_task.csv"),
                     str(folder / "per_task.json"), "--out", *map(str, outputs)]) == 0
    assert all(path.stat().st_size > 10_000 for path in outputs)
    figure = task_panels.draw(folder / "per_task.csv", folder / "per_task.json", "web", "val")
    assert len([ax for ax in figure.axes if ax.has_data()]) == len(summary["laws"])


def test_the_per_task_block_reaches_its_job_and_nothing_else():
    """`per_task` (defaults in the schema) is the per-task job's, beside the backtest's job and the
    targets; no other job reads it, so changing it reruns only the per-task job and its figure."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert set(schema["properties"]["per_task"]["properties"]) == {"tasks", "min_signal"}
    default = validated_config()
    job = PerTaskJob.from_config(default, "stdlib", "heldout", "t10")
    assert (job.tasks, job.min_signal) == (None, 3.0)
    assert job.backtest == BacktestJob.from_config(default, "stdlib", "heldout", "t10")
    chosen = validated_config({"per_task": {"tasks": ["code_next_lexeme"], "min_signal": 2},
                               "targets": [{"name": "big", "N": 1e9, "M": 20}]})
    job = PerTaskJob.from_config(chosen, "stdlib", "heldout", "t10")
    assert (job.tasks, job.min_signal, job.targets) == (["code_next_lexeme"], 2.0, [{"name": "big", "N": 1e9, "M": 20}])
    assert PerTaskJob.from_json(job.to_json()) == job
    assert BacktestJob.from_config(chosen, "stdlib", "heldout", "t10") == BacktestJob.from_config(
        default, "stdlib", "heldout", "t10")


# ---------------------------------------------------------------- the paper's testbed

PAPER_DATASETS = ["c4_original", "rpj", "rw_original"]
PAPER_BOOTSTRAP = 50  # a quarter of the preset's draws: the coverage and widths move by a point or two


def paper_per_task(dataset: str):
    """The per-task predictions of the kept tasks on one dataset of the published testbed, as the
    gadre2024 preset sets them up (its fit sets, held-out runs and targets, the tasks kept at t = 10)."""
    config = validated_config(yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text()))
    loss, tasks = importers.import_gadre2024(shared_testbed("gadre2024"), PAPER_DATASETS, config["valsets"],
                                            config["size_labels"])
    kept = selection.select_tasks(tasks, config["reference_size"], config["threshold"])["tasks"]  # over every dataset
    paper = BacktestJob.from_config(config, dataset, "c4_val", "t10")
    job = replace(paper, loss=replace(paper.loss, bootstrap=PAPER_BOOTSTRAP),
                  error=replace(paper.error, bootstrap=PAPER_BOOTSTRAP))
    loss_law = fit_loss(loss, job.loss)
    per_task_job = replace(PerTaskJob.from_config(config, dataset, "c4_val", "t10"), backtest=job, tasks=kept)
    return task_laws.per_task(loss, tasks, loss_law, per_task_job, kept)


@pytest.mark.slow
@pytest.mark.testbed
def test_per_task_intervals_hold_on_the_papers_testbed():
    """Issue 24's first must-show, per dataset: every kept task predicted, or listed with why its law
    does not fit; the per-task prediction intervals cover 85-100% of the (task, run) pairs outside the
    fit sets, each set without its own run, at a median half-width of at most 3x the median error."""
    shared_testbed("gadre2024")
    with ProcessPoolExecutor(max_workers=len(PAPER_DATASETS)) as pool:
        results = dict(zip(PAPER_DATASETS, pool.map(paper_per_task, PAPER_DATASETS)))
    for dataset, (table, summary) in results.items():
        kept = set(summary["kept"])
        assert len(kept) == 17
        assert kept == set(summary["laws"]) | set(summary["unfit"])
        # commonsense_qa's error rises with the loss falling on two datasets: no law of Eq. 5's shape.
        assert set(summary["unfit"]) <= {"commonsense_qa"}, summary["unfit"]
        assert all(why["reason"] for why in summary["unfit"].values())
        assert set(table["task"]) == set(summary["laws"])
        calibrated = summary["calibration"]["outside_fit_sets"]
        assert calibrated["runs"] >= 28 * len(summary["laws"])
        assert 0.85 <= calibrated["coverage"] <= 1.0, (dataset, calibrated)
        assert calibrated["median_half_width"] <= 3 * calibrated["median_relative_error"], (dataset, calibrated)
        held_out = table[table["held_out"]]
        assert set(held_out["size"]) == ({"6.9B", "1.4B"} if dataset == "rpj" else {"6.9B"})
