"""The study's configuration: the training grid, fit sets and targets.

The Snakefile and the CLI read the config through these functions, so that a
run's name, its token multiplier and the fit sets are spelled in one place.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says which and how to fix it."""


def format_multiplier(multiplier: float) -> str:
    """Token multiplier as it appears in file names: 20 -> '20', 2.5 -> '2.5'."""
    value = float(multiplier)
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"token multiplier must be a positive number, got {multiplier!r}")
    return f"{value:g}"


def replicate_suffix(replicate_seed: int | None) -> str:
    """'' for a run with the study's own seed, '_seed{k}' for its replicate with seed k."""
    return "" if replicate_seed is None else f"_seed{int(replicate_seed)}"


def replicate_seed_of(suffix: str) -> int | None:
    """The seed of a replicate suffix ('_seed{k}' -> k; '' -> None), inverse of `replicate_suffix`."""
    return int(suffix.removeprefix("_seed")) if suffix else None


def run_name(size: str, multiplier: float, replicate_seed: int | None = None) -> str:
    """The name of one training run: '{size}_M{multiplier}', as in the file layout; a
    replicate trained with another seed adds '_seed{k}'."""
    return f"{size}_M{format_multiplier(multiplier)}{replicate_suffix(replicate_seed)}"


def shard_name(index: int, count: int) -> str:
    """Shard `index` of `count` of a corpus as it appears in file names: 3 of 16 -> '00003-of-00016'."""
    if not 0 <= index < count:
        raise ConfigError(f"shard {index} of {count}: a shard counts from 0 to shards - 1")
    return f"{index:05d}-of-{count:05d}"


def shard_of(name: str) -> tuple[int, int]:
    """(index, count) of a shard name, inverse of `shard_name`."""
    index, _, count = name.partition("-of-")
    if not (index.isdigit() and count.isdigit()):
        raise ConfigError(f"{name!r} is not a shard name such as 00003-of-00016")
    shard_name(int(index), int(count))
    return int(index), int(count)


def shard_names(config: dict, dataset: str) -> list[str]:
    """The shards a training dataset's corpus is cut into (`datasets.<name>.shards`), in order."""
    count = config["datasets"][dataset]["shards"]
    return [shard_name(index, count) for index in range(count)]


@dataclass(frozen=True)
class Run:
    """One model of the grid: a size trained on a dataset for M x N tokens, with the study's
    seed (`replicate_seed` None) or, to average out seed noise, another."""

    dataset: str
    size: str
    multiplier: float
    replicate_seed: int | None = None

    @property
    def name(self) -> str:
        return run_name(self.size, self.multiplier, self.replicate_seed)


def training_runs(config: dict) -> list[Run]:
    """Every run the config's `grid` asks for, each once, in a stable order.

    `grid` is a list of blocks; each block is the product of its `sizes` and
    `multipliers`, on its `datasets` (all datasets when absent). A union of
    products describes irregular grids such as the paper's, where the larger
    sizes were trained at fewer multipliers.
    """
    datasets = list(config.get("datasets", {}))
    sizes = config.get("sizes", {})
    runs: dict[tuple, Run] = {}
    for index, block in enumerate(config.get("grid", [])):
        block_datasets = block.get("datasets", datasets)
        for name in block_datasets:
            if name not in datasets:
                raise ConfigError(
                    f"grid block {index} names dataset {name!r}, which is not under `datasets` "
                    f"(known: {', '.join(datasets) or 'none'})"
                )
        for size in block["sizes"]:
            if size not in sizes:
                raise ConfigError(
                    f"grid block {index} names size {size!r}, which is not under `sizes` "
                    f"(known: {', '.join(sizes) or 'none'})"
                )
        for dataset, size, multiplier in itertools.product(
            block_datasets, block["sizes"], block["multipliers"]
        ):
            format_multiplier(multiplier)
            run = Run(dataset, size, float(multiplier))
            runs.setdefault((dataset, size, float(multiplier)), run)
    for seed in replicate_seeds(config):
        for size, multiplier in dict.fromkeys(error_fit_set(config)):
            for dataset in datasets:
                if (dataset, size, multiplier) in runs:
                    runs.setdefault((dataset, size, multiplier, seed), Run(dataset, size, multiplier, seed))
    order = {size: i for i, size in enumerate(sizes)}
    # The study's own run first, then its replicates by seed.
    return sorted(runs.values(), key=lambda r: (r.dataset, order[r.size], r.multiplier,
                                                -1 if r.replicate_seed is None else r.replicate_seed))


@dataclass(frozen=True)
class Trunk:
    """Under `train.schedule: wsd`, the stable phase one size trains once per dataset and seed,
    and the Ms of the grid that branch off it (ascending)."""

    dataset: str
    size: str
    replicate_seed: int | None
    multipliers: tuple[float, ...]

    @property
    def top(self) -> float:
        """The largest M: the trunk trains to its branch point."""
        return self.multipliers[-1]


