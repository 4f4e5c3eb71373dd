"""Testbed tables given as files (`testbed_format: tables`): a table that would bend a law, or a file
that is no table, is refused in one line naming the file, the line and the column, before any
table is written; a config naming runs the tables lack fails when the workflow is planned; an
edited table reruns what reads it; a folder without tasks.csv is a loss-only study."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lmscale import checks, cli
from lmscale.config import ConfigError, fit_points
from lmscale.io import importers
from lmscale.jobs import FitLossJob, ImportTestbedJob
from lmscale.laws import forms
from tests.workflow import planned_jobs, snakemake, validated_config

SIZES = {"s1": 1.0e8, "s2": 2.0e8, "s3": 4.0e8, "s4": 8.0e8, "s5": 1.6e9}
MULTIPLIERS = [10, 20, 40, 80]
TASKS = {"task_a": 0.0, "task_b": 0.03, "task_c": -0.02}  # offsets from the law's average error
LOSS_LAW = {"E": 1.8, "a": 200.0, "b": 350.0, "eta": 0.14}
ERROR_LAW = {"eps": 0.85, "k": 2.2, "gamma": 0.7}


def lab_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A lab's own results in the tidy form: losses and accuracies that follow known laws."""
    models = pd.DataFrame([{"model": f"{size}_M{m}", "dataset": "web", "size": size, "N": N, "D": m * N}
                           for size, N in SIZES.items() for m in MULTIPLIERS])
    models["loss"] = forms.loss_form("gadre").predict(LOSS_LAW, models["N"], models["D"])
    loss = models.assign(valset="val")[["model", "dataset", "size", "N", "D", "valset", "loss"]]
    error = forms.error_law(models["loss"], **ERROR_LAW)
    tasks = pd.concat([models.assign(task=task, acc=1 - error - offset, random_baseline=0.25)
                       for task, offset in TASKS.items()], ignore_index=True)
    return loss, tasks[["model", "dataset", "task", "acc", "random_baseline"]]


def imported_lab_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`lab_tables` as the stages read them: written to `folder`/testbed and imported (M and C derived,
    each task row given its model's size, N and D)."""
    return importers.import_tables(write_testbed(folder, *lab_tables()), ["web"], ["val"])


def study_config(testbed) -> dict:
    return {
        "study": "lab", "testbed_format": "tables", "testbed_path": str(testbed),
        "datasets": {"web": {}}, "valsets": ["val"], "threshold": 5, "reference_size": "s2",
        "loss_fit_set": [{"size": s, "M": 20} for s in ("s1", "s2", "s3", "s4")] + [{"size": "s1", "M": 80}],
        "error_fit_extra": [{"size": "s5", "M": 20}],
        "held_out": [{"size": "s5", "M": 80}],
        "fit": {"bootstrap": 0}, "figures": {"formats": ["png"]},
    }


def run_study(tmp_path, loss: pd.DataFrame, tasks: pd.DataFrame | None, check: bool = True):
    testbed = tmp_path / "testbed"
    testbed.mkdir()
    loss.to_csv(testbed / "loss.csv", index=False)
    if tasks is not None:
        tasks.to_csv(testbed / "tasks.csv", index=False)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(study_config(testbed)))
    workdir = tmp_path / "work"
    result = snakemake(workdir, "--configfile", str(configfile), check=check)
    return result, workdir / "results" / "lab"


def test_a_lab_study_runs_whole(tmp_path):
    loss, tasks = lab_tables()
    _, results = run_study(tmp_path, loss, tasks)
    loss_law = json.loads((results / "laws/web/val/loss_law.json").read_text())
    assert loss_law["E"] == pytest.approx(LOSS_LAW["E"], rel=1e-3)
    predictions = pd.read_csv(results / "predictions/web/val_t5.csv")
    assert predictions["held_out"].sum() == 1 and predictions["err_pred"].notna().all()


def percent(column):
    def damage(loss, tasks):
        return loss, tasks.assign(**{column: 100 * tasks[column]})
    return damage


def set_cell(table, row, column, value):
    def damage(loss, tasks):
        frame = (loss if table == "loss" else tasks).astype({column: object})
        frame.loc[row, column] = value
        return (frame, tasks) if table == "loss" else (loss, frame)
    return damage


