"""What a run leaves: the train log's lines, the throughput fields of run.json, and the share of a
trunk charged to each branch."""

from __future__ import annotations

import json

import pytest

from lmscale.training import performance
from lmscale.training.budget import Budget
from lmscale.training.distributed import Context
from lmscale.training.outputs import TrainLog, throughput, trunk_share


def test_the_log_writes_one_line_per_interval_its_mean_loss_and_throughput(tmp_path):
    import torch

    path = tmp_path / "train_log.jsonl"
    path.write_text(json.dumps({"step": 0}) + "\n")  # a resumed run appends
    log = TrainLog(path, Context(), wall_before=10.0, tokens_per_step=256, flops_per_token=60.0, peak=1e6)
    written = [log.add(torch.tensor(loss), done % 2 == 0, done, 0.01 * done, torch.tensor(0.5))
               for done, loss in enumerate([4.0, 2.0, 3.0, 1.0], 1)]
    log.close()
    assert written == [False, True, False, True]
    lines = [json.loads(line) for line in path.read_text().splitlines()][1:]
    assert [line["step"] for line in lines] == [2, 4] and [line["loss"] for line in lines] == [3.0, 2.0]
    assert [line["lr"] for line in lines] == [0.02, 0.04] and lines[0]["grad_norm"] == 0.5
    assert [line["tokens"] for line in lines] == [512, 1024] and log.last == lines[1]
    assert 10.0 < lines[0]["wall_seconds"] <= lines[1]["wall_seconds"] <= log.wall_seconds()
    assert lines[0]["mfu"] == performance.mfu(lines[0]["tokens_per_second"] * 60.0, 1e6)
    # Without a known peak there is no MFU; on another rank, no file.
    quiet = TrainLog(tmp_path / "rank1.jsonl", Context(rank=1), 0.0, 256, 60.0, None)
    assert quiet.add(torch.tensor(1.0), True, 1, 0.01, torch.tensor(0.5)) and "mfu" not in quiet.last
    quiet.close()
    assert not (tmp_path / "rank1.jsonl").exists()


def test_throughput_counts_6_N_per_token_and_mfu_against_the_peak():
    budget = Budget.plan({"N": 10_000, "N_non_embedding": 4_000}, 20, 8, 32, False)
    assert throughput(budget, 1_000, 2.0, None) == {"tokens_per_second": 500.0, "flops_per_second": 6 * 4_000 * 500.0,
                                                    "mfu": None}
    assert throughput(budget, 1_000, 2.0, 1e9)["mfu"] == pytest.approx(6 * 10_000 * 500.0 / 1e9)


def test_each_stretch_of_a_trunk_is_shared_among_the_branches_past_it():
    states = [(10, 1.0), (20, 3.0), (40, 7.0)]
    shares = [trunk_share(states, start) for start in (10, 20, 40)]
    assert shares[0] == pytest.approx((10 / 3, 1 / 3))
    assert shares[1] == pytest.approx((10 / 3 + 10 / 2, 1 / 3 + 2 / 2))
    assert shares[2] == pytest.approx((10 / 3 + 10 / 2 + 20, 1 / 3 + 2 / 2 + 4))
    # Over every branch the trunk is counted once.
    assert sum(steps for steps, _ in shares) == pytest.approx(40)
    assert sum(seconds for _, seconds in shares) == pytest.approx(7.0)
    assert trunk_share(states, 0) == (0.0, 0.0) and trunk_share([], 50) == (0.0, 0.0)
