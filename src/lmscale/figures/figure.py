"""`lmscale figure`: one figure of a study, picked by its job's kind, drawn from the files its rule
names and saved in every format asked. The drawing is lmscale.figures.study's (the heatmaps, loss
vs compute, error vs loss, the backtest and the calibration), lmscale.figures.isoflop's and
lmscale.figures.task_panels' (each task's error law)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lmscale import jobs
from lmscale.figures import isoflop, study, style, task_panels
from lmscale.io import tables
from lmscale.jobs import FIGURE_INPUTS, FigureJob
from lmscale.laws.law import LossLaw, read_law


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, FigureJob)
    kinds = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in FIGURE_INPUTS.items())
    parser.add_argument("--inputs", nargs="+", required=True, metavar="FILE",
                        help=f"the files the figure's kind reads, in this order ({kinds})")
    parser.add_argument("--out", nargs="+", required=True, help="one file per format (.png, .pdf, .svg)")


def read_inputs(kind: str, paths: list[str]) -> dict[str, str]:
    """The input files by name, as the figure's kind reads them."""
    if kind not in FIGURE_INPUTS:
        raise ValueError(f"unknown figure {kind!r}; one of {', '.join(FIGURE_INPUTS)}")
    names = FIGURE_INPUTS[kind]
    if len(paths) != len(names):
        raise ValueError(f"a {kind} figure reads {len(names)} files ({', '.join(names)}), in that order; "
                         f"--inputs gave {len(paths)}")
    return dict(zip(names, paths))


def main(args) -> None:
    job = args.job
    files = read_inputs(job.kind, args.inputs)
    style.apply()
    held_out = [asdict(point) for point in job.held_out or []]
    if job.kind == "loss-heatmap":
        figure = study.loss_heatmap(files["loss_table"], files["loss_law"], job.dataset, job.valset, job.max_percent,
                                    held_out)
    elif job.kind == "error-heatmap":
        figure = study.error_heatmap(files["predictions"], job.dataset, job.valset, job.max_percent)
    elif job.kind == "loss-vs-compute":
        figure = study.loss_vs_compute(files["loss_table"], files["loss_law"], job.dataset, job.valset, held_out)
    elif job.kind == "error-vs-loss":
        figure = study.error_vs_loss(files["predictions"], files["error_law"], files["error_law_all"], job.dataset,
                                     job.valset)
    elif job.kind == "backtest":
        figure = study.backtest(files["backtest"], files["summary"], job.dataset, job.valset)
    elif job.kind == "calibration":
        figure = study.calibration(files["predictions"], files["summary"], job.dataset, job.valset)
    elif job.kind == "isoflop":
        figure = isoflop.isoflop_figure(tables.read_loss_table(files["loss_table"]),
                                        read_law(files["loss_law"], LossLaw), job.dataset, job.valset, job.budgets)
    else:  # per-task
        figure = task_panels.draw(files["per_task"], files["summary"], job.dataset, job.valset)
    style.save(figure, args.out, job.dpi)
