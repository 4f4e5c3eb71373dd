"""Learning-rate schedules, and one schedule object per job kind.

The rates, each a pure function of the optimizer step: `learning_rate` (linear
warmup, then cosine to the floor), `stable_rate` (linear warmup, then held: a
trunk's) and `cooldown_rate` (a branch: its trunk's rate to its branch point,
then the decay to the floor).

One schedule object per job kind holds everything in which the kinds differ,
so that the plan, the loop and the resume never ask which kind they run:

| job (lmscale.jobs) | schedule    | trains                                                              |
| ------------------ | ----------- | ------------------------------------------------------------------- |
| TrainJob           | `CosineRun` | D = M x N: warmup (at most half the run), cosine to lr_floor         |
| TrunkJob           | `Trunk`     | wsd's stable phase to its largest M's branch point, states left there |
| BranchJob          | `Branch`    | its trunk's state at its branch point, then the cooldown to D        |

Each owns its budget in steps and warmup (`plan`), its learning rate (`lr`),
the fingerprint a checkpoint must carry to be resumed (`fingerprint`), where
it may resume from (`sources`), what a fresh start clears (`fresh_start`), its
line of the log (`summary`), its fields of the record (`record`) and how it
finishes (`finish`: a model, or a trunk's record). `SCHEDULES` maps each job
class to its schedule.

Under `train.schedule: wsd` (warmup-stable-decay) a trunk trains one size and
seed at the stable rate to the branch point of its largest M and leaves its
state at every branch point; a branch continues the trunk from the newest
state at or before its own branch point, D x (1 - cooldown) tokens in, and
decays to lr_floor at D = M x N. Both walk the one data order of the size's
seed by global step, so a branch's tokens are the trunk's next tokens, and a
branch ends where an uninterrupted warmup-stable-decay run of its D would end.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

from lmscale.io.files import atomic_write_json, atomic_writer
from lmscale.jobs import BranchJob, Hyperparameters, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training import outputs
from lmscale.training.budget import Budget, branch_point
from lmscale.training.checkpoints import Source, fingerprint, remove_checkpoints, truncate_log, trunk_states

log = logging.getLogger(__name__)

# Beside a branch's checkpoints: the trunk state it started from (null: the trunk's first step).
BRANCH_ORIGIN = "branch.json"


def learning_rate(step: int, steps: int, hp: Hyperparameters, warmup: int) -> float:
    """Linear warmup to hp.lr, then cosine decay to hp.lr_floor at the last step."""
    if step < warmup:
        return stable_rate(step, hp, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return hp.lr_floor + 0.5 * (hp.lr - hp.lr_floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def stable_rate(step: int, hp: Hyperparameters, warmup: int) -> float:
    """A trunk's rate: linear warmup over the trunk's first `warmup` steps to hp.lr, then hp.lr held."""
    return hp.lr * (step + 1) / warmup if step < warmup else hp.lr


def cooldown_rate(step: int, steps: int, hp: Hyperparameters, warmup: int, branch: int, shape: str) -> float:
    """A branch's rate: the trunk's before step `branch`, then from that rate down to hp.lr_floor at the
    last step, linearly or as 1 - sqrt of the cooldown's progress."""
    if step < branch:
        return stable_rate(step, hp, warmup)
    start = stable_rate(branch, hp, warmup)  # the stable rate, or the warmup's where a branch point falls in it
    progress = (step - branch + 1) / (steps - branch)
    fallen = progress if shape == "linear" else math.sqrt(progress)
    return hp.lr_floor + (start - hp.lr_floor) * (1 - fallen)


def trunk_fingerprint(trunk: TrunkJob, warmup: int, stream: dict) -> str:
    """What a trunk's state must match: the trajectory (size, seed, settings, stream), not how far it went."""
    return fingerprint({
        "trunk": f"{trunk.dataset}/{trunk.name}", "shape": trunk.shape.as_dict(),
        "hyperparameters": asdict(trunk.hyperparameters), "warmup": warmup, "stream": stream,
    })


