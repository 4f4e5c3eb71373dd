"""The analysis jobs: the imported testbed, the task selection, the laws, the backtest, predictions, figures."""

from __future__ import annotations

from dataclasses import dataclass

from lmscale.descriptions.base import Job


@dataclass(frozen=True)
class ImportTestbedJob(Job):
    """Published results read into the testbed tables."""

    format: str
    path: str
    datasets: list[str]
    valsets: list[str]
    size_labels: dict

    @classmethod
    def from_config(cls, config: dict) -> "ImportTestbedJob":
        return cls(config["testbed_format"], config["testbed_path"], list(config["datasets"]),
                   list(config["valsets"]), config["size_labels"])


@dataclass(frozen=True)
class SelectTasksJob(Job):
    """The tasks some reference-size model lifts `threshold` points above chance."""

    reference_size: str
    threshold: float

    @classmethod
    def from_config(cls, config: dict, t: str) -> "SelectTasksJob":
        return cls(config["reference_size"], float(t))


@dataclass(frozen=True)
class Point:
    """A run of a fit set or a held-out run: a size at a token multiplier."""

    size: str
    M: float


def points(entries: list[dict]) -> list[Point]:
    return [Point(str(entry["size"]), float(entry["M"])) for entry in entries]


@dataclass(frozen=True)
class FitLossJob(Job):
    """The loss law of one dataset and validation set, fitted to the loss fit set."""

    dataset: str
    valset: str
    fit_set: list[Point]
    form: str
    method: str
    huber_delta: float
    bootstrap: int
    seed: int

    @classmethod
    def from_config(cls, config: dict, dataset: str, valset: str) -> "FitLossJob":
        fit = config["fit"]
        return cls(dataset, valset, points(config["loss_fit_set"]), fit["form"], fit["method"],
                   float(fit["huber_delta"]), fit["bootstrap"], fit["seed"])


@dataclass(frozen=True)
class FitErrorJob(Job):
    """The error law of one dataset and validation set, over the selected tasks or all of them."""

    dataset: str
    valset: str
    fit_set: list[Point]  # the loss fit set plus error_fit_extra
    all_tasks: bool  # the average over every task; else over a selection (an input)
    bootstrap: int
    seed: int

    @classmethod
    def from_config(cls, config: dict, dataset: str, valset: str, taskset: str) -> "FitErrorJob":
        return cls(dataset, valset, points(config["loss_fit_set"] + config["error_fit_extra"]),
                   taskset == "all", config["fit"]["bootstrap"], config["fit"]["seed"])


@dataclass(frozen=True)
class BacktestJob(Job):
    """The rollout of one dataset and validation set: the laws refitted with their largest fit
    sizes left out, one more at each of up to `steps` steps, predicting every run they lack."""

    loss: FitLossJob
    error: FitErrorJob | None  # the error law over the selected tasks (the all-task law follows it); None: loss only
    held_out: list[Point]  # never predicted here: they stay the final check
    steps: int

    @classmethod
    def from_config(cls, config: dict, dataset: str, valset: str, tag: str) -> "BacktestJob":
        error = None if tag == "loss" else FitErrorJob.from_config(config, dataset, valset, tag)
        return cls(FitLossJob.from_config(config, dataset, valset), error, points(config["held_out"]),
                   config["backtest"]["steps"])


@dataclass(frozen=True)
class PredictJob(Job):
    """The chained predictions of every model and target of one dataset and validation set."""

    dataset: str
    valset: str
    targets: list[dict]  # runs never trained: {name, N, M}
    held_out: list[Point]

    @classmethod
    def from_config(cls, config: dict, dataset: str, valset: str) -> "PredictJob":
        return cls(dataset, valset, config["targets"], points(config["held_out"]))


@dataclass(frozen=True)
class FigureJob(Job):
    """One figure of one dataset and validation set.

    `max_percent` only for heatmaps, `held_out` only where the figure reads the loss table
    (the predictions flag them already); `budgets` (FLOPs) only for the isoFLOP figure, where
    None means four budgets among the study's runs (lmscale.isoflop.default_budgets).
    """

    kind: str
    dataset: str
    valset: str
    dpi: int
    max_percent: float | None
    held_out: list[Point] | None
    budgets: list[float] | None

    @classmethod
    def from_config(cls, config: dict, kind: str, dataset: str, valset: str) -> "FigureJob":
        figures = config["figures"]
        heatmap = kind.endswith("heatmap")
        reads_loss_table = kind.startswith("loss")
        budgets = figures["isoflop_budgets"] if kind == "isoflop" else None
        return cls(kind, dataset, valset, figures["dpi"],
                   float(figures["heatmap_max_percent"]) if heatmap else None,
                   points(config["held_out"]) if reads_loss_table else None,
                   [float(C) for C in budgets] if budgets is not None else None)
