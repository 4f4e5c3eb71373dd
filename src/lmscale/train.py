"""Train stage: one model of the N x M grid, resumable, nanoGPT style.

Read top to bottom: the token budget D = M x N, the replayable data order,
the learning-rate schedule, checkpoints, then the run in named steps: `plan`
(the budget, before any weight exists), `build`, `resume`, the loop in
`_train` (`step`: batch, forward, backward, clip, step; log; `checkpoint`),
then `finish`. What a run computes is its `lmscale.jobs.TrainJob`; how it is
carried out (log and checkpoint cadence, device, processes) its `TrainOptions`.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lmscale import distributed, jobs
from lmscale.config import to_json
from lmscale.files import atomic_write_json, atomic_writer
from lmscale.jobs import Hyperparameters, TrainJob, TrainOptions
from lmscale.model import build_config, build_model, parameter_counts
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

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """Token windows of shape (batch_size, context + 1) for `step`."""
        rows = []
        for position in range(step * batch_size, (step + 1) * batch_size):
            epoch, index = divmod(position, self.sequences)
            start = int(self.permutation(epoch)[index]) * self.context
            rows.append(self.tokens[start : start + self.context + 1])
        return np.stack(rows).astype(np.int64)


# ---- schedule and loss --------------------------------------------------------------


def learning_rate(step: int, steps: int, hp: Hyperparameters, warmup: int) -> float:
    """Linear warmup to hp.lr, then cosine decay to hp.lr_floor at the last step."""
    if step < warmup:
        return hp.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return hp.lr_floor + 0.5 * (hp.lr - hp.lr_floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_terms(logits, targets, z_loss: float):
    """Mean token cross-entropy and the z-loss, z_loss x mean(log Z^2), which keeps logits from drifting."""
    logits = logits.float().reshape(-1, logits.shape[-1])
    # One log-partition serves both terms: cross-entropy is log Z minus the target's logit.
    log_z = logits.logsumexp(dim=-1)
    cross_entropy = (log_z - logits.gather(1, targets.reshape(-1, 1)).squeeze(1)).mean()
    z = z_loss * log_z.pow(2).mean()
    return cross_entropy, z


def make_optimizer(model, hp: Hyperparameters):
    """AdamW; norms (1-D weights) are not decayed, as in nanoGPT and open_lm."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps,
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


def save_checkpoint(checkpoint_dir: Path, state: dict, keep: int = 2) -> Path:
    """Write the header, then the checkpoint, each atomically (temporary file, then rename); keep
    the newest `keep`. A checkpoint on disk always has its header."""
    import torch

    path = checkpoint_dir / f"step_{state['step']:09d}.pt"
    atomic_write_json(checkpoint_header(path),
                      {key: state[key] for key in ("step", "fingerprint", "format")})
    with atomic_writer(path, "wb") as handle:
        torch.save(state, handle)
    for old in checkpoint_paths(checkpoint_dir)[keep:]:
        old.unlink()
        checkpoint_header(old).unlink(missing_ok=True)
    return path


def remove_checkpoints(checkpoint_dir: Path) -> None:
    """Every checkpoint and header (a fresh start)."""
    for path in checkpoint_dir.glob("step_*"):
        path.unlink()


def read_checkpoint(path: Path) -> dict:
    """A checkpoint, memory-mapped (processes reading the same file share its pages). Only
    tensors and plain values are unpickled (weights_only): a crafted file cannot run code."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def find_checkpoint(checkpoint_dir: Path, expected_fingerprint: str) -> tuple[Path, dict] | None:
    """The newest readable checkpoint of this very run and its state, or None to start fresh.

    Each checkpoint's header is read first; a checkpoint whose header is missing or names other
    settings or another layout is never opened.
    """
    for path in checkpoint_paths(checkpoint_dir):
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
    tokenizer: Path  # the tokenizer folder, copied beside the model
    out_dir: Path  # the model folder (Hugging Face format), train_log.jsonl and run.json
    checkpoints: Path  # resumable checkpoints: outside the workflow's declared outputs


@dataclass(frozen=True)
class Plan:
    """A run worked out before any weight exists, so that a refused run costs nothing."""

    job: TrainJob
    stream: dict  # the token stream's summary
    order: SequenceOrder
    counts: dict  # N with and without the embeddings
    budget: Budget
    epochs: float
    warmup: int  # the job's warmup, at most half the run
    micro: int  # sequences per forward pass

    @property
    def hp(self) -> Hyperparameters:
        return self.job.hyperparameters

    @property
    def run(self) -> str:
        return f"{self.job.dataset}/{self.job.name}"

    @property
    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: every setting that changes the run."""
        return fingerprint({
            "run": self.run, "shape": self.job.shape.as_dict(), "multiplier": self.job.multiplier,
            "steps": self.budget.steps, "hyperparameters": asdict(self.hp),
            "stream": {k: self.stream[k] for k in ("tokens", "tokenizer_sha256")},
        })


