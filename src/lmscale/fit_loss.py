"""Fit the loss law to a declared fit set, with bootstrap intervals."""

from __future__ import annotations

import argparse
import logging
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lmscale import laws, testbed

log = logging.getLogger(__name__)


def fit_set_rows(loss: pd.DataFrame, dataset: str, valset: str, points) -> pd.DataFrame:
    on_valset = loss[loss["valset"] == valset]
    return testbed.runs_at(on_valset, dataset, points, f"loss fit set on {valset}")


def fit_loss(
    loss: pd.DataFrame,
    dataset: str,
    valset: str,
    points: list[tuple[str, float]],
    form: str = "gadre",
    method: str = "least_squares",
    huber_delta: float = 1e-3,
    bootstrap_samples: int = 200,
    seed: int = 0,
) -> dict:
    rows = fit_set_rows(loss, dataset, valset, points)
    law_form = laws.loss_form(form)
    if len(rows) < len(law_form.params):
        raise ValueError(
            f"the loss fit set has {len(rows)} runs but the {form} law has {len(law_form.params)} "
            f"parameters; add runs to loss_fit_set"
        )
    N, D, L = (rows[c].to_numpy(float) for c in ("N", "D", "loss"))
    params = laws.fit_loss_law(form, N, D, L, method, huber_delta)

    best_start = [tuple(params[p] for p in law_form.params)]
    resampled = laws.bootstrap(
        lambda idx: laws.fit_loss_law(form, N[idx], D[idx], L[idx], method, huber_delta, starts=best_start),
        len(rows),
        len(law_form.params),
        bootstrap_samples,
        seed,
    )
    predicted = law_form.predict(params, N, D)
    return {
        "dataset": dataset,
        "valset": valset,
        "form": form,
        "method": method,
        **laws.fitted_law(params, law_form.params, resampled, bootstrap_samples, seed),
        "rmse": float(np.sqrt(np.mean((predicted - L) ** 2))),
        "fit_set": [
            {"model": m, "size": s, "N": n, "D": d, "M": mult, "loss": l, "loss_pred": float(p)}
            for m, s, n, d, mult, l, p in zip(
                rows["model"], rows["size"], N, D, rows["M"], L, predicted
            )
        ],
    }


def parse_points(text: str) -> list[tuple[str, float]]:
    """A fit set given as JSON: [{"size": ..., "M": ...}, ...]."""
    return [(str(p["size"]), float(p["M"])) for p in json.loads(text)]


def write_json(payload: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss-table", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--valset", required=True)
    parser.add_argument("--fit-set", required=True, help='JSON list of {"size": ..., "M": ...}')
    parser.add_argument("--form", default="gadre", choices=sorted(laws.LOSS_FORMS))
    parser.add_argument("--method", default="least_squares", choices=laws.LOSS_FIT_METHODS)
    parser.add_argument("--huber-delta", type=float, default=1e-3)
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)


def main(args) -> None:
    law = fit_loss(
        testbed.read_loss_table(args.loss_table),
        args.dataset,
        args.valset,
        parse_points(args.fit_set),
        args.form,
        args.method,
        args.huber_delta,
        args.bootstrap,
        args.seed,
    )
    log.info("%s %s law on %s/%s: %s (rmse %.4g, %d bootstrap refits)", law["form"], law["method"],
             args.dataset, args.valset, law["params"], law["rmse"], law["bootstrap"]["kept"])
    write_json(law, args.out)
