"""The job descriptions against the schema: every setting of the config reaches exactly one
description (or is the scheduler's), with the schema's type, and no description writes a
default of its own; every job survives its trip through JSON."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import pytest
import yaml

from lmscale import config as study_config
from lmscale import jobs
from lmscale.jobs import RESOURCE_KEYS
from lmscale.model.architecture import Shape
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


def schema_type(node: dict):
    """A property's type, through a $ref to a definition (such as `device`)."""
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node["type"]


def annotation(schema_type) -> str:
    """The Python annotation a schema type reads as: "integer" -> int, ["integer", "null"] -> int | None."""
    kinds = schema_type if isinstance(schema_type, list) else [schema_type]
    return " | ".join(TYPES[kind] for kind in kinds if kind != "null") + (" | None" if "null" in kinds else "")


# Each config block, and which description's fields take its keys; what no description takes is
# the scheduler's (threads, GPUs) or chooses files (which tasks and formats exist, where text is).
BLOCKS = {
    ("properties", "tokenizer"): ([jobs.TokenizerJob], {"dataset"}),
    # `schedule` chooses the rules (train, or trunk and branch) that make the models.
    ("properties", "train"): ([jobs.Hyperparameters, jobs.TrainOptions, jobs.Cooldown], {"threads", "gpus", "schedule"}),
    ("properties", "fit"): ([jobs.FitLossJob], set()),
    ("properties", "backtest"): ([jobs.BacktestJob], set()),
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
            assert hints[key] == annotation(schema_type(properties(*block)[key])), (cls.__name__, key)


def test_the_tasks_section_reaches_the_suite_the_evaluation_or_the_selection():
    keys = set(properties("properties", "tasks"))
    suite = {"seed", "size", "fewshot_pool", "context_lines"}
    evaluation = {"limit", "batch_size"}
    selection = {"suite", "table", "include", "exclude"}  # EvalTasksJob.tasks
    assert suite <= names(jobs.TaskSuiteJob) and evaluation <= names(jobs.EvalTasksJob)
    assert keys == suite | evaluation | selection | (names(jobs.EvalTasksOptions) - {"hf_cache"}) | {"threads",
                                                                                                  "heldout_dataset"}


def test_the_hugging_face_cache_reaches_every_job_that_reads_or_fills_it():
    """`hf_cache` (top level): where the prefetch job puts what it fetches (its result), and where the
    tokenizer and evaluation jobs read it (their options: moving the cache changes no result)."""
    assert "hf_cache" in SCHEMA["properties"]
    config = validated_config({"hf_cache": "/shared/hf"})
    assert jobs.PrefetchJob.from_config(config, None, "org/name").hf_cache == "/shared/hf"
    assert jobs.TokenizerOptions.from_config(config).hf_cache == "/shared/hf"
    assert jobs.EvalTasksOptions.from_config(config).hf_cache == "/shared/hf"
    assert validated_config()["hf_cache"] is None


def test_a_datasets_shards_reach_its_shard_jobs_not_its_source():
    config = validated_config({"datasets": {"stdlib": {"shards": 4, "max_bytes": 1000}}})
    shard = jobs.CorpusShardJob.from_config(config, "stdlib", "00002-of-00004")
    assert (shard.shard, shard.shards) == (2, 4)
    assert shard.source == jobs.CorpusJob.from_config(config, dataset="stdlib").source == {
        "source": "stdlib", "max_bytes": 1000, "text_field": "text"}
    assert validated_config()["datasets"]["stdlib"]["shards"] == 1
    with pytest.raises(ValueError, match="shards = 4 shards, not 8"):
        jobs.CorpusShardJob.from_config(config, "stdlib", "00002-of-00008")


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


# ---- no default of a setting outside the schema ---------------------------------------------------

# LMSCALE_GUARD_ROOT points the guard at another checkout, to show it failing on an older commit.
ROOT = Path(os.environ.get("LMSCALE_GUARD_ROOT", REPO))
SOURCE = ROOT / "src" / "lmscale"
# `.get(key, default)` calls that read something other than the config, where `key` only shares
# a name with a setting that has a schema default (file, key: what it reads).
NOT_THE_CONFIG = {
    ("data/documents.py", "include"): "a stdlib source's globs, which have no schema default (tasks.include does)",
    ("data/documents.py", "exclude"): "a stdlib source's globs, which have no schema default (tasks.exclude does)",
    ("io/importers.py", "name"): "a published model record's name",
    ("laws/fitting.py", "bootstrap"): "a fitted law's bootstrap block",
    ("laws/law.py", "bootstrap"): "a fitted law's bootstrap block",
}
# Parameters named like a setting that no setting reaches (file, function, parameter: what it is).
NOT_A_SETTING = {
    ("evaluation/eval_loss.py", "evaluate", "threads"): "the eval_loss rule's own threads",
    ("evaluation/eval_loss.py", "evaluate", "batch_size"): "the loss evaluation's batch; the schema has none",
    ("evaluation/eval_loss.py", "evaluate", "device"): "the loss evaluation's device; the schema has none",
    ("data/token_streams.py", "tokenize_split", "threads"): "the tokenize rule's own threads",
    ("jobs/resources.py", "data_job", "threads"): "a corpus or tokenize job's own threads",
}


def schema_defaults(node=SCHEMA) -> dict[str, list]:
    """Every key of the schema that has a default, with its defaults (`seed` is three settings)."""
    found: dict[str, list] = {}
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            if isinstance(value, dict) and "default" in value:
                found.setdefault(key, []).append(value["default"])
        children = node.values()
    else:
        children = node if isinstance(node, list) else []
    for child in children:
        for key, values in schema_defaults(child).items():
            found.setdefault(key, []).extend(values)
    return found


def literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return NotImplemented  # an expression: no literal repeats a schema default


def defaults_outside_the_schema(folder: Path) -> list[str]:
    """`.get("<key>", default)` of a key with a schema default (the filled config has it), and a
    parameter named like such a key whose default is the schema's, in the package's source.

    None is no default here: it is every optional parameter's and every nullable key's."""
    defaults = schema_defaults()
    found = []
    for path in sorted(folder.rglob("*.py")):
        name = path.relative_to(folder).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in defaults and (name, node.args[0].value) not in NOT_THE_CONFIG):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                arguments = [*node.args.posonlyargs, *node.args.args]
                pairs = [*zip(arguments[len(arguments) - len(node.args.defaults):], node.args.defaults),
                         *zip(node.args.kwonlyargs, node.args.kw_defaults)]
                for argument, default in pairs:
                    value = None if default is None else literal(default)
                    if (name, getattr(node, "name", "lambda"), argument.arg) in NOT_A_SETTING:
                        continue
                    if argument.arg in defaults and value is not None and any(
                            value == schema and type(value) is type(schema) for schema in defaults[argument.arg]):
                        found.append(f"{name}:{node.lineno}: {getattr(node, 'name', 'lambda')}({argument.arg}="
                                     f"{ast.unparse(default)})")
    return found


