"""The analysis jobs: the imported testbed, the task selection, the laws, the backtest, predictions, figures."""

from __future__ import annotations

from dataclasses import dataclass

from lmscale.config import Point, fit_points, size_settings
from lmscale.jobs.base import Job


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
        return cls(dataset, valset, fit_points(config["loss_fit_set"]), fit["form"], fit["method"],
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
        return cls(dataset, valset, fit_points(config["loss_fit_set"] + config["error_fit_extra"]),
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
        return cls(FitLossJob.from_config(config, dataset, valset), error, fit_points(config["held_out"]),
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
        return cls(dataset, valset, config["targets"], fit_points(config["held_out"]))


# The files each kind of figure reads, in the order `lmscale figure --inputs` takes them (its rule
# names them so in workflow/rules/figures.smk).
FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "loss-heatmap": ("loss_table", "loss_law"),
    "error-heatmap": ("predictions",),
    "loss-vs-compute": ("loss_table", "loss_law"),
    "error-vs-loss": ("predictions", "error_law", "error_law_all"),
    "backtest": ("backtest", "summary"),
    "calibration": ("predictions", "summary"),
    "isoflop": ("loss_table", "loss_law"),
    "per-task": ("per_task", "summary"),
}


@dataclass(frozen=True)
class FigureJob(Job):
    """One figure of one dataset and validation set.

    `max_percent` only for heatmaps, `held_out` only where the figure reads the loss table
    (the predictions flag them already); `budgets` (FLOPs) only for the isoFLOP figure, where
    None means four budgets among the study's runs (lmscale.figures.isoflop.default_budgets).
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
                   fit_points(config["held_out"]) if reads_loss_table else None,
                   [float(C) for C in budgets] if budgets is not None else None)


# What a run's price (lmscale.jobs.resources.estimate: N, D, FLOPs, hours) and whether its corpus
# feeds it depend on, of a size's settings.
PRICE_KEYS = ("width", "depth", "heads", "kv_heads", "mlp_width", "context", "tie_embeddings", "batch_size",
              "micro_batch_size", "count_embeddings", "repeat_data", "gpus", "threads")


@dataclass(frozen=True)
class PlanCandidates(Job):
    """The runs a plan chooses among (`plan.candidates`), and those it never chooses."""

    source: str  # grid: candidate sizes x multipliers priced from their shapes; testbed: the loss table's runs
    sizes: list[str] | None  # None: every size smaller than the largest target
    multipliers: list[float] | None  # None: every multiplier of the testbed (grid: the grid's, filled in here)
    seeds: list[int]  # the seeds a chosen run may be trained with, its own first
    held_out: list[Point]  # never a candidate


@dataclass(frozen=True)
class PlanPricing(Job):
    """What prices a run from its size's shape."""

    sizes: dict  # label -> its settings (config.size_settings) that price its runs (PRICE_KEYS)
    vocab_size: int | None  # the BPE's; None: a pretrained tokenizer's, not known before it is fetched


@dataclass(frozen=True)
class PlanBudget(Job):
    """What the plan may spend, and the multiples of it the frontier tries."""

    given: dict | None  # {flops: F} or {gpu_hours: H}; None: the loss fit set's FLOPs, replicates included
    fit_set: list[Point]  # the study's loss fit set, which the default budget prices
    fit_replicates: int  # how many times the study trains each of its fit runs
    frontier: list[float]  # multiples of the budget


@dataclass(frozen=True)
class PlanPrior(Job):
    """The law the plan reasons from before any run is trained."""

    law: dict | None  # {form, params}; None: the study's own loss law and its backtest's model error
    default_noise_sd: float | None


@dataclass(frozen=True)
class PlanJob(Job):
    """The runs a budget should buy so that the loss predicted at the targets is most certain
    (the `plan` block; docs/planning.md)."""

    dataset: str
    valset: str
    targets: list[dict]  # {name, size, N, M}, size or N None
    candidates: PlanCandidates
    pricing: PlanPricing
    budget: PlanBudget
    prior: PlanPrior
    fit_needs: dict  # runs (None: the law's parameters + 1), sizes, multipliers, per_size (None: no cap)
    solver: dict  # tolerance, max_solves, seconds
    dpi: int

    @classmethod
    def from_config(cls, config: dict) -> "PlanJob":
        plan, candidates = config["plan"], config["plan"]["candidates"]
        choose_from = candidates["from"] or ("grid" if config["testbed_format"] == "trained" else "testbed")
        multipliers = candidates["multipliers"]
        if multipliers is None and choose_from == "grid":
            multipliers = sorted({float(m) for block in config["grid"] for m in block["multipliers"]})
        tokenizer = config["tokenizer"]
        targets = plan["targets"] if plan["targets"] is not None else config["held_out"]
        return cls(
            dataset=plan["dataset"] or next(iter(config["datasets"])), valset=plan["valset"] or config["valsets"][0],
            targets=[target_entry(target) for target in targets],
            candidates=PlanCandidates(
                choose_from, candidates["sizes"], [float(m) for m in multipliers] if multipliers else None,
                candidates["seeds"] or [config["train"]["seed"], *config["replicate_seeds"]],
                fit_points(config["held_out"])),
            pricing=PlanPricing(
                {label: {key: value for key, value in size_settings(config, label).items() if key in PRICE_KEYS}
                 for label in config["sizes"]},
                tokenizer["vocab_size"] if tokenizer["kind"] == "bpe" else None),
            budget=PlanBudget(plan["budget"], fit_points(config["loss_fit_set"]), 1 + len(config["replicate_seeds"]),
                              [float(f) for f in plan["frontier"]]),
            prior=PlanPrior(plan["prior"], plan["default_noise_sd"]),
            fit_needs=dict(plan["fit_needs"]), solver=dict(plan["solver"]), dpi=config["figures"]["dpi"],
        )


def target_entry(target: dict) -> dict:
    """A plan's target as {name, size, N, M}: a size's N is found when the plan is made."""
    size, N, M = target.get("size"), target.get("N"), float(target["M"])
    name = target.get("name") or (f"{size}_M{M:g}" if size is not None else f"N{float(N):.4g}_M{M:g}")
    return {"name": str(name), "size": size, "N": None if N is None else float(N), "M": M}


@dataclass(frozen=True)
class PerTaskJob(Job):
    """The per-task error laws, backtest and predictions of one dataset and validation set."""

    backtest: BacktestJob  # the loss law's job, the error fit set and bootstrap (its `error`), held-out runs, steps
    targets: list[dict]  # the study's targets: a run, a budget or a loss goal predicted (an error goal: the average's)
    tasks: list[str] | None  # the candidate tasks; None: every task of the table
    min_signal: float  # the least fall across the fit set, in units of the points' noise, of a task not kept

    @classmethod
    def from_config(cls, config: dict, dataset: str, valset: str, tag: str) -> "PerTaskJob":
        section = config["per_task"]
        tasks = None if section["tasks"] is None else list(section["tasks"])
        return cls(BacktestJob.from_config(config, dataset, valset, tag), list(config["targets"]), tasks,
                   float(section["min_signal"]))
