"""`lmscale plan` on a study: the `plan` block read into its job, the command's files from a law
given in the config (a synthetic one: nothing trains), and what no plan can give (a budget below the
cheapest valid set, a prior outside its region, a target or candidate the study lacks: issue #33)
ending the command in one line naming the key and the fix, before it writes anything."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import yaml

from lmscale import cli, jobs
from lmscale import config as study_config
from lmscale.planning import study
from tests.test_tables import imported_lab_tables
from tests.test_tables import study_config as lab_config
from tests.workflow import REPO, validated_config

# A law of the default study's shape (its fit, rounded): planning from it needs no trained model.
PRIOR = {"form": "gadre", "params": {"E": 0.5, "a": 13.0, "b": 24.0, "eta": 0.11}}


def default_study(**plan) -> dict:
    config = study_config.load_yaml(REPO / "config.yaml")
    return validated_config({**config, "plan": plan})


def test_the_plan_block_becomes_a_job_that_survives_json():
    job = jobs.PlanJob.from_config(default_study())
    assert jobs.PlanJob.from_json(job.to_json()) == job
    # The defaults: the study's first dataset and valset, its held-out runs as targets, its grid's
    # multipliers, train.seed and the replicate seeds, its fit set priced three times (two replicates).
    assert (job.dataset, job.valset, job.candidates.source) == ("stdlib", "stdlib_heldout", "grid")
    assert [t["name"] for t in job.targets] == ["s6_M20", "s1_M320"]
    assert job.candidates.multipliers == [10, 20, 40, 80, 160, 320] and job.candidates.seeds == [0, 1, 2]
    assert job.budget.fit_replicates == 3
    assert job.prior.law is None and job.budget.given is None
    given = jobs.PlanJob.from_config(default_study(
        prior=PRIOR, default_noise_sd=0.01, budget={"gpu_hours": 2}, targets=[{"N": 1e6, "M": 20}],
        candidates={"sizes": ["s1", "s2"], "multipliers": [20, 40], "seeds": [3]}))
    assert jobs.PlanJob.from_json(given.to_json()) == given
    assert given.targets == [{"name": "N1e+06_M20", "size": None, "N": 1e6, "M": 20.0}]
    assert (given.candidates.sizes, given.candidates.multipliers, given.candidates.seeds) == (
        ["s1", "s2"], [20.0, 40.0], [3])


def plan_files(tmp_path, job) -> list[str]:
    folder = tmp_path / "plan"
    return ["--job", job.to_json(), "--out", str(folder / "plan.csv"), "--fragment", str(folder / "fragment.yaml"),
            "--frontier", str(folder / "frontier.csv"), "--figure", str(folder / "plan.png")]


def test_the_command_plans_from_a_law_in_the_config_the_same_on_every_run(tmp_path):
    job = jobs.PlanJob.from_config(default_study(prior=PRIOR, default_noise_sd=0.01, frontier=[1, 2],
                                                 budget={"flops": 1e12}, candidates={"multipliers": [10, 20, 80, 320]}))
    written = []
    for _ in range(2):
        assert cli.main(["plan", *plan_files(tmp_path, job)]) == 0
        written.append([(tmp_path / "plan" / name).read_bytes() for name in ("plan.csv", "fragment.yaml",
                                                                             "frontier.csv")])
    assert written[0] == written[1]
    table = pd.read_csv(tmp_path / "plan" / "plan.csv")
    runs = table[table["kind"] == "run"]
    assert runs["cost"].sum() <= 1e12 and len(runs) >= 5  # the gadre law's 4 parameters and one more
    assert set(table.loc[table["kind"] == "target", "name"]) == {"s6_M20", "s1_M320"}
    assert not {"s6", "s1_M320"} & (set(runs["size"]) | set(runs["name"]))  # never a target or a held-out run
    fragment = yaml.safe_load((tmp_path / "plan" / "fragment.yaml").read_text())
    assert {(p["size"], p["M"]) for p in fragment["loss_fit_set"]} == set(zip(runs["size"], runs["M"]))
    assert (tmp_path / "plan" / "plan.png").stat().st_size > 10_000


def refusal(tmp_path, caplog, job, *inputs: str) -> str:
    """The one line the command ends in when it refuses `job`, having written none of its files."""
    with caplog.at_level(logging.ERROR, logger="lmscale"):
        assert cli.main(["plan", *plan_files(tmp_path, job)[:2], *inputs, *plan_files(tmp_path, job)[2:]]) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert not (tmp_path / "plan").exists() or list((tmp_path / "plan").iterdir()) == []  # no plan.csv, nothing
    return errors[0]


def test_a_budget_too_small_ends_the_command_in_one_line_naming_the_cheapest_set_that_works(tmp_path, caplog):
    job = jobs.PlanJob.from_config(default_study(prior=PRIOR, default_noise_sd=0.01, budget={"flops": 1e6}))
    message = refusal(tmp_path, caplog, job)
    head = ("plan.budget = {flops: 1e6} is below the cheapest set that meets plan.fit_needs (5 runs over 2 sizes and "
            "2 multipliers): ")
    tail = " FLOPs; raise the budget or lower plan.fit_needs"
    assert message.startswith(head) and message.endswith(tail), message
    names, least = message[len(head):-len(tail)].split(" at ")
    candidates = study.candidates_of(job, None, None, study.target_runs(job, None), "flops")
    cheapest = candidates.nsmallest(5, "cost")  # here two sizes and four multipliers: a valid fit set
    assert set(names.split(", ")) == {f"{s}_M{m:g}" for s, m in zip(cheapest["size"], cheapest["M"])}
    assert float(least) == pytest.approx(cheapest["cost"].sum(), rel=1e-3)


# Issue #33: what the plan block asks that no plan can give ends the command in one line naming the
# key and the fix, before it writes anything (the Snakefile's checks refuse the same when they can:
# tests/test_checks.py). Each: the plan block, then the whole line.
JOB_REFUSALS = {
    "an infinite budget": (
        {"prior": PRIOR, "default_noise_sd": 0.01, "budget": {"flops": float("inf")}},
        "plan.budget = {flops: inf} is not a finite amount above 0; give what the plan may spend in FLOPs, or leave "
        "plan.budget out for the FLOPs of the study's loss fit set"),
    "a prior outside its region": (
        {"prior": {"form": "gadre", "params": {"E": 1.84, "a": 212, "b": 367, "eta": -0.136}}, "default_noise_sd": 0.01},
        "plan.prior: params eta = -0.136, not > 0: outside the gadre law's region (E >= 0, a >= 0, b >= 0, eta > 0); "
        "give parameters inside it, such as those of a law fitted to a testbed"),
    "an infinite noise": (
        {"prior": PRIOR, "default_noise_sd": float("inf")},
        "plan.default_noise_sd = inf is not a finite number above 0; give one run's loss sd in log units (e.g. 0.01 "
        "for 1%)"),
    "a multiplier below one step": (
        {"prior": PRIOR, "default_noise_sd": 0.01, "candidates": {"multipliers": [0.001, 20, 40]}},
        "plan.candidates.multipliers[0] = 0.001 is less than one training step of s1: D = M x N = 7 tokens, where a "
        "step is 128 (batch_size x context), and training would take a whole step (M = 0.0189); give multipliers of "
        "at least 0.0189, or drop it"),
    "too few candidates": (
        {"prior": PRIOR, "default_noise_sd": 0.01, "candidates": {"multipliers": [20]}},
        "plan.fit_needs asks for 5 runs over 2 sizes and 2 multipliers, but the 5 candidate runs (s1_M20, s2_M20, "
        "s3_M20, s4_M20, s5_M20) hold only 1 multiplier; add candidate runs (plan.candidates.sizes, "
        "plan.candidates.multipliers) or lower plan.fit_needs"),
    "a target named like a run it is not": (
        {"prior": PRIOR, "default_noise_sd": 0.01, "targets": [{"name": "s1_M20", "size": "s6", "M": 40}]},
        "plan.targets[0].name = 's1_M20' names the run s1 at M = 20, but the target is {size: s6, M: 40}; plan.csv "
        "names each run it chooses so: give the target a name of its own, or leave the name out"),
    "two targets of one name": (
        {"prior": PRIOR, "default_noise_sd": 0.01,
         "targets": [{"name": "big", "size": "s6", "M": 20}, {"name": "big", "size": "s6", "M": 40}]},
        "plan.targets[1].name = 'big' is taken by plan.targets[0]: each target is a row of plan.csv; give it a name "
        "of its own"),
}


@pytest.mark.parametrize("probe", JOB_REFUSALS)
def test_what_no_plan_can_give_ends_the_command_in_one_line_before_it_writes(tmp_path, caplog, probe):
    block, expected = JOB_REFUSALS[probe]
    assert refusal(tmp_path, caplog, jobs.PlanJob.from_config(default_study(**block))) == expected


def imported_study(tmp_path, **plan_block) -> tuple[jobs.PlanJob, str]:
    """A study of a lab's tables (tests/test_tables.py) planned from a law in its config, and its
    loss table as the import writes it."""
    loss, _ = imported_lab_tables(tmp_path)
    table = tmp_path / "loss_table.csv"
    loss.to_csv(table, index=False)
    config = validated_config(lab_config(tmp_path / "testbed") | {
        "plan": {"prior": PRIOR, "default_noise_sd": 0.01, **plan_block}})
    return jobs.PlanJob.from_config(config), str(table)


IMPORTED_REFUSALS = {
    "a candidate size the testbed lacks": (
        {"candidates": {"sizes": ["s1", "s9"]}},
        "plan.candidates.sizes[1] = 's9' is not a size of the loss table's runs on web/val (its sizes: s1, s2, s3, "
        "s4, s5); name one of them, or leave plan.candidates.sizes out for every size smaller than the largest target"),
    "a candidate multiplier the testbed lacks": (
        {"candidates": {"multipliers": [20, 30]}},
        "plan.candidates.multipliers[1] = 30 is not a multiplier of the loss table's runs on web/val (its "
        "multipliers: 10, 20, 40, 80); name one of them, or leave plan.candidates.multipliers out for every one"),
    "a target size the testbed lacks": (
        {"targets": [{"size": "s9", "M": 20}]},
        "plan.targets[0].size = 's9' is neither under `sizes` nor a size of the loss table's runs (known: s1, s2, s3, "
        "s4, s5); name one of them, or give the target by its N"),
    "a target named like a run of the testbed": (
        {"targets": [{"name": "s1_M20", "N": 7.0e10, "M": 20}]},
        "plan.targets[0].name = 's1_M20' names the run s1 at M = 20, but the target is {N: 7e10, M: 20}; plan.csv "
        "names each run it chooses so: give the target a name of its own, or leave the name out"),
}


@pytest.mark.parametrize("probe", IMPORTED_REFUSALS)
def test_an_imported_study_is_refused_what_its_testbed_lacks_in_one_line(tmp_path, caplog, probe):
    block, expected = IMPORTED_REFUSALS[probe]
    job, table = imported_study(tmp_path, **block)
    assert refusal(tmp_path, caplog, job, "--loss-table", table) == expected


def test_a_target_that_is_the_run_it_is_named_after_plans(tmp_path):
    """{name: s1_M40, size: s1, M: 40} is that run (never a candidate), not a second row of its name."""
    job = jobs.PlanJob.from_config(default_study(prior=PRIOR, default_noise_sd=0.01, frontier=[1], targets=[
        {"name": "s1_M40", "size": "s1", "M": 40}, {"size": "s6", "M": 20}]))
    assert cli.main(["plan", *plan_files(tmp_path, job)]) == 0
    table = pd.read_csv(tmp_path / "plan" / "plan.csv")
    assert table["name"].is_unique and "s1_M40" in set(table.loc[table["kind"] == "target", "name"])
