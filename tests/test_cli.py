"""`lmscale <stage>` given bad arguments ends in one line and a non-zero status, never a traceback:
a folder where a file belongs, a YAML file where JSON belongs, a job description of the wrong
types, an hf corpus with the Hub out of reach, a full disk. Every job the workflow plans still passes the same
checks."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from lmscale import cli
from lmscale.config import fit_points
from lmscale.jobs import FitLossJob
from tests.test_tables import lab_tables, study_config
from tests.workflow import REPO, offline_env, planned

FIT_SET = fit_points(study_config("unused")["loss_fit_set"])


def fit_loss_job(**fields) -> str:
    """A fit-loss job description as JSON, `fields` replaced (with values of any type)."""
    job = json.loads(FitLossJob("web", "val", FIT_SET, "gadre", "least_squares", 1e-3, 0, 0).to_json())
    return json.dumps({**job, **fields})


@pytest.fixture
def loss_table(tmp_path):
    path = tmp_path / "loss.csv"
    lab_tables()[0].to_csv(path, index=False)
    return path


def run(argv: list[str]) -> tuple[int, list[str]]:
    """`lmscale ...` in-process: its status and the errors it logged."""
    errors = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    try:
        return cli.main(argv), errors
    finally:
        logging.getLogger().removeHandler(handler)


def refused(argv: list[str], capsys) -> str:
    """The one line an argument the parser refuses ends with (status 2)."""
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_folder_given_for_a_file(tmp_path, loss_table):
    status, errors = run(["fit-loss", "--job", fit_loss_job(), "--loss-table", str(tmp_path),
                          "--out", str(tmp_path / "law.json")])
    assert status == 1 and errors == [f"{tmp_path}: a folder, where a file is expected"]
    assert not (tmp_path / "law.json").exists()


def test_an_output_where_nothing_may_be_written(tmp_path, loss_table):
    """A PermissionError (here /sys, which even root may not write) is named, not a traceback."""
    status, errors = run(["fit-loss", "--job", fit_loss_job(), "--loss-table", str(loss_table),
                          "--out", "/sys/law.json"])
    assert status == 1 and len(errors) == 1 and errors[0].endswith(": permission denied"), errors
    assert "/sys/" in errors[0]


def test_a_yaml_file_given_for_json(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"study": "lab"}))
    status, errors = run(["collect", "--runs", str(config), "--loss-out", str(tmp_path / "loss.csv"),
                          "--tasks-out", str(tmp_path / "tasks.csv")])
    assert status == 1 and len(errors) == 1 and errors[0].startswith(f"{config}: not a JSON file ("), errors
    assert not (tmp_path / "loss.csv").exists()


def test_bytes_given_for_a_table(tmp_path):
    table = tmp_path / "loss.csv"
    table.write_bytes(b"model,dataset\n\xff\xfe\n")
    status, errors = run(["fit-loss", "--job", fit_loss_job(), "--loss-table", str(table),
                          "--out", str(tmp_path / "law.json")])
    assert status == 1 and errors[0].startswith(f"{table}: line 2: byte 0xff"), errors


def test_a_yaml_file_given_as_the_job(tmp_path, loss_table, capsys):
    line = refused(["fit-loss", "--job", str(tmp_path / "job.yaml"), "--loss-table", str(loss_table),
                    "--out", str(tmp_path / "law.json")], capsys)
    assert line.startswith("lmscale fit-loss: error: argument --job: FitLossJob: not valid JSON"), line


@pytest.mark.parametrize("fields,problem", [
    ({"bootstrap": "ten"}, "--job field bootstrap = 'ten' is not a number"),
    ({"fit_set": [{"size": "s1", "M": "20"}]}, "--job field fit_set[0].M = '20' is not a number"),
    ({"dataset": ["web"]}, "--job field dataset = ['web'] is not text"),
    ({"seed": True}, "--job field seed = True is not a number"),
])
def test_a_job_of_the_wrong_types(tmp_path, loss_table, capsys, fields, problem):
    """A job whose JSON parses but whose values have the wrong types used to reach the stage and end
    in a TypeError traceback (bootstrap "ten": `'<=' not supported between 'str' and 'int'`)."""
    line = refused(["fit-loss", "--job", fit_loss_job(**fields), "--loss-table", str(loss_table),
                    "--out", str(tmp_path / "law.json")], capsys)
    assert line.startswith("lmscale fit-loss: error: ") and problem in line, line
    assert not (tmp_path / "law.json").exists()


def test_an_unknown_stage_or_flag(capsys):
    assert "invalid choice: 'fit-los'" in refused(["fit-los"], capsys)
    assert "the following arguments are required: --job" in refused(["fit-loss"], capsys)


def commands(*args: str) -> list[list[str]]:
    """The `lmscale` arguments of every job a dry run of the workflow plans."""
    found = []
    for job in planned(*args):
        words = shlex.split(job["shellcmd"] or "")
        if "lmscale" in words:
            start = words.index("lmscale") + 1
            found.append(words[start:words.index(">", start) if ">" in words[start:] else None])
    return found


def test_every_planned_command_passes_the_checks(tmp_path):
    """The type checks refuse nothing the workflow itself writes: every command of the smoke study,
    under both schedules, parses."""
    smoke = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    wsd = tmp_path / "wsd.yaml"
    wsd.write_text(yaml.safe_dump({**smoke, "train": {**smoke["train"], "schedule": "wsd"}}))
    stages = set()
    for configfile in (REPO / "configs" / "smoke.yaml", wsd):
        for argv in commands(tmp_path / configfile.stem, "--configfile", str(configfile)):
            run_stage, args = cli.parse(argv)
            stages.add(args.command)
    assert {"corpus", "tokenize", "train", "trunk", "branch", "eval-loss", "eval-tasks", "fit-loss",
            "predict", "figure"} <= stages, stages


def test_an_hf_corpus_without_the_hub(tmp_path):
    """An hf source with the Hub switched off (or out of reach) used to end in a 27-line traceback."""
    job = {"source": {"source": "hf", "name": "allenai/c4", "config": "en", "split": "train", "text_field": "text",
                      "max_documents": 10}, "splits": ["train", "validation"], "validation_fraction": 0.05}
    result = subprocess.run([sys.executable, "-m", "lmscale.cli", "corpus", "--job", json.dumps(job),
                             "--out", *(str(tmp_path / "data" / name) for name in ("train.jsonl", "validation.jsonl", "manifest.json"))], capture_output=True, text=True,
                            env=offline_env(), timeout=300)
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].split(" ERROR lmscale: ")[1].startswith(
        "hf source allenai/c4 (en, train): the Hugging Face Hub cannot be reached"), lines
    assert "run this job where there is a network" in lines[0]
    assert not list(tmp_path.glob("data/*")), "no split written"


# A full disk (ENOSPC): one line naming the file being written, from any command (they all write through
# lmscale.io.files). A corpus of the standard library: it writes 200 kB, more than a small disk holds.
CORPUS_JOB = {"source": {"max_bytes": 200_000, "source": "stdlib", "text_field": "text"}}


def test_a_full_disk_is_named_in_one_line(tmp_path):
    """/dev/full refuses every write with ENOSPC; the corpus's temporary file points there (the file beside
    the output a write goes to before its rename: lmscale.io.files)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    out = tmp_path / "corpus"
    out.mkdir()
    (out / f".validation.jsonl.tmp{os.getpid()}").symlink_to("/dev/full")
    job = json.dumps({**CORPUS_JOB, "splits": ["validation"], "validation_fraction": None})
    status, errors = run(["corpus", "--job", job, "--out", str(out / "validation.jsonl"), str(out / "manifest.json")])
    assert status == 1
    assert errors == [f"{out / 'validation.jsonl'}: no space left on device; free space on that disk, "
                      "then run the same command again"]
    assert sorted(os.listdir(out)) == [], "the temporary file is removed, nothing written"


@pytest.fixture
def small_disk(tmp_path):
    """A 64 kB file system (tmpfs) at tmp_path/disk, where this process may mount one (root, not in most
    containers)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_command_that_fills_its_disk_ends_in_one_line(small_disk):
    """`lmscale corpus` as a rule runs it, writing its splits to a disk they do not fit on."""
    job = json.dumps({**CORPUS_JOB, "splits": ["train", "validation"], "validation_fraction": 0.05})
    out = [str(small_disk / "stdlib" / name) for name in ("train.jsonl", "validation.jsonl", "manifest.json")]
    result = subprocess.run([sys.executable, "-m", "lmscale.cli", "corpus", "--job", job, "--out", *out],
                            capture_output=True, text=True, env=offline_env(), timeout=300)
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    # The splits are written together, to the one disk: the line names the one written last.
    assert lines[0].split(" ERROR lmscale: ")[1] == (f"{small_disk}/stdlib/validation.jsonl: no space left on device; "
                                                     f"free space on that disk, then run the same command again")
    assert os.listdir(small_disk / "stdlib") == []
