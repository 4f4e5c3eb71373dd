"""The testbed tables (lmscale.io.tables): collected from a trained study's records, checked, and averaged
into each model's error. Tables a person wrote, refused line by line: test_tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lmscale.analysis import collect
from lmscale.config import Point
from lmscale.io import importers, tables
from tests.conftest import RELEASE_RUNS


def write_records(folder, runs: dict[str, float], losses: dict[str, float], accuracies: dict[str, dict]) -> dict:
    """run.json, a loss evaluation and a task evaluation per model, as the train and evaluation stages write them."""
    files = {"runs": [], "loss_evals": [], "task_evals": []}
    for model, N in runs.items():
        size, M = model.split("_M")
        record = {"model": model, "dataset": "web", "size": size, "N": N, "D": float(M) * N, "M": float(M),
                  "C": 6 * N * float(M) * N}
        for kind, extra in (("runs", {}), ("loss_evals", {"valset": "val", "loss": losses[model]}),
                            ("task_evals", {"tasks": {task: {"acc": acc, "random_baseline": 0.25}
                                                      for task, acc in accuracies[model].items()}})):
            path = folder / kind / f"{model}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**record, **extra}))
            files[kind].append(str(path))
    return files


def test_collect_makes_the_tables_of_a_trained_study(tmp_path):
    files = write_records(tmp_path, {"s1_M20": 1e6, "s2_M20": 4e6}, {"s1_M20": 3.5, "s2_M20": 3.1},
                          {"s1_M20": {"a": 0.3, "b": 0.5}, "s2_M20": {"a": 0.4, "b": 0.7}})
    collect.collect(files["runs"], files["loss_evals"], files["task_evals"], tmp_path / "loss.csv",
                    tmp_path / "tasks.csv")
    loss, tasks = tables.read_tables(tmp_path / "loss.csv", tmp_path / "tasks.csv")
    assert loss[["model", "size", "N", "M", "loss"]].values.tolist() == [["s1_M20", "s1", 1e6, 20.0, 3.5],
                                                                         ["s2_M20", "s2", 4e6, 20.0, 3.1]]
    assert loss["C"].tolist() == [6 * 1e6 * 20e6, 6 * 4e6 * 80e6]
    errors = tables.average_error(tasks).set_index("model")["err"]
    assert errors.to_dict() == pytest.approx({"s1_M20": 0.6, "s2_M20": 0.45})
    assert tables.average_error(tasks, ["b"]).set_index("model")["err"].to_dict() == pytest.approx(
        {"s1_M20": 0.5, "s2_M20": 0.3})


def test_an_evaluation_of_a_model_without_its_run_is_named(tmp_path):
    files = write_records(tmp_path, {"s1_M20": 1e6}, {"s1_M20": 3.5}, {"s1_M20": {"a": 0.3}})
    (tmp_path / "runs" / "s1_M20.json").write_text(json.dumps({"model": "other", "dataset": "web", "size": "s1",
                                                               "N": 1e6, "D": 2e7, "M": 20.0, "C": 1.2e14}))
    with pytest.raises(ValueError, match=r"loss_evals/s1_M20.json: no run.json for model 's1_M20' of dataset 'web'"):
        collect.collect(files["runs"], files["loss_evals"], [], tmp_path / "loss.csv", tmp_path / "tasks.csv")
    assert not (tmp_path / "loss.csv").exists()


def test_runs_at_picks_a_fit_set_in_its_order_and_names_a_missing_run():
    table = pd.DataFrame({"dataset": "web", "size": ["s1", "s1", "s2"], "M": [20.0, 80.0, 20.0],
                          "model": ["a", "b", "c"]})
    assert tables.runs_at(table, "web", [Point("s2", 20), Point("s1", 80)], "fit set")["model"].tolist() == ["c", "b"]
    with pytest.raises(ValueError, match=r"fit set: no run of size 's2' at M = 80 in dataset 'web'; runs present: "
                                         r"s1@M20, s1@M80, s2@M20"):
        tables.runs_at(table, "web", [Point("s2", 80)], "fit set")


@pytest.mark.testbed
def test_average_error_refuses_models_missing_tasks(small_release):
    _, tasks = importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])
    tasks = tasks[~((tasks["model"] == RELEASE_RUNS[0]) & (tasks["task"] == "copa"))]
    with pytest.raises(ValueError, match=f"model '{RELEASE_RUNS[0]}' .* 45 of the 46 tasks"):
        tables.average_error(tasks)
