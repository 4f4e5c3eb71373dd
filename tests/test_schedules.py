"""Learning rates, and the schedule object of each job kind: its budget and warmup, its rate at known
steps, its fingerprint (recorded literals: a checkpoint written before must still be resumed), where it
resumes from, its record, and how a trunk and a branch finish and start. No model is built here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lmscale.jobs import BranchJob, Hyperparameters, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training.budget import Budget, branch_point, cooldown_steps
from lmscale.training.checkpoints import Source
from lmscale.training.distributed import Context
from lmscale.training.schedules import (
    BRANCH_ORIGIN,
    SCHEDULES,
    Branch,
    CosineRun,
    Trunk,
    cooldown_rate,
    learning_rate,
    schedule_of,
    stable_rate,
)
from lmscale.training.setup import Paths
from tests.workflow import REPO, validated_config

TINY = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 32, "context": 32, "tie_embeddings": True,
        "batch_size": 8, "lr": 0.01, "warmup": 5}
CONFIG = validated_config({"sizes": {"tiny": TINY}, "train": {"schedule": "wsd", "cooldown": 0.25}})
STREAM = {"tokens": 100_000, "tokenizer_sha256": "ab" * 32}  # a stream's identity, as plan() takes it
COUNTS = {"N": 10_000, "N_non_embedding": 4_000}


def budget_of(multiplier: float) -> Budget:
    """D = M x N in steps of 8 x 32 tokens, as plan() hands it to a schedule."""
    return Budget.plan(COUNTS, multiplier, 8, 32, True)


def schedules(multiplier: float = 4, multipliers=(1, 2, 4)) -> tuple[CosineRun, Trunk, Branch]:
    return (CosineRun.plan(TrainJob.from_config(CONFIG, "stdlib", "tiny", multiplier), budget_of, STREAM, None),
            Trunk.plan(TrunkJob.from_config(CONFIG, "stdlib", "tiny", multiplier), budget_of, STREAM,
                       TrunkOptions.from_config(CONFIG, list(multipliers))),
            Branch.plan(BranchJob.from_config(CONFIG, "stdlib", "tiny", multiplier), budget_of, STREAM, None))


# ---- the rates ------------------------------------------------------------------------------------


def test_cosine_warms_up_then_decays_to_the_floor():
    hp = Hyperparameters.resolve(validated_config({"train": {"lr": 3e-3, "lr_floor": 3e-5}})["train"])
    lrs = [learning_rate(step, 200, hp, warmup=20) for step in range(200)]
    assert lrs[0] == pytest.approx(3e-3 / 20) and lrs[19] == pytest.approx(3e-3)
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:]))
    assert lrs[-1] == pytest.approx(3e-5, rel=0.02)
    assert lrs[110] == pytest.approx((3e-3 + 3e-5) / 2)  # halfway through the decay: halfway down


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_warms_up_holds_the_stable_rate_then_cools_down_to_the_floor(shape):
    hp = Hyperparameters.resolve(validated_config({"train": {"lr": 1e-2, "lr_floor": 1e-4}})["train"])
    steps, warmup = 100, 10
    branch = branch_point(steps, 0.2)
    assert (branch, cooldown_steps(steps, 0.2)) == (80, 20)
    lrs = [cooldown_rate(step, steps, hp, warmup, branch, shape) for step in range(steps)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert lrs[:branch] == [stable_rate(step, hp, warmup) for step in range(branch)]  # the trunk's
    assert set(lrs[warmup:branch]) == {1e-2}
    cooldown = lrs[branch:]
    assert all(a > b for a, b in zip(cooldown, cooldown[1:])) and cooldown[-1] == pytest.approx(1e-4)
    halfway = 1e-4 + (1e-2 - 1e-4) * (0.5 if shape == "linear" else 1 - 0.5 ** 0.5)
    assert lrs[branch + 9] == pytest.approx(halfway)  # 10 of 20 cooldown steps done
    # A branch point inside the warmup: the cooldown starts from the rate the warmup had reached.
    early = [cooldown_rate(step, 10, hp, warmup, 6, shape) for step in range(10)]
    assert early[6] < stable_rate(6, hp, warmup) and early[-1] == pytest.approx(1e-4)


# ---- one schedule per job kind ----------------------------------------------------------------------


def test_each_job_kind_has_its_schedule_and_nothing_else_has_one():
    assert SCHEDULES == {TrainJob: CosineRun, TrunkJob: Trunk, BranchJob: Branch}
    assert schedule_of(BranchJob.from_config(CONFIG, "stdlib", "tiny", 4)) is Branch
    with pytest.raises(ValueError, match="no training schedule for a TrainOptions; train one of TrainJob, "
                                         "TrunkJob, BranchJob"):
        schedule_of(TrainOptions.from_config(CONFIG))


def test_each_schedule_plans_its_budget_warmup_and_rate():
    cosine, trunk, branch = schedules()
    steps = budget_of(4).steps
    point = branch_point(steps, 0.25)
    assert (steps, point) == (156, 117)
    # The cosine run and the branch: the same D; the trunk stops at the branch's point.
    assert cosine.budget == branch.budget == budget_of(4) and trunk.budget.steps == point == branch.branch
    assert trunk.budget.tokens_per_step == cosine.budget.tokens_per_step
    # A trunk leaves its state at every branch point of the grid's Ms up to its own.
    assert trunk.states == tuple(branch_point(budget_of(m).steps, 0.25) for m in (1, 2, 4)) == (29, 58, 117)
    assert [step for step in range(200) if trunk.keeps_state(step)] == [29, 58, 117]
    assert not any(cosine.keeps_state(step) or branch.keeps_state(step) for step in range(200))
    # Warmup: cosine, at most half the run; wsd, the trunk's first steps whatever the length.
    assert cosine.warmup == trunk.warmup == branch.warmup == 5
    short = CosineRun.plan(TrainJob.from_config(CONFIG, "stdlib", "tiny", 0.05), budget_of, STREAM, None)
    assert (short.budget.steps, short.warmup) == (2, 1)
    hp = cosine.job.hyperparameters
    for step in (0, 4, 5, 60, 155):
        assert cosine.lr(step) == learning_rate(step, steps, hp, 5)
        assert trunk.lr(step) == stable_rate(step, hp, 5)
        assert branch.lr(step) == cooldown_rate(step, steps, hp, 5, point, "1-sqrt")
    assert trunk.lr(0) == branch.lr(0) == pytest.approx(0.002) and trunk.lr(116) == branch.lr(116) == 0.01
    assert branch.lr(155) == pytest.approx(hp.lr_floor) and cosine.lr(155) == pytest.approx(hp.lr_floor, rel=0.05)
    # What a fresh attempt trains: a branch, its cooldown.
    assert (cosine.steps_to_train, trunk.steps_to_train, branch.steps_to_train) == (156, 117, 39)
    assert (cosine.run, trunk.run, branch.run) == ("stdlib/tiny_M4", "stdlib/tiny trunk", "stdlib/tiny_M4")


def test_a_trunk_needs_its_options_to_know_where_it_stops():
    with pytest.raises(ValueError, match="trunk stdlib/tiny: its options"):
        Trunk.plan(TrunkJob.from_config(CONFIG, "stdlib", "tiny", 4), budget_of, STREAM, None)
    assert Trunk.run_options(TrunkOptions.from_config(CONFIG, [4])) == TrainOptions.from_config(CONFIG)
    assert Branch.run_options(TrainOptions.from_config(CONFIG)) == TrainOptions.from_config(CONFIG)


def test_fingerprints_are_those_the_checkpoints_on_disk_carry():
    """Literals computed by lmscale.train.Plan before the schedules existed (a5170c2), for these very
    jobs and stream: checkpoints and trunk states written then are still resumed."""
    cosine, trunk, branch = schedules()
    assert cosine.fingerprint == "e709b3770ea4d2af"
    assert branch.fingerprint == "174335efc4f42304"
    assert trunk.fingerprint == branch.trunk_fingerprint == "a081918f9525a332"
    # A trunk trained for another largest M or cooldown walks the same states: the same fingerprint.
    other = Trunk.plan(TrunkJob.from_config(CONFIG, "stdlib", "tiny", 2), budget_of, STREAM,
                       TrunkOptions.from_config(validated_config({"sizes": {"tiny": TINY}, "train": {
                           "schedule": "wsd", "cooldown": 0.1}}), [2]))
    assert other.fingerprint == trunk.fingerprint and other.budget.steps != trunk.budget.steps
    # Another stream or floor: other runs (a trunk ignores the floor, which only its branches reach).
    assert CosineRun(cosine.job, cosine.budget, 5, {**STREAM, "tokens": 1}).fingerprint != cosine.fingerprint
    floor = validated_config({"sizes": {"tiny": TINY | {"lr_floor": 1e-3}}, "train": {"schedule": "wsd",
                                                                                    "cooldown": 0.25}})
    moved = Branch.plan(BranchJob.from_config(floor, "stdlib", "tiny", 4), budget_of, STREAM, None)
    assert moved.fingerprint != branch.fingerprint and moved.trunk_fingerprint == branch.trunk_fingerprint


def test_each_schedule_names_where_it_resumes_from(tmp_path):
    cosine, trunk, branch = schedules()
    run = Paths(tmp_path / "train.bin", tmp_path / "tokenizer.json", tmp_path / "model" / "run.json", tmp_path / "ckpt",
                tmp_path / "trunk")
    assert cosine.sources(run) == [Source(tmp_path / "ckpt", cosine.fingerprint, 156, False)]
    folder = tmp_path / "trunk"
    assert trunk.sources(Paths(run.tokens, None, tmp_path / "t.json", folder, folder)) == [
        Source(folder, trunk.fingerprint, 117, False), Source(folder / "states", trunk.fingerprint, 117, False)]
    assert branch.sources(run) == [Source(tmp_path / "ckpt", branch.fingerprint, 156, False),
                                   Source(folder / "states", trunk.fingerprint, 117, True)]


def test_each_schedule_summarises_itself_in_one_line():
    cosine, trunk, branch = schedules()
    assert cosine.summary() == "cosine: warmup over 5 steps to 0.01, cosine to 3e-05 at step 156"
    assert trunk.summary() == ("wsd trunk: warmup over 5 steps to the stable rate 0.01, to step 117 (the branch "
                               "point of M = 4); states at steps 29, 58, 117")
    assert branch.summary() == ("wsd branch: its trunk to step 117 (warmup 5 steps, stable rate 0.01), then a "
                                "1-sqrt cooldown to 3e-05 over 39 steps (25% of its D)")


def state(folder: Path, step: int, fingerprint: str, wall: float) -> None:
    """A trunk state as the loop leaves it: its header, and a checkpoint file (never opened here)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"step_{step:09d}.json").write_text(json.dumps({"step": step, "fingerprint": fingerprint, "format": 3,
                                                              "wall_seconds": wall}))
    (folder / f"step_{step:09d}.pt").write_bytes(b"")


