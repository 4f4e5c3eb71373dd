"""Which tasks a study evaluates (lmscale.evaluation.task_list): the offline suite's or a task table's runnable rows,
after include and exclude, the same list for the generation and the evaluation."""

from __future__ import annotations

import pytest

from lmscale.evaluation import offline_tasks, task_list
from tests.test_eval_tasks import TABLE
from tests.test_task_suite import write_suite


def test_paper_table_selects_runnable_rows():
    specs = task_list.table_specs(TABLE)
    names = [spec.name for spec in specs]
    assert "jeopardy" not in names and "squad" not in names  # no lm-eval equivalent
    assert {"hellaswag", "hellaswag_zeroshot"} <= set(names)
    assert task_list.local_tasks_of_table(TABLE) == [
        "simple_arithmetic_nospaces", "simple_arithmetic_withspaces"
    ]
    with pytest.raises(ValueError, match="closest: hellaswag"):
        task_list.select_specs(specs, ["hellaswg"], [])


def test_tasks_to_generate_follow_the_selection():
    assert task_list.tasks_to_generate({"suite": "offline"}) == offline_tasks.offline_suite()
    assert task_list.tasks_to_generate({"suite": "offline", "include": ["code_next_line"]}) == ["code_next_line"]
    assert "code_line_cloze" not in task_list.tasks_to_generate({"suite": "offline", "exclude": ["code_line_cloze"]})
    assert task_list.tasks_to_generate({"suite": "llm_foundry_46", "table": TABLE, "include": ["copa"]}) == []
    with pytest.raises(ValueError, match="closest: bracket_next"):
        task_list.tasks_to_generate({"suite": "offline", "include": ["bracket_nxt"]})


def test_a_suite_generated_without_the_excluded_tasks_evaluates(tmp_path):
    """The workflow generates only what include and exclude leave, then evaluates with the same
    section: an excluded task the suite lacks is expected, an included one it lacks is stale."""
    section = {"suite": "offline", "exclude": ["string_repetition"]}
    suite = tmp_path / "suite"
    write_suite(suite, tasks=["bracket_next", "doctest_comparison"], size=20, fewshot_pool=5)
    specs = task_list.task_specs(section, suite)
    assert [spec.name for spec in specs] == ["bracket_next", "doctest_comparison"]
    with pytest.raises(ValueError, match="regenerate"):
        task_list.task_specs({"suite": "offline", "include": ["bracket_next", "code_next_line"]}, suite)
    with pytest.raises(ValueError, match="closest: string_repetition"):
        task_list.task_specs({"suite": "offline", "exclude": ["string_repetitio"]}, suite)
