"""The testbed: two tidy tables, the seam between training and analysis.

`testbed/loss.csv`  one row per model x validation set:
    model, dataset, size, N, D, M, C, valset, loss, loss_lo, loss_hi
`testbed/tasks.csv` one row per model x downstream task:
    model, dataset, size, N, D, M, C, task, acc, random_baseline   (fractions in [0, 1])

Everything upstream writes these (a trained study through `collect`, a
published one through the importer); everything downstream reads only them.
Both are checked wherever they are read or written (`normalise_*`): a value
that would bend a law (an accuracy in percent, a duplicated row, a negative N,
an interval that does not hold its loss, a C that overflows) stops the stage
with one line naming the file, the row and the column. A row of a file is named
by its line as an editor numbers it (the header is line 1); a row of a table
built in memory by its position, from 1.
"""

from __future__ import annotations

import difflib
import logging

import numpy as np
import pandas as pd

from lmscale.config import Point
from lmscale.io.files import atomic_writer
from lmscale.io.table_files import LINE, TableError, read_table

MODEL_COLUMNS = ["model", "dataset", "size", "N", "D", "M", "C"]
LOSS_COLUMNS = MODEL_COLUMNS + ["valset", "loss", "loss_lo", "loss_hi"]
TASK_COLUMNS = MODEL_COLUMNS + ["task", "acc", "random_baseline"]

# C = 6 N D holds exactly where a table gives C. M is the run's nominal token multiplier (the
# grid's label, which fit sets name) while D counts the tokens trained, rounded to whole optimizer
# steps: D / N may differ from M by half a step (under 1% in a run of 60 steps). A larger gap is
# a wrong M, not rounding.
C_TOLERANCE = 1e-6
M_TOLERANCE = 0.05
LOSS_LIMIT = 100.0
QUANTITIES = {"N": "parameters", "D": "tokens", "M": "tokens per parameter", "C": "FLOPs"}

log = logging.getLogger(__name__)


def require_columns(table: pd.DataFrame, required: list[str], source: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        have = [str(c) for c in table.columns if c not in required and c != LINE]
        close = {c: difflib.get_close_matches(c, have, n=1) for c in missing}
        hint = "".join(f" (is {close[c][0]!r} meant to be {c!r}?)" for c in missing if close[c])
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}{hint}; the table needs {', '.join(required)}"
        )


def _where(table: pd.DataFrame, position: int, source: str, column: str, item: str) -> str:
    """'loss.csv: line 4 (model 's1_M20', valset 'heldout'), column 'loss'' for the row at `position`."""
    row = table.iloc[position]
    label = ", ".join(f"{key} {_show(row[key])}" for key in ("model", item)
                      if key in table.columns and pd.notna(row[key]))
    return f"{source}: {row_name(table, position)} ({label}), column {column!r}"


def row_name(table: pd.DataFrame, position: int) -> str:
    """'line 4' for a row read from a file (the line an editor shows), else 'row 3' (from 1)."""
    if LINE in table.columns:
        return f"line {int(table[LINE].iloc[position])}"
    return f"row {position + 1}"


def rows_named(table: pd.DataFrame, positions) -> str:
    """Rows of a table (positions) as a message names them: 'line 14', 'lines 40-51', 'lines 3, 9 and 15'
    for rows read from a file; 'row 3' for a table built in memory (as row_name)."""
    positions = [int(p) for p in positions]
    if not positions:
        return "no row"
    if LINE not in table.columns:
        numbers, word = [p + 1 for p in positions], "row"
    else:
        numbers, word = [int(table[LINE].iloc[p]) for p in positions], "line"
    numbers = sorted(numbers)
    if len(numbers) == 1:
        return f"{word} {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{word}s {numbers[0]}-{numbers[-1]}"
    if len(numbers) > 4:
        return f"{word}s {', '.join(map(str, numbers[:3]))} and {len(numbers) - 3} more"
    return f"{word}s {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def rows_of(table: pd.DataFrame, dataset: str, model: str, **labels) -> list[int]:
    """The positions of the rows of `model` in `dataset` (and the `labels` given: valset, or task
    among a list of tasks)."""
    match = (table["dataset"].astype(str) == str(dataset)) & (table["model"].astype(str) == str(model))
    for column, value in labels.items():
        match &= table[column].isin(value if isinstance(value, (list, tuple, set)) else [value])
    return [int(p) for p in np.flatnonzero(match.to_numpy())]


