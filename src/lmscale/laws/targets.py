"""Targets the way teams ask: a budget, a goal, an inference load, resolved to a run (N, D).

A target names what a team knows and leaves the rest to the fitted loss law:

| asked | kind | the run |
| --- | --- | --- |
| `{name, N, M}` | run | as given |
| `{name, C}` | budget | the N and D = C / 6N of least loss at C (compute-optimal) |
| `{name, C, M}` | budget_at_M | N = sqrt(C / 6M), D = M N |
| `{name, loss}` or `{name, err}` | goal | the cheapest run (least C) whose loss reaches the goal |
| `{name, loss, M}` or `{name, err, M}` | goal_at_M | the smallest run at M that reaches it |
| `{name, loss, inference_tokens}` (or err) | goal_with_inference | least 6ND + 2N x tokens that reaches it |

Both loss forms are solved in Chinchilla's parameters, L(N, D) = E + A N^-alpha + B D^-beta;
the paper's Eq. 4 is that form with alpha = beta = 2 eta, A = a 6^-eta, B = b 6^-eta.
Closed forms (Hoffmann et al. 2022, Appendix D; x = C / 6):
- N_opt(C) = G x^(beta / (alpha + beta)), D_opt = x / N_opt, G = (alpha A / (beta B))^(1 / (alpha + beta));
- at the optimum the reducible loss L - E is split in the fixed shares beta : alpha between the N
  and the D term, so the cheapest run reaching a loss is closed too;
- for Eq. 4, M* = D_opt / N_opt = (b / a)^(1 / (2 eta)), the same at every budget.
The inference-aware goal and a goal at a fixed M with alpha != beta are 1-D root finds
(brentq, on a variable where the condition is monotone). An error goal goes through the error
law's inverse L = -ln((eps - err) / k) / gamma.

Intervals: the optimum moves with the law, so every bootstrap refit stored with the law resolves
the target anew and N, D, M, C take the 2.5% and 97.5% quantiles of those runs (`*_ci_lo`,
`*_ci_hi`). The loss and error are those of the resolved run, the one a team would train, as
every refit predicts it (the i-th loss refit feeding the i-th error refit, as lmscale.analysis.chain
chains them). A refit under which the goal is out of reach (its floor E above the goal) counts as
a run of infinite size: with more than 2.5% of those the upper bound is infinite, and says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from lmscale.laws import forms, uncertainty
from lmscale.laws.forms import Chinchilla, loss_for_error
from lmscale.laws.law import ErrorLaw, LossLaw

KINDS = {
    frozenset({"N", "M"}): "run",
    frozenset({"C"}): "budget",
    frozenset({"C", "M"}): "budget_at_M",
    frozenset({"loss"}): "goal",
    frozenset({"err"}): "goal",
    frozenset({"loss", "M"}): "goal_at_M",
    frozenset({"err", "M"}): "goal_at_M",
    frozenset({"loss", "inference_tokens"}): "goal_with_inference",
    frozenset({"err", "inference_tokens"}): "goal_with_inference",
}
RESOLVED = ("N", "D", "M", "C")
# The columns of resolve_targets' table, in order (err_* only with an error law).
COLUMNS = ["name", "kind", *[f"{q}{s}" for q in RESOLVED for s in ("", "_ci_lo", "_ci_hi")],
           "inference_tokens", "total_flops", "loss_pred", "loss_ci_lo", "loss_ci_hi",
           "err_pred", "err_ci_lo", "err_ci_hi", "samples", "samples_unreachable", "note"]


def split_constant(law: Chinchilla) -> float:
    """G = (alpha A / (beta B))^(1 / (alpha + beta)), so that N_opt(C) = G (C / 6)^(beta / (alpha + beta))."""
    return (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / (law.alpha + law.beta))


def compute_optimal_run(law: Chinchilla, C: float) -> tuple[float, float]:
    """The (N, D) of least loss among runs of compute C = 6 N D (closed form)."""
    x = C / 6.0
    N = split_constant(law) * x ** (law.beta / (law.alpha + law.beta))
    if np.ndim(N) == 0 and not (np.isfinite(N) and N > 0):  # a refit whose optimum under- or overflows: no run
        return float("nan"), float("nan")
    return N, x / N


def optimal_loss(loss_law: LossLaw | dict, C) -> np.ndarray:
    """The fitted law's least loss at compute C (the compute-optimal run's)."""
    law = LossLaw.of(loss_law)
    N, D = compute_optimal_run(law.chinchilla(), np.asarray(C, float))
    return law.predict(N, D)


def gadre_optimal_multiplier(params: dict) -> float:
    """Eq. 4's compute-optimal M* = (b / a)^(1 / (2 eta)): where a M^eta + b M^-eta is least, at any C."""
    return LossLaw.given("gadre", params).optimal_multiplier()


