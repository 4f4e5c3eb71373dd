"""Testbed tables given as files (`testbed_format: tables`), through the real workflow: a table
that would bend a law stops the study before any law is written, with one line naming the file,
the row and the column; a folder without tasks.csv is a loss-only study."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from lmscale import laws
from lmscale.jobs import FitLossJob, points
from tests.workflow import snakemake

SIZES = {"s1": 1.0e8, "s2": 2.0e8, "s3": 4.0e8, "s4": 8.0e8, "s5": 1.6e9}
MULTIPLIERS = [10, 20, 40, 80]
TASKS = {"task_a": 0.0, "task_b": 0.03, "task_c": -0.02}  # offsets from the law's average error
LOSS_LAW = {"E": 1.8, "a": 200.0, "b": 350.0, "eta": 0.14}
ERROR_LAW = {"eps": 0.85, "k": 2.2, "gamma": 0.7}


def lab_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A lab's own results in the tidy form: losses and accuracies that follow known laws."""
    models = pd.DataFrame([{"model": f"{size}_M{m}", "dataset": "web", "size": size, "N": N, "D": m * N}
                           for size, N in SIZES.items() for m in MULTIPLIERS])
    models["loss"] = laws.loss_form("gadre").predict(LOSS_LAW, models["N"], models["D"])
    loss = models.assign(valset="val")[["model", "dataset", "size", "N", "D", "valset", "loss"]]
    error = laws.error_law(models["loss"], **ERROR_LAW)
    tasks = pd.concat([models.assign(task=task, acc=1 - error - offset, random_baseline=0.25)
                       for task, offset in TASKS.items()], ignore_index=True)
    return loss, tasks[["model", "dataset", "task", "acc", "random_baseline"]]


def study_config(testbed) -> dict:
    return {
        "study": "lab", "testbed_format": "tables", "testbed_path": str(testbed),
        "datasets": {"web": {}}, "valsets": ["val"], "threshold": 5, "reference_size": "s2",
        "loss_fit_set": [{"size": s, "M": 20} for s in ("s1", "s2", "s3", "s4")] + [{"size": "s1", "M": 80}],
        "error_fit_extra": [{"size": "s5", "M": 20}],
        "held_out": [{"size": "s5", "M": 80}],
        "fit": {"bootstrap": 0}, "figures": {"formats": ["png"]},
    }


def run_study(tmp_path, loss: pd.DataFrame, tasks: pd.DataFrame | None, check: bool = True):
    testbed = tmp_path / "testbed"
    testbed.mkdir()
    loss.to_csv(testbed / "loss.csv", index=False)
    if tasks is not None:
        tasks.to_csv(testbed / "tasks.csv", index=False)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(study_config(testbed)))
    workdir = tmp_path / "work"
    result = snakemake(workdir, "--configfile", str(configfile), check=check)
    return result, workdir / "results" / "lab"


def test_a_lab_study_runs_whole(tmp_path):
    loss, tasks = lab_tables()
    _, results = run_study(tmp_path, loss, tasks)
    loss_law = json.loads((results / "laws/web/val/loss_law.json").read_text())
    assert loss_law["E"] == pytest.approx(LOSS_LAW["E"], rel=1e-3)
    predictions = pd.read_csv(results / "predictions/web/val_t5.csv")
    assert predictions["held_out"].sum() == 1 and predictions["err_pred"].notna().all()


def percent(column):
    def damage(loss, tasks):
        return loss, tasks.assign(**{column: 100 * tasks[column]})
    return damage


def set_cell(table, row, column, value):
    def damage(loss, tasks):
        frame = (loss if table == "loss" else tasks).astype({column: object})
        frame.loc[row, column] = value
        return (frame, tasks) if table == "loss" else (loss, frame)
    return damage


def repeat_row(table, row):
    def damage(loss, tasks):
        frame = loss if table == "loss" else tasks
        frame = pd.concat([frame, frame.loc[[row]]], ignore_index=True)
        return (frame, tasks) if table == "loss" else (loss, frame)
    return damage


