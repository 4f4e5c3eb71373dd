"""`lmscale plan`: the planner (lmscale.planning.design) on a study. The candidate runs are priced (the
compute the laws count, C = 6 N D, and the device hours of the resources model), the budget,
targets and prior law come from the job (the `plan` block) and the study's files; the command
writes plan.csv, the config fragment to paste, the frontier and its figure (docs/planning.md)."""

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
from lmscale.jobs import PlanJob, resources
from lmscale.laws.law import LossLaw
from lmscale.planning import design
from lmscale.training.budget import usable_tokens

log = logging.getLogger(__name__)

UNITS = {"flops": "FLOPs, C = 6ND", "gpu_hours": "device hours"}


def price(job: PlanJob, size: str, multiplier: float) -> dict:
    """A run of one of the study's sizes as training plans it: N as the laws count it, D in whole
    steps, its compute C = 6 N D (`flops`) and its device hours at the resources model's throughput."""
    settings = job.pricing.sizes[size]
    vocab = job.pricing.vocab_size or resources.DEFAULT_VOCAB_SIZE
    cost = resources.estimate(settings, multiplier, vocab)
    n = cost.N if settings["count_embeddings"] else cost.N - resources.embedding_count(settings, vocab)
    return {"size": size, "N": float(n), "M": float(multiplier), "D": float(cost.D), "flops": 6.0 * n * cost.D,
            "gpu_hours": resources.device_hours(cost, settings["threads"])}


def study_runs(job: PlanJob, loss: pd.DataFrame | None) -> pd.DataFrame:
    """The runs of the loss table on the plan's dataset and validation set, one row per (size, M)
    (replicates share it), priced as `price` prices them where the study knows the size."""
    if loss is None:
        raise ValueError("plan.candidates.from = testbed needs the study's loss table (--loss-table)")
    rows = loss[(loss["dataset"] == job.dataset) & (loss["valset"] == job.valset)].drop_duplicates(["size", "M"])
    hours = [price(job, s, m)["gpu_hours"] if s in job.pricing.sizes else np.nan
             for s, m in zip(rows["size"], rows["M"])]
    return pd.DataFrame({"size": rows["size"].astype(str), "N": rows["N"].astype(float), "M": rows["M"].astype(float),
                         "D": rows["D"].astype(float), "flops": rows["C"].astype(float), "gpu_hours": hours})


def grid_runs(job: PlanJob, train_tokens: dict | None) -> pd.DataFrame:
    """Every size of the study x every candidate multiplier, priced; a run whose D the train split
    cannot feed is left out unless its size may repeat data (`train.repeat_data`), as training
    would refuse it."""
    table = pd.DataFrame([price(job, size, m) for size in job.pricing.sizes for m in job.candidates.multipliers])
    if train_tokens is None or table.empty:
        return table
    sizes = job.pricing.sizes
    usable = table["size"].map(lambda size: usable_tokens(train_tokens["tokens"], sizes[size]["context"]))
    fed = (table["D"] <= usable) | table["size"].map(lambda size: bool(sizes[size]["repeat_data"]))
    if not fed.all():
        log.info("left out, as the train split (%d tokens) cannot feed them: %s", train_tokens["tokens"],
                 ", ".join(f"{s}_M{m:g}" for s, m in zip(table["size"][~fed], table["M"][~fed])))
    return table[fed]


def size_N(job: PlanJob, loss: pd.DataFrame | None, size: str) -> float:
    """N of a size as the laws count it: from its shape, else from the loss table."""
    if size in job.pricing.sizes:
        return price(job, size, 1.0)["N"]
    if loss is not None and (loss["size"] == size).any():
        return float(loss.loc[loss["size"] == size, "N"].iloc[0])
    raise ValueError(f"plan target size {size!r} is neither under `sizes` nor in the loss table; give its N instead")


def target_runs(job: PlanJob, loss: pd.DataFrame | None) -> list[dict]:
    """The targets as {name, N, M}, with the size each was given as (None: given by N)."""
    if not job.targets:
        raise ValueError("the plan has no targets: set plan.targets (e.g. [{size: s6, M: 20}]) or held_out")
    return [{"name": t["name"], "size": t["size"], "M": t["M"],
             "N": t["N"] if t["N"] is not None else size_N(job, loss, t["size"])} for t in job.targets]


