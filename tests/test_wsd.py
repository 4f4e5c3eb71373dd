"""Warmup-stable-decay training (`train.schedule: wsd`): trunks and branches planned and trained
for real (the rates and schedule objects: test_schedules.py), what Snakemake reruns when the grid or the cooldown changes, and the paper's grid planned
under it.

- a branch has the D of the same run under cosine and starts its cooldown D x (1 - cooldown) into
  its trunk, whose data order it continues;
- a branch on its trunk's state ends where a branch that trains the stable steps itself ends, and
  a trunk killed mid-run resumes from its newest state to the same branches (1e-4), as does a
  trunk extended from a shorter one;
- `snakemake -n`: a larger M extends the trunk and trains one branch, a smaller M trains one branch,
  a changed cooldown reruns the branches and no trunk;
- `snakemake -n` on configs/paper.yaml under wsd: 18 trunks, 104 branches, the saved GPU hours.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from lmscale import config as study_config
from lmscale.jobs import BranchJob, TrainJob, TrainOptions, TrunkJob, TrunkOptions, resources
from lmscale.training.loop import train
from lmscale.training.setup import Paths, plan
from tests.test_loop import TINY, heldout_loss, lmscale_command, streams  # noqa: F401 (a fixture)
from tests.workflow import REPO, kill_once_checkpointed, planned, planned_and_log, snakemake, validated_config


def wsd(train_config: dict | None = None, size: dict = TINY) -> dict:
    """A study of the tiny size under wsd, checkpointed every 25 steps on the CPU."""
    return validated_config({"sizes": {"tiny": size}, "train": {
        "schedule": "wsd", "device": "cpu", "checkpoint_every": 25, "log_every": 5, **(train_config or {})}})


def train_trunk(root: Path, name: str, top: float, multipliers: list[float], config: dict | None = None) -> dict:
    """The tiny size's trunk to `top`'s branch point, in this process, in trunks/{name}."""
    config = config or wsd()
    folder = root / "trunks" / name
    return train(TrunkJob.from_config(config, "stdlib", "tiny", top), TrunkOptions.from_config(config, multipliers),
                 Paths(root / "tokens" / "train.bin", None, folder / f"M{top:g}.json", folder, folder),
                 config["train"]["threads"])


def train_branch(root: Path, trunk: str, multiplier: float, config: dict | None = None) -> tuple[dict, float]:
    """The tiny size's branch at `multiplier` on trunks/{trunk}, in this process: its record and held-out loss."""
    config = config or wsd()
    name = f"{trunk}_M{multiplier:g}"
    paths = Paths(root / "tokens" / "train.bin", root / "tokenizer" / "tokenizer.json",
                  root / "models" / name / "run.json", root / "checkpoints" / name, root / "trunks" / trunk)
    record = train(BranchJob.from_config(config, "stdlib", "tiny", multiplier), TrainOptions.from_config(config),
                   paths, config["train"]["threads"])
    return record, heldout_loss(root, paths.model_dir)


# ---- pure pieces -----------------------------------------------------------------------------------


def test_a_branch_has_its_cosine_runs_D_and_continues_its_trunks_data_order(streams):
    config = wsd({"cooldown": 0.25})
    tokens = streams / "tokens" / "train.bin"
    cosine = plan(TrainJob.from_config(config, "stdlib", "tiny", 4), tokens)
    branch = plan(BranchJob.from_config(config, "stdlib", "tiny", 4), tokens)
    point = branch.schedule.branch
    assert branch.budget == cosine.budget  # D = M x N in whole steps, exactly the cosine run's
    assert point == cosine.budget.steps - round(0.25 * cosine.budget.steps)
    assert branch.warmup == TINY["warmup"]  # the trunk's first steps, whatever the run's length
    # Whether to compile is weighed on the steps a job trains: a branch's cooldown, a cosine run's every step.
    assert (branch.schedule.steps_to_train, cosine.schedule.steps_to_train) == (branch.budget.steps - point,
                                                                                cosine.budget.steps)
    trunk = plan(TrunkJob.from_config(config, "stdlib", "tiny", 4), tokens, TrunkOptions.from_config(config, [1, 2, 4]))
    small = [plan(BranchJob.from_config(config, "stdlib", "tiny", m), tokens).schedule.branch for m in (1, 2)]
    assert trunk.budget.steps == point and trunk.schedule.states == (*small, point)
    assert trunk.schedule.fingerprint == branch.schedule.trunk_fingerprint
    for step in (0, small[0], point, branch.budget.steps - 1):  # the branch's tokens are the trunk's next
        assert (trunk.order.batch(step, 8) == branch.order.batch(step, 8)).all()
    # A trunk trained for another largest M or cooldown walks the same states: the same fingerprint.
    other = plan(TrunkJob.from_config(config, "stdlib", "tiny", 2), tokens, TrunkOptions.from_config(
        wsd({"cooldown": 0.1}), [2]))
    assert other.schedule.fingerprint == trunk.schedule.fingerprint and other.budget.steps > small[1]


