"""The scaling laws: their equations, forms and physical regions.

Loss law (Gadre et al. 2024, Eq. 4), with compute C = 6 N D and token multiplier M = D / N:

    L(C, M) = E + (a M^eta + b M^-eta) C^-eta

It is the Chinchilla form L(N, D) = E + A N^-alpha + B D^-beta (Hoffmann et al. 2022)
with alpha = beta = 2 eta, A = a 6^-eta and B = b 6^-eta; the general form with
alpha and beta free is offered beside it.

Error law (Eq. 5): Err(L) = eps - k exp(-gamma L), Err the average top-1 error.

How a law is fitted and its bootstrap: lmscale.laws.fitting; the fitted law as one object:
lmscale.laws.law.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

LOG6 = np.log(6.0)


def compute(N, D):
    """Training compute C = 6 N D (FLOPs)."""
    return 6.0 * np.asarray(N, float) * np.asarray(D, float)


def gadre_loss(C, M, E, a, b, eta):
    """Paper Eq. 4: L(C, M) = E + (a M^eta + b M^-eta) C^-eta."""
    C, M = np.asarray(C, float), np.asarray(M, float)
    return _gadre(np.log(C), M, E, a, b, eta)


def _gadre(log_C, M, E, a, b, eta):
    return E + (a * M**eta + b * M ** (-eta)) * np.exp(-eta * log_C)


def chinchilla_loss(N, D, E, A, B, alpha, beta):
    """L(N, D) = E + A N^-alpha + B D^-beta."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    return _chinchilla(np.log(N), np.log(D), E, A, B, alpha, beta)


def _chinchilla(log_N, log_D, E, A, B, alpha, beta):
    return E + A * np.exp(-alpha * log_N) + B * np.exp(-beta * log_D)


def error_law(L, eps, k, gamma):
    """Paper Eq. 5: Err(L) = eps - k exp(-gamma L)."""
    return eps - k * np.exp(-gamma * np.asarray(L, float))


def loss_for_error(err: float, eps: float, k: float, gamma: float) -> float:
    """The error law's inverse: the loss at which Err(L) = eps - k exp(-gamma L) equals `err` (nan beyond eps)."""
    ratio = (eps - err) / k
    return float(-np.log(ratio) / gamma) if ratio > 0 else float("nan")


@dataclass(frozen=True)
class Chinchilla:
    """A loss law in Chinchilla's parameters: L(N, D) = E + A N^-alpha + B D^-beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, N, D):
        return chinchilla_loss(N, D, self.E, self.A, self.B, self.alpha, self.beta)


@dataclass(frozen=True)
class LossForm:
    """A loss law as a function of (N, D), with its parameter names and starting grid; the same law
    as a function of (C, M), in Chinchilla's parameters, and its compute-optimal M where that is
    the same at every budget. A new form is one more entry of LOSS_FORMS."""

    name: str
    params: tuple[str, ...]
    of_N_D: Callable[..., np.ndarray]
    start_grid: dict[str, Sequence[float]]
    # The law at fixed runs (N, D) as a function of its parameters alone, what does not depend on
    # them computed once: a fit evaluates it thousands of times (the same numbers as of_N_D).
    at_runs: Callable[..., Callable[..., np.ndarray]]
    of_C_M: Callable[..., np.ndarray]
    # The parameters by name -> (E, A, B, alpha, beta) of L(N, D) = E + A N^-alpha + B D^-beta.
    as_chinchilla: Callable[[dict], tuple[float, float, float, float, float]]
    # The parameters by name -> the compute-optimal M = D / N; None where it moves with C.
    optimal_multiplier: Callable[[dict], float] | None = None
    # The law's physical region, a parameter -> (">=" or ">", bound): outside it the law predicts
    # losses below zero or losses that grow with compute (lmscale.laws.law.Law.problems).
    region: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)

    def predict(self, params: dict, N, D) -> np.ndarray:
        return self.of_N_D(N, D, *[params[p] for p in self.params])

    def predict_at(self, params: dict, C, M) -> np.ndarray:
        return self.of_C_M(C, M, *[params[p] for p in self.params])

    def chinchilla(self, params: dict) -> Chinchilla:
        return Chinchilla(*self.as_chinchilla(params))


def _gadre_of_N_D(N, D, E, a, b, eta):
    N, D = np.asarray(N, float), np.asarray(D, float)
    return gadre_loss(compute(N, D), D / N, E, a, b, eta)


def _gadre_at_runs(N, D):
    N, D = np.asarray(N, float), np.asarray(D, float)
    log_C, M = np.log(compute(N, D)), D / N
    return lambda E, a, b, eta: _gadre(log_C, M, E, a, b, eta)


def _gadre_as_chinchilla(params: dict) -> tuple[float, float, float, float, float]:
    """Eq. 4 in Chinchilla's parameters: alpha = beta = 2 eta, A = a 6^-eta, B = b 6^-eta."""
    eta = params["eta"]
    return params["E"], params["a"] * 6.0**-eta, params["b"] * 6.0**-eta, 2 * eta, 2 * eta


