"""Start-up of `lmscale <stage>` commands: two checkouts side by side, interleaved.

    python benchmarks/startup.py --before /path/to/old/checkout --after . [--rounds 15] [--commands figure]

For each command (`lmscale eval-loss --help`, `lmscale train --help`, ...) it runs the command's
argument parsing under each checkout's `src/` (PYTHONPATH), alternating before and after in every
round, and prints the median and minimum wall time of each and their ratio, and how many modules
each run imports and whether torch, transformers or lm_eval are among them. `--help` stops after
the arguments are read: what is timed is what a stage imports before its work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ["eval-loss", "train", "fit-loss", "predict", "eval-tasks", "figure"]
HEAVY = ("torch", "transformers", "lm_eval")

# Parses `--help` as the command does and reports what was imported (the exit of argparse is caught).
PROBE = """
import json, sys
from lmscale import cli
try:
    cli.main([sys.argv[1], "--help"])
except SystemExit:
    pass
print(json.dumps({"modules": len(sys.modules), "heavy": sorted(m for m in sys.modules if m in %r)}))
""" % (HEAVY,)


def run(src: Path, command: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PROBE, command], capture_output=True, text=True, env=env,
                            check=True)
    seconds = time.perf_counter() - start
    return seconds, json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout (its src/ is imported)")
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--commands", nargs="+", default=COMMANDS, choices=COMMANDS, help="some of them only")
    args = parser.parse_args()
    print("| command | before: median (min) ms | after: median (min) ms | after/before | modules before -> after "
          "| heavy imports after |")
    print("|---|---|---|---|---|---|")
    for command in args.commands:
        times: dict[str, list[float]] = {"before": [], "after": []}
        seen = {}
        for _ in range(args.rounds):
            for label in ("before", "after"):
                seconds, imported = run(getattr(args, label) / "src", command)
                times[label].append(seconds * 1000)
                seen[label] = imported
        before, after = (statistics.median(times[label]) for label in ("before", "after"))
        print(f"| {command} | {before:.0f} ({min(times['before']):.0f}) | {after:.0f} ({min(times['after']):.0f}) "
              f"| {after / before:.2f} | {seen['before']['modules']} -> {seen['after']['modules']} "
              f"| {', '.join(seen['after']['heavy']) or 'none'} |")


if __name__ == "__main__":
    main()
