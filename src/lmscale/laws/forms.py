"""The scaling laws and their fitters.

Loss law (Gadre et al. 2024, Eq. 4), with compute C = 6 N D and token multiplier M = D / N:

    L(C, M) = E + (a M^eta + b M^-eta) C^-eta

It is the Chinchilla form L(N, D) = E + A N^-alpha + B D^-beta (Hoffmann et al. 2022)
with alpha = beta = 2 eta, A = a 6^-eta and B = b 6^-eta; the general form with
alpha and beta free is offered beside it.

Error law (Eq. 5): Err(L) = eps - k exp(-gamma L), Err the average top-1 error.

Two fitting methods:
- least squares on L with Levenberg-Marquardt from a grid of starts, best kept (the paper);
- Huber loss on log L minimised with L-BFGS from a grid of starts (Hoffmann et al.; Epoch AI).

A parametric bootstrap gives the law's uncertainty: the fit points are drawn again around the
fitted law with the noise each point has (`lmscale.laws.uncertainty` says which), and the law is
refitted on every draw. A refit starts from the full fit and runs to the optimum a cold start
from the grid reaches (the Huber objective is scaled for that: Epoch AI found that an optimizer
stopped early made Hoffmann et al.'s intervals implausibly narrow).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize
from scipy.special import logsumexp, softmax

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


# ---------------------------------------------------------------- least squares


def least_squares(
    function: Callable, x, y, starts: Sequence[Sequence[float]], nonnegative: bool = False
) -> tuple[np.ndarray, float]:
    """Least squares from every start; the parameters with the smallest squared residual.

    Levenberg-Marquardt (the paper's), or, with `nonnegative`, the trust-region reflective
    method with every parameter kept at or above zero.
    """
    y = np.asarray(y, float)
    options = {"bounds": (0.0, np.inf), "method": "trf"} if nonnegative else {"method": "lm"}
    best, best_sse = None, np.inf
    for start in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                popt, _ = curve_fit(function, x, y, p0=list(start), maxfev=10000, **options)
            except (RuntimeError, ValueError):
                continue
            sse = float(np.sum((function(x, *popt) - y) ** 2))
        if np.isfinite(sse) and sse < best_sse:
            best, best_sse = popt, sse
    if best is None:
        raise RuntimeError("no start of the grid converged; the fit set may be too small or degenerate")
    return np.asarray(best, float), best_sse


# ---------------------------------------------------------------- Huber on log loss


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    absolute = np.abs(r)
    return np.where(absolute <= delta, 0.5 * r**2, delta * (absolute - 0.5 * delta))


def _huber_objective(theta, log_N, log_D, log_L, delta, tied):
    """Huber loss of log L in the log parametrisation of Hoffmann et al., with its gradient.

    theta = (e, log A, log B, alpha, beta), or (e, log A, log B, alpha) with beta = alpha when tied.
    """
    e, log_A, log_B, alpha = theta[:4]
    beta = alpha if tied else theta[4]
    terms = np.stack([np.full_like(log_N, e), log_A - alpha * log_N, log_B - beta * log_D])
    residual = logsumexp(terms, axis=0) - log_L
    weight = softmax(terms, axis=0)
    slope = np.clip(residual, -delta, delta)  # derivative of the Huber loss
    grad = np.array(
        [
            np.sum(slope * weight[0]),
            np.sum(slope * weight[1]),
            np.sum(slope * weight[2]),
            np.sum(slope * weight[1] * -log_N) + (np.sum(slope * weight[2] * -log_D) if tied else 0.0),
        ]
        + ([] if tied else [np.sum(slope * weight[2] * -log_D)])
    )
    return float(np.sum(huber(residual, delta))), grad


HUBER_REFINED_STARTS = 24
# The Huber loss of log L with delta 1e-3 is ~1e-3 per point, and L-BFGS stops on a change of the
# objective below ftol x max(|f|, 1) or a projected gradient below gtol: with scipy's defaults it
# stops where it starts (Epoch AI's finding in Hoffmann et al.'s fit). The objective is divided
# by n x delta (the mean Huber loss in units of delta); the starts of the grid descend with the
# defaults, and the best of them is then polished with tight tolerances, so that a refit started
# at the full fit ends where a cold fit from the grid ends (tests/test_laws.py, Chinchilla's points).
HUBER_POLISH = {"maxiter": 20000, "ftol": 1e-14, "gtol": 1e-9}
HUBER_START_GRID = {
    "e": (-1.0, 0.0, 1.0),
    "log_A": (0.0, 5.0, 10.0, 15.0),
    "log_B": (0.0, 5.0, 10.0, 15.0),
    "alpha": (0.0, 0.5, 1.0),
    "beta": (0.0, 0.5, 1.0),
}


def best_grid_starts(N, D, L, delta: float, tied: bool, count: int) -> list[tuple[float, ...]]:
    """The `count` starts of the Huber grid that already fit best. L-BFGS descends only from
    those: most of a coarse grid lies far from any minimum, and a descent costs hundreds of
    objective evaluations."""
    log_N, log_D, log_L = np.log(np.asarray(N, float)), np.log(np.asarray(D, float)), np.log(np.asarray(L, float))
    starts = grid(HUBER_START_GRID, ["e", "log_A", "log_B", "alpha"] + ([] if tied else ["beta"]))
    theta = np.asarray(starts, float)
    beta = theta[:, 3] if tied else theta[:, 4]
    terms = np.stack([np.repeat(theta[:, :1], len(log_N), axis=1), theta[:, 1:2] - theta[:, 3:4] * log_N,
                      theta[:, 2:3] - beta[:, None] * log_D])  # (3, starts, points)
    values = huber(logsumexp(terms, axis=0) - log_L, delta).sum(axis=1)
    return [starts[i] for i in np.argsort(values, kind="stable")[:count]]


def huber_fit(
    N, D, L, delta: float, tied: bool, starts: Sequence[Sequence[float]] | None = None
) -> tuple[np.ndarray, float]:
    """L-BFGS on the Huber loss of log L from every start; returns (E, A, B, alpha, beta) and the objective."""
    log_N, log_D, log_L = np.log(np.asarray(N, float)), np.log(np.asarray(D, float)), np.log(np.asarray(L, float))
    if starts is None:
        starts = best_grid_starts(N, D, L, delta, tied, HUBER_REFINED_STARTS)
    scale = 1.0 / (delta * len(log_L))

    def scaled_objective(theta):
        value, gradient = _huber_objective(theta, log_N, log_D, log_L, delta, tied)
        return value * scale, gradient * scale

    best, best_value = None, np.inf
    for start in starts:
        result = minimize(scaled_objective, np.asarray(start, float), jac=True, method="L-BFGS-B")
        if np.isfinite(result.fun) and result.fun < best_value:
            best, best_value = result.x, float(result.fun)
    if best is not None:
        polished = minimize(scaled_objective, best, jac=True, method="L-BFGS-B", options=HUBER_POLISH)
        if np.isfinite(polished.fun) and polished.fun <= best_value:
            best, best_value = polished.x, float(polished.fun)
    if best is None:
        raise RuntimeError("no start of the Huber grid converged")
    e, log_A, log_B, alpha = best[:4]
    beta = alpha if tied else best[4]
    return np.array([np.exp(e), np.exp(log_A), np.exp(log_B), alpha, beta]), best_value / scale


def _to_huber_start(form: LossForm, params: dict) -> tuple[float, ...]:
    """A fitted law in the log parametrisation, to warm-start a Huber refit."""
    if form.name == "gadre":
        eta = params["eta"]
        return (np.log(params["E"]), np.log(params["a"]) - eta * LOG6, np.log(params["b"]) - eta * LOG6, 2 * eta)
    return (np.log(params["E"]), np.log(params["A"]), np.log(params["B"]), params["alpha"], params["beta"])


# ---------------------------------------------------------------- fitting a loss law


# How a loss law can be fitted: the paper's least squares, the same with every parameter kept
# at or above zero, and Huber loss on log L.
LOSS_FIT_METHODS = ("least_squares", "nonnegative_least_squares", "huber")


def fit_loss_law(
    form_name: str,
    N,
    D,
    L,
    method: str,
    huber_delta: float,
    starts: Sequence[Sequence[float]] | None = None,
) -> dict:
    """Fit a loss law to points (N, D, L); returns the parameters by name.

    `starts` (in the form's own parameters) replaces the default grid, e.g. to
    warm-start bootstrap refits from the full fit.
    """
    form = loss_form(form_name)
    N, D, L = (np.asarray(v, float) for v in (N, D, L))
    if method in ("least_squares", "nonnegative_least_squares"):
        grid_starts = starts if starts is not None else grid(form.start_grid, form.params)
        at_runs = form.at_runs(N, D)
        popt, _ = least_squares(lambda x, *p: at_runs(*p), np.vstack([N, D]), L, grid_starts,
                                nonnegative=method == "nonnegative_least_squares")
        return dict(zip(form.params, map(float, popt)))
    if method == "huber":
        tied = form.name == "gadre"
        huber_starts = None
        if starts is not None:
            huber_starts = [_to_huber_start(form, dict(zip(form.params, s))) for s in starts]
        E, A, B, alpha, beta = huber_fit(N, D, L, huber_delta, tied, huber_starts)[0]
        if tied:
            eta = alpha / 2
            # A = a 6^-eta and B = b 6^-eta, back in the paper's parameters.
            return {"E": float(E), "a": float(A * 6**eta), "b": float(B * 6**eta), "eta": float(eta)}
        return {"E": float(E), "A": float(A), "B": float(B), "alpha": float(alpha), "beta": float(beta)}
    raise ValueError(f"unknown fitting method {method!r}; choose one of {', '.join(LOSS_FIT_METHODS)}")


def fit_error_law(L, err, starts: Sequence[Sequence[float]] | None = None) -> dict:
    """Least-squares fit of Err(L) = eps - k exp(-gamma L) from a grid of starts."""
    grid_starts = starts if starts is not None else grid(ERROR_START_GRID, ERROR_PARAMS)
    popt, _ = least_squares(lambda x, *p: error_law(x, *p), np.asarray(L, float), err, grid_starts)
    return dict(zip(ERROR_PARAMS, map(float, popt)))


# ---------------------------------------------------------------- bootstrap


def parametric_bootstrap(
    fit: Callable[[np.ndarray], dict],
    fitted: np.ndarray,
    noise: np.ndarray,
    samples: int,
    seed: int,
    relative: bool,
) -> list[dict]:
    """The law refitted on `samples` data sets drawn around its fitted values.

    Each point moves by its own noise (`noise`, one standard deviation per point): by a factor
    exp(noise x z) when `relative` (losses, whose noise is a share of them), else by noise x z
    (error rates). Resampling the points themselves, as a case bootstrap does, cannot work for
    the small fit sets of scaling studies: a resample of five runs holds three or four distinct
    ones, too few for a four-parameter law. `fit(values)` refits on the drawn values; a draw it
    cannot fit (RuntimeError) is left out, and the caller sees how many were kept.
    """
    if samples <= 0:
        return []
    fitted, noise = np.asarray(fitted, float), np.broadcast_to(np.asarray(noise, float), np.shape(fitted))
    rng = np.random.default_rng(seed)
    fits: list[dict] = []
    for _ in range(samples):
        z = rng.standard_normal(fitted.shape)
        drawn = fitted * np.exp(noise * z) if relative else fitted + noise * z
        try:
            fits.append(fit(drawn))
        except RuntimeError:
            continue
    return fits


def fitted_law(params: dict, names, refits: list[dict], requested: int, seed: int) -> dict:
    """A law as it is written to JSON: its parameters (also at top level), their 95% confidence
    intervals from the bootstrap, and every refit, from which predictions get their intervals."""
    return {
        **params,
        "params": params,
        "intervals": {p: interval([fit[p] for fit in refits]) for p in names},
        "bootstrap": {
            "requested": requested,
            "kept": len(refits),
            "seed": seed,
            "samples": [[fit[p] for p in names] for fit in refits],
        },
    }


def law_samples(law: dict | None, names) -> list[dict]:
    """A fitted law's bootstrap refits by parameter name (none for a law fitted without them, or no law)."""
    return [dict(zip(names, sample)) for sample in (law or {}).get("bootstrap", {}).get("samples", [])]


def interval(values, level: float = 0.95) -> list[float]:
    """Central percentile interval; [nan, nan] with no values."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
