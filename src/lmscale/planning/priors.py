"""What the planner believes before any run is trained: the prior law (given, or the study's own fit with its backtest's model error), where it misses, the miss the runs of one size share along log M (a Gaussian process whose scales come from the backtest's residuals by restricted maximum likelihood), and how a run's loss moves with the law's parameters."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize

from lmscale.laws import uncertainty
from lmscale.laws.law import LossLaw

log = logging.getLogger(__name__)


# Central differences in log theta: a relative step of 1e-5 keeps both the truncation (1e-10)
# and the rounding (1e-16 / 1e-5) errors far below the gradients' own size.
LOG_STEP = 1e-5

class PlanError(ValueError):
    """A plan that cannot be made (a budget too small for any valid fit set)."""

@dataclass(frozen=True)
class Prior:
    """What the planner knows before any run of the plan is trained."""

    form: str
    params: dict[str, float]
    noise_sd: float  # one run's loss noise as a fit will see it, log units
    seed_sd: float  # the part of it that replicates average out (0: not known, replicates not planned)
    points_sd: float  # the noise the prior law's fit gave its own points (0: none recorded)
    shared_sd: float  # the part of it the runs of one size share (0: none known; `with_shared_miss`)
    shared_length: float  # how far along log M that shared miss stays alike (inf: a constant per size)
    noise_source: str
    model_error: uncertainty.ModelError
    fit_N: tuple[float, ...]  # the prior law's fit set (empty: a law given without one)
    fit_D: tuple[float, ...]

    @property
    def law(self) -> LossLaw:
        """The prior law (its form and parameters) as a law object."""
        return LossLaw.given(self.form, self.params)

def prior_from_law(law: LossLaw, model_error: dict, replicate_sd: float | None, default_noise_sd: float | None
                   ) -> Prior:
    """The prior of a fitted law (`loss_law.json`) and its backtest's model error (the summary's
    `model_error["loss"]`).

    A run's noise, as a fit will see it in its residuals, is the larger of what the law's fit
    points had (`noise.sd`: the evaluation's, the replicates' or the residuals' spread) and the
    model error inside the fit set's range (`scale`: how far the law missed runs near its fit set,
    from dozens of backtest residuals where the law's own residuals have a degree of freedom or
    two), else `default_noise_sd`. `replicate_sd`, the seed-to-seed spread of replicates where
    the study has them (else the law's own), is the part a replicate averages out.
    """
    law = LossLaw.of(law)
    noise = law.noise
    error = uncertainty.ModelError.from_dict(model_error)
    sources = {}
    if noise.get("sd"):
        sources[f"the prior law's fit points ({noise['source']})"] = float(np.median(noise["sd"]))
    if error.residuals:
        sources[f"the backtest's model error inside the fit range ({error.residuals} residuals)"] = error.scale
    if not sources:
        if default_noise_sd is None:
            raise PlanError("the prior law records no noise and no backtest residuals; "
                            "state a run's loss sd (log units)")
        sources["the stated default"] = float(default_noise_sd)
    source = max(sources, key=sources.get)
    seed_sd = float(replicate_sd if replicate_sd is not None else noise.get("replicate_sd") or 0.0)
    fit_set = law.fit_set
    points_sd = float(np.median(noise["sd"])) if noise.get("sd") else 0.0
    return Prior(law.form.name, dict(law.params), max(sources[source], seed_sd), seed_sd, points_sd, 0.0, np.inf,
                 source, error,
                 tuple(float(p["N"]) for p in fit_set), tuple(float(p["D"]) for p in fit_set))

def given_prior(form: str, params: dict, noise_sd: float | None) -> Prior:
    """A law given by hand (one fitted elsewhere, such as to a published testbed): a run's noise
    is `noise_sd`, and the model error nothing beyond it, as nothing was backtested."""
    law = LossLaw.given(form, params)
    wanted = law.names
    if sorted(params) != sorted(wanted):
        raise PlanError(f"params {params}: the {form} law's parameters are {', '.join(wanted)}; give each once")
    outside = law.problems()
    if outside:
        region = ", ".join(f"{name} {relation} {bound:g}" for name, (relation, bound) in law.region.items())
        raise PlanError(f"params {'; '.join(outside)}: outside the {form} law's region ({region}); give "
                        f"parameters inside it, such as those of a law fitted to a testbed")
    if noise_sd is None:
        raise PlanError("a law given without its fit points' noise needs one run's loss sd, in log units "
                        "(plan.default_noise_sd, e.g. 0.01)")
    nothing = uncertainty.ModelError.fit([], [], pd.DataFrame(columns=list(uncertainty.LOSS_DIRECTIONS)), noise_sd)
    return prior_from_law(LossLaw.given(form, params), nothing.as_dict(), None, noise_sd)

def misfit(prior: Prior, candidates: pd.DataFrame) -> np.ndarray:
    """How far the law may miss each candidate beyond a run's noise (log units): the model
    error's growth with the candidate's distance from the prior's fit set, as the backtest
    measured it (0 for a prior without a fit set: nothing is known)."""
    if not prior.fit_N:
        return np.zeros(len(candidates))
    distances = uncertainty.loss_distances(candidates["N"], candidates["D"], prior.fit_N, prior.fit_D)
    return np.sqrt(np.maximum(prior.model_error.sd(distances) ** 2 - prior.model_error.scale**2, 0.0))

def eligible(prior: Prior, candidates: pd.DataFrame) -> np.ndarray:
    """The candidates where the law is known to hold to within a run's noise. The planner's
    model takes every chosen run's miss as noise; a run the law misses by more (on the paper's
    testbed, M = 5 and 10 below a fit set at M >= 20) raises the noise the fit finds in all of
    its runs and pulls the law off, which widens the interval it was chosen to narrow."""
    return misfit(prior, candidates) <= prior.noise_sd

# A variance between sizes from fewer sizes rests on one degree of freedom or none.
LEAST_SIZES = 3

# The shared miss's length along log M is sought between these (a multiplier 1.1x apart; 100: a
# constant per size over any range of M).
LENGTHS = (0.1, 100.0)

def kernel(x, length: float) -> np.ndarray:
    """exp(-(x_i - x_j)^2 / (2 length^2)) between the log multipliers `x` of one size's runs."""
    return np.exp(-np.subtract.outer(x, x) ** 2 / (2 * length**2))

