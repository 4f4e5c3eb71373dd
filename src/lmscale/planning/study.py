"""A study's plan worked out from its job (`jobs.PlanJob`, the `plan` block): the candidate runs
priced (the compute the laws count, C = 6 N D, and the device hours of the resources model), the
targets and the budget; and what the plan block asks that no plan can give, each refused in one
line naming the config key and the fix. `lmscale plan` builds its plan from these; the Snakefile's
checks (lmscale.checks) call `check_before_runs` when the workflow is planned, so that `snakemake
-n` refuses what can be known then, and the command refuses the rest as it starts, before it
writes anything (docs/planning.md)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from lmscale.jobs import PlanJob, resources
from lmscale.laws.law import LossLaw
from lmscale.planning import design
from lmscale.planning.priors import PlanError
from lmscale.training.budget import usable_tokens

log = logging.getLogger(__name__)

UNIT_WORDS = {"flops": "FLOPs", "gpu_hours": "device hours"}


def price(job: PlanJob, size: str, multiplier: float) -> dict:
    """A run of one of the study's sizes as training plans it: N as the laws count it, D in whole
    steps, its compute C = 6 N D (`flops`) and its device hours at the resources model's throughput."""
    settings = job.pricing.sizes[size]
    vocab = job.pricing.vocab_size or resources.DEFAULT_VOCAB_SIZE
    cost = resources.estimate(settings, multiplier, vocab)
    n = cost.N if settings["count_embeddings"] else cost.N - resources.embedding_count(settings, vocab)
    return {"size": size, "N": float(n), "M": float(multiplier), "D": float(cost.D), "flops": 6.0 * n * cost.D,
            "gpu_hours": resources.device_hours(cost, settings["threads"])}


def study_runs(job: PlanJob, loss: pd.DataFrame | None) -> pd.DataFrame:
    """The runs of the loss table on the plan's dataset and validation set, one row per (size, M)
    (replicates share it), priced as `price` prices them where the study knows the size."""
    if loss is None:
        raise PlanError("plan.candidates.from = testbed needs the study's loss table (--loss-table)")
    rows = loss[(loss["dataset"] == job.dataset) & (loss["valset"] == job.valset)].drop_duplicates(["size", "M"])
    hours = [price(job, s, m)["gpu_hours"] if s in job.pricing.sizes else np.nan
             for s, m in zip(rows["size"], rows["M"])]
    return pd.DataFrame({"size": rows["size"].astype(str), "N": rows["N"].astype(float), "M": rows["M"].astype(float),
                         "D": rows["D"].astype(float), "flops": rows["C"].astype(float), "gpu_hours": hours})


def grid_runs(job: PlanJob, train_tokens: dict | None) -> pd.DataFrame:
    """Every size of the study x every candidate multiplier, priced; a run whose D the train split
    cannot feed is left out unless its size may repeat data (`train.repeat_data`), as training
    would refuse it."""
    table = pd.DataFrame([price(job, size, m) for size in job.pricing.sizes for m in job.candidates.multipliers])
    if train_tokens is None or table.empty:
        return table
    sizes = job.pricing.sizes
    usable = table["size"].map(lambda size: usable_tokens(train_tokens["tokens"], sizes[size]["context"]))
    fed = (table["D"] <= usable) | table["size"].map(lambda size: bool(sizes[size]["repeat_data"]))
    if not fed.all():
        log.info("left out, as the train split (%d tokens) cannot feed them: %s", train_tokens["tokens"],
                 ", ".join(f"{s}_M{m:g}" for s, m in zip(table["size"][~fed], table["M"][~fed])))
    return table[fed]


def known_sizes(job: PlanJob, loss: pd.DataFrame | None) -> list[str]:
    """The sizes a target may name: the study's (`sizes`), then the loss table's."""
    found = list(job.pricing.sizes)
    if loss is not None:
        found += [size for size in dict.fromkeys(loss["size"].astype(str)) if size not in job.pricing.sizes]
    return found


