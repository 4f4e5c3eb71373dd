"""The retrospective of docs/planning.md: the planner on the paper's testbed (Gadre et al., 2024),
where every candidate run already exists, so that a plan is scored without training.

Candidates: the testbed's runs smaller than 1.4B. Targets: 1.4B at M = 640 and 6.9B at M = 20.
Budget: the compute of the paper's loss fit set (configs/gadre2024.yaml), and 1/4 and 4 times it.
Each plan's runs are fitted as the study fits its own (least squares, 200 bootstrap refits) and
compared, per dataset, with the paper's fit set and with random valid sets of the same budget.

    PYTHONPATH=src python docs/planning.py --testbed ../shared/testbeds/gadre2024 --out docs/planning

Writes retrospective.csv (every budget, dataset and scored run), frontier.csv (the planner's
expected widths from 1/4x to 4x) and one figure per dataset, and prints the tables of the page.
`--per-size 2` caps the runs of one size (the page's sensitivity check); `--prior-noise` scores
every set with the prior's noise of a run instead of its own residuals' (another); `--monte-carlo`
prints only the widths at 1x with other bootstrap seeds and 2,000 refits.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from snakemake.utils import validate

from lmscale import config as lmconfig
from lmscale.figures import plan_grid
from lmscale.io import importers
from lmscale.planning import design, retrospective

REPO = Path(__file__).resolve().parents[1]
VALSET = "c4_val"
# One more run than the law's 4 parameters, so that its residuals show the noise; the cap per
# size is set by --per-size.
NEEDS = design.FitNeeds(runs=5, sizes=2, multipliers=2, per_size=8)
LIMITS = design.SolverLimits(tolerance=1e-4, max_solves=200, seconds=60)
FRONTIER = (0.25, 0.5, 1.0, 2.0, 4.0)


def study_config() -> dict:
    config = lmconfig.load_yaml(REPO / "configs" / "gadre2024.yaml")
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return config


def targets_of(loss: pd.DataFrame, dataset: str) -> list[dict]:
    rows = loss[(loss["dataset"] == dataset) & (loss["valset"] == VALSET)]
    N = rows.groupby("size")["N"].first()
    return [{"name": "1.4B_M640", "N": float(N["1.4B"]), "M": 640.0},
            {"name": "6.9B_M20", "N": float(N["6.9B"]), "M": 20.0}]


def percent(value) -> str:
    return "" if pd.isna(value) else f"{100 * value:.1f}"


def markdown(table: pd.DataFrame) -> str:
    """The page's table: one row per budget, dataset and target."""
    lines = ["| budget | dataset | target | truth | planned: error / width (%) | inside "
             "| paper's set: error / width (%) | random sets wider (%) | wider or missing (%) "
             "| expected width (%) | expected / fitted |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in table.itertuples():
        inside = "" if pd.isna(row.plan_inside) else ("yes" if row.plan_inside else "**no**")
        truth = "" if pd.isna(row.truth) else f"{row.truth:.3f}"
        lines.append(f"| {row.factor:g}x | {row.dataset} | {row.target} | {truth} "
                     f"| {percent(row.plan_error)} / {percent(row.plan_width)} | {inside} "
                     f"| {percent(row.own_error)} / {percent(row.own_width)} | {percent(row.random_wider)} "
                     f"| {percent(row.random_wider_or_missing)} | {percent(row.expected_width)} "
                     f"| {row.expected_to_fitted:.2f} |")
    return "\n".join(lines)


def monte_carlo(loss: pd.DataFrame, config: dict, dataset: str, needs: design.FitNeeds) -> list[str]:
    """The widths of the paper's set and the plan at 1x with other bootstrap seeds and 2,000
    refits: how much of a difference between two sets is the bootstrap's own Monte Carlo noise."""
    prior, job = retrospective.study_prior(loss, config, dataset, VALSET)
    targets = targets_of(loss, dataset)
    candidates = retrospective.testbed_candidates(loss, dataset, VALSET, targets[0]["N"])
    own = retrospective.indices_of(candidates, [(p["size"], p["M"]) for p in config["loss_fit_set"]])
    planned = design.plan(candidates, prior, targets, float(candidates["cost"].iloc[own].sum()), needs, [0], LIMITS)
    lines = []
    for refits, seed in ((200, 0), (200, 1), (200, 2), (2000, 0)):
        refit = replace(job, bootstrap=refits, seed=seed)
        widths = [retrospective.score(loss, refit, candidates, chosen, prior.model_error, targets)["width"]
                  for chosen in (own, np.flatnonzero(planned.chosen))]
        lines.append(f"| {dataset} | {refits} | {seed} | {' / '.join(percent(w) for w in widths[0])} "
                     f"| {' / '.join(percent(w) for w in widths[1])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", required=True, help="the published release of Gadre et al. (gadre2024)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--factors", default="0.25,1,4")
    parser.add_argument("--random", type=int, default=200)
    parser.add_argument("--from-all", action="store_true", help="random sets from every candidate, not the eligible")
    parser.add_argument("--per-size", type=int, default=NEEDS.per_size, help="at most this many runs of one size")
    parser.add_argument("--prior-noise", action="store_true",
                        help="score every set with the prior's noise of a run, not its own residuals' noise")
    parser.add_argument("--monte-carlo", action="store_true",
                        help="only the widths at 1x with other bootstrap seeds and 2,000 refits")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = study_config()
    loss, _ = importers.import_gadre2024(args.testbed, list(config["datasets"]), config["valsets"],
                                        config["size_labels"])
    needs = replace(NEEDS, per_size=args.per_size)
    suffix = "_from_all" if args.from_all else ""
    suffix += f"_per_size{args.per_size}" if args.per_size != NEEDS.per_size else ""
    suffix += "_prior_noise" if args.prior_noise else ""
    if args.monte_carlo:
        print("| dataset | refits | seed | paper's set: width (%) | planned: width (%) |")
        print("| --- | --- | --- | --- | --- |")
        for dataset in config["datasets"]:
            print("\n".join(monte_carlo(loss, config, dataset, needs)))
        return
    setting = retrospective.Setting(needs, LIMITS, args.random, 0, not args.from_all, args.prior_noise)
    tables, frontiers = [], []
    for dataset in config["datasets"]:
        targets = targets_of(loss, dataset)
        done = retrospective.retrospective(loss, config, dataset, VALSET, targets,
                                                [float(f) for f in args.factors.split(",")], setting)
        tables.append(done.table)
        budget = float(done.table["budget"][done.table["factor"] == 1.0].iloc[0])
        frontier = design.frontier(done.candidates, done.prior, targets, budget, FRONTIER, needs, [0], LIMITS)
        frontiers.append(frontier.assign(dataset=dataset))
        plan = done.plans[1.0]
        figure = plan_grid.plan_figure(done.candidates, plan.chosen, plan.usable, frontier, budget, "FLOPs",
                                         f"{dataset}: the plan at the paper's fit-set compute")
        figure.savefig(out / f"{dataset}_plan{suffix}.png", dpi=120)
        print(f"\n{dataset}: {design.config_fragment(plan)}")
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / f"retrospective{suffix}.csv", index=False, float_format="%.6g")
    pd.concat(frontiers, ignore_index=True).to_csv(out / f"frontier{suffix}.csv", index=False, float_format="%.6g")
    by_budget = table.sort_values("factor", kind="stable")  # the datasets stay in the config's order
    print(markdown(by_budget[by_budget["planner_target"]]))
    print("\nevery run at or above 1.4B:\n" + markdown(by_budget[~by_budget["planner_target"]]))


if __name__ == "__main__":
    main()
