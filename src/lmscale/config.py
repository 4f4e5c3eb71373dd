"""The study's configuration: the training grid, fit sets and targets.

The Snakefile and the CLI read the config through these functions, so that a
run's name, its token multiplier and the fit sets are spelled in one place.
Each takes the config as the schema filled it in (its defaults are written
there alone). This module is the floor of the package and imports nothing of
lmscale; the checks that build what the stages build live in lmscale.checks.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
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
    datasets = list(config["datasets"])
    sizes = config["sizes"]
    runs: dict[tuple, Run] = {}
    for index, block in enumerate(config["grid"]):
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
        for point in dict.fromkeys(error_fit_set(config)):
            size, multiplier = point.size, point.M
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
    seeds = [int(seed) for seed in config["replicate_seeds"]]
    own = int(config["train"]["seed"])
    if own in seeds:
        raise ConfigError(
            f"replicate_seeds lists {own}, the study's own seed (train.seed): "
            f"list only other seeds, e.g. {list(range(own + 1, own + 3))}"
        )
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"replicate_seeds lists a seed twice: {seeds}")
    return seeds


def size_settings(config: dict, size: str) -> dict:
    """What a size trains with: the `train` block, the size's own settings laid over it.

    A size may set any hyperparameter of `train` and its `gpus`; the schema gives a size no default
    of these, so one it leaves out (or sets to null) is the train block's. The size's shape comes
    along (width, ..., kv_heads), and so do its resources (mem_mb, runtime) where it sets them.
    """
    train, own = config["train"], config["sizes"][size]
    return {**train, **{key: value for key, value in own.items() if value is not None or key not in train}}


@dataclass(frozen=True)
class Point:
    """A run of a fit set or a held-out run: a size at a token multiplier. The one type of a fit
    set, from the config (`fit_points`) through the jobs (lmscale.jobs) to the fit."""

    size: str
    M: float


def fit_points(points: Iterable[dict]) -> list[Point]:
    """A fit set (or the held-out runs) from the config: its {size, M} entries as Points."""
    return [Point(str(p["size"]), float(p["M"])) for p in points]


def loss_fit_set(config: dict) -> list[Point]:
    return fit_points(config["loss_fit_set"])


def error_fit_set(config: dict) -> list[Point]:
    """The error law's fit set: the loss fit set plus `error_fit_extra` (paper Table 1)."""
    return loss_fit_set(config) + fit_points(config["error_fit_extra"])


# ---- a config the schema refuses, and what the workflow plans from it ---------------------


SCHEMA_DOC = "workflow/schemas/config.schema.yaml"


def schema_error(error: Exception) -> Exception:
    """A config that fails the schema, as a ConfigError of a few lines: the key, the value, the rule.

    `snakemake.utils.validate` raises a WorkflowError whose text holds the violated part of
    the schema (for a misspelt top-level key, the whole of it: ~1,250 lines). The jsonschema
    error it wraps (its context) has what a user needs. Any other error is returned as it is.
    """
    # deferred: jsonschema takes ~45 ms to import, and only the Snakefile's validation needs it
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
    elif cause.validator == "required" and isinstance(cause.instance, dict):
        lines = [_missing_key(cause.instance, cause.validator_value, list(schema.get("properties", {})), key)]
    else:
        names = "propertyNames" in cause.relative_schema_path
        where = f"config key `{key or '(top level)'}`" + (": the name" if names else " =")
        lines = [f"{where} {_short(cause.instance)} {_rule(cause)}"]
        description = schema.get("description")
        if description:
            lines.append(f"schema: {' '.join(description.split())}")
    lines.append(f"every key is documented in {SCHEMA_DOC}")
    return ConfigError("\n".join(lines))


def _missing_key(instance: dict, required, known: list, key: str) -> str:
    """A required key left out, named, with the unknown key it was likely misspelt as."""
    missing = [name for name in required if name not in instance]
    unknown = [name for name in instance if name not in known]
    line = f"config key `{_key_path([key, missing[0]] if key else [missing[0]])}` is missing: it is required"
    close = difflib.get_close_matches(missing[0], [str(name) for name in unknown], n=1, cutoff=0.6)
    return line + (f"; is `{close[0]}` a misspelling of it?" if close else "")


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