def set_cells(table, row, **values):
    def damage(loss, tasks):
        for column, value in values.items():
            loss, tasks = set_cell(table, row, column, value)(loss, tasks)
        return loss, tasks
    return damage


def repeat_row(table, row):
    def damage(loss, tasks):
        frame = loss if table == "loss" else tasks
        frame = pd.concat([frame, frame.loc[[row]]], ignore_index=True)
        return (frame, tasks) if table == "loss" else (loss, frame)
    return damage


def drop_tasks(rows):
    def damage(loss, tasks):
        return loss, tasks[~rows(tasks)]
    return damage


def wrong_multiplier(loss, tasks):
    loss = loss.assign(M=loss["D"] / loss["N"])
    loss.loc[5, "M"] = 2 * loss.loc[5, "M"]
    return loss, tasks


def one_name_two_sizes(loss, tasks):
    other = loss.loc[[0]].assign(size="s2", N=SIZES["s2"], D=10 * SIZES["s2"], valset="other")
    return pd.concat([loss, other], ignore_index=True), tasks


def with_intervals(low, high):
    """Each loss with a 95% interval [loss - 0.01, loss + 0.01], row 4's replaced by [low, high] (offsets)."""
    def damage(loss, tasks):
        loss = loss.assign(loss_lo=loss["loss"] - 0.01, loss_hi=loss["loss"] + 0.01)
        loss.loc[4, "loss_lo"] = np.nan if low is None else loss.loc[4, "loss"] + low
        loss.loc[4, "loss_hi"] = np.nan if high is None else loss.loc[4, "loss"] + high
        return loss, tasks
    return damage


def baseline_of_reference_size(value):
    """The random baseline of every task set to `value` for the reference size's models alone."""
    def damage(loss, tasks):
        tasks = tasks.copy()
        tasks.loc[tasks["model"].str.startswith("s2_"), "random_baseline"] = value
        return loss, tasks
    return damage


# Each probe of issues #17 and #23: the damage, the file, the row (the line an editor shows: the
# header is line 1, the table's row n is line n + 1) and the column the message must name, the problem.
BAD_TABLES = {
    "accuracies in percent": (percent("acc"), "tasks.csv", "line 2 ", "column 'acc'", "looks like percent"),
    "baselines in percent": (percent("random_baseline"), "tasks.csv", "line 2 ", "column 'random_baseline'",
                             "looks like percent"),
    "an accuracy of 4.2": (set_cell("tasks", 7, "acc", 4.2), "tasks.csv", "line 9 ", "column 'acc'", "outside [0, 1]"),
    "an accuracy of n/a": (set_cell("tasks", 7, "acc", "n/a"), "tasks.csv", "line 9 ", "column 'acc'", "no value"),
    "a duplicated task row": (repeat_row("tasks", 4), "tasks.csv", "line 62 ", "column 'task'", "repeats line 6"),
    "N = -5": (set_cell("loss", 3, "N", -5), "loss.csv", "line 5 ", "column 'N'", "not a positive number"),
    "a model with no task rows": (drop_tasks(lambda t: t["model"] == "s3_M40"), "tasks.csv", "model 's3_M40'",
                                  "column 'model'", "no row"),
    "a model missing one task": (drop_tasks(lambda t: (t["model"] == "s3_M40") & (t["task"] == "task_b")),
                                 "tasks.csv", "line 12 ", "column 'task'", "2 of the 3 tasks"),
    "a duplicated loss row": (repeat_row("loss", 2), "loss.csv", "line 22 ", "column 'valset'", "repeats line 4"),
    "an M that disagrees with D/N": (wrong_multiplier, "loss.csv", "line 7 ", "column 'M'", "disagrees with D / N"),
    "one model name for two sizes": (one_name_two_sizes, "loss.csv", "line 22 ", "column 'size'",
                                     "a model name is one run"),
    "a loss that is not a number": (set_cell("loss", 2, "loss", "abc"), "loss.csv", "line 4 ", "column 'loss'",
                                    "'abc' is not a number"),
    # issue #23
    "a reversed loss interval": (with_intervals(0.01, -0.01), "loss.csv", "line 6 ", "column 'loss_lo'",
                                 "is reversed; loss_lo is the lower end: swap loss_lo and loss_hi"),
    "an interval without its loss": (with_intervals(0.002, 0.01), "loss.csv", "line 6 ", "column 'loss_lo'",
                                     "does not contain the loss"),
    "one end of an interval": (with_intervals(-0.01, None), "loss.csv", "line 6 ", "column 'loss_hi'",
                               "give both loss_lo and loss_hi, or neither"),
    "N = D = 1e300": (set_cells("loss", 2, N=1e300, D=1e300), "loss.csv", "line 4 ", "column 'C'",
                      "6 N D = inf (N = 1e+300, D = 1e+300) is not a finite number"),
    "a loss of 1e300": (set_cell("loss", 1, "loss", 1e300), "loss.csv", "line 3 ", "column 'loss'",
                        "1e+300 is not a mean token loss (above 100 nats)"),
    "an interval to 1e300": (with_intervals(-0.01, 1e300), "loss.csv", "line 6 ", "column 'loss_hi'",
                             "is not a mean token loss"),
    "an infinite M": (lambda loss, tasks: set_cell("loss", 2, "M", np.inf)(loss.assign(M=loss["D"] / loss["N"]),
                                                                          tasks),
                      "loss.csv", "line 4 ", "column 'M'", "inf is not a positive number"),
    "a baseline of 0 for the reference size": (baseline_of_reference_size(0.0), "tasks.csv", "line 6 ",
                                               "column 'random_baseline'", "a task has one random baseline"),
    "a baseline of twenty-five": (set_cell("tasks", 6, "random_baseline", "twenty-five"), "tasks.csv", "line 8 ",
                                  "column 'random_baseline'", "'twenty-five' is not a number"),
}


