"""Plan a study before training it: which small runs, within a budget, make the prediction at
the targets most certain (docs/planning.md).

The planner sees candidate runs (size, N, M, each with its cost), a budget, the targets (N, M),
a prior loss law (`loss_law.json`: its form and parameters, and the noise its fit points had),
the noise of one run, and the model error the backtest measured (`uncertainty.ModelError`).
It chooses the runs that minimise the expected width of the 95% prediction interval at the
targets, summed over them: the law's variance at a target linearised at the prior (a
Gauss-Newton Fisher information from the chosen runs) plus the model error, which grows with the
distance of the target from the chosen runs; within the budget and what a fit needs (`FitNeeds`),
and only among the candidates where the prior law is known to hold (`priors.eligible`). The
prior and its misses are lmscale.planning.priors'; the optimisation is in lmscale.planning.solver;
the outputs are `plan_table` (plan.csv), `config_fragment`, `frontier` and the figure
(lmscale.figures.plan_grid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lmscale.laws import uncertainty
from lmscale.planning import solver
from lmscale.planning.priors import PlanError, Prior, eligible, gradients, shared_loadings
from lmscale.planning.solver import Extreme, Problem

log = logging.getLogger(__name__)


class BudgetError(PlanError):
    """A budget below the cheapest valid fit set: the budget, that set's cost and its runs' names
    (`size_M<M>`), so that the command can name the config key it came from."""

    def __init__(self, budget: float, least: float, runs: list[str], needs: FitNeeds):
        self.budget, self.least, self.runs, self.needs = budget, least, runs, needs
        super().__init__(f"a budget of {budget:.4g} buys no valid fit set ({needs.runs} runs, {needs.sizes} sizes, "
                         f"{needs.multipliers} multipliers, at most {needs.per_size} a size); the smallest budget "
                         f"that works is {least:.4g}: {', '.join(runs)}")


@dataclass(frozen=True)
class FitNeeds:
    """What a fit needs of its runs: at least so many distinct (size, M) runs, sizes and
    multipliers, and at most so many runs of one size."""

    runs: int
    sizes: int
    multipliers: int
    per_size: int


@dataclass(frozen=True)
class SolverLimits:
    tolerance: float  # relative gap between the bound and the plan at which the solver stops
    max_solves: int  # mixed-integer masters per plan
    seconds: float  # per plan


@dataclass(frozen=True)
class Plan:
    runs: pd.DataFrame  # the chosen candidates
    chosen: np.ndarray  # a mask over the candidates given
    usable: np.ndarray  # the candidates chosen from (`eligible`)
    replicate_seeds: list[int]  # the seeds besides the first each chosen run is trained with again
    cost: float  # replicates included
    budget: float
    targets: pd.DataFrame  # the expected interval at each target
    solution: solver.Solution


def target_table(targets) -> pd.DataFrame:
    """Targets as a table: name, N, M and D = M N."""
    table = pd.DataFrame(list(targets))[["name", "N", "M"]].astype({"N": float, "M": float})
    return table.assign(D=table["M"] * table["N"])


# The directions of uncertainty.LOSS_DIRECTIONS, each with the candidate column whose extreme
# over the chosen runs sets the distance, whether that is the largest, and the distance itself.
DIRECTIONS = {
    "C_above": ("log_C", True, lambda target, level: np.maximum(0.0, target - level)),
    "M_above": ("log_M", True, lambda target, level: np.maximum(0.0, target - level)),
    "M_below": ("log_M", False, lambda target, level: np.maximum(0.0, level - target)),
}


def extremes(prior: Prior, candidates: pd.DataFrame, targets: pd.DataFrame) -> tuple[Extreme, ...]:
    """The model error's directions in which some target can lie outside a chosen set."""
    error = prior.model_error
    at = {"log_C": np.log(6.0 * candidates["N"] * candidates["D"]).to_numpy(float),
          "log_M": np.log(candidates["M"]).to_numpy(float)}
    target_at = {"log_C": np.log(6.0 * targets["N"] * targets["D"]).to_numpy(float),
                 "log_M": np.log(targets["M"]).to_numpy(float)}
    found = []
    for name, (column, largest, distance) in DIRECTIONS.items():
        levels, level_of_run = np.unique(np.round(at[column], 9), return_inverse=True)
        distances = distance(target_at[column][:, None], levels[None, :])  # (targets, levels)
        frame = pd.DataFrame({d: (distances.ravel() if d == name else 0.0) for d in uncertainty.LOSS_DIRECTIONS})
        grown = error.sd(frame).reshape(distances.shape)
        terms = np.sqrt(np.maximum(grown**2 - error.scale**2, 0.0))
        if np.any(terms > 0):
            found.append(Extreme(name, levels, level_of_run, terms, largest))
    return tuple(found)


