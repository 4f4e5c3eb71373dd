"""Train stage: one model of the N x M grid, resumable, nanoGPT style.

Read top to bottom: the token budget D = M x N, the replayable data order,
the learning-rate schedule, checkpoints, then the run in named steps: `plan`
(the budget, before any weight exists), `build`, `resume`, the loop in
`_train` (`step`: batch, forward, backward, clip, step; log; `checkpoint`),
then `finish`. What a run computes is its `lmscale.jobs.TrainJob`; how it is
carried out (log and checkpoint cadence, device, processes) its `TrainOptions`.

Under `train.schedule: wsd` (warmup-stable-decay) the same loop runs two other
jobs. A trunk (`TrunkJob`) trains one size and seed at the stable rate to the
branch point of its largest M and leaves its state at every branch point; a
branch (`BranchJob`) continues the trunk from the newest state at or before its
own branch point, D x (1 - cooldown) tokens in, and decays to lr_floor at
D = M x N. Both walk the one data order of the size's seed by global step, so a
branch's tokens are the trunk's next tokens, and a branch ends where an
uninterrupted warmup-stable-decay run of its D would end.

Snakemake deletes a job's declared outputs before it reruns it, so
checkpoints live outside them (`results/<study>/checkpoints/...`). A rerun
of a killed job continues from the newest checkpoint whose fingerprint
matches the run's settings, and ends exactly where an uninterrupted run ends:
the batch of every step is a function of the step alone.

Runs too large for one GPU run under `torchrun`, one process per GPU
(`lmscale.distributed`): every step's global batch is the one-process batch,
split across processes; gradients are averaged (DDP, or FSDP2 when the
training state must be sharded). Only rank 0 writes the log, the checkpoints
(full, unsharded: any process count resumes them) and the final model; every
rank reads the checkpoint rank 0 chose.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from lmscale import distributed, jobs, performance
from lmscale.config import to_json
from lmscale.files import atomic_write_json, atomic_writer
from lmscale.jobs import BranchJob, Hyperparameters, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.model import build_config, parameter_counts
from lmscale.tokens import open_tokens

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ---- the token budget -----------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The token budget of a run: D = M x N, rounded to whole optimizer steps.

    N is the counted parameters (`count_embeddings`): every parameter, or the non-embedding ones.
    """

    N: int
    N_total: int
    N_non_embedding: int
    M: float
    D_target: int  # M x N before rounding
    steps: int
    tokens_per_step: int

    @property
    def D(self) -> int:
        return self.steps * self.tokens_per_step

    @classmethod
    def plan(cls, counts: dict, multiplier: float, batch_size: int, context: int,
             count_embeddings: bool = True) -> "Budget":
        tokens_per_step = batch_size * context
        n = counts["N"] if count_embeddings else counts["N_non_embedding"]
        target = round(multiplier * n)
        steps = max(1, round(target / tokens_per_step))
        return cls(n, counts["N"], counts["N_non_embedding"], multiplier, target, steps, tokens_per_step)


def check_enough_data(run: str, budget: Budget, usable_tokens: int, repeat_data: bool) -> float:
    """The number of epochs; refuses a run that would repeat data unless the config allows it."""
    epochs = budget.D / usable_tokens
    if epochs > 1 and not repeat_data:
        raise ValueError(
            f"run {run} needs D = {budget.D:,} training tokens (M = {budget.M:g} x N = {budget.N:,}) "
            f"but its train split has only {usable_tokens:,}; the paper omits such runs: drop the run "
            f"from the grid, add text to the corpus, or set train.repeat_data: true"
        )
    return epochs


# ---- data order ------------------------------------------------------------------


