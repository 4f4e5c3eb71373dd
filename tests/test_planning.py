"""The planner: its solver finds optima known by hand, a budget too small says what would do,
a plan is the same on every run, its expected width is what a fit of the planned runs gives
where the law holds; and, on the paper's testbed, how a plan fares against the paper's fit set
and random sets of the same budget (docs/planning.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from lmscale import config as lmconfig
from lmscale.figures import plan_grid
from lmscale.io import importers
from lmscale.laws import fitting, forms, uncertainty
from lmscale.planning import design, priors, retrospective, solver
from lmscale.planning.solver import Extreme, Problem
from tests.conftest import REPO, shared_testbed

LIMITS = design.SolverLimits(tolerance=1e-6, max_solves=100, seconds=60)
GADRE = {"E": 1.84, "a": 212.0, "b": 367.0, "eta": 0.136}


# ---------------------------------------------------------------- a problem solvable by hand


def line_problem(cost, budget, extremes=()) -> Problem:
    """log L = theta_0 + theta_1 x measured at x = 0, 1, 2, 3 (noise variance v), predicted at x = 5.

    Two runs a < b predict x = 5 with variance v ((5 - b)^2 + (5 - a)^2) / (b - a)^2: 29/9 v for
    (0, 3), 5 v for (1, 3), 34/4 v for (0, 2), 13 v for (2, 3), 25 v for (1, 2), 41 v for (0, 1).
    """
    x = np.arange(4.0)
    return Problem(
        gradients=np.column_stack([np.ones(4), x]), target_gradients=np.array([[1.0, 5.0]]), variance=1e-4,
        shared=np.zeros((4, 0)),
        cost=np.asarray(cost, float), budget=budget, sizes=np.array(["a", "b", "c", "d"]),
        multipliers=x, scale=0.0, extremes=tuple(extremes), needs=(2, 1, 1, 4),
    )


def test_two_runs_for_an_extrapolation_go_to_the_ends_of_the_range():
    solution = solver.solve(line_problem([1, 1, 1, 1], 2), 1e-9, 50, 60)
    assert solution.status == "Optimal"
    assert solution.chosen.tolist() == [True, False, False, True]
    assert solution.objective == pytest.approx(np.sqrt(29 / 9 * 1e-4), rel=1e-6)
    assert solution.bound == pytest.approx(solution.objective, rel=1e-6)


def test_a_budget_that_cannot_buy_the_far_end_takes_the_next_best_pair():
    # x = 3 costs 2: (0, 3) costs 3 > 2, and of the pairs within 2, (0, 2) predicts best.
    solution = solver.solve(line_problem([1, 1, 1, 2], 2), 1e-9, 50, 60)
    assert solution.chosen.tolist() == [True, False, True, False]
    assert solution.objective == pytest.approx(np.sqrt(34 / 4 * 1e-4), rel=1e-6)


@pytest.mark.parametrize("extra_variance,expected",
                         [(1.0, [True, False, False, True]), (2.0, [False, True, False, True])])
def test_the_model_error_of_a_far_run_can_change_the_choice(extra_variance, expected):
    """A model error of variance e v when the smallest chosen x is 0: (0, 3) costs 29/9 + e, (1, 3)
    costs 5; the choice flips between e = 1 (4.2 < 5) and e = 2 (5.2 > 5)."""
    smallest_x = Extreme("x_below", levels=np.arange(4.0), level_of_run=np.arange(4),
                         terms=np.array([[np.sqrt(extra_variance * 1e-4), 0.0, 0.0, 0.0]]), largest=False)
    solution = solver.solve(line_problem([1, 1, 1, 1], 2, [smallest_x]), 1e-9, 50, 60)
    assert solution.chosen.tolist() == expected
    best = min(29 / 9 + extra_variance, 5.0)
    assert solution.objective == pytest.approx(np.sqrt(best * 1e-4), rel=1e-6)


def shared_problem(shared_variance, budget=2.0, x=(0.0, 0.0, 3.0, 3.0), target=(1.0, 5.0)) -> Problem:
    """Four candidates, two of size a and two of size b, at `x`; the runs of one size share a
    constant miss of variance `shared_variance` (one factor a size) beside their own of 1e-4."""
    gradients = np.column_stack([np.ones(4), np.asarray(x)])[:, :len(target)]
    shared = np.sqrt(shared_variance) * np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    return Problem(
        gradients=gradients, target_gradients=np.array([target]), variance=1e-4, shared=shared,
        cost=np.ones(4), budget=budget, sizes=np.array(["a", "a", "b", "b"]), multipliers=np.arange(4.0),
        scale=0.0, extremes=(), needs=(2, 1, 1, 2),
    )


def test_runs_of_one_size_that_share_a_miss_inform_the_law_less_than_runs_of_two_sizes():
    """A constant law (log L = theta): two runs of one size know it to tau^2 + v / 2, one run each
    of two sizes to (tau^2 + v) / 2, which the plan takes once the shared miss tau^2 is large."""
    v, tau2 = 1e-4, 4e-4
    posed = shared_problem(tau2, target=(1.0,))
    same, apart = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert solver.law_sd(posed, same.astype(float))[0][0] ** 2 == pytest.approx(tau2 + v / 2, rel=1e-6)
    assert solver.law_sd(posed, apart.astype(float))[0][0] ** 2 == pytest.approx((tau2 + v) / 2, rel=1e-6)
    solution = solver.solve(posed, 1e-9, 50, 60)
    assert solution.chosen.sum() == 2 and len(set(posed.sizes[solution.chosen])) == 2
    assert solution.objective == pytest.approx(np.sqrt((tau2 + v) / 2), rel=1e-6)


@pytest.mark.parametrize("length", [np.inf, 0.7])
@pytest.mark.parametrize("chosen", [[True, True, True, False], [True, True, True, True], [True, False, True, False]])
def test_the_law_variance_with_a_shared_miss_is_the_generalised_least_squares_one(chosen, length):
    """s_t^2 of the augmented information is c' (G' Sigma^-1 G)^-1 c with Sigma = v I + tau^2 K,
    K = exp(-(log M_i - log M_j)^2 / (2 length^2)) within a size, computed directly; with one run
    a size it is the independent runs' with noise v + tau^2."""
    v, tau = 1e-4, np.sqrt(3e-4)
    table = pd.DataFrame({"size": ["a", "a", "b", "b"], "M": [10.0, 20.0, 20.0, 80.0]})
    shared = priors.Prior("gadre", GADRE, 0.02, 0.0, 0.0, tau, length, "test", None, (), ())
    loadings = priors.shared_loadings(shared, table)
    posed = replace(shared_problem(0.0, x=(0.0, 1.0, 2.0, 3.0)), shared=loadings)
    chosen = np.array(chosen)
    x, same = np.log(table["M"].to_numpy())[chosen], (table["size"].to_numpy()[:, None] == table["size"].to_numpy())
    covariance = v * np.eye(chosen.sum()) + tau**2 * same[np.ix_(chosen, chosen)] * priors.kernel(x, length)
    g, c = posed.gradients[chosen], posed.target_gradients[0]
    direct = c @ np.linalg.solve(g.T @ np.linalg.solve(covariance, g), c)
    assert solver.law_sd(posed, chosen.astype(float))[0][0] ** 2 == pytest.approx(direct, rel=1e-6)
    if len(set(posed.sizes[chosen])) == chosen.sum():
        assert direct == pytest.approx(c @ np.linalg.solve(g.T @ g, c) * (v + tau**2), rel=1e-9)