def run_variance(prior: Prior, replicates: int) -> float:
    """A chosen run's own loss variance when it is trained `replicates` times and the fit sees
    each: the seed-to-seed part averaged, the part its size shares with its other runs aside."""
    return prior.seed_sd**2 / replicates + prior.noise_sd**2 - prior.seed_sd**2 - prior.shared_sd**2


def problem(candidates: pd.DataFrame, prior: Prior, targets: pd.DataFrame, budget: float, needs: FitNeeds,
            replicates: int) -> Problem:
    return Problem(
        gradients=gradients(prior, candidates["N"], candidates["D"]),
        target_gradients=gradients(prior, targets["N"], targets["D"]),
        variance=run_variance(prior, replicates),
        shared=shared_loadings(prior, candidates),
        cost=candidates["cost"].to_numpy(float) * replicates,
        budget=float(budget),
        sizes=candidates["size"].astype(str).to_numpy(),
        multipliers=candidates["M"].to_numpy(float),
        scale=prior.model_error.scale,
        extremes=extremes(prior, candidates, targets),
        needs=(needs.runs, needs.sizes, needs.multipliers, needs.per_size),
    )


def run_names(runs: pd.DataFrame) -> list[str]:
    """Each run's name as plan.csv gives it: size_M<M>."""
    return [f"{size}_M{m:g}" for size, m in zip(runs["size"], runs["M"])]


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def needs_text(needs: FitNeeds, capped: bool = True) -> str:
    """What a fit needs, in words: "5 runs over 2 sizes and 2 multipliers, at most 3 a size"."""
    text = f"{_count(needs.runs, 'run')} over {_count(needs.sizes, 'size')} and {_count(needs.multipliers, 'multiplier')}"
    return text + (f", at most {needs.per_size} a size" if capped else "")


def shortfall(candidates: pd.DataFrame, needs: FitNeeds, note: str = "") -> str:
    """Why no set of `candidates` meets `needs`, in one line naming plan.fit_needs, what the
    candidates lack and the fix; `note` tells of the candidates left out before (such as "; 6
    more lie where the prior law misses by more than a run's noise")."""
    counts = candidates["size"].astype(str).value_counts()
    capped = needs.per_size < len(candidates)
    have = {"run": int(np.minimum(counts, needs.per_size).sum()), "size": len(counts),
            "multiplier": int(np.unique(np.round(candidates["M"].to_numpy(float), 9)).size)}
    asked = {"run": needs.runs, "size": needs.sizes, "multiplier": needs.multipliers}
    short = [_count(have[key], key) + (f" (at most {needs.per_size} a size)" if key == "run" and capped else "")
             for key in asked if have[key] < asked[key]]
    names = run_names(candidates)
    listed = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    short = ", ".join(short[:-1]) + " and " + short[-1] if len(short) > 1 else "".join(short)
    if not names:
        found = f"no candidate run is left{note}"
    elif short:
        found = f"the {_count(len(names), 'candidate run')} ({listed}{note}) hold only {short}"
    else:
        found = f"no set of the {_count(len(names), 'candidate run')} ({listed}{note}) meets all of it at once"
    return (f"plan.fit_needs asks for {needs_text(needs, capped)}, but {found}; add candidate runs "
            "(plan.candidates.sizes, plan.candidates.multipliers) or lower plan.fit_needs")


def _cheapest(posed: Problem, candidates: pd.DataFrame, needs: FitNeeds, seconds: float, note: str
              ) -> tuple[float, np.ndarray]:
    chosen = solver.cheapest_set(posed, seconds) if len(candidates) else None
    if chosen is None:
        raise PlanError(shortfall(candidates, needs, note))
    return float(sum(c for c, kept in zip(posed.cost, chosen) if kept)), chosen


