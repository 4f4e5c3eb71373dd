"""The tables and the figure of docs/wsd.md: one study trained twice, under `train.schedule: cosine`
and under `train.schedule: wsd`, side by side.

    python docs/wsd.py --cosine results/mini --wsd results/mini_wsd --size s1 --out docs/wsd

Prints, as Markdown: each cell's held-out loss under both schedules; both laws fitted on each
study; the held-out predictions; the training FLOPs and seconds summed (a wsd branch's FLOPs
include its share of its trunk: its run.json's flops_spent; the seconds are every trunk's and
every branch's own); and, from lmscale.jobs.resources, the device hours of the paper's grid
(configs/paper.yaml) and of this study's grid under each schedule. Writes loss_vs_tokens_{size}.png:
the train loss of every run of `size` against its tokens under both schedules, and each run's
held-out loss at its D.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from lmscale.jobs import resources  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def runs(study: Path) -> pd.DataFrame:
    """Every run.json of a study: model, N, D, C, the FLOPs it spent (its trunk share included) and seconds."""
    rows = []
    for path in sorted(study.glob("models/*/*/run.json")):
        record = json.loads(path.read_text())
        rows.append({"model": record["model"], "size": record["size"], "M": record["M"], "N": record["N"],
                     "N_total": record["N_total"], "D": record["D"], "C": record["C"],
                     "flops": record.get("flops_spent", record["C"]),
                     "own_flops": 6 * record["N"] * record.get("tokens_trained", record["D"]),
                     "seconds": record["wall_seconds"], "compile_seconds": record.get("compile_seconds", 0.0),
                     "schedule": record.get("schedule", "cosine")})
    return pd.DataFrame(rows).set_index("model")


def trunks(study: Path) -> pd.DataFrame:
    """Every trunk record of a wsd study: the stable steps it trained and their seconds."""
    rows = []
    for path in sorted(study.glob("trunks/*/*.json")):
        record = json.loads(path.read_text())
        rows.append({"trunk": path.stem, "size": record["size"], "steps": record["steps"], "D": record["D"],
                     "flops": record["flops_trained"], "seconds": record["wall_seconds"],
                     "compile_seconds": record.get("compile_seconds", 0.0),
                     "resumed_from_step": record["resumed_from_step"]})
    return pd.DataFrame(rows)


def predictions(study: Path) -> pd.DataFrame:
    (path,) = sorted(study.glob("predictions/*/*_t*.csv"))
    return pd.read_csv(path).set_index("model")


def law(study: Path, name: str) -> dict:
    (path,) = sorted(study.glob(f"laws/*/*/{name}"))
    return json.loads(path.read_text())["params"]


def cell_table(cosine: pd.DataFrame, wsd: pd.DataFrame) -> str:
    both = cosine[["size", "M", "loss", "err"]].join(wsd[["loss", "err"]].add_suffix("_wsd"))
    both["difference"] = both["loss_wsd"] / both["loss"] - 1
    both = both.rename_axis("model").reset_index().sort_values(["size", "M", "model"]).set_index("model")
    lines = ["| run | loss, cosine | loss, wsd | wsd / cosine - 1 | average error, cosine | average error, wsd |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, row in both.iterrows():
        lines.append(f"| {model} | {row['loss']:.4f} | {row['loss_wsd']:.4f} | {row['difference']:+.2%} "
                     f"| {row['err']:.4f} | {row['err_wsd']:.4f} |")
    mean = both["difference"].mean()
    lines.append(f"| mean | | | {mean:+.2%} | | |")
    return "\n".join(lines)


def law_table(cosine: Path, wsd: Path) -> str:
    lines = ["| law | parameter | cosine | wsd |", "| --- | --- | ---: | ---: |"]
    for name, label in (("loss_law.json", "loss"), ("error_law_t*.json", "average error")):
        ours, theirs = law(cosine, name), law(wsd, name)
        for key in ours:
            lines.append(f"| {label} | {key} | {ours[key]:.4g} | {theirs[key]:.4g} |")
    return "\n".join(lines)


def heldout_table(cosine: pd.DataFrame, wsd: pd.DataFrame) -> str:
    lines = ["| held-out run | schedule | loss: truth / predicted | rel. error | average error: truth / predicted "
             "| rel. error | targets (loss <= 2%, error <= 5%) |",
             "| --- | --- | --- | ---: | --- | ---: | --- |"]
    for model in cosine.index[cosine["held_out"]]:
        for schedule, table in (("cosine", cosine), ("wsd", wsd)):
            row = table.loc[model]
            met = row["loss_rel_err"] <= 0.02 and row["err_rel_err"] <= 0.05
            lines.append(f"| {model} | {schedule} | {row['loss']:.4f} / {row['loss_pred']:.4f} | "
                         f"{row['loss_rel_err']:.2%} | {row['err']:.4f} / {row['err_pred']:.4f} | "
                         f"{row['err_rel_err']:.2%} | {'met' if met else 'missed'} |")
    return "\n".join(lines)


def cost_table(cosine_runs: pd.DataFrame, wsd_runs: pd.DataFrame, wsd_trunks: pd.DataFrame) -> str:
    cosine_flops, wsd_flops = cosine_runs["flops"].sum(), wsd_runs["flops"].sum()
    # Every trunk's stable steps once plus what every branch trained itself: what the shares add up to.
    counted_once = wsd_trunks["flops"].sum() + wsd_runs["own_flops"].sum()
    cosine_seconds = cosine_runs["seconds"].sum()
    wsd_seconds = wsd_trunks["seconds"].sum() + wsd_runs["seconds"].sum()
    lines = ["| | cosine | wsd | wsd / cosine |", "| --- | ---: | ---: | ---: |",
             f"| training FLOPs summed (6 N D; wsd: trunks once + cooldowns) | {cosine_flops:.4g} | {wsd_flops:.4g} "
             f"| {wsd_flops / cosine_flops:.3f} |",
             f"| training seconds summed (wsd: trunks + branches) | {cosine_seconds:,.0f} | {wsd_seconds:,.0f} "
             f"| {wsd_seconds / cosine_seconds:.3f} |",
             f"| of which compiling | {cosine_runs['compile_seconds'].sum():,.0f} | "
             f"{wsd_trunks['compile_seconds'].sum() + wsd_runs['compile_seconds'].sum():,.0f} | |",
             f"| the same, counted as trunks once + what each branch trained | | {counted_once:.4g} | |",
             f"| jobs | {len(cosine_runs)} runs | {len(wsd_trunks)} trunks + {len(wsd_runs)} branches | |"]
    return "\n".join(lines)


def hours(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def grid_costs(config_path: Path, schedule_note: str) -> str:
    from snakemake.utils import validate

    config = yaml.safe_load(config_path.read_text())
    config["train"] = {**config.get("train", {}), "schedule": "wsd"}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    costs = resources.schedule_costs(config)
    unit = "GPU hours" if any(c.gpus for c in costs) else "CPU core hours"
    lines = [f"| size | runs | trunks | cosine {unit} | wsd {unit} | FLOPs saved |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in costs:
        lines.append(f"| {c.size} | {c.runs} | {c.trunks} | {hours(c.cosine_hours)} | {hours(c.wsd_hours)} "
                     f"| {c.saved:.1%} |")
    lines.append(f"| all | {sum(c.runs for c in costs)} | {sum(c.trunks for c in costs)} "
                 f"| {hours(sum(c.cosine_hours for c in costs))} | {hours(sum(c.wsd_hours for c in costs))} "
                 f"| {1 - sum(c.wsd_flops for c in costs) / sum(c.cosine_flops for c in costs):.1%} |")
    return f"{schedule_note}\n\n" + "\n".join(lines) + "\n\n" + resources.schedule_summary(costs)


def train_log(path: Path) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line])


def smooth(values: pd.Series, window: int = 15) -> np.ndarray:
    return values.rolling(window, min_periods=1, center=True).mean().to_numpy()


def figure(cosine: Path, wsd: Path, size: str, cosine_cells: pd.DataFrame, wsd_cells: pd.DataFrame,
           out: Path) -> Path:
    """Train loss against tokens for every run of `size` (seed 0), cosine and wsd, and the held-out loss at D."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    models = sorted((m for m in cosine_cells.index if cosine_cells.loc[m, "size"] == size and "_seed" not in m),
                    key=lambda m: cosine_cells.loc[m, "M"])
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(models)))
    for axis, (label, study, cells) in zip(axes, (("cosine: every run from scratch", cosine, cosine_cells),
                                                  ("wsd: one trunk, a cooldown branch per M", wsd, wsd_cells))):
        if label.startswith("wsd"):
            trunk_logs = sorted((study / "trunks").glob(f"*/{size}/train_log.jsonl"))
            if trunk_logs:
                trunk = train_log(trunk_logs[0])
                axis.plot(trunk["tokens"], smooth(trunk["loss"]), color="0.55", lw=2.5, label="trunk (stable rate)")
        for model, color in zip(models, colors):
            run_log = train_log(next(study.glob(f"models/*/{model}/train_log.jsonl")))
            record = json.loads(next(study.glob(f"models/*/{model}/run.json")).read_text())
            if label.startswith("wsd"):
                run_log = run_log[run_log["step"] > record["branch_step"] - 20]  # the cooldown (and a little before)
            axis.plot(run_log["tokens"], smooth(run_log["loss"], 5 if label.startswith("wsd") else 15), color=color,
                      lw=1.2, label=f"M = {cells.loc[model, 'M']:g}")
            axis.plot([cells.loc[model, "D"]], [cells.loc[model, "loss"]], "o", color=color, mec="k", ms=6)
        axis.set_xscale("log")
        axis.set_xlabel("training tokens")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"train loss of {size} (smoothed); dots: held-out loss at D")
    axes[1].legend(fontsize=8)
    axes[0].set_ylim(top=min(5.5, axes[0].get_ylim()[1]))
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"loss_vs_tokens_{size}.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cosine", type=Path, required=True, help="results/<study> trained under cosine")
    parser.add_argument("--wsd", type=Path, required=True, help="results/<study> trained under wsd")
    parser.add_argument("--size", default="s1")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="the study's config (its grid)")
    parser.add_argument("--out", type=Path, default=Path("docs/wsd"))
    args = parser.parse_args()
    cosine_cells, wsd_cells = predictions(args.cosine), predictions(args.wsd)
    cosine_runs, wsd_runs, wsd_trunks = runs(args.cosine), runs(args.wsd), trunks(args.wsd)
    assert set(cosine_cells.index) == set(wsd_cells.index), "the two studies have different grids"
    print("## Each cell\n\n" + cell_table(cosine_cells, wsd_cells) + "\n")
    print("## The laws\n\n" + law_table(args.cosine, args.wsd) + "\n")
    print("## Held-out predictions\n\n" + heldout_table(cosine_cells, wsd_cells) + "\n")
    print("## Compute\n\n" + cost_table(cosine_runs, wsd_runs, wsd_trunks) + "\n")
    print("### Per size (measured FLOPs)\n")
    lines = ["| size | cosine FLOPs | wsd FLOPs | wsd / cosine | cosine s | wsd s (trunks + branches) | wsd / cosine |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size in sorted(cosine_runs["size"].unique()):
        c, w = cosine_runs[cosine_runs["size"] == size], wsd_runs[wsd_runs["size"] == size]
        t = wsd_trunks[wsd_trunks["size"] == size]
        ws = t["seconds"].sum() + w["seconds"].sum()
        lines.append(f"| {size} | {c['flops'].sum():.3g} | {w['flops'].sum():.3g} | {w['flops'].sum() / c['flops'].sum():.3f} "
                     f"| {c['seconds'].sum():,.0f} | {ws:,.0f} | {ws / c['seconds'].sum():.3f} |")
    print("\n".join(lines) + "\n")
    print("## Planned costs (lmscale.jobs.resources)\n")
    print(grid_costs(args.config, "This study's grid:") + "\n")
    print(grid_costs(REPO / "configs" / "paper.yaml", "The paper's grid (configs/paper.yaml):") + "\n")
    print(f"figure: {figure(args.cosine, args.wsd, args.size, cosine_cells, wsd_cells, args.out)}")


if __name__ == "__main__":
    main()