def drawn_residuals(own, shared, length, sizes, seed):
    """Residuals of runs at M = 10 to 640 (seven a size) drawn from the shared-miss model."""
    x = np.tile(np.log(10.0 * 2.0 ** np.arange(7)), sizes)
    labels = np.repeat([f"s{i}" for i in range(sizes)], 7)
    same = labels[:, None] == labels[None, :]
    covariance = own * np.eye(len(x)) + shared * same * priors.kernel(x, length)
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(x)), covariance), labels, x


def test_the_shared_miss_is_found_where_it_was_drawn_and_not_where_none_was():
    """Residuals drawn from the model (own 0.5%, shared 1%, length 1 in log M; 30 sizes) give
    back its parameters; drawn independently, no share worth the name; two sizes are too few."""
    residuals, sizes, x = drawn_residuals(0.005**2, 0.01**2, 1.0, 30, 0)
    own, shared, length = priors.shared_miss(residuals, sizes, x)
    assert np.sqrt([own, shared]) == pytest.approx([0.005, 0.01], rel=0.15)
    assert length == pytest.approx(1.0, rel=0.25)
    independent, sizes, x = drawn_residuals(0.01**2, 0.0, 1.0, 30, 1)
    own, shared, _ = priors.shared_miss(independent, sizes, x)
    assert shared / (own + shared) < 0.05
    assert priors.shared_miss(residuals[:14], sizes[:14], x[:14]) is None


