"""Downstream evaluation through lm-eval, offline, on a tiny checkpoint built here."""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
import time
from pathlib import Path

# Before anything imports `datasets` or `huggingface_hub`: they read these once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

from lmscale import cli
from lmscale.evaluation import eval_tasks, offline_tasks, task_list
from lmscale.jobs import EvalTasksJob, EvalTasksOptions
from tests.test_task_suite import write_suite
from tests.workflow import validated_config

TABLE = str(Path(__file__).resolve().parents[1] / "configs" / "tasks" / "llm_foundry_46.csv")

HELDOUT_MODULES = ["textwrap.py", "json/encoder.py", "json/decoder.py", "shlex.py", "fnmatch.py", "glob.py",
                   "bisect.py", "heapq.py", "string.py", "colorsys.py", "numbers.py", "queue.py", "sched.py"]


def job_arguments(selection: dict, dataset: str, size: str, mult: str) -> list[str]:
    """--job and --options of eval-tasks for one model, as the workflow passes them."""
    config = validated_config()
    return ["--job", EvalTasksJob.from_config(config, selection, dataset, size, mult).to_json(),
            "--options", EvalTasksOptions.from_config(config).to_json()]


def write_heldout(path: Path) -> list[str]:
    library = Path(sysconfig.get_paths()["stdlib"])
    texts = [(library / module).read_text() for module in HELDOUT_MODULES]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return texts


def build_checkpoint(model_dir: Path, texts: list[str]) -> Path:
    """A randomly initialised Qwen3 and a byte-level BPE, saved as a Hugging Face folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=384,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    Qwen3ForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def build_study(root: Path) -> dict:
    """The tiny checkpoint and its suite under `root`; conftest's `tiny_checkpoint` builds it once per session
    for this file and tests/test_lm_eval_model.py."""
    texts = write_heldout(root / "validation.jsonl")
    model = build_checkpoint(root / "model", texts)
    suite = root / "suite"
    # As the workflow generates it: with the model's tokenizer, so that lm-eval scores every answer as written.
    write_suite(suite, heldout=root / "validation.jsonl", seed=0, size=60, fewshot_pool=10,
                           tokenizer=model, context=512)
    return {"root": root, "model": model, "suite": suite}


def direct_choice_accuracy(model_dir: Path, documents: list[dict]) -> float:
    """Multiple-choice accuracy computed with transformers alone, as lm-eval defines it.

    Each choice is scored by the summed log-probability of its tokens after
    the context; trailing whitespace of the context belongs to the choice, and
    the choice's tokens are those of context + choice past the context's.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    max_length = model.config.max_position_embeddings
    correct = 0
    for doc in documents:
        scores = []
        for choice in doc["choices"]:
            context = doc["context"]
            stripped = context.rstrip()
            continuation = context[len(stripped):] + choice
            whole = tokenizer(stripped + continuation, add_special_tokens=False)["input_ids"]
            context_ids = tokenizer(stripped, add_special_tokens=False)["input_ids"]
            choice_ids = whole[len(context_ids):]
            ids = (context_ids + choice_ids)[-(max_length + 1):]
            with torch.no_grad():
                logits = model(torch.tensor([ids[:-1]])).logits[0]
            log_probs = torch.log_softmax(logits, dim=-1)[-len(choice_ids):]
            scores.append(log_probs.gather(1, torch.tensor(choice_ids)[:, None]).sum().item())
        correct += int(max(range(len(scores)), key=lambda i: (scores[i], -i)) == doc["label"])
    return correct / len(documents)


def test_accuracy_matches_a_direct_computation(tiny_checkpoint):
    specs = task_list.task_specs({"suite": "offline", "include": ["code_next_line"]}, tiny_checkpoint["suite"])
    result = eval_tasks.evaluate_model(tiny_checkpoint["model"], specs, 8, "cpu", suite_dir=tiny_checkpoint["suite"])
    assert result["failed"] == {}
    scored = result["tasks"]["code_next_line"]
    documents = [json.loads(line) for line in (tiny_checkpoint["suite"] / "code_next_line" / "test.jsonl").open()]
    assert scored["num_docs"] == len(documents) == 60
    assert scored["acc"] == pytest.approx(direct_choice_accuracy(tiny_checkpoint["model"], documents), abs=1e-9)
    assert scored["acc_stderr"] > 0
    assert scored["random_baseline"] == 0.25 and scored["kind"] == "multiple_choice"


def test_unknown_task_fails_before_any_model_is_loaded(tiny_checkpoint, tmp_path, caplog):
    missing_model = tmp_path / "never-trained"
    status = cli.main([
        "eval-tasks", *job_arguments({"suite": "offline", "include": ["code_nxt_line", "bracket_next"]}, "d", "s", "20"),
        "--model", str(missing_model / "run.json"), "--suite", str(tiny_checkpoint["suite"]),
        "--out", str(tmp_path / "out.json"),
    ])
    assert status == 1
    assert "code_nxt_line" in caplog.text and "closest: code_next_line" in caplog.text
    assert "never-trained" not in caplog.text  # the name check came first