def trunks(config: dict) -> list[Trunk]:
    """Every trunk of the grid, one per (dataset, size, seed), in the order of `training_runs`."""
    grouped: dict[tuple, list[float]] = {}
    for run in training_runs(config):
        grouped.setdefault((run.dataset, run.size, run.replicate_seed), []).append(run.multiplier)
    return [Trunk(dataset, size, seed, tuple(sorted(multipliers)))
            for (dataset, size, seed), multipliers in grouped.items()]


def finished_trunks(folder: str | Path, size: str, replicate_seed: int | None) -> list[float]:
    """The largest M of every trunk job of a size and seed that has finished: the Ms in the names of
    the trunk records under `folder` ({size}_M{top}{replica}.json, as `run_name` spells them)."""
    import re

    pattern = re.compile(rf"{re.escape(size)}_M([0-9]+(?:\.[0-9]+)?){re.escape(replicate_suffix(replicate_seed))}\.json")
    return sorted(float(match.group(1)) for path in Path(folder).glob(f"{size}_M*.json")
                  if (match := pattern.fullmatch(path.name)))


def trunk_to_wait_for(finished: Iterable[float], multiplier: float, top: float) -> float:
    """The trunk job (by its largest M) that a branch at `multiplier` waits for: the first finished
    one that reached past its M, else the grid's trunk, trained to `top` now.

    A trunk job never changes once finished: a larger M added later is a new job (its largest M
    in its name) that extends the same states. Were a branch to wait for the newest trunk, its
    input would change with the grid and Snakemake would retrain it; it waits for the one it
    first had.
    """
    return min((m for m in finished if m >= multiplier), default=top)


def replicate_seeds(config: dict) -> list[int]:
    """The seeds, besides `train.seed`, each fit-set run is trained with again."""
    seeds = [int(seed) for seed in config.get("replicate_seeds", [])]
    own = int(config.get("train", {}).get("seed", 0))
    if own in seeds:
        raise ConfigError(
            f"replicate_seeds lists {own}, the study's own seed (train.seed): "
            f"list only other seeds, e.g. {list(range(own + 1, own + 3))}"
        )
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"replicate_seeds lists a seed twice: {seeds}")
    return seeds


def fit_points(points: Iterable[dict]) -> list[tuple[str, float]]:
    """A fit set from the config as (size, M) pairs."""
    return [(str(p["size"]), float(p["M"])) for p in points]


def loss_fit_set(config: dict) -> list[tuple[str, float]]:
    return fit_points(config["loss_fit_set"])


def error_fit_set(config: dict) -> list[tuple[str, float]]:
    """The error law's fit set: the loss fit set plus `error_fit_extra` (paper Table 1)."""
    return loss_fit_set(config) + fit_points(config.get("error_fit_extra", []))


# ---- checks made when the workflow is planned -------------------------------------------


SCHEMA_DOC = "workflow/schemas/config.schema.yaml"


def schema_error(error: Exception) -> Exception:
    """A config that fails the schema, as a ConfigError of a few lines: the key, the value, the rule.

    `snakemake.utils.validate` raises a WorkflowError whose text holds the violated part of
    the schema (for a misspelt top-level key, the whole of it: ~1,250 lines). The jsonschema
    error it wraps (its context) has what a user needs. Any other error is returned as it is.
    """
    import difflib

    from jsonschema.exceptions import ValidationError

    cause = error if isinstance(error, ValidationError) else error.__context__
    if not isinstance(cause, ValidationError):
        return error
    # A value that matches no branch of an anyOf (a name or null): the branch it came closest to.
    while cause.context:
        cause = min(cause.context, key=lambda e: (e.validator == "type", len(e.relative_schema_path)))
    key = _key_path(cause.absolute_path)
    schema = cause.schema if isinstance(cause.schema, dict) else {}
    if cause.validator == "additionalProperties" and isinstance(cause.instance, dict):
        known = list(schema.get("properties", {}))
        lines = []
        for unknown in (k for k in cause.instance if k not in known):
            close = difflib.get_close_matches(str(unknown), known, n=3)
            hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
            lines.append(f"config key `{_key_path([*cause.absolute_path, unknown])}` is not a known key{hint}")
        lines.append(f"known keys {'at the top level' if not key else f'of `{key}`'}: {', '.join(known)}")
    else:
        names = "propertyNames" in cause.relative_schema_path
        where = f"config key `{key or '(top level)'}`" + (": the name" if names else " =")
        lines = [f"{where} {_short(cause.instance)} {_rule(cause)}"]
        description = schema.get("description")
        if description:
            lines.append(f"schema: {' '.join(description.split())}")
    lines.append(f"every key is documented in {SCHEMA_DOC}")
    return ConfigError("\n".join(lines))