@dataclass(frozen=True)
class Schedule:
    """What every job kind shares: `budget.steps` optimizer steps of `job`, the first `warmup` warming up.

    `paths` below is the run's `lmscale.training.setup.Paths`.
    """

    job: TrainJob | TrunkJob | BranchJob
    budget: Budget  # the steps this job trains to (a trunk: to its branch point)
    warmup: int
    stream: dict  # the token stream's identity (its token count and tokenizer): in every fingerprint

    @classmethod
    def plan(cls, job, budget_of: Callable[[float], Budget], stream: dict, options) -> "Schedule":
        """The job's schedule: its budget (`budget_of(M)`, D = M x N in whole steps), its warmup and what
        its kind adds; `options` are the job's options (a trunk's say where it stops)."""
        raise NotImplementedError

    @classmethod
    def run_options(cls, options) -> TrainOptions:
        """How the loop carries the job out."""
        return options

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step `step` (from 0)."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: every setting that changes the run."""
        raise NotImplementedError

    def summary(self) -> str:
        """The schedule in one line of the log."""
        raise NotImplementedError

    def record(self, paths, record: dict) -> dict:
        """The record's schedule fields (`record`: run_record's, which some derive from)."""
        raise NotImplementedError

    @property
    def run(self) -> str:
        return f"{self.job.dataset}/{self.job.name}"

    @property
    def steps_to_train(self) -> int:
        """The steps a fresh attempt of the job trains (whether to compile is weighed on them)."""
        return self.budget.steps

    def keeps_state(self, step: int) -> bool:
        """Whether the state after `step` is kept for other jobs (a trunk's branch points)."""
        return False

    def sources(self, paths) -> list[Source]:
        """Where this run may resume from, in order: its own checkpoints."""
        return [Source(paths.checkpoints, self.fingerprint, self.budget.steps, False)]

    def fresh_start(self, paths) -> None:
        """What a fresh start clears or notes besides the run's own checkpoints and log (rank 0)."""

    def finish(self, context, planned, trained, paths, record: dict, keep_checkpoints: bool) -> None:
        """The model, its log and run.json; the checkpoints dropped (lmscale.training.outputs)."""
        outputs.save_run(context, planned, trained, paths, record, keep_checkpoints)


