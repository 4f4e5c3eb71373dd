"""What a run leaves: its log, its record (run.json), and the model in Hugging Face format.

`TrainLog` writes train_log.jsonl as the loop runs (rank 0), one line per
interval of steps: mean loss, learning rate, gradient norm, throughput and MFU.
`run_record` is run.json: N, D, C, the budget, the throughput and every
setting the run was trained with; a schedule adds its own fields
(`lmscale.training.schedules`). `save_run` writes the model as the stock Qwen3
with its tokenizer, the log and, last, run.json, whose presence means the run
is whole.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from lmscale.io.files import atomic_write_json, atomic_writer
from lmscale.training import distributed, performance
from lmscale.training.budget import Budget

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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


def run_record(context, planned, trained, wall: float, compile_seconds: float, resumed_from: int | None,
               peak: tuple[float | None, str]) -> dict:
    """run.json: the run's N, D, C, budget and throughput, and every setting it was trained with.

    wall_seconds is the whole training (every attempt, compiling included); tokens_per_second,
    flops_per_second (6 N D) and MFU (6 N_total D over the device's peak; null when the peak is
    unknown) count the seconds spent stepping, without compiling.
    """
    from lmscale.model.decoder import Decoder  # deferred: lmscale.model.decoder imports torch

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
        "shape": job.shape.as_dict(), "hyperparameters": asdict(hp), "fingerprint": planned.schedule.fingerprint,
        "architecture": Decoder.SAVED_AS,
    }


def throughput(budget: Budget, tokens: int, stepping: float, peak: float | None) -> dict:
    """run.json's tokens_per_second, flops_per_second (6 N per token) and MFU (6 N_total per token over
    the device's peak) of `tokens` trained in `stepping` seconds."""
    return {"tokens_per_second": tokens / stepping, "flops_per_second": 6 * budget.N * tokens / stepping,
            "mfu": performance.mfu(6 * budget.N_total * tokens / stepping, peak)}


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


def save_run(context, planned, trained, paths, record: dict, keep_checkpoints: bool) -> None:
    """Save the model as the stock Qwen3, its log and, last, run.json (its presence means the run is whole);
    drop the checkpoints."""
    from lmscale.model.decoder import to_transformers  # deferred: lmscale.model.decoder imports torch

    if trained.mode == "fsdp":  # gather the shards (every rank), then rank 0 saves an unsharded copy
        weights = distributed.full_model_state(trained.model)
    else:
        weights = trained.core.state_dict()
    if not context.is_main:
        return
    stream = planned.stream
    save_model(to_transformers(weights, planned.job.shape, stream["vocab_size"], stream["end_of_text_id"]),
               paths.tokenizer_dir, paths.model_dir)
    with atomic_writer(paths.model_dir / "train_log.jsonl", "wb") as handle:
        handle.write((paths.checkpoints / "train_log.jsonl").read_bytes())
    atomic_write_json(paths.record, record)
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