class SequenceOrder:
    """Which training sequences each step sees, as a pure function of the step.

    The stream is cut into sequences of context + 1 tokens (inputs and shifted
    targets), sequence j starting at token j x context. Epoch e visits every
    sequence once in a permutation seeded by (seed, e); step s takes the next
    batch_size positions of that walk. Nothing depends on earlier steps, so a
    resumed run replays the same batches from any step.
    """

    def __init__(self, tokens: np.ndarray, context: int, seed: int):
        self.tokens = tokens
        self.context = context
        self.seed = seed
        self.sequences = (len(tokens) - 1) // context
        if self.sequences < 1:
            raise ValueError(f"train split has {len(tokens)} tokens, fewer than one sequence of {context + 1}")
        self._epoch, self._permutation = -1, None

    @property
    def usable_tokens(self) -> int:
        return self.sequences * self.context

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._permutation = np.random.default_rng([self.seed, epoch]).permutation(self.sequences)
        return self._permutation

    def batch(self, step: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
        """Token windows of shape (batch_size, context + 1) for `step` (only `rows` of them), gathered
        from the stream in one indexing operation."""
        positions = np.arange(step * batch_size, (step + 1) * batch_size)[rows]
        epochs, indices = np.divmod(positions, self.sequences)
        sequences = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(epochs):  # one epoch, or two where one ends inside the step
            chosen = epochs == epoch
            sequences[chosen] = self.permutation(int(epoch))[indices[chosen]]
        windows = (sequences * self.context)[:, None] + np.arange(self.context + 1)
        return self.tokens[windows].astype(np.int64)


# ---- schedule and loss --------------------------------------------------------------


def learning_rate(step: int, steps: int, hp: Hyperparameters, warmup: int) -> float:
    """Linear warmup to hp.lr, then cosine decay to hp.lr_floor at the last step."""
    if step < warmup:
        return stable_rate(step, hp, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return hp.lr_floor + 0.5 * (hp.lr - hp.lr_floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def cooldown_steps(steps: int, share: float) -> int:
    """The steps of a branch's cooldown: `share` of its own steps, at least one."""
    return min(steps, max(1, round(steps * share)))


def branch_point(steps: int, share: float) -> int:
    """The trunk step after which a branch of `steps` steps starts its cooldown: D x (1 - share) tokens in."""
    return steps - cooldown_steps(steps, share)


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


def make_optimizer(model, hp: Hyperparameters, fused: bool = True):
    """AdamW; norms (1-D weights) are not decayed, as in nanoGPT and open_lm.

    Fused (one kernel updates every tensor of a group, on the CPU and on CUDA) unless asked
    not to; sharded (FSDP2) parameters take torch's default, foreach on CUDA.
    """
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps, fused=fused or None,
    )


# ---- checkpoints ---------------------------------------------------------------------


# Version of the checkpoint layout: full (unsharded) weights and optimizer state keyed
# by parameter name, so that a run resumes under any number of processes. Format 3: each
# step_*.pt has a header step_*.json (step, fingerprint, format) read before the checkpoint,
# and holds only what torch.load(weights_only=True) reads (tensors, numbers, strings,
# lists, tuples and dicts), so that no checkpoint can run code when it is loaded.
CHECKPOINT_FORMAT = 3


def fingerprint(payload: dict) -> str:
    return hashlib.sha256(to_json(payload).encode()).hexdigest()[:16]


def checkpoint_paths(checkpoint_dir: Path) -> list[Path]:
    """Checkpoints, newest first."""
    return sorted(checkpoint_dir.glob("step_*.pt"), reverse=True)


def checkpoint_header(path: Path) -> Path:
    """The JSON beside a checkpoint: its step, fingerprint and format, read before the checkpoint."""
    return path.with_suffix(".json")


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint (or its header) holds, from its name: step_000000123.pt -> 123."""
    return int(path.stem.split("_")[1])


def save_checkpoint(checkpoint_dir: Path, state: dict, keep: int | None = 2) -> Path:
    """Write the header, then the checkpoint, each atomically (temporary file, then rename); keep
    the newest `keep` (None: every one, as a trunk keeps its branch points). A checkpoint on disk
    always has its header."""
    import torch

    path = checkpoint_dir / f"step_{state['step']:09d}.pt"
    atomic_write_json(checkpoint_header(path),
                      {key: state[key] for key in ("step", "fingerprint", "format", "wall_seconds")})
    with atomic_writer(path, "wb") as handle:
        torch.save(state, handle)
    for old in checkpoint_paths(checkpoint_dir)[keep:] if keep is not None else []:
        old.unlink()
        checkpoint_header(old).unlink(missing_ok=True)
    return path


def remove_checkpoints(checkpoint_dir: Path, keep_fingerprint: str | None = None) -> None:
    """Every checkpoint and header (a fresh start), or every one of settings other than `keep_fingerprint`."""
    for path in checkpoint_dir.glob("step_*.pt"):
        if keep_fingerprint is not None:
            try:
                if json.loads(checkpoint_header(path).read_text()).get("fingerprint") == keep_fingerprint:
                    continue
            except (OSError, ValueError, AttributeError):
                pass
        path.unlink()
        checkpoint_header(path).unlink(missing_ok=True)
    for header in checkpoint_dir.glob("step_*.json"):  # a header whose checkpoint never landed
        if not header.with_suffix(".pt").exists():
            header.unlink()


def read_checkpoint(path: Path) -> dict:
    """A checkpoint, memory-mapped (processes reading the same file share its pages). Only
    tensors and plain values are unpickled (weights_only): a crafted file cannot run code."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def find_checkpoint(checkpoint_dir: Path, expected_fingerprint: str,
                    max_step: int | None = None) -> tuple[Path, dict] | None:
    """The newest readable checkpoint of this very run (at most at `max_step`) and its state, or None
    to start fresh.

    Each checkpoint's header is read first; a checkpoint whose header is missing or names other
    settings or another layout is never opened.
    """
    for path in checkpoint_paths(checkpoint_dir):
        if max_step is not None and checkpoint_step(path) > max_step:
            continue  # a trunk's state past where this run stops or branches
        try:
            header = json.loads(checkpoint_header(path).read_text())
        except (OSError, ValueError) as error:
            log.warning("checkpoint %s has no readable header %s (%s): not written by this version of "
                        "lmscale; starting fresh", path, checkpoint_header(path).name, error)
            return None
        if not isinstance(header, dict) or header.get("fingerprint") != expected_fingerprint:
            log.warning("checkpoint %s belongs to other settings (fingerprint %s, expected %s); starting fresh",
                        path, header.get("fingerprint") if isinstance(header, dict) else None, expected_fingerprint)
            return None
        if header.get("format") != CHECKPOINT_FORMAT:
            log.warning("checkpoint %s has layout %s, not %s; starting fresh", path, header.get("format"),
                        CHECKPOINT_FORMAT)
            return None
        try:
            state = read_checkpoint(path)
        except Exception as error:  # a checkpoint from a crashed disk, or not a plain state: try the one before
            lines = str(error).splitlines() or [type(error).__name__]
            reason = next((line for line in lines if "GLOBAL" in line), lines[0])  # what weights_only refused
            log.warning("cannot read checkpoint %s (%s); trying an older one", path, reason.strip())
            continue
        if any(state.get(key) != header[key] for key in ("step", "fingerprint", "format")):
            log.warning("checkpoint %s does not match its header; trying an older one", path)
            continue
        return path, state
    return None


def rng_state() -> dict:
    """Every generator's state in types a weights-only load reads (numpy's key as a list of ints)."""
    import torch

    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"],
                                                 "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32)}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from: those steps run again."""
    if not log_path.exists():
        return
    kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
    with atomic_writer(log_path) as handle:
        handle.write("".join(line + "\n" for line in kept))


# ---- the run: plan, resume, step, checkpoint, finish ------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Where a run reads and writes."""

    tokens: Path  # the train token stream (.bin with its .json)
    tokenizer: Path | None  # the tokenizer folder, copied beside the model (a trunk saves no model)
    out_dir: Path  # the model folder (Hugging Face format), train_log.jsonl and run.json; a trunk's record (JSON)
    checkpoints: Path  # resumable checkpoints and the log: outside the workflow's declared outputs
    # Under wsd, the trunk's folder (a trunk's `checkpoints` too): its log, and in states/ its state at
    # every branch point, kept for the branches; outside the declared outputs, so never deleted by a rerun.
    trunk: Path | None = None

    @property
    def states(self) -> Path | None:
        return self.trunk / "states" if self.trunk else None


@dataclass(frozen=True)
class Plan:
    """A run worked out before any weight exists, so that a refused run costs nothing."""

    job: TrainJob
    stream: dict  # the token stream's summary
    order: SequenceOrder
    counts: dict  # N with and without the embeddings
    budget: Budget
    epochs: float
    warmup: int  # the job's warmup: cosine, at most half the run; wsd, the trunk's first steps
    micro: int  # sequences per forward pass
    branch: int | None = None  # a branch: the trunk step after which its cooldown starts
    states: tuple[int, ...] = ()  # a trunk: the steps after which it leaves a state (the branch points)

    @property
    def hp(self) -> Hyperparameters:
        return self.job.hyperparameters

    @property
    def run(self) -> str:
        return f"{self.job.dataset}/{self.job.name}" + (" trunk" if isinstance(self.job, TrunkJob) else "")

    @property
    def steps_to_train(self) -> int:
        """The steps a fresh attempt of the job trains: a branch on its trunk's state, its cooldown."""
        return self.budget.steps - self.branch if isinstance(self.job, BranchJob) else self.budget.steps

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step `step` (from 0) under the job's schedule."""
        if isinstance(self.job, TrunkJob):
            return stable_rate(step, self.hp, self.warmup)
        if isinstance(self.job, BranchJob):
            return cooldown_rate(step, self.budget.steps, self.hp, self.warmup, self.branch,
                                 self.job.cooldown.cooldown_shape)
        return learning_rate(step, self.budget.steps, self.hp, self.warmup)

    @property
    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: every setting that changes the run."""
        if isinstance(self.job, TrunkJob):
            return self.trunk_fingerprint
        if isinstance(self.job, BranchJob):
            return fingerprint({"run": self.run, "trunk": self.trunk_fingerprint, "steps": self.budget.steps,
                                "branch": self.branch, "hyperparameters": asdict(self.hp),
                                "cooldown": asdict(self.job.cooldown)})
        return fingerprint({
            "run": self.run, "shape": self.job.shape.as_dict(), "multiplier": self.job.multiplier,
            "steps": self.budget.steps, "hyperparameters": asdict(self.hp),
            "stream": {k: self.stream[k] for k in ("tokens", "tokenizer_sha256")},
        })

    @property
    def trunk_fingerprint(self) -> str:
        """What a trunk's state must match: the trajectory (size, seed, settings, stream), not how far it went."""
        trunk = self.job if isinstance(self.job, TrunkJob) else self.job.trunk
        return fingerprint({
            "trunk": f"{trunk.dataset}/{trunk.name}", "shape": trunk.shape.as_dict(),
            "hyperparameters": asdict(trunk.hyperparameters), "warmup": self.warmup,
            "stream": {k: self.stream[k] for k in ("tokens", "tokenizer_sha256")},
        })

    def sources(self, paths: Paths) -> list[tuple[Path, str, int | None, bool]]:
        """Where this run may resume from, in order: (folder, fingerprint, last step, a trunk's state).

        Its own checkpoints; a trunk also its states, up to where it stops; a branch also its
        trunk's states, up to its branch point.
        """
        own = [(paths.checkpoints, self.fingerprint, self.budget.steps, False)]
        if isinstance(self.job, TrunkJob):
            return own + [(paths.states, self.fingerprint, self.budget.steps, False)]
        if isinstance(self.job, BranchJob):
            return own + [(paths.states, self.trunk_fingerprint, self.branch, True)]
        return own


@dataclass
class Model:
    """The network as the loop drives it, its optimizer, and how the run is split and compiled."""

    core: object  # lmscale.decoder.Decoder: Qwen3ForCausalLM's parameters, saved as one at the end
    model: object  # core itself, or its DDP / FSDP2 form; compiled in place when `compiled`
    optimizer: object
    mode: str  # none, ddp or fsdp
    autocast: object  # bf16 on GPU, nothing on the CPU
    compiled: bool
    compile_key: str  # what the compiled step depends on (shape, batch, device, threads, torch)


def train(job: TrainJob | TrunkJob | BranchJob, options: TrainOptions | TrunkOptions, paths: Paths,
          threads: int = 1) -> dict:
    """Train one run of the grid and save it in Hugging Face format; return its run.json record.
    A trunk (`options` its TrunkOptions) saves its states and returns its record instead.

    Under torchrun every process calls this; rank 0 alone writes files and returns the record
    (other ranks return it too, unwritten). `threads` are the job's: under torchrun, shared
    among its processes.
    """
    import torch

    torch.set_num_threads(max(1, threads // int(os.environ.get("WORLD_SIZE", "1"))))
    trunk_options = options if isinstance(options, TrunkOptions) else None
    planned = plan(job, paths.tokens, trunk_options)
    options = trunk_options.train if trunk_options else options
    context = distributed.Context.start(options.device)
    try:
        return _train(context, planned, options, paths)
    finally:
        context.close()


def plan(job: TrainJob | TrunkJob | BranchJob, tokens_path: str | Path,
         trunk_options: TrunkOptions | None = None) -> Plan:
    """The budget D = M x N in whole steps and the data order; refuses a run its data cannot feed.

    A branch has the budget of the same run under cosine, and its branch point; a trunk runs to
    the branch point of its M (where `trunk_options` put it) and leaves a state at every branch
    point of the grid's Ms up to there.
    """
    import torch
    from transformers import Qwen3ForCausalLM

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

    budget, branch, states = budget_of(job.multiplier), None, ()
    warmup = min(hp.warmup, budget.steps // 2) if isinstance(job, TrainJob) else hp.warmup
    if isinstance(job, BranchJob):
        branch = branch_point(budget.steps, job.cooldown.cooldown)
    elif isinstance(job, TrunkJob):
        if trunk_options is None:
            raise ValueError(f"trunk {job.dataset}/{job.name}: its options (the branch points) are missing")
        end = branch_point(budget.steps, trunk_options.cooldown)
        points = {branch_point(budget_of(m).steps, trunk_options.cooldown) for m in trunk_options.multipliers}
        states = tuple(sorted(point for point in points | {end} if 0 < point <= end))
        budget = replace(budget, steps=end)  # the trunk's tokens: its M's D up to the branch point
    order = SequenceOrder(tokens, job.shape.context, hp.seed)
    epochs = check_enough_data(f"{job.dataset}/{job.name}", budget, order.usable_tokens, hp.repeat_data)
    return Plan(job, stream, order, counts, budget, epochs, warmup, micro, branch, states)


def _train(context, planned: Plan, options: TrainOptions, paths: Paths) -> dict:
    """Build, resume, compile, then the loop: step, log, checkpoint; then finish."""
    from tqdm import tqdm

    run, steps, main = planned.run, planned.budget.steps, context.is_main
    if not main:  # one voice: the other ranks only warn
        logging.getLogger("lmscale").setLevel(logging.WARNING)
    if planned.warmup != planned.hp.warmup and main:
        log.warning("%s: warmup %d is more than half of its %d steps; using %d", run, planned.hp.warmup, steps,
                    planned.warmup)
    rows = context.local_rows(planned.hp.batch_size)  # this process's share of every global batch
    trained = build(context, planned, options)
    start, wall_before, compile_before, resumed_from = resume(context, planned, trained, paths)
    budget, split = planned.budget, f", {context.world} processes ({trained.mode})" if context.distributed else ""
    log.info("%s: N = %s (of %s parameters, %s without embeddings), D = %s in %d steps of %d tokens "
             "(M = %g, target %s), %.2f epochs, device %s%s", run, f"{budget.N:,}", f"{budget.N_total:,}",
             f"{budget.N_non_embedding:,}", f"{budget.D:,}", steps, budget.tokens_per_step,
             planned.job.multiplier, f"{budget.D_target:,}", planned.epochs, context.device, split)
    log.info("%s: %s", run, schedule_summary(planned))
    peak, peak_source = performance.device_peak(context.device)

    trained.model.train()
    compile_seconds = compile_step(context, planned, trained, start, rows) if trained.compiled else 0.0
    train_log = TrainLog(paths.checkpoints / "train_log.jsonl", context, wall_before + compile_seconds,
                         budget.tokens_per_step, 6 * budget.N_total, peak)
    compile_seconds += compile_before
    progress = tqdm(total=steps, initial=start, desc=run, unit="step", mininterval=5.0, disable=not main)
    for index in range(start, steps):
        lr, loss, grad_norm = step(context, planned, trained, index, rows)  # tensors: no wait for the device
        done = index + 1
        progress.update(1)
        if train_log.add(loss, done % options.log_every == 0 or done == steps, done, lr, grad_norm):
            progress.set_postfix(loss=f"{train_log.last['loss']:.3f}", lr=f"{lr:.2e}", refresh=False,
                                 **({"mfu": f"{train_log.last['mfu']:.1%}"} if peak else {}))
        if done in planned.states:  # a trunk's branch point: its state is kept for the branches
            checkpoint(context, planned, trained, paths.states, done, train_log.wall_seconds(), compile_seconds,
                       keep=None)
        elif done % options.checkpoint_every == 0 and done < steps:
            checkpoint(context, planned, trained, paths.checkpoints, done, train_log.wall_seconds(), compile_seconds)
    progress.close()
    train_log.close()
    record = run_record(context, planned, trained, train_log.wall_seconds(), compile_seconds, resumed_from,
                        (peak, peak_source))
    record.update(schedule_record(planned, paths, record))
    finish(context, planned, trained, paths, record, options.keep_checkpoints)
    if main:
        log.info("%s: done in %.1f s (%.1f s compiling), %.0f tokens/s, %.3g FLOP/s%s, final train loss %.4f", run,
                 record["wall_seconds"], record["compile_seconds"], record["tokens_per_second"],
                 record["flops_per_second"], f", MFU {record['mfu']:.1%}" if record["mfu"] else "",
                 train_log.last["loss"])
    return record


def build(context, planned: Plan, options: TrainOptions) -> Model:
    """A fresh model on this process's device, wrapped for the processes, compiled or not, and its
    optimizer.

    The model is lmscale.decoder.Decoder, holding the stock Qwen3 model's initial weights.
    Whether to compile is an option, not part of the job: a compiled step computes what the
    eager one does (tests/test_train.py follows both for 50 steps), rounding apart, as a run
    on another device does; so a run resumes whichever way its checkpoint was written.
    """
    import torch

    from lmscale.decoder import build_decoder

    job, device = planned.job, context.device
    mode = distributed.choose_parallel(options.parallel, planned.counts["N"], context)
    core = build_decoder(job.shape, planned.stream["vocab_size"], planned.stream["end_of_text_id"],
                         planned.hp.seed).to(device)
    model = distributed.wrap(core, mode, context)
    optimizer = make_optimizer(model, planned.hp, fused=mode != "fsdp")  # after sharding: FSDP2 replaces them
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    rows = context.local_rows(planned.hp.batch_size)
    key = fingerprint({"shape": job.shape.as_dict(), "vocab_size": planned.stream["vocab_size"],
                       "rows": min(planned.micro, rows.stop - rows.start), "mode": mode, "world": context.world,
                       "device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__})
    seen = options.compile == "auto" and device.type == "cpu" and performance.compile_marker(key).exists()
    compiled, reason = performance.should_compile(options.compile, device.type, planned.steps_to_train,
                                                  planned.budget.tokens_per_step * job.shape.width * job.shape.depth,
                                                  seen)
    log.info("%s: %s", planned.run, reason)
    return Model(core, model, optimizer, mode, autocast, compiled, key)


def resume(context, planned: Plan, trained: Model, paths: Paths) -> tuple[int, float, float, int | None]:
    """(first step, wall seconds spent before it, of which compiling, the step resumed from or None).

    Rank 0 chooses the newest checkpoint of this very run (a trunk's states included), else, for
    a branch, its trunk's newest state at or before its branch point, else a fresh start; every
    rank reads the one it chose. A branch's wall seconds and tokens start at the trunk's state:
    its own (BRANCH_ORIGIN records where it started, for every later attempt).
    """
    checkpoints = paths.checkpoints
    main, log_path = context.is_main, checkpoints / "train_log.jsonl"
    if main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    found = newest_checkpoint(planned.sources(paths)) if main else None
    chosen = context.broadcast((str(found[0]), found[2]) if found else None)
    if chosen is None:
        if main:
            remove_checkpoints(checkpoints)
            log_path.unlink(missing_ok=True)
            if isinstance(planned.job, TrunkJob):  # states of other settings: not this trunk's
                remove_checkpoints(paths.states, keep_fingerprint=planned.fingerprint)
            if isinstance(planned.job, BranchJob):
                atomic_write_json(checkpoints / BRANCH_ORIGIN, {"trunk_state_step": None})
            log.info("%s: fresh start", planned.run)
        return 0, 0.0, 0.0, None
    state = found[1] if main else read_checkpoint(Path(chosen[0]))
    distributed.load_full_state(trained.model, trained.optimizer, state["model"], state["optimizer"])
    set_rng_state(state["rng"])
    if chosen[1]:  # a branch on its trunk's state: its log starts as the trunk's did
        if main:
            remove_checkpoints(checkpoints)
            atomic_write_json(checkpoints / BRANCH_ORIGIN, {"trunk_state_step": state["step"]})
            trunk_log = paths.trunk / "train_log.jsonl"
            with atomic_writer(log_path) as handle:
                handle.write(trunk_log.read_text() if trunk_log.exists() else "")
            truncate_log(log_path, state["step"])
        log.info("%s: continues its trunk from the state at step %d (branch point %d of %d)", planned.run,
                 state["step"], planned.branch, planned.budget.steps)
        return state["step"], 0.0, 0.0, None
    if main:
        truncate_log(log_path, state["step"])
    log.info("%s: resumed from checkpoint at step %d of %d", planned.run, state["step"], planned.budget.steps)
    return state["step"], state["wall_seconds"], state.get("compile_seconds", 0.0), state["step"]


# Beside a branch's checkpoints: the trunk state it started from (null: the trunk's first step).
BRANCH_ORIGIN = "branch.json"


def newest_checkpoint(sources: list[tuple[Path, str, int | None, bool]]) -> tuple[Path, dict, bool] | None:
    """The newest checkpoint among `sources` (Plan.sources), the earlier source on a tie, and whether
    it is a trunk's state that a branch continues."""
    best = None
    for folder, expected, max_step, of_trunk in sources:
        found = find_checkpoint(folder, expected, max_step) if folder.is_dir() else None
        if found and (best is None or found[1]["step"] > best[1]["step"]):
            best = (*found, of_trunk)
    return best


def batch_on_device(planned: Plan, index: int, rows: slice, device):
    """Step `index`'s sequences of this process as one tensor on the device (copied asynchronously to a GPU)."""
    import torch

    batch = torch.from_numpy(planned.order.batch(index, planned.hp.batch_size, rows))
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def compile_step(context, planned: Plan, trained: Model, index: int, rows: slice) -> float:
    """Compile the forward and backward passes before the first step; returns the seconds it took.

    The model is compiled in place (parameter names, checkpoints and the saved weights do not
    change), then runs a forward and backward pass on step `index`'s first micro-batch, whose
    gradients are dropped: no weight, optimizer state or random generator moves, so the run is
    what it would be without it. With inductor's caches warm (the same shape compiled before),
    this loads the compiled graphs instead of building them.
    """
    import torch

    started = time.perf_counter()
    trained.model.compile(dynamic=False)
    from torch._dynamo.utils import counters

    micro_batch = batch_on_device(planned, index, rows, context.device)[: planned.micro]
    with trained.autocast:
        cross_entropy, z = trained.model(micro_batch[:, :-1], micro_batch[:, 1:], planned.hp.z_loss)
    (cross_entropy + z).backward()
    trained.optimizer.zero_grad(set_to_none=True)
    if context.device.type == "cuda":
        torch.cuda.synchronize(context.device)
    seconds = time.perf_counter() - started
    hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
    log.info("%s: compiled in %.1f s (%d graph(s) from the cache in %s, %d built)", planned.run, seconds, hits,
             performance.compile_cache(), misses)
    if context.is_main:
        marker = performance.compile_marker(trained.compile_key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(marker, {"run": planned.run, "seconds": seconds, "graphs_built": misses})
    return seconds


def step(context, planned: Plan, trained: Model, index: int, rows: slice) -> tuple[float, object, object]:
    """Optimizer step `index` on its batch: (learning rate, mean loss and gradient norm before clipping).

    The loss and the norm stay tensors on the device (this process's share of the loss): reading
    them would wait for the device, so TrainLog reads them once per logged interval.
    """
    import torch

    hp = planned.hp
    lr = planned.lr(index)
    for group in trained.optimizer.param_groups:
        group["lr"] = lr
    micro_batches = batch_on_device(planned, index, rows, context.device).split(planned.micro)
    # Each process weighs its sequences as a share of the global batch; the gradient
    # average over processes (x 1/world) is undone by the factor world.
    scale = context.world / hp.batch_size
    loss = None
    for position, micro_batch in enumerate(micro_batches):
        with distributed.gradient_sync(trained.model, trained.mode, sync=position == len(micro_batches) - 1):
            with trained.autocast:
                cross_entropy, z = trained.model(micro_batch[:, :-1], micro_batch[:, 1:], hp.z_loss)
            ((cross_entropy + z) * len(micro_batch) * scale).backward()
        share = cross_entropy.detach() * (len(micro_batch) / hp.batch_size)
        loss = share if loss is None else loss + share
    grad_norm = torch.nn.utils.clip_grad_norm_(trained.model.parameters(), hp.grad_clip)
    trained.optimizer.step()
    trained.optimizer.zero_grad(set_to_none=True)
    return lr, loss, grad_norm


class TrainLog:
    """train_log.jsonl, one line per interval of steps (rank 0 writes): its mean loss, throughput and MFU.

    The step losses add up on the device; the end of an interval reads their sum (summed over
    processes), the one point per interval where the host waits for the device.
    """

    def __init__(self, path: Path, context, wall_before: float, tokens_per_step: int, flops_per_token: float,
                 peak: float | None):
        self.file = open(path, "a") if context.is_main else None
        self.context, self.wall_before, self.tokens_per_step = context, wall_before, tokens_per_step
        self.flops_per_token, self.peak = flops_per_token, peak
        self.started = self.interval_start = time.perf_counter()
        self.loss_sum, self.steps = None, 0
        self.last: dict = {"loss": float("nan")}

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def add(self, loss, ends_interval: bool, done: int, lr: float, grad_norm) -> bool:
        """Count a step's loss; at the end of an interval, write its line. Returns whether it wrote."""
        loss = loss.detach().float()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.steps += 1
        if not ends_interval:
            return False
        mean_loss = self.context.sum(self.loss_sum).item() / self.steps
        grad_norm = distributed.grad_norm_value(grad_norm)
        now = time.perf_counter()
        tokens_per_second = self.steps * self.tokens_per_step / (now - self.interval_start)
        self.last = {
            "step": done, "loss": mean_loss, "lr": lr, "grad_norm": grad_norm,
            "tokens": done * self.tokens_per_step, "tokens_per_second": tokens_per_second,
            "wall_seconds": self.wall_before + now - self.started,
        }
        if self.peak:
            self.last["mfu"] = performance.mfu(tokens_per_second * self.flops_per_token, self.peak)
        if self.file:
            self.file.write(json.dumps(self.last) + "\n")
            self.file.flush()
        self.interval_start, self.loss_sum, self.steps = now, None, 0
        return True

    def close(self) -> None:
        if self.file:
            self.file.close()


def checkpoint(context, planned: Plan, trained: Model, checkpoints: Path, done: int, wall_seconds: float,
               compile_seconds: float, keep: int | None = 2) -> None:
    """Full (unsharded) weights, optimizer and RNG state after step `done`; every rank gathers, rank 0 saves
    (and keeps the newest `keep` in the folder; None: all, a trunk's states)."""
    model_state, optimizer_state = distributed.full_state(trained.model, trained.optimizer)  # a collective
    if context.is_main:
        save_checkpoint(checkpoints, {
            "step": done, "fingerprint": planned.fingerprint, "format": CHECKPOINT_FORMAT,
            "model": model_state, "optimizer": optimizer_state, "rng": rng_state(), "wall_seconds": wall_seconds,
            "compile_seconds": compile_seconds,
        }, keep)


def run_record(context, planned: Plan, trained: Model, wall: float, compile_seconds: float,
               resumed_from: int | None, peak: tuple[float | None, str]) -> dict:
    """run.json: the run's N, D, C, budget and throughput, and every setting it was trained with.

    wall_seconds is the whole training (every attempt, compiling included); tokens_per_second,
    flops_per_second (6 N D) and MFU (6 N_total D over the device's peak; null when the peak is
    unknown) count the seconds spent stepping, without compiling.
    """
    from lmscale.decoder import Decoder

    job, hp, budget = planned.job, planned.hp, planned.budget
    stepping = max(wall - compile_seconds, 1e-9)
    return {
        "model": job.name, "dataset": job.dataset, "size": job.size, "seed": hp.seed,
        "N": budget.N, "N_total": budget.N_total, "N_non_embedding": budget.N_non_embedding,
        "count_embeddings": hp.count_embeddings,
        "D": budget.D, "D_target": budget.D_target, "D_rounding": budget.D - budget.D_target,
        "M": job.multiplier, "M_actual": budget.D / budget.N, "C": 6 * budget.N * budget.D,
        "steps": budget.steps, "batch_size": hp.batch_size, "context": job.shape.context,
        "tokens_per_step": budget.tokens_per_step, "epochs": planned.epochs,
        "train_tokens_available": planned.order.usable_tokens, "warmup_steps": planned.warmup,
        "wall_seconds": wall, "compile_seconds": compile_seconds, "compiled": trained.compiled,
        **throughput(budget, budget.D, stepping, peak[0]),
        "peak_flops_per_second": peak[0], "peak_source": peak[1],
        "resumed_from_step": resumed_from, "device": str(context.device.type),
        "processes": context.world, "parallel": trained.mode,
        "shape": job.shape.as_dict(), "hyperparameters": asdict(hp), "fingerprint": planned.fingerprint,
        "architecture": Decoder.SAVED_AS,
    }


def throughput(budget: Budget, tokens: int, stepping: float, peak: float | None) -> dict:
    """run.json's tokens_per_second, flops_per_second (6 N per token) and MFU (6 N_total per token over
    the device's peak) of `tokens` trained in `stepping` seconds."""
    return {"tokens_per_second": tokens / stepping, "flops_per_second": 6 * budget.N * tokens / stepping,
            "mfu": performance.mfu(6 * budget.N_total * tokens / stepping, peak)}


def schedule_summary(planned: Plan) -> str:
    """The learning-rate schedule of a run, in one line of its log."""
    hp, steps = planned.hp, planned.budget.steps
    if isinstance(planned.job, TrunkJob):
        return (f"wsd trunk: warmup over {planned.warmup} steps to the stable rate {hp.lr:g}, to step {steps} "
                f"(the branch point of M = {planned.job.multiplier:g}); states at steps "
                f"{', '.join(map(str, planned.states)) or 'none'}")
    if isinstance(planned.job, BranchJob):
        cooldown = planned.job.cooldown
        return (f"wsd branch: its trunk to step {planned.branch} (warmup {planned.warmup} steps, stable rate "
                f"{hp.lr:g}), then a {cooldown.cooldown_shape} cooldown to {hp.lr_floor:g} over "
                f"{steps - planned.branch} steps ({cooldown.cooldown:.0%} of its D)")
    return f"cosine: warmup over {planned.warmup} steps to {hp.lr:g}, cosine to {hp.lr_floor:g} at step {steps}"


def schedule_record(planned: Plan, paths: Paths, record: dict) -> dict:
    """run.json's schedule fields: the schedule, and the compute the run actually spent.

    tokens_trained counts what this job's attempts trained (a branch: from the trunk state it
    continued to D; a trunk: every trunk step so far); a branch is also charged its share of
    the trunk (`trunk_share`), so that over the grid the branches' tokens_spent add up to the
    trunk counted once, plus every cooldown. C stays 6 N D, the run's place on the laws' axis.
    """
    budget, tokens_per_step = planned.budget, planned.budget.tokens_per_step
    if isinstance(planned.job, TrainJob):
        return {"schedule": "cosine", "tokens_trained": budget.D, "tokens_spent": budget.D,
                "flops_spent": 6 * budget.N * budget.D}
    if isinstance(planned.job, TrunkJob):
        return {"schedule": "wsd", "role": "trunk", "tokens_trained": budget.D, "flops_trained": 6 * budget.N * budget.D,
                "states": [{"step": step, "tokens": step * tokens_per_step} for step in planned.states]}
    origin_file = paths.checkpoints / BRANCH_ORIGIN
    origin = json.loads(origin_file.read_text())["trunk_state_step"] if origin_file.exists() else None
    start = origin or 0
    share_steps, share_seconds = trunk_share(trunk_states(paths.states, planned.trunk_fingerprint), start)
    trained = (budget.steps - start) * tokens_per_step
    spent = trained + round(share_steps * tokens_per_step)
    stepping = max(record["wall_seconds"] - record["compile_seconds"], 1e-9)  # as run_record counts it
    return {
        "schedule": "wsd", "role": "branch", "cooldown": planned.job.cooldown.cooldown,
        "cooldown_shape": planned.job.cooldown.cooldown_shape, "lr_stable": planned.hp.lr,
        "branch_step": planned.branch, "branch_tokens": planned.branch * tokens_per_step,
        "cooldown_steps": budget.steps - planned.branch, "trunk_state_step": origin,
        "tokens_trained": trained, "trunk_share_tokens": round(share_steps * tokens_per_step),
        "trunk_share_wall_seconds": share_seconds, "tokens_spent": spent, "flops_spent": 6 * budget.N * spent,
        # Throughput of what this job trained (run_record's counts the whole D).
        **throughput(budget, trained, stepping, record["peak_flops_per_second"]),
    }


def trunk_states(states: Path, trunk_fingerprint: str) -> list[tuple[int, float]]:
    """(step, the trunk's wall seconds to it) of every state of this trunk, ascending, from their headers."""
    found = []
    for header in sorted(states.glob("step_*.json")) if states and states.is_dir() else []:
        try:
            values = json.loads(header.read_text())
        except (OSError, ValueError):
            continue
        if values.get("fingerprint") == trunk_fingerprint and header.with_suffix(".pt").exists():
            found.append((int(values["step"]), float(values.get("wall_seconds", 0.0))))
    return found


def trunk_share(states: list[tuple[int, float]], start: int) -> tuple[float, float]:
    """(steps, seconds) of the trunk charged to a branch that continued its state at step `start`:
    each stretch between two states is split evenly among the branches that continue a state at or
    past its end (one per state: each is a branch point)."""
    steps = seconds = 0.0
    before = (0, 0.0)
    for index, (step, wall) in enumerate(states):
        if step > start:
            break
        sharing = len(states) - index
        steps += (step - before[0]) / sharing
        seconds += (wall - before[1]) / sharing
        before = (step, wall)
    return steps, seconds


def finish(context, planned: Plan, trained: Model, paths: Paths, record: dict, keep_checkpoints: bool) -> None:
    """Save the model as the stock Qwen3, its log and, last, run.json (its presence means the run is whole);
    drop the checkpoints. A trunk writes its record (its states stay, and its log) and drops its periodic
    checkpoints."""
    from lmscale.decoder import to_transformers

    if isinstance(planned.job, TrunkJob):
        if context.is_main:
            atomic_write_json(paths.out_dir, record)
            if not keep_checkpoints:
                remove_checkpoints(paths.checkpoints)
        return
    if trained.mode == "fsdp":  # gather the shards (every rank), then rank 0 saves an unsharded copy
        weights = distributed.full_model_state(trained.model)
    else:
        weights = trained.core.state_dict()
    if not context.is_main:
        return
    stream = planned.stream
    save_model(to_transformers(weights, planned.job.shape, stream["vocab_size"], stream["end_of_text_id"]),
               paths.tokenizer, paths.out_dir)
    with atomic_writer(Path(paths.out_dir) / "train_log.jsonl", "wb") as handle:
        handle.write((Path(paths.checkpoints) / "train_log.jsonl").read_bytes())
    atomic_write_json(Path(paths.out_dir) / "run.json", record)
    if not keep_checkpoints:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)


def save_model(model, tokenizer_dir: str | Path, out_dir: str | Path) -> None:
    """Hugging Face format (safetensors, fp32) with the tokenizer beside it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").float().save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        source = Path(tokenizer_dir) / name
        if source.exists():
            shutil.copyfile(source, out_dir / name)


# ---- CLI -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, job=TrainJob) -> None:
    jobs.add_argument(parser, job)
    jobs.add_argument(parser, TrainOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder, copied beside the model")
    parser.add_argument("--out-dir", required=True, help="the model folder (Hugging Face format)")
    parser.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints; not a workflow output")
    add_process_arguments(parser)


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads the scheduler granted the job; under torchrun, divided among its processes")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs the scheduler granted the job: above one, the command runs again under torchrun "
                             "with one process per GPU (on the CPU, options.processes gloo processes)")


def add_branch_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, BranchJob)
    parser.add_argument("--trunk-dir", required=True, help="the trunk's folder: its log and, in states/, its states")


def add_trunk_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, TrunkJob)
    jobs.add_argument(parser, TrunkOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--trunk-dir", required=True,
                        help="the trunk's folder: its log, checkpoints and, in states/, its state at every branch "
                             "point; not a workflow output")
    parser.add_argument("--out", required=True, help="the trunk's record (JSON): written last, when it is whole")
    add_process_arguments(parser)


def main(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.processes), args.argv)
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out_dir), Path(args.checkpoint_dir),
                  Path(args.trunk_dir) if getattr(args, "trunk_dir", None) else None)
    train(args.job, args.options, paths, args.threads)
    return 0


def main_trunk(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.train.processes), args.argv)
    trunk = Path(args.trunk_dir)
    train(args.job, args.options, Paths(Path(args.tokens), None, Path(args.out), trunk, trunk), args.threads)
    return 0


# `lmscale train`, and under train.schedule wsd `lmscale trunk` and `lmscale branch`.
COMMANDS = {"train": (add_arguments, main), "trunk": (add_trunk_arguments, main_trunk),
            "branch": (add_branch_arguments, main)}