@dataclass(frozen=True)
class CosineRun(Schedule):
    """`train.schedule: cosine` (a TrainJob): warmup to lr over at most half the run, cosine to lr_floor."""

    @classmethod
    def plan(cls, job: TrainJob, budget_of: Callable[[float], Budget], stream: dict, options) -> "CosineRun":
        budget = budget_of(job.multiplier)
        return cls(job, budget, min(job.hyperparameters.warmup, budget.steps // 2), stream)

    def lr(self, step: int) -> float:
        return learning_rate(step, self.budget.steps, self.job.hyperparameters, self.warmup)

    @property
    def fingerprint(self) -> str:
        job = self.job
        return fingerprint({
            "run": self.run, "shape": job.shape.as_dict(), "multiplier": job.multiplier,
            "steps": self.budget.steps, "hyperparameters": asdict(job.hyperparameters), "stream": self.stream,
        })

    def summary(self) -> str:
        hp = self.job.hyperparameters
        return (f"cosine: warmup over {self.warmup} steps to {hp.lr:g}, cosine to {hp.lr_floor:g} at step "
                f"{self.budget.steps}")

    def record(self, paths, record: dict) -> dict:
        """run.json's schedule fields: the compute the run spent, its D."""
        budget = self.budget
        return {"schedule": "cosine", "tokens_trained": budget.D, "tokens_spent": budget.D,
                "flops_spent": 6 * budget.N * budget.D}


@dataclass(frozen=True)
class Trunk(Schedule):
    """`train.schedule: wsd`, a TrunkJob: warmup to the stable rate lr, held to the branch point of its
    M (the largest of its size and seed), leaving its state at every branch point on the way."""

    states: tuple[int, ...]  # the steps after which it leaves a state (the branch points)

    @classmethod
    def run_options(cls, options: TrunkOptions) -> TrainOptions:
        return options.train

    @classmethod
    def plan(cls, job: TrunkJob, budget_of: Callable[[float], Budget], stream: dict,
             options: TrunkOptions | None) -> "Trunk":
        """To the branch point of its M (where `options` put it), a state at every branch point of the
        grid's Ms up to there."""
        if options is None:
            raise ValueError(f"trunk {job.dataset}/{job.name}: its options (the branch points) are missing")
        budget = budget_of(job.multiplier)
        end = branch_point(budget.steps, options.cooldown)
        points = {branch_point(budget_of(m).steps, options.cooldown) for m in options.multipliers}
        states = tuple(sorted(point for point in points | {end} if 0 < point <= end))
        # The trunk's tokens: its M's D up to the branch point.
        return cls(job, replace(budget, steps=end), job.hyperparameters.warmup, stream, states)

    @property
    def run(self) -> str:
        return f"{self.job.dataset}/{self.job.name} trunk"

    def lr(self, step: int) -> float:
        return stable_rate(step, self.job.hyperparameters, self.warmup)

    @property
    def fingerprint(self) -> str:
        """The trajectory's, whatever M it was trained for: every trunk of its size and seed shares it."""
        return trunk_fingerprint(self.job, self.warmup, self.stream)

    def keeps_state(self, step: int) -> bool:
        return step in self.states

    def sources(self, paths) -> list[Source]:
        """Its own checkpoints, and its states (this trunk's or a shorter one's) up to where it stops."""
        return super().sources(paths) + [Source(paths.states, self.fingerprint, self.budget.steps, False)]

    def fresh_start(self, paths) -> None:
        remove_checkpoints(paths.states, keep_fingerprint=self.fingerprint)  # states of other settings

    def summary(self) -> str:
        return (f"wsd trunk: warmup over {self.warmup} steps to the stable rate {self.job.hyperparameters.lr:g}, "
                f"to step {self.budget.steps} (the branch point of M = {self.job.multiplier:g}); states at steps "
                f"{', '.join(map(str, self.states)) or 'none'}")

    def record(self, paths, record: dict) -> dict:
        """The trunk's record: what it trained (every trunk step so far) and its states."""
        budget = self.budget
        return {"schedule": "wsd", "role": "trunk", "tokens_trained": budget.D,
                "flops_trained": 6 * budget.N * budget.D,
                "states": [{"step": step, "tokens": step * budget.tokens_per_step} for step in self.states]}

    def finish(self, context, planned, trained, paths, record: dict, keep_checkpoints: bool) -> None:
        """Its record (its states stay, and its log); its periodic checkpoints dropped."""
        if context.is_main:
            atomic_write_json(paths.record, record)
            if not keep_checkpoints:
                remove_checkpoints(paths.checkpoints)


@dataclass(frozen=True)
class Branch(Schedule):
    """`train.schedule: wsd`, a BranchJob: the D of the same run under cosine; its trunk's rate to its
    branch point, then the cooldown to lr_floor."""

    branch: int  # the trunk step after which its cooldown starts

    @classmethod
    def plan(cls, job: BranchJob, budget_of: Callable[[float], Budget], stream: dict, options) -> "Branch":
        budget = budget_of(job.multiplier)
        return cls(job, budget, job.hyperparameters.warmup, stream, branch_point(budget.steps, job.cooldown.cooldown))

    def lr(self, step: int) -> float:
        return cooldown_rate(step, self.budget.steps, self.job.hyperparameters, self.warmup, self.branch,
                             self.job.cooldown.cooldown_shape)

    @property
    def trunk_fingerprint(self) -> str:
        return trunk_fingerprint(self.job.trunk, self.warmup, self.stream)

    @property
    def fingerprint(self) -> str:
        return fingerprint({"run": self.run, "trunk": self.trunk_fingerprint, "steps": self.budget.steps,
                            "branch": self.branch, "hyperparameters": asdict(self.job.hyperparameters),
                            "cooldown": asdict(self.job.cooldown)})

    @property
    def steps_to_train(self) -> int:
        """On its trunk's state: its cooldown."""
        return self.budget.steps - self.branch

    def sources(self, paths) -> list[Source]:
        """Its own checkpoints, and its trunk's states up to its branch point."""
        return super().sources(paths) + [Source(paths.states, self.trunk_fingerprint, self.branch, True)]

    def fresh_start(self, paths) -> None:
        atomic_write_json(paths.checkpoints / BRANCH_ORIGIN, {"trunk_state_step": None})

    def adopt_trunk_state(self, paths, step: int) -> None:
        """Start on the trunk's state after `step` (rank 0): its log starts as the trunk's did, and
        BRANCH_ORIGIN records where it started, for every later attempt."""
        checkpoints, log_path = paths.checkpoints, paths.checkpoints / "train_log.jsonl"
        remove_checkpoints(checkpoints)
        atomic_write_json(checkpoints / BRANCH_ORIGIN, {"trunk_state_step": step})
        trunk_log = paths.trunk / "train_log.jsonl"
        with atomic_writer(log_path) as handle:
            handle.write(trunk_log.read_text() if trunk_log.exists() else "")
        truncate_log(log_path, step)
        log.info("%s: continues its trunk from the state at step %d (branch point %d of %d)", self.run, step,
                 self.branch, self.budget.steps)

    def summary(self) -> str:
        hp, cooldown = self.job.hyperparameters, self.job.cooldown
        return (f"wsd branch: its trunk to step {self.branch} (warmup {self.warmup} steps, stable rate "
                f"{hp.lr:g}), then a {cooldown.cooldown_shape} cooldown to {hp.lr_floor:g} over "
                f"{self.budget.steps - self.branch} steps ({cooldown.cooldown:.0%} of its D)")

    def record(self, paths, record: dict) -> dict:
        """run.json's schedule fields: the schedule, and the compute the run actually spent.

        tokens_trained counts what this job's attempts trained, from the trunk state it continued
        to D; a branch is also charged its share of the trunk (`trunk_share`), so that over the
        grid the branches' tokens_spent add up to the trunk counted once, plus every cooldown.
        C stays 6 N D, the run's place on the laws' axis.
        """
        budget, tokens_per_step = self.budget, self.budget.tokens_per_step
        origin_file = paths.checkpoints / BRANCH_ORIGIN
        origin = json.loads(origin_file.read_text())["trunk_state_step"] if origin_file.exists() else None
        start = origin or 0
        share_steps, share_seconds = outputs.trunk_share(trunk_states(paths.states, self.trunk_fingerprint), start)
        trained = (budget.steps - start) * tokens_per_step
        spent = trained + round(share_steps * tokens_per_step)
        stepping = max(record["wall_seconds"] - record["compile_seconds"], 1e-9)  # as run_record counts it
        return {
            "schedule": "wsd", "role": "branch", "cooldown": self.job.cooldown.cooldown,
            "cooldown_shape": self.job.cooldown.cooldown_shape, "lr_stable": self.job.hyperparameters.lr,
            "branch_step": self.branch, "branch_tokens": self.branch * tokens_per_step,
            "cooldown_steps": budget.steps - self.branch, "trunk_state_step": origin,
            "tokens_trained": trained, "trunk_share_tokens": round(share_steps * tokens_per_step),
            "trunk_share_wall_seconds": share_seconds, "tokens_spent": spent, "flops_spent": 6 * budget.N * spent,
            # Throughput of what this job trained (run_record's counts the whole D).
            **outputs.throughput(budget, trained, stepping, record["peak_flops_per_second"]),
        }


# Each job class's schedule: the one place a job's kind is looked up.
SCHEDULES: dict[type, type[Schedule]] = {TrainJob: CosineRun, TrunkJob: Trunk, BranchJob: Branch}


def schedule_of(job) -> type[Schedule]:
    """The schedule class of a job's kind."""
    try:
        return SCHEDULES[type(job)]
    except KeyError:
        raise ValueError(f"no training schedule for a {type(job).__name__}; train one of "
                         f"{', '.join(cls.__name__ for cls in SCHEDULES)}") from None
