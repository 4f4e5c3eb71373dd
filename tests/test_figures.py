"""The study's figures (lmscale.figures.study), drawn by `lmscale figure` from the files the stages write: the
lab testbed's tables, laws, backtest and predictions (conftest's `lab`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import QuadMesh

from lmscale import cli
from lmscale.analysis.chain import loss_predictions
from lmscale.figures import study
from lmscale.io import tables
from lmscale.io.files import atomic_write_json, read_json
from lmscale.jobs import FIGURE_INPUTS, FigureJob

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lab_files(lab) -> dict:
    """The files the figure rules read, as the stages write them from conftest's `lab`."""
    files = {name: lab["folder"] / name for name in ("loss.csv", "tasks.csv", "loss_law.json", "err.json",
                                                     "err_all.json", "backtest.csv", "backtest.json",
                                                     "predictions.csv", "calibration.json")}
    tables.write_tables(lab["loss"], lab["tasks"], files["loss.csv"], files["tasks.csv"])
    laws = {"loss_law.json": lab["loss_law"], "err.json": lab["error_laws"]["err"],
            "err_all.json": lab["error_laws"]["err_all"]}
    for name, payload in (*((name, law.to_json()) for name, law in laws.items()), ("backtest.json", lab["summary"]),
                          ("calibration.json", lab["calibration"])):
        atomic_write_json(files[name], payload, sort_keys=False)
    tables.write_csv(lab["pool"], files["backtest.csv"])
    tables.write_csv(lab["predictions"], files["predictions.csv"])
    return {**files, "config": lab["config"]}


def job(files: dict, kind: str) -> str:
    return FigureJob.from_config({**files["config"], "figures": {**files["config"]["figures"], "dpi": 30}}, kind,
                                 "web", "val").to_json()


def test_every_figure_is_drawn_from_the_files_its_rule_names(lab_files, tmp_path):
    inputs = {"loss-heatmap": ["loss.csv", "loss_law.json"], "loss-vs-compute": ["loss.csv", "loss_law.json"],
              "error-heatmap": ["predictions.csv"], "error-vs-loss": ["predictions.csv", "err.json", "err_all.json"],
              "backtest": ["backtest.csv", "backtest.json"], "calibration": ["predictions.csv", "calibration.json"],
              "isoflop": ["loss.csv", "loss_law.json"]}
    # The per-task figure reads the per-task stage's files: test_per_task.py draws it from them.
    assert set(inputs) | {"per-task"} == set(FIGURE_INPUTS)
    for kind, names in inputs.items():
        files = [str(lab_files[name]) for name in names]
        assert cli.main(["figure", "--job", job(lab_files, kind), "--inputs", *files, "--out",
                         str(tmp_path / f"{kind}.png")]) == 0
        assert (tmp_path / f"{kind}.png").read_bytes().startswith(PNG), kind


def test_the_loss_heatmap_boxes_the_fit_set_and_dashes_the_held_out_run(lab_files):
    figure = study.loss_heatmap(lab_files["loss.csv"], lab_files["loss_law.json"], "web", "val", 10.0,
                                [{"size": "s5", "M": 80.0}])
    boxes = [patch for patch in figure.axes[0].patches if isinstance(patch, plt.Rectangle) and not patch.get_fill()]
    dashed = [box for box in boxes if box.get_linestyle() == "--"]
    assert len(boxes) == 5 + 1  # the loss fit set's five runs, and the held-out s5_M80
    # The rows run from the largest size at the top (s5: row 0) and the columns from M = 10 (s5_M80: column 3).
    assert [box.get_xy() for box in dashed] == [(3, 0)]
    plt.close(figure)


def test_the_backtest_has_a_panel_per_law_and_step(lab_files):
    figure = study.backtest(lab_files["backtest.csv"], lab_files["backtest.json"], "web", "val")
    titles = [ax.get_title() for ax in figure.axes]
    assert len(figure.axes) == 3 * 3  # loss, err, err_all by step 0, 1 (s5 left out), 2 (s4, s5)
    # Step 1 left the loss law's fit set as it was: its panel says so instead of drawing it again.
    assert titles[1] == "step 1 (s5 left out):\nloss as at the step before" and not figure.axes[1].axison
    plt.close(figure)


def test_the_heatmaps_are_drawn_by_seaborn_with_every_measured_cell_annotated(lab_files):
    """seaborn.heatmap's cells: one mesh in seaborn's rocket_r palette (a colormap matplotlib lacks
    until seaborn registers it) from 0 to the figure's cap, the largest size in the top row, and each
    measured run's relative error written at its cell's centre, one decimal, as the predictions give it."""
    figure = study.loss_heatmap(lab_files["loss.csv"], lab_files["loss_law.json"], "web", "val", 10.0)
    ax = figure.axes[0]
    (mesh,) = [collection for collection in ax.collections if isinstance(collection, QuadMesh)]
    assert (mesh.cmap.name, mesh.norm.vmin, mesh.norm.vmax) == ("rocket_r", 0.0, 10.0)
    table, _ = loss_predictions(tables.read_loss_table(lab_files["loss.csv"]), read_json(lab_files["loss_law.json"]),
                                "web", "val")
    measured = table[~table["target"] & table["loss_rel_err"].notna()]
    sizes = list(measured.sort_values("N", ascending=False).drop_duplicates("size")["size"])
    multipliers = sorted(measured["M"].unique())
    assert [label.get_text() for label in ax.get_yticklabels()] == sizes
    assert [label.get_text() for label in ax.get_xticklabels()] == [f"{m:g}" for m in multipliers]
    expected = {(multipliers.index(m) + 0.5, sizes.index(size) + 0.5): f"{100 * error:.1f}"
                for size, m, error in zip(measured["size"], measured["M"], measured["loss_rel_err"])}
    assert {tuple(np.round(text.get_position(), 9)): text.get_text() for text in ax.texts} == expected
    assert len(expected) == len(measured) == 5 * 4  # the lab grid: s1 to s5 by M = 10 to 80, every cell measured
    plt.close(figure)


def test_a_figure_given_the_wrong_number_of_inputs_is_refused_in_one_line(lab_files, tmp_path, capsys):
    assert cli.main(["figure", "--job", job(lab_files, "error-vs-loss"), "--inputs", str(lab_files["predictions.csv"]),
                     "--out", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()
