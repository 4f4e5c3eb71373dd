"""`lmscale plan` on a study: the `plan` block read into its job, the command's files from a law
given in the config (a synthetic one: nothing trains), and a budget too small ending in one line."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import yaml

from lmscale import cli, jobs
from lmscale import config as study_config
from lmscale.planning import plan
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


def test_a_budget_too_small_ends_the_command_in_one_line_naming_the_smallest_that_works(tmp_path, caplog):
    job = jobs.PlanJob.from_config(default_study(prior=PRIOR, default_noise_sd=0.01, budget={"flops": 1e6}))
    with caplog.at_level(logging.ERROR, logger="lmscale"):
        assert cli.main(["plan", *plan_files(tmp_path, job)]) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith("a budget of 1e+06 buys no valid fit set") and "the smallest budget that works is" \
        in errors[0]
    least = float(errors[0].rsplit(" ", 1)[1])
    candidates = plan.candidates_of(job, None, None, plan.target_runs(job, None), "flops")
    assert least == pytest.approx(candidates["cost"].nsmallest(5).sum(), rel=1e-3)  # the five cheapest runs