def cheapest_runs(candidates: pd.DataFrame, prior: Prior, targets: pd.DataFrame, needs: FitNeeds,
                  limits: SolverLimits, note: str = "") -> tuple[float, np.ndarray]:
    """The least a valid fit set of the candidates costs, and that set (a mask); PlanError naming
    what they lack where no set of them meets `needs` (`note`: as `shortfall`'s)."""
    posed = problem(candidates, prior, targets, np.inf, needs, 1) if len(candidates) else None
    return _cheapest(posed, candidates, needs, limits.seconds, note)


def cheapest_without_law(candidates: pd.DataFrame, needs: FitNeeds, seconds: float) -> tuple[float, np.ndarray]:
    """`cheapest_runs` before any law is known (when the workflow is planned): what a fit needs
    asks nothing of the law, and the model error's extremes, which do, bound no set's cost."""
    count = len(candidates)
    posed = Problem(gradients=np.zeros((count, 0)), target_gradients=np.zeros((0, 0)), variance=1.0,
                    shared=np.zeros((count, 0)), cost=candidates["cost"].to_numpy(float), budget=np.inf,
                    sizes=candidates["size"].astype(str).to_numpy(), multipliers=candidates["M"].to_numpy(float),
                    scale=0.0, extremes=(), needs=(needs.runs, needs.sizes, needs.multipliers, needs.per_size))
    return _cheapest(posed, candidates, needs, seconds, "")


def smallest_budget(candidates: pd.DataFrame, prior: Prior, targets: pd.DataFrame, needs: FitNeeds,
                    limits: SolverLimits) -> float:
    return cheapest_runs(candidates, prior, targets, needs, limits)[0]


def plan(candidates: pd.DataFrame, prior: Prior, targets, budget: float, needs: FitNeeds, seeds: list[int],
         limits: SolverLimits) -> Plan:
    """The runs to train within `budget` (candidates' `cost` units), each trained with the first
    r of `seeds` (r chosen too, when the prior knows a seed-to-seed spread to average out).
    Only the candidates where the law holds (`eligible`) are chosen from."""
    targets = target_table(targets)
    usable = eligible(prior, candidates)
    if not usable.all():
        log.info("%d of %d candidates lie where the prior law misses by more than a run's noise (%.3g): not chosen "
                 "from (%s)", (~usable).sum(), len(usable), prior.noise_sd,
                 ", ".join(f"{s}_M{m:g}" for s, m in zip(candidates["size"][~usable], candidates["M"][~usable])))
    given, candidates = candidates, candidates[usable].reset_index(drop=True)
    left = int((~usable).sum())
    note = f"; {left} more lie where the prior law misses by more than a run's noise" if left else ""
    least, cheapest = cheapest_runs(candidates, prior, targets, needs, limits, note)
    if budget < least * (1 - 1e-9):
        raise BudgetError(float(budget), least, run_names(candidates[cheapest]), needs)
    best = None
    for replicates in range(1, (len(seeds) if prior.seed_sd > 0 else 1) + 1):
        posed = problem(candidates, prior, targets, budget, needs, replicates)
        solution = solver.solve(posed, limits.tolerance, limits.max_solves, limits.seconds)
        log.info("plan at budget %.4g, %d replicate(s): CBC %s after %d solves, objective %.6g (bound %.6g), %.2f s",
                 budget, replicates, solution.status, solution.solves, solution.objective, solution.bound,
                 solution.seconds)
        if best is None or solution.objective < best[2].objective * (1 - limits.tolerance):
            best = (replicates, posed, solution)
    replicates, posed, solution = best
    runs = candidates[solution.chosen].reset_index(drop=True)
    chosen = np.zeros(len(given), bool)
    chosen[np.flatnonzero(usable)[solution.chosen]] = True
    return Plan(runs, chosen, usable, list(seeds[1:replicates]), float(runs["cost"].sum() * replicates), float(budget),
                expected_intervals(prior, targets, posed, solution.chosen), solution)


