"""The loss-law stage (lmscale.analysis.fits): the law of the declared fit set, the noise each fit point
carries (which sets the bootstrap's intervals), and a fit set the testbed cannot fill, named."""

from __future__ import annotations

import numpy as np
import pytest

from lmscale.analysis import fits
from lmscale.io import importers
from lmscale.jobs import FitLossJob
from lmscale.laws import uncertainty
from tests.test_tables import LOSS_LAW, imported_lab_tables, study_config
from tests.workflow import validated_config


def loss_fit(points: list[tuple[str, float]]) -> FitLossJob:
    """The loss law of rpj on c4_val through `points`, the schema's fit settings but no bootstrap."""
    config = validated_config({"fit": {"bootstrap": 0},
                               "loss_fit_set": [{"size": size, "M": M} for size, M in points]})
    return FitLossJob.from_config(config, "rpj", "c4_val")


def lab_fit(tmp_path, **fit) -> tuple:
    """The lab testbed's loss table (tests/test_tables.py: losses on a known law) and its study's loss job."""
    loss, _ = imported_lab_tables(tmp_path)
    config = validated_config({**study_config(tmp_path), "fit": {"bootstrap": 0, **fit}})
    return loss, FitLossJob.from_config(config, "web", "val")


def test_the_law_of_the_fit_set_is_recovered_with_the_noise_the_evaluations_state(tmp_path):
    loss, job = lab_fit(tmp_path)
    law = fits.fit_loss(loss, job)
    assert law["params"] == pytest.approx(LOSS_LAW, rel=1e-9)
    assert [(run["size"], run["M"]) for run in law["fit_set"]] == [(p.size, p.M) for p in job.fit_set]
    assert law["noise"]["source"] == "residuals" and law["rmse"] < 1e-12
    # Losses given with a 95% interval of +-2% (log units): each fit point carries that noise.
    stated = loss.assign(loss_lo=loss["loss"] * np.exp(-0.02 * uncertainty.Z),
                         loss_hi=loss["loss"] * np.exp(0.02 * uncertainty.Z))
    noise = fits.fit_loss(stated, job)["noise"]
    assert noise["source"] == "evaluation" and noise["sd"] == pytest.approx([0.02] * len(job.fit_set))


def test_fewer_runs_than_parameters_are_refused(tmp_path):
    loss, job = lab_fit(tmp_path)
    with pytest.raises(ValueError, match="the loss fit set has 3 runs but the gadre law has 4 parameters"):
        fits.fit_loss(loss, FitLossJob(**{**vars(job), "fit_set": job.fit_set[:3]}))


@pytest.mark.testbed
def test_fit_set_point_without_a_run_is_named(small_release):
    loss, _ = importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])
    with pytest.raises(ValueError, match=r"no run of size 'd=96_l=8_h=4' at M = 640"):
        fits.fit_loss(loss, loss_fit([("d=96_l=8_h=4", 640)]))
