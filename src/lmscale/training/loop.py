"""The training loop, nanoGPT style: one run of the grid, resumable.

Read top to bottom: `train` plans the run (`lmscale.training.setup`) and joins
the processes; `loop` builds the model (`build`), resumes (`resume`), compiles
(`compile_step`), then runs the loop: `step` (batch, forward, backward, clip,
step), log (`TrainLog`), `checkpoint`; then the record and the finish that
the job's schedule decides. What a run computes is its job
(`lmscale.jobs.TrainJob`, or a wsd trunk's or branch's); how it is carried out
(log and checkpoint cadence, device, processes) its `TrainOptions`.

Runs too large for one GPU run under `torchrun`, one process per GPU
(`lmscale.training.distributed`): every step's global batch is the
one-process batch, split across processes; gradients are averaged (DDP, or
FSDP2 when the training state must be sharded). Only rank 0 writes the log,
the checkpoints (full, unsharded: any process count resumes them) and the
final model; every rank reads the checkpoint rank 0 chose.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from lmscale.io.files import atomic_write_json
from lmscale.jobs import BranchJob, Hyperparameters, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training import distributed, performance
from lmscale.training.checkpoints import (
    CHECKPOINT_FORMAT,
    KEEP,
    fingerprint,
    newest_checkpoint,
    read_checkpoint,
    remove_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
    truncate_log,
)
from lmscale.training.outputs import TrainLog, run_record
from lmscale.training.setup import Paths, Plan, plan

log = logging.getLogger(__name__)


@dataclass
class Model:
    """The network as the loop drives it, its optimizer, and how the run is split and compiled."""

    core: object  # lmscale.model.decoder.Decoder: Qwen3ForCausalLM's parameters, saved as one at the end
    model: object  # core itself, or its DDP / FSDP2 form; compiled in place when `compiled`
    optimizer: object
    mode: str  # none, ddp or fsdp
    autocast: object  # bf16 on GPU, nothing on the CPU
    compiled: bool
    compile_key: str  # what the compiled step depends on (shape, batch, device, threads, torch)


def train(job: TrainJob | TrunkJob | BranchJob, options: TrainOptions | TrunkOptions, paths: Paths,
          threads: int) -> dict:
    """Train one run of the grid and save it in Hugging Face format; return its run.json record.
    A trunk (`options` its TrunkOptions) saves its states and returns its record instead.

    Under torchrun every process calls this; rank 0 alone writes files and returns the record
    (other ranks return it too, unwritten). `threads` are the job's: under torchrun, shared
    among its processes.
    """
    import torch  # deferred: torch loads in seconds; `lmscale train --help` should not wait for it

    torch.set_num_threads(max(1, threads // int(os.environ.get("WORLD_SIZE", "1"))))
    planned = plan(job, paths.tokens, options)
    options = planned.schedule.run_options(options)
    context = distributed.Context.start(options.device)
    try:
        return loop(context, planned, options, paths)
    finally:
        context.close()


def loop(context, planned: Plan, options: TrainOptions, paths: Paths) -> dict:
    """Build, resume, compile, then the loop: step, log, checkpoint; then finish."""
    from tqdm import tqdm  # deferred: it loads importlib.metadata, email and socket (~25 ms); --help needs none

    run, steps, budget, main = planned.run, planned.budget.steps, planned.budget, context.is_main
    if not main:  # one voice: the other ranks only warn
        logging.getLogger("lmscale").setLevel(logging.WARNING)
    if planned.warmup != planned.hp.warmup and main:
        log.warning("%s: warmup %d is more than half of its %d steps; using %d", run, planned.hp.warmup, steps,
                    planned.warmup)
    rows = context.local_rows(planned.hp.batch_size)  # this process's share of every global batch
    trained = build(context, planned, options)
    start, wall_before, compile_before, resumed_from = resume(context, planned, trained, paths)
    log_plan(context, planned, trained)
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
        if planned.schedule.keeps_state(done):  # a trunk's branch point: its state is kept for the branches
            checkpoint(context, planned, trained, paths.states, done, train_log.wall_seconds(), compile_seconds,
                       keep=None)
        elif done % options.checkpoint_every == 0 and done < steps:
            checkpoint(context, planned, trained, paths.checkpoints, done, train_log.wall_seconds(), compile_seconds)
    progress.close()
    train_log.close()

    record = run_record(context, planned, trained, train_log.wall_seconds(), compile_seconds, resumed_from,
                        (peak, peak_source))
    record.update(planned.schedule.record(paths, record))
    planned.schedule.finish(context, planned, trained, paths, record, options.keep_checkpoints)
    if main:
        log.info("%s: done in %.1f s (%.1f s compiling), %.0f tokens/s, %.3g FLOP/s%s, final train loss %.4f", run,
                 record["wall_seconds"], record["compile_seconds"], record["tokens_per_second"],
                 record["flops_per_second"], f", MFU {record['mfu']:.1%}" if record["mfu"] else "",
                 train_log.last["loss"])
    return record


def step(context, planned: Plan, trained: Model, index: int, rows: slice) -> tuple[float, object, object]:
    """Optimizer step `index` on its batch: (learning rate, mean loss and gradient norm before clipping).

    The loss and the norm stay tensors on the device (this process's share of the loss): reading
    them would wait for the device, so TrainLog reads them once per logged interval.
    """
    import torch  # deferred: torch loads in seconds

    hp = planned.hp
    lr = planned.schedule.lr(index)
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


def batch_on_device(planned: Plan, index: int, rows: slice, device):
    """Step `index`'s sequences of this process as one tensor on the device (copied asynchronously to a GPU)."""
    import torch  # deferred: torch loads in seconds

    batch = torch.from_numpy(planned.order.batch(index, planned.hp.batch_size, rows))
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def log_plan(context, planned: Plan, trained: Model) -> None:
    """The run's budget and schedule, in two lines of its log."""
    budget, split = planned.budget, f", {context.world} processes ({trained.mode})" if context.distributed else ""
    log.info("%s: N = %s (of %s parameters, %s without embeddings), D = %s in %d steps of %d tokens "
             "(M = %g, target %s), %.2f epochs, device %s%s", planned.run, f"{budget.N:,}", f"{budget.N_total:,}",
             f"{budget.N_non_embedding:,}", f"{budget.D:,}", budget.steps, budget.tokens_per_step,
             planned.job.multiplier, f"{budget.D_target:,}", planned.epochs, context.device, split)
    log.info("%s: %s", planned.run, planned.schedule.summary())


def build(context, planned: Plan, options: TrainOptions) -> Model:
    """A fresh model on this process's device, wrapped for the processes, compiled or not, and its
    optimizer.

    The model is lmscale.model.decoder.Decoder, holding the stock Qwen3 model's initial weights.
    Whether to compile is an option, not part of the job: a compiled step computes what the
    eager one does (tests/test_loop.py follows both for 50 steps), rounding apart, as a run
    on another device does; so a run resumes whichever way its checkpoint was written.
    """
    import torch  # deferred: torch loads in seconds

    from lmscale.model.decoder import build_decoder  # deferred: lmscale.model.decoder imports torch

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
    compiled, reason = performance.should_compile(options.compile, device.type, planned.schedule.steps_to_train,
                                                  planned.budget.tokens_per_step * job.shape.width * job.shape.depth,
                                                  seen)
    log.info("%s: %s", planned.run, reason)
    return Model(core, model, optimizer, mode, autocast, compiled, key)


def make_optimizer(model, hp: Hyperparameters, fused: bool):
    """AdamW; norms (1-D weights) are not decayed, as in nanoGPT and open_lm.

    Fused (one kernel updates every tensor of a group, on the CPU and on CUDA) unless asked
    not to; sharded (FSDP2) parameters take torch's default, foreach on CUDA.
    """
    import torch  # deferred: torch loads in seconds

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps, fused=fused or None,
    )


