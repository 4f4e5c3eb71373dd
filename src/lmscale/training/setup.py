"""The run plan: what a run does, worked out before any weight exists, so that a refused run costs nothing.

`plan` opens the token stream, counts the model's parameters on the meta
device (no memory), lets the job's schedule set its budget D = M x N in whole
steps and its warmup, and refuses a run its data cannot feed. `Paths` is where
a run reads and writes: the files its rule names, and the folders it keeps
outside the workflow's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmscale.data.token_streams import open_tokens
from lmscale.jobs import BranchJob, Hyperparameters, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.model.architecture import build_config, parameter_counts
from lmscale.training.budget import Budget, SequenceOrder, check_enough_data
from lmscale.training.schedules import Schedule, schedule_of


@dataclass(frozen=True)
class Paths:
    """Where a run reads and writes."""

    tokens: Path  # the train token stream (.bin with its .json, or the index of its shards' streams)
    tokenizer: Path | None  # tokenizer.json; its folder's tokenizer files go beside the model (a trunk saves none)
    record: Path  # written last, when the run is whole: run.json (the model beside it), or a trunk's record
    checkpoints: Path  # resumable checkpoints and the log: outside the workflow's declared outputs
    # Under wsd, the trunk's folder (a trunk's `checkpoints` too): its log, and in states/ its state at
    # every branch point, kept for the branches; outside the declared outputs, so never deleted by a rerun.
    trunk: Path | None = None

    @property
    def model_dir(self) -> Path:
        """The model folder (Hugging Face format): run.json's."""
        return self.record.parent

    @property
    def tokenizer_dir(self) -> Path | None:
        return self.tokenizer.parent if self.tokenizer else None

    @property
    def states(self) -> Path | None:
        return self.trunk / "states" if self.trunk else None


@dataclass(frozen=True)
class Plan:
    """A run worked out before any weight exists."""

    schedule: Schedule  # the job, its budget, warmup and learning rate (lmscale.training.schedules)
    stream: dict  # the token stream's summary
    order: SequenceOrder
    counts: dict  # N with and without the embeddings
    epochs: float
    micro: int  # sequences per forward pass

    @property
    def job(self) -> TrainJob | TrunkJob | BranchJob:
        return self.schedule.job

    @property
    def hp(self) -> Hyperparameters:
        return self.schedule.job.hyperparameters

    @property
    def budget(self) -> Budget:
        return self.schedule.budget

    @property
    def warmup(self) -> int:
        """The job's warmup: cosine, at most half the run; wsd, the trunk's first steps."""
        return self.schedule.warmup

    @property
    def run(self) -> str:
        return self.schedule.run


def plan(job: TrainJob | TrunkJob | BranchJob, tokens_path: str | Path,
         options: TrainOptions | TrunkOptions | None = None) -> Plan:
    """The budget D = M x N in whole steps and the data order; refuses a run its data cannot feed.

    A branch has the budget of the same run under cosine, and its branch point; a trunk runs to
    the branch point of its M (where its TrunkOptions put it; other jobs need no options) and leaves a
    state at every branch point of the grid's Ms up to there.
    """
    import torch  # deferred: torch loads in seconds; the workflow imports this package to plan
    from transformers import Qwen3ForCausalLM  # deferred: transformers loads in seconds

    kind = schedule_of(job)
    hp = job.hyperparameters
    micro = hp.micro_batch_size or hp.batch_size
    if hp.batch_size % micro:
        raise ValueError(f"size {job.size}: batch_size {hp.batch_size} is not a multiple of micro_batch_size {micro}")
    tokens, stream = open_tokens(tokens_path)
    with torch.device("meta"):
        counts = parameter_counts(Qwen3ForCausalLM(build_config(job.shape, stream["vocab_size"],
                                                                stream["end_of_text_id"])))

    def budget_of(multiplier: float) -> Budget:
        return Budget.plan(counts, multiplier, hp.batch_size, job.shape.context, hp.count_embeddings)

    schedule = kind.plan(job, budget_of, {key: stream[key] for key in ("tokens", "tokenizer_sha256")}, options)
    order = SequenceOrder(tokens, job.shape.context, hp.seed)
    epochs = check_enough_data(f"{job.dataset}/{job.name}", schedule.budget, order.usable_tokens, hp.repeat_data)
    return Plan(schedule, stream, order, counts, epochs, micro)