def test_a_branch_waits_for_the_first_finished_trunk_that_reached_its_m(tmp_path):
    for name in ("s1_M80.json", "s1_M320.json", "s1_M160_seed1.json", "s10_M640.json", "s1_M40.json.tmp"):
        (tmp_path / name).touch()
    assert study_config.finished_trunks(tmp_path, "s1", None) == [80.0, 320.0]
    assert study_config.finished_trunks(tmp_path, "s1", 1) == [160.0]
    finished = [80.0, 320.0]
    # Nothing finished reached M: the grid's trunk; else the first that did, whatever the grid's largest M is now.
    assert study_config.trunk_to_wait_for([], 20, 320) == 320
    assert study_config.trunk_to_wait_for(finished, 20, 640) == 80
    assert study_config.trunk_to_wait_for(finished, 160, 640) == 320
    assert study_config.trunk_to_wait_for(finished, 640, 640) == 640
    assert study_config.trunk_to_wait_for(finished, 40, 160) == 80  # the grid shrank: no rerun


def test_wsd_costs_the_trunk_once_and_every_cooldown():
    size = {"width": 64, "depth": 2, "heads": 4, "mlp_width": 192, "context": 128, "batch_size": 8}
    config = validated_config({"sizes": {"s": size}, "train": {"schedule": "wsd"},
                               "grid": [{"sizes": ["s"], "multipliers": [10, 20, 40, 80, 160, 320]}],
                               "loss_fit_set": [{"size": "s", "M": 20}], "reference_size": "s"})
    settings = study_config.size_settings(config, "s")
    (cost,) = resources.schedule_costs(config)
    per_m = {m: resources.estimate(settings, m, 8192).flops for m in (10, 20, 40, 80, 160, 320)}
    assert cost.cosine_flops == pytest.approx(sum(per_m.values()))
    # 320 x 0.8 for the trunk and 0.2 x each M: 256 + 126 = 382 of 630 units (the count).
    assert cost.wsd_flops == pytest.approx(sum(per_m.values()) * 382 / 630, rel=0.01)
    assert (cost.runs, cost.trunks) == (6, 1) and cost.saved == pytest.approx(1 - 382 / 630, abs=0.01)
    assert "39.4% fewer" in resources.schedule_summary([cost]) or "39.3% fewer" in resources.schedule_summary([cost])


# ---- trunks and branches, trained ----------------------------------------------------------------


