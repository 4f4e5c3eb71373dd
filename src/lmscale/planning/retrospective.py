"""Score a plan where every candidate run already exists (a published testbed): fit the law to
a set of runs' measured losses as `fit_loss` does, predict the targets as `predict` does, and
compare the planned set with a study's own fit set and with random valid sets of the same
budget (docs/planning.md, docs/planning.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lmscale.analysis import chain
from lmscale.analysis.fits import fit_loss
from lmscale.analysis.rollout import backtest
from lmscale.jobs import BacktestJob, FitLossJob, Point
from lmscale.laws import uncertainty
from lmscale.planning import design, priors
from lmscale.planning.design import FitNeeds, SolverLimits


def testbed_candidates(loss: pd.DataFrame, dataset: str, valset: str, smaller_than: float) -> pd.DataFrame:
    """The runs of a testbed with N below `smaller_than`, costing their compute C = 6 N D."""
    rows = loss[(loss["dataset"] == dataset) & (loss["valset"] == valset) & (loss["N"] < smaller_than)]
    return rows.assign(cost=rows["C"]).sort_values(["N", "M"], kind="stable").reset_index(drop=True)


def study_prior(loss: pd.DataFrame, config: dict, dataset: str, valset: str) -> tuple[priors.Prior, FitLossJob]:
    """What a study knows before it plans again: its loss law fitted to its own fit set, the
    model error of its backtest (loss law only: its rows are those of the full backtest) and the
    miss its residuals share within a size, and the job that fits a law the way the study does."""
    job = BacktestJob.from_config(config, dataset, valset, "loss")
    law = fit_loss(loss, job.loss)
    pool, summary = backtest(job, loss, None, law, {})
    prior = priors.prior_from_law(law, summary["model_error"]["loss"], None, None)
    return priors.with_shared_miss(prior, pool), job.loss


def indices_of(candidates: pd.DataFrame, points) -> np.ndarray:
    """The candidates at the (size, M) points of a fit set, in its order (a bootstrap draws each
    point's noise in that order)."""
    where = {(str(s), float(m)): i for i, (s, m) in enumerate(zip(candidates["size"], candidates["M"]))}
    return np.array([where[(str(size), float(m))] for size, m in points], int)


def mask_of(candidates: pd.DataFrame, indices) -> np.ndarray:
    mask = np.zeros(len(candidates), bool)
    mask[np.asarray(indices, int)] = True
    return mask


def meets(candidates: pd.DataFrame, mask: np.ndarray, needs: FitNeeds) -> bool:
    chosen = candidates[mask]
    return (len(chosen) >= needs.runs and chosen["size"].nunique() >= needs.sizes
            and chosen["M"].nunique() >= needs.multipliers and chosen["size"].value_counts().max() <= needs.per_size)


def random_sets(candidates: pd.DataFrame, among: np.ndarray, budget: float, needs: FitNeeds, count: int,
                seed: int) -> list[np.ndarray]:
    """`count` random valid sets that spend the budget: the candidates `among` (a mask) in a random
    order, each taken while it still fits in what is left and its size has room (so no other run
    fits beside the set),
    kept when the set meets what a fit needs. Each set as the candidates' indices, ascending; the
    same set may come twice."""
    rng = np.random.default_rng(seed)
    cost = np.where(among, candidates["cost"].to_numpy(float), np.inf)
    sizes = candidates["size"].astype(str).to_numpy()
    found, draws = [], 0
    while len(found) < count:
        draws += 1
        if draws > 100 * count:
            raise ValueError(f"fewer than {count} of {draws} random sets within {budget:.4g} meet what a fit needs")
        mask, left, per_size = np.zeros(len(cost), bool), budget, dict.fromkeys(sizes, 0)
        for i in rng.permutation(len(cost)):
            if cost[i] <= left and per_size[sizes[i]] < needs.per_size:
                mask[i], left = True, left - cost[i]
                per_size[sizes[i]] += 1
        if meets(candidates, mask, needs):
            found.append(np.flatnonzero(mask))
    return found


def score(loss: pd.DataFrame, job: FitLossJob, candidates: pd.DataFrame, indices: np.ndarray,
          model_error: uncertainty.ModelError, targets: list[dict], noise_sd: float | None = None) -> pd.DataFrame:
    """The law fitted to the chosen candidates (`job` gives the form, method and bootstrap), its
    prediction at each target with the 95% prediction interval (the confidence interval of the
    bootstrap widened by `model_error` at the target's distance from the set), and the truth
    where the testbed has a run at the target's N and M. The bootstrap draws each run with the
    noise the set's own residuals show, as a study does; with `noise_sd` (log units), with that
    noise for every set alike (a sensitivity check: no set is narrow by the luck of its few
    residual degrees of freedom)."""
    chosen = candidates.iloc[np.asarray(indices, int)]
    try:
        points = [Point(str(s), float(m)) for s, m in zip(chosen["size"], chosen["M"])]
        law = fit_loss(loss, replace(job, fit_set=points), given_noise(chosen["model"], noise_sd))
    except RuntimeError:  # no start of the grid converged: the set gives no law, an interval of no use
        return pd.DataFrame({"target": [t["name"] for t in targets], "predicted": np.nan, "truth": np.nan,
                             "pi_lo": np.nan, "pi_hi": np.nan, "width": np.inf, "error": np.nan, "inside": 0.0,
                             "noise_sd": np.nan, "runs": len(chosen)})
    table, _ = chain.loss_predictions(loss, law, job.dataset, job.valset, targets)
    at = table[table["target"]].reset_index(drop=True)
    lo, hi = uncertainty.interval(at["loss_pred"], at["loss_ci_lo"], at["loss_ci_hi"],
                                  model_error.sd(at[list(uncertainty.LOSS_DIRECTIONS)]))
    runs = loss[(loss["dataset"] == job.dataset) & (loss["valset"] == job.valset)]
    truth = np.array([runs.loc[np.isclose(runs["N"], n) & np.isclose(runs["M"], m), "loss"].mean()
                      for n, m in zip(at["N"], at["M"])], float)
    return pd.DataFrame({
        "target": at["model"], "predicted": at["loss_pred"], "truth": truth, "pi_lo": lo, "pi_hi": hi,
        "width": (hi - lo) / at["loss_pred"], "error": np.abs(at["loss_pred"] - truth) / truth,
        "inside": np.where(np.isfinite(truth), (truth >= lo) & (truth <= hi), np.nan),
        "noise_sd": float(np.median(law.noise["sd"])), "runs": len(chosen),
    })


def given_noise(models, noise_sd: float | None) -> dict | None:
    """`noise_sd` for each of `models`, as fit_loss's `noise_from` carries it (None: the fit's own)."""
    if noise_sd is None:
        return None
    models = [str(model) for model in models]
    noise = uncertainty.PointNoise([float(noise_sd)] * len(models), "given", None, None, None)
    return {"noise": noise.as_dict(), "fit_set": [{"model": model} for model in models]}


class Scorer:
    """`score` with each distinct set fitted once: random sets repeat."""

    def __init__(self, loss: pd.DataFrame, job: FitLossJob, candidates: pd.DataFrame,
                 model_error: uncertainty.ModelError, targets: list[dict], noise_sd: float | None):
        self.loss, self.job, self.candidates = loss, job, candidates
        self.model_error, self.targets, self.noise_sd = model_error, targets, noise_sd
        self.done: dict[bytes, pd.DataFrame] = {}

    def __call__(self, indices) -> pd.DataFrame:
        key = tuple(int(i) for i in indices)
        if key not in self.done:
            self.done[key] = score(self.loss, self.job, self.candidates, indices, self.model_error, self.targets,
                                   self.noise_sd)
        return self.done[key]


def over_sets(statistic, values) -> float:
    """`statistic` of one value per random set; nan with no random sets."""
    return float(statistic(values)) if len(values) else np.nan


def compare(scorer: Scorer, planned, own, random: list[np.ndarray], expected: pd.DataFrame) -> pd.DataFrame:
    """One row per target: the planned set's and the study's own set's error and width, the
    planner's expected width and its ratio to the fitted one, and how the random sets fared: the
    share whose interval is wider than the planned set's, the share wider or missing the truth
    (a narrow interval that misses is no better), the share that hold the truth."""
    plan_scores, own_scores = scorer(planned), scorer(own)
    random_scores = [scorer(indices) for indices in random]
    # (sets, targets); with no random sets every share below is nan
    widths = np.array([s["width"].to_numpy() for s in random_scores]).reshape(len(random), len(plan_scores))
    inside = np.array([s["inside"].to_numpy(float) for s in random_scores]).reshape(widths.shape)
    rows = []
    for t, target in enumerate(plan_scores["target"]):
        p, o = plan_scores.iloc[t], own_scores.iloc[t]
        wider = widths[:, t] > p["width"]
        measured = np.isfinite(p["truth"])
        rows.append({
            "target": target, "truth": p["truth"],
            "plan_error": p["error"], "plan_width": p["width"], "plan_inside": p["inside"],
            "own_error": o["error"], "own_width": o["width"], "own_inside": o["inside"],
            "expected_width": expected["width"].iloc[t], "expected_to_fitted": expected["width"].iloc[t] / p["width"],
            "random_wider": over_sets(np.mean, wider),
            "random_wider_or_missing": over_sets(np.mean, wider | (inside[:, t] == 0)) if measured else np.nan,
            "random_inside": over_sets(np.mean, inside[:, t]) if measured else np.nan,
            "random_median_width": over_sets(np.median, widths[:, t]),
            "random_distinct": len({tuple(indices) for indices in random}),
            "plan_noise_sd": p["noise_sd"], "own_noise_sd": o["noise_sd"],
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Setting:
    """How a retrospective plans and what it compares with."""

    needs: FitNeeds
    limits: SolverLimits
    random_sets: int  # random valid sets per budget
    seed: int  # of the random sets
    random_from_eligible: bool  # draw random sets from the candidates the planner chooses from (else from all)
    prior_noise: bool  # score every set with the prior's noise of a run, not its own residuals' (a sensitivity check)


@dataclass(frozen=True)
class Retrospective:
    table: pd.DataFrame  # one row per budget factor and scored run (compare's columns)
    plans: dict  # factor -> planning.Plan
    prior: priors.Prior
    candidates: pd.DataFrame
    job: FitLossJob  # how each set is fitted
    own: np.ndarray  # the study's own loss fit set, as indices of the candidates


def truth_runs(loss: pd.DataFrame, dataset: str, valset: str, smaller_than: float) -> list[dict]:
    """The testbed's runs at or above the candidates' sizes, as targets: each plan is also scored
    on them (a target such as 1.4B at M = 640 exists in one dataset only)."""
    rows = loss[(loss["dataset"] == dataset) & (loss["valset"] == valset) & (loss["N"] >= smaller_than)]
    rows = rows.sort_values(["N", "M"], kind="stable")
    return [{"name": f"{s}_M{m:g}", "N": n, "M": m} for s, n, m in zip(rows["size"], rows["N"], rows["M"])]


def retrospective(loss: pd.DataFrame, config: dict, dataset: str, valset: str, targets: list[dict], factors,
                  setting: Setting) -> Retrospective:
    """For each budget (`factors` x the compute of the study's own loss fit set): the plan, scored
    against the study's own set and random valid sets on the targets and on every testbed run at
    or above their smallest size."""
    prior, job = study_prior(loss, config, dataset, valset)
    smallest = min(float(t["N"]) for t in targets)
    candidates = testbed_candidates(loss, dataset, valset, smallest)
    names = {t["name"] for t in targets}
    scored = targets + [run for run in truth_runs(loss, dataset, valset, smallest)
                        if not any(np.isclose(run["N"], t["N"]) and np.isclose(run["M"], t["M"]) for t in targets)]
    own = indices_of(candidates, [(p["size"], p["M"]) for p in config["loss_fit_set"]])
    budget = float(candidates["cost"].iloc[own].sum())
    scorer = Scorer(loss, job, candidates, prior.model_error, scored, prior.noise_sd if setting.prior_noise else None)
    tables, plans = [], {}
    for factor in factors:
        planned = design.plan(candidates, prior, targets, factor * budget, setting.needs, [0], setting.limits)
        among = planned.usable if setting.random_from_eligible else np.ones(len(candidates), bool)
        random = random_sets(candidates, among, factor * budget, setting.needs, setting.random_sets,
                             setting.seed)
        expected = design.design_intervals(candidates, prior, scored, planned.chosen, 1)
        table = compare(scorer, np.flatnonzero(planned.chosen), own, random, expected)
        tables.append(table.assign(dataset=dataset, factor=float(factor), budget=factor * budget,
                                   planner_target=table["target"].isin(names), plan_runs=int(planned.chosen.sum()),
                                   plan_cost=planned.cost))
        plans[float(factor)] = planned
    return Retrospective(pd.concat(tables, ignore_index=True), plans, prior, candidates, job, own)