# ---------------------------------------------------------------- a small study


def candidates() -> pd.DataFrame:
    """Three sizes x four multipliers, each costing its compute."""
    N, M = np.repeat([1e7, 2e7, 4e7], 4), np.tile([10.0, 20.0, 40.0, 80.0], 3)
    sizes = np.repeat(["s1", "s2", "s3"], 4)
    return pd.DataFrame({"size": sizes, "N": N, "M": M, "D": M * N, "cost": 6 * N * M * N})


def prior(**model_error) -> priors.Prior:
    rows = candidates().iloc[[1, 5, 9, 3]]  # the prior's fit set: each size at M = 20, s1 at M = 80
    law = {"form": "gadre", "params": GADRE, "noise": {"sd": [0.005] * 4, "source": "residuals"},
           "fit_set": [{"N": n, "D": d} for n, d in zip(rows["N"], rows["D"])]}
    error = {"scale": 0.004, "slopes": {d: 0.0 for d in uncertainty.LOSS_DIRECTIONS},
             "seen": {d: 1.0 for d in uncertainty.LOSS_DIRECTIONS}, "residuals": 30, "floor": 0.0,
             "powers": {d: 1.0 for d in uncertainty.LOSS_DIRECTIONS}, **model_error}
    return priors.prior_from_law(law, error, None, None)


def test_the_prior_takes_the_shared_part_of_a_runs_noise_from_its_backtest():
    """The prior law's backtest residuals drawn with a shared miss (own 0.2%, shared 1%): most of a
    run's noise (0.5%) is shared, its total unchanged, leaving the run the noise its fit points had
    (here 0.1%, then 0.4%: 0.3% shared); from two sizes, or no backtest, none is."""
    residuals, sizes, x = drawn_residuals(0.002**2, 0.01**2, 1.0, 4, 2)
    table = pd.DataFrame({"law": "loss", "step": 0, "residual": residuals, "size": sizes, "M": np.exp(x),
                          "N": 1e7, "D": 1e7 * np.exp(x)})
    quiet = replace(prior(), points_sd=0.001)
    known = priors.with_shared_miss(quiet, table)
    assert known.noise_sd == quiet.noise_sd == 0.005
    assert 0.5 < known.shared_sd**2 / known.noise_sd**2 <= 1 - 0.2**2 and np.isfinite(known.shared_length)
    assert priors.with_shared_miss(replace(prior(), points_sd=0.004), table).shared_sd == pytest.approx(0.003)
    assert priors.with_shared_miss(quiet, table.iloc[:14]).shared_sd == 0.0
    assert priors.with_shared_miss(quiet, None).shared_sd == 0.0


