"""`lmscale <stage> ...`: one command per stage of the workflow.

Each command lives in a module of its name (`lmscale fit-loss` in
lmscale/analysis/fit_loss.py) with `add_arguments(parser)` and `main(args)`;
a command module is a leaf: it parses, calls the library below it and writes,
and no other module imports it. Only the chosen stage's module is imported, so the analysis commands start
without loading torch. A stage's command takes its job
description as JSON (`--job`, lmscale.jobs), what changes no result
(`--options`, `--threads`) and the paths it reads and writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import logging
import sys
import types
import typing

# command -> (module, one-line help); the order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "prefetch": ("lmscale.evaluation.prefetch", "fetch what the offline jobs read from the Hugging Face Hub into its cache"),
    "corpus": ("lmscale.data.corpus", "write a dataset's train/validation splits as JSONL"),
    "corpus-shard": ("lmscale.data.corpus_shard", "write one shard of a dataset's train/validation splits as JSONL"),
    "join-shards": ("lmscale.data.join_shards", "join a sharded dataset's validation splits"),
    "tokenizer": ("lmscale.data.tokenizer", "train a byte-level BPE tokenizer or fetch a pretrained one"),
    "tokenize": ("lmscale.data.tokenize", "tokenize a split into a flat memmap token stream"),
    "index-tokens": ("lmscale.data.index_tokens", "index the token streams of a dataset's shards as one stream"),
    "train": ("lmscale.training.train", "train one model of the N x M grid (resumable)"),
    "trunk": ("lmscale.training.trunk", "train.schedule wsd: one size's stable phase to its largest M's branch point"),
    "branch": ("lmscale.training.branch", "train.schedule wsd: one model of the grid: its trunk's state, then its cooldown"),
    "eval-loss": ("lmscale.evaluation.eval_loss", "mean token loss of a model on a validation set"),
    "task-suite": ("lmscale.evaluation.task_suite", "generate the offline lm-eval task suite"),
    "eval-tasks": ("lmscale.evaluation.eval_tasks", "downstream accuracy of a model through lm-eval"),
    "collect": ("lmscale.analysis.collect", "assemble the testbed tables from a trained study's evals"),
    "import-testbed": ("lmscale.analysis.import_testbed", "import published results into the testbed tables"),
    "select-tasks": ("lmscale.analysis.select_tasks", "keep the tasks above chance by a threshold t"),
    "fit-loss": ("lmscale.analysis.fit_loss", "fit the loss law to a fit set"),
    "fit-error": ("lmscale.analysis.fit_error", "fit the error law to a fit set"),
    "backtest": ("lmscale.analysis.backtest", "refit the laws without their largest fit sizes and predict what they lack"),
    "predict": ("lmscale.analysis.predict", "chain the laws: predicted loss and error for every model and target"),
    "per-task": ("lmscale.analysis.per_task", "each task's error law chained from the loss law, with intervals and calibration"),
    "figure": ("lmscale.figures.figure", "draw one figure"),
    "plan": ("lmscale.planning.plan", "choose the runs a budget should buy to predict the targets most certainly"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, its error in one line (the usage is one `--help` away)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# A path of the wrong kind ends the command in one line naming it, as bad values do.
PATH_PROBLEMS = {
    IsADirectoryError: "a folder, where a file is expected",
    NotADirectoryError: "a path through a file, where a folder is expected",
    PermissionError: "permission denied",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run, args = parse(argv)
    try:
        result = run(args)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        # Bad input (or a Hub out of reach) ends in one readable line, not a traceback: the message names it.
        logging.getLogger("lmscale").error("%s", error)
        return 1
    except tuple(PATH_PROBLEMS) as error:
        logging.getLogger("lmscale").error("%s: %s", error.filename, PATH_PROBLEMS[type(error)])
        return 1
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        # A full disk: the file being written (lmscale.io.files names it), else the command's outputs.
        out = getattr(args, "out", None)
        where = error.filename or (" ".join(map(str, out)) if isinstance(out, list) else out)
        where = where or f"lmscale {args.command}"
        logging.getLogger("lmscale").error("%s: no space left on device; free space on that disk, then run the "
                                           "same command again", where)
        return 1
    return int(result or 0)


def parse(argv: list[str]):
    """The stage's function and its arguments, each job description checked against its fields'
    types; a bad argument exits (status 2) with one line."""
    if not argv or argv[0] not in COMMANDS:
        parser = _Parser(prog="lmscale", description=__doc__.splitlines()[0])
        commands = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
        for name, (_, help_text) in COMMANDS.items():
            commands.add_parser(name, help=help_text)
        parser.parse_args(argv)  # exits: with the help, or naming the stage it does not know
        raise SystemExit(2)
    command, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    add_arguments, run = module.add_arguments, module.main
    parser = _Parser(prog=f"lmscale {command}", description=help_text)
    add_arguments(parser)
    args = parser.parse_args(rest)
    for flag, value in vars(args).items():
        problem = dataclasses.is_dataclass(value) and type_problem(value, type(value), f"--{flag.replace('_', '-')}")
        if problem:
            parser.error(problem)
    args.command = command
    args.argv = argv  # the command as given, for a stage that runs itself again (under torchrun)
    return run, args


def type_problem(value, kind, where: str) -> str | None:
    """Why a job's value (a field of a `--job` or `--options` description) is not of its field's
    type, e.g. "--job field bootstrap = 'ten' is not a number"; None when it is.

    JSON gives no types to a description, so a string where a number belongs would otherwise
    reach the stage and end in a traceback. Lenient where JSON is: null fits any field (the
    descriptions read it as "not given"), a number fits an integer or text field."""
    if value is None or kind is typing.Any:
        return None
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        problems = [type_problem(value, option, where) for option in typing.get_args(kind)]
        return None if None in problems else problems[0]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        for field in dataclasses.fields(kind):
            field_where = f"{where} field {field.name}" if "field" not in where else f"{where}.{field.name}"
            if problem := type_problem(getattr(value, field.name), hints[field.name], field_where):
                return problem
        return None
    if typing.get_origin(kind) is list:
        if not isinstance(value, list):
            return f"{where} = {value!r} is not a list"
        item = typing.get_args(kind)[0]
        return next((p for i, v in enumerate(value) if (p := type_problem(v, item, f"{where}[{i}]"))), None)
    wanted = {int: ((int, float), "a number"), float: ((int, float), "a number"), str: ((str, int, float), "text"),
              bool: ((bool, int), "true or false"), dict: ((dict,), "an object")}
    accepted, name = wanted.get(typing.get_origin(kind) or kind, ((object,), ""))
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind in (int, float, str)):
        return f"{where} = {value!r} is not {name}"
    return None


if __name__ == "__main__":
    sys.exit(main())