def size_N(job: PlanJob, loss: pd.DataFrame | None, size: str) -> float | None:
    """N of a size as the laws count it: from its shape, else from the loss table (None: neither knows it)."""
    if size in job.pricing.sizes:
        return price(job, size, 1.0)["N"]
    if loss is not None and (loss["size"] == size).any():
        return float(loss.loc[loss["size"] == size, "N"].iloc[0])
    return None


def targets_key(job: PlanJob) -> str:
    """The config key the plan's targets came from: plan.targets, else the held-out runs."""
    held_out = [(point.size, point.M) for point in job.candidates.held_out]
    return "held_out" if held_out and [(t["size"], t["M"]) for t in job.targets] == held_out else "plan.targets"


def target_runs(job: PlanJob, loss: pd.DataFrame | None) -> list[dict]:
    """The targets as {name, N, M}, with the size each was given as (None: given by N)."""
    if not job.targets:
        raise PlanError("the plan has no targets: set plan.targets (e.g. [{size: s6, M: 20}]) or held_out")
    found = []
    for index, target in enumerate(job.targets):
        N = target["N"] if target["N"] is not None else size_N(job, loss, target["size"])
        if N is None:
            where = " nor a size of the loss table's runs" if loss is not None else ""
            raise PlanError(f"{targets_key(job)}[{index}].size = {target['size']!r} is neither under `sizes`{where} "
                            f"(known: {', '.join(known_sizes(job, loss)) or 'none'}); name one of them, or give the "
                            "target by its N")
        found.append({"name": target["name"], "size": target["size"], "M": target["M"], "N": N})
    return found


def candidates_of(job: PlanJob, loss: pd.DataFrame | None, train_tokens: dict | None, targets: list[dict],
                  unit: str) -> pd.DataFrame:
    """The runs the plan chooses from, with their `cost` in `unit`: the candidate sizes (by default
    those smaller than the largest target) at the candidate multipliers, never a target or a
    held-out run."""
    table = grid_runs(job, train_tokens) if job.candidates.source == "grid" else study_runs(job, loss)
    if job.candidates.multipliers is not None:
        table = table[np.isin(np.round(table["M"], 9), np.round(job.candidates.multipliers, 9))]
    if job.candidates.sizes is None:
        table = table[table["N"] < max(t["N"] for t in targets) * (1 - 1e-9)]
    else:
        table = table[table["size"].isin(job.candidates.sizes)]
    kept = np.ones(len(table), bool)
    for target in targets:
        kept &= ~(np.isclose(table["N"], target["N"]) & np.isclose(table["M"], target["M"]))
    for point in job.candidates.held_out:
        kept &= ~((table["size"] == point.size) & np.isclose(table["M"], point.M))
    table = table[kept].assign(cost=table[unit][kept])
    if table["cost"].isna().any():
        raise PlanError(f"plan.budget in {unit} prices runs from the sizes' shapes, but the loss table's sizes "
                        f"{', '.join(sorted(set(table['size'][table['cost'].isna()])))} are not under `sizes`; "
                        "give the budget in flops")
    return table.sort_values(["N", "M"], kind="stable").reset_index(drop=True)


def budget_of(job: PlanJob, loss: pd.DataFrame | None) -> tuple[float, str]:
    """The budget and its unit: as given, else the compute of the study's loss fit set, each run
    as many times as the study trains it (its replicates)."""
    if job.budget.given is not None:
        (unit, amount), = job.budget.given.items()
        return float(amount), unit
    runs = study_runs(job, loss) if job.candidates.source == "testbed" else None
    total = 0.0
    for point in job.budget.fit_set:
        if runs is None:
            total += price(job, point.size, point.M)["flops"]
        else:
            found = runs.loc[(runs["size"] == point.size) & np.isclose(runs["M"], point.M), "flops"]
            if found.empty:
                raise PlanError(f"plan.budget = null prices the loss fit set, but its run {point.size} at M = "
                                f"{point.M:g} has no loss on {job.dataset}/{job.valset} in the loss table; give "
                                "plan.budget as {flops: ...}")
            total += float(found.iloc[0])
    return total * job.budget.fit_replicates, "flops"


def fit_needs(job: PlanJob, law: LossLaw, candidates: pd.DataFrame) -> design.FitNeeds:
    needs = job.fit_needs
    return design.FitNeeds(needs["runs"] or len(law.names) + 1, needs["sizes"],
                           needs["multipliers"], needs["per_size"] or len(candidates))