def shared_miss(residuals, sizes, log_M) -> tuple[float, float, float] | None:
    """(own variance, shared variance, length) of residuals r ~ N(mu, own I + shared K), K_ij =
    `kernel` for two runs of one size (0 across sizes; 1 on the diagonal), by restricted maximum
    likelihood (mu profiled out); None with fewer than LEAST_SIZES sizes or no size of two runs."""
    r, sizes, x = np.asarray(residuals, float), np.asarray(sizes).astype(str), np.asarray(log_M, float)
    n, k = len(r), len(set(sizes.tolist()))
    if k < LEAST_SIZES or n - k < 1:
        return None
    blocks = [(r[sizes == size], kernel(x[sizes == size], 1.0)) for size in sorted(set(sizes.tolist()))]

    def restricted(theta):
        # The covariance is block-diagonal by size: each block's inverse and determinant alone.
        own, shared = np.exp(2 * theta[:2])
        length = np.exp(np.clip(theta[2], *np.log(LENGTHS)))
        log_det, one_one, one_r, r_r = 0.0, 0.0, 0.0, 0.0
        for values, unit_kernel in blocks:
            covariance = (own + 1e-14) * np.eye(len(values)) + shared * unit_kernel ** (1.0 / length**2)
            inverse = np.linalg.inv(covariance)
            log_det += np.linalg.slogdet(covariance)[1]
            one_one, one_r, r_r = one_one + inverse.sum(), one_r + inverse.sum(axis=0) @ values, \
                r_r + values @ inverse @ values
        return 0.5 * (log_det + r_r - one_r**2 / one_one + np.log(one_one))

    spread = max(float(np.std(r)), 1e-6)
    starts = itertools.product(np.log([spread / 3, spread]), np.log([spread / 3, spread]), np.log([0.5, 1.5, 5.0]))
    best = min((optimize.minimize(restricted, list(start), method="Nelder-Mead") for start in starts),
               key=lambda found: found.fun)
    own, shared = np.exp(2 * best.x[:2])
    return float(own), float(shared), float(np.exp(np.clip(best.x[2], *np.log(LENGTHS))))

