"""Plan-time checks of a study: whatever can be checked before a model trains.

The Snakefile calls `check_study` on the config the schema has validated (its
defaults filled in), so that `snakemake -n` fails on a config that would
otherwise fail after the grid has trained, with a message naming the key, the
value and the fix. The checks build what the stages would build (a size's
shape and hyperparameters, a corpus's files), so this module stands above
them; `lmscale.config` stays the floor they all stand on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale import jobs
from lmscale.config import (
    ConfigError,
    Point,
    Run,
    fit_points,
    format_multiplier,
    has_tasks,
    loss_fit_set,
    run_name,
    size_settings,
    training_runs,
)
from lmscale.data import documents
from lmscale.evaluation import offline_tasks, task_list
from lmscale.io import importers
from lmscale.jobs import SPLIT_KEYS, Hyperparameters, resources
from lmscale.laws.targets import target_kind
from lmscale.model.architecture import Shape
from lmscale.planning import priors, study


def check_study(config: dict, plan_written: bool = True) -> None:
    """Every check of the config that needs no trained model, made when the workflow is planned.

    `config` has been validated by the schema (defaults filled in). Raises ConfigError naming
    the key, the value and how to fix it, so that `snakemake -n` fails on what would otherwise
    fail after the grid has trained. `plan_written`: whether the config file or the command line
    wrote a `plan` block (`check_plan_runs`).
    """
    trained = config["testbed_format"] == "trained"
    _check_fit_sets_apart(config)
    check_plan(config)
    if has_tasks(config):
        for key in ("threshold", "reference_size"):
            if config.get(key) is None:
                raise ConfigError(f"`{key}` is missing: a study with downstream tasks selects them by "
                                  f"threshold t at the reference size (e.g. threshold: 10, reference_size: s3)")
    if not trained:
        _check_testbed_path(config)
        _check_error_goals(config)
        check_imported_study(config, plan_written)
        return
    datasets = list(config["datasets"])
    for key in ("tokenizer.dataset", "tasks.heldout_dataset"):
        section, name = key.split(".")
        value = config[section][name]
        if value is not None and value not in datasets:
            raise ConfigError(f"{key} = {value!r} is not a dataset under `datasets` "
                              f"(known: {', '.join(datasets)}); name one of them, or leave it out for the first")
    validation_sets = config["validation_sets"]
    for valset, entry in validation_sets.items():
        if entry.get("dataset") is not None and entry["dataset"] not in datasets:
            raise ConfigError(f"validation_sets.{valset}.dataset = {entry['dataset']!r} is not a dataset under "
                              f"`datasets` (known: {', '.join(datasets)})")
    for index, valset in enumerate(config["valsets"]):
        if valset not in validation_sets:
            raise ConfigError(f"valsets[{index}] = {valset!r} names no validation set (known: "
                              f"{', '.join(validation_sets) or 'none'}); add it under `validation_sets`, "
                              f"e.g. {valset}: {{dataset: {datasets[0]}}}, or name one of the known ones")
    _check_sizes(config)
    _check_shards(config)
    _check_multiplier_names(config)
    runs = training_runs(config)
    if not runs:
        raise ConfigError("`grid` has no runs to train; add a block such as "
                          "{sizes: [s1, s2], multipliers: [10, 20]} (a study of published results sets "
                          "testbed_format and testbed_path instead)")
    _check_runs_in_grid(config, runs)
    _check_branch_points(config, runs)
    _check_per_task_tasks(config, evaluated_tasks(config))
    check_plan_runs(config, None, plan_written)


def _check_fit_sets_apart(config: dict) -> None:
    """No held-out run is also a fit run: it would test the laws on a point they were fitted to."""
    fit = [("loss_fit_set", point) for point in loss_fit_set(config)]
    fit += [("error_fit_extra", point) for point in fit_points(config["error_fit_extra"])]
    for index, point in enumerate(fit_points(config["held_out"])):
        size, multiplier = point.size, point.M
        for key, fitted in fit:
            if fitted.size == size and math.isclose(fitted.M, multiplier, rel_tol=1e-6):
                raise ConfigError(f"held_out[{index}] = {{size: {size}, M: {multiplier:g}}} is also in {key}: a "
                                  f"held-out run tests the laws only if they were not fitted to it; drop it from "
                                  f"`held_out` or from `{key}`")


def _check_testbed_path(config: dict) -> None:
    path, form = config["testbed_path"], config["testbed_format"]
    if not path:
        raise ConfigError(f"testbed_format {form} reads published results, but testbed_path is not set; "
                          f"set it to their folder (--config testbed_path=path/to/folder)")
    if not Path(path).is_dir():
        raise ConfigError(f"testbed_path = {path!r} is not a folder (from {Path.cwd()}); "
                          f"set it to the folder of the published results")
    needed = "loss.csv" if form == "tables" else "models"
    if not (Path(path) / needed).exists():
        raise ConfigError(f"testbed_path = {path!r} has no {needed}: a `{form}` testbed needs "
                          + ("loss.csv (tasks.csv optional)" if form == "tables"
                             else "models/, evals/ and eval_metadata.csv"))


def _check_shards(config: dict) -> None:
    """A sharded file source has a file for every shard: a shard is a run of whole files."""
    for name, entry in config["datasets"].items():
        source = entry["source"]
        if entry["shards"] == 1 or source not in ("stdlib", "local"):
            continue
        try:
            files = len(documents.local_paths(entry) if source == "local" else documents.stdlib_paths(entry))
        except FileNotFoundError as error:
            raise ConfigError(f"datasets.{name}: {error}") from None
        if files < entry["shards"]:
            raise ConfigError(f"datasets.{name}.shards = {entry['shards']}, but its {source} source has {files} "
                              f"file(s) and a shard is a run of whole files; set shards to at most {files}")


def _check_sizes(config: dict) -> None:
    """Every size's shape builds, and its batch splits into whole micro-batches."""
    for label, size in config["sizes"].items():
        try:
            Shape.from_config(label, size)
        except ValueError as error:
            raise ConfigError(f"sizes.{label}: {str(error).removeprefix(f'size {label}: ')}; "
                              f"choose heads (and kv_heads) that divide it") from None
        hp = Hyperparameters.resolve(size_settings(config, label))
        micro = hp.micro_batch_size or hp.batch_size
        if hp.batch_size % micro:
            raise ConfigError(f"sizes.{label}: batch_size {hp.batch_size} is not a multiple of micro_batch_size "
                              f"{micro}; choose a micro_batch_size that divides it")


