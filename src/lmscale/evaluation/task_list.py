"""Which tasks a study evaluates: the offline suite's or a task table's, after include and exclude.

The `tasks` section of the config chooses them (suite, table, include, exclude).
The workflow reads the choice when it plans (which local tasks to generate),
the prefetch stage to know which lm-eval datasets to fetch, and the evaluation
to know what to run; each gets the same list, in the same order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lmscale.evaluation import offline_tasks

SUITES = ("offline", "llm_foundry_46")


@dataclass(frozen=True)
class TaskSpec:
    """One task to evaluate: its name in our results and how lm-eval runs it."""

    name: str
    lm_eval_task: str
    num_fewshot: int
    random_baseline: float  # fraction, 0-1
    kind: str  # lm-eval output_type, "" when only lm-eval knows it


def offline_specs(suite_dir: str | Path) -> list[TaskSpec]:
    manifest = offline_tasks.read_manifest(suite_dir)
    return [
        TaskSpec(
            name=entry["task"],
            lm_eval_task=entry["task"],
            num_fewshot=int(entry["num_fewshot"]),
            random_baseline=float(entry["random_baseline"]),
            kind=entry["kind"],
        )
        for entry in manifest["tasks"]
    ]


def read_task_table(table: str | Path) -> list[dict]:
    table = Path(table)
    if not table.exists():
        raise FileNotFoundError(f"task table {table} does not exist (tasks.table in the config)")
    with open(table, newline="") as handle:
        return list(csv.DictReader(handle))


def table_specs(table: str | Path) -> list[TaskSpec]:
    """The rows of a task table that lm-eval can run (an lm_eval_task is named)."""
    specs = []
    for row in read_task_table(table):
        if not row["lm_eval_task"].strip():
            continue  # no lm-eval equivalent; the table's note says what is nearest
        specs.append(
            TaskSpec(
                name=row["task"],
                lm_eval_task=row["lm_eval_task"].strip(),
                num_fewshot=int(row["num_fewshot"]),
                random_baseline=float(row["random_baseline"]),
                kind=row.get("lm_eval_kind", ""),
            )
        )
    return specs


def local_tasks_of_table(table: str | Path) -> list[str]:
    """Table rows served by a YAML of our own in lmscale/tasks/ (generated data)."""
    return [
        spec.lm_eval_task
        for spec in table_specs(table)
        if spec.lm_eval_task in offline_tasks.GENERATED_TASKS
    ]


def planned_specs(tasks_config: dict) -> list[TaskSpec]:
    """The tasks the `tasks` section chooses, after `include` and `exclude`, known before any suite
    exists: their names in the results and their lm-eval tasks (no baselines nor kinds).

    Read by the workflow when it plans, so a typo in `include` fails at once, naming the closest task.
    """
    suite = tasks_config["suite"]
    if suite == "offline":
        specs = [TaskSpec(name, name, 0, 0.0, "") for name in offline_tasks.offline_suite()]
    elif suite == "llm_foundry_46":
        specs = table_specs(tasks_config["table"])
    else:
        raise ValueError(f"unknown tasks.suite {suite!r}; choose one of {', '.join(SUITES)}")
    return select_specs(specs, tasks_config.get("include"), tasks_config.get("exclude"))


def tasks_to_generate(tasks_config: dict) -> list[str]:
    """The local tasks whose data the study needs, after `include` and `exclude`."""
    generated = offline_tasks.GENERATED_TASKS
    return [spec.lm_eval_task for spec in planned_specs(tasks_config) if spec.lm_eval_task in generated]


def select_specs(specs: list[TaskSpec], include: list[str] | None, exclude: list[str] | None,
                 known: list[str] | None = None) -> list[TaskSpec]:
    """`include` (all when empty) minus `exclude`; an unknown name fails, with the closest ones.

    `known` are the names the config may mention (default: the specs'). A generated suite
    holds only the tasks left after include and exclude, so an excluded task it lacks is
    fine; an included one it lacks means the suite is stale.
    """
    present = [spec.name for spec in specs]
    known = present if known is None else known
    asked = list(include or []) + list(exclude or [])
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise ValueError(
            offline_tasks.unknown_tasks_message(unknown, known)
            + " in tasks.include/tasks.exclude; the suite has: "
            + ", ".join(known)
        )
    missing = [name for name in include or [] if name not in present]
    if missing:
        raise ValueError(
            f"tasks.include names {', '.join(missing)}, which the generated suite lacks; "
            f"regenerate it with `lmscale task-suite --tasks ...` (the workflow does so when include changes)"
        )
    chosen = [spec for spec in specs if not include or spec.name in include]
    return [spec for spec in chosen if spec.name not in (exclude or [])]


def task_specs(tasks_config: dict, suite_dir: str | Path | None) -> list[TaskSpec]:
    """The tasks the config's `tasks` section asks for, in a stable order."""
    suite = tasks_config["suite"]
    if suite == "offline":
        if suite_dir is None:
            raise ValueError("the offline suite needs --suite, the folder `lmscale task-suite` wrote")
        return select_specs(offline_specs(suite_dir), tasks_config.get("include"), tasks_config.get("exclude"),
                            known=offline_tasks.offline_suite())
    elif suite == "llm_foundry_46":
        if not tasks_config.get("table"):
            raise ValueError("tasks.suite llm_foundry_46 needs tasks.table (configs/tasks/llm_foundry_46.csv)")
        specs = table_specs(tasks_config["table"])
    else:
        raise ValueError(f"unknown tasks.suite {suite!r}; choose one of {', '.join(SUITES)}")
    return select_specs(specs, tasks_config.get("include"), tasks_config.get("exclude"))


def check_registered(specs: list[TaskSpec], registered: list[str]) -> None:
    """Fail before any model is loaded if lm-eval does not know a task."""
    known = set(registered)
    unknown = [spec.lm_eval_task for spec in specs if spec.lm_eval_task not in known]
    if unknown:
        raise ValueError(
            offline_tasks.unknown_tasks_message(unknown, sorted(known))
            + " in lm-eval's registry; fix the name, or generate local tasks with `lmscale task-suite`"
        )

