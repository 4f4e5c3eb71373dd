"""A law is valid or refused (issue #33): a fitted law outside its form's physical region fails the fit
job in one line naming the parameter, its value and the fit point farthest off the law (its file and
line), and writes nothing; bootstrap refits outside the region are counted in the fit's log line; a
law file outside the region is refused where it is read (tests/test_predict.py, tests/test_isoflop.py);
a task law outside Eq. 5's region is a task without a law; and, as properties, every law fitted with
nonnegative least squares to runs drawn from a valid law lies inside the region and predicts losses
above zero inside ordered intervals, while every law pushed out of its region names what is out."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lmscale import cli
from lmscale.analysis import chain, fits, task_laws
from lmscale.config import Point
from lmscale.io import importers, tables
from lmscale.jobs import FitErrorJob, FitLossJob
from lmscale.laws import forms, uncertainty
from lmscale.laws.law import ErrorLaw, LawError, LossLaw
from tests.conftest import REPO
from tests.test_tables import imported_lab_tables, lab_tables, study_config
from tests.workflow import validated_config

LAB_FIT_SET = [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 80.0)]
STATED = 0.001  # the lab's losses given with a 95% interval of +-0.2%


def errors_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]


def write_lab_loss(folder, damaged: str | None = None, factor: float = 1.1, stated: float = STATED):
    """The lab's loss table (tests/test_tables.py: losses on a known law) with a stated 95% interval, one
    run's loss and interval (`damaged`) multiplied by `factor`, written as a testbed file; the path and
    the line that run is on."""
    loss, _ = lab_tables()
    loss = loss.assign(loss_lo=loss["loss"] * np.exp(-stated * uncertainty.Z),
                       loss_hi=loss["loss"] * np.exp(stated * uncertainty.Z))
    if damaged is not None:
        loss.loc[loss["model"] == damaged, ["loss", "loss_lo", "loss_hi"]] *= factor
    path = folder / "loss.csv"
    loss.to_csv(path, index=False)
    line = int(np.flatnonzero(loss["model"] == damaged)[0]) + 2 if damaged is not None else None  # header: line 1
    return path, line


def fit_loss_command(loss_table, out, method: str = "least_squares", bootstrap: int = 20) -> int:
    job = FitLossJob("web", "val", LAB_FIT_SET, "gadre", method, 1e-3, bootstrap, 0)
    return cli.main(["fit-loss", "--job", job.to_json(), "--loss-table", str(loss_table), "--out", str(out)])


# ---------------------------------------------------------------- a fitted law outside its region


def test_a_fit_run_10_percent_too_high_is_refused_naming_it_and_no_law_is_written(tmp_path, caplog):
    """s3 at M = 20 raised by 10% (and its interval with it): least squares answers E = -1698, eta = 0.0001,
    a law that predicts losses below zero. The fit job fails in one line naming E, its value, s3_M20 by
    its line in the file and how far off the law it lies, and the fix; no law file is written."""
    path, line = write_lab_loss(tmp_path, "s3_M20")
    out = tmp_path / "loss_law.json"
    assert fit_loss_command(path, out, bootstrap=5) == 1
    law = fits.fit_loss(tables.read_loss_table(path), FitLossJob("web", "val", LAB_FIT_SET, "gadre", "least_squares",
                                                                 1e-3, 0, 0))
    assert law.params["E"] < -1000 and law.problems() == [f"E = {law.params['E']:.4g}, not >= 0"]
    residuals, scaled = fits.standardised_residuals(law)
    assert scaled and int(np.argmax(np.abs(residuals))) == 2  # s3_M20, the third of the fit set
    assert errors_logged(caplog) == [
        f"loss law on web/val: E = {law.params['E']:.4g}, not >= 0 (Eq. 4's region); its farthest fit point is "
        f"s3_M20 ({path}, line {line}: {abs(residuals[2]):.1f} sd off the law); check or drop that row, or fit with "
        "fit: {method: nonnegative_least_squares}"]
    assert line == 11 and not out.exists()


def test_the_same_runs_fitted_with_nonnegative_least_squares_give_a_law_inside_the_region(tmp_path, caplog):
    path, _ = write_lab_loss(tmp_path, "s3_M20")
    out = tmp_path / "loss_law.json"
    with caplog.at_level(logging.INFO, logger="lmscale"):
        assert fit_loss_command(path, out, "nonnegative_least_squares") == 0
    law = LossLaw.from_json(json.loads(out.read_text()))
    assert law.problems() == [] and law.method == "nonnegative_least_squares"


def test_bootstrap_refits_outside_the_region_are_counted_in_the_fits_log_line_and_kept(tmp_path, caplog):
    """The lab's exact losses with a stated +-2% (1% sd): the law is the true one, but least squares on
    five runs drawn again with that noise lands below E = 0 now and then. The log line counts them; the
    law written is the law fitted, key for key (nothing is added to it)."""
    path, _ = write_lab_loss(tmp_path, stated=0.01)
    out = tmp_path / "loss_law.json"
    with caplog.at_level(logging.INFO, logger="lmscale"):
        assert fit_loss_command(path, out, bootstrap=40) == 0
    law = fits.fit_loss(tables.read_loss_table(path), FitLossJob("web", "val", LAB_FIT_SET, "gadre", "least_squares",
                                                                 1e-3, 40, 0))
    assert json.loads(out.read_text()) == json.loads(json.dumps(law.to_json()))
    outside, kept = law.refits_outside(), law.bootstrap["kept"]
    assert 0 < outside < kept and law.problems() == []
    counts = forms.outside_counts(law.samples(), law.region)
    assert "E < 0" in counts
    [line] = [record.getMessage() for record in caplog.records if "bootstrap refits" in record.getMessage()]
    listed = ", ".join(f"{bound}: {count}" for bound, count in counts.items())
    assert line.endswith(f"(rmse {law.rmse:.4g}, {kept} bootstrap refits); {outside} of {kept} bootstrap refits lie "
                         f"outside Eq. 4's region ({listed}); kept"), line


@pytest.mark.testbed
def test_a_run_of_the_papers_c4_fit_set_10_percent_too_high_is_refused_naming_it(gadre2024, tmp_path, caplog):
    """The gadre2024 preset's C4 loss fit set (five runs, as its fit_loss rule fits them) with the 154M run at
    M = 20 raised by 10%: least squares leaves Eq. 4's region (E < 0) and the job names that run, by its
    line in the loss table, as the point farthest off the law."""
    config = validated_config(yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text()))
    loss, _ = importers.import_gadre2024(gadre2024, ["c4_original"], ["c4_val"], config["size_labels"])
    damaged = "c4_original-d=576_l=24_h=8-1.0"
    rows = (loss["model"] == damaged) & (loss["valset"] == "c4_val")
    loss.loc[rows, ["loss", "loss_lo", "loss_hi"]] *= 1.1
    tables.write_csv(loss, tmp_path / "loss.csv")
    line = int(np.flatnonzero(rows)[0]) + 2
    job = FitLossJob(**{**vars(FitLossJob.from_config(config, "c4_original", "c4_val")), "bootstrap": 20})
    out = tmp_path / "loss_law.json"
    assert cli.main(["fit-loss", "--job", job.to_json(), "--loss-table", str(tmp_path / "loss.csv"),
                     "--out", str(out)]) == 1
    [error] = errors_logged(caplog)
    assert re.fullmatch(
        r"loss law on c4_original/c4_val: E = -\S+, not >= 0 \(Eq\. 4's region\); its farthest fit point is "
        + re.escape(f"{damaged} ({tmp_path / 'loss.csv'}, line {line}: ") + r"\d\.\d sd off the law\); check or drop "
        r"that row, or fit with fit: \{method: nonnegative_least_squares\}", error), error
    assert not out.exists()


def test_an_error_law_outside_eq5s_region_is_refused_naming_its_farthest_run_by_its_task_rows(tmp_path, caplog):
    """Task errors that rise as the loss falls (err = 0.2 + 0.5 exp(-0.7 L): k = -0.5 in Eq. 5's terms),
    each run's a little off: the error law's fit job fails naming what least squares put outside Eq. 5's
    region (here gamma < 0), its value, and the run farthest off the law by its rows of tasks.csv."""
    loss, tasks = imported_lab_tables(tmp_path)
    rng = np.random.default_rng(3)
    by_model = pd.Series(0.2 + 0.5 * np.exp(-0.7 * loss["loss"].to_numpy()) + rng.normal(0, 0.004, len(loss)),
                         index=loss["model"])
    tasks = tasks.assign(acc=1 - tasks["model"].map(by_model))
    tables.write_csv(loss, tmp_path / "loss.csv")
    tables.write_csv(tasks, tmp_path / "tasks.csv")
    config = validated_config({**study_config(tmp_path), "fit": {"bootstrap": 10}})
    job = FitErrorJob.from_config(config, "web", "val", "all")
    out = tmp_path / "error_law_all.json"
    assert cli.main(["fit-error", "--job", job.to_json(), "--loss-table", str(tmp_path / "loss.csv"),
                     "--tasks-table", str(tmp_path / "tasks.csv"), "--out", str(out)]) == 1
    [error] = errors_logged(caplog)
    law = fits.fit_error(*tables.read_tables(tmp_path / "loss.csv", tmp_path / "tasks.csv"), job, None)
    assert law.problems() and law.params["k"] * law.params["gamma"] < 0  # an error that rises as the loss falls
    found = re.fullmatch(r"error law on web/val over 3 tasks: (.+) \(Eq\. 5's region\); its farthest fit point is "
                         r"(\S+) \((\S+), (lines \d+-\d+): \d+\.\d sd off the law\); check that model's task "
                         r"results, or drop its run from the error fit set \(loss_fit_set, error_fit_extra\)", error)
    assert found, error
    model, source, lines = found[2], found[3], found[4]
    assert found[1] == " and ".join(law.problems()) and source == str(tmp_path / "tasks.csv")
    assert model in {f"{point.size}_M{point.M:g}" for point in job.fit_set}
    rows = np.flatnonzero(tasks["model"] == model)  # its three task rows, one after another in the written table
    assert lines == f"lines {rows[0] + 2}-{rows[-1] + 2}" and len(rows) == 3
    assert not out.exists()


# ---------------------------------------------------------------- the task laws and the predictions


def test_a_task_law_with_eps_at_or_below_zero_is_a_task_without_a_law():
    law = ErrorLaw.given({"eps": -0.05, "k": 0.3, "gamma": 0.5})
    assert task_laws.shape_or_signal_reason(law, True, 3.0) == (
        "outside Eq. 5's region (eps = -0.05, not > 0): no error rate it predicts can be trusted")
    # k or gamma at or below zero keep the reason they always had.
    assert task_laws.shape_or_signal_reason(ErrorLaw.given({"eps": 0.8, "k": -1.0, "gamma": 0.5}), True, 3.0
                                            ).startswith("not Eq. 5's shape (k = -1, gamma = 0.5)")


def test_a_table_with_a_loss_below_zero_or_a_reversed_interval_is_not_written():
    table = pd.DataFrame({"model": ["a", "70B"], "target": [False, True], "loss_pred": [2.1, 1.9],
                          "loss_ci_lo": [2.0, 1.8], "loss_ci_hi": [2.2, 2.0], "loss_pi_lo": [1.9, 2.3],
                          "loss_pi_hi": [2.3, 1.5]})
    with pytest.raises(LawError, match=re.escape(
            "predictions: target 70B: the interval loss_pi [2.3, 1.5] around the prediction 1.9 is reversed (its low "
            "end above its high end); no table is written")):
        chain.check_predictions(table, chain.row_names(table), "predictions")
    table.loc[1, "loss_pred"] = -0.4
    with pytest.raises(LawError, match=re.escape(
            "predictions: target 70B: predicted loss -0.4 (loss_pred) is not a finite loss above zero; no table "
            "is written")):
        chain.check_predictions(table, chain.row_names(table), "predictions")


# ---------------------------------------------------------------- properties

SIZES_LOG10 = [7.0, 7.3, 7.6, 8.0, 8.3, 8.6, 9.0, 9.3]
MULTIPLIERS = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0]

# Laws of the paper's kind (its C4 laws: E 1.5-1.8, a 140-210, b 190-370, eta 0.12-0.14), whose reducible
# loss over runs of 10M to 2B parameters is tenths of a nat to nats: above the noise drawn (0.5-2%).
valid_laws = st.fixed_dictionaries({"E": st.floats(0.5, 2.5), "a": st.floats(50.0, 600.0),
                                    "b": st.floats(50.0, 600.0), "eta": st.floats(0.08, 0.18)})


@st.composite
def fit_sets(draw):
    """5 to 8 runs, of at least three sizes between 10M and 2B parameters, at least two multipliers."""
    count = draw(st.integers(5, 8))
    runs = draw(st.lists(st.tuples(st.sampled_from(SIZES_LOG10), st.sampled_from(MULTIPLIERS)), min_size=count,
                         max_size=count, unique=True).filter(
        lambda runs: len({s for s, _ in runs}) >= 3 and len({m for _, m in runs}) >= 2))
    return runs


def drawn_table(law: dict, runs, noise: float, seed: int) -> pd.DataFrame:
    """A loss table of `runs` drawn from `law` with lognormal noise of `noise` (log units), each loss
    stated with that noise's 95% interval."""
    N = np.array([10.0**s for s, _ in runs])
    M = np.array([m for _, m in runs])
    drawn = noise * np.random.default_rng(seed).standard_normal(len(runs))
    loss = forms.loss_form("gadre").predict(law, N, M * N) * np.exp(drawn)
    table = pd.DataFrame({"model": [f"n{s:g}_M{m:g}" for s, m in runs], "dataset": "web",
                          "size": [f"n{s:g}" for s, _ in runs], "N": N, "D": M * N, "valset": "val", "loss": loss,
                          "loss_lo": loss * np.exp(-noise * uncertainty.Z),
                          "loss_hi": loss * np.exp(noise * uncertainty.Z)})
    return tables.normalise_loss_table(table)


@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(law=valid_laws, runs=fit_sets(), noise=st.floats(0.005, 0.02), seed=st.integers(0, 2**16))
def test_a_nonnegative_fit_to_runs_drawn_from_a_valid_law_is_valid_and_predicts_inside_ordered_intervals(
        law, runs, noise, seed):
    table = drawn_table(law, runs, noise, seed)
    job = FitLossJob("web", "val", [Point(f"n{s:g}", m) for s, m in runs], "gadre", "nonnegative_least_squares", 1e-3,
                     20, 0)
    fitted = fits.check_fitted(fits.fit_loss(table, job), table)  # raises LawError outside the region
    assert fitted.problems() == []
    largest = max(10.0**s for s, _ in runs)
    held_out = [{"name": "10x", "N": 10 * largest, "M": 20.0}, {"name": "small_M", "N": largest, "M": 2.0},
                {"name": "large_M", "N": 1e7, "M": 640.0}, {"name": "inside", "N": 1e8, "M": 40.0}]
    predicted, _ = chain.loss_predictions(table, fitted, "web", "val", held_out)
    low, high = uncertainty.interval(predicted["loss_pred"], predicted["loss_ci_lo"], predicted["loss_ci_hi"],
                                     chain.noise_floor(fitted, "loss"))
    predicted = predicted.assign(loss_pi_lo=low, loss_pi_hi=high)
    values = predicted["loss_pred"].to_numpy(float)
    assert np.isfinite(values).all() and (values > 0).all()
    assert (predicted["loss_ci_lo"] <= predicted["loss_ci_hi"]).all()
    assert ((low <= values) & (values <= high)).all()
    chain.check_predictions(predicted, chain.row_names(predicted), "predictions")  # passes: nothing to refuse


@st.composite
def laws_pushed_out(draw):
    """A valid law of either loss form, or of Eq. 5, with one parameter pushed out of its region: below
    its bound, onto a strict bound, or to a value that is no finite number."""
    kind = draw(st.sampled_from(["gadre", "chinchilla", "error"]))
    region = forms.ERROR_REGION if kind == "error" else forms.loss_form(kind).region
    params = {name: draw(st.floats(0.05, 500.0)) for name in region}
    name = draw(st.sampled_from(sorted(region)))
    relation, bound = region[name]
    outside = [st.floats(-1e4, bound, exclude_max=True), st.sampled_from([float("nan"), float("inf"), -float("inf")])]
    if relation == ">":
        outside.append(st.just(bound))
    params[name] = draw(st.one_of(outside))
    law = ErrorLaw.given(params) if kind == "error" else LossLaw.given(kind, params)
    return law, name


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(laws_pushed_out())
def test_a_law_with_one_parameter_outside_its_region_names_that_parameter(pushed):
    law, name = pushed
    problems = law.problems()
    assert len(problems) == 1 and problems[0].startswith(f"{name} = "), problems
    with pytest.raises(LawError, match=re.escape(f"where: {problems[0]}: this {law.kind} lies outside")):
        law.check("where")