def budget_run(law: Chinchilla, C: float, M: float | None) -> tuple[float, float]:
    """The run a budget buys: compute-optimal, or at the multiplier given."""
    if M is None:
        return compute_optimal_run(law, C)
    N = np.sqrt(C / (6.0 * M))
    return N, M * N


def goal_run_at_multiplier(law: Chinchilla, reducible: float, M: float) -> tuple[float, float]:
    """The smallest run at M with A N^-alpha + B (M N)^-beta = `reducible` (the loss above E)."""
    B_at_M = law.B * M**-law.beta
    if law.alpha == law.beta:  # one power of N: closed form
        N = ((law.A + B_at_M) / reducible) ** (1.0 / law.alpha)
        return N, M * N

    def excess(log_N):  # log of the reducible loss the run leaves, against the goal's; falls with N
        left = np.logaddexp(np.log(law.A) - law.alpha * log_N, np.log(B_at_M) - law.beta * log_N)
        return left - np.log(reducible)

    # Below the smaller bound either term alone exceeds the goal; above the larger each is at most half.
    low = min(np.log(law.A / reducible) / law.alpha, np.log(B_at_M / reducible) / law.beta)
    high = max(np.log(2 * law.A / reducible) / law.alpha, np.log(2 * B_at_M / reducible) / law.beta)
    N = float(np.exp(brentq(excess, low, high, xtol=1e-14, rtol=1e-15)))
    return N, M * N


def _run_at_share(law: Chinchilla, reducible: float, logit_share: float) -> tuple[float, float]:
    """The run whose N term takes a share s of the reducible loss and its D term 1 - s.

    `logit_share` = ln(s / (1 - s)), so that shares near 0 or 1 keep their precision."""
    log_share, log_rest = -np.logaddexp(0.0, -logit_share), -np.logaddexp(0.0, logit_share)
    log_N = (np.log(law.A) - np.log(reducible) - log_share) / law.alpha
    log_D = (np.log(law.B) - np.log(reducible) - log_rest) / law.beta
    return float(np.exp(log_N)), float(np.exp(log_D))


def goal_run(law: Chinchilla, reducible: float, inference_tokens: float) -> tuple[float, float]:
    """The run of least training plus inference compute, 6 N D + 2 N T, whose loss is E + `reducible`.

    Along the runs of that loss, with s the N term's share: d cost / d N = 0 where
    1 - (alpha / beta) s / (1 - s) + T / (3 D) = 0, a condition that falls monotonically in s.
    With T = 0 it is s = beta / (alpha + beta), the compute-optimal split (closed form).
    """
    compute_optimal = np.log(law.beta / law.alpha)
    if inference_tokens == 0:
        return _run_at_share(law, reducible, compute_optimal)

    def condition(logit_share):
        _, D = _run_at_share(law, reducible, logit_share)
        return 1.0 - law.alpha / law.beta * np.exp(logit_share) + inference_tokens / (3.0 * D)

    high = compute_optimal + 1.0
    while condition(high) > 0:  # serving more than it trains moves the share toward N's term: widen
        high = compute_optimal + 2.0 * (high - compute_optimal)
    return _run_at_share(law, reducible, brentq(condition, compute_optimal, high, xtol=1e-13, rtol=1e-15))


# ---------------------------------------------------------------- a target, under every refit


def target_kind(target: dict) -> str:
    """What a target asks (KINDS), its values checked; one line naming the target otherwise."""
    asked = frozenset(key for key in target if key != "name")
    if "name" not in target:
        raise ValueError(f"target {dict(target)!r} has no name: name it (the name is its row in the predictions)")
    name = target["name"]
    if asked not in KINDS:
        raise ValueError(f"target {name!r}: give N and M; or C (and M); or loss or err (and M or "
                         f"inference_tokens); got {', '.join(sorted(asked)) or 'nothing'}")
    for key in asked:
        if isinstance(target[key], bool) or not isinstance(target[key], (int, float, np.number)):
            # YAML reads 1e13 (no point, no exponent sign) as text
            raise ValueError(f"target {name!r}: {key} = {target[key]!r} is not a number (write 1e13 as 1.0e+13)")
        value = float(target[key])
        least = 0.0 if key == "inference_tokens" else np.nextafter(0.0, 1.0)
        if not (np.isfinite(value) and value >= least) or (key == "err" and value >= 1):
            raise ValueError(f"target {name!r}: {key} = {target[key]!r} is not a "
                             f"{'fraction in (0, 1)' if key == 'err' else 'positive number'}")
    return KINDS[asked]


