"""The prediction stage (lmscale.analysis.chain): loss by the loss law, then average error by the error law,
for every model of the testbed and every declared target, with the held-out runs flagged; on a
testbed that follows its laws exactly (conftest's `lab`), every prediction is the truth and inside its
interval."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lmscale import cli
from lmscale.analysis import chain, rollout
from lmscale.io import tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import FigureJob, PerTaskJob, Point
from lmscale.laws import forms, uncertainty
from lmscale.laws.law import LawError, LossLaw
from tests.test_backtest import TARGET
from tests.test_tables import LOSS_LAW


def test_every_model_and_target_is_predicted_through_both_laws(lab):
    table, summary = lab["predictions"], lab["calibration"]
    runs = table[~table["target"]]
    assert len(runs) == 20 and runs["loss_rel_err"].max() < 1e-9 and runs["err_rel_err"].max() < 1e-9
    assert runs.loc[runs["held_out"], "model"].tolist() == ["s5_M80"]
    target = table[table["target"]].iloc[0]
    assert (target["model"], target["D"], np.isnan(target["loss"])) == ("s6", 20 * TARGET["N"], True)
    expected = forms.loss_form("gadre").predict(LOSS_LAW, TARGET["N"], 20 * TARGET["N"])
    assert target["loss_pred"] == pytest.approx(expected, rel=1e-9)
    assert target["err_pred"] == pytest.approx(forms.error_law(expected, **lab["error_laws"]["err"]["params"]))
    for law in ("loss", "err", "err_all"):  # a prediction interval holds the confidence interval and the truth
        assert (table[f"{law}_pi_lo"] <= table[f"{law}_ci_lo"]).all() and (table[f"{law}_ci_hi"] <= table[
            f"{law}_pi_hi"]).all()
        assert ((runs[f"{law}_pi_lo"] <= runs[law]) & (runs[law] <= runs[f"{law}_pi_hi"])).all(), law
    # Checked on every run outside the fit sets (the held-out one among them), each on a result it did not shape.
    assert summary["outside_fit_sets"]["loss"]["runs"] == 14 and summary["held_out"]["loss"]["runs"] == 1
    assert summary["outside_fit_sets"]["err"]["coverage"] == 1.0


def test_a_loss_only_study_predicts_the_loss_alone(lab):
    pool = lab["pool"].loc[lab["pool"]["law"] == "loss", uncertainty.POOL_COLUMNS]
    table, summary = chain.predict(lab["loss"], None, lab["loss_law"], {}, pool, lab["predict_job"])
    assert "err_pred" not in table.columns and table["loss_pred"].notna().all()
    assert list(summary["outside_fit_sets"]) == ["loss"]


def test_a_held_out_run_in_a_fit_set_is_refused(lab):
    job = replace(lab["predict_job"], held_out=[Point("s1", 20.0)])
    with pytest.raises(ValueError, match="held-out run s1 at M = 20 is in a fit set"):
        chain.predict(lab["loss"], lab["tasks"], lab["loss_law"], lab["error_laws"],
                        lab["pool"][uncertainty.POOL_COLUMNS], job)


def edited_lab_files(lab, folder, law: str, params: dict) -> dict:
    """The lab's tables, laws and backtest as the stages write them, with one law file edited by hand
    (`law`: loss_law.json, err.json or err_all.json) to `params`."""
    files = {name: folder / name for name in ("loss.csv", "tasks.csv", "loss_law.json", "err.json", "err_all.json",
                                              "backtest.csv", "tasks_t5.json")}
    tables.write_tables(lab["loss"], lab["tasks"], files["loss.csv"], files["tasks.csv"])
    laws = {"loss_law.json": lab["loss_law"], "err.json": lab["error_laws"]["err"],
            "err_all.json": lab["error_laws"]["err_all"]}
    for name, fitted in laws.items():
        record = fitted.to_json()
        atomic_write_json(files[name], {**record, "params": {**record["params"], **params}} if name == law else record,
                          sort_keys=False)
    tables.write_csv(lab["pool"], files["backtest.csv"])
    atomic_write_json(files["tasks_t5.json"], {"tasks": ["task_a", "task_b"]})
    return files


@pytest.mark.parametrize("law, params, problem", [
    ("loss_law.json", {"b": -350.0}, "b = -350, not >= 0: this loss law lies outside Eq. 4's region (E >= 0, a >= 0, "
                                     "b >= 0, eta > 0)"),
    ("err.json", {"eps": -0.2}, "eps = -0.2, not > 0: this error law lies outside Eq. 5's region (eps > 0, k > 0, "
                                "gamma > 0)")])
def test_a_law_file_edited_outside_its_region_is_refused_by_every_stage_that_reads_it(lab, tmp_path, caplog, law,
                                                                                     params, problem):
    """predict, backtest, per-task and the figures read a law through one check: each refuses the edited
    file in one line naming it, the parameter and its value, and writes nothing."""
    files = {name: str(path) for name, path in edited_lab_files(lab, tmp_path, law, params).items()}
    chained = ["--loss-table", files["loss.csv"], "--tasks-table", files["tasks.csv"], "--loss-law",
               files["loss_law.json"], "--error-law", files["err.json"], "--error-law-all", files["err_all.json"]]
    out = tmp_path / "out"
    config = lab["config"]
    commands = {
        "predict": ["predict", "--job", lab["predict_job"].to_json(), *chained, "--backtest", files["backtest.csv"],
                    "--out", f"{out}.csv", "--calibration", f"{out}.json"],
        "backtest": ["backtest", "--job", lab["job"].to_json(), *chained, "--out", f"{out}.csv", "--summary",
                     f"{out}.json"],
        "per-task": ["per-task", "--job", PerTaskJob.from_config(config, "web", "val", "t5").to_json(), "--loss-table",
                     files["loss.csv"], "--tasks-table", files["tasks.csv"], "--loss-law", files["loss_law.json"],
                     "--selection", files["tasks_t5.json"], "--out", f"{out}.csv", "--summary", f"{out}.json"],
        **{kind: ["figure", "--job", FigureJob.from_config(config, kind, "web", "val").to_json(), "--inputs",
                  files["loss.csv"], files["loss_law.json"], "--out", f"{out}.png"]
           for kind in ("loss-heatmap", "loss-vs-compute", "isoflop")},
    }
    if law != "loss_law.json":  # the error law's readers: predict and backtest above, and its figure
        commands = {name: commands[name] for name in ("predict", "backtest")}
        commands["error-vs-loss"] = ["figure", "--job", FigureJob.from_config(config, "error-vs-loss", "web",
                                                                              "val").to_json(),
                                     "--inputs", str(tmp_path / "predictions.csv"), files["err.json"],
                                     files["err_all.json"], "--out", f"{out}.png"]
        tables.write_csv(lab["predictions"], tmp_path / "predictions.csv")
    for name, argv in commands.items():
        caplog.clear()
        assert cli.main(argv) == 1, name
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
            f"{files[law]}: {problem}, so nothing is predicted from it; fit it again (the fit refuses such a law, "
            "naming its farthest fit point) or restore the file"], name
        assert not any(tmp_path.glob("out*")), name


def test_a_law_that_predicts_a_loss_below_zero_writes_no_table(lab):
    """A law outside Eq. 4's region handed to the stages in-process (the read check passed by): predict and
    the backtest refuse to write its losses below zero, naming the first run and its value."""
    law = lab["loss_law"]
    below = LossLaw.from_json({**law.to_json(), "params": {**law.params, "E": -3.0}})
    with pytest.raises(LawError, match=r"^predictions: model s1_M10: predicted loss -\d\.\d+ \(loss_pred\) is not a "
                                       r"finite loss above zero; no table is written$"):
        chain.predict(lab["loss"], lab["tasks"], below, lab["error_laws"], lab["pool"][uncertainty.POOL_COLUMNS],
                      lab["predict_job"])
    with pytest.raises(LawError, match=r"^backtest, step 0: model \S+, law loss: predicted loss -\d\.\d+ \(pred\) is "
                                       r"not a finite loss above zero; no table is written$"):
        rollout.backtest(lab["job"], lab["loss"], lab["tasks"], below, lab["error_laws"])

