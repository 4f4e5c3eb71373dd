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

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says which and how to fix it."""


def format_multiplier(multiplier: float) -> str:
    """Token multiplier as it appears in file names: 20 -> '20', 2.5 -> '2.5'."""
    value = float(multiplier)
    if value <= 0 or not math.isfinite(value):
        raise ConfigError(f"token multiplier must be a positive number, got {multiplier!r}")
    return f"{value:g}"


def run_name(size: str, multiplier: float) -> str:
    """The name of one training run: '{size}_M{multiplier}', as in the file layout."""
    return f"{size}_M{format_multiplier(multiplier)}"


@dataclass(frozen=True)
class Run:
    """One model of the grid: a size trained on a dataset for M x N tokens."""

    dataset: str
    size: str
    multiplier: float

    @property
    def name(self) -> str:
        return run_name(self.size, self.multiplier)


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
    order = {size: i for i, size in enumerate(sizes)}
    return sorted(runs.values(), key=lambda r: (r.dataset, order[r.size], r.multiplier))


def fit_points(points: Iterable[dict]) -> list[tuple[str, float]]:
    """A fit set from the config as (size, M) pairs."""
    return [(str(p["size"]), float(p["M"])) for p in points]


def loss_fit_set(config: dict) -> list[tuple[str, float]]:
    return fit_points(config["loss_fit_set"])


def error_fit_set(config: dict) -> list[tuple[str, float]]:
    """The error law's fit set: the loss fit set plus `error_fit_extra` (paper Table 1)."""
    return loss_fit_set(config) + fit_points(config.get("error_fit_extra", []))


def to_json(value: Any) -> str:
    """A compact, key-sorted JSON string: the form structured values take as rule params."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_yaml(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}