def test_records_count_the_compute_each_job_spent(tmp_path):
    cosine, trunk, branch = schedules()
    budget = cosine.budget
    assert cosine.record(None, {}) == {"schedule": "cosine", "tokens_trained": budget.D, "tokens_spent": budget.D,
                                       "flops_spent": 6 * budget.N * budget.D}
    assert trunk.record(None, {}) == {"schedule": "wsd", "role": "trunk", "tokens_trained": 117 * 256,
                                      "flops_trained": 6 * budget.N * 117 * 256,
                                      "states": [{"step": s, "tokens": s * 256} for s in (29, 58, 117)]}
    # A branch continued the trunk's state at its point 117: it trained its 39 cooldown steps, and is
    # charged a share of the trunk: the stretches to 29, 58 and 117 split among 3, 2 and 1 branches.
    folder = tmp_path / "trunk"
    for step, wall in ((29, 3.0), (58, 5.0), (117, 11.0)):
        state(folder / "states", step, trunk.fingerprint, wall)
    state(folder / "states", 80, "another trunk", 1.0)  # not this trunk's: not counted
    paths = Paths(tmp_path / "train.bin", None, tmp_path / "model" / "run.json", tmp_path / "ckpt", folder)
    paths.checkpoints.mkdir()
    (paths.checkpoints / BRANCH_ORIGIN).write_text(json.dumps({"trunk_state_step": 117}))
    record = branch.record(paths, {"wall_seconds": 2.5, "compile_seconds": 0.5, "peak_flops_per_second": None})
    share = 29 / 3 + 29 / 2 + 59
    assert record["trunk_state_step"] == 117 and record["tokens_trained"] == 39 * 256
    assert record["trunk_share_tokens"] == round(share * 256)
    assert record["tokens_spent"] == 39 * 256 + round(share * 256)
    assert record["trunk_share_wall_seconds"] == pytest.approx(3 / 3 + 2 / 2 + 6)
    assert record["tokens_per_second"] == 39 * 256 / 2.0 and record["mfu"] is None
    assert (record["branch_step"], record["cooldown_steps"], record["cooldown"]) == (117, 39, 0.25)
    # A branch that trained from step 0 (no state then) is charged no trunk.
    (paths.checkpoints / BRANCH_ORIGIN).write_text(json.dumps({"trunk_state_step": None}))
    alone = branch.record(paths, {"wall_seconds": 2.5, "compile_seconds": 0.5, "peak_flops_per_second": None})
    assert alone["tokens_trained"] == budget.D and alone["trunk_share_tokens"] == 0


