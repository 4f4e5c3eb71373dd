# Downstream tasks through lm-eval: the generated local suite, then one evaluation per model.
import os

from lmscale import eval_tasks as task_evaluation
from lmscale import task_suite as offline_task_suite

TASK_SUITE = RESULTS + "/tasks/suite"


def tasks_config():
    """The config's `tasks` section with the schema's defaults filled in."""
    defaults = {
        "suite": "offline",
        "table": "configs/tasks/llm_foundry_46.csv",
        "include": [],
        "exclude": [],
        "heldout_dataset": None,
        "seed": 0,
        "size": 150,
        "fewshot_pool": 20,
        "context_lines": 4,
        "batch_size": 32,
        "limit": None,
        "device": "cpu",
        "threads": 2,
    }
    section = defaults | config.get("tasks", {})
    return section | {"table": repository_path(section["table"])}


def repository_path(path):
    """A relative path as given if it exists there, else inside the repository (--directory runs)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_repository = os.path.join(workflow.basedir, path)
    return in_repository if os.path.exists(in_repository) else path


def local_tasks():
    """The tasks whose data this study generates: the offline suite, or the table's own YAMLs."""
    return task_evaluation.tasks_to_generate(tasks_config())


def heldout_split():
    """The held-out text the text tasks are cut from, if the suite has any."""
    if not any(name in offline_task_suite.TEXT_TASKS for name in local_tasks()):
        return []
    dataset = tasks_config()["heldout_dataset"] or list(config["datasets"])[0]
    return f"{RESULTS}/data/{dataset}/validation.jsonl"


rule task_suite:
    input:
        heldout=heldout_split(),
        definitions=[str(offline_task_suite.task_yaml(name)) for name in local_tasks()],
    output:
        directory(TASK_SUITE),
    params:
        tasks=",".join(local_tasks()),
        heldout=lambda w, input: f"--heldout {input.heldout}" if input.heldout else "",
        seed=tasks_config()["seed"],
        size=tasks_config()["size"],
        fewshot_pool=tasks_config()["fewshot_pool"],
        context_lines=tasks_config()["context_lines"],
    log:
        f"{LOGS}/task_suite.log",
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "lmscale task-suite --out {output} --tasks {params.tasks:q} {params.heldout}"
        " --seed {params.seed} --size {params.size} --fewshot-pool {params.fewshot_pool}"
        " --context-lines {params.context_lines} > {log} 2>&1"


def task_table_input():
    section = tasks_config()
    return section["table"] if section["suite"] == "llm_foundry_46" else []


def task_selection():
    """The part of the `tasks` section that decides which tasks run, as one JSON string."""
    section = tasks_config()
    keys = ["suite", "include", "exclude"] + (["table"] if section["suite"] == "llm_foundry_46" else [])
    return study_config.to_json({key: section[key] for key in keys})


rule eval_tasks:
    input:
        run=RUN_JSON,
        suite=TASK_SUITE,
        table=task_table_input(),
    output:
        TASK_EVAL,
    params:
        model=lambda w, input: os.path.dirname(input.run),
        selection=task_selection(),
        limit=lambda w: f"--limit {tasks_config()['limit']}" if tasks_config()["limit"] else "",
        batch_size=tasks_config()["batch_size"],
        device=tasks_config()["device"],
    log:
        LOGS + "/eval_tasks/{dataset}/{size}_M{mult}.log",
    threads: tasks_config()["threads"]
    resources:
        mem_mb=4000,
    shell:
        # Fully offline: nothing may reach the Hugging Face Hub, checkpoints and data are local.
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 lmscale eval-tasks --model {params.model:q}"
        " --suite {input.suite:q} --tasks-config {params.selection:q} {params.limit}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " --dataset {wildcards.dataset} --size {wildcards.size} --mult {wildcards.mult}"
        " --out {output} > {log} 2>&1"
