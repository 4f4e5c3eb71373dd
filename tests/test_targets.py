"""Targets the way teams ask them, checked against the closed forms, against numeric optima found
another way, and by round trips; and on Chinchilla's published points, the tokens per parameter
the project's own Huber fit and bootstrap give at Chinchilla's budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from lmscale.analysis import chain, predict, rollout
from lmscale.analysis.fits import fit_loss
from lmscale.io import tables
from lmscale.jobs import BacktestJob, FitLossJob, Point, PredictJob
from lmscale.laws import fitting, forms, targets, uncertainty
from tests.test_tables import chinchilla_tables
from tests.test_uncertainty import synthetic_study

GADRE = {"E": 1.5, "a": 140.0, "b": 420.0, "eta": 0.12}
EPOCH = {"E": 1.817, "A": 477.8, "B": 2143.9, "alpha": 0.347, "beta": 0.367}
ERROR = {"eps": 0.85, "k": 2.1, "gamma": 0.75}
CHINCHILLA_BUDGET = 5.76e23  # Gopher's and Chinchilla's training compute (FLOPs)


def law_with_refits(form: str, params: dict, spread: float, seed: int, count: int = 200) -> dict:
    """A law as lmscale writes it (laws.fitted_law), its refits scattered around it: every
    multiplicative parameter by a factor exp(spread z), exponents and E by a share spread / 10."""
    names = forms.loss_form(form).params if form in forms.LOSS_FORMS else forms.ERROR_PARAMS
    rng = np.random.default_rng(seed)
    refits = [{name: value * (np.exp(spread * rng.standard_normal()) if name in ("a", "b", "A", "B", "k")
                              else 1 + spread / 10 * rng.standard_normal()) for name, value in params.items()}
              for _ in range(count)]
    return {"form": form, **fitting.fitted_law(dict(params), names, refits, count, seed)}


@pytest.fixture(scope="module")
def gadre_law():
    return law_with_refits("gadre", GADRE, 0.2, seed=1)


@pytest.fixture(scope="module")
def chinchilla_law():
    return law_with_refits("chinchilla", EPOCH, 0.2, seed=2)


@pytest.fixture(scope="module")
def error_law():
    return law_with_refits("error", ERROR, 0.1, seed=3)


def numeric_optimum_N(params: dict, C: float) -> float:
    """The N of least Chinchilla loss at compute C, found apart from the closed form: the root of
    d L / d ln N = -alpha A N^-alpha + beta B D^-beta along D = C / 6N."""
    def slope(log_N):
        D = C / (6 * np.exp(log_N))
        N_term = params["alpha"] * params["A"] * np.exp(-params["alpha"] * log_N)
        return params["beta"] * params["B"] * D ** -params["beta"] - N_term
    return float(np.exp(brentq(slope, np.log(1e3), np.log(C / 6 / 1e3), xtol=1e-14, rtol=1e-15)))


@pytest.mark.parametrize("C", [1e18, 1e21, CHINCHILLA_BUDGET, 1e26])
def test_a_budget_buys_chinchillas_closed_form_optimum(chinchilla_law, C):
    row = targets.resolve_target({"name": "budget", "C": C}, chinchilla_law)
    p = EPOCH
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    assert row["N"] == pytest.approx(G * (C / 6) ** (p["beta"] / (p["alpha"] + p["beta"])), rel=1e-6)
    assert row["N"] == pytest.approx(numeric_optimum_N(p, C), rel=1e-6)
    assert row["C"] == pytest.approx(C, rel=1e-12) and row["D"] == pytest.approx(C / (6 * row["N"]), rel=1e-12)
    # The optimum moves with the law: the interval is that of each refit's own optimum.
    samples = fitting.law_samples(chinchilla_law, forms.loss_form("chinchilla").params)
    own = [targets.compute_optimal_run(forms.chinchilla_parameters("chinchilla", s), C)[0] for s in samples]
    assert [row["N_ci_lo"], row["N_ci_hi"]] == pytest.approx(np.percentile(own, [2.5, 97.5]), rel=1e-12)
    assert row["N_ci_lo"] < row["N"] < row["N_ci_hi"] and row["C_ci_lo"] == row["C_ci_hi"] == row["C"]
    assert "moves with C as C^-0.028" in row["note"]


@pytest.mark.parametrize("C", [1e17, 1e20, 1e24])
def test_under_eq4_the_optimal_multiplier_is_the_same_at_every_budget(gadre_law, C):
    row = targets.resolve_target({"name": "budget", "C": C}, gadre_law)
    M_star = (GADRE["b"] / GADRE["a"]) ** (1 / (2 * GADRE["eta"]))
    assert row["M"] == pytest.approx(M_star, rel=1e-6)

    def slope(log_M):  # d L(C, M) / d ln M, apart from the closed form
        M = np.exp(log_M)
        return (GADRE["a"] * M ** GADRE["eta"] - GADRE["b"] * M ** -GADRE["eta"]) * GADRE["eta"] * C ** -GADRE["eta"]
    assert row["M"] == pytest.approx(np.exp(brentq(slope, -10, 20, xtol=1e-14)), rel=1e-6)
    refits = fitting.law_samples(gadre_law, forms.loss_form("gadre").params)
    assert [row["M_ci_lo"], row["M_ci_hi"]] == pytest.approx(
        np.percentile([targets.gadre_optimal_multiplier(s) for s in refits], [2.5, 97.5]), rel=1e-9)
    assert "does not depend on C" in row["note"] and f"{M_star:.3g}" in row["note"]


def test_a_loss_goal_costs_eq4s_closed_form_compute(gadre_law):
    """Under Eq. 4 the least loss at C is E + 2 sqrt(a b) C^-eta: a goal L costs C = ((L - E) / 2 sqrt(ab))^(-1/eta)."""
    goal = 2.3
    row = targets.resolve_target({"name": "goal", "loss": goal}, gadre_law)
    E, a, b, eta = (GADRE[p] for p in ("E", "a", "b", "eta"))
    assert row["C"] == pytest.approx(((goal - E) / (2 * np.sqrt(a * b))) ** (-1 / eta), rel=1e-6)
    assert row["M"] == pytest.approx((b / a) ** (1 / (2 * eta)), rel=1e-6)
    assert row["loss_pred"] == pytest.approx(goal, rel=1e-12)
    assert row["C_ci_lo"] < row["C"] < row["C_ci_hi"] and row["loss_ci_lo"] < goal < row["loss_ci_hi"]


@pytest.mark.parametrize("form", ["gadre", "chinchilla"])
def test_round_trips(form, gadre_law, chinchilla_law, error_law):
    """The loss a budget buys, asked back as a goal, costs that budget; at a given M too; and the
    error a budget buys, asked as an error goal, costs it again."""
    law = gadre_law if form == "gadre" else chinchilla_law
    for C, M in ((1e21, None), (3e22, 80.0), (1e19, 5.0)):
        extra = {} if M is None else {"M": M}
        bought = targets.resolve_target({"name": "budget", "C": C, **extra}, law, error_law)
        for goal in ({"loss": bought["loss_pred"]}, {"err": bought["err_pred"]}):
            back = targets.resolve_target({"name": "goal", **goal, **extra}, law, error_law)
            for quantity in ("C", "N", "D", "M"):
                assert back[quantity] == pytest.approx(bought[quantity], rel=1e-6), (goal, quantity)
            assert back["kind"] == ("goal" if M is None else "goal_at_M")


@pytest.mark.parametrize("form", ["gadre", "chinchilla"])
def test_serving_more_tokens_moves_the_cheapest_run_to_a_smaller_model_trained_longer(form, gadre_law, chinchilla_law):
    law = gadre_law if form == "gadre" else chinchilla_law
    goal = 2.2
    optimal = targets.resolve_target({"name": "goal", "loss": goal}, law)
    served = np.concatenate([[0.0], np.geomspace(1e9, 1e16, 15)])
    rows = pd.DataFrame([targets.resolve_target({"name": "serve", "loss": goal, "inference_tokens": float(t)}, law)
                         for t in served])
    assert rows.loc[0, ["N", "D"]].tolist() == pytest.approx([optimal["N"], optimal["D"]], rel=1e-9)
    assert (np.diff(rows["N"]) < 0).all() and (np.diff(rows["D"]) > 0).all()
    assert np.allclose(rows["loss_pred"], goal, rtol=1e-9)
    central = forms.chinchilla_parameters(form, law["params"])
    for row in rows.iloc[1:].itertuples():
        # Cheaper overall than the compute-optimal run serving the same tokens, and than its neighbours
        # along the runs that reach the goal (a numeric check of the root found).
        assert row.total_flops < 6 * optimal["N"] * optimal["D"] + 2 * optimal["N"] * row.inference_tokens
        for factor in (0.999, 1.001):
            N = row.N * factor
            D = (central.B / (goal - central.E - central.A * N ** -central.alpha)) ** (1 / central.beta)
            assert 6 * N * D + 2 * N * row.inference_tokens > row.total_flops
    assert "the compute-optimal run of the same loss" in rows.loc[3, "note"]


def test_a_goal_at_a_given_multiplier_is_the_smallest_run_there(chinchilla_law):
    row = targets.resolve_target({"name": "goal", "loss": 2.1, "M": 200.0}, chinchilla_law)
    assert row["M"] == pytest.approx(200.0, rel=1e-12)
    assert forms.chinchilla_loss(row["N"], row["D"], **EPOCH) == pytest.approx(2.1, rel=1e-12)
    assert forms.chinchilla_loss(row["N"] * 0.99, row["D"] * 0.99, **EPOCH) > 2.1


def test_goals_out_of_reach_fail_in_one_line_naming_the_target_and_the_floor(gadre_law, error_law):
    with pytest.raises(ValueError, match=r"^target 'too good': loss 1.4 is at or below the loss law's floor E = 1.5: "):
        targets.resolve_target({"name": "too good", "loss": 1.4}, gadre_law)
    floor = forms.error_law(GADRE["E"], **ERROR)
    with pytest.raises(ValueError, match=rf"^target 'e': error 0.1 is at or below the laws' floor {floor:.4g} "):
        targets.resolve_target({"name": "e", "err": 0.1}, gadre_law, error_law)
    with pytest.raises(ValueError, match="at or above the error law's ceiling eps = 0.85"):
        targets.resolve_target({"name": "e", "err": 0.9}, gadre_law, error_law)
    with pytest.raises(ValueError, match="needs the error law"):
        targets.resolve_target({"name": "e", "err": 0.5}, gadre_law)
    with pytest.raises(ValueError, match=r"target 'x': give N and M; .*got C, N"):
        targets.resolve_target({"name": "x", "C": 1e20, "N": 1e9}, gadre_law)
    with pytest.raises(ValueError, match=r"target 'x': C = -1 is not a positive number"):
        targets.resolve_target({"name": "x", "C": -1}, gadre_law)
    # A law whose term or exponent came out negative (the smoke study's six tiny runs: b < 0, eta < 0).
    degenerate = {"form": "gadre", "params": {"E": 11.6, "a": 0.31, "b": -2.67, "eta": -0.041}}
    with pytest.raises(ValueError, match=r"^target 'x': the fitted loss law \(E = 11.6, a = 0.31, b = -2.67, "
                                         r"eta = -0.041\) has a term or exponent at or below zero"):
        targets.resolve_target({"name": "x", "C": 1e12}, degenerate)
    assert targets.resolve_target({"name": "run", "N": 1e5, "M": 10}, degenerate)["loss_pred"] > 0


def test_refits_that_cannot_reach_a_goal_make_its_upper_bound_infinite(gadre_law):
    """Just above the fitted floor, refits with a higher E never get there: their runs count as infinite."""
    row = targets.resolve_target({"name": "near the floor", "loss": GADRE["E"] * 1.01}, gadre_law)
    assert row["samples_unreachable"] > 0.025 * 200 and row["N_ci_hi"] == np.inf and np.isfinite(row["N"])
    assert row["samples"] + row["samples_unreachable"] == 200
    assert f"{row['samples_unreachable']} refits put the goal at or below their floor" in row["note"]


def test_the_table_of_resolved_targets(gadre_law, error_law):
    asked = [{"name": "70B", "N": 7e10, "M": 20}, {"name": "1e23", "C": 1e23},
             {"name": "1e23 at M 80", "C": 1e23, "M": 80}, {"name": "2.4", "loss": 2.4},
             {"name": "err 0.5", "err": 0.5}, {"name": "served", "loss": 2.4, "inference_tokens": 2e12}]
    table = targets.resolve_targets(asked, gadre_law, error_law)
    assert list(table.columns) == targets.COLUMNS and list(table["name"]) == [t["name"] for t in asked]
    assert list(table["kind"]) == ["run", "budget", "budget_at_M", "goal", "goal", "goal_with_inference"]
    for quantity in ("N", "D", "M", "C", "loss", "err"):
        value = table[quantity if quantity in targets.RESOLVED else f"{quantity}_pred"]
        assert (table[f"{quantity}_ci_lo"] <= value).all() and (value <= table[f"{quantity}_ci_hi"]).all(), quantity
    assert table.loc[0, "N_ci_lo"] == table.loc[0, "N_ci_hi"] == 7e10
    assert targets.as_runs(table)[2] == {"name": "1e23 at M 80", "N": pytest.approx(np.sqrt(1e23 / 480)), "M": 80.0}
    loss_only = targets.resolve_targets(asked[:4], gadre_law)
    assert not [c for c in loss_only.columns if c.startswith("err")]


@pytest.mark.slow
@pytest.mark.testbed
def test_chinchillas_budget_buys_about_20_tokens_per_parameter(tmp_path, chinchilla_epoch2024):
    """Epoch AI's extraction of Chinchilla's runs read as a loss table, fitted as Epoch did (the five
    highest losses left out, Huber on log loss) with the project's fit and its bootstrap (200 refits):
    at Chinchilla's 5.76e23 FLOPs the compute-optimal run trains ~18 tokens per parameter, 95% interval
    ~13-25 (Epoch: consistent with Chinchilla's 20; Hoffmann et al.'s rounded approach-3 parameters give
    93). A ratio outside 5-100 would mean the fit or the solve broke: 5 is below any ratio a Chinchilla
    approach reported, 100 above even the rounded approach-3 law's."""
    points = pd.read_csv(chinchilla_epoch2024 / "points.csv")
    chinchilla_tables(points).to_csv(tmp_path / "loss.csv", index=False)
    loss = tables.read_loss_table(tmp_path / "loss.csv")
    fit = loss.sort_values("loss").iloc[:-5]
    job = FitLossJob("chinchilla", "massivetext", [Point(s, float(m)) for s, m in zip(fit["size"], fit["M"])],
                     "chinchilla", "huber", 1e-3, 200, 0)
    law = fit_loss(loss, job)
    row = targets.resolve_target({"name": "chinchilla", "C": CHINCHILLA_BUDGET}, law)
    print(f"tokens per parameter at {CHINCHILLA_BUDGET:.3g} FLOPs: {row['M']:.1f} [{row['M_ci_lo']:.1f}, "
          f"{row['M_ci_hi']:.1f}]; N {row['N']:.3g} [{row['N_ci_lo']:.3g}, {row['N_ci_hi']:.3g}], "
          f"D {row['D']:.3g} [{row['D_ci_lo']:.3g}, {row['D_ci_hi']:.3g}], loss {row['loss_pred']:.4f}")
    assert law["bootstrap"]["kept"] == 200 and row["samples"] == 200
    assert all(np.isfinite(row[c]) for c in ("M", "M_ci_lo", "M_ci_hi"))
    assert 5 < row["M_ci_lo"] < row["M"] < row["M_ci_hi"] < 100
    assert row["M_ci_lo"] < 20 < row["M_ci_hi"]  # Chinchilla's own ratio, as Epoch found