def _check_runs_in_grid(config: dict, runs: list[Run]) -> None:
    """The fit sets, held-out runs and reference size name runs and sizes the grid trains."""
    trained = {(run.dataset, run.size, run.multiplier) for run in runs if run.replicate_seed is None}
    sizes = list(dict.fromkeys(run.size for run in runs))

    def in_grid(dataset, size, multiplier):
        return any(d == dataset and s == size and math.isclose(m, multiplier, rel_tol=1e-6)
                   for d, s, m in trained)

    def grid_of(size):
        return ", ".join(f"{m:g}" for m in sorted({m for _, s, m in trained if s == size}))

    def refuse(key, size, multiplier, dataset=None):
        where = f" for dataset {dataset!r}" if dataset else ""
        if size not in sizes:
            problem = f"size {size!r} is not in the grid (its sizes: {', '.join(sizes)})"
        else:
            problem = f"the grid trains size {size!r}{where} at M = {grid_of(size)} only"
        raise ConfigError(f"{key} = {{size: {size}, M: {multiplier:g}}}: {problem}; add the run to a "
                          f"`grid` block or drop it from {key.split('[')[0]}")

    for key in ("loss_fit_set", "error_fit_extra"):
        for index, point in enumerate(fit_points(config[key])):
            # The laws are fitted on every dataset: each must have the run.
            for dataset in config["datasets"]:
                if not in_grid(dataset, point.size, point.M):
                    refuse(f"{key}[{index}]", point.size, point.M, dataset)
    for index, point in enumerate(fit_points(config["held_out"])):
        # A held-out run may exist for one dataset only (the paper's 1.4B at M = 640).
        if not any(in_grid(dataset, point.size, point.M) for dataset in config["datasets"]):
            refuse(f"held_out[{index}]", point.size, point.M)
    reference = config.get("reference_size")
    if reference is not None and reference not in sizes:
        raise ConfigError(f"reference_size = {reference!r} is not a size of the grid (its sizes: "
                          f"{', '.join(sizes)}); name the size whose models choose the tasks")


def check_written(config: dict) -> None:
    """Checks of what the config file says, before the schema fills in its defaults (after that,
    a key the user wrote and one the schema filled look the same)."""
    for valset, entry in (config.get("validation_sets") or {}).items():
        _check_one_text_source(valset, entry or {})
    _check_target_shapes(config)


def _check_one_text_source(valset: str, entry: dict) -> None:
    """A validation set is a training dataset's held-out split or a source of its own, not both:
    with `dataset` set, the source keys would be ignored."""
    if entry.get("dataset") is None:
        return
    own = [key for key in entry if key not in SPLIT_KEYS]
    if own:
        raise ConfigError(f"validation_sets.{valset} sets both dataset = {entry['dataset']!r} and "
                          f"{', '.join(f'{key} = {entry[key]!r}' for key in own)}: a validation set is a dataset's "
                          f"held-out split or a text source of its own; drop `dataset` or the source keys")