TARGETS = [{"name": "big", "N": 4e8, "M": 20.0}, {"name": "overtrained", "N": 1e8, "M": 160.0}]
NEEDS = design.FitNeeds(runs=5, sizes=2, multipliers=2, per_size=4)


def valid_subsets(table: pd.DataFrame, needs: design.FitNeeds):
    """Every subset of the candidates that meets what a fit needs, as a mask (brute force)."""
    sizes, multipliers = pd.factorize(table["size"])[0], pd.factorize(table["M"])[0]
    for bits in range(1 << len(table)):
        mask = np.array([(bits >> i) & 1 for i in range(len(table))], bool)
        if (mask.sum() >= needs.runs and len(set(sizes[mask])) >= needs.sizes
                and len(set(multipliers[mask])) >= needs.multipliers
                and np.bincount(sizes[mask]).max() <= needs.per_size):
            yield mask


def smallest_valid_cost(table: pd.DataFrame, needs: design.FitNeeds) -> float:
    cost = table["cost"].to_numpy(float)
    return min(cost[mask].sum() for mask in valid_subsets(table, needs))


def test_too_small_a_budget_fails_naming_the_smallest_that_works():
    table = candidates()
    least = smallest_valid_cost(table, NEEDS)
    with pytest.raises(priors.PlanError) as failure:
        design.plan(table, prior(), TARGETS, 0.99 * least, NEEDS, [0], LIMITS)
    message = str(failure.value)
    assert "\n" not in message
    assert f"the smallest budget that works is {least:.4g}" in message
    named = table.assign(name=design.run_names(table)).set_index("name").loc[failure.value.runs]
    assert named["cost"].sum() == pytest.approx(least)  # the message names the cheapest valid set
    planned = design.plan(table, prior(), TARGETS, least, NEEDS, [0], LIMITS)
    assert planned.cost == pytest.approx(least)
    # Before any law is known (when the workflow is planned) the same least: a fit's needs ask nothing of the law.
    assert design.cheapest_without_law(table, NEEDS, 60)[0] == pytest.approx(least)


def test_candidates_too_few_for_a_fit_are_named_in_one_line_with_those_where_the_law_misses():
    """Of the runs at M = 10 and 20, the law misses those at 10 by more than a run's noise: the three
    left cannot give 5 runs over 2 multipliers, and the line says so, and of the three left out."""
    fast = prior(slopes={"M_below": 0.05, "M_above": 0.0, "C_above": 0.0})
    table = candidates()[lambda t: t["M"] <= 20].reset_index(drop=True)
    with pytest.raises(priors.PlanError) as failure:
        design.plan(table, fast, TARGETS, 1e30, NEEDS, [0], LIMITS)
    assert str(failure.value) == (
        "plan.fit_needs asks for 5 runs over 2 sizes and 2 multipliers, but the 3 candidate runs (s1_M20, s2_M20, "
        "s3_M20; 3 more lie where the prior law misses by more than a run's noise) hold only 3 runs and 1 multiplier; "
        "add candidate runs (plan.candidates.sizes, plan.candidates.multipliers) or lower plan.fit_needs")


def shared_prior() -> priors.Prior:
    """The small study's prior with most of a run's noise shared along M within a size."""
    return replace(prior(), shared_sd=0.004, shared_length=1.0)


def test_the_plan_is_the_same_on_every_run():
    """Twice here, and once in a fresh interpreter, with a miss the runs of one size share."""
    table = candidates()
    budget = 3 * smallest_valid_cost(table, NEEDS)
    first, second = (design.plan(table, shared_prior(), TARGETS, budget, NEEDS, [0], LIMITS) for _ in range(2))
    pd.testing.assert_frame_equal(design.plan_table(first), design.plan_table(second))
    script = ("import json; from tests.test_planning import *; t = candidates(); "
              f"p = design.plan(t, shared_prior(), TARGETS, {budget!r}, NEEDS, [0], LIMITS); "
              "print(json.dumps([design.config_fragment(p), design.plan_table(p).to_csv()]))")
    fresh = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(fresh.stdout) == [design.config_fragment(first), design.plan_table(first).to_csv()]


