"""One frozen description per job, built from the config and the wildcards in one place.

Each stage's job holds every value that decides its result, and nothing else.
Its rule passes it to the command as one JSON param (`job`), so Snakemake
reruns a job exactly when its description changes, and the command reads it
back with `from_json`; the command's other arguments are the job's input and
output paths. What changes no result (log and checkpoint cadence, the device,
how a run is split across processes) is an `Options` object beside the job,
which the rule also passes as a param, but as the object: Snakemake records
only params of plain types, so changing an option reruns nothing. (Not a
resource: a group job needs its jobs' string resources equal.)

Every builder (`from_config`) reads a config whose defaults the schema,
workflow/schemas/config.schema.yaml, has filled in (the Snakefile validates it
first): no default of a setting is written here or in the stages.
tests/test_jobs.py checks the schema and these descriptions against each
other. A new option of a stage is a schema entry and a field in its description, which
lives in the module of its part of the workflow (lmscale.descriptions: data, training,
evaluation, analysis); this module gathers them, so `from lmscale.jobs import TrainJob` is the one way to name one.
"""

from __future__ import annotations

from typing import Any

from lmscale.jobs.analysis import (
    FIGURE_INPUTS,
    BacktestJob,
    FigureJob,
    FitErrorJob,
    FitLossJob,
    ImportTestbedJob,
    PerTaskJob,
    PlanJob,
    Point,
    PredictJob,
    SelectTasksJob,
)
from lmscale.jobs.base import Job, Options, add_argument, section
from lmscale.jobs.data import (
    SPLIT_KEYS,
    CorpusJob,
    CorpusShardJob,
    PrefetchJob,
    TokenizerJob,
    TokenizerOptions,
    text_source,
)
from lmscale.jobs.evaluation import (
    EvalLossJob,
    EvalTasksJob,
    EvalTasksOptions,
    TaskSuiteJob,
    Valset,
)
from lmscale.jobs.training import (
    RESOURCE_KEYS,
    BranchJob,
    Cooldown,
    Hyperparameters,
    TrainJob,
    TrainOptions,
    TrunkJob,
    TrunkOptions,
    trunk_hyperparameters,
    trunk_name,
)

__all__ = [
    "Job", "Options", "add_argument", "section", "CorpusJob", "CorpusShardJob", "text_source",
    "TokenizerJob", "TokenizerOptions", "PrefetchJob", "SPLIT_KEYS", "Hyperparameters", "TrainJob",
    "Cooldown", "trunk_hyperparameters", "TrunkJob", "trunk_name", "BranchJob", "TrainOptions",
    "TrunkOptions", "RESOURCE_KEYS", "Valset", "EvalLossJob", "TaskSuiteJob", "EvalTasksJob",
    "EvalTasksOptions", "ImportTestbedJob", "SelectTasksJob", "Point", "FitLossJob",
    "FitErrorJob", "BacktestJob", "PredictJob", "FIGURE_INPUTS", "FigureJob", "PlanJob", "PerTaskJob", "JOBS",
]

JOBS: dict[str, Any] = {
    "corpus": CorpusJob, "corpus_shard": CorpusShardJob, "prefetch": PrefetchJob, "tokenizer": TokenizerJob,
    "train": TrainJob, "trunk": TrunkJob, "branch": BranchJob, "eval_loss": EvalLossJob,
    "task_suite": TaskSuiteJob, "eval_tasks": EvalTasksJob, "import_testbed": ImportTestbedJob,
    "select_tasks": SelectTasksJob, "fit_loss": FitLossJob, "fit_error": FitErrorJob,
    "backtest": BacktestJob, "predict": PredictJob, "figure": FigureJob, "plan": PlanJob,
    "per_task": PerTaskJob,
}
