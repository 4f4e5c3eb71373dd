"""The job descriptions against the schema: every setting of the config reaches exactly one
description (or is the scheduler's), with the schema's type, and no description writes a
default of its own; every job survives its trip through JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from lmscale import config as study_config
from lmscale import jobs
from lmscale.model import Shape
from lmscale.resources import RESOURCE_KEYS
from tests.workflow import REPO, validated_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
TYPES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}


def names(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def properties(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node[key]
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
        node = node.get("properties", node) if key != path[-1] else node
    return node["properties"]


def resolved(node: dict) -> dict:
    """A schema node with the definition its `$ref` names filled in (its own keys win)."""
    return {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **node} if "$ref" in node else node


def annotation(schema_type) -> str:
    """The Python annotation a schema type reads as: "integer" -> int, ["integer", "null"] -> int | None."""
    kinds = schema_type if isinstance(schema_type, list) else [schema_type]
    return " | ".join(TYPES[kind] for kind in kinds if kind != "null") + (" | None" if "null" in kinds else "")


# Each config block, and which description's fields take its keys; what no description takes is
# the scheduler's (threads, GPUs) or chooses files (which tasks and formats exist, where text is).
BLOCKS = {
    ("properties", "tokenizer"): ([jobs.TokenizerJob], {"dataset"}),
    ("properties", "train"): ([jobs.Hyperparameters, jobs.TrainOptions], {"threads", "gpus"}),
    ("properties", "fit"): ([jobs.FitLossJob], set()),
}


@pytest.mark.parametrize("block", list(BLOCKS), ids=lambda block: block[-1])
def test_every_key_of_a_block_is_one_field_of_one_description(block):
    described, scheduled = BLOCKS[block]
    keys = set(properties(*block))
    fields = [names(cls) & keys for cls in described]
    assert set().union(*fields) | scheduled == keys, f"keys no description takes: {keys - set().union(*fields) - scheduled}"
    assert sum(map(len, fields)) == len(set().union(*fields)), "a key in two descriptions"
    for cls in described:
        hints = {field.name: field.type for field in dataclasses.fields(cls)}
        for key in names(cls) & keys:
            assert hints[key] == annotation(resolved(properties(*block)[key])["type"]), (cls.__name__, key)


def test_the_tasks_section_reaches_the_suite_the_evaluation_or_the_selection():
    keys = set(properties("properties", "tasks"))
    suite = {"seed", "size", "fewshot_pool", "context_lines"}
    evaluation = {"limit", "batch_size"}
    selection = {"suite", "table", "include", "exclude"}  # EvalTasksJob.tasks
    assert suite <= names(jobs.TaskSuiteJob) and evaluation <= names(jobs.EvalTasksJob)
    assert keys == suite | evaluation | selection | names(jobs.EvalTasksOptions) | {"threads", "heldout_dataset"}


def test_a_size_is_a_shape_per_size_hyperparameters_and_resources():
    keys = set(SCHEMA["properties"]["sizes"]["additionalProperties"]["properties"])
    shape, resources = names(Shape), set(RESOURCE_KEYS)
    assert shape | resources <= keys
    assert keys - shape - resources <= names(jobs.Hyperparameters)


@pytest.mark.parametrize("cls", [cls for cls in vars(jobs).values()
                                 if isinstance(cls, type) and dataclasses.is_dataclass(cls)],
                         ids=lambda cls: cls.__name__)
def test_no_description_writes_a_default(cls):
    defaulted = [field.name for field in dataclasses.fields(cls)
                 if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING]
    assert defaulted == [], f"{cls.__name__} defaults {defaulted}: the schema is the one place a default is written"


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/smoke.yaml", "configs/paper.yaml"])
def test_every_job_of_a_study_survives_json(configfile):
    config = validated_config(yaml.safe_load((REPO / configfile).read_text()))
    dataset, valset = next(iter(config["datasets"])), config["valsets"][0]
    built = [jobs.CorpusJob.from_config(config, dataset=dataset), jobs.TokenizerJob.from_config(config),
             jobs.TrainOptions.from_config(config), jobs.EvalLossJob.from_config(config),
             jobs.TaskSuiteJob.from_config(config, ["bracket_next"], 64),
             jobs.EvalTasksOptions.from_config(config), jobs.SelectTasksJob.from_config(config, "10"),
             jobs.FitLossJob.from_config(config, dataset, valset),
             jobs.FitErrorJob.from_config(config, dataset, valset, "all"),
             jobs.PredictJob.from_config(config, dataset, valset)]
    built += [jobs.FigureJob.from_config(config, kind, dataset, valset)
              for kind in ("loss-heatmap", "loss-vs-compute", "error-heatmap", "error-vs-loss")]
    for run in study_config.training_runs(config):
        built.append(jobs.TrainJob.from_config(config, run.dataset, run.size, run.multiplier,
                                               study_config.replicate_suffix(run.replicate_seed)))
        built.append(jobs.EvalTasksJob.from_config(config, {"suite": "offline"}, run.dataset, run.size,
                                                   str(run.multiplier)))
    for job in built:
        assert type(job).from_json(job.to_json()) == job, job


def test_a_replicate_job_carries_its_seed_in_place_of_the_studys():
    config = validated_config(yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text()))
    own, replicate = (jobs.TrainJob.from_config(config, "stdlib", "s1", "5", replica) for replica in ("", "_seed3"))
    assert (own.name, own.hyperparameters.seed) == ("s1_M5", 0)
    assert (replicate.name, replicate.hyperparameters.seed, replicate.replicate_seed) == ("s1_M5_seed3", 3, 3)


def test_a_job_json_with_a_missing_or_unknown_field_is_refused():
    text = jobs.SelectTasksJob("s1", 10.0).to_json()
    assert jobs.SelectTasksJob.from_json(text) == jobs.SelectTasksJob("s1", 10.0)
    with pytest.raises(ValueError, match="missing field.*threshold.*unknown field.*t$"):
        jobs.SelectTasksJob.from_json('{"reference_size": "s1", "t": 10}')