def lines_in_file(path, dataset: str, model: str, **labels) -> str:
    """The lines of the table file `path` (as a person wrote it: read again with its line numbers)
    that hold `model` of `dataset` (rows_of), as a message names them ('line 14')."""
    raw = read_table(path, ["model", "dataset", *labels])
    return rows_named(raw, rows_of(raw, dataset, model, **labels))


def _show(value) -> str:
    """A cell as a message quotes it: numbers plainly (1e+08), anything else in quotes."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else repr(str(value))


def numbers(table: pd.DataFrame, column: str, source: str, item: str) -> pd.Series:
    """A column as floats; a value that is missing or not a number stops here."""
    raw = table[column]
    missing = raw.isna() | raw.astype(str).str.strip().eq("")
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise TableError(f"{_where(table, position, source, column, item)}: no value; every row needs one")
    values = pd.to_numeric(raw, errors="coerce")
    if values.isna().any():
        position = int(np.flatnonzero(values.isna())[0])
        raise TableError(f"{_where(table, position, source, column, item)}: {raw.iloc[position]!r} is not a number; "
                         f"write it in digits (0.25, 1.5e8)")
    return values.astype(float)


def _check_model_columns(table: pd.DataFrame, source: str, item: str) -> pd.DataFrame:
    """N and D positive; M and C, where given, consistent with them; M and C derived where not.
    Every number finite, those derived too: N = D = 1e300 would make C infinite."""
    given = [column for column in ("M", "C") if column in table.columns]
    for column in ("model", "dataset", "size", item):
        missing = table[column].isna() | table[column].astype(str).str.strip().eq("")
        if missing.any():
            raise TableError(f"{_where(table, int(np.flatnonzero(missing)[0]), source, column, item)}: "
                             f"no value; every row needs one")
    for column in ("N", "D", *given):
        table[column] = numbers(table, column, source, item)
        bad = ~(np.isfinite(table[column]) & (table[column] > 0))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise TableError(f"{_where(table, position, source, column, item)}: {table[column].iloc[position]:g} "
                             f"is not a positive number of {QUANTITIES[column]}")
    with np.errstate(over="ignore"):
        derived = {"M": table["D"] / table["N"], "C": 6.0 * table["N"] * table["D"]}
    for column, tolerance, formula in (("M", M_TOLERANCE, "D / N"), ("C", C_TOLERANCE, "6 N D")):
        overflow = ~np.isfinite(derived[column])
        if overflow.any():
            position = int(np.flatnonzero(overflow)[0])
            row = table.iloc[position]
            raise TableError(
                f"{_where(table, position, source, column, item)}: {formula} = {derived[column].iloc[position]:g} "
                f"(N = {row['N']:g}, D = {row['D']:g}) is not a finite number; N counts the model's parameters "
                f"and D its training tokens: correct them")
        if column not in given:
            table[column] = derived[column]
            continue
        off = ~np.isclose(table[column], derived[column], rtol=tolerance, atol=0)
        if off.any():
            position = int(np.flatnonzero(off)[0])
            raise TableError(
                f"{_where(table, position, source, column, item)}: {table[column].iloc[position]:.6g} disagrees with "
                f"{formula} = {derived[column].iloc[position]:.6g} (by more than {tolerance:g} relative); "
                f"correct it, or leave the column out to derive it from N and D")
    table["size"] = table["size"].astype(str)
    return table


def _check_rows(table: pd.DataFrame, source: str, item: str) -> None:
    """One row per (dataset, model, item); one size, N, D, M and C per model name."""
    key = ["dataset", "model", item]
    repeated = table.duplicated(key)
    if repeated.any():
        again = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero((table[key] == table.iloc[again][key]).all(axis=1))[0])
        raise TableError(f"{_where(table, again, source, item, item)}: repeats {row_name(table, first)}; "
                         f"each model has one row per {item}: drop one of them")
    for column in ("size", "N", "D", "M", "C"):
        first = table.groupby(["dataset", "model"], sort=False)[column].transform("first")
        differs = table[column] != first
        if differs.any():
            position = int(np.flatnonzero(differs)[0])
            model = table.iloc[position]
            earlier = int(np.flatnonzero((table["dataset"] == model["dataset"]) & (table["model"] == model["model"]))[0])
            raise TableError(
                f"{_where(table, position, source, column, item)}: {_show(model[column])} here, "
                f"{_show(table.iloc[earlier][column])} in {row_name(table, earlier)}; a model name is one run: "
                f"give each (dataset, size, N, D) its own model name")


def _require_fractions(table: pd.DataFrame, column: str, source: str, item: str) -> None:
    values = table[column]
    outside = ~values.between(0, 1)
    if outside.any():
        position = int(np.flatnonzero(outside)[0])
        hint = ""
        if values.between(0, 100).all() and (values > 1).mean() > 0.5:
            hint = (f"; the column looks like percent ({values.min():g} to {values.max():g}): write fractions, "
                    f"i.e. divide it by 100")
        raise TableError(f"{_where(table, position, source, column, item)}: {values.iloc[position]:g} is outside "
                         f"[0, 1]{hint}")


def complete_model_columns(table: pd.DataFrame, source: str, item: str) -> pd.DataFrame:
    """Checked model columns, with M = D / N and C = 6 N D derived where a table leaves them out."""
    table = table.reset_index(drop=True)
    require_columns(table, ["model", "dataset", "size", "N", "D", item], source)
    if table.empty:
        raise TableError(f"{source}: a header and no rows below it; give a line per model and {item}")
    return _check_model_columns(table.copy(), source, item)


def normalise_loss_table(table: pd.DataFrame, source: str = "loss table") -> pd.DataFrame:
    require_columns(table, ["model", "dataset", "size", "N", "D", "valset", "loss"], source)
    table = complete_model_columns(table, source, "valset")
    table["loss"] = numbers(table, "loss", source, "valset")
    bad = ~(np.isfinite(table["loss"]) & (table["loss"] > 0))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise TableError(f"{_where(table, position, source, 'loss', 'valset')}: {table['loss'].iloc[position]:g} "
                         f"is not a positive mean token loss")
    _require_loss_scale(table, "loss", source)
    for column in ("loss_lo", "loss_hi"):  # optional intervals: a row may leave them empty
        raw = table[column] if column in table.columns else pd.Series(np.nan, index=table.index)
        values = pd.to_numeric(raw, errors="coerce")
        wrong = values.isna() & raw.notna()
        if wrong.any():
            position = int(np.flatnonzero(wrong)[0])
            raise TableError(f"{_where(table, position, source, column, 'valset')}: {raw.iloc[position]!r} is not "
                             f"a number; leave it empty if the interval is unknown")
        table[column] = values.astype(float)
    _require_loss_scale(table, "loss_hi", source)
    _check_intervals(table, source)
    _check_rows(table, source, "valset")
    return table[LOSS_COLUMNS].sort_values(["dataset", "N", "M", "valset"]).reset_index(drop=True)


def _require_loss_scale(table: pd.DataFrame, column: str, source: str) -> None:
    """A mean token loss is a few nats (a model guessing uniformly among 50k tokens has 10.8): one
    above LOSS_LIMIT is a sum, a perplexity or a typo, and would wreck the fit or its intervals."""
    above = table[column] > LOSS_LIMIT
    if above.any():
        position = int(np.flatnonzero(above)[0])
        raise TableError(f"{_where(table, position, source, column, 'valset')}: {table[column].iloc[position]:g} is "
                         f"not a mean token loss (above {LOSS_LIMIT:g} nats); give the mean loss per token in nats "
                         f"(the log of a perplexity)")


def _check_intervals(table: pd.DataFrame, source: str) -> None:
    """Each loss's 95% interval, where a row gives one: both ends, finite, ordered, holding the loss.
    (A reversed interval gives the loss law a negative evaluation_sd; one that misses its loss
    widens every prediction interval.)"""
    low, high, loss = table["loss_lo"], table["loss_hi"], table["loss"]
    half = low.isna() != high.isna()
    if half.any():
        position = int(np.flatnonzero(half)[0])
        empty = "loss_lo" if pd.isna(low.iloc[position]) else "loss_hi"
        raise TableError(f"{_where(table, position, source, empty, 'valset')}: no value, while the other end of "
                         f"the interval has one; give both loss_lo and loss_hi, or neither")
    given = low.notna()
    problems = {
        "is not a finite interval; correct it, or leave both ends empty":
            given & ~(np.isfinite(low) & np.isfinite(high)),
        "is reversed; loss_lo is the lower end: swap loss_lo and loss_hi": given & (low > high),
        "does not contain the loss {loss:g}; an interval holds its loss: correct loss_lo and loss_hi, or leave "
        "both empty": given & ~((low <= loss) & (loss <= high)),
    }
    for problem, bad in problems.items():
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            interval = f"[{low.iloc[position]:g}, {high.iloc[position]:g}]"
            raise TableError(f"{_where(table, position, source, 'loss_lo', 'valset')}: {interval} "
                             f"{problem.format(loss=loss.iloc[position])}")


def _check_one_baseline(table: pd.DataFrame, source: str) -> None:
    """A task's random baseline is its chance accuracy, the same for every model: one that differs
    would move the task's margin over chance, and with it the selection."""
    first = table.groupby("task", sort=False)["random_baseline"].transform("first")
    differs = ~np.isclose(table["random_baseline"], first, rtol=1e-9, atol=1e-12)
    if differs.any():
        position = int(np.flatnonzero(differs)[0])
        task = table["task"].iloc[position]
        earlier = int(np.flatnonzero(table["task"] == task)[0])
        raise TableError(
            f"{_where(table, position, source, 'random_baseline', 'task')}: "
            f"{table['random_baseline'].iloc[position]:g} here, {first.iloc[position]:g} in "
            f"{row_name(table, earlier)}; a task has one random baseline (its chance accuracy) for every "
            f"model: give task {task!r} the same baseline in every row")