@pytest.mark.slow
def test_branches_continue_their_trunk_and_a_killed_trunk_ends_the_same(streams):
    """The reference: the trunk to M = 10 uninterrupted and its branches at M = 2 and 10. A branch with
    no trunk state trains the stable steps itself and ends where the branch on the state ends; a trunk
    killed mid-run resumes from its newest state, and one extended from a trunk to M = 2 goes on from
    that trunk's end: their branches end at the reference losses."""
    multipliers = [2.0, 10.0]
    points = [plan(BranchJob.from_config(wsd(), "stdlib", "tiny", m), streams / "tokens" / "train.bin").schedule.branch
              for m in multipliers]
    reference = train_trunk(streams, "reference", 10, multipliers)
    assert [state["step"] for state in reference["states"]] == points and reference["steps"] == points[1]
    losses = {m: train_branch(streams, "reference", m) for m in multipliers}
    record = losses[10][0]
    assert record["trunk_state_step"] == record["branch_step"] == reference["steps"]
    assert record["tokens_trained"] == record["cooldown_steps"] * record["tokens_per_step"]
    # The trunk's tokens are charged once over its branches: the stretch to M = 2's point split in two.
    assert losses[2][0]["trunk_share_tokens"] + record["trunk_share_tokens"] == reference["D"]
    steps = [json.loads(line)["step"] for line in (streams / "models" / "reference_M10" / "train_log.jsonl").open()]
    assert steps[0] == 5 and steps == sorted(set(steps)) and steps[-1] == record["steps"]
    assert points[1] in steps  # the trunk's lines to its end, then the branch's

    # No state at its branch point: the branch trains from step 0 and ends the same.
    alone, alone_loss = train_branch(streams, "none", 2)
    assert alone["trunk_state_step"] is None and alone["tokens_trained"] == alone["D"]
    assert abs(alone_loss - losses[2][1]) < 1e-4, (alone_loss, losses[2][1])

    # The trunk through the CLI, killed once it has checkpointed past step 100, then run again.
    config = wsd()
    folder = streams / "trunks" / "killed"
    command = lmscale_command() + [
        "trunk", "--job", TrunkJob.from_config(config, "stdlib", "tiny", 10).to_json(),
        "--options", TrunkOptions.from_config(config, multipliers).to_json(),
        "--tokens", str(streams / "tokens" / "train.bin"), "--trunk-dir", str(folder),
        "--out", str(folder / "M10.json"), "--threads", "1", "--gpus", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    kill_once_checkpointed(process, folder, 100, 300)
    assert process.returncode == -signal.SIGKILL and not (folder / "M10.json").exists()
    newest = max(int(p.stem.split("_")[1]) for p in [*folder.glob("step_*.pt"), *folder.glob("states/step_*.pt")])
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from checkpoint at step {newest} of {reference['steps']}" in rerun.stderr
    assert not list(folder.glob("step_*.pt"))  # the periodic checkpoints go; the states stay
    assert json.loads((folder / "M10.json").read_text())["fingerprint"] == reference["fingerprint"]

    # A trunk to M = 2, then the trunk to M = 10 goes on from its end state.
    short = train_trunk(streams, "extended", 2, multipliers)
    extended = train_trunk(streams, "extended", 10, multipliers)
    assert short["steps"] == extended["resumed_from_step"] == points[0]
    for trunk, m in [("killed", 2.0), ("killed", 10.0), ("extended", 10.0)]:
        _, loss = train_branch(streams, trunk, m)
        assert abs(loss - losses[m][1]) < 1e-4, (trunk, m, loss, losses[m][1])


# ---- what Snakemake reruns -----------------------------------------------------------------------


def rerun_study(workdir: Path, grid: list[float], **train_config) -> tuple[Path, list[str]]:
    """A config file of one tiny size under wsd at the Ms of `grid`, and the run.json of every run."""
    smoke = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config = {
        "study": "wsd", "datasets": {"stdlib": {"source": "stdlib", "max_bytes": 1_000_000}},
        "validation_sets": {"heldout": {"dataset": "stdlib", "tokens": 4096}}, "tokenizer": smoke["tokenizer"],
        "sizes": {"s1": smoke["sizes"]["s1"]}, "grid": [{"sizes": ["s1"], "multipliers": grid}],
        "train": {**smoke["train"], "schedule": "wsd", **train_config}, "valsets": ["heldout"],
        "threshold": 5, "reference_size": "s1", "loss_fit_set": [{"size": "s1", "M": 5}],
    }
    path = workdir / f"wsd_{len(list(workdir.glob('wsd_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, [f"results/wsd/models/stdlib/s1_M{m:g}/run.json" for m in grid]


def trains(workdir: Path, grid: list[float], **train_config) -> dict[str, list[str]]:
    """The trunk and branch jobs a dry run plans for the runs of `grid`: rule -> their M."""
    configfile, targets = rerun_study(workdir, grid, **train_config)
    jobs = planned(workdir, *targets, "--configfile", str(configfile))
    return {rule: sorted(job["wildcards"]["mult"] for job in jobs if job["rule"] == rule) for rule in ("trunk", "branch")}


@pytest.mark.slow
def test_snakemake_extends_the_trunk_trains_new_branches_and_reruns_branches_for_a_new_cooldown(tmp_path):
    workdir = tmp_path
    configfile, targets = rerun_study(workdir, [5, 10])
    snakemake(workdir, *targets, "--configfile", str(configfile))

    # A larger M: a trunk job to its branch point (the finished trunk stays done) and one branch.
    assert trains(workdir, [5, 10, 20]) == {"trunk": ["20"], "branch": ["20"]}
    # A smaller M: one branch, which trains the stable steps to its point itself.
    assert trains(workdir, [2.5, 5, 10]) == {"trunk": [], "branch": ["2.5"]}
    # Another cooldown share: every branch again, no trunk (its shape and lr_floor likewise: test_jobs).
    assert trains(workdir, [5, 10], cooldown=0.3) == {"trunk": [], "branch": ["10", "5"]}

    # The larger M's trunk job for real: it goes on from the old trunk's end, and once it is done
    # the finished branches still wait on the old trunk's record: only the new branch is left.
    results = workdir / "results" / "wsd"
    grown, grown_targets = rerun_study(workdir, [5, 10, 20])
    snakemake(workdir, "results/wsd/trunks/stdlib/s1_M20.json", "--configfile", str(grown))
    old_end = json.loads((results / "trunks" / "stdlib" / "s1_M10.json").read_text())["steps"]
    trunk = json.loads((results / "trunks" / "stdlib" / "s1_M20.json").read_text())
    assert trunk["resumed_from_step"] == old_end and trunk["steps"] > old_end
    assert f"resumed from checkpoint at step {old_end}" in (results / "logs" / "trunk" / "stdlib" / "s1_M20.log").read_text()
    assert trains(workdir, [5, 10, 20]) == {"trunk": [], "branch": ["20"]}


# ---- the paper's grid ------------------------------------------------------------------------------


@pytest.mark.slow
def test_paper_grid_under_wsd_plans_trunks_and_branches_offline_and_reports_the_saved_gpu_hours(tmp_path):
    paper = REPO / "configs" / "paper.yaml"
    args = ["--configfile", str(paper), "--config", "train={schedule: wsd}"]
    jobs, printed = planned_and_log(tmp_path, *args)
    trunks = [job for job in jobs if job["rule"] == "trunk"]
    branches = [job for job in jobs if job["rule"] == "branch"]
    assert "train" not in {job["rule"] for job in jobs}
    assert len(branches) == 104 and len(trunks) == 18  # six sizes on three datasets
    config = validated_config(yaml.safe_load(paper.read_text()) | {"train": {**yaml.safe_load(paper.read_text())[
        "train"], "schedule": "wsd"}})
    assert {(j["wildcards"]["dataset"], j["wildcards"]["size"], float(j["wildcards"]["mult"])) for j in trunks} == {
        (t.dataset, t.size, t.top) for t in study_config.trunks(config)}
    for job, part in [(job, "trunk") for job in trunks] + [(job, "cooldown") for job in branches]:
        promised = resources.train_job(config, job["wildcards"]["size"], job["wildcards"]["mult"], 1, part)
        shown = job["resources"]
        assert (int(shown["gpu"]), int(shown["mem_mb"]), int(shown["runtime"])) == (
            promised["gpu"], promised["mem_mb"], promised["runtime"]), (job["wildcards"], part)
    costs = resources.schedule_costs(config)
    saved = sum(c.cosine_hours for c in costs) - sum(c.wsd_hours for c in costs)
    line = next(line for line in printed.splitlines() if line.startswith("train.schedule wsd"))
    assert f"({saved:,.0f} saved)" in line and "GPU hours under wsd" in line and "18 trunks, 104 branches" in line
    print("\n" + line)
