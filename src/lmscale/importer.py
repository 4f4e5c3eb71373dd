"""Import published results into the testbed tables.

Two formats:
- `gadre2024`: the release of Gadre et al. (2024): `models/<run>.json`,
  `evals/evaluation_<run>_heavy.json` and `eval_metadata.csv`;
- `tables`: `loss.csv` (and optionally `tasks.csv`) already in the testbed's
  tidy form, so a lab's own results are analysed with no code.
"""

from __future__ import annotations

import argparse
import logging
import json
import re
from pathlib import Path

import pandas as pd

from lmscale import jobs, testbed
from lmscale.jobs import ImportTestbedJob

log = logging.getLogger(__name__)


def valset_name(val_data_path: str) -> str:
    """The validation set a published result was computed on.

    The set is named by the folder holding its shards (`c4_val/shard-0000.tar`
    -> `c4_val`), unless the file itself carries the name (`de-en/val_de-en_100.tar`
    -> `val_de-en_100`).
    """
    path = Path(val_data_path)
    stem = path.name.split(".")[0]
    if stem.startswith("shard") or not re.search(r"[A-Za-z]", stem):
        return path.parent.name
    return stem


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _field(record: dict, dotted: str, path: Path):
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path}: missing field {dotted!r}")
        value = value[key]
    return value


def import_gadre2024(
    folder, datasets: list[str], valsets: list[str], size_labels: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the published release: every model of `datasets`, its losses and its 46 task accuracies."""
    folder = Path(folder)
    size_labels = size_labels or {}
    model_files = sorted((folder / "models").glob("*.json"))
    if not model_files:
        raise FileNotFoundError(
            f"no model files in {folder / 'models'}; set testbed_path to the folder of the published release"
        )
    metadata_path = folder / "eval_metadata.csv"
    if not metadata_path.exists():
        raise FileNotFoundError(f"missing file {metadata_path} (the tasks' random baselines)")
    metadata = testbed.read_csv(metadata_path)
    testbed.require_columns(metadata, ["Eval Task", "Random baseline"], str(metadata_path))
    baselines = dict(zip(metadata["Eval Task"], metadata["Random baseline"] / 100.0))

    loss_rows, task_rows = [], []
    for path in model_files:
        record = _read_json(path)
        dataset = _field(record, "dataset_name", path)
        if dataset not in datasets:
            continue
        architecture = Path(_field(record, "hyperparameters.model", path)).stem
        N = float(_field(record, "hyperparameters.params", path))
        D = float(_field(record, "hyperparameters.tokens", path))
        model = {
            "model": record.get("name", path.stem),
            "dataset": dataset,
            "size": size_labels.get(architecture, architecture),
            "N": N,
            "D": D,
            # The release states M as a multiple of Chinchilla's 20 tokens per parameter.
            "M": 20.0 * float(_field(record, "hyperparameters.chinchilla_multiplier", path)),
            "C": 6.0 * N * D,
        }
        losses = {}
        for result in _field(record, "results", path):
            losses[valset_name(result["val_data"][0])] = result
        for valset in valsets:
            if valset not in losses:
                raise ValueError(
                    f"{path}: model {model['model']!r} has no loss for validation set {valset!r} "
                    f"(it has {', '.join(sorted(losses))})"
                )
        for valset, result in losses.items():
            loss_rows.append(
                {
                    **model,
                    "valset": valset,
                    "loss": result["loss"],
                    "loss_lo": result.get("loss_sequences_lower_95"),
                    "loss_hi": result.get("loss_sequences_upper_95"),
                }
            )
        eval_path = folder / "evals" / f"evaluation_{path.stem}_heavy.json"
        accuracies = _field(_read_json(eval_path), "eval_metrics.icl", eval_path)
        for task, acc in accuracies.items():
            if task not in baselines:
                raise ValueError(f"{eval_path}: task {task!r} is missing from {metadata_path}")
            task_rows.append({**model, "task": task, "acc": float(acc), "random_baseline": baselines[task]})
    if not loss_rows:
        raise ValueError(f"{folder}: no model of the datasets {', '.join(datasets)} in the release")
    return (
        testbed.normalise_loss_table(pd.DataFrame(loss_rows), str(folder)),
        testbed.normalise_task_table(pd.DataFrame(task_rows), str(folder)),
    )


def import_tables(folder, datasets: list[str], valsets: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read `loss.csv` and the optional `tasks.csv` of a folder in the testbed's own form."""
    folder = Path(folder)
    loss_path = folder / "loss.csv"
    if not loss_path.exists():
        raise FileNotFoundError(f"missing file {loss_path}; a `tables` testbed needs loss.csv (tasks.csv optional)")
    every_loss = testbed.read_loss_table(loss_path)
    loss = every_loss[every_loss["dataset"].isin(datasets)]
    if loss.empty:
        raise ValueError(f"{loss_path}: no row of the datasets {', '.join(datasets)}")
    for valset in valsets:
        have = set(loss.loc[loss["valset"] == valset, "model"])
        lacking = sorted(set(loss["model"]) - have)
        if lacking:
            raise ValueError(f"{loss_path}: model {lacking[0]!r} has no loss for validation set {valset!r}")
    tasks_path = folder / "tasks.csv"
    tasks = None
    if tasks_path.exists():
        tasks = testbed.read_csv(tasks_path)
        if not {"N", "D"} <= set(tasks.columns):
            # Task rows may leave the model's N and D to the loss table.
            testbed.require_columns(tasks, ["model", "dataset"], str(tasks_path))
            models = every_loss.drop_duplicates(["dataset", "model"])[["dataset", "model", "size", "N", "D"]]
            known = pd.MultiIndex.from_frame(models[["dataset", "model"]])
            unknown = ~pd.MultiIndex.from_frame(tasks[["dataset", "model"]]).isin(known)
            if unknown.any():
                row = int(unknown.nonzero()[0][0])
                raise testbed.TableError(f"{tasks_path}: row {row + 1}, column 'model': model "
                                         f"{tasks['model'].iloc[row]!r} is not in {loss_path}")
            tasks = tasks.drop(columns=[c for c in ("size",) if c in tasks.columns]).merge(
                models, on=["dataset", "model"], how="left"
            )
        tasks = testbed.normalise_task_table(tasks, str(tasks_path))
        tasks = tasks[tasks["dataset"].isin(datasets)]
        testbed.check_same_models(loss, tasks, str(loss_path), str(tasks_path))
    return loss, tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, ImportTestbedJob)
    parser.add_argument("--loss-out", required=True)
    parser.add_argument("--tasks-out", required=True)


def main(args) -> None:
    job = args.job
    if job.format == "gadre2024":
        loss, tasks = import_gadre2024(job.path, job.datasets, job.valsets, job.size_labels)
    elif job.format == "tables":
        loss, tasks = import_tables(job.path, job.datasets, job.valsets)
    else:
        raise ValueError(f"unknown testbed format {job.format!r}; gadre2024 or tables")
    testbed.write_tables(loss, tasks, args.loss_out, args.tasks_out)
    log.info("imported %d models (%d loss rows, %d task rows) from %s", loss["model"].nunique(), len(loss),
             0 if tasks is None else len(tasks), job.path)
