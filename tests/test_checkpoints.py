"""Checkpoint files: header first, the newest kept, the right one found among a run's sources, a stale
or broken one passed over; the random generators round-trip; the log is cut back to a resumed step."""

from __future__ import annotations

import json
import random

import numpy as np

from lmscale.training.checkpoints import (
    CHECKPOINT_FORMAT,
    Source,
    checkpoint_step,
    find_checkpoint,
    fingerprint,
    newest_checkpoint,
    remove_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
    truncate_log,
    trunk_states,
)


def save(folder, step: int, run: str = "run", keep: int | None = 2, value: float = 0.0):
    import torch

    return save_checkpoint(folder, {"step": step, "fingerprint": run, "format": CHECKPOINT_FORMAT,
                                    "wall_seconds": float(step), "model": {"w": torch.full((2,), value)}}, keep)


def steps(folder) -> list[int]:
    return sorted(checkpoint_step(path) for path in folder.glob("step_*.pt"))


def test_a_fingerprint_is_a_short_hash_of_the_settings_in_any_key_order():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert len(fingerprint({})) == 16 and int(fingerprint({}), 16) >= 0


def test_saving_keeps_the_newest_two_or_every_state(tmp_path):
    for step in (10, 20, 30):
        path = save(tmp_path / "run", step)
    assert steps(tmp_path / "run") == [20, 30] and path.name == "step_000000030.pt"
    header = json.loads(path.with_suffix(".json").read_text())
    assert header == {"step": 30, "fingerprint": "run", "format": CHECKPOINT_FORMAT, "wall_seconds": 30.0}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "step_000000020.json", "step_000000020.pt", "step_000000030.json", "step_000000030.pt"]
    for step in (10, 20, 30):
        save(tmp_path / "states", step, keep=None)  # a trunk keeps every branch point
    assert steps(tmp_path / "states") == [10, 20, 30]


def test_the_newest_checkpoint_of_this_run_is_found_and_others_are_never_opened(tmp_path, caplog):
    folder = tmp_path / "run"
    save(folder, 10, value=1.0)
    save(folder, 20, value=2.0)
    path, state = find_checkpoint(folder, "run")
    assert checkpoint_step(path) == 20 and state["model"]["w"].tolist() == [2.0, 2.0]
    assert checkpoint_step(find_checkpoint(folder, "run", max_step=15)[0]) == 10  # a trunk state past its point
    with caplog.at_level("WARNING"):
        assert find_checkpoint(folder, "other settings") is None
    assert "belongs to other settings (fingerprint run, expected other settings)" in caplog.text
    # A header that claims another layout, or a checkpoint that does not match its header.
    header = folder / "step_000000020.json"
    header.write_text(json.dumps({**json.loads(header.read_text()), "format": 2}))
    with caplog.at_level("WARNING"):
        assert find_checkpoint(folder, "run") is None
    assert "has layout 2, not 3" in caplog.text
    header.write_text(json.dumps({"step": 20, "fingerprint": "run", "format": CHECKPOINT_FORMAT}))
    (folder / "step_000000020.pt").write_bytes((folder / "step_000000010.pt").read_bytes())  # step 10's state
    with caplog.at_level("WARNING"):
        assert checkpoint_step(find_checkpoint(folder, "run")[0]) == 10
    assert "does not match its header; trying an older one" in caplog.text
    # A truncated checkpoint (a crashed disk): the one before.
    (folder / "step_000000020.pt").write_bytes(b"not a checkpoint")
    assert checkpoint_step(find_checkpoint(folder, "run")[0]) == 10


def test_the_newest_among_a_runs_sources_wins_and_says_whether_it_is_a_trunks(tmp_path):
    own, states = tmp_path / "own", tmp_path / "states"
    save(own, 30)
    for step in (20, 40, 60):
        save(states, step, "trunk", keep=None)
    sources = [Source(own, "run", 100, False), Source(states, "trunk", 50, True)]
    path, state, of_trunk = newest_checkpoint(sources)
    assert (checkpoint_step(path), of_trunk) == (40, True)
    save(own, 45)
    assert newest_checkpoint(sources)[1]["step"] == 45 and not newest_checkpoint(sources)[2]
    assert newest_checkpoint([Source(tmp_path / "missing", "run", None, False)]) is None


def test_removing_checkpoints_keeps_those_of_a_fingerprint_and_drops_lone_headers(tmp_path):
    for step, run in ((10, "a"), (20, "b"), (30, "a")):
        save(tmp_path, step, run, keep=None)
    (tmp_path / "step_000000040.json").write_text("{}")  # its checkpoint never landed
    remove_checkpoints(tmp_path, keep_fingerprint="a")
    assert steps(tmp_path) == [10, 30] and not (tmp_path / "step_000000040.json").exists()
    remove_checkpoints(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_trunk_states_are_read_from_their_headers(tmp_path):
    for step, run in ((10, "trunk"), (20, "other"), (30, "trunk")):
        save(tmp_path, step, run, keep=None)
    (tmp_path / "step_000000030.pt").unlink()  # a header whose state is gone: not a state
    assert trunk_states(tmp_path, "trunk") == [(10, 10.0)]
    assert trunk_states(tmp_path / "missing", "trunk") == []


def test_random_generators_round_trip_through_a_checkpoint_state():
    import torch

    state = rng_state()
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == drawn
    assert isinstance(state["numpy"]["state"]["key"], list)  # plain values: a weights-only load reads them


def test_a_resumed_log_loses_the_steps_that_run_again(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": step, "loss": 1.0}) + "\n" for step in (10, 20, 30)))
    truncate_log(log, 20)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [10, 20]
    truncate_log(tmp_path / "missing.jsonl", 20)  # nothing to cut
    assert not (tmp_path / "missing.jsonl").exists()

