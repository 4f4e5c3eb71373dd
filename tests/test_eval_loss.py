"""The smoke testbed through real Snakemake: loss trends, offline Hugging Face checkpoints, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lmscale.config import run_name
from lmscale.evaluation import eval_loss
from tests.workflow import kill_once_checkpointed, offline_env, snakemake_command

RUN_KEYS = {"model", "dataset", "size", "N", "N_non_embedding", "D", "M", "M_actual", "C", "steps", "batch_size",
            "context", "tokens_per_step", "epochs", "wall_seconds", "tokens_per_second", "flops_per_second",
            "resumed_from_step"}
LOSS_KEYS = {"model", "dataset", "size", "valset", "loss", "loss_lo", "loss_hi", "tokens", "sequences"}

pytestmark = pytest.mark.slow


def losses(smoke_study: dict, valset: str) -> dict:
    table = {}
    for run in smoke_study["runs"]:
        path = smoke_study["results"] / "eval" / "loss" / run.dataset / run.name / f"{valset}.json"
        table[(run.size, run.multiplier)] = json.loads(path.read_text())
    return table


def test_smoke_grid_records(smoke_study):
    print(f"the whole smoke study: {smoke_study['seconds']:.0f} s")
    for run in smoke_study["runs"]:
        model_dir = smoke_study["results"] / "models" / run.dataset / run.name
        record = json.loads((model_dir / "run.json").read_text())
        assert RUN_KEYS <= set(record)
        assert record["C"] == 6 * record["N"] * record["D"]
        assert record["D"] == record["steps"] * record["tokens_per_step"]
        assert abs(record["M_actual"] - run.multiplier) * record["N"] <= record["tokens_per_step"] / 2
        assert record["N_non_embedding"] < record["N"] and record["epochs"] < 1
        log = [json.loads(line) for line in open(model_dir / "train_log.jsonl")]
        assert log[-1]["step"] == record["steps"] and log[-1]["loss"] < log[0]["loss"]
        for valset in smoke_study["config"]["validation_sets"]:
            result = losses(smoke_study, valset)[(run.size, run.multiplier)]
            assert LOSS_KEYS <= set(result)
            assert result["loss_lo"] < result["loss"] < result["loss_hi"]
            assert result["model"] == run.name and result["valset"] == valset


def test_loss_falls_with_N_and_with_M(smoke_study):
    sizes = list(smoke_study["config"]["sizes"])
    multipliers = sorted({run.multiplier for run in smoke_study["runs"]})
    for valset in smoke_study["config"]["validation_sets"]:
        table = {key: value["loss"] for key, value in losses(smoke_study, valset).items()}
        print(valset, {f"{s}_M{m:g}": round(v, 4) for (s, m), v in table.items()})
        for m in multipliers:
            along_n = [table[(size, m)] for size in sizes]
            assert along_n == sorted(along_n, reverse=True), (valset, m, along_n)
        for size in sizes:
            along_m = [table[(size, m)] for m in multipliers]
            assert along_m == sorted(along_m, reverse=True), (valset, size, along_m)


# Run in a fresh interpreter with the hub switched off, as a user of the checkpoints would.
RECOMPUTE = r"""
import json, sys
import numpy as np, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(1)
out = []
for model_dir, streams in json.loads(sys.argv[1]):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    context = model.config.max_position_embeddings
    for stream, n_tokens in streams:
        summary = json.load(open(stream[:-4] + ".json"))
        tokens = np.memmap(stream, dtype=summary["dtype"], mode="r")
        sequences = min(n_tokens, len(tokens) - 1) // context
        windows = torch.tensor(np.stack([tokens[i * context : i * context + context + 1]
                                         for i in range(sequences)]).astype(np.int64))
        with torch.no_grad():
            # transformers computes the loss itself (its own shift, reduction and fp32 upcast):
            # an independent path to the number the workflow wrote.
            loss = sum(model(input_ids=w[:, :-1], labels=w[:, :-1], shift_labels=w[:, 1:].contiguous()).loss.item()
                       * len(w) for w in windows.split(128)) / sequences
        out.append({"loss": loss, "eos": [tokenizer.eos_token_id, model.config.eos_token_id],
                    "text": tokenizer.decode(windows[0, :20].tolist()), "class": type(model).__name__})
