"""Import published results into the testbed tables.

Two formats:
- `gadre2024`: the release of Gadre et al. (2024): `models/<run>.json`,
  `evals/evaluation_<run>_heavy.json` and `eval_metadata.csv`;
- `tables`: `loss.csv` (and optionally `tasks.csv`) already in the testbed's
  tidy form, so a lab's own results are analysed with no code.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale.io import tables
from lmscale.io.table_files import read_table
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
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _field(record: dict, dotted: str, path: Path, within: str = ""):
    """`record`'s value at `dotted` (a.b.c); a key that is missing is named with the file."""
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path}: missing field {within + dotted!r}; is the file from the release?")
        value = value[key]
    return value


def _number(record: dict, dotted: str, path: Path, within: str = "") -> float:
    """A field that must be a positive finite number, as a float."""
    value = _field(record, dotted, path, within)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{path}: field {within + dotted!r} = {value!r} is not a positive number")
    return number


def _baselines(metadata_path: Path) -> dict[str, float]:
    """Every task's random baseline (a fraction) from the release's eval_metadata.csv, one line per task."""
    if not metadata_path.exists():
        raise FileNotFoundError(f"missing file {metadata_path} (the tasks' random baselines)")
    metadata = read_table(metadata_path, ["Eval Task", "Random baseline"])
    tables.require_columns(metadata, ["Eval Task", "Random baseline"], str(metadata_path))
    repeated = metadata["Eval Task"].duplicated()
    if repeated.any():
        again = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(metadata["Eval Task"] == metadata["Eval Task"].iloc[again])[0])
        raise tables.TableError(f"{metadata_path}: {tables.row_name(metadata, again)}, column 'Eval Task': "
                                 f"{metadata['Eval Task'].iloc[again]!r} repeats {tables.row_name(metadata, first)}; "
                                 f"keep one line per task")
    percent = tables.numbers(metadata, "Random baseline", str(metadata_path), "Eval Task")
    return dict(zip(metadata["Eval Task"], percent / 100.0))


def _model(record: dict, path: Path, size_labels: dict[str, str]) -> dict:
    """A release model's columns of the tables: name, dataset, size, N, D, M, C."""
    architecture = Path(str(_field(record, "hyperparameters.model", path))).stem
    N = _number(record, "hyperparameters.params", path)
    D = _number(record, "hyperparameters.tokens", path)
    C = 6.0 * N * D
    if not math.isfinite(C):
        raise ValueError(f"{path}: 6 N D = {C:g} is not a finite number (hyperparameters.params = {N:g}, "
                         f"hyperparameters.tokens = {D:g}); params counts parameters and tokens the tokens trained")
    return {
        "model": record.get("name", path.stem),
        "dataset": _field(record, "dataset_name", path),
        "size": size_labels.get(architecture, architecture),
        "N": N,
        "D": D,
        # The release states M as a multiple of Chinchilla's 20 tokens per parameter.
        "M": 20.0 * _number(record, "hyperparameters.chinchilla_multiplier", path),
        "C": C,
    }


def _loss_rows(record: dict, path: Path, model: dict, valsets: list[str]) -> list[dict]:
    """A release model's loss on every validation set it was evaluated on (the chosen ones among them)."""
    results = _field(record, "results", path)
    if not isinstance(results, list):
        raise ValueError(f"{path}: field 'results' is not a list of evaluations")
    losses = {}
    for index, result in enumerate(results):
        within = f"results[{index}]."
        val_data = _field(result, "val_data", path, within)
        if not (isinstance(val_data, list) and val_data and isinstance(val_data[0], str)):
            raise ValueError(f"{path}: field {within}val_data = {val_data!r} is not a list of shard paths")
        interval = {}
        for column, key in (("loss_lo", "loss_sequences_lower_95"), ("loss_hi", "loss_sequences_upper_95")):
            interval[column] = _number(result, key, path, within) if result.get(key) is not None else None
        losses[valset_name(val_data[0])] = {"loss": _number(result, "loss", path, within), **interval}
    for valset in valsets:
        if valset not in losses:
            raise ValueError(
                f"{path}: model {model['model']!r} has no loss for validation set {valset!r} "
                f"(it has {', '.join(sorted(losses))})"
            )
    return [{**model, "valset": valset, **result} for valset, result in losses.items()]