def test_a_branch_starts_on_its_trunks_state_and_a_trunk_finishes_with_its_record(tmp_path):
    _, trunk, branch = schedules()
    folder = tmp_path / "trunk"
    folder.mkdir()
    lines = [json.dumps({"step": step, "loss": 1.0}) for step in (50, 100, 150)]
    (folder / "train_log.jsonl").write_text("".join(line + "\n" for line in lines))
    paths = Paths(tmp_path / "train.bin", None, tmp_path / "model" / "run.json", tmp_path / "ckpt", folder)
    paths.checkpoints.mkdir()
    branch.fresh_start(paths)
    assert json.loads((paths.checkpoints / BRANCH_ORIGIN).read_text()) == {"trunk_state_step": None}
    state(paths.checkpoints, 120, branch.fingerprint, 1.0)  # an earlier attempt's: superseded by the state
    branch.adopt_trunk_state(paths, 117)
    assert json.loads((paths.checkpoints / BRANCH_ORIGIN).read_text()) == {"trunk_state_step": 117}
    assert [json.loads(line)["step"] for line in (paths.checkpoints / "train_log.jsonl").open()] == [50, 100]
    assert not list(paths.checkpoints.glob("step_*"))

    # A trunk's finish: its record, last; its periodic checkpoints dropped, its states kept.
    state(folder, 100, trunk.fingerprint, 1.0)
    state(folder / "states", 58, trunk.fingerprint, 1.0)
    state(folder / "states", 40, "other settings", 1.0)
    trunk_paths = Paths(paths.tokens, None, tmp_path / "s1_M4.json", folder, folder)
    trunk.finish(Context(), None, None, trunk_paths, {"steps": 117}, keep_checkpoints=False)
    assert json.loads((tmp_path / "s1_M4.json").read_text()) == {"steps": 117}
    assert not list(folder.glob("step_*")) and len(list((folder / "states").glob("step_*.pt"))) == 2
    # A fresh trunk keeps only the states of its own settings.
    trunk.fresh_start(trunk_paths)
    assert [p.name for p in (folder / "states").glob("step_*.pt")] == ["step_000000058.pt"]


def test_nothing_in_the_package_asks_which_kind_of_job_it_runs():
    """The schedule objects hold what differs; no isinstance test on a job kind or its options is left."""
    kinds = r"\b(TrainJob|TrunkJob|BranchJob|TrainOptions|TrunkOptions)\b"
    asked = [f"{path.relative_to(REPO)}:{number}" for path in (REPO / "src" / "lmscale").rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if "isinstance(" in line and re.search(kinds, line)]
    assert asked == []