# ---- the wiring: `lmscale predict` resolves the targets, then chains them as any other target


@pytest.fixture(scope="module")
def synthetic_fit():
    """A study drawn from the paper's law (six sizes by seven multipliers), its loss law fitted with
    20 refits and backtested, as the fit_loss, backtest and predict rules would."""
    loss = synthetic_study(0)
    job = FitLossJob("web", "val", [Point(size, 20.0) for size in ("s1", "s2", "s3", "s4")] + [Point("s1", 320.0)],
                     "gadre", "least_squares", 1e-3, 20, 0)
    law = fit_loss(loss, job)
    pool, _ = rollout.backtest(BacktestJob(job, None, [], 2), loss, None, law, {})
    return loss, law, pool[uncertainty.POOL_COLUMNS]


def test_predict_resolves_a_budget_and_a_goal_into_their_rows(synthetic_fit, caplog):
    loss, law, pool = synthetic_fit
    given = {"name": "given", "N": 2e9, "M": 20.0}
    asked = [given, {"name": "budget", "C": 1e22}, {"name": "goal", "loss": 2.7}, {"name": "beyond", "loss": 2.0}]
    plain, _ = chain.predict(loss, None, law, {}, pool, PredictJob("web", "val", [given], []))
    table, _ = chain.predict(loss, None, law, {}, pool, PredictJob("web", "val", asked, []))
    # Targets given as runs alone: the table as it always was. Resolved ones add columns after it
    # and leave every measured run's row as it was.
    assert "kind" not in plain.columns
    assert list(table.columns) == list(plain.columns) + chain.RESOLVED_COLUMNS
    measured = table[~table["target"]][plain.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(measured, plain[~plain["target"]].reset_index(drop=True))
    assert table[~table["target"]]["kind"].isna().all()
    rows, resolved = table.set_index("model"), targets.resolve_targets(asked[:3], law).set_index("name")
    assert rows.loc["given", plain.columns.drop("model")].equals(plain.set_index("model").loc["given"])
    assert list(rows.loc[["given", "budget", "goal"], "kind"]) == ["run", "budget", "goal"]
    for name in ("budget", "goal"):
        row = rows.loc[name]
        numbers = [*targets.RESOLVED, *[c for c in chain.RESOLVED_COLUMNS if c not in ("kind", "note")]]
        assert list(row[numbers]) == pytest.approx(list(resolved.loc[name, numbers]), rel=1e-12)
        assert row["note"] == resolved.loc[name, "note"]
        assert row["N_ci_lo"] < row["N"] < row["N_ci_hi"] and row["loss_pi_lo"] < row["loss_pred"] < row["loss_pi_hi"]
        # The loss of the run it resolved to is the law's, chained as every row's is.
        assert row["loss_pred"] == pytest.approx(forms.loss_form("gadre").predict(law["params"], row["N"], row["D"]),
                                                 rel=1e-12)
    assert rows.loc["budget", "C"] == 1e22  # as asked, not 6ND rounded
    assert rows.loc["goal", "loss_pred"] == pytest.approx(2.7, rel=1e-9)
    assert "the optimal M does not depend on C" in rows.loc["budget", "note"]
    # A goal below the law's floor (E = 2.42 here) stops nothing: its row says why, with no run.
    assert rows.loc["beyond", "note"] == ("not resolved: target 'beyond': loss 2 is at or below the loss law's "
                                          f"floor E = {law['params']['E']:.4g}: no run reaches it")
    assert rows.loc["beyond", ["N", "C", "loss_pred", "loss_pi_hi"]].isna().all()
    with caplog.at_level("INFO", logger="lmscale.analysis.predict"):
        predict.log_resolved(table[table["target"] & (table["kind"] != "run")])
    budget_line = next(line for line in caplog.messages if line.startswith("target budget (budget)"))
    assert f"N {rows.loc['budget', 'N']:.3g} [{rows.loc['budget', 'N_ci_lo']:.3g}, " in budget_line
    assert "C 1e+22 [1e+22, 1e+22]" in budget_line and "does not depend on C" in budget_line
    assert any(line.startswith("target beyond (goal) not resolved: ") for line in caplog.messages)