def normalise_task_table(table: pd.DataFrame, source: str = "tasks table") -> pd.DataFrame:
    require_columns(table, ["model", "dataset", "size", "N", "D", "task", "acc", "random_baseline"], source)
    table = complete_model_columns(table, source, "task")
    for column in ("acc", "random_baseline"):
        table[column] = numbers(table, column, source, "task")
        _require_fractions(table, column, source, "task")
    _check_rows(table, source, "task")
    _check_one_baseline(table, source)
    tasks = set(table["task"])
    for (dataset, model), have in table.groupby(["dataset", "model"], sort=False)["task"]:
        if set(have) != tasks:
            missing = sorted(tasks - set(have))
            position = int(np.flatnonzero((table["dataset"] == dataset) & (table["model"] == model))[0])
            raise TableError(
                f"{_where(table, position, source, 'task', 'task')}: model {model!r} has {len(set(have))} of the "
                f"{len(tasks)} tasks (no {', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''}); "
                f"an average error over fewer tasks is not comparable: give every model every task")
    return table[TASK_COLUMNS].sort_values(["dataset", "N", "M", "task"]).reset_index(drop=True)


def check_same_models(loss: pd.DataFrame, tasks: pd.DataFrame | None, loss_source: str, tasks_source: str) -> None:
    """The tasks table, unless empty (a loss-only study), has every model of the loss table, the same run each."""
    if tasks is None or tasks.empty:
        return
    runs = ["dataset", "model", "size", "N", "D"]
    both = loss[runs].drop_duplicates(["dataset", "model"]).merge(
        tasks[runs].drop_duplicates(["dataset", "model"]), on=["dataset", "model"], how="outer",
        suffixes=("", "_tasks"), indicator="side")
    for row in both.to_dict("records"):
        model = f"model {row['model']!r} (dataset {row['dataset']!r})"
        if row["side"] == "left_only":
            raise TableError(f"{tasks_source}, column 'model': no row of {model}, which {loss_source} has; its "
                             f"average error would be missing: give every model its task results (or give no "
                             f"tasks.csv, for a loss-only study)")
        if row["side"] == "right_only":
            raise TableError(f"{tasks_source}: {model} is not in {loss_source}; add its losses or drop its task rows")
        for column in ("size", "N", "D"):
            if row[column] != row[f"{column}_tasks"]:
                raise TableError(f"{tasks_source}: {model}, column {column!r}: {_show(row[f'{column}_tasks'])} "
                                 f"here, {_show(row[column])} in {loss_source}; a model name is one run")