def _sound(law: Chinchilla) -> bool:
    """A refit can land where the law has no optimum (a negative term or exponent): it resolves nothing."""
    values = np.array([law.E, law.A, law.B, law.alpha, law.beta], float)
    return bool(np.isfinite(values).all() and (values[1:] > 0).all())


def resolve_run(target: dict, kind: str, law: Chinchilla, error_params: dict | None) -> tuple[float, float]:
    """(N, D) of a target under one loss law (and error law, for an error goal): (inf, inf) where the
    goal lies at or below the law's floor, (nan, nan) where the law has no answer."""
    if kind == "run":
        return float(target["N"]), float(target["M"]) * float(target["N"])
    if not _sound(law):
        return float("nan"), float("nan")
    if kind in ("budget", "budget_at_M"):
        return budget_run(law, float(target["C"]), float(target["M"]) if kind == "budget_at_M" else None)
    loss = float(target["loss"]) if "loss" in target else loss_for_error(float(target["err"]), **error_params)
    if np.isnan(loss):  # an error goal at or above this error law's ceiling eps
        return float("nan"), float("nan")
    if loss <= law.E:
        return float("inf"), float("inf")
    if kind == "goal_at_M":
        return goal_run_at_multiplier(law, loss - law.E, float(target["M"]))
    tokens = float(target["inference_tokens"]) if kind == "goal_with_inference" else 0.0
    return goal_run(law, loss - law.E, tokens)


def check_reachable(target: dict, law: Chinchilla, error_params: dict | None) -> None:
    """A goal the fitted laws never reach fails here, in one line naming the target and the floor."""
    name = target["name"]
    if "loss" in target and float(target["loss"]) <= law.E:
        raise ValueError(f"target {name!r}: loss {float(target['loss']):g} is at or below the loss law's floor "
                         f"E = {law.E:.4g}: no run reaches it")
    if "err" not in target:
        return
    if error_params is None:
        raise ValueError(f"target {name!r}: an error goal needs the error law, and this study has none (loss only)")
    err, floor = float(target["err"]), float(forms.error_law(law.E, **error_params))
    if err <= floor:
        raise ValueError(f"target {name!r}: error {err:g} is at or below the laws' floor {floor:.4g} (the error "
                         f"law at the loss floor E = {law.E:.4g}): no run reaches it")
    if err >= error_params["eps"]:
        raise ValueError(f"target {name!r}: error {err:g} is at or above the error law's ceiling "
                         f"eps = {error_params['eps']:.4g}: it asks for no learning")


