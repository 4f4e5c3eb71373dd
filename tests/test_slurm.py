"""The SLURM profile: the sbatch calls it produces, and a run on a real one-node cluster.

Three levels, cheapest first:
- the plugin's own sbatch builder (a pure function) on a GPU job and a CPU job;
- `snakemake --profile profiles/slurm` on a throwaway workflow against fake
  SLURM commands that record every sbatch call and refuse it, so each job is
  retried and the calls show resources growing with `attempt`;
- the smoke study itself (shrunk: 2 runs) through the profile on a real
  one-node cluster (slurmctld + slurmd + munged started by
  tests/slurm/start_cluster.sh), down to the loss table; skipped when SLURM is
  not installed (tests/slurm/install.sh) or its daemons cannot start here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
SLURM_TESTS = REPO / "tests" / "slurm"

pytestmark = pytest.mark.slow

plugin = pytest.importorskip(
    "snakemake_executor_plugin_slurm",
    reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')",
)


class _Resources(dict):
    """What a Snakemake job's `resources` looks like to the plugin: .get() and attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def _sbatch_call(threads: int = 1, **resources) -> str:
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=threads)
    params = {
        "run_uuid": "run-id",
        "slurm_logfile": "/tmp/%j.log",
        "comment_str": "rule_x",
        "account": " -A proj",
        "partition": " -p gpu",
        "workdir": "/work",
    }
    settings = SimpleNamespace(requeue=False, no_requeue=False, qos=None, reservation=None)
    # The executor builds the call exactly so: the submit string, then the GPU part.
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def test_plugin_builds_gpu_and_cpu_sbatch_calls():
    gpu = shlex.split(_sbatch_call(gpu=8, mem_mb=64000, runtime=720, cpus_per_gpu=8))
    assert "--gpus=8" in gpu
    assert gpu[gpu.index("--mem") + 1] == "64000"
    assert gpu[gpu.index("-t") + 1] == "720"
    assert "--cpus-per-gpu=8" in gpu
    # One task: torchrun starts the per-GPU processes itself.
    assert not any(arg.startswith("--ntasks") for arg in gpu)
    assert gpu[gpu.index("-A") + 1] == "proj" and gpu[gpu.index("-p") + 1] == "gpu"

    # The --gres spelling and a GPU model, for sites that want them.
    assert "--gres=gpu:a100:4" in _sbatch_call(gres="gpu:a100:4", mem_mb=1000)
    assert "--gpus=a100:2" in _sbatch_call(gpu=2, gpu_model="a100")

    cpu = shlex.split(_sbatch_call(threads=4, mem_mb=8000, runtime=60))
    assert "--ntasks=1" in cpu and "--cpus-per-task=4" in cpu
    assert not any(arg.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for arg in cpu)
    assert cpu[cpu.index("--mem") + 1] == "8000" and cpu[cpu.index("-t") + 1] == "60"


# A throwaway workflow whose rule names match the profile's set-resources.
# `train` asks for its GPUs, memory and wall time itself, growing with the
# attempt, as the real rule does from the model size (lmscale.jobs.resources).
PROFILE_WORKFLOW = """
rule all:
    input: "train.done", "eval_loss.done", "fit_loss.done"

rule train:
    output: "train.done"
    threads: 2
    resources:
        gpu=8,
        mem_mb=lambda w, attempt: 64000 * attempt,
        runtime=lambda w, attempt: 720 * attempt,
    shell: "touch {output}"

rule eval_loss:
    output: "eval_loss.done"
    shell: "touch {output}"

rule fit_loss:
    output: "fit_loss.done"
    threads: 2
    shell: "touch {output}"
"""

FAKE_COMMANDS = {
    # Records each call (one file per call: the plugin submits from two
    # threads at once) without the --wrap payload, then refuses it.
    "sbatch": """#!/usr/bin/env bash
args=()
for a in "$@"; do case "$a" in --wrap=*) ;; *) args+=("$a") ;; esac; done
printf '%q ' "${args[@]}" > "$(mktemp "$SBATCH_CALLS/call.XXXXXX")"
echo "sbatch: error: refused by the test" >&2
exit 1
""",
    "sinfo": "#!/bin/sh\nprintf 'PARTITION\\ngpu*\\ncpu\\n'\n",
    "squeue": "#!/bin/sh\nexit 0\n",
    "sacct": "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n",
    "scontrol": "#!/bin/sh\necho 'MinJobAge               = 300 sec'\n",
    "scancel": "#!/bin/sh\nexit 0\n",
}