def write_tables(loss: pd.DataFrame, tasks: pd.DataFrame | None, loss_path, tasks_path) -> None:
    loss = normalise_loss_table(loss)
    tasks = pd.DataFrame(columns=TASK_COLUMNS) if tasks is None else normalise_task_table(tasks)
    check_same_models(loss, tasks, str(loss_path), str(tasks_path))
    write_csv(loss, loss_path)
    write_csv(tasks, tasks_path)


def write_csv(table: pd.DataFrame, path) -> None:
    with atomic_writer(path) as handle:
        table.to_csv(handle, index=False)


def read_csv(path) -> pd.DataFrame:
    """A table lmscale wrote, as pandas reads it; `read_table` reads one a person may have written."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise TableError(f"{path}: not a readable CSV table ({error})") from None


def read_loss_table(path) -> pd.DataFrame:
    return normalise_loss_table(read_table(path, LOSS_COLUMNS[:5] + ["valset", "loss"]), str(path))


def read_task_table(path) -> pd.DataFrame:
    return normalise_task_table(read_table(path, TASK_COLUMNS[:5] + ["task", "acc", "random_baseline"]), str(path))


def read_tables(loss_path, tasks_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables, each checked, and checked against each other."""
    loss, tasks = read_loss_table(loss_path), read_task_table(tasks_path)
    check_same_models(loss, tasks, str(loss_path), str(tasks_path))
    return loss, tasks


