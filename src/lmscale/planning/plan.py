"""`lmscale plan`: the planner (lmscale.planning.design) on a study. The candidate runs, priced, the
budget and the targets come from the job (the `plan` block: lmscale.planning.study), the prior law
from the job or the study's files; what the block asks that no plan can give is refused in one
line before anything is written. The command writes plan.csv, the config fragment to paste, the
frontier and its figure (docs/planning.md)."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from lmscale import jobs
from lmscale.figures import plan_grid
from lmscale.figures.style import save
from lmscale.io import tables
from lmscale.io.files import atomic_writer, read_json
from lmscale.jobs import PlanJob
from lmscale.laws.law import LossLaw, read_law
from lmscale.planning import design, priors, study
from lmscale.planning.study import budget_of, candidates_of, fit_needs, target_runs

log = logging.getLogger(__name__)

UNITS = {"flops": "FLOPs, C = 6ND", "gpu_hours": "device hours"}


def prior_of(job: PlanJob, law_path: str | None, summary_path: str | None, table_path: str | None
             ) -> priors.Prior:
    """The law given in the plan block, else the study's own fit, its backtest's model error and
    the miss its residuals (`table_path`, the backtest's table) share within a size."""
    if job.prior.law is not None:
        try:
            return priors.given_prior(job.prior.law["form"], job.prior.law["params"], job.prior.default_noise_sd)
        except priors.PlanError as error:
            raise priors.PlanError(f"plan.prior: {error}") from None
    if not law_path or not summary_path:
        raise ValueError("the plan reasons from the study's loss law: give --loss-law and --backtest-summary, "
                         "or a law in plan.prior")
    law = read_law(law_path, LossLaw)
    prior = priors.prior_from_law(law, read_json(summary_path)["model_error"]["loss"], None,
                                  job.prior.default_noise_sd)
    return priors.with_shared_miss(prior, tables.read_csv(table_path) if table_path else None)


def own_set_promise(job: PlanJob, candidates: pd.DataFrame, prior: priors.Prior, targets: list[dict]) -> None:
    """Log what the planner promises for the study's own loss fit set, beside its plan."""
    where = {(s, round(m, 9)): i for i, (s, m) in enumerate(zip(candidates["size"], candidates["M"]))}
    own = [where.get((p.size, round(p.M, 9))) for p in job.budget.fit_set]
    if None in own:
        return
    mask = np.zeros(len(candidates), bool)
    mask[own] = True
    expected = design.design_intervals(candidates, prior, targets, mask, job.budget.fit_replicates)
    log.info("the study's own loss fit set (%d runs x %d seeds, %.4g) promises 95%% widths of %s", len(own),
             job.budget.fit_replicates, candidates["cost"][mask].sum() * job.budget.fit_replicates,
             ", ".join(f"{t.name} {100 * t.width:.1f}%" for t in expected.itertuples()))


def make_plan(job: PlanJob, loss: pd.DataFrame | None, prior: priors.Prior,
              train_tokens: dict | None) -> tuple[design.Plan, pd.DataFrame, pd.DataFrame, str]:
    """The plan at the budget from `prior` (prior_of), the candidates it chose from, the frontier,
    and the budget's unit."""
    targets = target_runs(job, loss)
    study.check_targets(job, loss, targets)
    study.check_candidates(job, loss, targets)
    budget, unit = budget_of(job, loss)
    candidates = candidates_of(job, loss, train_tokens, targets, unit)
    needs = fit_needs(job, prior.law, candidates)
    limits = design.SolverLimits(float(job.solver["tolerance"]), int(job.solver["max_solves"]),
                                   float(job.solver["seconds"]))
    log.info("%d candidate runs, budget %.4g %s, prior noise %.3g (%s), targets %s", len(candidates), budget, unit,
             prior.noise_sd, prior.noise_source, ", ".join(t["name"] for t in targets))
    try:
        planned = design.plan(candidates, prior, targets, budget, needs, job.candidates.seeds, limits)
    except design.BudgetError as error:
        raise priors.PlanError(study.budget_refusal(job, error.budget, error.least, error.runs, error.needs, unit)
                               ) from None
    for t in planned.targets.itertuples():
        log.info("expected at %s: %.4g [%.4g, %.4g], 95%% width %.1f%%", t.name, t.loss_prior, t.pi_lo, t.pi_hi,
                 100 * t.width)
    own_set_promise(job, candidates, prior, targets)
    frontier = design.frontier(candidates, prior, targets, budget, job.budget.frontier, needs, job.candidates.seeds,
                               limits)
    return planned, candidates, frontier, unit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, PlanJob)
    # Each optional input may be absent or given no file, as the rule gives what the plan does not read.
    parser.add_argument("--loss-table", nargs="?", help="the study's loss table (candidates from the testbed)")
    parser.add_argument("--loss-law", nargs="?", help="the study's loss law (the prior, unless plan.prior gives one)")
    parser.add_argument("--backtest-summary", nargs="?", help="its backtest's summary (the model error)")
    parser.add_argument("--backtest-table", nargs="?", help="its backtest's table (the miss shared within a size)")
    parser.add_argument("--train-tokens", nargs="?",
                        help="the train split's token summary: runs it cannot feed are left out")
    parser.add_argument("--out", required=True, help="plan.csv: the chosen runs, then the expected interval at each "
                                                     "target")
    parser.add_argument("--fragment", required=True, help="the config keys to paste (YAML)")
    parser.add_argument("--frontier", required=True, help="the expected widths against the budget (CSV)")
    parser.add_argument("--figure", nargs="+", required=True, help="one file per format (.png, .pdf, .svg)")


def main(args) -> None:
    job = args.job
    study.check_stated(job)
    loss = tables.read_loss_table(args.loss_table) if args.loss_table else None
    tokens = read_json(args.train_tokens) if args.train_tokens else None
    prior = prior_of(job, args.loss_law or None, args.backtest_summary or None, args.backtest_table or None)
    planned, candidates, frontier, unit = make_plan(job, loss, prior, tokens)
    tables.write_csv(design.plan_table(planned), args.out)
    with atomic_writer(args.fragment) as handle:
        handle.write(design.config_fragment(planned))
    tables.write_csv(frontier, args.frontier)
    title = (f"{job.dataset} ({job.valset}): {len(planned.runs)} runs x {len(planned.replicate_seeds) + 1} seed(s), "
             f"{planned.cost:.3g} of {planned.budget:.3g}")
    save(plan_grid.plan_figure(candidates, planned.chosen, planned.usable, frontier, planned.budget, UNITS[unit],
                                 title), args.figure, job.dpi)
    log.info("%s: %d runs, cost %.4g of %.4g %s", args.out, len(planned.runs), planned.cost, planned.budget, unit)
