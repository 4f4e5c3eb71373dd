"""`lmscale train`, `lmscale trunk` and `lmscale branch`: their arguments are the files and folders their
rules name, every one required, and asking for help loads no heavy library. (They train for real in
test_loop.py, test_wsd.py and test_distributed.py.)"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from lmscale import cli
from lmscale.jobs import BranchJob, TrainJob, TrainOptions, TrunkJob, TrunkOptions
from lmscale.training import branch, train, trunk
from tests.workflow import validated_config

COMMANDS = {"train": train, "trunk": trunk, "branch": branch}
TINY = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 32, "context": 32, "batch_size": 8}
CONFIG = validated_config({"sizes": {"tiny": TINY}, "train": {"schedule": "wsd"}})


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"lmscale {command}")
    COMMANDS[command].add_arguments(parser)
    return parser.parse_args(argv)


def test_each_command_reads_its_job_kind_and_the_paths_its_rule_names():
    common = ["--tokens", "t/train.bin", "--threads", "2", "--gpus", "0"]
    run = ["--tokenizer", "tok/tokenizer.json", "--out", "m/run.json", "--checkpoint-dir", "ckpt"]
    train = parse("train", ["--job", TrainJob.from_config(CONFIG, "d", "tiny", 4).to_json(),
                            "--options", TrainOptions.from_config(CONFIG).to_json(), *common, *run])
    branch = parse("branch", ["--job", BranchJob.from_config(CONFIG, "d", "tiny", 4).to_json(),
                              "--options", TrainOptions.from_config(CONFIG).to_json(), *common, *run,
                              "--trunk-dir", "trunks/tiny"])
    trunk = parse("trunk", ["--job", TrunkJob.from_config(CONFIG, "d", "tiny", 4).to_json(),
                            "--options", TrunkOptions.from_config(CONFIG, [2, 4]).to_json(), *common,
                            "--trunk-dir", "trunks/tiny", "--out", "trunks/tiny_M4.json"])
    assert (type(train.job), type(branch.job), type(trunk.job)) == (TrainJob, BranchJob, TrunkJob)
    assert type(trunk.options) is TrunkOptions and trunk.options.multipliers == [2.0, 4.0]
    assert (train.tokenizer, train.out, train.checkpoint_dir, train.threads, train.gpus) == (
        "tok/tokenizer.json", "m/run.json", "ckpt", 2, 0)
    assert (branch.trunk_dir, trunk.trunk_dir, trunk.out) == ("trunks/tiny", "trunks/tiny", "trunks/tiny_M4.json")
    # cli.py finds each command in the module of its name.
    assert {name: cli.COMMANDS[name][0] for name in COMMANDS} == {
        name: f"lmscale.training.{name}" for name in COMMANDS}


@pytest.mark.parametrize("missing", ["--threads", "--gpus", "--out", "--checkpoint-dir"])
def test_every_argument_is_required(missing, capsys):
    argv = {"--job": TrainJob.from_config(CONFIG, "d", "tiny", 4).to_json(),
            "--options": TrainOptions.from_config(CONFIG).to_json(), "--tokens": "t.bin",
            "--tokenizer": "tokenizer.json", "--out": "run.json", "--checkpoint-dir": "ckpt", "--threads": "1",
            "--gpus": "0"}
    del argv[missing]
    with pytest.raises(SystemExit):
        parse("train", [word for pair in argv.items() for word in pair])
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def test_help_loads_neither_torch_nor_transformers_nor_lm_eval():
    code = ("import sys\nfrom lmscale import cli\nfor command in ('train', 'trunk', 'branch'):\n"
            "    try:\n        cli.main([command, '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert "usage: lmscale branch" in result.stdout and "--trunk-dir" in result.stdout
