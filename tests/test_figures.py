"""The study's figures (lmscale.figures.figure), drawn by `lmscale figure` from the files the stages write: the
lab testbed's tables, laws, backtest and predictions (conftest's `lab`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from lmscale import cli
from lmscale.figures import figure as figure_command
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import FigureJob

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lab_files(lab) -> dict:
    """The files the figure rules read, as the stages write them from conftest's `lab`."""
    files = {name: lab["folder"] / name for name in ("loss.csv", "tasks.csv", "loss_law.json", "err.json",
                                                     "err_all.json", "backtest.csv", "backtest.json",
                                                     "predictions.csv", "calibration.json")}
    tables.write_tables(lab["loss"], lab["tasks"], files["loss.csv"], files["tasks.csv"])
    for name, payload in (("loss_law.json", lab["loss_law"]), ("err.json", lab["error_laws"]["err"]),
                          ("err_all.json", lab["error_laws"]["err_all"]), ("backtest.json", lab["summary"]),
                          ("calibration.json", lab["calibration"])):
        atomic_write_json(files[name], payload, sort_keys=False)
    tables.write_csv(lab["pool"], files["backtest.csv"])
    tables.write_csv(lab["predictions"], files["predictions.csv"])
    return {**files, "config": lab["config"]}


def job(files: dict, kind: str) -> str:
    return FigureJob.from_config({**files["config"], "figures": {**files["config"]["figures"], "dpi": 30}}, kind,
                                 "web", "val").to_json()


def test_every_figure_is_drawn_from_the_files_its_rule_names(lab_files, tmp_path):
    inputs = {"loss-heatmap": ["--loss-table", "loss.csv", "--loss-law", "loss_law.json"],
              "loss-vs-compute": ["--loss-table", "loss.csv", "--loss-law", "loss_law.json"],
              "error-heatmap": ["--predictions", "predictions.csv"],
              "error-vs-loss": ["--predictions", "predictions.csv", "--error-law", "err.json",
                                "--error-law-all", "err_all.json"],
              "backtest": ["--backtest", "backtest.csv", "--summary", "backtest.json"],
              "calibration": ["--predictions", "predictions.csv", "--summary", "calibration.json"],
              "isoflop": ["--loss-table", "loss.csv", "--loss-law", "loss_law.json"]}
    # The per-task figure reads the per-task stage's files: test_per_task.py draws it from them.
    assert set(inputs) | {"per-task"} == set(figure_command.FIGURES)
    for kind, flags in inputs.items():
        files = [str(lab_files[flag]) if flag in lab_files else flag for flag in flags]
        assert cli.main(["figure", "--job", job(lab_files, kind), *files, "--out", str(tmp_path / f"{kind}.png")]) == 0
        assert (tmp_path / f"{kind}.png").read_bytes().startswith(PNG), kind


def test_the_loss_heatmap_boxes_the_fit_set_and_dashes_the_held_out_run(lab_files):
    figure = figure_command.loss_heatmap(lab_files["loss.csv"], lab_files["loss_law.json"], "web", "val", 10.0,
                                  [{"size": "s5", "M": 80.0}])
    boxes = [patch for patch in figure.axes[0].patches if isinstance(patch, plt.Rectangle) and not patch.get_fill()]
    dashed = [box for box in boxes if box.get_linestyle() == "--"]
    assert len(boxes) == 5 + 1  # the loss fit set's five runs, and the held-out s5_M80
    # The rows run from the largest size at the top (s5: row 0) and the columns from M = 10 (s5_M80: column 3).
    assert [box.get_xy() for box in dashed] == [(3, 0)]
    plt.close(figure)


def test_the_backtest_has_a_panel_per_law_and_step(lab_files):
    figure = figure_command.backtest(lab_files["backtest.csv"], lab_files["backtest.json"], "web", "val")
    titles = [ax.get_title() for ax in figure.axes]
    assert len(figure.axes) == 3 * 3  # loss, err, err_all by step 0, 1 (s5 left out), 2 (s4, s5)
    # Step 1 left the loss law's fit set as it was: its panel says so instead of drawing it again.
    assert titles[1] == "step 1 (s5 left out):\nloss as at the step before" and not figure.axes[1].axison
    plt.close(figure)