def _gadre_optimal_multiplier(params: dict) -> float:
    """Eq. 4's compute-optimal M* = (b / a)^(1 / (2 eta)): where a M^eta + b M^-eta is least, at any C."""
    return (params["b"] / params["a"]) ** (1.0 / (2.0 * params["eta"]))


def _chinchilla_of_C_M(C, M, E, A, B, alpha, beta):
    """At compute C and multiplier M the run is N = sqrt(C / 6M), D = M N."""
    C, M = np.asarray(C, float), np.asarray(M, float)
    N = np.sqrt(C / (6.0 * M))
    return chinchilla_loss(N, M * N, E, A, B, alpha, beta)


def _chinchilla_as_chinchilla(params: dict) -> tuple[float, float, float, float, float]:
    return tuple(params[name] for name in ("E", "A", "B", "alpha", "beta"))


def _chinchilla_at_runs(N, D):
    log_N, log_D = np.log(np.asarray(N, float)), np.log(np.asarray(D, float))
    return lambda E, A, B, alpha, beta: _chinchilla(log_N, log_D, E, A, B, alpha, beta)


LOSS_FORMS = {
    "gadre": LossForm(
        "gadre",
        ("E", "a", "b", "eta"),
        _gadre_of_N_D,
        {"E": (0.5, 1.5, 2.5), "a": (10.0, 100.0, 1000.0), "b": (10.0, 100.0, 1000.0), "eta": (0.05, 0.15, 0.3)},
        _gadre_at_runs,
        gadre_loss,
        _gadre_as_chinchilla,
        _gadre_optimal_multiplier,
        # A zero coefficient is a boundary the nonnegative fit may reach: that term then vanishes.
        {"E": (">=", 0.0), "a": (">=", 0.0), "b": (">=", 0.0), "eta": (">", 0.0)},
    ),
    "chinchilla": LossForm(
        "chinchilla",
        ("E", "A", "B", "alpha", "beta"),
        chinchilla_loss,
        {
            "E": (0.5, 1.5, 2.5),
            "A": (1e2, 1e3, 1e4),
            "B": (1e2, 1e3, 1e4),
            "alpha": (0.1, 0.3, 0.5),
            "beta": (0.1, 0.3, 0.5),
        },
        _chinchilla_at_runs,
        _chinchilla_of_C_M,
        _chinchilla_as_chinchilla,
        None,
        {"E": (">=", 0.0), "A": (">=", 0.0), "B": (">=", 0.0), "alpha": (">", 0.0), "beta": (">", 0.0)},
    ),
}

ERROR_PARAMS = ("eps", "k", "gamma")
ERROR_START_GRID = {"eps": (0.5, 0.8, 1.0), "k": (0.5, 2.0, 10.0), "gamma": (0.3, 1.0, 3.0)}
# Eq. 5's region: the error rises with the loss (k gamma > 0) towards a ceiling eps above zero.
ERROR_REGION = {"eps": (">", 0.0), "k": (">", 0.0), "gamma": (">", 0.0)}


def outside_region(params: dict, region: dict[str, tuple[str, float]]) -> list[str]:
    """What puts `params` outside `region`, one phrase per parameter ("eta = -0.136, not > 0");
    a parameter that is not a finite number is outside any region."""
    found = []
    for name, (relation, bound) in region.items():
        value = params.get(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            found.append(f"{name} = {value!r}, not a number")
            continue
        if not inside_bound(number, relation, bound):
            found.append(f"{name} = {number:.4g}, not {relation} {bound:g}")
    return found


def inside_bound(number: float, relation: str, bound: float) -> bool:
    """Whether `number` keeps one bound of a region (">=" or ">" `bound`); nan and inf never do."""
    return bool(np.isfinite(number) and (number >= bound if relation == ">=" else number > bound))


def region_bounds(region: dict[str, tuple[str, float]]) -> str:
    """A region in words, as a refusal states it: "E >= 0, a >= 0, b >= 0, eta > 0"."""
    return ", ".join(f"{name} {relation} {bound:g}" for name, (relation, bound) in region.items())


def outside_counts(samples: list[dict], region: dict[str, tuple[str, float]]) -> dict[str, int]:
    """How many of `samples` (refits, each its parameters by name) break each bound of `region`,
    as "E < 0" -> count, for the bounds some sample breaks."""
    counts = {}
    for name, (relation, bound) in region.items():
        count = 0
        for sample in samples:
            try:
                count += not inside_bound(float(sample.get(name)), relation, bound)
            except (TypeError, ValueError):
                count += 1
        if count:
            counts[f"{name} {'<' if relation == '>=' else '<='} {bound:g}"] = count
    return counts


def loss_form(name: str) -> LossForm:
    try:
        return LOSS_FORMS[name]
    except KeyError:
        raise ValueError(f"unknown loss law form {name!r}; choose one of {', '.join(LOSS_FORMS)}") from None


def chinchilla_parameters(form: str, params: dict) -> Chinchilla:
    """Either loss form in Chinchilla's parameters (Eq. 4: alpha = beta = 2 eta, A = a 6^-eta, B = b 6^-eta)."""
    return loss_form(form).chinchilla(params)


def grid(start_grid: dict[str, Sequence[float]], names: Sequence[str]) -> list[tuple[float, ...]]:
    return list(itertools.product(*[start_grid[n] for n in names]))