def _check_multiplier_names(config: dict) -> None:
    """A token multiplier is named in file names with 6 significant digits, and read back from them:
    a multiplier the name does not give back would train one run and look for another."""
    for index, block in enumerate(config["grid"]):
        for multiplier in block["multipliers"]:
            name = format_multiplier(multiplier)
            if float(name) != float(multiplier):
                raise ConfigError(f"grid[{index}].multipliers: M = {multiplier!r} is named M{name} in file names, "
                                  f"which reads back as {name}; give M with at most 6 significant digits "
                                  f"(such as {name})")


def _check_branch_points(config: dict, runs: list[Run]) -> None:
    """Under wsd, every branch leaves a trunk that trained: with no stable step (a cooldown of 1, or
    one that rounds to every step) the trunk trains nothing and the branch decays from the
    warmup's first rate, not from lr. (A branch point inside a long warmup is allowed: the paper's
    grid under wsd has such runs, and the branch then decays from the rate it reached.)"""
    if config["train"]["schedule"] != "wsd":
        return
    vocab = resources.study_vocab_size(config)
    cooldown = float(config["train"]["cooldown"])
    for run in runs:
        settings = size_settings(config, run.size)
        if resources.estimate(settings, run.multiplier, vocab, "trunk").steps == 0:
            steps = resources.estimate(settings, run.multiplier, vocab).steps
            name = run_name(run.size, run.multiplier, run.replicate_seed)
            raise ConfigError(f"train.cooldown = {cooldown:g}: run {run.dataset}/{name} would spend all of its "
                              f"{steps} steps in the cooldown, so its trunk trains nothing and the decay starts at "
                              f"the warmup's first rate, not lr; lower train.cooldown (0.1-0.2 is usual)")


def check_imported_study(config: dict, plan_written: bool = True) -> None:
    """The checks a trained study's grid gets, made on an imported testbed when the workflow is
    planned (the tables are small): the tables read and checked as the import job checks them,
    every fit-set run in every dataset, each held-out run in some dataset, the reference size
    among the task results. A problem is a ConfigError of one line naming the file or the key."""
    if config["testbed_format"] == "trained":
        return
    job = jobs.ImportTestbedJob.from_config(config)
    try:
        loss, tasks = importers.read_testbed(job)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None
    source = Path(job.path) / ("loss.csv" if job.format == "tables" else "models")
    runs = loss.drop_duplicates(["dataset", "size", "M"])
    for key in ("loss_fit_set", "error_fit_extra"):
        for index, point in enumerate(fit_points(config[key])):
            for dataset in config["datasets"]:  # the laws are fitted on every dataset
                _require_run(runs[runs["dataset"] == dataset], f"{key}[{index}]", point, f"dataset {dataset!r}",
                             source)
    for index, point in enumerate(fit_points(config["held_out"])):
        # A held-out run may exist for one dataset only (the paper's 1.4B at M = 640).
        _require_run(runs[runs["dataset"].isin(config["datasets"])], f"held_out[{index}]", point, "any dataset",
                     source)
    if tasks is not None:
        _check_per_task_tasks(config, sorted(tasks["task"].unique()))
    reference = config.get("reference_size")  # no default: a loss-only study leaves it out
    if tasks is not None and reference is not None and reference not in set(tasks["size"]):
        sizes = ", ".join(sorted(set(tasks["size"])))
        where = Path(job.path) / ("tasks.csv" if job.format == "tables" else "evals")
        raise ConfigError(f"reference_size = {reference!r} is not a size of the task results in {where} "
                          f"(its sizes: {sizes}); name the size whose models choose the tasks")
    check_plan_runs(config, loss, plan_written)


def _require_run(runs: pd.DataFrame, key: str, point: Point, where: str, source: Path) -> None:
    """A run of the config (a fit set's, a held-out one) is among `runs`, the testbed's runs of `where`."""
    size, multiplier = point.size, point.M
    if np.isclose(runs.loc[runs["size"] == size, "M"], multiplier, rtol=1e-6).any():
        return
    sizes = sorted(set(runs["size"]))
    if size in sizes:
        multipliers = sorted(set(runs.loc[runs["size"] == size, "M"]))
        problem = f"size {size!r} has M = {', '.join(f'{m:g}' for m in multipliers)}"
    else:
        problem = f"no size {size!r} (its sizes: {', '.join(sizes) or 'none'})"
    raise ConfigError(f"{key} = {{size: {size}, M: {multiplier:g}}}: no such run in {source} for {where}: "
                      f"{problem}; name a run of the testbed, or drop it from {key.split('[')[0]}")


# ---- targets (issue #25): checked as written, so that a shape the schema's oneOf refuses is named here first


