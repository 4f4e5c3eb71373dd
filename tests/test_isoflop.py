"""The isoFLOP figure: its curves are the law's, and it draws from a real fitted law."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lmscale import cli
from lmscale.analysis.fits import fit_loss
from lmscale.figures import isoflop
from lmscale.io import importers, tables
from lmscale.io.files import atomic_write_json
from lmscale.jobs import FigureJob, FitLossJob, Point
from lmscale.laws import forms, targets
from tests.conftest import REPO
from tests.test_tables import lab_tables
from tests.workflow import validated_config

GADRE = {"E": 1.5, "a": 140.0, "b": 420.0, "eta": 0.12}


def test_the_price_of_over_training_is_nothing_at_the_optimum_and_grows_away_from_it():
    law = {"form": "gadre", "params": GADRE}
    M_star = (GADRE["b"] / GADRE["a"]) ** (1 / (2 * GADRE["eta"]))
    multipliers = np.geomspace(M_star / 100, M_star * 100, 41)
    for C in (1e18, 1e23):
        price = isoflop.overtraining_price(law, C, multipliers)
        assert price[20] == pytest.approx(0.0, abs=1e-12) and (np.delete(price, 20) > 0).all()
        assert (np.diff(price[20:]) > 0).all() and (np.diff(price[:21]) < 0).all()
        # Eq. 4: (a M^eta + b M^-eta) / (2 sqrt(ab)) is the reducible loss over its least, at any C.
        E, a, b, eta = (GADRE[p] for p in ("E", "a", "b", "eta"))
        reducible = 2 * np.sqrt(a * b) * C**-eta
        expected = reducible * ((a * multipliers**eta + b * multipliers**-eta) / (2 * np.sqrt(a * b)) - 1) / (E + reducible)
        assert price == pytest.approx(expected, rel=1e-9)
    N = np.geomspace(1e7, 1e11, 5)
    assert isoflop.isoflop_losses(law, 1e21, N) == pytest.approx(forms.loss_form("gadre").predict(GADRE, N, 1e21 / (6 * N)))


def test_default_budgets_lie_among_the_runs():
    compute = np.geomspace(1e15, 1e21, 50)
    budgets = isoflop.default_budgets(compute, 4)
    assert len(budgets) == 4 and budgets == sorted(budgets) and 1e15 < budgets[0] and budgets[-1] < 1e21


@pytest.mark.testbed
def test_the_isoflop_figure_draws_from_the_papers_c4_law(tmp_path, gadre2024):
    """The gadre2024 preset's C4 loss law, fitted in-process as its fit_loss rule fits it, drawn at four
    budgets among the runs and one beyond them (1e23 FLOPs)."""
    config = validated_config(yaml.safe_load((REPO / "configs" / "gadre2024.yaml").read_text()))
    loss, _ = importers.import_gadre2024(gadre2024, ["c4_original"], ["c4_val"], config["size_labels"])
    law = fit_loss(loss, FitLossJob.from_config(config, "c4_original", "c4_val"))
    runs = loss[(loss["dataset"] == "c4_original") & (loss["valset"] == "c4_val")]
    budgets = isoflop.default_budgets(runs["C"], 4) + [1e23]
    figure = isoflop.isoflop_figure(loss, law, "c4_original", "c4_val", budgets)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    optimum = targets.resolve_target({"name": "1e23", "C": 1e23}, law)
    assert legend[-1] == f"C = 1e+23: N* = {optimum['N']:.2g} [{optimum['N_ci_lo']:.2g}, {optimum['N_ci_hi']:.2g}]"
    assert "the same at every C (Eq. 4)" in " ".join(t.get_text() for t in figure.axes[1].texts)
    figure.tight_layout()
    figure.savefig(tmp_path / "isoflop.png", dpi=110)
    assert (tmp_path / "isoflop.png").stat().st_size > 50_000


def lab_law_files(tmp_path) -> dict:
    """The lab testbed's loss table and its fitted law as files, and the same law at the edge of Eq. 4's
    region (a = 0: a term that vanishes, so no optimum) and beyond it (b < 0, eta = 0), as a person
    might edit the file."""
    loss, _ = lab_tables()
    loss.to_csv(tmp_path / "loss.csv", index=False)
    fit_set = [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 80.0)]
    law = fit_loss(tables.read_loss_table(tmp_path / "loss.csv"),
                   FitLossJob("web", "val", fit_set, "gadre", "least_squares", 1e-3, 10, 0))
    atomic_write_json(tmp_path / "law.json", law.to_json())
    for name, edit in (("degenerate", {"a": 0.0}), ("negative_b", {"b": -1.0}), ("flat", {"eta": 0.0})):
        atomic_write_json(tmp_path / f"{name}.json", {**law, "params": {**law["params"], **edit}})
    return law


def test_lmscale_figure_draws_the_isoflop_kind(tmp_path):
    """`lmscale figure` with the isoflop kind, as its rule calls it: four budgets among the runs when
    the config gives none (null), else the config's; a law with no optimum (a = 0, at the edge of Eq. 4's
    region) is drawn without one, saying why, rather than failing the study."""
    lab_law_files(tmp_path)
    for name, budgets in (("law", None), ("degenerate", [3.0e+18, 1.0e+20])):
        config = validated_config({"figures": {"isoflop_budgets": budgets, "formats": ["png"]}})
        job = FigureJob.from_config(config, "isoflop", "web", "val")
        assert job.budgets == budgets and job.max_percent is None and job.held_out is None
        out = tmp_path / f"{name}.png"
        assert cli.main(["figure", "--job", job.to_json(), "--inputs", str(tmp_path / "loss.csv"),
                         str(tmp_path / f"{name}.json"), "--out", str(out)]) == 0
        assert out.stat().st_size > 20_000


@pytest.mark.parametrize("name, problem", [("negative_b", "b = -1, not >= 0"), ("flat", "eta = 0, not > 0")])
def test_a_law_outside_eq4s_region_is_refused_before_the_figure_divides_by_it(tmp_path, caplog, name, problem):
    """A law file edited outside Eq. 4's region (eta = 0 once ended in a ZeroDivisionError: M* = (b / a)^(1 / 2 eta))
    is refused as it is read, in one line naming the file, the parameter and its value; no figure is written."""
    lab_law_files(tmp_path)
    job = FigureJob.from_config(validated_config({"figures": {"formats": ["png"]}}), "isoflop", "web", "val")
    out, law_file = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
    assert cli.main(["figure", "--job", job.to_json(), "--inputs", str(tmp_path / "loss.csv"), str(law_file),
                     "--out", str(out)]) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors == [f"{law_file}: {problem}: this loss law lies outside Eq. 4's region (E >= 0, a >= 0, b >= 0, "
                      "eta > 0), so nothing is predicted from it; fit it again (the fit refuses such a law, naming "
                      "its farthest fit point) or restore the file"]
    assert not out.exists()


def test_the_law_of_a_damaged_fit_set_is_refused_before_its_isoflop_lines_divide_by_zero(tmp_path, caplog):
    """The law least squares fits when one fit run's loss is 10% too high (tests/test_law_region.py) has
    E < 0 and eta near zero: its refits put the optimal N at zero and the figure once died in a
    ZeroDivisionError. Written by a fit that did not check it, the file is refused as it is read."""
    loss, _ = lab_tables()
    loss.loc[loss["model"] == "s3_M20", "loss"] *= 1.1
    loss.to_csv(tmp_path / "loss.csv", index=False)
    fit_set = [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 80.0)]
    law = fit_loss(tables.read_loss_table(tmp_path / "loss.csv"),
                   FitLossJob("web", "val", fit_set, "gadre", "least_squares", 1e-3, 10, 0))
    atomic_write_json(tmp_path / "law.json", law.to_json())
    job = FigureJob.from_config(validated_config({"figures": {"formats": ["png"]}}), "isoflop", "web", "val")
    assert cli.main(["figure", "--job", job.to_json(), "--inputs", str(tmp_path / "loss.csv"),
                     str(tmp_path / "law.json"), "--out", str(tmp_path / "isoflop.png")]) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'law.json'}: E = {law.params['E']:.4g}, not >= 0: "
                                                      "this loss law lies outside Eq. 4's region")
    assert law.params["E"] < -1000
    assert not (tmp_path / "isoflop.png").exists()

