"""The token budget D = M x N in whole steps, the branch point of a wsd branch, and the replayable data order."""

from __future__ import annotations

import numpy as np
import pytest

from lmscale.training.budget import Budget, SequenceOrder, branch_point, check_enough_data, cooldown_steps

COUNTS = {"N": 10_000, "N_non_embedding": 4_000}


def test_budget_rounds_D_to_whole_steps():
    budget = Budget.plan(COUNTS, 20, batch_size=8, context=32, count_embeddings=True)
    assert budget.D_target == 200_000
    assert budget.steps == round(200_000 / 256) and budget.D == budget.steps * 256
    assert abs(budget.D - budget.D_target) <= 128
    # A run shorter than one step still trains one.
    assert Budget.plan(COUNTS, 0.001, batch_size=8, context=32, count_embeddings=True).steps == 1


def test_budget_counts_N_without_embeddings_when_asked():
    budget = Budget.plan(COUNTS, 20, batch_size=8, context=32, count_embeddings=False)
    assert (budget.N, budget.N_total, budget.N_non_embedding) == (4_000, 10_000, 4_000)
    assert budget.D_target == 80_000 and abs(budget.D - 80_000) <= 128


def test_repeating_data_is_refused_unless_allowed():
    budget = Budget.plan(COUNTS, 20, batch_size=8, context=32, count_embeddings=True)
    with pytest.raises(ValueError) as error:
        check_enough_data("stdlib/tiny_M20", budget, usable_tokens=150_000, repeat_data=False)
    message = str(error.value)
    assert "stdlib/tiny_M20" in message and f"{budget.D:,}" in message and "150,000" in message
    assert check_enough_data("stdlib/tiny_M20", budget, 150_000, repeat_data=True) == budget.D / 150_000
    assert check_enough_data("stdlib/tiny_M20", budget, 10**6, repeat_data=False) == budget.D / 10**6


def test_a_branch_cools_down_over_its_share_of_its_own_steps():
    assert (branch_point(100, 0.2), cooldown_steps(100, 0.2)) == (80, 20)
    assert cooldown_steps(10, 0.01) == 1 and branch_point(10, 0.01) == 9  # at least one step of cooldown
    assert cooldown_steps(3, 1.0) == 3 and branch_point(3, 1.0) == 0  # never more than the run


def test_data_order_is_a_function_of_the_step():
    stream = np.arange(1001, dtype=np.uint16)
    order = SequenceOrder(stream, context=10, seed=3)
    assert order.sequences == 100 and order.usable_tokens == 1000
    first = [order.batch(step, 8) for step in range(30)]
    replay = SequenceOrder(stream, context=10, seed=3)
    # Any step alone, in any order, gives the same batch as the uninterrupted walk.
    for step in (29, 4, 17, 0):
        np.testing.assert_array_equal(replay.batch(step, 8), first[step])
    # Windows hold context + 1 consecutive tokens, and one epoch visits every sequence once.
    assert all(np.all(np.diff(row) == 1) for batch in first for row in batch)
    epoch = np.concatenate([b[:, 0] for b in first])[:100] // 10
    assert sorted(epoch.tolist()) == list(range(100))
    assert not np.array_equal(SequenceOrder(stream, 10, seed=4).batch(0, 8), first[0])
    # A process's share of a batch is those rows of it, across an epoch's end too (step 12: positions 96-103).
    for step in (3, 12):
        np.testing.assert_array_equal(replay.batch(step, 8, slice(2, 6)), first[step][2:6])


def test_a_stream_shorter_than_one_sequence_is_refused():
    with pytest.raises(ValueError, match="train split has 10 tokens, fewer than one sequence of 33"):
        SequenceOrder(np.arange(10, dtype=np.uint16), context=32, seed=0)
