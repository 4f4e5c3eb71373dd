"""Train stage: one model of the N x M grid, resumable, nanoGPT style.

Read top to bottom: the hyperparameters, the token budget D = M x N, the
replayable data order, the learning-rate schedule, checkpoints, then `train`,
whose loop is batch, forward, backward, clip, step, log, checkpoint.

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

from lmscale import distributed
from lmscale.config import run_name, to_json
from lmscale.files import atomic_write_json, atomic_writer
from lmscale.model import Shape, build_config, build_model, parameter_counts
from lmscale.tokens import open_tokens

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ---- hyperparameters -----------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings: `train` in the config, overridden per size by `sizes.<label>`.

    The defaults are the paper's (Gadre et al. 2024, appendix): AdamW with
    beta2 0.95, lr 3e-3, weight decay 0.033, z-loss 1e-4, cosine to 3e-5.
    """

    batch_size: int = 32  # sequences per optimizer step
    micro_batch_size: int | None = None  # sequences per forward pass (gradient accumulation); None: batch_size
    lr: float = 3e-3
    lr_floor: float = 3e-5  # where the cosine ends
    warmup: int = 100  # linear warmup, in steps
    weight_decay: float = 0.033
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    z_loss: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0  # initial weights and data order
    repeat_data: bool = False  # allow D beyond the train split (epochs > 1)
    # The N of D = M x N (and of C = 6 N D): every parameter (the paper), or without the
    # embeddings (Kaplan et al. 2020), which draws cleaner laws where the embedding is a
    # large share of a small model.
    count_embeddings: bool = True

    @classmethod
    def resolve(cls, size: dict, train: dict) -> "Hyperparameters":
        fields = cls.__dataclass_fields__
        merged = {k: v for k, v in {**train, **size}.items() if k in fields}
        # 1 and 1.0 are the same setting; one spelling keeps the run's fingerprint stable.
        for key, value in merged.items():
            if fields[key].type == "float" and value is not None:
                merged[key] = float(value)
        return cls(**merged)


# Keys of the `train` block that change no trained weight: they are command-line
# options, not rule params, so that changing them never retrains the grid.
# `processes` (CPU runs: gloo processes under torchrun; GPU runs take one per GPU) and
# `parallel` (auto, ddp, fsdp) choose how a run is split, not what it computes.
OPERATIONAL_KEYS = {"log_every": 10, "checkpoint_every": 100, "threads": 1, "device": "auto",
                    "gpus": 0, "keep_checkpoints": False, "processes": 1, "parallel": "auto"}


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


def load_checkpoint(checkpoint_dir: Path, expected_fingerprint: str) -> dict | None:
    """The newest readable checkpoint of this very run, or None to start fresh."""
    found = find_checkpoint(checkpoint_dir, expected_fingerprint)
    return found[1] if found else None


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


# ---- the run ------------------------------------------------------------------------------


