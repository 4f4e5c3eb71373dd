"""The tables and figures of docs/targets.md.

    python docs/targets.py --chinchilla ../shared/testbeds/chinchilla_epoch2024 \
        --study results/gadre2024 --study results/smoke --out docs/targets

Fits Chinchilla's points (Epoch AI's extraction, the five highest losses left out, Huber on log loss,
200 bootstrap refits: lmscale's own fit) and prints the compute-optimal run at Chinchilla's budget;
for every law of each study folder (a workflow's results/<study>), prints a budget, a loss, an error
and an inference-aware target resolved; draws the isoFLOP figure of Chinchilla's law and of the first
law of the first study.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.test_tables: the Chinchilla loss table

from lmscale.analysis.fits import fit_loss  # noqa: E402
from lmscale.figures import isoflop  # noqa: E402
from lmscale.io import tables  # noqa: E402
from lmscale.io.files import read_json  # noqa: E402
from lmscale.jobs import FitLossJob, Point  # noqa: E402
from lmscale.laws import forms, targets  # noqa: E402
from tests.test_tables import chinchilla_tables  # noqa: E402

CHINCHILLA_BUDGET = 5.76e23
HOFFMANN_ROUNDED = {"form": "chinchilla", "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}}


def cell(row, quantity: str, digits: str = ".3g") -> str:
    return f"{row[quantity]:{digits}} [{row[f'{quantity}_ci_lo']:{digits}}, {row[f'{quantity}_ci_hi']:{digits}}]"


def chinchilla(folder: Path, out: Path) -> None:
    chinchilla_tables(pd.read_csv(folder / "points.csv")).to_csv(out / "chinchilla_loss.csv", index=False)
    loss = tables.read_loss_table(out / "chinchilla_loss.csv")
    (out / "chinchilla_loss.csv").unlink()
    fit = loss.sort_values("loss").iloc[:-5]
    job = FitLossJob("chinchilla", "massivetext", [Point(s, float(m)) for s, m in zip(fit["size"], fit["M"])],
                     "chinchilla", "huber", 1e-3, 200, 0)
    law = fit_loss(loss, job)
    print("| law | N | D | tokens per parameter | loss |\n| --- | --- | --- | --- | --- |")
    row = targets.resolve_target({"name": "chinchilla", "C": CHINCHILLA_BUDGET}, law)
    print(f"| lmscale's Huber fit, 200 refits | {cell(row, 'N')} | {cell(row, 'D')} | {cell(row, 'M', '.1f')} | "
          f"{cell({**row, 'loss': row['loss_pred']}, 'loss', '.4f')} |")
    N, D = targets.compute_optimal_run(forms.chinchilla_parameters("chinchilla", HOFFMANN_ROUNDED["params"]),
                                       CHINCHILLA_BUDGET)
    print(f"| Hoffmann et al.'s rounded approach-3 parameters | {N:.3g} | {D:.3g} | {D / N:.1f} | "
          f"{targets.optimal_loss(HOFFMANN_ROUNDED, CHINCHILLA_BUDGET):.4f} |")
    figure = isoflop.isoflop_figure(loss, law, "chinchilla", "massivetext", [6e18, 1e20, 3e21, CHINCHILLA_BUDGET])
    figure.tight_layout()
    figure.savefig(out / "isoflop_chinchilla.png", dpi=90)


def study(folder: Path, asked: list[dict], out: Path, draw: bool) -> None:
    print(f"\n{folder}\n| dataset | target | N | D | M | C | loss | error | refits out of reach |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | ---: |")
    for loss_path in sorted(folder.glob("laws/*/*/loss_law.json")):
        loss_law = read_json(loss_path)
        errors = sorted(loss_path.parent.glob("error_law_t*.json"))
        error_law = read_json(errors[0]) if errors else None
        rows = []
        for target in asked:
            try:
                rows.append(targets.resolve_target(target, loss_law, error_law))
            except ValueError as error:  # a goal out of this law's reach: say so and go on
                print(f"| {loss_law['dataset']} | {target['name']} | {error} |")
        for row in rows:
            error = cell({**row, "err": row["err_pred"]}, "err") if error_law else "-"
            print(f"| {loss_law['dataset']} | {row['name']} | {cell(row, 'N')} | {cell(row, 'D')} | {cell(row, 'M')} | "
                  f"{cell(row, 'C')} | {cell({**row, 'loss': row['loss_pred']}, 'loss', '.3f')} | {error} | "
                  f"{row['samples_unreachable']} |")
        print("notes: " + " / ".join(f"{row['name']}: {row['note']}" for row in rows if row["note"]))
        if draw and rows:
            loss = tables.read_loss_table(folder / "testbed" / "loss.csv")
            runs = loss[(loss["dataset"] == loss_law["dataset"]) & (loss["valset"] == loss_law["valset"])]
            budgets = isoflop.default_budgets(runs["C"], 4) + [asked[0]["C"]]
            figure = isoflop.isoflop_figure(loss, loss_law, loss_law["dataset"], loss_law["valset"], budgets)
            figure.tight_layout()
            figure.savefig(out / f"isoflop_{folder.name}_{loss_law['dataset']}.png", dpi=90)
            draw = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chinchilla", type=Path, help="the chinchilla_epoch2024 testbed folder")
    parser.add_argument("--study", type=Path, action="append", default=[], help="a workflow's results/<study>")
    parser.add_argument("--budget", type=float, default=1e23)
    parser.add_argument("--loss", type=float, default=2.4)
    parser.add_argument("--err", type=float, default=0.45)
    parser.add_argument("--inference-tokens", type=float, default=2e12)
    parser.add_argument("--out", type=Path, default=Path("docs/targets"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.chinchilla:
        chinchilla(args.chinchilla, args.out)
    asked = [{"name": f"C = {args.budget:.2g}", "C": args.budget}, {"name": f"loss {args.loss:g}", "loss": args.loss},
             {"name": f"error {args.err:g}", "err": args.err},
             {"name": f"loss {args.loss:g}, {args.inference_tokens:.2g} tokens served", "loss": args.loss,
              "inference_tokens": args.inference_tokens}]
    for index, folder in enumerate(args.study):
        study(folder, asked, args.out, draw=index == 0)


if __name__ == "__main__":
    main()