def _snakemake(workdir: Path, *args: str, env: dict, timeout: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def test_profile_sbatch_calls_grow_with_attempt(tmp_path):
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    for name, body in FAKE_COMMANDS.items():
        path = fakebin / name
        path.write_text(body)
        path.chmod(0o755)
    (tmp_path / "Snakefile").write_text(PROFILE_WORKFLOW)
    calls_dir = tmp_path / "sbatch_calls"
    calls_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(PATH=f"{fakebin}{os.pathsep}{env.get('PATH', '')}", SBATCH_CALLS=str(calls_dir))

    # No job ever runs, so status checks are moot; a short first delay only
    # keeps Snakemake from sleeping 40 s at shutdown.
    result = _snakemake(
        tmp_path,
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1",
        env=env,
        timeout=120,
    )
    assert result.returncode != 0, "every sbatch call is refused, so the run must fail"
    calls = [shlex.split(path.read_text()) for path in calls_dir.iterdir()]

    def flag(call, name):
        return call[call.index(name) + 1]

    def calls_of(rule):
        """The rule's sbatch calls, in attempt order (memory grows with the attempt)."""
        mine = [c for c in calls if flag(c, "--comment") == f"rule_{rule}"]
        return sorted(mine, key=lambda c: int(flag(c, "--mem")))

    # Profile: retries 2, i.e. three attempts per job, resources x1, x2, x3.
    train = calls_of("train")
    assert len(train) == 3, result.stderr[-3000:]
    assert [flag(c, "--mem") for c in train] == ["64000", "128000", "192000"]
    assert [flag(c, "-t") for c in train] == ["720", "1440", "2160"]
    for call in train:
        assert "--gpus=8" in call  # the rule's own gpu, mem_mb and runtime pass through untouched
        assert "--cpus-per-gpu=8" in call
        assert flag(call, "-p") == "gpu"  # the cluster's default partition (sinfo's '*')

    eval_loss = calls_of("eval_loss")
    assert len(eval_loss) == 3
    assert all("--gpus=1" in c for c in eval_loss)
    assert [flag(c, "--mem") for c in eval_loss] == ["32000", "64000", "96000"]

    fit_loss = calls_of("fit_loss")
    assert len(fit_loss) == 3
    for call in fit_loss:
        assert not any(arg.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for arg in call)
        assert "--ntasks=1" in call and "--cpus-per-task=4" in call
    assert [flag(c, "-t") for c in fit_loss] == ["60", "120", "180"]


# ---------------------------------------------------------------------------
# A real one-node cluster.

CLUSTER_DIR = Path(os.environ.get("LMSCALE_SLURM_DIR", "/tmp/lmscale-slurm"))


@pytest.fixture(scope="module")
def slurm_cluster():
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "srun") if not shutil.which(b)]
    if missing:
        pytest.skip(f"SLURM/MUNGE not installed (missing {', '.join(missing)}); run tests/slurm/install.sh")
    if os.geteuid() != 0:
        pytest.skip("the one-node test cluster needs root (slurmd runs jobs as their owner)")
    start = subprocess.run(
        ["bash", str(SLURM_TESTS / "start_cluster.sh"), str(CLUSTER_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if start.returncode != 0:
        pytest.skip(f"the one-node SLURM cluster could not start here:\n{start.stdout}{start.stderr}"[-2000:])
    started_here = "already running" not in start.stdout
    conf = CLUSTER_DIR.resolve() / "slurm.conf"
    yield conf
    if started_here:
        subprocess.run(["bash", str(SLURM_TESTS / "stop_cluster.sh"), str(CLUSTER_DIR)], timeout=60)


# ---------------------------------------------------------------------------
# The smoke study itself, through the profile, on the one-node cluster.

# The smoke preset, shrunk to fit a CI budget: two sizes at one multiplier (2 runs), less text,
# a small task suite; the target is the loss table, so the laws are not fitted. (The plugin backs
# off between status checks, 10 s more after each check that finds no job ended: every job or wave
# of jobs fewer costs the test 15-30 s of waiting.)
SMOKE_TARGET = "results/smoke/testbed/loss.csv"
SMOKE_SIZES = ("s1", "s2")  # both trained at once on the node's 2 CPUs
# Small rules share SLURM jobs (each job pays ~10-15 s for Snakemake to start in it):
# the data stages form one job, every evaluation and the table another; each
# training run keeps a job of its own, as on a real cluster.
SMOKE_GROUPS = {"corpus": "data", "corpus_valset": "data", "tokenizer": "data", "tokenize": "data",
                "task_suite": "data", "eval_loss": "evals", "eval_tasks": "evals", "collect": "evals"}


def smoke_config(path: Path) -> Path:
    import yaml

    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["datasets"]["stdlib"]["max_bytes"] = 1_500_000
    for valset in config["validation_sets"].values():
        valset["tokens"] = 16384
    config["grid"] = [{"sizes": list(SMOKE_SIZES), "multipliers": [5]}]
    config["loss_fit_set"] = [{"size": size, "M": 5} for size in SMOKE_SIZES]
    config["tasks"].update(size=20, fewshot_pool=5)
    config["fit"]["bootstrap"] = 0
    path.write_text(yaml.safe_dump(config))
    return path


def slurm_jobs_from(workdir: Path, env: dict) -> list[tuple[str, str]]:
    """(comment, state) of every job the cluster holds (finished ones too, for MinJobAge) that was
    submitted from `workdir`: the plugin submits each job with `-D` the workflow's folder."""
    listed = subprocess.run(["squeue", "--states=all", "--noheader", "-o", "%Z|%k|%T"], env=env,
                            capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    rows = [line.split("|") for line in listed]
    return sorted((comment, state) for folder, comment, state in rows if Path(folder).resolve() == workdir.resolve())


def test_smoke_study_runs_on_one_node_cluster(slurm_cluster, tmp_path):
    import csv
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["SLURM_CONF"] = str(slurm_cluster)
    # The cluster takes a job at all (a clear failure here, before a workflow's).
    probe = subprocess.run(["sbatch", "--parsable", "--wait", "-o", str(tmp_path / "probe.out"), "--wrap", "hostname"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    started = time.monotonic()
    result = _snakemake(
        tmp_path,
        "--snakefile", str(REPO / "Snakefile"), "--configfile", str(smoke_config(tmp_path / "smoke.yaml")),
        "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "1",
        # The test node has no GPU: the evaluations run on its CPUs (this replaces the
        # profile's set-resources, whose GPU-sized memory the node does not have either).
        "--set-resources", "eval_loss:gpu=0", "eval_tasks:gpu=0",
        "--groups", *(f"{rule}={group}" for rule, group in SMOKE_GROUPS.items()),
        # A group job asks for what its jobs would use at once, within these bounds (the node's).
        "--cores", "2", "--resources", "mem_mb=16000",
        "--", SMOKE_TARGET,
        env=env,
        timeout=600,
    )
    wall = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    print(f"smoke study through profiles/slurm: {wall:.0f} s")

    # One SLURM job for the data, one per training run, one for the evaluations and the table, each
    # COMPLETED: SLURM's own record of the jobs submitted from this run's folder, with the comment
    # the plugin gives each (rule_<rule>_wildcards_<values>, or rule_<group>_<its rules>).
    jobs = slurm_jobs_from(tmp_path, env)
    assert sorted(comment.split("_")[1] for comment, _ in jobs) == ["data", "evals", "train", "train"], jobs
    assert sorted(comment for comment, _ in jobs if comment.startswith("rule_train_")) == [
        f"rule_train_wildcards_stdlib_{size}_5_" for size in SMOKE_SIZES], jobs
    assert [state for _, state in jobs] == ["COMPLETED"] * 4, jobs

    with open(tmp_path / SMOKE_TARGET) as handle:
        rows = list(csv.DictReader(handle))
    pairs = sorted((row["model"], row["valset"]) for row in rows)
    assert pairs == sorted((f"{size}_M5", valset) for size in SMOKE_SIZES
                           for valset in ("stdlib_heldout", "pydoc_prose"))
    assert all(0 < float(row["loss"]) < 10 for row in rows)
    for size in SMOKE_SIZES:
        run = (tmp_path / "results" / "smoke" / "models" / "stdlib" / f"{size}_M5" / "run.json").read_text()
        assert '"processes": 1' in run
