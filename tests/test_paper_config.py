"""configs/paper.yaml (the paper's 104-model testbed, retrained on a cluster) and lmscale.jobs.resources.

- the preset against the published release: the same 104 runs, shapes whose N
  matches the release's, the release's batch sizes, warmups and learning rates;
- `snakemake -n --profile profiles/slurm` plans it offline, calling no SLURM
  command that needs a cluster: 104 training jobs (34 C4, 35 RedPajama, 35
  RefinedWeb) and their 104 loss and 104 task evaluations, the prefetch job, and
  32 corpus and 32 tokenize shard jobs per dataset with their fan-in;
- the prefetch job runs where Snakemake runs (no sbatch), and offline it fails
  naming what is missing;
- the sbatch call of a 1.4B training job asks for the GPUs, memory and wall
  time lmscale.jobs.resources promises, doubled on the second attempt (against fake
  SLURM commands that record each call and refuse it).

lmscale.jobs.resources itself: tests/test_resources.py.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lmscale import config as study_config
from lmscale.jobs import resources
from tests.workflow import REPO, planned, snakemake, snakemake_with_jobs

PAPER = REPO / "configs" / "paper.yaml"
PROFILE = REPO / "profiles" / "slurm"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def paper_config() -> dict:
    """configs/paper.yaml as the Snakefile sees it: validated, schema defaults filled in."""
    from snakemake.utils import validate

    config = yaml.safe_load(PAPER.read_text())
    validate(config, str(SCHEMA))
    return config


def release_runs(testbed: Path) -> list[dict]:
    """Each released model as {dataset, size (paper label), M, hyperparameters, args}."""
    labels = yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text())["size_labels"]
    runs = []
    for path in sorted((testbed / "models").glob("*.json")):
        record = json.loads(path.read_text())
        hp = record["hyperparameters"]
        arch = Path(hp["model"]).stem
        runs.append({"dataset": record["dataset_name"], "size": labels[arch], "arch": arch,
                     "M": 20 * hp["chinchilla_multiplier"], "hp": hp, "args": record.get("open_lm_args", [])})
    return runs


# ---- the preset against the release -------------------------------------------------


def test_paper_grid_is_the_releases_104_runs(gadre2024):
    planned = {(r.dataset, r.size, r.multiplier) for r in study_config.training_runs(paper_config())}
    released = {(r["dataset"], r["size"], float(r["M"])) for r in release_runs(gadre2024)}
    assert len(planned) == 104
    assert planned - released == set(), "runs the paper did not train"
    assert released - planned == set(), "released runs missing from the grid"


def test_paper_grid_counts_per_dataset():
    runs = study_config.training_runs(paper_config())
    assert Counter(r.dataset for r in runs) == {"c4_original": 34, "rpj": 35, "rw_original": 35}
    # The one omission: 0.411B at M = 640 on C4.
    assert ("c4_original", "0.411B", 640.0) not in {(r.dataset, r.size, r.multiplier) for r in runs}


def test_paper_sizes_match_the_release(gadre2024):
    config = paper_config()
    sizes = config["sizes"]
    for run in release_runs(gadre2024):
        size, hp = sizes[run["size"]], run["hp"]
        arch = run["arch"]
        if arch.startswith("d="):
            width, depth, heads = (int(part.split("=")[1]) for part in arch.split("_"))
            assert (size["width"], size["depth"], size["heads"]) == (width, depth, heads), arch
        # open_lm's SwiGLU width.
        assert size["mlp_width"] == 256 * math.ceil((2 * 4 * size["width"] / 3) / 256)
        assert size["context"] == 2048
        assert size["warmup"] == hp["warmup"] and size["lr"] == pytest.approx(hp["lr"]), run
        # The 6.9B record's global_bs field reads 1; its open_lm arguments say 2048.
        batch = hp["global_bs"] if hp["global_bs"] > 1 else int(run["args"][run["args"].index("--global-batch-size") + 1])
        assert size["batch_size"] == batch, run
        assert study_config.size_settings(config, run["size"])["weight_decay"] == pytest.approx(hp["wd"]), run
        # N: at open_lm's padded vocabulary ours counts the per-head QK-norm gains
        # (2 x head_dim per block) that the release does not; at the GPT-NeoX
        # tokenizer's own 50,277 tokens it is at most 0.3% below.
        head_dim = size["width"] // size["heads"]
        assert resources.parameter_count(size, 50432) - hp["params"] == 2 * head_dim * size["depth"], arch
        assert resources.parameter_count(size, 50277) / hp["params"] == pytest.approx(1, abs=3e-3)


def test_paper_analysis_keys_match_the_published_import():
    paper, published = paper_config(), yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text())
    for key in ("valsets", "threshold", "reference_size", "loss_fit_set", "error_fit_extra", "targets"):
        assert paper[key] == published[key], key
    assert list(paper["datasets"]) == list(published["datasets"])
    assert set(published["size_labels"].values()) == set(paper["sizes"])
    assert paper["tasks"]["suite"] == "llm_foundry_46"


# ---- the dry run through the SLURM profile -------------------------------------------

# Stand-ins for the SLURM commands: each records its call, then refuses (sbatch)
# or answers as an idle cluster would.
FAKE_SLURM = {
    "sbatch": 'echo "sbatch: error: refused by the test" >&2; exit 1',
    "sinfo": "printf 'PARTITION\\ngpu*\\ncpu\\n'",
    "squeue": "exit 0",
    "sacct": "echo 'Slurm accounting storage is disabled' >&2; exit 1",
    "scontrol": "echo 'MinJobAge               = 300 sec'",
    "scancel": "exit 0",
    "srun": "exit 1",
}


def fake_slurm(folder: Path) -> tuple[Path, Path]:
    """A bin folder of fake SLURM commands and the folder where each call is recorded (one file per call)."""
    bin_dir, calls = folder / "bin", folder / "calls"
    bin_dir.mkdir(parents=True)
    calls.mkdir()
    for name, body in FAKE_SLURM.items():
        script = bin_dir / name
        script.write_text(
            "#!/usr/bin/env bash\n"
            "args=()\n"
            'for a in "$@"; do case "$a" in --wrap=*) ;; *) args+=("$a") ;; esac; done\n'
            f'printf \'%q \' {name} "${{args[@]}}" > "$(mktemp "{calls}/call.XXXXXX")"\n'
            f"{body}\n"
        )
        script.chmod(0o755)
    return bin_dir, calls


def on_fake_cluster(tmp_path: Path, monkeypatch) -> Path:
    """The fake SLURM commands first on PATH, no SLURM variable of a real job; where their calls are recorded."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the slurm profile needs the executor plugin")
    bin_dir, calls = fake_slurm(tmp_path / "slurm")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    for name in [k for k in os.environ if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        monkeypatch.delenv(name)
    return calls


def recorded_calls(calls: Path) -> list[list[str]]:
    return [shlex.split(path.read_text()) for path in sorted(calls.iterdir())]


def planned_job_wildcards(planned_jobs: list[dict]) -> dict[str, list[dict]]:
    """Rule -> the wildcards of each job a dry run plans, its resources under `_resources`."""
    jobs: dict[str, list[dict]] = {}
    for job in planned_jobs:
        jobs.setdefault(job["rule"], []).append({**job["wildcards"], "_resources": job["resources"]})
    return jobs


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    """`snakemake -n --profile profiles/slurm --configfile configs/paper.yaml`, once: output, seconds, SLURM calls."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the slurm profile needs the executor plugin")
    scratch = tmp_path_factory.mktemp("paper_dry_run")
    bin_dir, calls = fake_slurm(scratch / "slurm")
    workdir = scratch / "work"
    workdir.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
        for name in [k for k in os.environ if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
            env.delenv(name)
        start = time.perf_counter()
        jobs = planned(workdir, "--profile", str(PROFILE), "--configfile", str(PAPER))
        seconds = time.perf_counter() - start
    print(f"\ndry run of configs/paper.yaml through profiles/slurm: {seconds:.1f} s")
    return jobs, seconds, recorded_calls(calls)


@pytest.mark.slow
def test_paper_dry_run_plans_104_runs_and_their_evaluations(paper_dry_run):
    output, seconds, _ = paper_dry_run
    jobs = planned_job_wildcards(output)
    train = jobs["train"]
    print(f"planned: {len(train)} train, {len(jobs.get('eval_loss', []))} eval_loss, "
          f"{len(jobs.get('eval_tasks', []))} eval_tasks jobs in {seconds:.1f} s")
    assert Counter(job["dataset"] for job in train) == {"c4_original": 34, "rpj": 35, "rw_original": 35}
    runs = {(job["dataset"], job["size"], float(job["mult"])) for job in train}
    assert len(runs) == 104
    assert runs == {(r.dataset, r.size, r.multiplier) for r in study_config.training_runs(paper_config())}
    for rule in ("eval_loss", "eval_tasks"):
        evaluated = {(job["dataset"], job["size"], float(job["mult"])) for job in jobs[rule]}
        assert len(jobs[rule]) == 104 and evaluated == runs, rule
    # The data stages: three corpora in 32 shards each, their streams indexed for training, six
    # validation sets, one pretrained tokenizer, and the prefetch of what the offline jobs read.
    assert "corpus" not in jobs and len(jobs["corpus_valset"]) == 6
    for rule in ("corpus_shard", "tokenize_shard"):
        shards = Counter(job["dataset"] for job in jobs[rule])
        assert shards == {"c4_original": 32, "rpj": 32, "rw_original": 32}, rule
        assert {job["shard"] for job in jobs[rule]} == {f"{k:05d}-of-00032" for k in range(32)}
    assert sorted(job["dataset"] for job in jobs["index_tokens"]) == ["c4_original", "rpj", "rw_original"]
    assert "tokenizer" in jobs and len(jobs["prefetch"]) == 1
    print(f"data jobs: {len(jobs['prefetch'])} prefetch, {len(jobs['corpus_shard'])} corpus_shard, "
          f"{len(jobs['tokenize_shard'])} tokenize_shard, {len(jobs['index_tokens'])} index_tokens")


@pytest.mark.slow
def test_paper_dry_run_shows_the_shard_jobs_cpu_resources(paper_dry_run):
    output, _, _ = paper_dry_run
    config = paper_config()
    jobs = planned_job_wildcards(output)
    for rule, stage in (("corpus_shard", "corpus"), ("tokenize_shard", "tokenize")):
        for job in jobs[rule]:
            threads = 2 if stage == "tokenize" else 1
            promised = resources.data_job(resources.shard_bytes(config, job["dataset"]), stage, 1, threads)
            shown = job["_resources"]
            assert int(shown["mem_mb"]) == promised["mem_mb"] and int(shown["runtime"]) == promised["runtime"]
            assert "gpu" not in shown or int(shown["gpu"]) == 0, (rule, shown)


@pytest.mark.slow
def test_paper_dry_run_needs_no_cluster(paper_dry_run):
    """Planning asks SLURM nothing: no sbatch, squeue, sacct, sinfo or srun call.

    The executor plugin runs `scontrol show config` (MinJobAge, for its status
    command's help text) when it builds its options, with a 10 s timeout and
    any failure ignored; that is the only call allowed.
    """
    _, _, calls = paper_dry_run
    assert [call for call in calls if call[0] != "scontrol"] == []
    assert all(call[:3] == ["scontrol", "show", "config"] for call in calls)


@pytest.mark.slow
def test_paper_dry_run_shows_the_promised_training_resources(paper_dry_run):
    output, _, _ = paper_dry_run
    config = paper_config()
    for job in planned_job_wildcards(output)["train"]:
        promised = resources.train_job(config, job["size"], job["mult"], attempt=1)
        shown = job["_resources"]
        assert int(shown["gpu"]) == promised["gpu"] == config["sizes"][job["size"]]["gpus"]
        assert int(shown["mem_mb"]) == promised["mem_mb"] and int(shown["runtime"]) == promised["runtime"]
        assert int(shown["cpus_per_gpu"]) == 8


@pytest.mark.slow
def test_1_4b_training_job_asks_slurm_for_what_resources_promise(tmp_path, monkeypatch):
    """The sbatch calls of one 1.4B run, three attempts (the profile's retries: 2): --gpus, --mem, -t."""
    calls = on_fake_cluster(tmp_path, monkeypatch)
    workdir = tmp_path / "work"
    # The run's inputs exist (the index of C4's 32 token shards, the shards, the tokenizer and what the
    # prefetch job fetched for it), in the order the workflow writes them: the training job is the only one.
    shards = [f"results/paper/tokens/c4_original/shards/{k:05d}-of-00032/train.bin" for k in range(32)]
    for path in ("results/paper/prefetch/manifest.json", "results/paper/tokenizer/tokenizer.json", *shards,
                 "results/paper/tokens/c4_original/train.index.json"):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    result = snakemake(
        workdir, "--profile", str(PROFILE), "--configfile", str(PAPER),
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "results/paper/models/c4_original/1.4B_M20/run.json",
        check=False,
    )
    assert result.returncode != 0, "every sbatch call is refused, so the run must fail"
    sbatch = [call for call in recorded_calls(calls) if call[0] == "sbatch"]

    def flag(call, name):
        return call[call.index(name) + 1]

    assert len(sbatch) == 3, (result.stdout + result.stderr)[-3000:]
    # The plugin joins the wildcards with "_": the study's own run has an empty {replica}.
    assert {flag(call, "--comment") for call in sbatch} == {"rule_train_wildcards_c4_original_1.4B_20_"}
    sbatch.sort(key=lambda call: int(flag(call, "--mem")))
    config = paper_config()
    promised = [resources.train_job(config, "1.4B", 20, attempt) for attempt in (1, 2, 3)]
    for call, want in zip(sbatch, promised):
        assert f"--gpus={config['sizes']['1.4B']['gpus']}" in call and "--gpus=8" in call
        assert int(flag(call, "--mem")) == want["mem_mb"]
        assert int(flag(call, "-t")) == want["runtime"]
        assert "--cpus-per-gpu=8" in call
    first, second = sbatch[0], sbatch[1]
    assert int(flag(second, "--mem")) == 2 * int(flag(first, "--mem"))
    assert int(flag(second, "-t")) == 2 * int(flag(first, "-t"))
    print(f"\n1.4B M=20 sbatch, attempt 1: --gpus=8 --mem {flag(first, '--mem')} -t {flag(first, '-t')}")


@pytest.mark.slow
def test_paper_prefetch_runs_where_snakemake_runs(tmp_path, monkeypatch):
    """The prefetch job is a localrule: through the SLURM profile it runs on this host, not through
    sbatch, and here, with no network and an empty cache, fails naming the GPT-NeoX tokenizer (the
    tasks are left out, so that it reads no lm-eval index: test_prefetch.py plans those)."""
    calls = on_fake_cluster(tmp_path, monkeypatch)
    workdir = tmp_path / "work"
    result, jobs = snakemake_with_jobs(
        workdir, "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1", "results/paper/prefetch/manifest.json", "--configfile", str(PAPER),
        "--config", f"hf_cache={tmp_path / 'empty-cache'}", "tasks={suite: offline}")
    assert result.returncode != 0
    # Every attempt (the profile retries a failed job) is the prefetch job, run on this host.
    assert {(job["rule"], job["local"]) for job in jobs} == {("prefetch", True)}, jobs
    assert [call for call in recorded_calls(calls) if call[0] == "sbatch"] == []
    log = (workdir / "results" / "paper" / "logs" / "prefetch.log").read_text()
    assert "1 of 1 downloads are not in the Hugging Face cache" in log and "tokenizer EleutherAI/gpt-neox-20b" in log