def test_the_plan_spends_within_the_budget_and_meets_what_a_fit_needs():
    table = candidates()
    budget = 3 * smallest_valid_cost(table, NEEDS)
    planned = design.plan(table, prior(), TARGETS, budget, NEEDS, [0], LIMITS)
    assert planned.cost <= budget
    assert len(planned.runs) >= NEEDS.runs and planned.runs["size"].nunique() >= NEEDS.sizes
    assert planned.runs["M"].nunique() >= NEEDS.multipliers
    assert planned.solution.status == "Optimal"
    assert planned.solution.bound >= planned.solution.objective * (1 - LIMITS.tolerance)
    # No valid set within the budget promises less (every subset of the 12 candidates).
    posed = design.problem(table, prior(), design.target_table(TARGETS), budget, NEEDS, 1)
    cost = table["cost"].to_numpy(float)
    promised = [np.sum(solver.expected_sd(posed, mask)) for mask in valid_subsets(table, NEEDS)
                if cost[mask].sum() <= budget]
    assert min(promised) == pytest.approx(planned.solution.objective, rel=1e-6)


def test_the_config_fragment_reads_back_as_the_plan():
    table = candidates()
    planned = design.plan(table, prior(), TARGETS, 3 * smallest_valid_cost(table, NEEDS), NEEDS, [0, 1, 2], LIMITS)
    fragment = yaml.safe_load(design.config_fragment(planned))
    assert {(p["size"], p["M"]) for p in fragment["loss_fit_set"]} == set(zip(planned.runs["size"], planned.runs["M"]))
    assert {(s, m) for block in fragment["grid"] for s in block["sizes"] for m in block["multipliers"]} == \
        set(zip(planned.runs["size"], planned.runs["M"]))
    assert fragment["replicate_seeds"] == []  # the prior knows no seed-to-seed spread


def test_replicates_are_planned_when_they_average_out_seed_noise():
    """With the noise all seed-to-seed, a run trained three times is worth three runs."""
    seeded = prior()
    seeded = replace(seeded, noise_sd=0.02, seed_sd=0.02, noise_source="replicates")
    table = candidates()[lambda t: t["size"] != "s3"]  # too few candidates to spend the budget without replicates
    planned = design.plan(table, seeded, TARGETS, 3 * table["cost"].sum(), NEEDS, [0, 1, 2], LIMITS)
    assert planned.replicate_seeds == [1, 2]
    assert planned.cost == pytest.approx(3 * planned.runs["cost"].sum())


def test_runs_where_the_law_misses_are_not_chosen_from():
    """A model error growing fast below the prior's smallest M (20): the runs at M = 10 miss by
    more than a run's noise and are left out; with no growth every candidate is eligible."""
    fast = prior(slopes={"M_below": 0.05, "M_above": 0.0, "C_above": 0.0})
    assert priors.eligible(fast, candidates()).tolist() == [m != 10 for m in candidates()["M"]]
    assert priors.eligible(prior(), candidates()).all()
    planned = design.plan(candidates(), fast, TARGETS, 1e18, NEEDS, [0], LIMITS)
    assert (planned.runs["M"] > 10).all()


def test_the_frontier_narrows_as_the_budget_grows(tmp_path):
    table = candidates()
    least = smallest_valid_cost(table, NEEDS)
    frontier = design.frontier(table, prior(), TARGETS, 2 * least, [0.25, 1, 2, 4, 8], NEEDS, [0], LIMITS)
    assert frontier["cost"].isna().tolist() == [True, False, False, False, False]  # 0.5 x the least buys nothing
    total = frontier[["width_big", "width_overtrained"]].sum(axis=1).to_numpy()[1:]
    assert np.all(np.diff(total) <= 1e-9)
    planned = design.plan(table, prior(), TARGETS, 2 * least, NEEDS, [0], LIMITS)
    figure = plan_grid.plan_figure(table, planned.chosen, planned.usable, frontier, 2 * least, "FLOPs", "test")
    figure.savefig(tmp_path / "plan.png")
    assert (tmp_path / "plan.png").stat().st_size > 10_000