def test_unknown_lm_eval_name_names_the_closest(tiny_checkpoint):
    specs = [task_list.TaskSpec("ours", "code_next_lines", 0, 0.25, "multiple_choice")]
    manager = eval_tasks.task_manager(tiny_checkpoint["suite"], with_builtin_tasks=False)
    with pytest.raises(ValueError, match="closest: code_next_line"):
        task_list.check_registered(specs, manager.all_tasks)


def test_a_failing_task_keeps_the_others(tiny_checkpoint, tmp_path):
    suite = tmp_path / "suite"
    shutil.copytree(tiny_checkpoint["suite"], suite)
    # Corrupt one task's data: lm-eval fails on it, the other task must still be scored.
    (suite / "doctest_comparison" / "test.jsonl").write_text("{not json\n")
    specs = task_list.task_specs(
        {"suite": "offline", "include": ["doctest_comparison", "doctest_addition"]}, suite
    )
    result = eval_tasks.evaluate_model(tiny_checkpoint["model"], specs, 32, "cpu", suite_dir=suite, limit=10)
    assert list(result["failed"]) == ["doctest_comparison"]
    assert list(result["tasks"]) == ["doctest_addition"]
    assert result["tasks"]["doctest_addition"]["num_docs"] == 10


@pytest.mark.slow
def test_whole_suite_through_the_cli(tiny_checkpoint, tmp_path):
    out = tmp_path / "eval" / "tiny_M20.json"
    started = time.perf_counter()
    status = cli.main([
        "eval-tasks", *job_arguments({"suite": "offline", "include": [], "exclude": []}, "stdlib", "tiny", "20"),
        "--model", str(tiny_checkpoint["model"] / "run.json"), "--suite", str(tiny_checkpoint["suite"]),
        "--out", str(out), "--threads", "2",
    ])
    seconds = time.perf_counter() - started
    assert status == 0
    record = json.loads(out.read_text())
    assert {"model", "dataset", "size", "M", "tasks", "failed"} <= set(record)
    assert (record["model"], record["dataset"], record["size"], record["M"]) == ("tiny_M20", "stdlib", "tiny", 20)
    assert record["failed"] == {}
    assert sorted(record["tasks"]) == sorted(offline_tasks.offline_suite())
    for name, result in record["tasks"].items():
        assert {"acc", "acc_stderr", "random_baseline", "num_fewshot", "kind"} <= set(result), name
        assert 0 <= result["acc"] <= 1
    # Speed is reported, not asserted: a busy machine must not fail a correct evaluation.
    print(f"whole offline suite on one model: {seconds:.1f} s")


@pytest.mark.slow
def test_paper_suite_offline_keeps_what_it_can(tiny_checkpoint, tmp_path):
    """lm-eval's own tasks need their datasets cached; a missing one is a failure, not a crash."""
    suite = tmp_path / "suite"
    write_suite(suite, tasks=task_list.local_tasks_of_table(TABLE),
                           size=20, fewshot_pool=10)
    specs = task_list.task_specs(
        {"suite": "llm_foundry_46", "table": TABLE,
         "include": ["copa", "simple_arithmetic_withspaces"]},
        suite,
    )
    result = eval_tasks.evaluate_model(tiny_checkpoint["model"], specs, 32, "cpu", suite_dir=suite, limit=5)
    assert result["tasks"]["simple_arithmetic_withspaces"]["num_fewshot"] == 10
    assert "copa" in result["tasks"] or "copa" in result["failed"]


def test_a_task_scores_the_same_beside_tasks_that_share_its_text(tiny_checkpoint, tmp_path):
    """lm-eval's one-token logits cache runs one forward pass for requests whose context and
    continuation but the last token coincide, and reads the shorter continuation's
    log-likelihood at the longer one's leading positions. Tasks cut from the same held-out
    lines meet that case (a name after a line's prefix; the whole line after the context):
    code_name_choice scored 0.673 beside the other tasks and 0.691 alone in the default study."""
    suite = tmp_path / "suite"
    shutil.copytree(tiny_checkpoint["suite"], suite)
    choice_docs = [json.loads(line) for line in (suite / "code_name_choice" / "test.jsonl").open()]
    # For every name-choice question, a minimal pair over the same line: the real line (its
    # prefix and the answer) against the prefix and a distractor.
    pairs = []
    for doc in choice_docs:
        head, _, prefix = doc["context"].rpartition("\n")
        real = prefix + doc["choices"][doc["label"]]
        other = prefix + doc["choices"][(doc["label"] + 1) % len(doc["choices"])]
        pairs.append({"context": head + "\n", "choices": [real, other], "label": 0})
    (suite / "code_name_swap_pairs" / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))

    def accuracy(include: list[str]) -> float:
        specs = task_list.task_specs({"suite": "offline", "include": include}, suite)
        result = eval_tasks.evaluate_model(tiny_checkpoint["model"], specs, 8, "cpu", suite_dir=suite)
        assert result["failed"] == {}
        return result["tasks"]["code_name_choice"]["acc"]

    alone = accuracy(["code_name_choice"])
    assert alone == pytest.approx(direct_choice_accuracy(tiny_checkpoint["model"], choice_docs), abs=1e-9)
    assert accuracy(["code_name_choice", "code_name_swap_pairs"]) == alone
