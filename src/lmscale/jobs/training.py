"""The training jobs: a run of the grid (cosine), and under wsd a trunk and its branches, with their options."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lmscale.config import replicate_seed_of, replicate_suffix, run_name, size_settings
from lmscale.jobs.base import Job, Options, section
from lmscale.model.architecture import Shape

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
