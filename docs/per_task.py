"""The tables and figures of docs/per_task.md: per-task predictions on the paper's testbed.

    python docs/per_task.py --results results/gadre2024 --config configs/gadre2024.yaml --out docs/per_task

`--results` is the folder of a run of the gadre2024 preset (its testbed/ tables, laws/ and the
selection at t). Each dataset's per-task table and summary are computed as the preset's per_task job
(`lmscale.jobs.PerTaskJob.from_config`: every task a candidate) with one change: the 1.4B run at
M = 640 exists on RedPajama only, so on the other datasets it is predicted as a target of its own
(named 1.4B_M640). They are written to per_task_docs/{dataset}/{valset}_t{t}.csv/.json there (the
workflow's own, per_task/..., are the same but for that target) and read back on the next run.
Prints, as Markdown: each kept task's error at 6.9B M = 20 and 1.4B M = 640 (predicted, measured, 95%
prediction interval) per dataset; the calibration per dataset; the tasks whose law did not fit, with
why. Writes {dataset}.png, the per-task figure, into `--out`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from lmscale.analysis import task_laws
from lmscale.figures import task_panels
from lmscale.io import tables
from lmscale.io.files import atomic_write_json, read_json
from lmscale.jobs import PerTaskJob

REPO = Path(__file__).resolve().parents[1]
DATASETS = {"c4_original": "C4", "rpj": "RedPajama", "rw_original": "RefinedWeb"}
SHOWN = (("6.9B", 20.0), ("1.4B", 640.0))


def validated(config_path: Path) -> dict:
    """The preset as the workflow sees it: the schema's defaults filled in."""
    config = yaml.safe_load(config_path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return config


def targets_for(config: dict, loss: pd.DataFrame, dataset: str) -> list[dict]:
    """The preset's targets, and each shown run this dataset lacks as a target of its own."""
    targets = list(config["targets"])
    rows = loss[loss["dataset"] == dataset]
    for size, multiplier in SHOWN:
        if not ((rows["size"] == size) & (rows["M"] == multiplier)).any():
            N = float(loss.loc[loss["size"] == size, "N"].iloc[0])
            targets.append({"name": f"{size}_M{multiplier:g}", "N": N, "M": multiplier})
    return targets


def per_task_results(results: Path, config: dict, dataset: str) -> tuple[pd.DataFrame, dict]:
    """The dataset's per-task table and summary, computed and written where missing."""
    valset, tag = config["valsets"][0], f"t{config['threshold']:g}"
    stem = results / "per_task_docs" / dataset / f"{valset}_{tag}"
    if not stem.with_suffix(".json").exists():
        loss, tasks = tables.read_tables(results / "testbed" / "loss.csv", results / "testbed" / "tasks.csv")
        kept = read_json(results / "laws" / f"tasks_{tag}.json")["tasks"]
        job = replace(PerTaskJob.from_config(config, dataset, valset, tag), targets=targets_for(config, loss, dataset))
        rows, summary = task_laws.per_task(loss, tasks, read_json(results / "laws" / dataset / valset / "loss_law.json"),
                                          job, kept)
        tables.write_csv(rows, stem.with_suffix(".csv"))
        atomic_write_json(stem.with_suffix(".json"), summary, sort_keys=False)
    return pd.read_csv(stem.with_suffix(".csv")), read_json(stem.with_suffix(".json"))


def shown_runs(table: pd.DataFrame, unfit: dict) -> str:
    """Each kept task's error at the shown runs: predicted [95% PI], measured, relative error."""
    header = ["task"] + [f"{size} M = {multiplier:g}: predicted [95% PI] | measured | error"
                         for size, multiplier in SHOWN]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: | ---: | ---: |" * len(SHOWN)]
    kept = table[table["kept"]]
    for task, rows in kept.groupby("task"):
        cells = [task]
        for size, multiplier in SHOWN:
            trained = (rows["size"] == size) & (rows["M"] == multiplier)
            run = rows[trained | (rows["model"] == f"{size}_M{multiplier:g}")]  # or the target standing for it
            if run.empty:
                cells.append("-")
                continue
            row = run.iloc[0]
            interval = ("law <= 0: no interval" if row["below_zero"]
                        else f"[{row['err_pi_lo']:.3f}, {row['err_pi_hi']:.3f}]")
            measured = "not trained" if pd.isna(row["err"]) else f"{row['err']:.3f}"
            outside = "" if row["err_pi_lo"] <= row["err"] <= row["err_pi_hi"] else " (outside)"
            error = "" if pd.isna(row["err"]) else f" | {100 * row['rel_err']:.1f}%{outside}"
            cells.append(f"{row['err_pred']:.3f} {interval} | {measured}{error or ' | -'}")
        lines.append("| " + " | ".join(cells) + " |")
    for task, why in sorted(unfit.items()):
        if why["kept"]:
            lines.append(f"| {task} | no law (below) |" + " |" * (3 * len(SHOWN) - 1))
    return "\n".join(lines)


def held_out_line(table: pd.DataFrame) -> str:
    """The kept tasks at each trained held-out run, in accuracy points: the median miss, how many
    within 2 points (OLMo's ladder's yardstick), how many inside their interval."""
    lines = []
    for size, multiplier in SHOWN:
        rows = table[table["kept"] & (table["size"] == size) & (table["M"] == multiplier) & table["err"].notna()]
        if rows.empty:
            continue
        points = 100 * (rows["err_pred"] - rows["err"]).abs()
        inside = (rows["err"] >= rows["err_pi_lo"]) & (rows["err"] <= rows["err_pi_hi"])
        lines.append(f"{size} at M = {multiplier:g}: median miss {points.median():.1f} accuracy points; within 2 "
                     f"points on {int((points <= 2).sum())} of {len(rows)} kept tasks; inside the 95% prediction "
                     f"interval on {int(inside.sum())} of {len(rows)}.")
    return " ".join(lines)


def calibration_rows(dataset: str, summary: dict) -> list[str]:
    lines = []
    for key, label in (("outside_fit_sets", "every task with a law"), ("kept_tasks", "kept tasks"),
                       ("held_out", "held-out runs")):
        c = summary["calibration"][key]
        if not c["runs"]:
            continue
        exact = c.get("width_to_error_if_exact")
        lines.append(f"| {DATASETS[dataset]} | {label} | {c['runs']} | {100 * c['coverage']:.1f}% | "
                     f"{100 * c['median_half_width']:.2f}% | {100 * c['median_relative_error']:.2f}% | "
                     f"{c['width_to_error']:.2f} | {f'{exact[0]:.1f}-{exact[2]:.1f}' if exact else '-'} | "
                     f"{100 * c['confidence_coverage']:.0f}% | {c['below_zero']} |")
    return lines


def unfit_rows(dataset: str, summary: dict) -> list[str]:
    return [f"| {DATASETS[dataset]} | {task}{' (kept)' if why['kept'] else ''} | {why['reason']} |"
            for task, why in sorted(summary["unfit"].items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a gadre2024 preset's results folder")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "gadre2024.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "per_task")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = validated(args.config)
    calibration = ["| dataset | tasks | (task, run) pairs | inside the 95% PI | median PI half-width | median error | "
                   "ratio | ratio if exact (90%) | inside the 95% CI | law <= 0 |", "| --- |" + " ---: |" * 9]
    unfit = ["| dataset | task | why no law |", "| --- | --- | --- |"]
    args.out.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS:
        table, summary = per_task_results(args.results, config, dataset)
        print(f"### {DATASETS[dataset]}\n\n{shown_runs(table, summary['unfit'])}\n\n{held_out_line(table)}\n")
        calibration += calibration_rows(dataset, summary)
        unfit += unfit_rows(dataset, summary)
        figure = task_panels.per_task_figure(table, summary, dataset, config["valsets"][0])
        figure.savefig(args.out / f"{dataset}.png", dpi=110)
    print("### Calibration\n\n" + "\n".join(calibration) + "\n\n### Tasks without a law\n\n" + "\n".join(unfit))


if __name__ == "__main__":
    main()