def with_shared_miss(prior: Prior, backtest: pd.DataFrame | None) -> Prior:
    """The prior with the part of a run's noise that the runs of one size share, a Gaussian process
    along log M (`shared_sd`, `shared_length`), from the prior law's own out-of-sample residuals in
    its backtest (step 0: the law itself, each run once) where the law holds (as `eligible`: the
    runs a plan may choose), by `shared_miss`. A run's total noise stays `noise_sd`; the shared
    part is its share shared / (own + shared) of it, leaving the run at least its own noise as the
    study knows it: its seed-to-seed spread, the noise the prior's fit gave its points, its
    evaluation's. (A few dozen residuals do not tell a run's own noise from a miss shared over a
    short range of M: on the paper's testbed the likelihood is flat between them, and the solver's
    cuts grow steep as a run's own noise nears zero.) The target's own shared miss is not added:
    the backtest's `scale` holds it already, its residuals being misses at runs of sizes the law
    was not fitted to."""
    if backtest is None:
        log.info("no backtest residuals: the runs of one size are taken to miss independently")
        return prior
    rows = backtest[(backtest["law"] == "loss") & (backtest["step"] == 0)]
    rows = rows[eligible(prior, rows)]
    found = shared_miss(rows["residual"], rows["size"], np.log(rows["M"].to_numpy(float)))
    if found is None:
        log.info("%d backtest residuals where the law holds, in %d sizes: too few (at least %d sizes) to tell a "
                 "miss the runs of one size share; they are taken to miss independently", len(rows),
                 rows["size"].nunique(), LEAST_SIZES)
        return prior
    own, shared, length = found
    least_own = max(prior.model_error.floor, prior.seed_sd, prior.points_sd)
    share = shared / (own + shared) if own + shared > 0 else 0.0
    shared_sd = np.sqrt(min(share * prior.noise_sd**2, max(prior.noise_sd**2 - least_own**2, 0.0)))
    log.info("the runs of one size share %.0f%% of a run's noise variance along log M (length %.3g): from %d "
             "backtest residuals where the law holds, in %d sizes, %.3g shared and %.3g their own (restricted "
             "maximum likelihood); a run's noise %.3g = %.3g shared + %.3g its own (at least %.3g: its seed-to-seed "
             "spread, its fit points' noise, its evaluation's)", 100 * shared_sd**2 / prior.noise_sd**2, length,
             len(rows), rows["size"].nunique(), np.sqrt(shared), np.sqrt(own), prior.noise_sd, shared_sd,
             np.sqrt(prior.noise_sd**2 - shared_sd**2), least_own)
    return replace(prior, shared_sd=float(shared_sd), shared_length=float(length))

def shared_loadings(prior: Prior, candidates: pd.DataFrame) -> np.ndarray:
    """(candidates, factors): each run's loadings on independent unit-variance factors whose
    covariance is the shared miss, shared_sd^2 `kernel` within a size and 0 across: per size, the
    eigenvectors of its covariance, scaled (those of a numerically null eigenvalue dropped)."""
    if prior.shared_sd == 0:
        return np.zeros((len(candidates), 0))
    sizes, x = candidates["size"].astype(str).to_numpy(), np.log(candidates["M"].to_numpy(float))
    blocks = []
    for size in sorted(set(sizes.tolist())):
        rows = np.flatnonzero(sizes == size)
        values, vectors = np.linalg.eigh(prior.shared_sd**2 * kernel(x[rows], prior.shared_length))
        kept = values > 1e-9 * values.max()
        block = np.zeros((len(sizes), int(kept.sum())))
        block[rows] = vectors[:, kept] * np.sqrt(values[kept])
        blocks.append(block)
    return np.hstack(blocks)

def gradients(prior: Prior, N, D) -> np.ndarray:
    """d log L / d log theta at each (N, D), one row per run: how much each run's loss tells
    about each parameter, in relative units so that parameters of any size compare."""
    law = prior.law
    N, D = np.asarray(N, float), np.asarray(D, float)
    columns = []
    for name in law.names:
        up, down = dict(prior.params), dict(prior.params)
        up[name] *= np.exp(LOG_STEP)
        down[name] *= np.exp(-LOG_STEP)
        columns.append((np.log(law.with_params(up).predict(N, D)) - np.log(law.with_params(down).predict(N, D)))
                       / (2 * LOG_STEP))
    return np.column_stack(columns)