def expected_intervals(prior: Prior, targets: pd.DataFrame, posed: Problem, chosen: np.ndarray) -> pd.DataFrame:
    """Each target's expected 95% prediction interval around the prior law's prediction."""
    law_sd, _ = solver.law_sd(posed, chosen.astype(float))
    terms = solver.model_terms(posed, solver.extreme_levels(posed, chosen))
    model_sd = np.sqrt(posed.scale**2 + np.sum(terms**2, axis=1))
    sd = np.sqrt(law_sd**2 + model_sd**2)
    predicted = prior.law.predict(targets["N"], targets["D"])
    return targets.assign(loss_prior=predicted, law_sd=law_sd, model_sd=model_sd, sd=sd,
                          pi_lo=predicted * np.exp(-uncertainty.Z * sd), pi_hi=predicted * np.exp(uncertainty.Z * sd),
                          width=np.exp(uncertainty.Z * sd) - np.exp(-uncertainty.Z * sd))


def design_intervals(candidates: pd.DataFrame, prior: Prior, targets, chosen: np.ndarray, replicates: int
                     ) -> pd.DataFrame:
    """The expected intervals of any set of runs (`chosen`, a mask of the candidates): what the
    planner promises for a set it did not choose, such as a study's own fit set."""
    targets = target_table(targets)
    posed = problem(candidates, prior, targets, np.inf, FitNeeds(0, 0, 0, len(candidates)), replicates)
    return expected_intervals(prior, targets, posed, np.asarray(chosen, bool))


def frontier(candidates: pd.DataFrame, prior: Prior, targets, budget: float, factors, needs: FitNeeds,
             seeds: list[int], limits: SolverLimits) -> pd.DataFrame:
    """The expected width at each target against the budget (`factors` x `budget`): what more
    budget buys. A budget that buys no valid fit set gets empty widths."""
    rows = []
    for factor in factors:
        row = {"factor": float(factor), "budget": float(factor * budget)}
        try:
            planned = plan(candidates, prior, targets, factor * budget, needs, seeds, limits)
        except PlanError:
            rows.append(row)
            continue
        row.update(cost=planned.cost, runs=len(planned.runs), replicates=len(planned.replicate_seeds) + 1)
        row.update({f"width_{t.name}": t.width for t in planned.targets.itertuples()})
        rows.append(row)
    return pd.DataFrame(rows)


def plan_table(planned: Plan) -> pd.DataFrame:
    """`plan.csv`: one row per chosen run (its cost, replicates included), then one per target
    with its expected interval."""
    replicates = len(planned.replicate_seeds) + 1
    runs = planned.runs.assign(kind="run", name=[f"{s}_M{m:g}" for s, m in zip(planned.runs["size"],
                                                                              planned.runs["M"])],
                               replicates=replicates, cost=planned.runs["cost"] * replicates)
    targets = planned.targets.assign(kind="target")
    columns = ["kind", "name", "size", "N", "M", "D", "replicates", "cost", "loss_prior", "law_sd", "model_sd", "sd",
               "pi_lo", "pi_hi", "width"]
    table = pd.concat([runs, targets], ignore_index=True)
    return table.reindex(columns=columns)


def config_fragment(planned: Plan) -> str:
    """The plan as config keys a study pastes: `loss_fit_set`, the `grid` blocks that train those
    runs (add the held-out runs' blocks beside them) and `replicate_seeds`."""
    runs = planned.runs.sort_values(["N", "M"], kind="stable")
    lines = [f"# lmscale plan: {len(runs)} runs, cost {planned.cost:.4g} of a budget of {planned.budget:.4g}",
             "loss_fit_set:"]
    lines += [f"  - {{size: {size}, M: {m:g}}}" for size, m in zip(runs["size"], runs["M"])]
    lines.append("grid:")
    for size, rows in runs.groupby("size", sort=False):
        lines.append(f"  - sizes: [{size}]")
        lines.append(f"    multipliers: [{', '.join(f'{m:g}' for m in rows['M'])}]")
    lines.append(f"replicate_seeds: [{', '.join(str(s) for s in planned.replicate_seeds)}]")
    return "\n".join(lines) + "\n"