# ---- what the plan block asks that no plan can give (issue #33)


def _amount(value: float) -> str:
    """A budget as a config would write it: 1e6, 4.2e9, 2.5."""
    return f"{value:.4g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def check_stated(job: PlanJob) -> None:
    """What the plan block states that nothing else is needed to refuse: a noise or a budget that is
    no finite amount, two targets of one name."""
    noise = job.prior.default_noise_sd
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        raise PlanError(f"plan.default_noise_sd = {noise:g} is not a finite number above 0; give one run's loss sd "
                        "in log units (e.g. 0.01 for 1%)")
    if job.budget.given is not None:
        (unit, amount), = job.budget.given.items()
        if not (math.isfinite(amount) and amount > 0):
            raise PlanError(f"plan.budget = {{{unit}: {amount:g}}} is not a finite amount above 0; give what the plan "
                            f"may spend in {UNIT_WORDS[unit]}, or leave plan.budget out for the FLOPs of the study's "
                            "loss fit set")
    key, names = targets_key(job), {}
    for index, target in enumerate(job.targets):
        if target["name"] in names:
            raise PlanError(f"{key}[{index}].name = {target['name']!r} is taken by {key}[{names[target['name']]}]: "
                            "each target is a row of plan.csv; give it a name of its own")
        names[target["name"]] = index


def _named_run(name: str, sizes: list[str]) -> tuple[str, float] | None:
    """The run (size, M) that `name` names as plan.csv names a run (`size_M<M>`), if any."""
    for size in sizes:
        rest = name[len(size) + 2:] if name.startswith(f"{size}_M") else ""
        try:
            multiplier = float(rest)
        except ValueError:
            continue
        if multiplier > 0 and f"{multiplier:g}" == rest:
            return size, multiplier
    return None


def check_targets(job: PlanJob, loss: pd.DataFrame | None, targets: list[dict]) -> None:
    """No target is named like a run of the study (`size_M<M>`) that it is not: plan.csv names
    each chosen run so, and the two rows would share a name."""
    key, sizes = targets_key(job), known_sizes(job, loss)
    for index, target in enumerate(targets):
        named = _named_run(target["name"], sizes)
        if named is None:
            continue
        size, multiplier = named
        N = size_N(job, loss, size)
        if N is not None and np.isclose(target["N"], N) and np.isclose(target["M"], multiplier):
            continue  # the target is that run
        given = (f"{{size: {target['size']}, M: {target['M']:g}}}" if target["size"] is not None
                 else f"{{N: {_amount(target['N'])}, M: {target['M']:g}}}")
        raise PlanError(f"{key}[{index}].name = {target['name']!r} names the run {size} at M = {multiplier:g}, but the "
                        f"target is {given}; plan.csv names each run it chooses so: give the target a name of its "
                        "own, or leave the name out")


def _candidate_sizes(job: PlanJob, targets: list[dict]) -> list[str]:
    """The study's sizes the plan chooses among (a grid plan): those named, else those smaller
    than the largest target."""
    if job.candidates.sizes is not None:
        return [size for size in job.pricing.sizes if size in job.candidates.sizes]
    if not targets:
        return list(job.pricing.sizes)
    largest = max(t["N"] for t in targets)
    return [size for size in job.pricing.sizes if price(job, size, 1.0)["N"] < largest * (1 - 1e-9)]