def test_no_code_repeats_a_schema_default():
    """The config is filled from the schema once (the Snakefile validates it with set_default=True);
    every reader takes the filled value, `config[key]`, and no signature writes the default again."""
    found = defaults_outside_the_schema(SOURCE)
    assert found == [], "defaults written outside the schema:\n" + "\n".join(found)


def test_no_rule_repeats_a_schema_default():
    defaults = schema_defaults()
    rules = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    found = [f"{path.name}: .get({key!r}, ...)" for path in rules
             for key in re.findall(r"\.get\(\s*[\"'](\w+)[\"']\s*,", path.read_text()) if key in defaults]
    assert found == [], "defaults written outside the schema:\n" + "\n".join(found)


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/smoke.yaml", "configs/paper.yaml"])
def test_every_job_of_a_study_survives_json(configfile):
    config = validated_config(yaml.safe_load((REPO / configfile).read_text()))
    dataset, valset = next(iter(config["datasets"])), config["valsets"][0]
    built = [jobs.CorpusJob.from_config(config, dataset=dataset), jobs.TokenizerJob.from_config(config),
             jobs.CorpusShardJob.from_config(config, dataset, study_config.shard_names(config, dataset)[-1]),
             jobs.TokenizerOptions.from_config(config),
             jobs.PrefetchJob.from_config(config, {"suite": "llm_foundry_46", "table": "t.csv", "include": [],
                                                   "exclude": []}, config["tokenizer"]["name"]),
             jobs.TrainOptions.from_config(config), jobs.EvalLossJob.from_config(config),
             jobs.TaskSuiteJob.from_config(config, ["bracket_next"], 64),
             jobs.EvalTasksOptions.from_config(config), jobs.SelectTasksJob.from_config(config, "10"),
             jobs.FitLossJob.from_config(config, dataset, valset),
             jobs.FitErrorJob.from_config(config, dataset, valset, "all"),
             jobs.PredictJob.from_config(config, dataset, valset),
             jobs.BacktestJob.from_config(config, dataset, valset, "t10"),
             jobs.BacktestJob.from_config(config, dataset, valset, "loss"), jobs.PlanJob.from_config(config),
             jobs.PerTaskJob.from_config(config, dataset, valset, "t10")]
    built += [jobs.FigureJob.from_config(config, kind, dataset, valset)
              for kind in ("loss-heatmap", "loss-vs-compute", "error-heatmap", "error-vs-loss", "backtest",
                           "calibration", "isoflop", "per-task")]
    for run in study_config.training_runs(config):
        replica = study_config.replicate_suffix(run.replicate_seed)
        built.append(jobs.TrainJob.from_config(config, run.dataset, run.size, run.multiplier, replica))
        built.append(jobs.BranchJob.from_config(config, run.dataset, run.size, run.multiplier, replica))
        built.append(jobs.EvalTasksJob.from_config(config, {"suite": "offline"}, run.dataset, run.size,
                                                   str(run.multiplier)))
    for trunk in study_config.trunks(config):
        built.append(jobs.TrunkJob.from_config(config, trunk.dataset, trunk.size, trunk.top,
                                               study_config.replicate_suffix(trunk.replicate_seed)))
        built.append(jobs.TrunkOptions.from_config(config, list(trunk.multipliers)))
    for job in built:
        assert type(job).from_json(job.to_json()) == job, job