def train(
    *,
    tokens_path: str | Path,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    dataset: str,
    size: str,
    multiplier: float,
    size_config: dict,
    train_config: dict,
    threads: int = 1,
    device: str = "auto",
    log_every: int = 10,
    checkpoint_every: int = 100,
    keep_checkpoints: bool = False,
    parallel: str = "auto",
) -> dict:
    """Train one run of the grid and save it in Hugging Face format; return its run.json record.

    Under torchrun every process calls this; rank 0 alone writes files and returns the record
    (other ranks return it too, unwritten).
    """
    import torch
    from tqdm import tqdm

    multiplier = float(multiplier)
    # A replicate of a fit run (`replicate_seeds` in the config) is this run with another seed.
    replicate_seed = train_config.get("replicate_seed")
    name = run_name(size, multiplier, replicate_seed)
    run = f"{dataset}/{name}"
    # `threads` are the job's: under torchrun, shared among its processes.
    torch.set_num_threads(max(1, threads // int(os.environ.get("WORLD_SIZE", "1"))))
    shape = Shape.from_config(size, size_config)
    hp = Hyperparameters.resolve(size_config, train_config)
    if replicate_seed is not None:
        hp = replace(hp, seed=int(replicate_seed))
    micro = hp.micro_batch_size or hp.batch_size
    if hp.batch_size % micro:
        raise ValueError(f"size {size}: batch_size {hp.batch_size} is not a multiple of micro_batch_size {micro}")
    tokens, stream = open_tokens(tokens_path)

    # The budget and the data check come before any weight exists: a refused run costs nothing.
    with torch.device("meta"):
        from transformers import Qwen3ForCausalLM

        counts = parameter_counts(Qwen3ForCausalLM(build_config(shape, stream["vocab_size"], stream["end_of_text_id"])))
    budget = Budget.plan(counts, multiplier, hp.batch_size, shape.context, hp.count_embeddings)
    order = SequenceOrder(tokens, shape.context, hp.seed)
    epochs = check_enough_data(run, budget, order.usable_tokens, hp.repeat_data)
    warmup = min(hp.warmup, budget.steps // 2)

    context = distributed.Context.start(device)
    try:
        return _train(context, name=name, run=run, shape=shape, hp=hp, micro=micro, stream=stream, counts=counts,
                      budget=budget, order=order, epochs=epochs, warmup=warmup, tokenizer_dir=tokenizer_dir,
                      out_dir=out_dir, checkpoint_dir=checkpoint_dir, dataset=dataset, size=size,
                      multiplier=multiplier, log_every=log_every, checkpoint_every=checkpoint_every,
                      keep_checkpoints=keep_checkpoints, parallel=parallel, tqdm=tqdm)
    finally:
        context.close()


def _train(context, *, name, run, shape, hp, micro, stream, counts, budget, order, epochs, warmup, tokenizer_dir,
           out_dir, checkpoint_dir, dataset, size, multiplier, log_every, checkpoint_every, keep_checkpoints,
           parallel, tqdm) -> dict:
    import torch

    main = context.is_main
    if not main:  # one voice: the other ranks only warn
        logging.getLogger("lmscale").setLevel(logging.WARNING)
    if warmup != hp.warmup and main:
        log.warning("%s: warmup %d is more than half of its %d steps; using %d", run, hp.warmup, budget.steps, warmup)
    rows = context.local_rows(hp.batch_size)  # this process's share of every global batch
    local_micro = min(micro, rows.stop - rows.start)

    device = context.device
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                if device.type == "cuda" else nullcontext())
    mode = distributed.choose_parallel(parallel, counts["N"], context)
    core = build_model(shape, stream["vocab_size"], stream["end_of_text_id"], hp.seed).to(device)
    model = distributed.wrap(core, mode, context)
    optimizer = make_optimizer(model, hp)  # after sharding: FSDP2 replaces the parameters

    checkpoint_dir = Path(checkpoint_dir)
    if main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    log_path = checkpoint_dir / "train_log.jsonl"
    settings = {
        "run": run, "shape": shape.as_dict(), "multiplier": multiplier, "steps": budget.steps,
        "hyperparameters": asdict(hp),
        "stream": {k: stream[k] for k in ("tokens", "tokenizer_sha256")},
    }
    run_fingerprint = fingerprint(settings)
    start_step, wall_before, resumed_from = 0, 0.0, None
    # Rank 0 chooses the checkpoint (or a fresh start); every rank reads the one it chose.
    found = find_checkpoint(checkpoint_dir, run_fingerprint) if main else None
    chosen = context.broadcast(str(found[0]) if found else None)
    if chosen is not None:
        state = found[1] if main else read_checkpoint(Path(chosen))
        distributed.load_full_state(model, optimizer, state["model"], state["optimizer"])
        set_rng_state(state["rng"])
        start_step = resumed_from = state["step"]
        wall_before = state["wall_seconds"]
        del state, found
        if main:
            truncate_log(log_path, start_step)
        log.info("%s: resumed from checkpoint at step %d of %d", run, start_step, budget.steps)
    elif main:
        remove_checkpoints(checkpoint_dir)
        log_path.unlink(missing_ok=True)
        log.info("%s: fresh start", run)
    split = f", {context.world} processes ({mode})" if context.distributed else ""
    log.info("%s: N = %s (of %s parameters, %s without embeddings), D = %s in %d steps of %d tokens "
             "(M = %g, target %s), %.2f epochs, device %s%s", run, f"{budget.N:,}", f"{budget.N_total:,}",
             f"{budget.N_non_embedding:,}", f"{budget.D:,}",
             budget.steps, budget.tokens_per_step, multiplier, f"{budget.D_target:,}", epochs, device, split)

    model.train()
    started = time.perf_counter()
    interval_start, interval_losses, step_loss = started, [], float("nan")
    progress = tqdm(total=budget.steps, initial=start_step, desc=run, unit="step", mininterval=5.0,
                    disable=not main)
    with (open(log_path, "a") if main else nullcontext()) as log_file:
        for step in range(start_step, budget.steps):
            lr = learning_rate(step, budget.steps, hp, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr

            batch = torch.from_numpy(order.batch(step, hp.batch_size)[rows]).to(device)
            micro_batches = batch.split(local_micro)
            # Each process weighs its sequences as a share of the global batch; the gradient
            # average over processes (x 1/world) is undone by the factor world.
            scale = context.world / hp.batch_size
            loss_sum = torch.zeros((), device=device)
            for index, micro_batch in enumerate(micro_batches):
                with distributed.gradient_sync(model, mode, sync=index == len(micro_batches) - 1):
                    with autocast:
                        logits = model(input_ids=micro_batch[:, :-1]).logits
                    cross_entropy, z = loss_terms(logits, micro_batch[:, 1:], hp.z_loss)
                    ((cross_entropy + z) * len(micro_batch) * scale).backward()
                loss_sum += cross_entropy.detach() * len(micro_batch) / hp.batch_size
            step_loss = context.sum(loss_sum).item()
            grad_norm = distributed.grad_norm_value(torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            done = step + 1
            interval_losses.append(step_loss)
            progress.update(1)
            if done % log_every == 0 or done == budget.steps:
                now = time.perf_counter()
                record = {
                    "step": done, "loss": float(np.mean(interval_losses)), "lr": lr,
                    "grad_norm": grad_norm, "tokens": done * budget.tokens_per_step,
                    "tokens_per_second": len(interval_losses) * budget.tokens_per_step / (now - interval_start),
                    "wall_seconds": wall_before + now - started,
                }
                if main:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                progress.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2e}", refresh=False)
                interval_start, interval_losses = now, []
            if done % checkpoint_every == 0 and done < budget.steps:
                model_state, optimizer_state = distributed.full_state(model, optimizer)  # every rank: a collective
                if main:
                    log_file.flush()
                    save_checkpoint(checkpoint_dir, {
                        "step": done, "fingerprint": run_fingerprint, "format": CHECKPOINT_FORMAT,
                        "model": model_state, "optimizer": optimizer_state, "rng": rng_state(),
                        "wall_seconds": wall_before + time.perf_counter() - started,
                    })
                del model_state, optimizer_state
    progress.close()
    wall = wall_before + time.perf_counter() - started

    record = {
        "model": name, "dataset": dataset, "size": size, "seed": hp.seed,
        "N": budget.N, "N_total": budget.N_total, "N_non_embedding": budget.N_non_embedding,
        "count_embeddings": hp.count_embeddings,
        "D": budget.D, "D_target": budget.D_target, "D_rounding": budget.D - budget.D_target,
        "M": multiplier, "M_actual": budget.D / budget.N, "C": 6 * budget.N * budget.D,
        "steps": budget.steps, "batch_size": hp.batch_size, "context": shape.context,
        "tokens_per_step": budget.tokens_per_step, "epochs": epochs,
        "train_tokens_available": order.usable_tokens, "warmup_steps": warmup,
        "wall_seconds": wall, "tokens_per_second": budget.D / wall,
        "flops_per_second": 6 * budget.N * budget.D / wall,
        "resumed_from_step": resumed_from, "device": str(device.type),
        "processes": context.world, "parallel": mode,
        "shape": shape.as_dict(), "hyperparameters": asdict(hp), "fingerprint": run_fingerprint,
        "architecture": type(core).__name__,
    }
    if mode == "fsdp":  # gather the shards (every rank), then rank 0 saves an unsharded copy
        weights = distributed.full_model_state(model)
        if main:
            core = build_model(shape, stream["vocab_size"], stream["end_of_text_id"], hp.seed)
            core.load_state_dict(weights)
        del weights
    if main:
        save_model(core, tokenizer_dir, out_dir)
        shutil.copyfile(log_path, Path(out_dir) / "train_log.jsonl")
        atomic_write_json(Path(out_dir) / "run.json", record)  # last: its presence means the run is whole
        if not keep_checkpoints:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        log.info("%s: done in %.1f s, %.0f tokens/s, %.3g FLOP/s, final train loss %.4f",
                 run, wall, record["tokens_per_second"], record["flops_per_second"], step_loss)
    return record


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
    parser.add_argument("--tokens", required=True, help="train token stream (.bin with its .json)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder, copied beside the model")
    parser.add_argument("--out-dir", required=True, help="the model folder (Hugging Face format)")
    parser.add_argument("--checkpoint-dir", required=True, help="resumable checkpoints; not a workflow output")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--size", required=True, help="size label")
    parser.add_argument("--multiplier", type=float, required=True, help="token multiplier M (D = M x N)")
    parser.add_argument("--size-config", required=True, help="the size's shape and hyperparameters, as JSON")
    parser.add_argument("--train-config", default="{}",
                        help="the `train` block, as JSON; with `replicate_seed` k, the replicate "
                             "{size}_M{multiplier}_seed{k} trained with seed k")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of the job; under torchrun, divided among its processes")
    parser.add_argument("--device", default=os.environ.get("LMSCALE_DEVICE", "auto"), help="auto, cpu or cuda")
    parser.add_argument("--log-every", type=int, default=OPERATIONAL_KEYS["log_every"], help="steps per log line")
    parser.add_argument("--checkpoint-every", type=int, default=OPERATIONAL_KEYS["checkpoint_every"],
                        help="steps per checkpoint")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints after the run ends")
    parser.add_argument("--parallel", default=OPERATIONAL_KEYS["parallel"], choices=distributed.PARALLEL_MODES,
                        help="under torchrun: ddp, fsdp, or auto (fsdp when the training state crowds one GPU)")


def main(args: argparse.Namespace) -> int:
    train(
        tokens_path=args.tokens, tokenizer_dir=args.tokenizer, out_dir=args.out_dir,
        checkpoint_dir=args.checkpoint_dir, dataset=args.dataset, size=args.size,
        multiplier=args.multiplier, size_config=json.loads(args.size_config),
        train_config=json.loads(args.train_config), threads=args.threads, device=args.device,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        parallel=args.parallel,
    )
    return 0
