"""Training under torchrun: two gloo processes on the CPU reproduce one process, and resume after SIGKILL.

The slow tests launch `torchrun --standalone --nproc-per-node 2 -m lmscale.cli train`
exactly as the `train` rule does for a two-GPU job, on the CPU (gloo).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmscale.training import distributed
from tests.test_loop import TINY, heldout_loss, streams, tiny, train_command, train_here  # noqa: F401 (streams: a fixture)

# The tiny model at a gentler learning rate: at lr 0.01 its loss spikes early and
# rounding differences (the gradient summed in another order) grow fastest.
SIZE = TINY | {"lr": 0.003}
MULTIPLIER = 10  # ~300 steps


def torchrun_command(root: Path, name: str, multiplier: float = MULTIPLIER, **options) -> list[str]:
    """`lmscale train ...` of a CPU job with two processes: the command runs itself again under torchrun."""
    return train_command(root, name, multiplier, tiny({"processes": 2, **options}, size=SIZE))


def read_log(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in open(model_dir / "train_log.jsonl")]


# ---- pure pieces -----------------------------------------------------------------------------------


def test_launcher_is_lmscale_for_one_process_and_torchrun_for_more():
    assert distributed.launcher(0) == distributed.launcher(1) == ["lmscale"]
    assert distributed.launcher(4) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node", "4", "-m", "lmscale.cli"]
    assert [distributed.process_count(gpus, 3) for gpus in (0, 1, 4)] == [3, 1, 4]


def test_the_global_batch_splits_into_equal_contiguous_slices():
    contexts = [distributed.Context(rank=rank, world=4) for rank in range(4)]
    slices = [context.local_rows(32) for context in contexts]
    assert [list(range(32))[s] for s in slices] == [list(range(8 * r, 8 * r + 8)) for r in range(4)]
    with pytest.raises(ValueError, match="batch_size 30 does not split evenly across 4 processes"):
        contexts[0].local_rows(30)
    assert distributed.Context().local_rows(30) == slice(0, 30)


def test_parallel_mode_is_none_alone_and_ddp_on_the_cpu_unless_asked():
    import torch

    alone, pair = distributed.Context(device=torch.device("cpu")), distributed.Context(world=2, device=torch.device("cpu"))
    assert distributed.choose_parallel("fsdp", 10**9, alone) == "none"
    assert distributed.choose_parallel("auto", 10**9, pair) == "ddp"
    assert distributed.choose_parallel("fsdp", 10, pair) == "fsdp"
    with pytest.raises(ValueError, match="parallel must be one of auto, ddp, fsdp"):
        distributed.choose_parallel("zero3", 10, pair)


# ---- real runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def references(streams):  # noqa: F811 (the imported fixture)
    """The one-process run (in this process), the same with another seed (the yardstick of what
    differs between two trainings), and the uninterrupted two-process run (torchrun, gloo)."""
    one, other_seed = (train_here(streams, name, MULTIPLIER, tiny({"seed": seed}, size=SIZE))
                       for name, seed in (("one", 0), ("other_seed", 1)))
    started = time.monotonic()
    result = subprocess.run(torchrun_command(streams, "two"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((streams / "models" / "two" / "run.json").read_text())
    print(f"one process: {one['wall_seconds']:.1f} s of training; two processes: {two['wall_seconds']:.1f} s "
          f"of training, {time.monotonic() - started:.1f} s with torchrun's start-up")
    return {"one": one, "other_seed": other_seed, "two": two, "two_stderr": result.stderr}


@pytest.mark.slow
def test_two_processes_reproduce_one_process(streams, references):  # noqa: F811
    one, two = references["one"], references["two"]
    assert (two["processes"], two["parallel"], one["processes"], one["parallel"]) == (2, "ddp", 1, "none")
    for key in ("N", "D", "steps", "C", "tokens_per_step", "fingerprint", "device"):
        assert two[key] == one[key], key
    # Rank 0 alone speaks and writes: one start line, the same files as the one-process run.
    assert references["two_stderr"].count("stdlib/tiny_M10: fresh start") == 1
    assert sorted(p.name for p in (streams / "models" / "two").iterdir()) == \
        sorted(p.name for p in (streams / "models" / "one").iterdir())
    assert not (streams / "checkpoints" / "two").exists()

    log_one, log_two = read_log(streams / "models" / "one"), read_log(streams / "models" / "two")
    assert [r["step"] for r in log_two] == [r["step"] for r in log_one]
    # Same sequences and the same update per step: the first 45 steps agree to rounding
    # (a gradient summed instead of averaged, or a rank reading the other's rows, would not).
    early = [(first, second) for first, second in zip(log_one, log_two) if first["step"] <= 45]
    assert len(early) == 9
    for first, second in early:
        assert second["loss"] == pytest.approx(first["loss"], abs=1e-5), first["step"]
    # After that, rounding differences grow chaotically (by how much depends on the CPU: 1e-4
    # on one machine, 1e-3 on another: 0.13 of the gap to another seed); the end must still be
    # closer than half that gap.
    loss_one, loss_two, loss_other_seed = (
        heldout_loss(streams, streams / "models" / name) for name in ("one", "two", "other_seed"))
    print(f"held-out loss: one process {loss_one:.6f}, two processes {loss_two:.6f}, "
          f"difference {abs(loss_two - loss_one):.2e}; another seed {loss_other_seed:.6f}, "
          f"difference {abs(loss_other_seed - loss_one):.2e}")
    assert abs(loss_two - loss_one) < 0.5 * abs(loss_other_seed - loss_one), (loss_one, loss_two, loss_other_seed)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_two_process_run_killed_with_sigkill_resumes_and_matches(streams, references):  # noqa: F811
    reference = references["two"]
    checkpoints = streams / "checkpoints" / "killed"
    half = reference["steps"] // 2
    process = subprocess.Popen(torchrun_command(streams, "killed"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(int(p.stem.split("_")[1]) >= half for p in checkpoints.glob("step_*.pt")):
        assert process.poll() is None, "the run ended before it could be killed; lower checkpoint_every"
        assert time.monotonic() < deadline, f"no checkpoint past step {half} within 300 s"
        time.sleep(0.05)
    workers = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    assert len(workers) == 2, workers
    os.killpg(process.pid, signal.SIGKILL)  # torchrun's group; its workers sit in sessions of their own
    process.wait()
    assert process.returncode == -signal.SIGKILL
    # The workers die with torchrun (parent-death signal), so none writes beside the rerun.
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "torchrun's workers outlived it"
        time.sleep(0.05)
    assert not (streams / "models" / "killed" / "run.json").exists()
    newest = max(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))

    rerun = subprocess.run(torchrun_command(streams, "killed"), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resumed from checkpoint at step {newest} of {reference['steps']}" in rerun.stderr
    resumed = json.loads((streams / "models" / "killed" / "run.json").read_text())
    assert resumed["resumed_from_step"] == newest and resumed["processes"] == 2
    for key in ("N", "D", "steps", "C", "fingerprint"):
        assert resumed[key] == reference[key]

    log, reference_log = read_log(streams / "models" / "killed"), read_log(streams / "models" / "two")
    assert [r["step"] for r in log] == [r["step"] for r in reference_log]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in reference_log], abs=1e-5)
    killed_loss = heldout_loss(streams, streams / "models" / "killed")
    reference_loss = heldout_loss(streams, streams / "models" / "two")
    assert abs(killed_loss - reference_loss) < 1e-4, (killed_loss, reference_loss)


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_matches_one_process(streams):  # noqa: F811
    """FSDP2 `fully_shard` over gloo: sharded weights and optimizer state, the same run (shorter: M = 4)."""
    one = train_here(streams, "one_M4", 4, tiny(size=SIZE))
    result = subprocess.run(torchrun_command(streams, "fsdp", 4, parallel="fsdp"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((streams / "models" / "fsdp" / "run.json").read_text())
    assert (record["processes"], record["parallel"]) == (2, "fsdp")
    assert record["fingerprint"] == one["fingerprint"]
    # The saved model is whole (gathered from the shards): it loads and evaluates like the one-process model.
    loss_one = heldout_loss(streams, streams / "models" / "one_M4")
    loss_fsdp = heldout_loss(streams, streams / "models" / "fsdp")
    print(f"held-out loss at M = 4: one process {loss_one:.6f}, FSDP on two {loss_fsdp:.6f}")
    assert abs(loss_fsdp - loss_one) < 1e-3, (loss_one, loss_fsdp)