def test_a_trunk_is_its_branches_without_their_m_cooldown_and_floor():
    """What a trunk computes leaves out what only its branches reach: their M, the cooldown and
    lr_floor (so changing these reruns branches, not trunks); where it stops and leaves its states
    (the cooldown, the grid's Ms) is an option."""
    config = validated_config(yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
                              | {"replicate_seeds": [3]})
    branch = jobs.BranchJob.from_config(config, "stdlib", "s1", "5", "_seed3")
    trunk = jobs.TrunkJob.from_config(config, "stdlib", "s1", "10", "_seed3")
    assert (trunk.name, branch.name, trunk.hyperparameters.seed) == ("s1_seed3", "s1_M5_seed3", 3)
    assert trunk.hyperparameters.lr_floor is None and branch.hyperparameters.lr_floor == 3e-5
    assert branch.trunk == dataclasses.replace(trunk, multiplier=5.0)  # the same states at every step
    assert branch.cooldown == jobs.Cooldown(0.2, "1-sqrt")  # the schema's defaults
    recooled = validated_config({**config, "train": {**config["train"], "cooldown": 0.3, "lr_floor": 1e-4}})
    assert jobs.TrunkJob.from_config(recooled, "stdlib", "s1", "10", "_seed3") == trunk
    assert jobs.BranchJob.from_config(recooled, "stdlib", "s1", "5", "_seed3") != branch
    assert jobs.TrunkOptions.from_config(recooled, [10, 5]).multipliers == [5.0, 10.0]


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