def drop_tasks(rows):
    def damage(loss, tasks):
        return loss, tasks[~rows(tasks)]
    return damage


def wrong_multiplier(loss, tasks):
    loss = loss.assign(M=loss["D"] / loss["N"])
    loss.loc[5, "M"] = 2 * loss.loc[5, "M"]
    return loss, tasks


def one_name_two_sizes(loss, tasks):
    other = loss.loc[[0]].assign(size="s2", N=SIZES["s2"], D=10 * SIZES["s2"], valset="other")
    return pd.concat([loss, other], ignore_index=True), tasks


# Each probe of issue #17: the damage, the file, the row and column the message must name.
BAD_TABLES = {
    "accuracies in percent": (percent("acc"), "tasks.csv", "row 1 ", "column 'acc'", "looks like percent"),
    "baselines in percent": (percent("random_baseline"), "tasks.csv", "row 1 ", "column 'random_baseline'",
                             "looks like percent"),
    "an accuracy of 4.2": (set_cell("tasks", 7, "acc", 4.2), "tasks.csv", "row 8 ", "column 'acc'", "outside [0, 1]"),
    "an accuracy of n/a": (set_cell("tasks", 7, "acc", "n/a"), "tasks.csv", "row 8 ", "column 'acc'", "no value"),
    "a duplicated task row": (repeat_row("tasks", 4), "tasks.csv", "row 61 ", "column 'task'", "repeats row 5"),
    "N = -5": (set_cell("loss", 3, "N", -5), "loss.csv", "row 4 ", "column 'N'", "not a positive number"),
    "a model with no task rows": (drop_tasks(lambda t: t["model"] == "s3_M40"), "tasks.csv", "model 's3_M40'",
                                  "column 'model'", "no row"),
    "a model missing one task": (drop_tasks(lambda t: (t["model"] == "s3_M40") & (t["task"] == "task_b")),
                                 "tasks.csv", "row 11 ", "column 'task'", "2 of the 3 tasks"),
    "a duplicated loss row": (repeat_row("loss", 2), "loss.csv", "row 21 ", "column 'valset'", "repeats row 3"),
    "an M that disagrees with D/N": (wrong_multiplier, "loss.csv", "row 6 ", "column 'M'", "disagrees with D / N"),
    "one model name for two sizes": (one_name_two_sizes, "loss.csv", "row 21 ", "column 'size'",
                                     "a model name is one run"),
    "a loss that is not a number": (set_cell("loss", 2, "loss", "abc"), "loss.csv", "row 3 ", "column 'loss'",
                                    "'abc' is not a number"),
}


@pytest.mark.parametrize("probe", BAD_TABLES)
def test_a_bad_table_stops_the_study_before_any_law(tmp_path, probe):
    damage, file, row, column, problem = BAD_TABLES[probe]
    loss, tasks = damage(*lab_tables())
    result, results = run_study(tmp_path, loss, tasks, check=False)
    assert result.returncode != 0
    assert not (results / "laws").exists()
    message = (results / "logs" / "import_testbed.log").read_text().strip().splitlines()[-1]
    assert "Traceback" not in message
    for part in (f"testbed/{file}", row, column, problem):
        assert part in message, message


def test_a_bad_table_given_to_a_stage_is_refused_there(tmp_path):
    """A table edited after the import (or written by hand) is checked where a stage reads it."""
    loss, _ = repeat_row("loss", 2)(*lab_tables())
    loss.to_csv(tmp_path / "loss.csv", index=False)
    job = FitLossJob("web", "val", points(study_config(tmp_path)["loss_fit_set"]), "gadre", "least_squares", 1e-3,
                     0, 0)
    result = subprocess.run(
        [sys.executable, "-m", "lmscale.cli", "fit-loss", "--job", job.to_json(), "--loss-table",
         str(tmp_path / "loss.csv"), "--out", str(tmp_path / "loss_law.json")], capture_output=True, text=True)
    assert result.returncode == 1 and not (tmp_path / "loss_law.json").exists()
    assert f"{tmp_path / 'loss.csv'}: row 21 (model 's1_M40', valset 'val'), column 'valset': repeats row 3" \
        in result.stderr