def _task_rows(eval_path: Path, model: dict, baselines: dict[str, float], metadata_path: Path) -> list[dict]:
    accuracies = _field(_read_json(eval_path), "eval_metrics.icl", eval_path)
    if not isinstance(accuracies, dict):
        raise ValueError(f"{eval_path}: field 'eval_metrics.icl' is not a table of task accuracies")
    rows = []
    for task, acc in accuracies.items():
        if task not in baselines:
            raise ValueError(f"{eval_path}: task {task!r} is missing from {metadata_path}")
        if isinstance(acc, bool) or not isinstance(acc, (int, float)):
            raise ValueError(f"{eval_path}: field 'eval_metrics.icl.{task}' = {acc!r} is not a number")
        rows.append({**model, "task": task, "acc": float(acc), "random_baseline": baselines[task]})
    return rows


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
    baselines = _baselines(metadata_path)
    loss_rows, task_rows, found = [], [], set()
    for path in model_files:
        record = _read_json(path)
        found.add(str(_field(record, "dataset_name", path)))
        if record["dataset_name"] not in datasets:
            continue
        model = _model(record, path, size_labels)
        loss_rows += _loss_rows(record, path, model, valsets)
        task_rows += _task_rows(folder / "evals" / f"evaluation_{path.stem}_heavy.json", model, baselines,
                                metadata_path)
    _require_datasets(datasets, found, folder / "models")
    return (
        tables.normalise_loss_table(pd.DataFrame(loss_rows), str(folder)),
        tables.normalise_task_table(pd.DataFrame(task_rows), str(folder)),
    )


def _require_datasets(datasets: list[str], found: set[str], source: Path) -> None:
    for dataset in datasets:
        if dataset not in found:
            raise ValueError(f"datasets: {dataset!r} has no result in {source} (its datasets: "
                             f"{', '.join(sorted(found)) or 'none'}); name datasets of the testbed under `datasets`")


def import_tables(folder, datasets: list[str], valsets: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read `loss.csv` and the optional `tasks.csv` of a folder in the testbed's own form."""
    folder = Path(folder)
    loss_path = folder / "loss.csv"
    if not loss_path.exists():
        raise FileNotFoundError(f"missing file {loss_path}; a `tables` testbed needs loss.csv (tasks.csv optional)")
    every_loss = tables.read_loss_table(loss_path)
    _require_datasets(datasets, set(every_loss["dataset"]), loss_path)
    loss = every_loss[every_loss["dataset"].isin(datasets)]
    for valset in valsets:
        have = set(loss.loc[loss["valset"] == valset, "model"])
        lacking = sorted(set(loss["model"]) - have)
        if lacking:
            known = ", ".join(sorted(set(loss["valset"])))
            raise ValueError(f"{loss_path}: model {lacking[0]!r} has no loss for validation set {valset!r} "
                             f"(the table's valsets: {known}); name one under `valsets` that every model has")
    tasks_path = folder / "tasks.csv"
    tasks = _read_tasks(tasks_path, every_loss, loss_path) if tasks_path.exists() else None
    if tasks is not None:
        tasks = tasks[tasks["dataset"].isin(datasets)]
        tables.check_same_models(loss, tasks, str(loss_path), str(tasks_path))
    return loss, tasks


def _read_tasks(tasks_path: Path, every_loss: pd.DataFrame, loss_path: Path) -> pd.DataFrame:
    """tasks.csv, checked; task rows may leave the model's size, N and D to the loss table."""
    tasks = read_table(tasks_path, ["model", "dataset", "task", "acc", "random_baseline"])
    if tasks.empty:
        raise tables.TableError(f"{tasks_path}: line 1: a header and no rows below it; give a line per model and "
                                 f"task, or delete tasks.csv for a loss-only study")
    if not {"N", "D"} <= set(tasks.columns):
        tables.require_columns(tasks, ["model", "dataset"], str(tasks_path))
        models = every_loss.drop_duplicates(["dataset", "model"])[["dataset", "model", "size", "N", "D"]]
        known = pd.MultiIndex.from_frame(models[["dataset", "model"]])
        unknown = ~pd.MultiIndex.from_frame(tasks[["dataset", "model"]]).isin(known)
        if unknown.any():
            row = int(unknown.nonzero()[0][0])
            raise tables.TableError(f"{tasks_path}: {tables.row_name(tasks, row)}, column 'model': model "
                                     f"{tasks['model'].iloc[row]!r} is not in {loss_path}")
        tasks = tasks.drop(columns=[c for c in ("size",) if c in tasks.columns]).merge(
            models, on=["dataset", "model"], how="left"
        )
    return tables.normalise_task_table(tasks, str(tasks_path))


def read_testbed(job: ImportTestbedJob) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The tables of an imported testbed, checked: the release's or the folder's own."""
    if job.format == "gadre2024":
        return import_gadre2024(job.path, job.datasets, job.valsets, job.size_labels)
    if job.format == "tables":
        return import_tables(job.path, job.datasets, job.valsets)
    raise ValueError(f"unknown testbed format {job.format!r}; gadre2024 or tables")


def testbed_files(job: ImportTestbedJob) -> list[str]:
    """Every file of the testbed the import reads, to be its rule's inputs: an edited file then
    reruns the import and whatever reads the tables, and nothing else."""
    folder = Path(job.path)
    if job.format == "tables":
        files = [folder / "loss.csv", folder / "tasks.csv"]
    else:
        models = sorted((folder / "models").glob("*.json"))
        files = [folder / "eval_metadata.csv", *models,
                 *(folder / "evals" / f"evaluation_{path.stem}_heavy.json" for path in models)]
    return [str(path) for path in files if path.exists()]
