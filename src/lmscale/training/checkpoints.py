"""Resumable checkpoints: their fingerprint, files and headers, the random generators, the log.

Snakemake deletes a job's declared outputs before it reruns it, so checkpoints
live outside them (`results/<study>/checkpoints/...`). A rerun of a killed job
continues from the newest checkpoint whose fingerprint matches the run's
settings (`find_checkpoint`, among the folders its schedule names:
`newest_checkpoint`), and ends exactly where an uninterrupted run ends. A
checkpoint is full (unsharded): any number of processes resumes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lmscale.config import to_json
from lmscale.io.files import atomic_write_json, atomic_writer

log = logging.getLogger(__name__)

# Version of the checkpoint layout: full (unsharded) weights and optimizer state keyed
# by parameter name, so that a run resumes under any number of processes. Format 3: each
# step_*.pt has a header step_*.json (step, fingerprint, format) read before the checkpoint,
# and holds only what torch.load(weights_only=True) reads (tensors, numbers, strings,
# lists, tuples and dicts), so that no checkpoint can run code when it is loaded.
CHECKPOINT_FORMAT = 3

# Periodic checkpoints kept in a run's folder: the newest, and the one before should it be unreadable.
KEEP = 2


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


def save_checkpoint(checkpoint_dir: Path, state: dict, keep: int | None = KEEP) -> Path:
    """Write the header, then the checkpoint, each atomically (temporary file, then rename); keep
    the newest `keep` (None: every one, as a trunk keeps its branch points). A checkpoint on disk
    always has its header."""
    import torch  # deferred: torch loads in seconds; the workflow imports this package to plan

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
    import torch  # deferred: torch loads in seconds

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


class Source(NamedTuple):
    """A folder a run may resume from (its schedule names them, in order)."""

    folder: Path
    fingerprint: str  # what its checkpoints must carry
    max_step: int | None  # the newest step the run may take from it
    of_trunk: bool  # a trunk's states, which a branch continues as its own start


def newest_checkpoint(sources: list[Source]) -> tuple[Path, dict, bool] | None:
    """The newest checkpoint among `sources`, the earlier source on a tie, and whether it is a
    trunk's state that a branch continues."""
    best = None
    for folder, expected, max_step, of_trunk in sources:
        found = find_checkpoint(folder, expected, max_step) if folder.is_dir() else None
        if found and (best is None or found[1]["step"] > best[1]["step"]):
            best = (*found, of_trunk)
    return best


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


def rng_state() -> dict:
    """Every generator's state in types a weights-only load reads (numpy's key as a list of ints)."""
    import torch  # deferred: torch loads in seconds

    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch  # deferred: torch loads in seconds

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