def test_the_expected_interval_is_what_a_fit_of_the_planned_runs_gives_where_the_law_holds():
    """Losses drawn from the prior law with the planner's noise, fitted as fit_loss fits (least
    squares, a parametric bootstrap of 200 refits): the bootstrap's 95% interval at each target is
    the planner's law part (its linearised variance) within 25%."""
    table = candidates()
    planned = design.plan(table, prior(), TARGETS, 3 * smallest_valid_cost(table, NEEDS), NEEDS, [0], LIMITS)
    runs, form, noise = planned.runs, forms.loss_form("gadre"), prior().noise_sd
    rng = np.random.default_rng(0)
    drawn = form.predict(GADRE, runs["N"], runs["D"]) * np.exp(noise * rng.standard_normal(len(runs)))
    fitted = fitting.fit_loss_law("gadre", runs["N"], runs["D"], drawn, "least_squares", 1e-3)
    start = [tuple(fitted[p] for p in form.params)]
    refits = fitting.parametric_bootstrap(
        lambda values: fitting.fit_loss_law("gadre", runs["N"], runs["D"], values, "least_squares", 1e-3, starts=start),
        form.predict(fitted, runs["N"], runs["D"]), noise, 200, 0, relative=True)
    targets = design.target_table(TARGETS)
    predicted = np.log([form.predict(r, targets["N"], targets["D"]) for r in refits])
    bootstrap_width = np.percentile(predicted, 97.5, axis=0) - np.percentile(predicted, 2.5, axis=0)
    np.testing.assert_allclose(bootstrap_width, 2 * uncertainty.Z * planned.targets["law_sd"], rtol=0.25)


# ---------------------------------------------------------------- the paper's testbed, in retrospect


RETROSPECTIVE_NEEDS = design.FitNeeds(runs=5, sizes=2, multipliers=2, per_size=8)
DATASETS = ["c4_original", "rpj", "rw_original"]
# Where the targets are not met (docs/planning.md has the numbers and why): the planned set's
# interval is wider than the paper's set's on RedPajama and RefinedWeb, whose fits through the
# paper's five runs found a noise of 0.57% and 0.25% in their one degree of freedom against 0.76%
# and 1.3% in the planned sets' several; and narrower than 66-78% of the random sets there.
NOT_MET = pytest.mark.xfail(strict=True, reason="not met on this dataset: docs/planning.md")
# The random sets are scored where the planned set beats four in five of them: 200 sets, each fitted
# with its bootstrap, cost 20-30 s a dataset, and on RedPajama and RefinedWeb the share is 66-78%
# (docs/planning.md's table, `docs/planning.py` draws them for all three).
RANDOM_SETS_MET = ["c4_original"]