print(json.dumps(out))
"""


def test_every_checkpoint_loads_offline_and_reproduces_its_loss(smoke_study):
    """AutoModelForCausalLM and AutoTokenizer load every model offline; transformers' loss matches the eval."""
    config, results = smoke_study["config"], smoke_study["results"]
    jobs, expected = [], []
    for run in smoke_study["runs"]:
        streams = []
        for valset, entry in config["validation_sets"].items():
            stream = (results / "tokens" / entry["dataset"] / "validation.bin" if entry.get("dataset")
                      else results / "tokens" / "valsets" / valset / "validation.bin")
            streams.append([str(stream), entry["tokens"]])
            expected.append((run.name, valset, losses(smoke_study, valset)[(run.size, run.multiplier)]["loss"]))
        jobs.append([str(results / "models" / run.dataset / run.name), streams])
    done = subprocess.run([sys.executable, "-c", RECOMPUTE, json.dumps(jobs)], capture_output=True, text=True,
                          env=offline_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    recomputed = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(recomputed) == len(expected)
    for (model, valset, want), got in zip(expected, recomputed):
        assert got["class"] == "Qwen3ForCausalLM" and got["eos"][0] == got["eos"][1] is not None
        assert got["text"]
        assert got["loss"] == pytest.approx(want, abs=1e-4), (model, valset)


def training_processes(marker: str) -> list[int]:
    """Pids whose command line mentions `marker` (a run's checkpoint folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_snakemake_resumes_a_training_job_killed_with_sigkill(smoke_study, tmp_path):
    """Kill Snakemake and its training job mid-run; `--rerun-incomplete` resumes and ends where a clean run ends."""
    from lmscale.jobs import TrainJob, TrainOptions
    from lmscale.training.loop import train
    from lmscale.training.setup import Paths
    from tests.workflow import validated_config

    workdir, results = smoke_study["workdir"], smoke_study["results"]
    config = yaml.safe_load(smoke_study["configfile"].read_text())
    config["grid"].append({"sizes": ["s1"], "multipliers": [15]})
    config["train"]["checkpoint_every"] = 10  # operational: retrains none of the smoke runs
    configfile = tmp_path / "resume.yaml"
    configfile.write_text(yaml.safe_dump(config))
    name = run_name("s1", 15)
    targets = [f"results/{config['study']}/eval/loss/stdlib/{name}/{valset}.json" for valset in config["validation_sets"]]
    checkpoints = results / "checkpoints" / "stdlib" / name

    process = subprocess.Popen(snakemake_command(workdir, *targets, "--configfile", str(configfile)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, env=offline_env())
    kill_once_checkpointed(process, checkpoints, 60, 600)
    for pid in training_processes(str(checkpoints)):  # a job that left the process group
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert not training_processes(str(checkpoints))
    killed_at = max(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))
    model_dir = results / "models" / "stdlib" / name
    assert not (model_dir / "run.json").exists()

    subprocess.run(snakemake_command(workdir, *targets, "--unlock", "--configfile", str(configfile)), capture_output=True, env=offline_env())
    rerun = subprocess.run(snakemake_command(workdir, *targets, "--rerun-incomplete", "--configfile", str(configfile)), capture_output=True,
                           text=True, env=offline_env(), timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    train_log = (results / "logs" / "train" / "stdlib" / f"{name}.log").read_text()
    assert f"resumed from checkpoint at step {killed_at} of" in train_log
    record = json.loads((model_dir / "run.json").read_text())
    assert record["resumed_from_step"] == killed_at

    # The same run, uninterrupted, outside Snakemake.
    validated = validated_config(config)
    reference = train(
        TrainJob.from_config(validated, "stdlib", "s1", 15), TrainOptions.from_config(validated),
        Paths(results / "tokens" / "stdlib" / "train.bin", results / "tokenizer" / "tokenizer.json",
              tmp_path / "reference" / "run.json", tmp_path / "checkpoints"),
        validated["train"]["threads"],
    )
    assert reference["fingerprint"] == record["fingerprint"] and reference["resumed_from_step"] is None
    valsets = {
        valset: {"tokens_path": str(results / "tokens" / (f"{entry['dataset']}/validation.bin" if entry.get("dataset")
                                                          else f"valsets/{valset}/validation.bin")),
                 "tokens": entry["tokens"]}
        for valset, entry in config["validation_sets"].items()
    }
    expected = eval_loss.evaluate(tmp_path / "reference", valsets,
                                  {v: tmp_path / f"{v}.json" for v in valsets}, device="cpu")
    for valset in valsets:
        resumed = json.loads((results / "eval" / "loss" / "stdlib" / name / f"{valset}.json").read_text())
        assert abs(resumed["loss"] - expected[valset]["loss"]) < 1e-4, (valset, resumed["loss"], expected[valset]["loss"])
