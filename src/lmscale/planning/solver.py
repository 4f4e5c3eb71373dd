"""The planner's choice of runs as an optimisation, solved with PuLP's bundled CBC (offline).

One binary w_i per candidate run (trained or not). For each target t the expected standard
deviation of its 95% prediction interval, in log units, is

    F_t(w) = || ( s_t(w), scale, A_t,d(extreme_d of the chosen runs) for each direction d ) ||_2

- s_t(w)^2 = c_t' I(w)^-1 c_t, the law's variance at the target linearised at the prior:
  c_t = d log L(target) / d log theta, I(w) = sum_i w_i g_i g_i' / variance + ridge, g_i the same
  gradient at run i (a Gauss-Newton Fisher information). Where the runs of one size share part of
  their miss (a Gaussian process along log M within each size, independent between sizes: the
  `shared` loadings of each run on independent unit-variance factors), the factors are nuisance
  parameters with prior precision 1: g_i and c_t gain run i's loadings (0 at the target), and
  s_t^2 is the generalised-least-squares variance of the law at the target, the Schur complement
  that marginalises the shared miss. I(w) stays linear in w;
- `scale` and A_t,d, the model error (uncertainty.ModelError): A_t,d grows with the distance of
  the target outside the chosen set in direction d, which the set's largest compute, largest M
  or smallest M (its *extreme*) fixes. One binary x_d,k per level k an extreme can take picks
  it, so that A_t,d = sum_k x_d,k terms_d[t, k] is linear.

s_t is convex in w (the information of one linear function is concave, and x^-1/2 convex and
decreasing), so F_t, a norm of non-negative convex and linear parts, is convex. The sum of the
F_t is minimised by outer approximation (Kelley's cutting planes): a mixed-integer linear
master with an epigraph variable tau_t per target, cut at every design it proposes by the
tangent plane of F_t there (a lower bound everywhere, F_t being convex), until its bound meets
the best design's value. The design is then optimal for the linearised model, not approximately.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pulp

log = logging.getLogger(__name__)

# A prior information of 1e-8 per log-parameter keeps I(w) invertible at fractional and
# degenerate designs, where the cuts are also taken; a fit set's own is 1e4 or more.
RIDGE = 1e-8


@dataclass(frozen=True)
class Extreme:
    """A direction of the model error, set by an extreme of the chosen runs (the largest or the
    smallest of `value`, e.g. log C): `level_of_run[i]` indexes run i's level in `levels`
    (ascending), and terms[t, k] is the model error at target t when the extreme is level k."""

    name: str
    levels: np.ndarray
    level_of_run: np.ndarray
    terms: np.ndarray
    largest: bool


@dataclass(frozen=True)
class Problem:
    """One choice of runs: everything the optimisation sees, as arrays (planning.py builds it)."""

    gradients: np.ndarray  # (runs, params): d log L / d log theta at each candidate
    target_gradients: np.ndarray  # (targets, params)
    variance: float  # a chosen run's own loss variance, log units (replicates averaged), the size's shared part aside
    shared: np.ndarray  # (runs, factors): loadings of the miss the runs of a size share; covariance shared shared'
    cost: np.ndarray  # each candidate's cost, replicates included
    budget: float
    sizes: np.ndarray  # each candidate's size label
    multipliers: np.ndarray  # each candidate's M
    scale: float  # the model error inside the fit set's range (log units)
    extremes: tuple[Extreme, ...]
    needs: tuple[int, int, int, int]  # at least this many runs, sizes, multipliers; at most this many runs a size

    @functools.cached_property
    def augmented(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The runs' and the targets' gradients with the shared miss's factors beside the law's
        parameters, and the prior precision of each column (the law's: the ridge; a factor's: 1);
        built once, read by every solve and cut."""
        g, c, loadings = self.gradients, self.target_gradients, self.shared
        precision = np.concatenate([np.full(g.shape[1], RIDGE), np.ones(loadings.shape[1])])
        return np.hstack([g, loadings]), np.hstack([c, np.zeros((len(c), loadings.shape[1]))]), precision


@dataclass(frozen=True)
class Solution:
    chosen: np.ndarray  # bool per candidate
    objective: float  # sum over targets of F_t at the design
    bound: float  # the master's lower bound on it
    status: str
    solves: int
    seconds: float


