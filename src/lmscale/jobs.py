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
other. A new option of a stage is a schema entry and a field here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, replace
from typing import Any

from lmscale.config import ConfigError, replicate_seed_of, replicate_suffix, run_name, shard_of, size_settings, to_json
from lmscale.model import Shape


class Job:
    """JSON in and out for a frozen dataclass of JSON values and nested dataclasses."""

    def to_json(self) -> str:
        return to_json(asdict(self))

    @classmethod
    def from_json(cls, text: str):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{cls.__name__}: not valid JSON ({error})") from None
        return _build(cls, values)


class Options(Job):
    """How a job is carried out, not what it computes. As a rule's param it stays this object,
    which Snakemake's rerun check leaves out (it records plain values only); the shell command
    receives `str(options)`, its JSON."""

    def __str__(self) -> str:
        return self.to_json()


def _build(cls, values):
    """`cls` from a dict of JSON values, nested dataclasses (and lists of them) built too."""
    if not isinstance(values, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {values!r}")
    names = [field.name for field in dataclasses.fields(cls)]
    missing = [name for name in names if name not in values]
    unknown = [name for name in values if name not in names]
    if missing or unknown:
        raise ValueError(f"{cls.__name__}: missing field(s) {', '.join(missing) or 'none'}, "
                         f"unknown field(s) {', '.join(unknown) or 'none'}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name], values[name]) for name in names})


def _value(kind, value):
    if value is None:
        return None
    if dataclasses.is_dataclass(kind):
        return _build(kind, value)
    arguments = [argument for argument in typing.get_args(kind) if argument is not type(None)]
    if typing.get_origin(kind) is list:
        return [_value(arguments[0], item) for item in value]
    if len(arguments) == 1:  # X | None
        return _value(arguments[0], value)
    return value


def add_argument(parser: argparse.ArgumentParser, cls, flag: str = "--job", required: bool = True) -> None:
    """`--job` (or `--options`): a description as JSON, read into `cls`; the help names its fields."""

    def parse(text: str):
        try:
            return cls.from_json(text)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    summary = (cls.__doc__ or "").strip().splitlines()[0]
    fields = ", ".join(field.name for field in dataclasses.fields(cls))
    parser.add_argument(flag, required=required, type=parse, metavar="JSON",
                        help=f"{summary} As JSON (lmscale.jobs.{cls.__name__}): {fields}")


def section(config: dict, key: str, cls) -> dict:
    """The fields of `cls` from the config block `key`."""
    return {field.name: config[key][field.name] for field in dataclasses.fields(cls)}


# ---- data --------------------------------------------------------------------------------


# Keys of a `datasets` or `validation_sets` entry that are not part of where its text comes from.
SPLIT_KEYS = ("validation_fraction", "tokens", "dataset", "shards")


@dataclass(frozen=True)
class CorpusJob(Job):
    """A text source cut into splits: a training dataset's train and validation, or a validation set's own."""

    source: dict
    splits: list[str]
    validation_fraction: float | None  # None for a single split: every document goes into it

    @classmethod
    def from_config(cls, config: dict, dataset: str | None = None, valset: str | None = None) -> "CorpusJob":
        if dataset is not None:
            entry = config["datasets"][dataset]
            return cls(text_source(entry), ["train", "validation"], entry["validation_fraction"])
        return cls(text_source(config["validation_sets"][valset]), ["validation"], None)


@dataclass(frozen=True)
class CorpusShardJob(Job):
    """Shard `shard` of the `shards` a training dataset's source is cut into, in train and validation.

    The same source and split as its dataset's CorpusJob: the shards together hold its documents.
    """

    source: dict
    validation_fraction: float
    shard: int  # from 0
    shards: int

    @classmethod
    def from_config(cls, config: dict, dataset: str, shard: str) -> "CorpusShardJob":
        entry = config["datasets"][dataset]
        index, count = shard_of(shard)
        if count != entry["shards"]:
            raise ConfigError(f"shard {shard} of dataset {dataset!r}: the dataset is cut into "
                              f"datasets.{dataset}.shards = {entry['shards']} shards, not {count}")
        return cls(text_source(entry), entry["validation_fraction"], index, count)


def text_source(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key not in SPLIT_KEYS}


@dataclass(frozen=True)
class TokenizerJob(Job):
    """A byte-level BPE trained on a split, or a pretrained tokenizer fetched by name."""

    kind: str
    vocab_size: int
    max_bytes: int | None
    name: str | None

    @classmethod
    def from_config(cls, config: dict) -> "TokenizerJob":
        return cls(**section(config, "tokenizer", cls))


@dataclass(frozen=True)
class TokenizerOptions(Options):
    """Where a pretrained tokenizer is read from, offline: changes no result."""

    hf_cache: str | None  # the Hugging Face cache the prefetch job filled (None: Hugging Face's default)

    @classmethod
    def from_config(cls, config: dict) -> "TokenizerOptions":
        return cls(config["hf_cache"])


@dataclass(frozen=True)
class PrefetchJob(Job):
    """What the offline jobs will read from the Hugging Face Hub, fetched into the cache once.

    The datasets of the lm-eval tasks the study evaluates, and a pretrained tokenizer named by
    its hub id; the cache they go to decides where the data are, so it is part of the job.
    """

    tasks: dict | None  # the `tasks` section's choice of tasks (suite, table, include, exclude); None: no lm-eval data
    tokenizer: str | None  # a pretrained tokenizer's hub id; None: a BPE of the study's own or a local folder
    hf_cache: str | None  # None: Hugging Face's default cache

    @classmethod
    def from_config(cls, config: dict, tasks: dict | None, tokenizer: str | None) -> "PrefetchJob":
        return cls(tasks, tokenizer, config["hf_cache"])

    def needed(self) -> bool:
        """Whether the study reads anything from the Hub at all (the default study does not)."""
        return self.tasks is not None or self.tokenizer is not None


# ---- training ----------------------------------------------------------------------------


# Keys of a size's config that are resources, not part of the model or its training.
RESOURCE_KEYS = ("gpus", "mem_mb", "runtime")


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings: `train` in the config, overridden per size by `sizes.<label>`.

    The schema's defaults are the paper's (Gadre et al. 2024, appendix): AdamW with
    beta2 0.95, lr 3e-3, weight decay 0.033, z-loss 1e-4, cosine to 3e-5. Every field
    enters the checkpoint fingerprint.
    """

    batch_size: int  # sequences per optimizer step
    micro_batch_size: int | None  # sequences per forward pass (gradient accumulation); None: batch_size
    lr: float
    lr_floor: float  # where the cosine ends
    warmup: int  # linear warmup, in steps
    weight_decay: float
    beta1: float
    beta2: float
    eps: float
    z_loss: float
    grad_clip: float
    seed: int  # initial weights and data order
    repeat_data: bool  # allow D beyond the train split (epochs > 1)
    # The N of D = M x N (and of C = 6 N D): every parameter (the paper), or without the
    # embeddings (Kaplan et al. 2020), which draws cleaner laws where the embedding is a
    # large share of a small model.
    count_embeddings: bool

    @classmethod
    def resolve(cls, settings: dict) -> "Hyperparameters":
        """The fields of a size's settings (config.size_settings: the train block, the size's own over it)."""
        fields = cls.__dataclass_fields__
        merged = {k: v for k, v in settings.items() if k in fields}
        # 1 and 1.0 are the same setting; one spelling keeps the run's fingerprint stable.
        for key, value in merged.items():
            if fields[key].type == "float" and value is not None:
                merged[key] = float(value)
        return cls(**merged)


@dataclass(frozen=True)
class TrainJob(Job):
    """One run of the N x M grid: its size's shape, hyperparameters and token multiplier.

    A replicate (`replicate_seeds`) carries its seed in place of the study's.
    """

    dataset: str
    size: str
    multiplier: float
    replicate_seed: int | None  # None: the study's own seed; else a replicate trained with this seed
    shape: Shape
    hyperparameters: Hyperparameters

    @classmethod
    def from_config(cls, config: dict, dataset: str, size: str, mult: str | float,
                    replica: str = "") -> "TrainJob":
        size_config = {k: v for k, v in config["sizes"][size].items() if k not in RESOURCE_KEYS}
        hp = Hyperparameters.resolve(size_settings(config, size))
        replicate_seed = replicate_seed_of(replica)
        if replicate_seed is not None:
            hp = replace(hp, seed=replicate_seed)
        return cls(dataset, size, float(mult), replicate_seed,
                   Shape.from_config(size, size_config), hp)

    @property
    def name(self) -> str:
        return run_name(self.size, self.multiplier, self.replicate_seed)


@dataclass(frozen=True)
class Cooldown:
    """How a warmup-stable-decay run ends (`train.schedule: wsd`): the decay from the stable rate
    (`lr`) to `lr_floor` over the last share of the run's own D = M x N."""

    cooldown: float  # share of the branch's D: its branch point is D x (1 - cooldown) tokens into the trunk
    cooldown_shape: str  # linear, or 1-sqrt (Hägele et al. 2024)

    @classmethod
    def from_config(cls, config: dict) -> "Cooldown":
        return cls(float(config["train"]["cooldown"]), config["train"]["cooldown_shape"])


def trunk_hyperparameters(hp: Hyperparameters) -> Hyperparameters:
    """A trunk's settings: its branches' without lr_floor, which only the cooldown reaches (so a
    changed floor reruns the branches, not the trunk)."""
    return replace(hp, lr_floor=None)


@dataclass(frozen=True)
class TrunkJob(Job):
    """The stable phase a WSD schedule shares among every M of one size and seed (`train.schedule: wsd`).

    Linear warmup over `warmup` steps to the stable rate `lr`, then `lr` held, in one data order:
    the trunk's state after step s is a function of s alone, whatever M it was trained for. It
    trains to the branch point of `multiplier`, the largest M of its size and seed in the grid;
    a larger M is another trunk job, which extends the states this one left.
    """

    dataset: str
    size: str
    multiplier: float  # the largest M it serves: it trains to that M's branch point
    replicate_seed: int | None
    shape: Shape
    hyperparameters: Hyperparameters  # lr_floor None: the floor is the cooldown's, in its branches

    @classmethod
    def from_config(cls, config: dict, dataset: str, size: str, top: str | float, replica: str = "") -> "TrunkJob":
        run = TrainJob.from_config(config, dataset, size, top, replica)
        return cls(dataset, size, run.multiplier, run.replicate_seed, run.shape,
                   trunk_hyperparameters(run.hyperparameters))

    @property
    def name(self) -> str:
        return trunk_name(self.size, self.replicate_seed)


def trunk_name(size: str, replicate_seed: int | None) -> str:
    """The trunk of a size and seed: 's1', or 's1_seed1' for a replicate's, as its folder is named."""
    return f"{size}{replicate_suffix(replicate_seed)}"


@dataclass(frozen=True)
class BranchJob(Job):
    """One run of the N x M grid under `train.schedule: wsd`: its trunk's stable phase to the branch
    point, then its own cooldown to D = M x N. It ends as the TrainJob of the same run would, a
    model of D tokens, and is evaluated the same way."""

    dataset: str
    size: str
    multiplier: float
    replicate_seed: int | None
    shape: Shape
    hyperparameters: Hyperparameters  # lr: the stable rate; lr_floor: where the cooldown ends
    cooldown: Cooldown

    @classmethod
    def from_config(cls, config: dict, dataset: str, size: str, mult: str | float,
                    replica: str = "") -> "BranchJob":
        run = TrainJob.from_config(config, dataset, size, mult, replica)
        return cls(dataset, size, run.multiplier, run.replicate_seed, run.shape, run.hyperparameters,
                   Cooldown.from_config(config))

    @property
    def name(self) -> str:
        return run_name(self.size, self.multiplier, self.replicate_seed)

    @property
    def trunk(self) -> TrunkJob:
        """The trunk it continues (trained to this branch's own M: its states are the same at every step)."""
        return TrunkJob(self.dataset, self.size, self.multiplier, self.replicate_seed, self.shape,
                        trunk_hyperparameters(self.hyperparameters))


@dataclass(frozen=True)
class TrainOptions(Options):
    """How a run is carried out, not what it computes: changing any of these retrains nothing."""

    log_every: int  # steps per line of train_log.jsonl
    checkpoint_every: int  # steps between resumable checkpoints
    keep_checkpoints: bool  # keep them after the run completes
    device: str  # auto (cuda when present), cpu or cuda
    parallel: str  # how several processes share a run: auto, ddp or fsdp
    processes: int  # processes of a CPU job (a GPU job runs one per GPU)
    # Whether the step is compiled (torch.compile): auto, on or off (YAML reads a bare on/off as
    # true/false). An option, not part of the job: a compiled step computes what the eager one
    # does, rounding apart, as the same run on another device does (`device` is an option too);
    # a run resumes a checkpoint written either way, and switching it retrains nothing.
    compile: str | bool

    @classmethod
    def from_config(cls, config: dict) -> "TrainOptions":
        return cls(**section(config, "train", cls))


@dataclass(frozen=True)
class TrunkOptions(Options):
    """Where a trunk stops and leaves its states, and how it is carried out: none of it changes a
    state (each a function of its step), so changing it retrains no trunk.

    The branch points are D x (1 - cooldown) into the trunk for every M of the size and seed
    in the grid; the trunk stops at its own M's. A branch whose point has no state (a changed
    cooldown, an M added below the trunk's) trains the stable steps from the state before it.
    """

    train: TrainOptions
    cooldown: float
    multipliers: list[float]  # the Ms of its size and seed in the grid: a state at each one's branch point

    @classmethod
    def from_config(cls, config: dict, multipliers: list[float]) -> "TrunkOptions":
        return cls(TrainOptions.from_config(config), float(config["train"]["cooldown"]),
                   sorted(float(m) for m in multipliers))


# ---- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Valset:
    """A validation set of a loss evaluation."""

    name: str
    tokens: int  # the first tokens of its stream, the same for every model


@dataclass(frozen=True)
class EvalLossJob(Job):
    """A model's loss on every validation set of the study, in the order of its streams."""

    valsets: list[Valset]

    @classmethod
    def from_config(cls, config: dict) -> "EvalLossJob":
        # By name, the order of the rule's streams: the order keys are written in changes nothing.
        valsets = config["validation_sets"]
        return cls([Valset(name, valsets[name]["tokens"]) for name in sorted(valsets)])


@dataclass(frozen=True)
class TaskSuiteJob(Job):
    """The offline suite's documents: which tasks, how many documents, cut how."""

    tasks: list[str]
    seed: int
    size: int  # evaluated documents per task (at most)
    fewshot_pool: int
    context_lines: int
    context: int | None  # the models' shortest context: answers take at most half of it (None: unchecked)

    @classmethod
    def from_config(cls, config: dict, tasks: list[str], context: int) -> "TaskSuiteJob":
        settings = config["tasks"]
        return cls(list(tasks), settings["seed"], settings["size"], settings["fewshot_pool"],
                   settings["context_lines"], context)


@dataclass(frozen=True)
class EvalTasksJob(Job):
    """One model's downstream accuracy: the run it names and the tasks chosen from the suite."""

    dataset: str
    size: str
    multiplier: float
    tasks: dict  # the `tasks` section's choice of tasks: suite, include, exclude (and table)
    limit: int | None
    batch_size: int

    @classmethod
    def from_config(cls, config: dict, tasks: dict, dataset: str, size: str, mult: str) -> "EvalTasksJob":
        return cls(dataset, size, float(mult), tasks, config["tasks"]["limit"], config["tasks"]["batch_size"])


@dataclass(frozen=True)
class EvalTasksOptions(Options):
    """How an evaluation is carried out, not what it measures."""

    device: str  # torch device of the evaluation
    hf_cache: str | None  # the Hugging Face cache lm-eval's datasets are read from (None: Hugging Face's default)

    @classmethod
    def from_config(cls, config: dict) -> "EvalTasksOptions":
        return cls(config["tasks"]["device"], config["hf_cache"])


# ---- the testbed and the laws ------------------------------------------------------------


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
    (the predictions flag them already).
    """

    kind: str
    dataset: str
    valset: str
    dpi: int
    max_percent: float | None
    held_out: list[Point] | None

    @classmethod
    def from_config(cls, config: dict, kind: str, dataset: str, valset: str) -> "FigureJob":
        figures = config["figures"]
        heatmap = kind.endswith("heatmap")
        reads_loss_table = kind.startswith("loss")
        return cls(kind, dataset, valset, figures["dpi"],
                   float(figures["heatmap_max_percent"]) if heatmap else None,
                   points(config["held_out"]) if reads_loss_table else None)


JOBS: dict[str, Any] = {
    "corpus": CorpusJob, "corpus_shard": CorpusShardJob, "prefetch": PrefetchJob, "tokenizer": TokenizerJob,
    "train": TrainJob, "trunk": TrunkJob, "branch": BranchJob, "eval_loss": EvalLossJob,
    "task_suite": TaskSuiteJob, "eval_tasks": EvalTasksJob, "import_testbed": ImportTestbedJob,
    "select_tasks": SelectTasksJob, "fit_loss": FitLossJob, "fit_error": FitErrorJob,
    "backtest": BacktestJob, "predict": PredictJob, "figure": FigureJob,
}