def resume(context, planned: Plan, trained: Model, paths: Paths) -> tuple[int, float, float, int | None]:
    """(first step, wall seconds spent before it, of which compiling, the step resumed from or None).

    Rank 0 chooses the newest checkpoint among the schedule's sources (a trunk's states included),
    else a fresh start; every rank reads the one it chose. A branch on its trunk's state starts
    its wall seconds and tokens there: its own.
    """
    checkpoints = paths.checkpoints
    main, log_path = context.is_main, checkpoints / "train_log.jsonl"
    if main:
        checkpoints.mkdir(parents=True, exist_ok=True)
    found = newest_checkpoint(planned.schedule.sources(paths)) if main else None
    chosen = context.broadcast((str(found[0]), found[2]) if found else None)
    if chosen is None:
        if main:
            remove_checkpoints(checkpoints)
            log_path.unlink(missing_ok=True)
            planned.schedule.fresh_start(paths)
            log.info("%s: fresh start", planned.run)
        return 0, 0.0, 0.0, None
    state = found[1] if main else read_checkpoint(Path(chosen[0]))
    distributed.load_full_state(trained.model, trained.optimizer, state["model"], state["optimizer"])
    set_rng_state(state["rng"])
    if chosen[1]:  # a trunk's state, which only a branch names as a source: the branch's start
        if main:
            planned.schedule.adopt_trunk_state(paths, state["step"])
        return state["step"], 0.0, 0.0, None
    if main:
        truncate_log(log_path, state["step"])
    log.info("%s: resumed from checkpoint at step %d of %d", planned.run, state["step"], planned.budget.steps)
    return state["step"], state["wall_seconds"], state.get("compile_seconds", 0.0), state["step"]


def compile_step(context, planned: Plan, trained: Model, index: int, rows: slice) -> float:
    """Compile the forward and backward passes before the first step; returns the seconds it took.

    The model is compiled in place (parameter names, checkpoints and the saved weights do not
    change), then runs a forward and backward pass on step `index`'s first micro-batch, whose
    gradients are dropped: no weight, optimizer state or random generator moves, so the run is
    what it would be without it. With inductor's caches warm (the same shape compiled before),
    this loads the compiled graphs instead of building them.
    """
    import torch  # deferred: torch loads in seconds

    started = time.perf_counter()
    trained.model.compile(dynamic=False)
    from torch._dynamo.utils import counters  # deferred: torch; imported once compiling has begun

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


def checkpoint(context, planned: Plan, trained: Model, checkpoints: Path, done: int, wall_seconds: float,
               compile_seconds: float, keep: int | None = KEEP) -> None:
    """Full (unsharded) weights, optimizer and RNG state after step `done`; every rank gathers, rank 0 saves
    (and keeps the newest `keep` in the folder; None: all, a trunk's states)."""
    model_state, optimizer_state = distributed.full_state(trained.model, trained.optimizer)  # a collective
    if context.is_main:
        save_checkpoint(checkpoints, {
            "step": done, "fingerprint": planned.schedule.fingerprint, "format": CHECKPOINT_FORMAT,
            "model": model_state, "optimizer": optimizer_state, "rng": rng_state(), "wall_seconds": wall_seconds,
            "compile_seconds": compile_seconds,
        }, keep)