def run_import(tmp_path, job: ImportTestbedJob) -> tuple[int, list[str], Path]:
    """`lmscale import-testbed` of `job`, in-process: its exit status, the errors it logged, its output folder."""
    out = tmp_path / "out"
    errors = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    try:
        status = cli.main(["import-testbed", "--job", job.to_json(), "--loss-out", str(out / "loss.csv"),
                           "--tasks-out", str(out / "tasks.csv")])
    finally:
        logging.getLogger().removeHandler(handler)
    return status, errors, out


def import_testbed(tmp_path, testbed) -> tuple[int, str, pd.DataFrame | None]:
    """`lmscale import-testbed` on a `tables` folder, in-process: its exit status, the error it logged,
    the loss table it wrote (None, and no file at all, when it refused the tables)."""
    status, errors, out = run_import(tmp_path, ImportTestbedJob("tables", str(testbed), ["web"], ["val"], {}))
    if status != 0:
        assert not out.exists() or not list(out.iterdir()), "a refused table left a file behind"
        return status, errors[0], None
    return status, "", pd.read_csv(out / "loss.csv", dtype={"size": str})


def write_testbed(tmp_path, loss: pd.DataFrame | bytes, tasks: pd.DataFrame | bytes | None):
    testbed = tmp_path / "testbed"
    testbed.mkdir(parents=True, exist_ok=True)
    for name, table in (("loss.csv", loss), ("tasks.csv", tasks)):
        if isinstance(table, bytes):
            (testbed / name).write_bytes(table)
        elif table is not None:
            table.to_csv(testbed / name, index=False)
    return testbed


@pytest.mark.parametrize("probe", BAD_TABLES)
def test_a_bad_table_is_refused_in_one_line_naming_file_line_and_column(tmp_path, probe):
    damage, file, row, column, problem = BAD_TABLES[probe]
    status, message, written = import_testbed(tmp_path, write_testbed(tmp_path, *damage(*lab_tables())))
    assert status == 1 and written is None
    assert "\n" not in message
    for part in (f"testbed/{file}", row, column, problem):
        assert part in message, message


def semicolons(loss, tasks):
    return loss.to_csv(index=False, sep=";").encode(), tasks


def invalid_byte(loss, tasks):
    lines = loss.to_csv(index=False).encode().split(b"\n")
    lines[4] = lines[4].replace(b"web", b"w\xe9b")  # Latin-1, not UTF-8
    return b"\n".join(lines), tasks


