"""Several processes for one training run: torchrun, DDP or FSDP, rank 0 writes.

A run that needs several GPUs is started by `torchrun`, one process per GPU
(`relaunch`: `lmscale train` runs itself again under torchrun when the
scheduler granted it several GPUs; on the CPU, `train.processes` asks for
several gloo processes, which is how the tests run it). Each process calls
`lmscale.training.loop.train` as a single process would;
this module is what differs:

- `Context.start()` reads torchrun's environment (RANK, WORLD_SIZE,
  LOCAL_RANK), joins the process group (NCCL on cuda, gloo on the CPU) and
  picks the process's device; without torchrun it is the one-process context
  and touches no process group;
- `wrap` makes the model data-parallel: DDP (every process holds the whole
  model and optimizer, gradients are averaged) or FSDP2 `fully_shard` (weights,
  gradients and optimizer state sharded across processes, one unit per
  decoder layer) for models whose training state does not fit on one device;
  `choose_parallel` decides under `parallel: auto`;
- `full_state` / `load_full_state` move weights and optimizer state between
  the (possibly sharded) model and one full, unsharded checkpoint that any
  number of processes can resume, one included: the checkpoint format does not
  depend on how the run was split.

Every step's global batch is the one-process batch, split across processes in
equal contiguous slices (`local_rows`); gradients are averaged over processes,
so the optimizer sees the gradient of the same global batch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

log = logging.getLogger(__name__)

PARALLEL_MODES = ("auto", "ddp", "fsdp")
# Bytes per parameter of training state on the device: fp32 weights, gradients, two AdamW moments.
TRAINING_BYTES_PER_PARAMETER = 16
# Under `auto`, FSDP once that state exceeds this share of one device's memory (the rest: activations).
FSDP_THRESHOLD = 0.5


def launcher(processes: int) -> list[str]:
    """The command that starts `lmscale ...` on `processes` processes of this machine.

    `lmscale` itself for one process; torchrun (`torch.distributed.run --standalone`, by
    this very interpreter) with one process per GPU (or per gloo worker on the CPU) otherwise.
    """
    if processes <= 1:
        return ["lmscale"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
            "-m", "lmscale.cli"]


def process_count(gpus: int, cpu_processes: int) -> int:
    """A job's processes: one per GPU it was granted; on the CPU (no GPU), `cpu_processes`."""
    return gpus if gpus >= 1 else cpu_processes


def relaunch(processes: int, argv: list[str]) -> None:
    """Replace this process by `argv` (`<stage> ...`) under torchrun when the job has several
    processes and torchrun has not started it yet; return otherwise.

    The one place the launcher is chosen: the `train` rule always runs `lmscale train` with
    the GPUs the scheduler granted it.
    """
    if processes <= 1 or os.environ.get("TORCHELASTIC_RUN_ID"):
        return
    command = launcher(processes) + list(argv)
    log.info("%d processes: %s", processes, " ".join(command[:-len(argv)] if argv else command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among `world` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: object = None  # torch.device
    owns_group: bool = False  # this context started the process group (and ends it)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device_name: str) -> "Context":
        """Join torchrun's process group, if launched by torchrun; pick this process's device (`device_name`:
        auto, cpu or cuda)."""
        import torch  # deferred: torch loads in seconds

        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device_name)
        if device.type == "cuda" and device.index is None and world > 1:
            device = torch.device("cuda", local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if world <= 1:
            return cls(device=device)
        die_with_launcher()
        import torch.distributed as dist  # deferred: torch loads in seconds

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                   device=device, owns_group=owns)

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist  # deferred: torch loads in seconds

            if dist.is_initialized():
                dist.destroy_process_group()

    # ---- collectives (no-ops in one process) ----

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist  # deferred: torch loads in seconds

            dist.barrier()

    def broadcast(self, value):
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.distributed:
            return value
        import torch.distributed as dist  # deferred: torch loads in seconds

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, tensor):
        """The sum over processes of a tensor (in place on every rank)."""
        if self.distributed:
            import torch.distributed as dist  # deferred: torch loads in seconds

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def local_rows(self, batch_size: int) -> slice:
        """This process's slice of a global batch of `batch_size` sequences."""
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} does not split evenly across {self.world} processes")
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)


def die_with_launcher() -> None:
    """End this worker when torchrun ends, even by SIGKILL.

    torchrun starts each worker in a session of its own, so killing torchrun's
    process group (a killed Snakemake, a terminal closed) would leave the workers
    training on as orphans, writing checkpoints beside the rerun that resumes
    them. Linux's parent-death signal ends them with their launcher instead.
    """
    if not os.environ.get("TORCHELASTIC_RUN_ID") or not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError) as error:  # not fatal: SLURM and the tests kill whole jobs anyway
        log.warning("cannot tie this worker to torchrun's life (%s)", error)
        return
    if os.getppid() != parent:  # torchrun died before the signal was armed
        os._exit(1)


def choose_parallel(mode: str, n_parameters: int, context: Context) -> str:
    """'none' for one process; else 'ddp' or 'fsdp' ('auto': FSDP when the training state would crowd one GPU)."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {', '.join(PARALLEL_MODES)}, got {mode!r}")
    if not context.distributed:
        return "none"
    if mode != "auto":
        return mode
    if context.device.type != "cuda":
        return "ddp"
    import torch  # deferred: torch loads in seconds

    memory = torch.cuda.get_device_properties(context.device).total_memory
    return "fsdp" if TRAINING_BYTES_PER_PARAMETER * n_parameters > FSDP_THRESHOLD * memory else "ddp"


def wrap(model, parallel: str, context: Context):
    """The model as the training loop drives it: itself, DDP, or sharded in place by FSDP2."""
    if parallel == "none":
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel  # deferred: torch loads in seconds

        device_ids = [context.device] if context.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    if parallel == "fsdp":
        try:
            from torch.distributed.fsdp import fully_shard  # deferred: torch loads in seconds
        except ImportError:  # torch < 2.6
            from torch.distributed._composable.fsdp import fully_shard  # deferred: torch loads in seconds

        # One unit per decoder layer, then the root (embeddings, final norm, head:
        # kept together, so tied embeddings stay one parameter).
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    raise ValueError(f"unknown parallel mode {parallel!r}")


def unwrap(model):
    """The `transformers` model inside a DDP wrapper (FSDP2 shards in place: no wrapper)."""
    return getattr(model, "module", model)


@contextmanager
def gradient_sync(model, parallel: str, sync: bool):
    """Skip the gradient all-reduce on every micro-batch but the last of a step."""
    if parallel == "ddp" and not sync:
        with model.no_sync():
            yield
    elif parallel == "fsdp":
        model.set_requires_gradient_sync(sync)
        yield
    else:
        with nullcontext():
            yield


def full_state(model, optimizer) -> tuple[dict, dict]:
    """Unsharded weights and optimizer state on the CPU, keyed by parameter name.

    A collective under FSDP: every rank calls it; rank 0 receives the state
    (other ranks may get empty dictionaries).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict  # deferred: torch

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state(model, optimizer, model_state: dict, optimizer_state: dict) -> None:
    """Load a full (unsharded) state on every rank; each rank keeps its own shard under FSDP."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict  # deferred: torch

    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=StateDictOptions(full_state_dict=True))


def full_model_state(model) -> dict:
    """Unsharded weights on the CPU (a collective under FSDP; rank 0 receives them)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # deferred: torch

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def grad_norm_value(norm) -> float:
    """clip_grad_norm_'s result as a float (a DTensor under FSDP)."""
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)
