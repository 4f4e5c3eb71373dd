"""lm-eval's Hugging Face model scoring a batch at a time (lmscale.evaluation.lm_eval_model.BatchedHFLM): the
scores and accuracies of lm-eval's own HFLM, on conftest's tiny checkpoint and its suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmscale.evaluation import eval_tasks, task_list


def requests_of(suite: Path, tasks: list[str]) -> list:
    """Log-likelihood requests of the suite's documents, as lm-eval builds them (context, " " + choice),
    plus the cases lm-eval handles apart: an empty context, a context ending in spaces, a context
    longer than the model's 512 tokens (cut from the left)."""
    from lm_eval.api.instance import Instance

    pairs = []
    for task in tasks:
        for doc in (json.loads(line) for line in (suite / task / "test.jsonl").open()):
            pairs += [(doc["context"], str(choice)) for choice in doc.get("choices", [doc.get("target")])]
    pairs += [("", "def main():"), ("x = 1   ", "+ 2"), ("import os\n" * 400, "import sys")]
    return [Instance("loglikelihood", doc={}, arguments=pair, idx=index) for index, pair in enumerate(pairs)]


def test_batched_scoring_gives_lm_evals_own_scores(tiny_checkpoint):
    """lmscale.evaluation.lm_eval_model.BatchedHFLM, which tokenizes and scores a batch at a time, against
    lm-eval's own HFLM on the same model and requests: the same log-likelihoods and greedy flags."""
    from lm_eval.models.huggingface import HFLM

    batched = eval_tasks.load_model(tiny_checkpoint["model"], batch_size=16, device="cpu")
    stock = HFLM(pretrained=batched.model, tokenizer=batched.tokenizer, batch_size=16, logits_cache=False)
    requests = requests_of(tiny_checkpoint["suite"], ["code_next_line", "code_swap_pairs", "doctest_addition"])
    ours, theirs = batched.loglikelihood(requests), stock.loglikelihood(requests)
    assert len(ours) == len(theirs) == len(requests) > 300
    assert [greedy for _, greedy in ours] == [greedy for _, greedy in theirs]
    assert [score for score, _ in ours] == pytest.approx([score for score, _ in theirs], rel=1e-5, abs=1e-5)
    assert batched.truncated == 1


def test_the_same_accuracy_batched_and_one_request_at_a_time(tiny_checkpoint):
    suite = tiny_checkpoint["suite"]
    specs = task_list.task_specs({"suite": "offline", "include": ["code_next_line", "code_swap_pairs",
                                                                    "doctest_comparison"]}, suite)
    accuracy = {}
    for batch_size in (1, 64):
        result = eval_tasks.evaluate_model(tiny_checkpoint["model"], specs, batch_size, "cpu", suite_dir=suite)
        assert result["failed"] == {}
        accuracy[batch_size] = {name: task["acc"] for name, task in result["tasks"].items()}
    assert accuracy[1] == accuracy[64] and len(accuracy[1]) == 3