# A file that cannot be read as a table: the message names the file and the line, and what to do.
BAD_FILES = {
    "an empty loss.csv": (lambda loss, tasks: (b"", tasks), "testbed/loss.csv: line 1: the file is empty",
                          "a header line naming its columns"),
    "an empty tasks.csv": (lambda loss, tasks: (loss, b""), "testbed/tasks.csv: line 1: the file is empty",
                           "model, dataset, task, acc, random_baseline"),
    "a header-only tasks.csv": (lambda loss, tasks: (loss, b"model,dataset,task,acc,random_baseline\n"),
                                "testbed/tasks.csv: line 1: a header and no rows",
                                "delete tasks.csv for a loss-only study"),
    "a ;-separated table": (semicolons, "testbed/loss.csv: line 1: read one column", "is the separator ';'?"),
    "an invalid byte": (invalid_byte, "testbed/loss.csv: line 5: byte 0xe9", "save the table as UTF-8"),
    "a misspelt column": (lambda loss, tasks: (loss.rename(columns={"loss": "los"}), tasks),
                          "testbed/loss.csv: missing column(s) loss (is 'los' meant to be 'loss'?)",
                          "the table needs model, dataset, size, N, D, valset, loss"),
}


@pytest.mark.parametrize("probe", BAD_FILES)
def test_a_file_that_is_no_table_is_refused_in_one_line(tmp_path, probe):
    damage, where, fix = BAD_FILES[probe]
    status, message, written = import_testbed(tmp_path, write_testbed(tmp_path, *damage(*lab_tables())))
    assert status == 1 and written is None
    assert "\n" not in message and where in message and fix in message, message


def test_size_labels_stay_text(tmp_path):
    """`0.150` is a size's name: read as a number it became `0.15`, which no fit set names (the
    schema has sizes as text: `size: "0.150"`)."""
    loss, tasks = lab_tables()
    labels = {"s1": "0.150", "s2": "0.300", "s3": "0.600", "s4": "1.200", "s5": "2.400"}
    testbed = write_testbed(tmp_path, loss.assign(size=loss["size"].map(labels)), tasks)
    status, _, written = import_testbed(tmp_path, testbed)
    assert status == 0 and sorted(written["size"].unique()) == sorted(labels.values())
    config = study_config(testbed)
    for key in ("loss_fit_set", "error_fit_extra", "held_out"):
        config[key] = [{**point, "size": labels[point["size"]]} for point in config[key]]
    checks.check_imported_study(validated_config({**config, "reference_size": "0.300"}))


def test_a_bad_table_given_to_a_stage_is_refused_there(tmp_path):
    """A table edited after the import (or written by hand) is checked where a stage reads it."""
    loss, _ = repeat_row("loss", 2)(*lab_tables())
    loss.to_csv(tmp_path / "loss.csv", index=False)
    job = FitLossJob("web", "val", fit_points(study_config(tmp_path)["loss_fit_set"]), "gadre", "least_squares", 1e-3,
                     0, 0)
    result = subprocess.run(
        [sys.executable, "-m", "lmscale.cli", "fit-loss", "--job", job.to_json(), "--loss-table",
         str(tmp_path / "loss.csv"), "--out", str(tmp_path / "loss_law.json")], capture_output=True, text=True)
    assert result.returncode == 1 and not (tmp_path / "loss_law.json").exists()
    assert f"{tmp_path / 'loss.csv'}: line 22 (model 's1_M40', valset 'val'), column 'valset': repeats line 4" \
        in result.stderr


def checked_config(testbed, **changes) -> dict:
    """The lab study's config, validated (the schema's defaults filled in), with `changes`."""
    return validated_config({**study_config(testbed), **changes})


