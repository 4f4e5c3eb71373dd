"""The law object (lmscale.laws.law): a fitted law read back from its JSON is the same record, key
for key and in order, and predicts as its form does, at (N, D) and at (C, M) alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmscale.analysis import fits
from lmscale.config import Point
from lmscale.jobs import FitErrorJob, FitLossJob
from lmscale.laws import forms
from lmscale.laws.law import ErrorLaw, LossLaw
from tests.test_per_task import synthetic_study

FIT_SET = [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 320.0)]


@pytest.fixture(scope="module")
def study():
    return synthetic_study(0)


@pytest.fixture(scope="module", params=[("gadre", "least_squares"), ("chinchilla", "huber")])
def loss_law(request, study) -> LossLaw:
    form, method = request.param
    return fits.fit_loss(study[0], FitLossJob("web", "val", FIT_SET, form, method, 1e-3, 20, 0))


@pytest.fixture(scope="module")
def error_law(study) -> ErrorLaw:
    loss, tasks = study
    return fits.fit_error(loss, tasks, FitErrorJob("web", "val", FIT_SET + [Point("s5", 20.0)], False, 20, 0),
                          ["rises"])


def round_trip(law):
    """The law written as its JSON text and read back, as a stage after the fit reads it."""
    text = json.dumps(law.to_json(), indent=2)
    return type(law).from_json(json.loads(text)), text


def test_a_loss_law_round_trips_through_its_json_key_for_key(loss_law):
    back, text = round_trip(loss_law)
    assert back.to_json() == loss_law.to_json()
    assert list(back.to_json()) == list(loss_law.to_json())
    assert json.dumps(back.to_json(), indent=2) == text  # the same bytes written again
    assert list(loss_law.to_json())[:4] == ["dataset", "valset", "form", "method"]
    assert list(loss_law.to_json())[-3:] == ["noise", "rmse", "fit_set"]
    assert back.form is loss_law.form and back.params == loss_law.params
    assert len(back.samples()) == back.bootstrap["kept"] > 0
    with pytest.raises(AttributeError):
        back.form = None


def test_a_loss_law_predicts_at_N_D_and_at_C_M_alike(loss_law):
    N = np.geomspace(1e7, 1e11, 9)
    D = N * np.array([5, 10, 20, 40, 80, 160, 320, 20, 20], float)
    at_N_D = loss_law.predict(N, D)
    np.testing.assert_allclose(loss_law.predict_at(6 * N * D, D / N), at_N_D, rtol=1e-12)
    # ... and as its form predicts with its parameters.
    np.testing.assert_array_equal(at_N_D, loss_law.form.predict(loss_law.params, N, D))
    sampled = loss_law.sample_predictions(N, D)
    assert sampled.shape == (len(loss_law.samples()), len(N))
    np.testing.assert_array_equal(sampled[0], loss_law.refits()[0].predict(N, D))


def test_in_chinchillas_parameters_a_loss_law_predicts_the_same(loss_law):
    N, D = np.array([1e8, 3e9]), np.array([2e9, 6e10])
    np.testing.assert_allclose(loss_law.chinchilla().loss(N, D), loss_law.predict(N, D), rtol=1e-12)
    assert loss_law.optimum_is_fixed == (loss_law.form.name == "gadre")


def test_a_law_given_by_hand_has_no_fit_set_noise_or_refits():
    law = LossLaw.given("gadre", {"E": 1.84, "a": 212.0, "b": 367.0, "eta": 0.136})
    assert (law.fit_set, law.noise, law.samples(), law.sample_predictions(1e9, 2e10)) == ([], {}, [], None)
    assert law.predict(1e9, 2e10) == pytest.approx(forms.gadre_loss(6 * 1e9 * 2e10, 20, 1.84, 212.0, 367.0, 0.136))
    assert law.optimal_multiplier() == pytest.approx((367.0 / 212.0) ** (1 / 0.272))
    assert LossLaw.of(law) is law and LossLaw.of(law.to_json()).params == law.params
    with pytest.raises(ValueError, match="unknown loss law form 'kaplan'"):
        LossLaw.given("kaplan", {})


def test_an_error_law_round_trips_and_predicts_as_eq5(error_law):
    back, text = round_trip(error_law)
    assert back.to_json() == error_law.to_json() and json.dumps(back.to_json(), indent=2) == text
    assert list(error_law.to_json())[:3] == ["dataset", "valset", "tasks"] and back.tasks == ["rises"]
    L = np.linspace(2.0, 4.0, 5)
    np.testing.assert_array_equal(back.predict(L), forms.error_law(L, **error_law.params))
    assert back.loss_for(float(back.predict(3.0))) == pytest.approx(3.0)
    chained = back.chained(np.tile(L, (3, 1)))
    assert len(chained) == 3 and np.allclose(chained[1], forms.error_law(L, **back.samples()[1]))
