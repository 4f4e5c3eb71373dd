"""Running the real Snakemake workflow from tests, in a scratch working directory, offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def validated_config(overrides: dict | None = None) -> dict:
    """A config as the workflow sees it: a minimal study with `overrides`, the schema's defaults
    filled in by the validation the Snakefile runs (the schema is the one place a default is written)."""
    import copy

    from snakemake.utils import validate

    config = {"study": "test", "datasets": {"stdlib": {}}, "valsets": ["heldout"], "threshold": 10,
              "reference_size": "tiny", "loss_fit_set": [{"size": "tiny", "M": 10}],
              **copy.deepcopy(overrides or {})}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return config


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


# Runs Snakemake's own command line in a fresh Python and keeps, of its log, the structured
# record Snakemake emits for every job it schedules or runs (the `job_info` event its logger
# plugins read): rule, wildcards, resources, shell command, and whether it ran on this host
# (`local`: a localrule under a cluster executor; always False in a dry run), as JSON. The record
# is written whether Snakemake succeeds or fails, and its exit status is the process's.
EVENTS = """
import json, logging, sys
jobs = []

class Jobs(logging.Handler):
    def emit(self, record):
        if getattr(record, "event", None) == "job_info":
            resources = {k: v for k, v in record.resources.items() if not k.startswith("_")}
            jobs.append({"rule": record.rule_name, "wildcards": dict(record.wildcards or {}),
                         "resources": resources, "threads": record.threads, "shellcmd": record.shellcmd,
                         "local": record.local})

logging.getLogger("snakemake").addHandler(Jobs())
from snakemake.cli import main
try:
    main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump(jobs, out)
"""


def snakemake_with_jobs(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`snakemake` (its exit status unchecked), and every job it scheduled: {"rule", "wildcards",
    "resources", "threads", "shellcmd", "local"}."""
    out = workdir.parent / f".jobs_{workdir.name}_{os.getpid()}.json"  # beside: the run may never make workdir
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", EVENTS, str(out), *snakemake_command(workdir, *args)[3:]]
    result = subprocess.run(command, capture_output=True, text=True, env=offline_env(), timeout=1200)
    if not out.exists():
        raise AssertionError(f"snakemake left no record of its jobs ({result.returncode}):\n{result.stderr[-6000:]}")
    jobs = json.loads(out.read_text())
    out.unlink()
    return result, jobs


def planned(workdir: Path, *args: str) -> list[dict]:
    """Every job a dry run would execute: {"rule", "wildcards", "resources", "threads", "shellcmd", "local"}."""
    return planned_and_log(workdir, *args)[0]


def planned_and_log(workdir: Path, *args: str) -> tuple[list[dict], str]:
    """`planned`, and what the dry run printed (stdout, then stderr)."""
    result, jobs = snakemake_with_jobs(workdir, "--dry-run", *args)
    if result.returncode != 0:
        raise AssertionError(f"dry run failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return jobs, result.stdout + result.stderr


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of what a dry run would execute (empty when nothing is to be done)."""
    return dict(Counter(job["rule"] for job in planned(workdir, *args)))


def planned_wildcards(workdir: Path, rule: str, *args: str) -> list[dict[str, str]]:
    """The wildcards of every job of `rule` that a dry run would execute."""
    return [job["wildcards"] for job in planned(workdir, *args) if job["rule"] == rule]


def kill_once_checkpointed(process: subprocess.Popen, checkpoints: Path, step: int, seconds: float) -> None:
    """SIGKILL `process`'s whole group once a checkpoint at or past `step` exists in `checkpoints`."""
    deadline = time.monotonic() + seconds
    while not any(int(p.stem.split("_")[1]) >= step for p in checkpoints.glob("step_*.pt")):
        assert process.poll() is None, "the run ended before it could be killed; lower checkpoint_every"
        assert time.monotonic() < deadline, f"no checkpoint past step {step} within {seconds} s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