def check_candidates(job: PlanJob, loss: pd.DataFrame | None, targets: list[dict]) -> None:
    """The candidate sizes and multipliers name runs the plan can choose: a size of the loss table
    (a plan among its runs), a multiplier of its runs, or one at which every candidate size
    trains at least one whole step (a plan over the grid: training rounds D to whole steps, at
    least one, so a smaller M would train more tokens than the plan priced)."""
    if job.candidates.source == "testbed":
        if loss is None:
            return
        rows = loss[(loss["dataset"] == job.dataset) & (loss["valset"] == job.valset)]
        where = f"the loss table's runs on {job.dataset}/{job.valset}"
        sizes = list(dict.fromkeys(rows["size"].astype(str)))
        for index, size in enumerate(job.candidates.sizes or []):
            if size not in sizes:
                raise PlanError(f"plan.candidates.sizes[{index}] = {size!r} is not a size of {where} (its sizes: "
                                f"{', '.join(sizes) or 'none'}); name one of them, or leave plan.candidates.sizes "
                                "out for every size smaller than the largest target")
        multipliers = np.unique(rows["M"].to_numpy(float))
        for index, multiplier in enumerate(job.candidates.multipliers or []):
            if not np.isclose(multipliers, multiplier, rtol=1e-9, atol=0).any():
                raise PlanError(f"plan.candidates.multipliers[{index}] = {multiplier:g} is not a multiplier of {where} "
                                f"(its multipliers: {', '.join(f'{m:g}' for m in multipliers) or 'none'}); name one "
                                "of them, or leave plan.candidates.multipliers out for every one")
        return
    sizes = _candidate_sizes(job, targets)
    for index, multiplier in enumerate(job.candidates.multipliers or []):
        for size in sizes:
            settings = job.pricing.sizes[size]
            step = int(settings["batch_size"]) * int(settings["context"])
            n = price(job, size, multiplier)["N"]
            if round(round(multiplier * n) / step) == 0:
                least = max(int(job.pricing.sizes[s]["batch_size"]) * int(job.pricing.sizes[s]["context"])
                            / price(job, s, multiplier)["N"] for s in sizes)
                raise PlanError(f"plan.candidates.multipliers[{index}] = {multiplier:g} is less than one training step "
                                f"of {size}: D = M x N = {round(multiplier * n):,} tokens, where a step is {step:,} "
                                f"(batch_size x context), and training would take a whole step (M = {step / n:.3g}); "
                                f"give multipliers of at least {least:.3g}, or drop it")


def budget_refusal(job: PlanJob, budget: float, least: float, runs: list[str], needs: design.FitNeeds,
                   unit: str) -> str:
    """A budget below the cheapest set of the candidates that meets what a fit needs, in one line."""
    if job.budget.given is not None:
        stated = f"plan.budget = {{{unit}: {_amount(budget)}}}"
    else:
        stated = (f"plan.budget = null (the loss fit set's {len(job.budget.fit_set)} runs x "
                  f"{job.budget.fit_replicates} seed(s), {_amount(budget)} FLOPs)")
    capped = job.fit_needs["per_size"] is not None
    return (f"{stated} is below the cheapest set that meets plan.fit_needs ({design.needs_text(needs, capped)}): "
            f"{', '.join(runs)} at {_amount(least)} {UNIT_WORDS[unit]}; raise the budget or lower plan.fit_needs")


def check_before_runs(job: PlanJob, loss: pd.DataFrame | None, form: str, affordable: bool = True) -> None:
    """Every refusal of the plan that can be made before any run is trained or any law fitted,
    from the job and, for a study that imports its testbed, its loss table (`loss`): what the
    block states, its targets, its candidates, and (`affordable`) too few candidates or a budget
    below the cheapest set of them that meets what a fit needs of a law of `form` (the prior's,
    else the study's fit). Where the candidates are not known yet (a plan among the runs of a
    loss table the study has still to collect) only what they do not decide. The train split's
    reach and where the prior law holds are known only to the job, and can only take candidates
    away: a budget refused here is refused by the job too."""
    check_stated(job)
    targets = target_runs(job, loss) if job.targets else []
    check_targets(job, loss, targets)
    check_candidates(job, loss, targets)
    if not (affordable and targets) or (job.candidates.source == "testbed" and loss is None):
        return  # no targets: the plan is not set up, and the job says so
    budget, unit = budget_of(job, loss)
    candidates = candidates_of(job, loss, None, targets, unit)
    needs = fit_needs(job, LossLaw.given(form, {}), candidates)
    least, cheapest = design.cheapest_without_law(candidates, needs, float(job.solver["seconds"]))
    if budget < least * (1 - 1e-9):
        raise PlanError(budget_refusal(job, budget, least, design.run_names(candidates[cheapest]), needs, unit))