def quantiles(values) -> tuple[float, float]:
    """The central 95% of the refits' values; an unreachable refit (inf) is the largest value of all."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    # Linear interpolation between a finite value and inf is not a number: take order statistics then.
    method = "linear" if np.isfinite(values).all() else "inverted_cdf"
    low, high = np.percentile(values, [50 * (1 - uncertainty.LEVEL), 50 * (1 + uncertainty.LEVEL)], method=method)
    return float(low), float(high)


def sampled_runs(target: dict, kind: str, loss_law: LossLaw, error_law: ErrorLaw | None) -> np.ndarray:
    """(refits x 2): the (N, D) every bootstrap refit resolves the target to; an error goal pairs the
    i-th loss refit with the i-th error refit."""
    loss_samples = loss_law.samples()
    error_samples = error_law.samples() if error_law is not None else []
    if "err" in target:
        loss_samples = loss_samples[:len(error_samples)]
    runs = [resolve_run(target, kind, loss_law.chinchilla(sample),
                        error_samples[i] if "err" in target else None) for i, sample in enumerate(loss_samples)]
    return np.array(runs, float).reshape(-1, 2)


def _chained_columns(N: float, D: float, loss_law: LossLaw, error_law: ErrorLaw | None) -> dict:
    """The loss and error of the run (N, D) by the fitted laws and by every refit, as lmscale.analysis.chain chains them."""
    loss = float(loss_law.predict(N, D))
    loss_sampled = np.array([loss_law.form.predict(s, N, D) for s in loss_law.samples()], float)
    columns = {"loss_pred": loss, **dict(zip(("loss_ci_lo", "loss_ci_hi"), quantiles(loss_sampled)))}
    if error_law is not None:
        err_sampled = error_law.chained(loss_sampled)
        columns.update({"err_pred": float(error_law.predict(loss)),
                        **dict(zip(("err_ci_lo", "err_ci_hi"), quantiles(err_sampled)))})
    return columns


def _note(kind: str, loss_law: LossLaw, row: dict) -> str:
    """What a reader must know beside the numbers: how the optimal M behaves, what inference costs."""
    params, notes = loss_law.params, []
    if kind in ("budget", "goal") and loss_law.optimum_is_fixed:
        spread = f" (95%: {row['M_ci_lo']:.3g}-{row['M_ci_hi']:.3g})" if np.isfinite(row["M_ci_lo"]) else ""
        notes.append(f"compute-optimal M* = (b/a)^(1/(2 eta)) = {row['M']:.3g}{spread} at every budget: under "
                     "Eq. 4 the optimal M does not depend on C")
    elif kind == "goal_with_inference" and loss_law.optimum_is_fixed:
        notes.append(f"without inference M* = (b/a)^(1/(2 eta)) = {loss_law.optimal_multiplier():.3g} at every "
                     "budget (Eq. 4)")
    elif kind in ("budget", "goal", "goal_with_inference"):
        power = (params["alpha"] - params["beta"]) / (params["alpha"] + params["beta"])
        notes.append(f"compute-optimal M = D/N moves with C as C^{power:.3f}")
    if kind == "goal_with_inference":
        law = loss_law.chinchilla()
        N, D = goal_run(law, row["loss_pred"] - law.E, 0.0)
        notes.append(f"training {row['C']:.3g} + inference {row['total_flops'] - row['C']:.3g} FLOPs; the "
                     f"compute-optimal run of the same loss (N = {N:.3g}, D = {D:.3g}) would cost "
                     f"{6 * N * D + 2 * N * row['inference_tokens']:.3g}")
    if row["samples_unreachable"]:
        notes.append(f"{row['samples_unreachable']} refits put the goal at or below their floor (counted as "
                     "infinitely large runs)")
    return "; ".join(notes)


def resolve_target(target: dict, loss_law: LossLaw | dict, error_law: ErrorLaw | dict | None = None) -> dict:
    """One target as a run: N, D, M, C with their intervals over the refits, the run's predicted loss
    and error (error only with an error law) with theirs, and a note (COLUMNS)."""
    kind = target_kind(target)
    loss_law = LossLaw.of(loss_law)
    error_law = ErrorLaw.of(error_law) if error_law is not None else None
    central = loss_law.chinchilla()
    error_params = error_law.params if error_law is not None else None
    if kind != "run" and not _sound(central):
        shown = ", ".join(f"{name} = {value:.4g}" for name, value in loss_law.params.items())
        raise ValueError(f"target {target['name']!r}: the fitted loss law ({shown}) has a term or exponent at "
                         "or below zero, so it has no optimum: a budget or a goal resolves to no run")
    check_reachable(target, central, error_params)
    N, D = resolve_run(target, kind, central, error_params)
    if not (np.isfinite(N) and np.isfinite(D)):
        raise ValueError(f"target {target['name']!r}: the fitted loss law {loss_law.params} has no such run")
    runs = sampled_runs(target, kind, loss_law, error_law)
    sampled = {"N": runs[:, 0], "D": runs[:, 1], "C": 6.0 * runs[:, 0] * runs[:, 1]}
    with np.errstate(invalid="ignore"):  # inf / inf: an unreachable refit has no M
        sampled["M"] = runs[:, 1] / runs[:, 0]
    point = dict(zip(RESOLVED, (N, D, D / N, 6.0 * N * D)))
    for given in set(RESOLVED) & set(target):  # what the target gives stays as given, not 6ND rounded
        point[given] = float(target[given])
        sampled[given] = np.where(np.isnan(sampled[given]), np.nan, point[given])
    row = {"name": str(target["name"]), "kind": kind}
    for quantity in RESOLVED:
        row[quantity] = point[quantity]
        row[f"{quantity}_ci_lo"], row[f"{quantity}_ci_hi"] = quantiles(sampled[quantity])
    tokens = float(target["inference_tokens"]) if kind == "goal_with_inference" else 0.0
    row.update(inference_tokens=tokens, total_flops=row["C"] + 2.0 * N * tokens)
    row.update(_chained_columns(N, D, loss_law, error_law))
    row.update(samples=int(np.isfinite(runs).all(axis=1).sum()), samples_unreachable=int(np.isinf(runs[:, 0]).sum()))
    row["note"] = _note(kind, loss_law, row)
    return row


def resolve_targets(targets: list[dict], loss_law: LossLaw | dict, error_law: ErrorLaw | dict | None = None
                    ) -> pd.DataFrame:
    """Every target resolved (resolve_target), one row each in COLUMNS' order."""
    rows = [resolve_target(target, loss_law, error_law) for target in targets]
    columns = [c for c in COLUMNS if error_law is not None or not c.startswith("err_")]
    return pd.DataFrame(rows, columns=columns)


def as_runs(table: pd.DataFrame) -> list[dict]:
    """The resolved targets as the `{name, N, M}` runs lmscale.analysis.chain chains."""
    return [{"name": row.name, "N": float(row.N), "M": float(row.M)} for row in table.itertuples()]