def _check_target_shapes(config: dict) -> None:
    """Each target has one of the shapes lmscale.laws.targets resolves, and a name of its own (its row)."""
    written = config.get("targets")
    if not isinstance(written, list):
        return  # the schema names it
    names = []
    for index, target in enumerate(written):
        if not isinstance(target, dict):
            continue
        try:
            target_kind(target)
        except ValueError as error:
            raise ConfigError(f"targets[{index}]: {error}") from None
        if target["name"] in names:
            raise ConfigError(f"targets[{index}]: the name {target['name']!r} is taken by an earlier target; "
                              "each target is a row of the predictions table: give it a name of its own")
        names.append(target["name"])


def _check_error_goals(config: dict) -> None:
    """An error goal needs the error law: a loss-only study (a tables testbed without tasks.csv) has none."""
    if has_tasks(config):
        return
    for index, target in enumerate(config["targets"]):
        if "err" in target:
            raise ConfigError(f"targets[{index}] {target['name']!r}: err = {target['err']:g} is an error goal, but this "
                              "study has no task results (loss only), so no error law; ask for a loss instead")


def check_plan(config: dict) -> None:
    """The `plan` block names what the study has, and a law given as its prior can be planned from."""
    plan, trained = config["plan"], config["testbed_format"] == "trained"
    for key, known in (("dataset", list(config["datasets"])), ("valset", config["valsets"])):
        if plan[key] is not None and plan[key] not in known:
            raise ConfigError(f"plan.{key} = {plan[key]!r} is not one of the study's {key}s ({', '.join(known)}); "
                              f"name one of them, or leave it out for the first")
    if not trained and plan["candidates"]["from"] == "grid":
        raise ConfigError("plan.candidates.from = grid prices runs from the sizes' shapes, but this study imports its "
                          "testbed; set plan.candidates.from: testbed")
    if not trained and "gpu_hours" in (plan["budget"] or {}):
        raise ConfigError("plan.budget.gpu_hours prices runs from the sizes' shapes, which an imported testbed does "
                          "not give; give the budget as {flops: ...}")
    named = [(f"plan.candidates.sizes[{i}]", size) for i, size in enumerate(plan["candidates"]["sizes"] or [])]
    named += [(f"plan.targets[{i}].size", t["size"]) for i, t in enumerate(plan["targets"] or []) if "size" in t]
    for key, size in named if trained else []:
        if size not in config["sizes"]:
            raise ConfigError(f"{key} = {size!r} is not under `sizes` ({', '.join(config['sizes'])}); name one of "
                              f"them, or give a target by its N")
    try:
        study.check_stated(jobs.PlanJob.from_config(config))  # a noise or budget of no finite amount, a name twice
    except priors.PlanError as error:
        raise ConfigError(str(error)) from None
    prior = plan["prior"]
    if prior is not None:
        try:
            priors.given_prior(prior["form"], prior["params"], plan["default_noise_sd"])
        except priors.PlanError as error:
            raise ConfigError(f"plan.prior: {error}") from None


def check_plan_runs(config: dict, loss: pd.DataFrame | None, plan_written: bool) -> None:
    """What the `plan` block asks that no plan can give, as far as it is known before any run
    trains (planning.study.check_before_runs): a target named like a run it is not or of a size
    the testbed lacks, a candidate size or multiplier no run has; where the config writes a
    `plan` block (`plan_written`), too few candidates for plan.fit_needs and a budget below the
    cheapest set that meets them (a study that leaves the plan to its defaults may never plan:
    its plan job refuses them). `loss`: the imported testbed's loss table (None for a study that
    trains: its grid prices the candidates). What depends on the train split or the fitted law,
    the plan job refuses as it starts."""
    try:
        form = config["plan"]["prior"]["form"] if config["plan"]["prior"] is not None else config["fit"]["form"]
        study.check_before_runs(jobs.PlanJob.from_config(config), loss, form, affordable=plan_written)
    except priors.PlanError as error:
        raise ConfigError(str(error)) from None


def evaluated_tasks(config: dict) -> list[str] | None:
    """The tasks a trained study evaluates, by their names in the results; None where they are not
    known here: the task table not found from here (a run with --directory), or a `tasks` section
    the task_suite job refuses with its own message (the per-task job checks its tasks then)."""
    try:
        return [spec.name for spec in task_list.planned_specs(config["tasks"])]
    except (FileNotFoundError, ValueError):
        return None


def _check_per_task_tasks(config: dict, evaluated: list[str] | None) -> None:
    """The per-task predictions' candidate tasks are tasks the study evaluates."""
    chosen = config["per_task"]["tasks"]
    if chosen is None or evaluated is None:
        return
    for index, task in enumerate(chosen):
        if task not in evaluated:
            raise ConfigError(f"per_task.tasks[{index}] = {task!r}: {offline_tasks.unknown_tasks_message([task], evaluated)}"
                              f" among the tasks the study evaluates ({', '.join(evaluated)}); name one of them, "
                              f"or set per_task.tasks to null for every task")