def candidates_of(job: PlanJob, loss: pd.DataFrame | None, train_tokens: dict | None, targets: list[dict],
                  unit: str) -> pd.DataFrame:
    """The runs the plan chooses from, with their `cost` in `unit`: the candidate sizes (by default
    those smaller than the largest target) at the candidate multipliers, never a target or a
    held-out run."""
    table = grid_runs(job, train_tokens) if job.candidates.source == "grid" else study_runs(job, loss)
    if job.candidates.multipliers is not None:
        table = table[np.isin(np.round(table["M"], 9), np.round(job.candidates.multipliers, 9))]
    if job.candidates.sizes is None:
        table = table[table["N"] < max(t["N"] for t in targets) * (1 - 1e-9)]
    else:
        table = table[table["size"].isin(job.candidates.sizes)]
    kept = np.ones(len(table), bool)
    for target in targets:
        kept &= ~(np.isclose(table["N"], target["N"]) & np.isclose(table["M"], target["M"]))
    for point in job.candidates.held_out:
        kept &= ~((table["size"] == point.size) & np.isclose(table["M"], point.M))
    table = table[kept].assign(cost=table[unit][kept])
    if table["cost"].isna().any():
        raise ValueError(f"plan.budget in {unit} prices runs from the sizes' shapes, but the loss table's sizes "
                         f"{', '.join(sorted(set(table['size'][table['cost'].isna()])))} are not under `sizes`; "
                         "give the budget in flops")
    return table.sort_values(["N", "M"], kind="stable").reset_index(drop=True)


def budget_of(job: PlanJob, loss: pd.DataFrame | None) -> tuple[float, str]:
    """The budget and its unit: as given, else the compute of the study's loss fit set, each run
    as many times as the study trains it (its replicates)."""
    if job.budget.given is not None:
        (unit, amount), = job.budget.given.items()
        return float(amount), unit
    runs = study_runs(job, loss) if job.candidates.source == "testbed" else None
    total = 0.0
    for point in job.budget.fit_set:
        if runs is None:
            total += price(job, point.size, point.M)["flops"]
        else:
            total += float(runs.loc[(runs["size"] == point.size) & np.isclose(runs["M"], point.M), "flops"].iloc[0])
    return total * job.budget.fit_replicates, "flops"


def prior_of(job: PlanJob, law_path: str | None, summary_path: str | None, table_path: str | None
             ) -> design.Prior:
    """The law given in the plan block, else the study's own fit, its backtest's model error and
    the miss its residuals (`table_path`, the backtest's table) share within a size."""
    if job.prior.law is not None:
        return design.given_prior(job.prior.law["form"], job.prior.law["params"], job.prior.default_noise_sd)
    if not law_path or not summary_path:
        raise ValueError("the plan reasons from the study's loss law: give --loss-law and --backtest-summary, "
                         "or a law in plan.prior")
    law = LossLaw.from_json(read_json(law_path))
    prior = design.prior_from_law(law, read_json(summary_path)["model_error"]["loss"], None,
                                  job.prior.default_noise_sd)
    return design.with_shared_miss(prior, tables.read_csv(table_path) if table_path else None)


def fit_needs(job: PlanJob, law: LossLaw, candidates: pd.DataFrame) -> design.FitNeeds:
    needs = job.fit_needs
    return design.FitNeeds(needs["runs"] or len(law.names) + 1, needs["sizes"],
                             needs["multipliers"], needs["per_size"] or len(candidates))


def own_set_promise(job: PlanJob, candidates: pd.DataFrame, prior: design.Prior, targets: list[dict]) -> None:
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


def make_plan(job: PlanJob, loss: pd.DataFrame | None, prior: design.Prior,
              train_tokens: dict | None) -> tuple[design.Plan, pd.DataFrame, pd.DataFrame, str]:
    """The plan at the budget from `prior` (prior_of), the candidates it chose from, the frontier,
    and the budget's unit."""
    targets = target_runs(job, loss)
    budget, unit = budget_of(job, loss)
    candidates = candidates_of(job, loss, train_tokens, targets, unit)
    needs = fit_needs(job, prior.law, candidates)
    limits = design.SolverLimits(float(job.solver["tolerance"]), int(job.solver["max_solves"]),
                                   float(job.solver["seconds"]))
    log.info("%d candidate runs, budget %.4g %s, prior noise %.3g (%s), targets %s", len(candidates), budget, unit,
             prior.noise_sd, prior.noise_source, ", ".join(t["name"] for t in targets))
    planned = design.plan(candidates, prior, targets, budget, needs, job.candidates.seeds, limits)
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
