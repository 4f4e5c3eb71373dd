"""`lmscale collect`: assemble the testbed tables from a trained study's evals."""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from lmscale.io.files import read_json
from lmscale.io.tables import TASK_COLUMNS, write_tables

log = logging.getLogger(__name__)


def collect(run_jsons: list[str], loss_evals: list[str], task_evals: list[str], loss_out, tasks_out) -> None:
    """Assemble the tables from a trained study's run.json and evaluation files."""
    runs = {}
    for path in run_jsons:
        run = read_json(path)
        runs[(run["dataset"], run["model"])] = {
            "model": run["model"],
            "dataset": run["dataset"],
            "size": run["size"],
            "N": run["N"],
            "D": run["D"],
            "M": run["M"],
            "C": run["C"],
        }

    def model_row(record: dict, path: str) -> dict:
        key = (record["dataset"], record["model"])
        if key not in runs:
            raise ValueError(f"{path}: no run.json for model {record['model']!r} of dataset {record['dataset']!r}")
        return runs[key]

    loss_rows = []
    for path in loss_evals:
        record = read_json(path)
        loss_rows.append(
            {
                **model_row(record, path),
                "valset": record["valset"],
                "loss": record["loss"],
                "loss_lo": record.get("loss_lo"),
                "loss_hi": record.get("loss_hi"),
            }
        )
    task_rows = []
    for path in task_evals:
        record = read_json(path)
        for task, result in record["tasks"].items():
            task_rows.append(
                {
                    **model_row(record, path),
                    "task": task,
                    "acc": result["acc"],
                    "random_baseline": result["random_baseline"],
                }
            )
    tasks = pd.DataFrame(task_rows, columns=TASK_COLUMNS) if task_rows else None
    write_tables(pd.DataFrame(loss_rows), tasks, loss_out, tasks_out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="*", default=[], help="run.json of every trained model")
    parser.add_argument("--loss-evals", nargs="*", default=[], help="validation-loss JSON files")
    parser.add_argument("--task-evals", nargs="*", default=[], help="downstream-task JSON files")
    parser.add_argument("--loss-out", required=True)
    parser.add_argument("--tasks-out", required=True)


def main(args) -> None:
    collect(args.runs, args.loss_evals, args.task_evals, args.loss_out, args.tasks_out)
    log.info("collected %d runs, %d loss evals, %d task evals", len(args.runs), len(args.loss_evals),
             len(args.task_evals))
