"""Running the real Snakemake workflow from tests, in a scratch working directory, offline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def offline_env() -> dict:
    """The environment as it is now (tests may change PATH), with every hub switched off:
    a model or dataset that is not local is an error."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """`snakemake` on the repository's Snakefile with outputs under `workdir`.

    Targets go before `--configfile`, which takes every word after it as a file."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", "2", *args]


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
    result = subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, env=offline_env(),
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of what a dry run would execute (empty when nothing is to be done)."""
    result = snakemake(workdir, "--dry-run", *args)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def planned_wildcards(workdir: Path, rule: str, *args: str) -> list[dict[str, str]]:
    """The wildcards of every job of `rule` that a dry run would execute."""
    result = snakemake(workdir, "--dry-run", *args)
    jobs, current = [], None
    for line in (result.stdout + result.stderr).splitlines():
        header = re.match(r"^(?:local)?rule (\S+):$", line.strip())
        if header:
            current = header.group(1)
        elif current == rule and line.strip().startswith("wildcards:"):
            pairs = line.strip().removeprefix("wildcards:").split(",")
            jobs.append(dict(pair.strip().split("=", 1) for pair in pairs))
            current = None
    return jobs


def kill_once_checkpointed(process: subprocess.Popen, checkpoints: Path, step: int, seconds: float) -> None:
    """SIGKILL `process`'s whole group once a checkpoint at or past `step` exists in `checkpoints`."""
    deadline = time.monotonic() + seconds
    while not any(int(p.stem.split("_")[1]) >= step for p in checkpoints.glob("step_*.pt")):
        assert process.poll() is None, "the run ended before it could be killed; lower checkpoint_every"
        assert time.monotonic() < deadline, f"no checkpoint past step {step} within {seconds} s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