def average_error(tasks: pd.DataFrame, task_names: list[str] | None = None) -> pd.DataFrame:
    """Average top-1 error over `task_names` (all tasks when None), one row per model.

    A model missing any of the tasks is an error: an average over fewer tasks
    would not be comparable with the others.
    """
    if task_names is not None:
        tasks = tasks[tasks["task"].isin(task_names)]
        expected = len(set(task_names))
    else:
        expected = tasks["task"].nunique()
    if tasks.empty:
        raise ValueError("no task results to average; is the tasks table empty?")
    grouped = tasks.groupby(["dataset", "model"])
    counts = grouped["task"].nunique()
    short = counts[counts < expected]
    if len(short):
        (dataset, model), count = next(iter(short.items()))
        raise ValueError(
            f"model {model!r} ({dataset}) has results for {count} of the {expected} tasks averaged"
        )
    errors = grouped.agg(err=("acc", lambda acc: float(np.mean(1.0 - acc)))).reset_index()
    return errors


# ---------------------------------------------------------------- collect a trained study


def runs_at(table: pd.DataFrame, dataset: str, points: list[Point], purpose: str) -> pd.DataFrame:
    """The rows of `dataset` at each point (size, M) of a fit set, in the fit set's order.

    A point with no run is an error naming it and the runs that exist, since a
    fit on fewer points than declared would silently change the law.
    """
    rows = table[table["dataset"] == dataset]
    picked = []
    for point in points:
        size, multiplier = point.size, point.M
        match = rows[(rows["size"] == size) & np.isclose(rows["M"], multiplier, rtol=1e-6)]
        if match.empty:
            have = sorted({f"{s}@M{m:g}" for s, m in zip(rows["size"], rows["M"])})
            raise ValueError(
                f"{purpose}: no run of size {size!r} at M = {multiplier:g} in dataset {dataset!r}; "
                f"runs present: {', '.join(have) or 'none'}"
            )
        picked.append(match)
    return pd.concat(picked).drop_duplicates().reset_index(drop=True)
