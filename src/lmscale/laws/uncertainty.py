"""How sure a law is, and how sure a prediction of a new run can be.

Every prediction carries two 95% intervals (docs/uncertainty.md says why these methods):

- the **confidence interval** (`*_ci_lo`, `*_ci_hi`) of the law's mean: the law refitted on data
  drawn again around it, each fit point moved by the noise it has (`point_noise`: the seed-to-seed
  spread where replicates exist, else the evaluation's own interval, and never less than the
  fit's residuals show); the spread of the refits' predictions (`laws.parametric_bootstrap`);
- the **prediction interval** (`*_pi_lo`, `*_pi_hi`) of a new run's measured value: the
  confidence interval widened by the law's own error where it predicts a run it was not fitted
  to (`ModelError`). That error is estimated from out-of-sample residuals, the backtest's
  predictions of runs outside the fit sets by the laws as fitted and refitted with their
  largest sizes left out, as a spread that grows with how far the run lies outside the fit set.

Intervals are in log units (losses and error rates are positive and their errors are shares of
them): a prediction p with standard deviation s has the interval p exp(+-1.96 s).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

LEVEL = 0.95
Z = 1.959963984540054  # the standard normal's 97.5% quantile

# How far a run lies outside a fit set, in natural-log units, one column per direction: for the
# loss law, its token multiplier below and above the fit set's range and its compute above the
# fit set's largest; for the error law, its predicted loss below the fit set's lowest (the error
# law extrapolates towards larger models).
LOSS_DIRECTIONS = ("M_below", "M_above", "C_above")
ERROR_DIRECTIONS = ("L_below",)
# How fast a law's error may grow with the distance outside its fit set (ModelError).
MIN_POWER, MAX_POWER = 1.0, 3.0


# ---------------------------------------------------------------- the noise of the fit points


@dataclass(frozen=True)
class PointNoise:
    """One standard deviation of each fit point: in log units for losses (a share of the loss),
    in error-rate units for the average error. `source` names what set it."""

    sd: list[float]
    source: str  # replicates, evaluation, residuals, or none (no estimate: zero-width intervals)
    replicate_sd: float | None  # pooled seed-to-seed spread of runs at the same (size, M)
    evaluation_sd: float | None  # median of the evaluations' own standard errors
    residual_sd: float | None  # the fit's residuals, per degree of freedom

    def as_dict(self) -> dict:
        return asdict(self)

    def carried_to(self, models: list[str], law: dict) -> "PointNoise":
        """The noise of some of a law's fit points (`models`), for a refit on fewer of them: a point
        is as noisy as the full fit set showed, whatever is left out beside it."""
        sd = dict(zip((point["model"] for point in law["fit_set"]), self.sd))
        return PointNoise([sd[model] for model in models], self.source, self.replicate_sd, self.evaluation_sd,
                          self.residual_sd)

    @classmethod
    def from_dict(cls, values: dict) -> "PointNoise":
        return cls(**values)


def replicate_spread(groups: list, values: np.ndarray) -> float | None:
    """The pooled standard deviation of `values` within groups of two or more (replicates)."""
    frame = pd.DataFrame({"group": [str(g) for g in groups], "value": values})
    sizes = frame.groupby("group")["value"].transform("size")
    repeated = frame[sizes >= 2]
    if repeated.empty:
        return None
    deviations = repeated["value"] - repeated.groupby("group")["value"].transform("mean")
    dof = len(repeated) - repeated["group"].nunique()
    return float(np.sqrt(np.sum(deviations**2) / dof))


def residual_spread(residuals: np.ndarray, n_params: int, robust: bool) -> float | None:
    """The residuals' standard deviation per degree of freedom; with `robust` (a Huber fit, which
    expects outliers), from their median absolute deviation. None with no degree of freedom."""
    n = len(residuals)
    if n <= n_params:
        return None
    if robust:
        mad = np.median(np.abs(residuals - np.median(residuals)))
        return float(1.4826 * mad * np.sqrt(n / (n - n_params)))
    return float(np.sqrt(np.sum(residuals**2) / (n - n_params)))


def point_noise(groups: list, values, fitted, n_params: int, evaluation_sd=None, robust: bool = False) -> PointNoise:
    """The noise of each fit point.

    `groups` names each point's run (its size and M: replicates share one), `values` and `fitted`
    are the points and the law's values in the noise's units. The seed-to-seed spread of
    replicates, or else the evaluation's own standard error (`evaluation_sd`, per point), is what
    a point is known to carry; when the fit's residuals spread more, the law misses by more than
    that noise and the residuals set it.
    """
    values, fitted = np.asarray(values, float), np.asarray(fitted, float)
    replicate_sd = replicate_spread(groups, values)
    residual_sd = residual_spread(values - fitted, n_params, robust)
    evaluation = None if evaluation_sd is None else np.asarray(evaluation_sd, float)
    if evaluation is not None and not np.all(np.isfinite(evaluation)):
        evaluation = None
    if replicate_sd is not None:
        known, source = np.full(len(values), replicate_sd), "replicates"
    elif evaluation is not None:
        known, source = evaluation, "evaluation"
    else:
        known, source = np.zeros(len(values)), "none"
    if residual_sd is not None and residual_sd > np.median(known):
        source = "residuals"
    sd = np.maximum(known, residual_sd or 0.0)
    return PointNoise([float(v) for v in sd], source, replicate_sd,
                      None if evaluation is None else float(np.median(evaluation)), residual_sd)


# ---------------------------------------------------------------- distance from the fit set


def loss_distances(N, D, fit_N, fit_D) -> pd.DataFrame:
    """How far each run (N, D) lies outside the loss fit set (fit_N, fit_D), in log units."""
    N, D, fit_N, fit_D = (np.asarray(v, float) for v in (N, D, fit_N, fit_D))
    log_M, log_C = np.log(D / N), np.log(6 * N * D)
    fit_log_M, fit_log_C = np.log(fit_D / fit_N), np.log(6 * fit_N * fit_D)
    return pd.DataFrame({
        "M_below": np.maximum(0.0, fit_log_M.min() - log_M),
        "M_above": np.maximum(0.0, log_M - fit_log_M.max()),
        "C_above": np.maximum(0.0, log_C - fit_log_C.max()),
    })


def error_distances(predicted_loss, fit_loss) -> pd.DataFrame:
    """How far each predicted loss lies below the error fit set's lowest loss, in log units."""
    predicted_loss = np.asarray(predicted_loss, float)
    return pd.DataFrame({"L_below": np.maximum(0.0, np.log(np.min(fit_loss)) - np.log(predicted_loss))})


