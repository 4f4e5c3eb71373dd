"""The backtest stage (lmscale.analysis.rollout): the laws refitted with their largest fit sizes left out, one
more per step, each step predicting every run its fit sets lack; on a testbed that follows its laws
exactly, every such prediction is right and inside its interval."""

from __future__ import annotations

from pathlib import Path

from lmscale.analysis import chain, fits, rollout
from lmscale.jobs import BacktestJob, PredictJob
from lmscale.laws import uncertainty
from tests.test_tables import MULTIPLIERS, SIZES, imported_lab_tables, study_config
from tests.workflow import validated_config

TARGET = {"name": "s6", "N": 3.2e9, "M": 20}  # a size never trained, which the predictions reach


def lab_study(folder: Path) -> dict:
    """The lab testbed (tests/test_tables.py: losses and accuracies on known laws) through the analysis
    stages in-process: its tables and config (10 bootstrap refits, TARGET declared), the backtest job,
    the laws (loss; error over the selected tasks, task_a and task_b, and over all), the backtest's
    pool and summary, and the predictions with their calibration summary. conftest's `lab` builds it
    once per session for this file, test_predict and test_figures."""
    loss, tasks = imported_lab_tables(folder)
    config = validated_config({**study_config(folder), "fit": {"bootstrap": 10}, "targets": [TARGET]})
    job = BacktestJob.from_config(config, "web", "val", "t5")
    loss_law = fits.fit_loss(loss, job.loss)
    error_laws = {"err": fits.fit_error(loss, tasks, job.error, ["task_a", "task_b"]),
                  "err_all": fits.fit_error(loss, tasks, job.error, None)}
    pool, summary = rollout.backtest(job, loss, tasks, loss_law, error_laws)
    predict_job = PredictJob.from_config(config, "web", "val")
    table, calibration = chain.predict(loss, tasks, loss_law, error_laws, pool[uncertainty.POOL_COLUMNS],
                                         predict_job)
    return {"folder": folder, "config": config, "loss": loss, "tasks": tasks, "job": job, "loss_law": loss_law,
            "error_laws": error_laws, "pool": pool, "summary": summary, "predict_job": predict_job,
            "predictions": table, "calibration": calibration}


def test_each_step_leaves_the_largest_size_out_and_refits_the_laws_it_fed(lab):
    job, pool, summary = lab["job"], lab["pool"], lab["summary"]
    # The loss fit set is s1-s4 (s1 twice), the error fit set adds s5: step 1 (s5 out) refits the
    # error laws alone; step 2 (s4 too) both; step 3 would leave the loss law 3 runs for 4 parameters.
    assert job.steps == 3
    assert [(step["left_out"], step["refitted"]) for step in summary["steps"]] == [
        ([], ["err", "err_all", "loss"]), (["s5"], ["err", "err_all"]), (["s4", "s5"], ["err", "err_all", "loss"])]
    runs = {f"{size}_M{M}" for size in SIZES for M in MULTIPLIERS}
    for step in summary["steps"]:
        for law in step["refitted"]:
            fit_set = job.loss.fit_set if law == "loss" else job.error.fit_set
            fitted = {f"{p.size}_M{p.M:g}" for p in fit_set if p.size not in step["left_out"]}
            predicted = pool[(pool["step"] == step["step"]) & (pool["law"] == law)]
            # Every run but the step's fit runs and the held-out s5_M80 (it stays the final check).
            assert set(predicted["model"]) == runs - fitted - {"s5_M80"}, (step["step"], law)
            assert set(predicted.loc[predicted["left_out_fit_run"], "model"]) == {
                f"{p.size}_M{p.M:g}" for p in fit_set if p.size in step["left_out"]}, (step["step"], law)


def test_on_a_law_that_holds_every_prediction_is_right_and_covered(lab):
    pool, summary = lab["pool"], lab["summary"]
    assert pool["residual"].abs().max() < 1e-6
    assert pool["covered"].all() and (pool["pi_lo"] <= pool["truth"]).all()
    for step in summary["steps"]:
        for law, calibrated in step["calibration"].items():
            assert calibrated["coverage"] == 1.0 or calibrated["runs"] == 0, (step["step"], law)
    assert set(summary["model_error"]) == {"loss", "err", "err_all"}
