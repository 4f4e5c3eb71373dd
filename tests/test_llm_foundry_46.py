"""The paper's 46 LLM-Foundry tasks mapped to lm-eval: every name must resolve, offline."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

from lmscale.evaluation import offline_tasks

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "configs" / "tasks" / "llm_foundry_46.csv"
MATCHES = {"same", "variant", "local", "none"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(TABLE, newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_shape(rows):
    assert len(rows) == 46
    assert len({row["task"] for row in rows}) == 46
    for row in rows:
        assert row["match"] in MATCHES, row["task"]
        assert 0 <= float(row["random_baseline"]) < 1, row["task"]
        assert int(row["num_fewshot"]) >= 0
        if row["match"] == "none":
            assert not row["lm_eval_task"] and row["note"], row["task"]
        else:
            assert row["lm_eval_task"], row["task"]
        if row["match"] != "same":
            assert row["note"], f"{row['task']} differs from the paper and must say how"


def test_the_mappings_the_paper_names(rows):
    by_task = {row["task"]: row for row in rows}
    assert by_task["siqa"]["lm_eval_task"] == "social_iqa"
    assert by_task["winograd"]["lm_eval_task"] == "wsc273"
    assert by_task["hellaswag"]["lm_eval_task"] == by_task["hellaswag_zeroshot"]["lm_eval_task"] == "hellaswag"
    assert (by_task["hellaswag"]["num_fewshot"], by_task["hellaswag_zeroshot"]["num_fewshot"]) == ("10", "0")
    for task, row in by_task.items():
        if task.startswith("bigbench_"):
            assert row["lm_eval_task"].endswith(("_multiple_choice", "_generate_until")), task
    for task in ("jeopardy", "enterprise_pii_classification", "squad"):
        assert by_task[task]["match"] == "none"
    for task in ("simple_arithmetic_nospaces", "simple_arithmetic_withspaces"):
        assert by_task[task]["match"] == "local"
        assert by_task[task]["lm_eval_task"] in offline_tasks.GENERATED_TASKS


@pytest.mark.testbed
def test_tasks_shots_and_baselines_are_the_papers(rows, gadre2024):
    tasks = set()
    for path in (gadre2024 / "evals").glob("*.json"):
        tasks |= set(json.loads(path.read_text())["eval_metrics"]["icl"])
    assert {row["task"] for row in rows} == tasks
    with open(gadre2024 / "eval_metadata.csv", newline="") as handle:
        metadata = {row["Eval Task"]: row for row in csv.DictReader(handle)}
    for row in rows:
        paper = metadata[row["task"]]
        assert int(row["num_fewshot"]) == int(paper["#shots"]), row["task"]
        assert float(row["random_baseline"]) == pytest.approx(float(paper["Random baseline"]) / 100)


def test_every_lm_eval_name_is_registered(rows):
    """The installed lm-eval's registry, read from its YAML files: no dataset is loaded."""
    from lm_eval.tasks import TaskManager

    registered = set(TaskManager(include_path=str(offline_tasks.TASKS_DIR)).all_tasks)
    for row in rows:
        for column in ("lm_eval_task", "nearest_lm_eval_task"):
            if row[column]:
                assert row[column] in registered, f"{row['task']}: {column} {row[column]!r} is not in lm-eval"