# ---------------------------------------------------------------- the law's own error


@dataclass(frozen=True)
class ModelError:
    """The error of a law's prediction of a run it was not fitted to, beyond its confidence
    interval: a standard deviation (log units) `scale` inside the fit set's range, growing with
    the distance a run lies outside it in each direction d:

        sd^2 = scale^2 + sum_d (slopes[d] x distance_d ^ powers[d])^2

    estimated by maximum likelihood from `residuals` out-of-sample residuals (each with its own
    confidence-interval variance), `scale` never below the fit points' own noise. The power, between
    1 and 3, is fitted too: a law's error can grow faster than in proportion to the distance (on
    the paper's testbed, runs at M = 5 miss 5-15x more than runs at M = 10). A direction in which
    no residual lay outside the fit set has no slope (`seen` 0): a prediction there assumes the law
    holds, and is flagged.
    """

    scale: float
    slopes: dict[str, float]
    seen: dict[str, float]  # the largest distance in each direction among the residuals
    residuals: int
    floor: float  # the fit points' noise: `scale` is at least this
    powers: dict[str, float] = field(default_factory=dict)  # 1 where absent

    def sd(self, distances: pd.DataFrame) -> np.ndarray:
        variance = np.full(len(distances), self.scale**2)
        for direction, slope in self.slopes.items():
            grown = distances[direction].to_numpy(float) ** self.powers.get(direction, 1.0)
            variance = variance + (slope * grown) ** 2
        return np.sqrt(variance)

    def beyond_backtest(self, distances: pd.DataFrame) -> np.ndarray:
        """Runs farther outside the fit set, in some direction, than any residual it was estimated from."""
        beyond = np.zeros(len(distances), bool)
        for direction, seen in self.seen.items():
            beyond |= distances[direction].to_numpy(float) > seen + 1e-9
        return beyond

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelError":
        return cls(**values)

    @classmethod
    def fit(cls, residuals, offset_variance, distances: pd.DataFrame, floor: float,
            near: "ModelError | None" = None) -> "ModelError":
        """Maximum likelihood: residual_i ~ Normal(0, offset_i + sd_i^2), offset_i the variance
        the prediction is already known to carry (its confidence interval). `near`, a fit to
        nearly the same residuals, is where the optimizer starts (leaving one run out)."""
        residuals = np.asarray(residuals, float)
        offset = np.asarray(offset_variance, float)
        directions = list(distances.columns)
        d = distances.to_numpy(float)
        seen = {name: float(d[:, i].max()) if len(d) else 0.0 for i, name in enumerate(directions)}
        if len(residuals) == 0:
            return cls(float(floor), {name: 0.0 for name in directions}, seen, 0, float(floor),
                       {name: 1.0 for name in directions})
        # Only directions with a residual outside the fit set can have a slope. Distances are
        # taken relative to the farthest seen, so that a slope's start does not depend on the power.
        free = [i for i, name in enumerate(directions) if seen[name] > 0]
        relative = np.column_stack([d[:, i] / seen[directions[i]] for i in free]) if free else np.zeros((len(d), 0))
        log_relative = np.log(np.where(relative > 0, relative, 1.0))
        k = len(free)

        def negative_log_likelihood(theta):
            weights, powers = np.exp(2 * theta[:k + 1]), theta[k + 1:]
            grown = relative ** (2 * powers)  # 0 ** p = 0: runs inside the fit set in that direction
            terms = np.column_stack([np.ones(len(residuals)), grown]) * weights
            variance = offset + terms.sum(axis=1)
            value = 0.5 * np.sum(np.log(variance) + residuals**2 / variance)
            sensitivity = 0.5 * (1 / variance - residuals**2 / variance**2)
            gradient_weights = 2 * (sensitivity @ terms)
            gradient_powers = sensitivity @ (terms[:, 1:] * 2 * log_relative)
            return value, np.concatenate([gradient_weights, gradient_powers])

        # The likelihood is flat where a spread is near zero (its gradient in log units vanishes),
        # so the optimizer starts from several spreads around the residuals' robust one.
        typical = max(float(np.median(np.abs(residuals))) / 0.6745, floor, 1e-6)
        starts = [np.concatenate([np.log([scale] + [max(slope * scale, 1e-6)] * k), [power] * k])
                  for scale, slope, power in itertools.product((typical / 3, typical, 3 * typical), (1e-4, 1.0),
                                                               (1.0, 2.0))]
        if near is not None:
            near_grown = [near.slopes[directions[i]] * seen[directions[i]] ** near.powers.get(directions[i], 1.0)
                          for i in free]
            starts = [np.concatenate([np.log([max(near.scale, 1e-6)] + [max(v, 1e-6) for v in near_grown]),
                                      [near.powers.get(directions[i], 1.0) for i in free]])]
        bounds = [(np.log(1e-8), np.log(10.0))] * (k + 1) + [(MIN_POWER, MAX_POWER)] * k
        best = None
        for start in starts:
            result = minimize(negative_log_likelihood, start, jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or result.fun < best.fun:
                best = result
        fitted, fitted_powers = np.exp(best.x[:k + 1]), best.x[k + 1:]
        slopes = {name: 0.0 for name in directions}
        powers = {name: 1.0 for name in directions}
        for value, power, i in zip(fitted[1:], fitted_powers, free):
            name = directions[i]
            if value > 1e-6:
                # Back from distances relative to the farthest seen to distances in log units.
                slopes[name], powers[name] = float(value / seen[name] ** power), float(power)
        return cls(float(max(fitted[0], floor)), slopes, seen, int(len(residuals)), float(floor), powers)


def ci_sd(predicted, ci_lo, ci_hi) -> tuple[np.ndarray, np.ndarray]:
    """The confidence interval as a standard deviation (log units) below and above the prediction:
    a bootstrap's spread can be lopsided (a parameter held at a bound), and each side keeps its own.
    Zero without an interval (no bootstrap)."""
    predicted, low, high = (np.asarray(v, float) for v in (predicted, ci_lo, ci_hi))
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.log(predicted / low) / Z
        above = np.log(high / predicted) / Z
    return (np.nan_to_num(np.maximum(below, 0.0), nan=0.0), np.nan_to_num(np.maximum(above, 0.0), nan=0.0))


def interval(predicted, ci_lo, ci_hi, extra_sd) -> tuple[np.ndarray, np.ndarray]:
    """The 95% prediction interval: the confidence interval, each side widened in quadrature by
    `extra_sd` (log units), the spread a new run adds to the law's mean; it holds the confidence
    interval by construction."""
    predicted, extra = np.asarray(predicted, float), np.asarray(extra_sd, float)
    below, above = ci_sd(predicted, ci_lo, ci_hi)
    return (predicted * np.exp(-Z * np.sqrt(below**2 + extra**2)),
            predicted * np.exp(Z * np.sqrt(above**2 + extra**2)))


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """How well 95% prediction intervals held on runs with a known result outside the fit sets."""

    runs: int
    coverage: float | None  # share of runs inside their prediction interval
    median_half_width: float | None  # relative to the prediction
    median_relative_error: float | None
    width_to_error: float | None  # median half-width / median relative error (about 2.9 if exact and Gaussian)
    confidence_coverage: float | None  # the same for the confidence interval (of the law's mean, not of runs)
    misses: list[str] = field(default_factory=list)
    # The 5%, 50% and 95% quantiles of width_to_error had every run landed where its interval says
    # (normal in log units): over a few dozen runs the ratio is itself noisy, and whether an observed
    # ratio means too wide, too narrow or chance is read against this range.
    width_to_error_if_exact: list[float] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def calibration(models, truth, predicted, pi_lo, pi_hi, ci_lo, ci_hi) -> Calibration:
    truth, predicted, pi_lo, pi_hi, ci_lo, ci_hi = (np.asarray(v, float)
                                                    for v in (truth, predicted, pi_lo, pi_hi, ci_lo, ci_hi))
    if len(truth) == 0:
        return Calibration(0, None, None, None, None, None)
    inside = (truth >= pi_lo) & (truth <= pi_hi)
    half_width = float(np.median((pi_hi - pi_lo) / 2 / predicted))
    error = float(np.median(np.abs(predicted - truth) / truth))
    return Calibration(
        int(len(truth)), float(inside.mean()), half_width, error, half_width / error if error > 0 else None,
        float(((truth >= ci_lo) & (truth <= ci_hi)).mean()),
        [str(model) for model, ok in zip(models, inside) if not ok],
        width_to_error_if_exact(predicted, pi_lo, pi_hi),
    )


def width_to_error_if_exact(predicted, pi_lo, pi_hi, draws: int = 4000) -> list[float] | None:
    """The 5%, 50% and 95% quantiles of the median half-width over the median relative error, over
    draws of every run's result from its own 95% prediction interval (normal in log units, one
    spread per run: the mean of the interval's two sides)."""
    predicted, pi_lo, pi_hi = (np.asarray(v, float) for v in (predicted, pi_lo, pi_hi))
    spread = np.log(pi_hi / pi_lo) / (2 * Z)
    if len(spread) == 0 or not np.all(np.isfinite(spread)) or not np.all(spread > 0):
        return None
    half_width = np.median((pi_hi - pi_lo) / 2 / predicted)
    drawn = np.exp(np.random.default_rng(0).standard_normal((draws, len(spread))) * spread)
    ratio = half_width / np.median(np.abs(1 - 1 / drawn), axis=1)  # |predicted - truth| / truth
    return [float(q) for q in np.quantile(ratio, [0.05, 0.5, 0.95])]


# ---------------------------------------------------------------- the out-of-sample residuals


# One row per out-of-sample prediction (the backtest's table): the law (`loss` or an error law's
# prefix), the model, the prediction, its confidence interval, residual = log(truth / prediction),
# for error laws the slope d log Err / d log L, and the distances from the fit sets.
POOL_COLUMNS = ["law", "model", "pred", "ci_lo", "ci_hi", "residual", "slope", *LOSS_DIRECTIONS, *ERROR_DIRECTIONS]


def ci_variance_toward(rows: pd.DataFrame) -> np.ndarray:
    """Each residual's confidence-interval variance on the side it falls (a lopsided interval
    explains a miss on its long side better than on its short one)."""
    below, above = ci_sd(rows["pred"], rows["ci_lo"], rows["ci_hi"])
    return np.where(rows["residual"].to_numpy(float) > 0, above, below) ** 2


def model_errors(pool: pd.DataFrame, floors: dict[str, float], leave_out: str | None = None,
                 near: dict[str, ModelError] | None = None) -> dict[str, ModelError]:
    """Each law's ModelError from the pool, without the rows of model `leave_out` if given (`near`:
    the errors fitted to the whole pool, where the optimizer then starts).

    An error law's prediction carries the loss law's error too: its residuals are fitted with
    the loss error, times the slope, as part of their known variance.
    """
    rows = pool if leave_out is None else pool[pool["model"] != leave_out]
    # A prediction at or below zero (a law refitted on few runs can go there) has no log residual:
    # the law does not hold there at all, which the backtest's table shows; it sets no spread.
    usable = np.isfinite(rows["residual"].to_numpy(float))
    usable &= (rows["law"] == "loss").to_numpy() | np.isfinite(rows["slope"].to_numpy(float))
    rows = rows[usable]
    fitted = {}
    loss_rows = rows[rows["law"] == "loss"]
    near = near or {}
    fitted["loss"] = ModelError.fit(loss_rows["residual"], ci_variance_toward(loss_rows),
                                    loss_rows[list(LOSS_DIRECTIONS)], floors.get("loss", 0.0), near.get("loss"))
    for law in floors:
        if law == "loss":
            continue
        law_rows = rows[rows["law"] == law]
        carried = law_rows["slope"].to_numpy(float) * fitted["loss"].sd(law_rows[list(LOSS_DIRECTIONS)])
        fitted[law] = ModelError.fit(law_rows["residual"], ci_variance_toward(law_rows) + carried**2,
                                     law_rows[list(ERROR_DIRECTIONS)], floors[law], near.get(law))
    return fitted


def extra_sd(errors: dict[str, ModelError], law: str, loss_distances: pd.DataFrame, slope=None,
             L_below=None) -> np.ndarray:
    """What a new run's measured value adds to the law's mean (log units): the law's own error, and
    for an error law the loss law's error carried through its slope as well."""
    loss_error = errors["loss"].sd(loss_distances)
    if law == "loss":
        return loss_error
    own = errors[law].sd(pd.DataFrame({"L_below": np.asarray(L_below, float)}))
    return np.sqrt((np.asarray(slope, float) * loss_error) ** 2 + own**2)


def left_out_model_errors(pool: pd.DataFrame, floors: dict[str, float]) -> tuple[dict, dict[str, dict]]:
    """The model errors of the whole pool, and for each model of it those fitted without its rows."""
    errors = model_errors(pool, floors)
    return errors, {model: model_errors(pool, floors, leave_out=model, near=errors) for model in pool["model"].unique()}
