"""lmscale.jobs.resources: what a training or data job asks its scheduler for, from the model's shape,
the run's tokens and the attempt. (The paper preset's dry run through the SLURM profile, which
shows these numbers to SLURM, is in tests/test_paper_config.py.)"""

from __future__ import annotations

import copy

import pytest
import yaml

from lmscale import config as study_config
from lmscale.jobs import resources
from tests.test_paper_config import PAPER, SCHEMA, paper_config
from tests.workflow import REPO, validated_config

SMALL = {"width": 64, "depth": 2, "heads": 4, "mlp_width": 192, "context": 128}
# A pretrained tokenizer's vocabulary, as configs/paper.yaml's models have.
PAPER_VOCAB = resources.DEFAULT_VOCAB_SIZE


def validated_size(size: dict) -> dict:
    """A size with the schema's defaults filled in, as the workflow reads it."""
    return validated_config({"sizes": {"s": size}})["sizes"]["s"]


def settings(size: dict, **train) -> dict:
    """What a size trains with, as the workflow resolves it: the schema's train block with `train`
    over it, and the size's own settings over that (config.size_settings)."""
    return study_config.size_settings(validated_config({"sizes": {"s": size}, "train": train}), "s")


def test_shard_jobs_ask_for_more_time_not_more_memory_as_shards_grow():
    small, large = (resources.data_job(size, stage) for size, stage in ((1e9, "corpus"), (1e11, "corpus")))
    assert small["mem_mb"] == large["mem_mb"] and small["runtime"] < large["runtime"]
    assert resources.data_job(1e11, "tokenize", threads=2)["runtime"] < resources.data_job(1e11, "tokenize")["runtime"]
    assert resources.data_job(1e11, "corpus", attempt=2) == {k: 2 * v for k, v in large.items()}
    # The paper's corpora are at least what their largest runs read: 0.12T C4, 0.92T RedPajama tokens.
    config = paper_config()
    assert resources.corpus_bytes(config, "rpj") > 0.92e12 * 4 > resources.corpus_bytes(config, "c4_original")
    assert resources.shard_bytes(config, "rpj") * 32 >= resources.corpus_bytes(config, "rpj")


@pytest.mark.parametrize("shape", [
    SMALL,
    SMALL | {"kv_heads": 2},
    SMALL | {"tie_embeddings": True},
    {"width": 96, "depth": 8, "heads": 4, "mlp_width": 256, "context": 2048},
])
def test_parameter_count_is_the_models(shape):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers import Qwen3ForCausalLM

    from lmscale.model.architecture import Shape, build_config, parameter_counts

    size = validated_size(shape)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(build_config(Shape.from_config("s", size), 1000, 0))
    assert resources.parameter_count(size, 1000) == parameter_counts(model)["N"]


def test_resources_scale_with_attempt():
    size = settings(paper_config()["sizes"]["1.4B"])
    first = resources.training_resources(size, 20, PAPER_VOCAB, attempt=1)
    for attempt in (2, 3):
        later = resources.training_resources(size, 20, PAPER_VOCAB, attempt=attempt)
        assert later["gpu"] == first["gpu"] == 8
        assert later["mem_mb"] == attempt * first["mem_mb"]
        assert later["runtime"] == attempt * first["runtime"]
    with pytest.raises(ValueError, match="attempt"):
        resources.training_resources(size, 20, PAPER_VOCAB, attempt=0)


def test_resources_grow_with_size_and_tokens():
    sizes = {label: settings(size) for label, size in paper_config()["sizes"].items()}
    labels = ["0.011B", "0.079B", "0.154B", "0.411B", "1.4B", "6.9B"]
    memory = [resources.training_resources(sizes[s], 20, PAPER_VOCAB)["mem_mb"] for s in labels]
    assert memory == sorted(memory) and memory[0] < memory[-1]
    # Runtime grows with N x D per GPU: with M, and with size at a fixed GPU count.
    for label in labels:
        runtimes = [resources.training_resources(sizes[label], m, PAPER_VOCAB)["runtime"] for m in (5, 20, 80, 640)]
        assert runtimes == sorted(runtimes) and runtimes[0] < runtimes[-1], label
    same_gpus = [resources.training_resources(sizes[s], 20, PAPER_VOCAB)["runtime"] for s in ("0.411B", "1.4B", "6.9B")]
    assert same_gpus == sorted(same_gpus)


