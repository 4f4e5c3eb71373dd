"""The fitters recover known parameters from synthetic points, with and without noise,
and reproduce a published Chinchilla fit on its own data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmscale.laws import fitting, forms

TRUE_GADRE = {"E": 1.84, "a": 212.0, "b": 367.0, "eta": 0.136}
TRUE_CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
HUBER_DELTA = 1e-3  # Epoch's, as Hoffmann et al.


def synthetic_grid():
    """A grid of N x M like a small scaling study: 6 sizes from 10M to 1B, M from 5 to 640."""
    N = np.repeat(np.geomspace(1e7, 1e9, 6), 8)
    M = np.tile(5.0 * 2.0 ** np.arange(8), 6)
    return N, M * N


def assert_within(fitted: dict, truth: dict, rel: float):
    for name, value in truth.items():
        assert fitted[name] == pytest.approx(value, rel=rel), f"{name}: fitted {fitted[name]}, true {value}"


@pytest.mark.parametrize("method", ["least_squares", "huber"])
@pytest.mark.parametrize("form,truth", [("gadre", TRUE_GADRE), ("chinchilla", TRUE_CHINCHILLA)])
def test_loss_law_recovers_exact_parameters(form, truth, method):
    N, D = synthetic_grid()
    L = forms.loss_form(form).predict(truth, N, D)
    assert_within(fitting.fit_loss_law(form, N, D, L, method, HUBER_DELTA), truth, rel=1e-3)


@pytest.mark.parametrize("method", ["least_squares", "huber"])
@pytest.mark.parametrize("form,truth", [("gadre", TRUE_GADRE), ("chinchilla", TRUE_CHINCHILLA)])
def test_loss_law_recovers_parameters_under_noise(form, truth, method):
    N, D = synthetic_grid()
    N, D = np.repeat(N, 20), np.repeat(D, 20)
    rng = np.random.default_rng(0)
    # Multiplicative noise of 0.02% (a loss of 3 +- 0.0006), averaged over 20 seeds per run.
    L = forms.loss_form(form).predict(truth, N, D) * (1 + 2e-4 * rng.standard_normal(N.size))
    assert_within(fitting.fit_loss_law(form, N, D, L, method, HUBER_DELTA), truth, rel=0.01)


def test_gadre_form_is_chinchilla_with_tied_exponents():
    N, D = synthetic_grid()
    eta = TRUE_GADRE["eta"]
    as_chinchilla = {"E": TRUE_GADRE["E"], "A": TRUE_GADRE["a"] * 6**-eta, "B": TRUE_GADRE["b"] * 6**-eta,
                     "alpha": 2 * eta, "beta": 2 * eta}
    np.testing.assert_allclose(
        forms.loss_form("gadre").predict(TRUE_GADRE, N, D),
        forms.loss_form("chinchilla").predict(as_chinchilla, N, D),
        rtol=1e-12,
    )


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_error_law_recovers_parameters(noise):
    truth = {"eps": 0.857, "k": 2.21, "gamma": 0.715}
    L = np.repeat(np.linspace(2.3, 6.0, 30), 20)
    err = forms.error_law(L, **truth) + noise * np.random.default_rng(1).standard_normal(L.size)
    assert_within(fitting.fit_error_law(L, err), truth, rel=0.01)


def test_bootstrap_interval_covers_truth_and_shrinks_with_more_points():
    truth = {"eps": 0.857, "k": 2.21, "gamma": 0.715}
    rng = np.random.default_rng(2)
    widths = []
    for points in (8, 64):
        L = np.linspace(2.3, 6.0, points)
        err = forms.error_law(L, **truth) + 0.005 * rng.standard_normal(points)
        fitted = fitting.fit_error_law(L, err)
        start = [tuple(fitted[p] for p in forms.ERROR_PARAMS)]
        fits = fitting.parametric_bootstrap(lambda drawn: fitting.fit_error_law(L, drawn, starts=start),
                                         forms.error_law(L, **fitted), 0.005, 100, seed=0, relative=False)
        low, high = fitting.interval([f["eps"] for f in fits])
        assert low <= truth["eps"] <= high
        widths.append(high - low)
    assert widths[1] < widths[0]


def test_unknown_form_and_method_are_named():
    with pytest.raises(ValueError, match="unknown loss law form 'kaplan'"):
        fitting.fit_loss_law("kaplan", [1e7], [1e9], [3.0], "least_squares", HUBER_DELTA)
    with pytest.raises(ValueError, match="unknown fitting method 'adam'"):
        fitting.fit_loss_law("gadre", [1e7] * 5, [1e9] * 5, [3.0] * 5, method="adam", huber_delta=HUBER_DELTA)


@pytest.mark.testbed
def test_huber_fit_reproduces_epoch_chinchilla_replication(chinchilla_epoch2024):
    """Epoch AI (Besiroglu et al., 2024) fitted Chinchilla's points without the five highest losses,
    Huber (delta 1e-3) on log loss with L-BFGS: E 1.817, A 477.8, B 2143.9, alpha 0.347, beta 0.367."""
    points = pd.read_csv(chinchilla_epoch2024 / "points.csv")
    points = points.sort_values("loss").iloc[:-5]
    N = points["Model Size"].to_numpy(float)
    D = points["Training FLOP"].to_numpy(float) / (6 * N)
    fitted = fitting.fit_loss_law("chinchilla", N, D, points["loss"].to_numpy(float), method="huber",
                               huber_delta=HUBER_DELTA)
    assert_within(fitted, {"E": 1.817, "A": 477.8, "B": 2143.9, "alpha": 0.347, "beta": 0.367}, rel=0.01)
