"""The prediction stage (lmscale.analysis.chain): loss by the loss law, then average error by the error law,
for every model of the testbed and every declared target, with the held-out runs flagged; on a
testbed that follows its laws exactly (conftest's `lab`), every prediction is the truth and inside its
interval."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lmscale.analysis import chain
from lmscale.jobs import Point
from lmscale.laws import forms, uncertainty
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