# ---- the config as the command line and a config file give it, before the schema reads it ----


def check_yaml_file(path: str | Path) -> None:
    """A config file that is not YAML (nor JSON) is refused in one line naming it, the line and the
    column: Snakemake's own message ("Config file is not valid JSON or YAML") names neither."""
    try:
        load_yaml(path)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}, {_yaml_problem(error)}; mend the YAML there") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """'line 3, column 12: not valid YAML: expected ...', the line and column counted from 1."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}not valid YAML: {problem}" + (f" ({context})" if context else "")


def typed_command_line(config: dict, entries: Iterable[str], schema_path: str | Path) -> None:
    """Types the values given with `--config KEY=VALUE` in `config` (in place) as a config file
    would type them.

    Snakemake reads a nested value (`--config 'fit={bootstrap: 20}'`, the form the docs use)
    with YAML's base loader, which keeps every number and boolean of it as text, and the schema
    would refuse `fit.bootstrap = "20"`. Each such value is read again from the command line's
    text with `yaml.safe_load`, as a config file is, and merged where Snakemake merged it: a
    mapping into its block (keys it does not name keep their values), a list in place of the
    old. A top-level word the schema does not allow as text (`true`, `null`) is read as YAML
    too; Snakemake has already typed a plain number. A value that starts as a YAML mapping or
    list but is not one (an unclosed brace) is refused in one line with its column."""
    schema = load_yaml(schema_path)
    typed: dict = {}
    for entry in entries or ():
        key, equals, text = str(entry).partition("=")
        if not equals or key not in config:
            continue
        text = text.strip("'\"")  # as Snakemake reads the value
        value = _typed_value(key, text, _schema_types(schema.get("properties", {}).get(key, {}), schema))
        if value is not _AS_SNAKEMAKE_READ:
            _merge(typed, {key: value})
        elif key in typed:  # a later entry for the same key: it replaced what came before
            del typed[key]
    _merge(config, typed)


_AS_SNAKEMAKE_READ = object()


def _typed_value(key: str, text: str, kinds: set[str]):
    """The value of `--config key=text` as a config file would read it, or _AS_SNAKEMAKE_READ
    where Snakemake's reading stands (a number, True/False, a name)."""
    for number in (int, float):
        try:
            number(text)
            return _AS_SNAKEMAKE_READ
        except ValueError:
            pass
    if text in ("True", "False"):
        return _AS_SNAKEMAKE_READ
    try:
        structure = yaml.load(text, Loader=yaml.BaseLoader)  # what Snakemake made of it
    except yaml.YAMLError as error:
        if text.lstrip()[:1] in ("{", "[") and (not kinds or kinds & {"object", "array"}):
            raise ConfigError(f"--config {key}={text!r}: {_yaml_problem(error)}; write it as in a config file, "
                              f"every brace closed, the whole KEY=VALUE quoted for the shell, e.g. "
                              f"--config 'fit={{bootstrap: 20}}'") from None
        return _AS_SNAKEMAKE_READ
    if isinstance(structure, (dict, list)) or (kinds and "string" not in kinds):
        return yaml.safe_load(text)
    return _AS_SNAKEMAKE_READ


def _schema_types(node: dict, schema: dict) -> set[str]:
    """The JSON types a schema node allows (through $ref, anyOf, oneOf); empty when it says none."""
    if "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {})
        return _schema_types(target, schema) | _schema_types({k: v for k, v in node.items() if k != "$ref"}, schema)
    kinds = node.get("type", [])
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        kinds |= _schema_types(branch, schema)
    return kinds


def _merge(config: dict, overrides: dict) -> None:
    """`overrides` into `config` as Snakemake merges a config file or `--config` (a mapping into a
    mapping, key by key; anything else in place of the old)."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _merge(config[key], value)
        else:
            config[key] = value


def has_tasks(config: dict) -> bool:
    """Whether the study has downstream results: a `tables` testbed without tasks.csv is loss-only."""
    if config["testbed_format"] != "tables" or not config["testbed_path"]:
        return True
    return (Path(config["testbed_path"]) / "tasks.csv").exists()


def to_json(value: Any) -> str:
    """A compact, key-sorted JSON string: the form structured values take as rule params."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_yaml(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}