def _key_path(parts) -> str:
    """A config key as a user writes it: sizes.s1.heads, loss_fit_set[2].M."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(value, limit: int = 120) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rule(error) -> str:
    """The violated rule, without repeating the value the message starts with."""
    value = repr(error.instance)
    message = error.message
    return message[len(value):].strip() if message.startswith(value) else f"- {message}"


def has_tasks(config: dict) -> bool:
    """Whether the study has downstream results: a `tables` testbed without tasks.csv is loss-only."""
    if config.get("testbed_format", "trained") != "tables" or not config.get("testbed_path"):
        return True
    return (Path(config["testbed_path"]) / "tasks.csv").exists()


def check_study(config: dict) -> None:
    """Every check of the config that needs no trained model, made when the workflow is planned.

    `config` has been validated by the schema (defaults filled in). Raises ConfigError naming
    the key, the value and how to fix it, so that `snakemake -n` fails on what would otherwise
    fail after the grid has trained.
    """
    trained = config.get("testbed_format", "trained") == "trained"
    _check_fit_sets_apart(config)
    if has_tasks(config):
        for key in ("threshold", "reference_size"):
            if config.get(key) is None:
                raise ConfigError(f"`{key}` is missing: a study with downstream tasks selects them by "
                                  f"threshold t at the reference size (e.g. threshold: 10, reference_size: s3)")
    if not trained:
        _check_testbed_path(config)
        return
    datasets = list(config["datasets"])
    for key in ("tokenizer.dataset", "tasks.heldout_dataset"):
        section, name = key.split(".")
        value = config.get(section, {}).get(name)
        if value is not None and value not in datasets:
            raise ConfigError(f"{key} = {value!r} is not a dataset under `datasets` "
                              f"(known: {', '.join(datasets)}); name one of them, or leave it out for the first")
    validation_sets = config.get("validation_sets", {})
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
    runs = training_runs(config)
    if not runs:
        raise ConfigError("`grid` has no runs to train; add a block such as "
                          "{sizes: [s1, s2], multipliers: [10, 20]} (a study of published results sets "
                          "testbed_format and testbed_path instead)")
    _check_runs_in_grid(config, runs)


def _check_fit_sets_apart(config: dict) -> None:
    """No held-out run is also a fit run: it would test the laws on a point they were fitted to."""
    fit = [("loss_fit_set", point) for point in loss_fit_set(config)]
    fit += [("error_fit_extra", point) for point in fit_points(config.get("error_fit_extra", []))]
    for index, (size, multiplier) in enumerate(fit_points(config.get("held_out", []))):
        for key, (fit_size, fit_multiplier) in fit:
            if fit_size == size and math.isclose(fit_multiplier, multiplier, rel_tol=1e-6):
                raise ConfigError(f"held_out[{index}] = {{size: {size}, M: {multiplier:g}}} is also in {key}: a "
                                  f"held-out run tests the laws only if they were not fitted to it; drop it from "
                                  f"`held_out` or from `{key}`")


def _check_testbed_path(config: dict) -> None:
    path, form = config.get("testbed_path"), config["testbed_format"]
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
    from lmscale import corpus

    for name, entry in config["datasets"].items():
        source = entry.get("source", "stdlib")
        if entry.get("shards", 1) == 1 or source not in ("stdlib", "local"):
            continue
        try:
            files = len(corpus.local_paths(entry) if source == "local" else corpus.stdlib_paths(entry))
        except FileNotFoundError as error:
            raise ConfigError(f"datasets.{name}: {error}") from None
        if files < entry["shards"]:
            raise ConfigError(f"datasets.{name}.shards = {entry['shards']}, but its {source} source has {files} "
                              f"file(s) and a shard is a run of whole files; set shards to at most {files}")


def _check_sizes(config: dict) -> None:
    """Every size's shape builds, and its batch splits into whole micro-batches."""
    from lmscale.model import Shape
    from lmscale.jobs import Hyperparameters

    for label, size in config.get("sizes", {}).items():
        try:
            Shape.from_config(label, size)
        except ValueError as error:
            raise ConfigError(f"sizes.{label}: {str(error).removeprefix(f'size {label}: ')}; "
                              f"choose heads (and kv_heads) that divide it") from None
        hp = Hyperparameters.resolve(size, config.get("train", {}))
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
        for index, (size, multiplier) in enumerate(fit_points(config.get(key, []))):
            # The laws are fitted on every dataset: each must have the run.
            for dataset in config["datasets"]:
                if not in_grid(dataset, size, multiplier):
                    refuse(f"{key}[{index}]", size, multiplier, dataset)
    for index, (size, multiplier) in enumerate(fit_points(config.get("held_out", []))):
        # A held-out run may exist for one dataset only (the paper's 1.4B at M = 640).
        if not any(in_grid(dataset, size, multiplier) for dataset in config["datasets"]):
            refuse(f"held_out[{index}]", size, multiplier)
    reference = config.get("reference_size")
    if reference is not None and reference not in sizes:
        raise ConfigError(f"reference_size = {reference!r} is not a size of the grid (its sizes: "
                          f"{', '.join(sizes)}); name the size whose models choose the tasks")


def to_json(value: Any) -> str:
    """A compact, key-sorted JSON string: the form structured values take as rule params."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_yaml(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}
