"""Training for real (lmscale.training.loop, the loop): refusal of short corpora, resume after SIGKILL, the
compiled step, crafted checkpoints, and the launcher. The package's pure pieces have files of their own:
test_budget, test_schedules, test_checkpoints, test_outputs, test_plan, test_commands."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmscale.data import documents
from lmscale.data.token_streams import tokenize_split
from lmscale.data.vocabulary import train_bpe
from lmscale.evaluation import eval_loss, eval_tasks
from lmscale.jobs import TrainJob, TrainOptions
from lmscale.training import distributed
from lmscale.training.checkpoints import CHECKPOINT_FORMAT, find_checkpoint
from lmscale.training.loop import train
from lmscale.training.setup import Paths
from tests.workflow import kill_once_checkpointed, validated_config

# About 7.8k parameters; at M = 10 that is ~300 steps of 256 tokens, a few seconds on one core.
TINY = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 32, "context": 32, "tie_embeddings": True,
        "batch_size": 8, "lr": 0.01, "warmup": 5}


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> Path:
    """A small stdlib corpus, its BPE and both token streams, built through the library."""
    root = tmp_path_factory.mktemp("train")
    documents.write_corpus({"source": "stdlib", "max_bytes": 500_000}, root / "data", validation_fraction=0.1)
    train_bpe(root / "data" / "train.jsonl", root / "tokenizer", vocab_size=320)
    for split in ("train", "validation"):
        tokenize_split(root / "data" / f"{split}.jsonl", root / "tokenizer", root / "tokens" / f"{split}.bin")
    return root


def lmscale_command() -> list[str]:
    return [shutil.which("lmscale")] if shutil.which("lmscale") else [sys.executable, "-m", "lmscale.cli"]


def tiny(train_config: dict | None = None, size: dict = TINY) -> dict:
    """A study of the tiny size, checkpointed every 25 steps on the CPU."""
    return validated_config({"sizes": {"tiny": size}, "train": {"device": "cpu", "checkpoint_every": 25, "log_every": 5,
                                                     **(train_config or {})}})


def paths(root: Path, name: str) -> Paths:
    return Paths(root / "tokens" / "train.bin", root / "tokenizer" / "tokenizer.json",
                 root / "models" / name / "run.json", root / "checkpoints" / name)


def train_command(root: Path, name: str, multiplier: float, config: dict | None = None) -> list[str]:
    """`lmscale train` of the tiny size, as the train rule runs it."""
    config = config or tiny()
    where = paths(root, name)
    return lmscale_command() + [
        "train", "--job", TrainJob.from_config(config, "stdlib", "tiny", multiplier).to_json(),
        "--options", TrainOptions.from_config(config).to_json(),
        "--tokens", str(where.tokens), "--tokenizer", str(where.tokenizer), "--out", str(where.record),
        "--checkpoint-dir", str(where.checkpoints), "--threads", str(config["train"]["threads"]), "--gpus", "0",
    ]


def train_here(root: Path, name: str, multiplier: float, config: dict | None = None) -> dict:
    """The same run in this process."""
    config = config or tiny()
    return train(TrainJob.from_config(config, "stdlib", "tiny", multiplier), TrainOptions.from_config(config),
                 paths(root, name), config["train"]["threads"])


def heldout_loss(root: Path, model_dir: Path) -> float:
    valsets = {"heldout": {"tokens_path": str(root / "tokens" / "validation.bin"), "tokens": 8192}}
    out = {"heldout": model_dir / "heldout.json"}
    return eval_loss.evaluate(model_dir, valsets, out, device="cpu")["heldout"]["loss"]


# ---- real runs -------------------------------------------------------------------------------------


def test_too_little_data_fails_before_training(streams):
    train_tokens = json.loads((streams / "tokens" / "train.json").read_text())["tokens"]
    result = subprocess.run(train_command(streams, "greedy", 10_000), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "run stdlib/tiny_M10000 needs D = " in result.stderr
    usable = (train_tokens - 1) // TINY["context"] * TINY["context"]
    assert f"train split has only {usable:,}" in result.stderr
    assert "repeat_data" in result.stderr and "Traceback" not in result.stderr
    assert not (streams / "models" / "greedy").exists()
    assert not list((streams / "checkpoints" / "greedy").glob("*.pt"))


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(streams):
    # The uninterrupted reference, in this process.
    reference = train_here(streams, "reference", 10)
    assert reference["resumed_from_step"] is None and reference["steps"] > 200
    assert not (streams / "checkpoints" / "reference").exists()  # removed once the run is whole

    # The same run through the CLI, killed with SIGKILL once it has checkpointed past step 100.
    checkpoints = streams / "checkpoints" / "killed"
    process = subprocess.Popen(train_command(streams, "killed", 10), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    kill_once_checkpointed(process, checkpoints, 100, 300)
    assert process.returncode == -signal.SIGKILL
    assert not (streams / "models" / "killed" / "run.json").exists()
    newest = max(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))

    rerun = subprocess.run(train_command(streams, "killed", 10), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from checkpoint at step {newest} of {reference['steps']}" in rerun.stderr
    resumed = json.loads((streams / "models" / "killed" / "run.json").read_text())
    assert resumed["resumed_from_step"] == newest
    for key in ("N", "D", "steps", "C", "fingerprint"):
        assert resumed[key] == reference[key]

    # The log continues without a gap or a repeat, and the final loss is the uninterrupted one.
    log = [json.loads(line) for line in open(streams / "models" / "killed" / "train_log.jsonl")]
    reference_log = [json.loads(line) for line in open(streams / "models" / "reference" / "train_log.jsonl")]
    assert [r["step"] for r in log] == [r["step"] for r in reference_log]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in reference_log], abs=1e-5)
    killed_loss = heldout_loss(streams, streams / "models" / "killed")
    reference_loss = heldout_loss(streams, streams / "models" / "reference")
    assert math.isfinite(reference_loss)
    assert abs(killed_loss - reference_loss) < 1e-4, (killed_loss, reference_loss)


# ---- the compiled step ------------------------------------------------------------------------------

# ~600 steps: long enough to kill a compiled run (a few ms a step) once it has checkpointed.
COMPILED_MULTIPLIER = 20
# The tiny size at a gentler learning rate (as tests/test_distributed.py): at lr 0.01 its early
# loss spikes grow the rounding differences of any two ways of computing a step (here, by step 25).
GENTLE = TINY | {"lr": 0.003}


def train_log(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in open(model_dir / "train_log.jsonl")]


@pytest.fixture(scope="module")
def compiled_and_eager(streams) -> dict:
    """The same run compiled and eager, in this process, logging every step."""
    return {setting: train_here(streams, f"compile_{setting}", COMPILED_MULTIPLIER,
                                tiny({"compile": setting, "log_every": 1}, size=GENTLE))
            for setting in ("on", "off")}


@pytest.mark.slow
def test_a_compiled_run_follows_the_eager_runs_loss(streams, compiled_and_eager):
    compiled, eager = compiled_and_eager["on"], compiled_and_eager["off"]
    assert (compiled["compiled"], eager["compiled"]) == (True, False)
    assert compiled["compile_seconds"] > 0 and eager["compile_seconds"] == 0
    assert compiled["fingerprint"] == eager["fingerprint"]  # compiling is how a run is carried out, not what
    assert 0 < compiled["mfu"] < 1 and compiled["peak_source"].startswith("fp32 matmul measured")
    losses = {setting: [line["loss"] for line in train_log(streams / "models" / f"compile_{setting}")]
              for setting in ("on", "off")}
    assert len(losses["on"]) == compiled["steps"] > 50
    np.testing.assert_allclose(losses["on"][:50], losses["off"][:50], rtol=0, atol=1e-3)


@pytest.mark.slow
def test_a_compiled_run_killed_after_a_checkpoint_resumes_and_its_model_scores_in_lm_eval(
        streams, compiled_and_eager, tmp_path):
    from tests.test_task_suite import write_suite

    config = tiny({"compile": "on", "log_every": 1}, size=GENTLE)
    command = train_command(streams, "compile_killed", COMPILED_MULTIPLIER, config)
    checkpoints = streams / "checkpoints" / "compile_killed"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    kill_once_checkpointed(process, checkpoints, 50, 600)
    assert process.returncode == -signal.SIGKILL
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed from checkpoint at step" in rerun.stderr
    # The shape was compiled before (by the uninterrupted run): its graphs come from inductor's cache.
    assert re.search(r"compiled in [\d.]+ s \(\d+ graph\(s\) from the cache in .+, 0 built\)", rerun.stderr)

    reference, model_dir = compiled_and_eager["on"], streams / "models" / "compile_killed"
    resumed = json.loads((model_dir / "run.json").read_text())
    assert resumed["compiled"] and resumed["resumed_from_step"] and resumed["fingerprint"] == reference["fingerprint"]
    assert [line["loss"] for line in train_log(model_dir)] == pytest.approx(
        [line["loss"] for line in train_log(streams / "models" / "compile_on")], abs=1e-5)
    # Saved as the stock Qwen3: AutoModelForCausalLM reads it (eval_loss loads it so) ...
    assert abs(heldout_loss(streams, model_dir) - heldout_loss(streams, streams / "models" / "compile_on")) < 1e-4
    # ... and lm-eval's hf backend scores it.
    suite = tmp_path / "suite"
    write_suite(suite, tasks=["code_next_line", "code_swap_pairs"], heldout=streams / "data" / "validation.jsonl",
                tokenizer=model_dir, context=TINY["context"], seed=0, size=30, fewshot_pool=5, context_lines=2)
    specs = eval_tasks.task_specs({"suite": "offline", "include": ["code_next_line", "code_swap_pairs"]}, suite)
    scored = eval_tasks.evaluate_model(model_dir, specs, 16, "cpu", suite_dir=suite)
    assert scored["failed"] == {} and set(scored["tasks"]) == {"code_next_line", "code_swap_pairs"}
    assert all(0 <= task["acc"] <= 1 and task["num_docs"] > 0 for task in scored["tasks"].values())


def test_a_checkpoint_of_other_settings_is_not_resumed(streams, caplog):
    """A stale checkpoint (the config changed since) must not leak into a new run."""
    def run(name: str, seed: int) -> dict:
        config = tiny({"seed": seed, "checkpoint_every": 5, "keep_checkpoints": True})
        where = Paths(streams / "tokens" / "train.bin", streams / "tokenizer" / "tokenizer.json",
                      streams / "models" / name / "run.json", streams / "checkpoints" / "stale")
        return train(TrainJob.from_config(config, "stdlib", "tiny", 1), TrainOptions.from_config(config), where,
                     config["train"]["threads"])

    first = run("stale_a", 1)
    assert list((streams / "checkpoints" / "stale").glob("step_*.pt"))
    with caplog.at_level("WARNING"):
        second = run("stale_b", 2)
    assert second["resumed_from_step"] is None and first["fingerprint"] != second["fingerprint"]
    assert "belongs to other settings" in caplog.text


class SideEffect:
    """Unpickled, it runs a shell command: what a crafted checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def crafted_checkpoint(checkpoints: Path, marker: Path, run_fingerprint: str, header: bool) -> None:
    """A checkpoint at step 10 that claims `run_fingerprint` and touches `marker` when unpickled."""
    import torch

    checkpoints.mkdir(parents=True, exist_ok=True)
    state = {"step": 10, "fingerprint": run_fingerprint, "format": CHECKPOINT_FORMAT, "model": SideEffect(marker)}
    torch.save(state, checkpoints / "step_000000010.pt")
    if header:
        (checkpoints / "step_000000010.json").write_text(json.dumps({k: state[k] for k in ("step", "fingerprint",
                                                                                          "format")}))