@pytest.fixture(scope="module")
def retrospectives(request):
    """The retrospective at the paper's fit-set compute, per dataset, computed when first asked."""
    from snakemake.utils import validate  # Snakemake's import takes seconds; only this test needs it

    folder = shared_testbed("gadre2024")
    config = lmconfig.load_yaml(REPO / "configs" / "gadre2024.yaml")
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    loss, _ = importers.import_gadre2024(folder, list(config["datasets"]), config["valsets"], config["size_labels"])
    done, targets_of = {}, {}

    def of(dataset: str, prior_noise: bool = False) -> pd.DataFrame:
        """The planner's targets' rows; with `prior_noise`, the planned and the paper's set's widths
        when both are scored with the prior's noise of a run (docs/planning.md's sensitivity check)."""
        if dataset not in done:
            N = loss[loss["dataset"] == dataset].groupby("size")["N"].first()
            targets_of[dataset] = [{"name": "1.4B_M640", "N": float(N["1.4B"]), "M": 640.0},
                                   {"name": "6.9B_M20", "N": float(N["6.9B"]), "M": 20.0}]
            random_sets = 200 if dataset in RANDOM_SETS_MET else 0
            setting = retrospective.Setting(RETROSPECTIVE_NEEDS, design.SolverLimits(1e-4, 200, 60), random_sets,
                                                 0, True, False)
            done[dataset] = retrospective.retrospective(loss, config, dataset, "c4_val", targets_of[dataset],
                                                             [1.0], setting)
        past = done[dataset]
        if not prior_noise:
            table = past.table
            return table[table["planner_target"]].set_index("target")
        scorer = retrospective.Scorer(loss, past.job, past.candidates,
                                           past.prior.model_error, targets_of[dataset],
                                           past.prior.noise_sd)
        planned, own = scorer(np.flatnonzero(past.plans[1.0].chosen)), scorer(past.own)
        return pd.DataFrame({"plan_width": planned["width"].to_numpy(), "own_width": own["width"].to_numpy(),
                             "plan_noise_sd": planned["noise_sd"].to_numpy(), "own_noise_sd": own["noise_sd"].to_numpy()},
                            index=planned["target"])

    return of


@pytest.mark.slow
@pytest.mark.testbed
@pytest.mark.parametrize("dataset", DATASETS)
def test_the_planned_sets_interval_holds_both_targets(retrospectives, dataset):
    """Where the testbed has the run (1.4B at M = 640 exists for RedPajama only)."""
    table = retrospectives(dataset)
    measured = table[table["truth"].notna()]
    assert len(measured) == (2 if dataset == "rpj" else 1)
    assert measured["plan_inside"].all(), measured


@pytest.mark.slow
@pytest.mark.testbed
@pytest.mark.parametrize("dataset", DATASETS)
def test_the_expected_width_is_the_fitted_one_within_a_factor_of_two(retrospectives, dataset):
    ratio = retrospectives(dataset)["expected_to_fitted"]
    assert ratio.between(0.5, 2.0).all(), ratio


# The two "narrower" targets hold on C4 only (docs/planning.md says why): strict xfails elsewhere.
WHERE_UNMET_ON_TWO = ["c4_original", pytest.param("rpj", marks=NOT_MET), pytest.param("rw_original", marks=NOT_MET)]


@pytest.mark.slow
@pytest.mark.testbed
@pytest.mark.parametrize("dataset", WHERE_UNMET_ON_TWO)
def test_the_planned_interval_is_narrower_than_the_papers_sets(retrospectives, dataset):
    table = retrospectives(dataset)
    assert (table["plan_width"] < table["own_width"]).all(), table[["plan_width", "own_width"]]


@pytest.mark.slow
@pytest.mark.testbed
@pytest.mark.parametrize("dataset", DATASETS)
def test_with_one_noise_for_both_sets_the_planned_interval_is_narrower_than_the_papers_sets(retrospectives,
                                                                                            dataset):
    """Scored with the prior's noise of a run for both sets, not the noise each set's residuals
    show (one degree of freedom in the paper's set): the plan is narrower on every dataset."""
    table = retrospectives(dataset, prior_noise=True)
    assert (table["plan_noise_sd"] == table["own_noise_sd"]).all(), table
    assert (table["plan_width"] < table["own_width"]).all(), table


@pytest.mark.slow
@pytest.mark.testbed
@pytest.mark.parametrize("dataset", RANDOM_SETS_MET)
def test_the_planned_interval_is_narrower_than_four_in_five_random_sets(retrospectives, dataset):
    table = retrospectives(dataset)
    assert len(table) == 2 and (table["random_wider"] >= 0.8).all(), table["random_wider"]