def test_a_study_without_tasks_fits_and_draws_the_loss_alone(tmp_path):
    loss, _ = lab_tables()
    result, results = run_study(tmp_path, loss, None)
    assert "loss-only study" in result.stderr and "error laws and the error figures are skipped" in result.stderr
    law = json.loads((results / "laws/web/val/loss_law.json").read_text())
    assert law["E"] == pytest.approx(LOSS_LAW["E"], rel=1e-3)
    predictions = pd.read_csv(results / "predictions/web/val_loss.csv")
    assert len(predictions) == len(loss) and "err_pred" not in predictions.columns
    assert predictions.loc[predictions["held_out"], "model"].tolist() == ["s5_M80"]
    for figure in ("loss_heatmap", "loss_vs_compute"):
        assert (results / f"figures/web/val/{figure}.png").stat().st_size > 5000
    assert not list(results.glob("laws/**/error_law*")) and not list(results.glob("laws/tasks_*"))
    assert "loss-only study" in (results / "logs/predict/web/val_loss.log").read_text()


def chinchilla_tables(points: pd.DataFrame) -> pd.DataFrame:
    """Epoch's extraction of Chinchilla's runs as a loss table: one model per point, D = C / 6N."""
    N = points["Model Size"].to_numpy(float)
    return pd.DataFrame({
        "model": [f"chinchilla_{i:03d}" for i in range(len(points))], "dataset": "chinchilla",
        "size": [f"{n / 1e6:.0f}M" for n in N], "N": N, "D": points["Training FLOP"].to_numpy(float) / (6 * N),
        "valset": "massivetext", "loss": points["loss"].to_numpy(float),
    })


def test_chinchillas_published_losses_are_a_loss_only_study(tmp_path, chinchilla_epoch2024):
    """Chinchilla's 245 runs (Epoch AI's extraction) have losses only. Fitted as Epoch did (the five
    highest losses left out, Huber on log loss), the workflow gives Epoch's law."""
    loss = chinchilla_tables(pd.read_csv(chinchilla_epoch2024 / "points.csv"))
    testbed = tmp_path / "chinchilla"
    testbed.mkdir()
    loss.to_csv(testbed / "loss.csv", index=False)
    fit = loss.sort_values("loss").iloc[:-5]
    config = {
        "study": "chinchilla", "testbed_format": "tables", "testbed_path": str(testbed),
        "datasets": {"chinchilla": {}}, "valsets": ["massivetext"],
        "loss_fit_set": [{"size": s, "M": float(d / n)} for s, n, d in zip(fit["size"], fit["N"], fit["D"])],
        "fit": {"form": "chinchilla", "method": "huber", "bootstrap": 0}, "figures": {"formats": ["png"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path / "work", "--configfile", str(tmp_path / "config.yaml"))
    results = tmp_path / "work" / "results" / "chinchilla"
    law = json.loads((results / "laws/chinchilla/massivetext/loss_law.json").read_text())
    epoch = {"E": 1.817, "A": 477.8, "B": 2143.9, "alpha": 0.347, "beta": 0.367}
    assert {name: law[name] for name in epoch} == pytest.approx(epoch, rel=0.01)
    predictions = pd.read_csv(results / "predictions/chinchilla/massivetext_loss.csv")
    assert len(predictions) == 245 and np.isfinite(predictions["loss_pred"]).all()
    for figure in ("loss_heatmap", "loss_vs_compute"):
        assert (results / f"figures/chinchilla/massivetext/{figure}.png").exists()