def law_sd(problem: Problem, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s_t at a design (weights in [0, 1]) and u_t = I^-1 c_t, one row per target (in the
    augmented parameters: the law's, then the shared miss's factors)."""
    h, c, precision = problem.augmented
    information = (h * (weights / problem.variance)[:, None]).T @ h + np.diag(precision)
    u = np.linalg.solve(information, c.T).T
    return np.sqrt(np.maximum(np.sum(u * c, axis=1), 0.0)), u


def extreme_levels(problem: Problem, chosen: np.ndarray) -> list[int]:
    """The level of each extreme that the chosen runs reach."""
    levels = []
    for extreme in problem.extremes:
        reached = extreme.level_of_run[chosen]
        levels.append(int(reached.max() if extreme.largest else reached.min()))
    return levels


def model_terms(problem: Problem, levels: list[int]) -> np.ndarray:
    """(targets, extremes): the model error's part from each direction."""
    if not problem.extremes:
        return np.zeros((len(problem.target_gradients), 0))
    return np.column_stack([extreme.terms[:, k] for extreme, k in zip(problem.extremes, levels)])


def expected_sd(problem: Problem, chosen: np.ndarray) -> np.ndarray:
    """F_t of a design: the expected sd of each target's prediction interval (log units)."""
    s, _ = law_sd(problem, chosen.astype(float))
    terms = model_terms(problem, extreme_levels(problem, chosen))
    return np.sqrt(s**2 + problem.scale**2 + np.sum(terms**2, axis=1))


def _variables(model, prefix: str, count: int, **kind) -> list[pulp.LpVariable]:
    """`count` variables of `model`, named `prefix`_i: made by the model where PuLP can (3.3 on,
    where making them apart is deprecated), else apart (the model takes them as constraints name them)."""
    make = getattr(model, "add_variable", None) or pulp.LpVariable
    return [make(f"{prefix}_{i}", **kind) for i in range(count)]


def _binaries(model, prefix: str, count: int) -> list[pulp.LpVariable]:
    return _variables(model, prefix, count, cat=pulp.LpBinary)


def _at_least_distinct(model, w, labels, least: int, name: str) -> None:
    """At least `least` distinct labels among the chosen runs."""
    distinct = sorted(set(labels.tolist()))
    present = _binaries(model, f"has_{name}", len(distinct))
    for flag, label in zip(present, distinct):
        model += flag <= pulp.lpSum(w[i] for i in np.flatnonzero(labels == label))
    model += pulp.lpSum(present) >= least, f"least_{name}"


def feasible_model(problem: Problem, sense=pulp.LpMinimize):
    """The constraints every plan meets: budget aside, what a fit needs; with the extremes' levels."""
    model = pulp.LpProblem("plan", sense)
    w = _binaries(model, "run", len(problem.cost))
    least_runs, least_sizes, least_multipliers, most_per_size = problem.needs
    model += pulp.lpSum(w) >= least_runs, "least_runs"
    for size in sorted(set(problem.sizes.tolist())):
        model += pulp.lpSum(w[i] for i in np.flatnonzero(problem.sizes == size)) <= most_per_size
    _at_least_distinct(model, w, problem.sizes, least_sizes, "size")
    _at_least_distinct(model, w, problem.multipliers, least_multipliers, "multiplier")
    x = []
    for extreme in problem.extremes:
        levels = _binaries(model, f"level_{extreme.name}", len(extreme.levels))
        model += pulp.lpSum(levels) == 1, f"one_{extreme.name}"
        for i, k in enumerate(extreme.level_of_run):
            reach = levels[k:] if extreme.largest else levels[:k + 1]
            model += w[i] <= pulp.lpSum(reach), f"{extreme.name}_covers_{i}"
        for k, flag in enumerate(levels):
            model += flag <= pulp.lpSum(w[i] for i in np.flatnonzero(extreme.level_of_run == k)), \
                f"{extreme.name}_reached_{k}"
        x.append(levels)
    return model, w, x


def _cbc(model, seconds: float) -> str:
    # One thread, a relative gap far below the planner's tolerance: the same plan on every run.
    with warnings.catch_warnings():
        # PuLP 3.3 deprecates the CBC it bundles, which is what lets the planner solve offline;
        # the requirement (pulp<4) keeps it.
        warnings.filterwarnings("ignore", message="PULP_CBC_CMD is deprecated", category=DeprecationWarning)
        solver = pulp.PULP_CBC_CMD(msg=False, threads=1, gapRel=1e-7, timeLimit=max(1, int(seconds)))
    model.solve(solver)
    return pulp.LpStatus[model.status]


def _spent(problem: Problem, w):
    """The cost of a design in units of the dearest candidate: CBC declares problems with
    coefficients of 1e20 (FLOPs) infeasible."""
    unit = float(np.max(problem.cost))
    return pulp.lpSum(float(c / unit) * v for c, v in zip(problem.cost, w)), unit


def cheapest_set(problem: Problem, seconds: float) -> np.ndarray | None:
    """The cheapest valid fit set, a mask of the candidates (None: none exists among them)."""
    model, w, _ = feasible_model(problem)
    model += _spent(problem, w)[0]
    if _cbc(model, seconds) != "Optimal":
        return None
    return np.array([v.value() > 0.5 for v in w], bool)


def cheapest(problem: Problem, seconds: float) -> float | None:
    """The least a valid fit set costs (None: none exists among the candidates)."""
    chosen = cheapest_set(problem, seconds)
    if chosen is None:
        return None
    return float(sum(c for c, kept in zip(problem.cost, chosen) if kept))


def add_cuts(model, tau, w, x, problem: Problem, chosen: np.ndarray, unit: float) -> None:
    """The tangent planes of every F_t at a design, in units of `unit` (CBC's tolerances are
    absolute, ~1e-7: F_t of 0.01 in log units would be resolved to 1e-5 only):
    tau_t >= (F_t + grad F_t . (point - design)) / unit."""
    s, u = law_sd(problem, chosen.astype(float))
    levels = extreme_levels(problem, chosen)
    terms = model_terms(problem, levels)
    F = np.sqrt(s**2 + problem.scale**2 + np.sum(terms**2, axis=1))
    leverage = (u @ problem.augmented[0].T) ** 2 / problem.variance  # -d s_t^2 / d w_i
    for t in range(len(F)):
        gradient_w = -leverage[t] / (2 * F[t])
        cut = F[t] + pulp.lpSum(float(gradient_w[i]) * (w[i] - float(chosen[i])) for i in range(len(w)))
        for d, (extreme, level) in enumerate(zip(problem.extremes, levels)):
            gradient_x = terms[t, d] * extreme.terms[t] / F[t]
            cut += pulp.lpSum(float(gradient_x[k]) * (x[d][k] - float(k == level)) for k in range(len(x[d]))
                              if gradient_x[k] != 0.0)
        model += tau[t] >= cut * (1.0 / unit)


def solve(problem: Problem, tolerance: float, max_solves: int, seconds: float) -> Solution:
    """The design minimising sum_t F_t within the budget, by outer approximation.

    Stops when the master's bound is within `tolerance` (relative) of the best design found, or
    when the master proposes a design it was already cut at (no cut can then raise its bound:
    the two differ by CBC's tolerances only), or after `max_solves` masters or `seconds`.
    """
    started = time.monotonic()
    model, w, x = feasible_model(problem)
    tau = _variables(model, "sd", len(problem.target_gradients), lowBound=0)
    model += pulp.lpSum(tau)
    spent, cost_unit = _spent(problem, w)
    model += spent <= problem.budget / cost_unit, "budget"
    everything = np.ones(len(w), bool)
    unit = float(np.sum(expected_sd(problem, everything)))  # the best any design can do, about
    add_cuts(model, tau, w, x, problem, everything, unit)
    best, best_value, bound, status, seen = None, np.inf, -np.inf, "Not Solved", set()
    while len(seen) < max_solves:
        left = seconds - (time.monotonic() - started)
        if left <= 0:
            status = "Time Limit"
            break
        status = _cbc(model, left)
        if status != "Optimal":
            break
        bound = float(pulp.value(model.objective)) * unit
        chosen = np.array([v.value() > 0.5 for v in w])
        value = float(np.sum(expected_sd(problem, chosen)))
        if value < best_value:
            best, best_value = chosen, value
        if best_value - bound <= tolerance * best_value or chosen.tobytes() in seen:
            break
        seen.add(chosen.tobytes())
        add_cuts(model, tau, w, x, problem, chosen, unit)
    else:
        status = "Iteration Limit"
    solves = len(seen) + (status == "Optimal")
    if best is None:
        return Solution(np.zeros(len(w), bool), np.inf, bound, status, solves, time.monotonic() - started)
    return Solution(best, best_value, min(bound, best_value), status, solves, time.monotonic() - started)