# A config that names what the tables lack: refused when the workflow is planned, naming the key.
PLAN_ERRORS = {
    "a fit-set size absent": ({"loss_fit_set": [{"size": "s9", "M": 20}]},
                              "loss_fit_set[0] = {size: s9, M: 20}: no such run in", "no size 's9'"),
    "a fit-set M absent": ({"error_fit_extra": [{"size": "s5", "M": 15}]},
                           "error_fit_extra[0] = {size: s5, M: 15}: no such run in", "size 's5' has M = 10, 20, 40, 80"),
    "a held-out run absent": ({"held_out": [{"size": "s5", "M": 160}]},
                              "held_out[0] = {size: s5, M: 160}: no such run in", "drop it from held_out"),
    "a reference size absent": ({"reference_size": "s7"}, "reference_size = 's7' is not a size of the task results",
                                "its sizes: s1, s2, s3, s4, s5"),
    "a dataset absent": ({"datasets": {"web": {}, "code": {}}}, "datasets: 'code' has no result in",
                         "its datasets: web"),
    "a valset absent": ({"valsets": ["val", "paloma"]}, "has no loss for validation set 'paloma'",
                        "the table's valsets: val"),
}


@pytest.mark.parametrize("probe", PLAN_ERRORS)
def test_an_imported_study_is_checked_when_planned(tmp_path, probe):
    changes, where, fix = PLAN_ERRORS[probe]
    testbed = write_testbed(tmp_path, *lab_tables())
    with pytest.raises(ConfigError) as refused:
        checks.check_imported_study(checked_config(testbed, **changes))
    message = str(refused.value)
    assert "\n" not in message and where in message and fix in message, message


def test_the_dry_run_refuses_what_the_tables_lack(tmp_path):
    """`snakemake -n` stops on a held-out run the tables lack (it used to pass, the prediction skipping
    it with a warning in a log) and on a bad table, one line each, before any file is written."""
    loss, tasks = with_intervals(0.01, -0.01)(*lab_tables())
    for testbed, changes, message in (
            (write_testbed(tmp_path, *lab_tables()), {"held_out": [{"size": "s5", "M": 160}]},
             "held_out[0] = {size: s5, M: 160}: no such run in"),
            (write_testbed(tmp_path / "reversed", loss, tasks), {},
             "testbed/loss.csv: line 6 (model 's2_M10', valset 'val'), column 'loss_lo': [")):
        configfile = testbed.parent / "config.yaml"
        configfile.write_text(yaml.safe_dump({**study_config(testbed), **changes}))
        result = snakemake(testbed.parent / "work", "--dry-run", "--configfile", str(configfile), check=False)
        output = (result.stdout + result.stderr).splitlines()
        assert result.returncode != 0
        header = next(i for i, line in enumerate(output) if line.startswith("ConfigError in file"))
        assert message in output[header + 1] and output[header + 2].startswith("  File"), output
        assert not (testbed.parent / "work" / "results").exists()


def test_a_failing_jobs_error_reaches_the_console(tmp_path):
    """The README's plain command shows a failed job's one-line error (profiles/default: show-failed-
    logs), not only "check log file(s)": here no task is 90 points above chance, which only the
    selection job can tell."""
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump({**study_config(write_testbed(tmp_path, *lab_tables())), "threshold": 90}))
    result = snakemake(tmp_path / "work", "--configfile", str(configfile), check=False)
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0
    errors = [line for line in output if " ERROR lmscale: " in line]
    assert errors and errors[0].split(" ERROR lmscale: ")[1].startswith(
        "no task reaches 90.0 points above chance at size 's2'"), output[-30:]
    assert not (tmp_path / "work" / "results" / "lab" / "laws" / "tasks_t90.json").exists()


def test_a_study_without_tasks_fits_and_draws_the_loss_alone(tmp_path):
    loss, _ = lab_tables()
    result, results = run_study(tmp_path, loss, None)
    assert "loss-only study" in result.stderr and "error laws and the error figures are skipped" in result.stderr
    law = json.loads((results / "laws/web/val/loss_law.json").read_text())
    assert law["E"] == pytest.approx(LOSS_LAW["E"], rel=1e-3)
    predictions = pd.read_csv(results / "predictions/web/val_loss.csv")
    assert len(predictions) == len(loss) and "err_pred" not in predictions.columns
    assert predictions.loc[predictions["held_out"], "model"].tolist() == ["s5_M80"]
    for figure in ("loss_heatmap", "loss_vs_compute"):
        assert (results / f"figures/web/val/{figure}.png").stat().st_size > 5000
    assert not list(results.glob("laws/**/error_law*")) and not list(results.glob("laws/tasks_*"))
    assert "loss-only study" in (results / "logs/predict/web/val_loss.log").read_text()
    rerun_what_an_edited_table_feeds(tmp_path, loss)


