"""How a law is fitted, and its uncertainty.

Two fitting methods:
- least squares on L with Levenberg-Marquardt from a grid of starts, best kept (the paper), or
  the same objective with every parameter kept at or above zero;
- Huber loss on log L minimised with L-BFGS from a grid of starts (Hoffmann et al.; Epoch AI).

A parametric bootstrap gives the law's uncertainty: the fit points are drawn again around the
fitted law with the noise each point has (`lmscale.laws.uncertainty` says which), and the law is
refitted on every draw. A refit starts from the full fit and runs to the optimum a cold start
from the grid reaches (the Huber objective is scaled for that: Epoch AI found that an optimizer
stopped early made Hoffmann et al.'s intervals implausibly narrow).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize
from scipy.special import logsumexp, softmax

from lmscale.laws.forms import ERROR_PARAMS, ERROR_START_GRID, LOG6, LossForm, error_law, grid, loss_form

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