@dataclass
class Model:
    """The model as the loop drives it, its optimizer, and how the run is split across processes."""

    core: object  # the `transformers` model, saved at the end
    model: object  # core itself, or its DDP / FSDP2 form
    optimizer: object
    mode: str  # none, ddp or fsdp
    autocast: object  # bf16 on GPU, nothing on the CPU


def train(job: TrainJob, options: TrainOptions, paths: Paths, threads: int = 1) -> dict:
    """Train one run of the grid and save it in Hugging Face format; return its run.json record.

    Under torchrun every process calls this; rank 0 alone writes files and returns the record
    (other ranks return it too, unwritten). `threads` are the job's: under torchrun, shared
    among its processes.
    """
    import torch

    torch.set_num_threads(max(1, threads // int(os.environ.get("WORLD_SIZE", "1"))))
    planned = plan(job, paths.tokens)
    context = distributed.Context.start(options.device)
    try:
        return _train(context, planned, options, paths)
    finally:
        context.close()


def plan(job: TrainJob, tokens_path: str | Path) -> Plan:
    """The budget D = M x N in whole steps and the data order; refuses a run its data cannot feed."""
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
    budget = Budget.plan(counts, job.multiplier, hp.batch_size, job.shape.context, hp.count_embeddings)
    order = SequenceOrder(tokens, job.shape.context, hp.seed)
    epochs = check_enough_data(f"{job.dataset}/{job.name}", budget, order.usable_tokens, hp.repeat_data)
    return Plan(job, stream, order, counts, budget, epochs, min(hp.warmup, budget.steps // 2), micro)


def _train(context, planned: Plan, options: TrainOptions, paths: Paths) -> dict:
    """Build, resume, then the loop: step, log, checkpoint; then finish."""
    from tqdm import tqdm

    run, steps, main = planned.run, planned.budget.steps, context.is_main
    if not main:  # one voice: the other ranks only warn
        logging.getLogger("lmscale").setLevel(logging.WARNING)
    if planned.warmup != planned.hp.warmup and main:
        log.warning("%s: warmup %d is more than half of its %d steps; using %d", run, planned.hp.warmup, steps,
                    planned.warmup)
    rows = context.local_rows(planned.hp.batch_size)  # this process's share of every global batch
    trained = build(context, planned, options.parallel)
    start, wall_before, resumed_from = resume(context, planned, trained, paths.checkpoints)
    budget, split = planned.budget, f", {context.world} processes ({trained.mode})" if context.distributed else ""
    log.info("%s: N = %s (of %s parameters, %s without embeddings), D = %s in %d steps of %d tokens "
             "(M = %g, target %s), %.2f epochs, device %s%s", run, f"{budget.N:,}", f"{budget.N_total:,}",
             f"{budget.N_non_embedding:,}", f"{budget.D:,}", steps, budget.tokens_per_step,
             planned.job.multiplier, f"{budget.D_target:,}", planned.epochs, context.device, split)

    trained.model.train()
    train_log = TrainLog(paths.checkpoints / "train_log.jsonl", main, wall_before, budget.tokens_per_step)
    progress = tqdm(total=steps, initial=start, desc=run, unit="step", mininterval=5.0, disable=not main)
    loss = float("nan")
    for index in range(start, steps):
        lr, loss, grad_norm = step(context, planned, trained, index, rows)
        done = index + 1
        progress.update(1)
        if train_log.add(loss, done % options.log_every == 0 or done == steps, done, lr, grad_norm):
            progress.set_postfix(loss=f"{train_log.last['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
        if done % options.checkpoint_every == 0 and done < steps:
            checkpoint(context, planned, trained, paths.checkpoints, done, train_log.wall_seconds())
    progress.close()
    train_log.close()
    record = run_record(context, planned, trained, train_log.wall_seconds(), resumed_from)
    finish(context, planned, trained, paths, record, options.keep_checkpoints)
    if main:
        log.info("%s: done in %.1f s, %.0f tokens/s, %.3g FLOP/s, final train loss %.4f", run,
                 record["wall_seconds"], record["tokens_per_second"], record["flops_per_second"], loss)
    return record


def build(context, planned: Plan, parallel: str) -> Model:
    """A fresh model on this process's device, wrapped for the processes, and its optimizer."""
    import torch

    job, device = planned.job, context.device
    mode = distributed.choose_parallel(parallel, planned.counts["N"], context)
    core = build_model(job.shape, planned.stream["vocab_size"], planned.stream["end_of_text_id"],
                       planned.hp.seed).to(device)
    model = distributed.wrap(core, mode, context)
    optimizer = make_optimizer(model, planned.hp)  # after sharding: FSDP2 replaces the parameters
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    return Model(core, model, optimizer, mode, autocast)


def resume(context, planned: Plan, trained: Model, checkpoints: Path) -> tuple[int, float, int | None]:
    """(first step, wall seconds spent before it, the step resumed from or None).

    Rank 0 chooses the newest checkpoint of this very run, or a fresh start; every rank
    reads the one it chose.
    """
    main, log_path = context.is_main, checkpoints / "train_log.jsonl"
    if main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    found = find_checkpoint(checkpoints, planned.fingerprint) if main else None
    chosen = context.broadcast(str(found[0]) if found else None)
    if chosen is None:
        if main:
            remove_checkpoints(checkpoints)
            log_path.unlink(missing_ok=True)
            log.info("%s: fresh start", planned.run)
        return 0, 0.0, None
    state = found[1] if main else read_checkpoint(Path(chosen))
    distributed.load_full_state(trained.model, trained.optimizer, state["model"], state["optimizer"])
    set_rng_state(state["rng"])
    if main:
        truncate_log(log_path, state["step"])
    log.info("%s: resumed from checkpoint at step %d of %d", planned.run, state["step"], planned.budget.steps)
    return state["step"], state["wall_seconds"], state["step"]


def step(context, planned: Plan, trained: Model, index: int, rows: slice) -> tuple[float, float, float]:
    """Optimizer step `index` on its batch: (learning rate, loss, gradient norm before clipping)."""
    import torch

    hp, device = planned.hp, context.device
    lr = learning_rate(index, planned.budget.steps, hp, planned.warmup)
    for group in trained.optimizer.param_groups:
        group["lr"] = lr
    batch = torch.from_numpy(planned.order.batch(index, hp.batch_size)[rows]).to(device)
    micro_batches = batch.split(min(planned.micro, rows.stop - rows.start))
    # Each process weighs its sequences as a share of the global batch; the gradient
    # average over processes (x 1/world) is undone by the factor world.
    scale = context.world / hp.batch_size
    loss_sum = torch.zeros((), device=device)
    for position, micro_batch in enumerate(micro_batches):
        with distributed.gradient_sync(trained.model, trained.mode, sync=position == len(micro_batches) - 1):
            with trained.autocast:
                logits = trained.model(input_ids=micro_batch[:, :-1]).logits
            cross_entropy, z = loss_terms(logits, micro_batch[:, 1:], hp.z_loss)
            ((cross_entropy + z) * len(micro_batch) * scale).backward()
        loss_sum += cross_entropy.detach() * len(micro_batch) / hp.batch_size
    loss = context.sum(loss_sum).item()
    grad_norm = distributed.grad_norm_value(torch.nn.utils.clip_grad_norm_(trained.model.parameters(), hp.grad_clip))
    trained.optimizer.step()
    trained.optimizer.zero_grad(set_to_none=True)
    return lr, loss, grad_norm


class TrainLog:
    """train_log.jsonl, one line per interval of steps (rank 0 writes): its mean loss and throughput."""

    def __init__(self, path: Path, main: bool, wall_before: float, tokens_per_step: int):
        self.file = open(path, "a") if main else None
        self.wall_before, self.tokens_per_step = wall_before, tokens_per_step
        self.started = self.interval_start = time.perf_counter()
        self.losses: list[float] = []
        self.last: dict = {}

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def add(self, loss: float, ends_interval: bool, done: int, lr: float, grad_norm: float) -> bool:
        """Count a step's loss; at the end of an interval, write its line. Returns whether it wrote."""
        self.losses.append(loss)
        if not ends_interval:
            return False
        now = time.perf_counter()
        self.last = {
            "step": done, "loss": float(np.mean(self.losses)), "lr": lr, "grad_norm": grad_norm,
            "tokens": done * self.tokens_per_step,
            "tokens_per_second": len(self.losses) * self.tokens_per_step / (now - self.interval_start),
            "wall_seconds": self.wall_before + now - self.started,
        }
        if self.file:
            self.file.write(json.dumps(self.last) + "\n")
            self.file.flush()
        self.interval_start, self.losses = now, []
        return True

    def close(self) -> None:
        if self.file:
            self.file.close()


def checkpoint(context, planned: Plan, trained: Model, checkpoints: Path, done: int, wall_seconds: float) -> None:
    """Full (unsharded) weights, optimizer and RNG state after step `done`; every rank gathers, rank 0 saves."""
    model_state, optimizer_state = distributed.full_state(trained.model, trained.optimizer)  # a collective
    if context.is_main:
        save_checkpoint(checkpoints, {
            "step": done, "fingerprint": planned.fingerprint, "format": CHECKPOINT_FORMAT,
            "model": model_state, "optimizer": optimizer_state, "rng": rng_state(), "wall_seconds": wall_seconds,
        })


def run_record(context, planned: Plan, trained: Model, wall: float, resumed_from: int | None) -> dict:
    """run.json: the run's N, D, C, budget and throughput, and every setting it was trained with."""
    job, hp, budget = planned.job, planned.hp, planned.budget
    return {
        "model": job.name, "dataset": job.dataset, "size": job.size, "seed": hp.seed,
        "N": budget.N, "N_total": budget.N_total, "N_non_embedding": budget.N_non_embedding,
        "count_embeddings": hp.count_embeddings,
        "D": budget.D, "D_target": budget.D_target, "D_rounding": budget.D - budget.D_target,
        "M": job.multiplier, "M_actual": budget.D / budget.N, "C": 6 * budget.N * budget.D,
        "steps": budget.steps, "batch_size": hp.batch_size, "context": job.shape.context,
        "tokens_per_step": budget.tokens_per_step, "epochs": planned.epochs,
        "train_tokens_available": planned.order.usable_tokens, "warmup_steps": planned.warmup,
        "wall_seconds": wall, "tokens_per_second": budget.D / wall,
        "flops_per_second": 6 * budget.N * budget.D / wall,
        "resumed_from_step": resumed_from, "device": str(context.device.type),
        "processes": context.world, "parallel": trained.mode,
        "shape": job.shape.as_dict(), "hyperparameters": asdict(hp), "fingerprint": planned.fingerprint,
        "architecture": type(trained.core).__name__,
    }


def finish(context, planned: Plan, trained: Model, paths: Paths, record: dict, keep_checkpoints: bool) -> None:
    """Save the model, its log and, last, run.json (its presence means the run is whole); drop the checkpoints."""
    core = trained.core
    if trained.mode == "fsdp":  # gather the shards (every rank), then rank 0 saves an unsharded copy
        weights = distributed.full_model_state(trained.model)
        if context.is_main:
            core = build_model(planned.job.shape, planned.stream["vocab_size"], planned.stream["end_of_text_id"],
                               planned.hp.seed)
            core.load_state_dict(weights)
        del weights
    if not context.is_main:
        return
    save_model(core, paths.tokenizer, paths.out_dir)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, TrainJob)
    jobs.add_argument(parser, TrainOptions, "--options")
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder, copied beside the model")
    parser.add_argument("--out-dir", required=True, help="the model folder (Hugging Face format)")
    parser.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints; not a workflow output")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads the scheduler granted the job; under torchrun, divided among its processes")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs the scheduler granted the job: above one, the command runs again under torchrun "
                             "with one process per GPU (on the CPU, options.processes gloo processes)")


def main(args: argparse.Namespace) -> int:
    distributed.relaunch(distributed.process_count(args.gpus, args.options.processes), args.argv)
    paths = Paths(Path(args.tokens), Path(args.tokenizer), Path(args.out_dir), Path(args.checkpoint_dir))
    train(args.job, args.options, paths, args.threads)
    return 0