def test_runtime_follows_the_stated_throughput():
    size = settings(paper_config()["sizes"]["1.4B"])
    cost = resources.estimate(size, 20, PAPER_VOCAB)
    n = resources.parameter_count(size, PAPER_VOCAB)
    assert cost.N == n
    tokens_per_step = size["batch_size"] * size["context"]
    assert cost.D % tokens_per_step == 0 and abs(cost.D - 20 * n) <= tokens_per_step / 2
    per_token = 6 * n + 6 * size["depth"] * size["context"] * size["width"]
    assert cost.flops == pytest.approx(per_token * cost.D)
    seconds = cost.flops / (8 * resources.PEAK_FLOPS_PER_GPU * resources.MFU)
    assert cost.seconds == pytest.approx(seconds)
    minutes = resources.STARTUP_MINUTES + resources.SAFETY * seconds / 60
    runtime = resources.training_resources(size, 20, PAPER_VOCAB)["runtime"]
    assert minutes <= runtime < minutes + 10 and runtime % 10 == 0
    print(f"\n1.4B at M = 20: N = {n:,}, D = {cost.D:,}, {cost.flops:.3g} FLOPs, "
          f"{seconds / 86400:.1f} days on 8 GPUs at the assumed throughput; runtime {runtime} min")


@pytest.mark.parametrize("count_embeddings", [True, False])
def test_estimate_plans_the_D_that_training_plans(count_embeddings):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers import Qwen3ForCausalLM

    from lmscale.model.architecture import Shape, build_config, parameter_counts
    from lmscale.training.budget import Budget

    size = settings(SMALL | {"tie_embeddings": True}, batch_size=8, count_embeddings=count_embeddings)
    with torch.device("meta"):
        counts = parameter_counts(Qwen3ForCausalLM(build_config(Shape.from_config("s", size), 1000, 0)))
    budget = Budget.plan(counts, 20, 8, size["context"], count_embeddings)
    cost = resources.estimate(size, 20, 1000)
    assert (cost.D, cost.steps) == (budget.D, budget.steps)
    assert cost.N == counts["N"]  # memory and FLOPs follow every parameter, whatever N counts


def test_host_memory_holds_a_checkpoint_and_a_process_per_gpu():
    size = settings(paper_config()["sizes"]["6.9B"])
    n = resources.parameter_count(size, PAPER_VOCAB)
    mem_mb = resources.training_resources(size, 20, PAPER_VOCAB)["mem_mb"]
    assert mem_mb * 2**20 >= 16 * n + 8 * 4 * n  # checkpoint + eight fp32 copies
    assert mem_mb % 1024 == 0


def test_size_overrides_replace_the_estimate_and_still_scale():
    size = settings(paper_config()["sizes"]["6.9B"] | {"mem_mb": 500000, "runtime": 2880})
    assert resources.training_resources(size, 20, PAPER_VOCAB, attempt=1) == {"gpu": 8, "mem_mb": 500000,
                                                                               "runtime": 2880}
    assert resources.training_resources(size, 20, PAPER_VOCAB, attempt=2) == {"gpu": 8, "mem_mb": 1000000,
                                                                               "runtime": 5760}


def test_schema_accepts_size_resource_overrides():
    from snakemake.utils import validate

    config = yaml.safe_load(PAPER.read_text())
    config["sizes"]["1.4B"] |= {"mem_mb": 200000, "runtime": 2880}
    validate(copy.deepcopy(config), str(SCHEMA))
    config["sizes"]["1.4B"]["runtime"] = 0
    with pytest.raises(Exception):
        validate(config, str(SCHEMA))


def test_cpu_jobs_of_the_smoke_study_are_small():
    config = validated_config(yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text()))
    for size in config["sizes"]:
        got = resources.train_job(config, size, 10, attempt=1)
        assert got["gpu"] == 0
        assert got["mem_mb"] <= 4096
        assert resources.STARTUP_MINUTES <= got["runtime"] <= 30
    assert resources.study_vocab_size(config) == 512
    assert resources.study_vocab_size(paper_config()) == resources.DEFAULT_VOCAB_SIZE


def test_gpu_count_falls_back_to_the_train_block():
    assert resources.training_resources(settings(SMALL, gpus=2), 5, PAPER_VOCAB)["gpu"] == 2
    assert resources.training_resources(settings(SMALL | {"gpus": 1}, gpus=2), 5, PAPER_VOCAB)["gpu"] == 1
    assert resources.training_resources(settings(SMALL), 5, PAPER_VOCAB)["gpu"] == 0
    # The workflow's own study: the size's `gpus` in configs/paper.yaml, else the train block's.
    config = paper_config()
    assert [resources.train_job(config, size, 20)["gpu"] for size in config["sizes"]] == [1, 2, 4, 8, 8, 8]