def test_a_crafted_checkpoint_is_never_unpickled(tmp_path, caplog):
    marker = tmp_path / "ran"
    # Without a header, as any checkpoint folder from elsewhere: the file is not opened.
    crafted_checkpoint(tmp_path / "bare", marker, "f" * 16, header=False)
    with caplog.at_level("WARNING"):
        assert find_checkpoint(tmp_path / "bare", "f" * 16) is None
    assert "has no readable header" in caplog.text
    # With a header that claims this very run: the weights-only load refuses what it would call.
    crafted_checkpoint(tmp_path / "claimed", marker, "f" * 16, header=True)
    with caplog.at_level("WARNING"):
        assert find_checkpoint(tmp_path / "claimed", "f" * 16) is None
    assert "system" in caplog.text and "trying an older one" in caplog.text
    assert not marker.exists()


def test_a_run_beside_a_crafted_checkpoint_trains_fresh_and_runs_nothing(streams, tmp_path):
    """The crafted checkpoint carries the run's own fingerprint (settings are no secret); the run
    refuses it, trains from step 0, and ends as a run without it."""
    clean = subprocess.run(train_command(streams, "clean", 1), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    reference = json.loads((streams / "models" / "clean" / "run.json").read_text())
    marker = tmp_path / "ran"
    crafted_checkpoint(streams / "checkpoints" / "crafted", marker, reference["fingerprint"], header=True)
    result = subprocess.run(train_command(streams, "crafted", 1), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not marker.exists()
    assert "cannot read checkpoint" in result.stderr and "fresh start" in result.stderr
    record = json.loads((streams / "models" / "crafted" / "run.json").read_text())
    assert record["resumed_from_step"] is None and record["fingerprint"] == reference["fingerprint"]
    log = (streams / "models" / "crafted" / "train_log.jsonl").read_text().splitlines()
    reference_log = (streams / "models" / "clean" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in log] == [json.loads(line)["loss"] for line in reference_log]


# ---- the launcher -----------------------------------------------------------------------------------


def test_train_jobs_launch_torchrun_from_the_gpus_they_are_granted(tmp_path):
    """One process up to one GPU; torchrun with one process per granted GPU; train.processes on the CPU.

    The train rule hands every job the GPUs the scheduler granted it (s3 asks for 8, capped at
    the 2 that `--resources gpu=2` declares) and its options; `lmscale train` chooses its launcher
    from them (test_distributed runs the two-process case for real).
    """
    import shlex

    import yaml

    from tests.workflow import REPO, planned

    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["sizes"]["s2"]["gpus"] = 1
    config["sizes"]["s3"]["gpus"] = 8
    config["train"]["processes"] = 2
    config["grid"] = [{"sizes": ["s1", "s2", "s3"], "multipliers": [5]}]
    config["loss_fit_set"] = [{"size": size, "M": 5} for size in ("s1", "s2", "s3")]  # runs of this grid
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = [job for job in planned(tmp_path, "--resources", "gpu=2", "--configfile", str(tmp_path / "config.yaml"))
            if job["rule"] == "train"]
    launched = {}
    for job in jobs:
        argv = shlex.split(job["shellcmd"].split(" > ")[0])
        flags = dict(zip(argv[2::2], argv[3::2]))
        options = TrainOptions.from_json(flags["--options"])
        assert flags["--threads"] == "2"  # the job's threads, shared by its processes
        processes = distributed.process_count(int(flags["--gpus"]), options.processes)
        launched[job["wildcards"]["size"]] = distributed.launcher(processes)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "lmscale.cli"]
    assert launched == {
        "s1": torchrun,  # CPU: train.processes gloo processes
        "s2": ["lmscale"],  # one GPU: one process
        "s3": torchrun,  # 8 GPUs asked, 2 granted
    }