def rerun_what_an_edited_table_feeds(tmp_path, loss: pd.DataFrame) -> None:
    """After a finished study: loss.csv rewritten with the same content reruns nothing (Snakemake 9
    compares the checksum it recorded); a fit run's loss raised 10% reruns the import and every law,
    prediction and figure that reads the tables, and the law refitted has the new loss."""
    args = ("--configfile", str(tmp_path / "config.yaml"))
    table = tmp_path / "testbed" / "loss.csv"
    table.write_bytes(table.read_bytes())  # the same bytes, a newer mtime
    assert planned_jobs(tmp_path / "work", *args) == {}
    edited = loss.copy()
    edited.loc[edited["model"] == "s1_M20", "loss"] *= 1.1
    edited.to_csv(table, index=False)
    rerun = planned_jobs(tmp_path / "work", *args)
    assert rerun.pop("import_testbed") == 1 and rerun.pop("fit_loss") == 1, rerun
    assert {"backtest", "predict", "loss_heatmap", "loss_vs_compute"} <= set(rerun), rerun
    # The law is what the edit must reach; the jobs downstream of it were planned above.
    snakemake(tmp_path / "work", "results/lab/laws/web/val/loss_law.json", *args)
    law = json.loads((tmp_path / "work/results/lab/laws/web/val/loss_law.json").read_text())
    refitted = next(run["loss"] for run in law["fit_set"] if run["model"] == "s1_M20")
    assert refitted == pytest.approx(float(edited.loc[edited["model"] == "s1_M20", "loss"].iloc[0]), rel=1e-12)


def chinchilla_tables(points: pd.DataFrame) -> pd.DataFrame:
    """Epoch's extraction of Chinchilla's runs as a loss table: one model per point, D = C / 6N."""
    N = points["Model Size"].to_numpy(float)
    return pd.DataFrame({
        "model": [f"chinchilla_{i:03d}" for i in range(len(points))], "dataset": "chinchilla",
        "size": [f"{n / 1e6:.0f}M" for n in N], "N": N, "D": points["Training FLOP"].to_numpy(float) / (6 * N),
        "valset": "massivetext", "loss": points["loss"].to_numpy(float),
    })


def test_chinchillas_published_losses_are_a_loss_only_study(tmp_path, chinchilla_epoch2024):
    """Chinchilla's 245 runs (Epoch AI's extraction) have losses only. Fitted as Epoch did (the five
    highest losses left out, Huber on log loss), the workflow gives Epoch's law."""
    loss = chinchilla_tables(pd.read_csv(chinchilla_epoch2024 / "points.csv"))
    testbed = tmp_path / "chinchilla"
    testbed.mkdir()
    loss.to_csv(testbed / "loss.csv", index=False)
    fit = loss.sort_values("loss").iloc[:-5]
    config = {
        "study": "chinchilla", "testbed_format": "tables", "testbed_path": str(testbed),
        "datasets": {"chinchilla": {}}, "valsets": ["massivetext"],
        "loss_fit_set": [{"size": s, "M": float(d / n)} for s, n, d in zip(fit["size"], fit["N"], fit["D"])],
        "fit": {"form": "chinchilla", "method": "huber", "bootstrap": 0}, "figures": {"formats": ["png"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path / "work", "--configfile", str(tmp_path / "config.yaml"))
    results = tmp_path / "work" / "results" / "chinchilla"
    law = json.loads((results / "laws/chinchilla/massivetext/loss_law.json").read_text())
    epoch = {"E": 1.817, "A": 477.8, "B": 2143.9, "alpha": 0.347, "beta": 0.367}
    assert {name: law[name] for name in epoch} == pytest.approx(epoch, rel=0.01)
    predictions = pd.read_csv(results / "predictions/chinchilla/massivetext_loss.csv")
    assert len(predictions) == 245 and np.isfinite(predictions["loss_pred"]).all()
    for figure in ("loss_heatmap", "loss_vs_compute"):
        assert (results / f"figures/chinchilla/massivetext/{figure}.png").exists()
