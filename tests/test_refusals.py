"""Issue #33, every refusal one line with the key and the fix, where Snakemake itself reads what the
user gave: a nested `--config` value (typed as in a config file), a config file that is not YAML, the
recovery after a killed Snakemake (the recipe the README gives), the SLURM profile without its plugin.
Each runs the real `snakemake` command line; what Snakemake says before any code of the workflow
runs, and lmscale cannot change, is checked against what the docs quote of it."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from lmscale import config as study_config
from tests.workflow import REPO, offline_env, planned, snakemake, snakemake_command, validated_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SMOKE = REPO / "configs" / "smoke.yaml"
USAGE = (REPO / "docs" / "usage.md").read_text()
README = (REPO / "README.md").read_text()


def flat(text: str) -> str:
    """Prose with its line breaks as spaces, to find a sentence wherever the page wraps it."""
    return " ".join(text.split())


def as_snakemake_reads(base: dict, entries: list[str]) -> dict:
    """`base` with `--config entries` as Snakemake's own command line reads and merges them, then as
    the Snakefile types them."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    config = copy.deepcopy(base)
    update_config(config, parse_config(entries))
    study_config.typed_command_line(config, entries, SCHEMA)
    return config


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one line of a refusal the Snakefile raised: the line after Snakemake's `ConfigError in file`."""
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0, lines[-20:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    start = next(i for i, line in enumerate(lines) if line.startswith("ConfigError in file"))
    assert lines[start + 2].startswith("  File "), lines[start:]  # one line, then where it was raised
    return lines[start + 1]


# ---- nested --config values ----


def test_a_nested_config_value_is_typed_and_merged_as_a_config_file_would_be():
    smoke = yaml.safe_load(SMOKE.read_text())
    entries = ["fit={bootstrap: 50, method: huber, huber_delta: 1.0e-3}", "replicate_seeds=[1, 2]",
               "train={compile: on, lr: 0.02}", "threshold=15", "targets=[{name: big, N: 1.0e+6, M: 20}]"]
    config = as_snakemake_reads(smoke, entries)
    assert config["fit"] == {**smoke["fit"], "bootstrap": 50, "method": "huber", "huber_delta": 1e-3}
    assert config["replicate_seeds"] == [1, 2] and config["threshold"] == 15
    assert config["train"] == {**smoke["train"], "compile": True, "lr": 0.02}  # merged: its other keys kept
    assert config["targets"] == [{"name": "big", "N": 1e6, "M": 20}]
    validated_config(config)  # the schema takes them

    # A name stays a name (YAML would read `on` as true); a later entry for a key replaces an earlier one.
    assert as_snakemake_reads(smoke, ["study=on"])["study"] == "on"
    assert as_snakemake_reads(smoke, ["fit={bootstrap: 5}", "fit=7"])["fit"] == 7
    assert as_snakemake_reads(smoke, ["fit={bootstrap: 5}", "fit={seed: 3}"])["fit"] == {
        **smoke["fit"], "bootstrap": 5, "seed": 3}


def test_a_config_value_that_is_not_yaml_is_refused_in_one_line():
    with pytest.raises(study_config.ConfigError) as error:
        as_snakemake_reads({}, ["fit={bootstrap: 20"])
    assert str(error.value) == (
        "--config fit='{bootstrap: 20': line 1, column 15: not valid YAML: expected ',' or '}', but got "
        "'<stream end>' (while parsing a flow mapping); write it as in a config file, every brace closed, the "
        "whole KEY=VALUE quoted for the shell, e.g. --config 'fit={bootstrap: 20}'")


@pytest.mark.slow
def test_the_nested_config_values_of_the_docs_reach_the_jobs(tmp_path):
    """`snakemake -n --config 'fit={bootstrap: 20}'` used to be refused (`fit.bootstrap = "20" is not of
    type 'integer'`): the numbers of a nested value now reach the fit jobs. An unclosed brace ends in one line."""
    assert "`--config 'fit={bootstrap: 20}'` changes the bootstrap" in flat(USAGE)
    jobs = planned(tmp_path / "work", "--configfile", str(SMOKE), "--config", "fit={bootstrap: 7, seed: 3}",
                   "train={compile: on}")
    fits = [json.loads(re.search(r"--job '([^']*)'", job["shellcmd"]).group(1))
            for job in jobs if job["rule"] == "fit_loss"]
    assert fits and all(fit["bootstrap"] == 7 and fit["seed"] == 3 for fit in fits), fits
    result = snakemake(tmp_path / "bad", "--dry-run", "--configfile", str(SMOKE), "--config", "fit={bootstrap: 20",
                       check=False)
    assert refusal(result).startswith("--config fit='{bootstrap: 20': line 1, column 15: not valid YAML")


# ---- a config file that is not YAML ----


BROKEN = "study: mini\nfit: {bootstrap: 20\ntrain:\n  lr: 0.01\n"


def test_a_config_file_that_is_not_yaml_is_named_with_its_line_and_column(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BROKEN)
    with pytest.raises(study_config.ConfigError) as error:
        study_config.check_yaml_file(path)
    assert str(error.value) == (f"{path}, line 3, column 6: not valid YAML: expected ',' or '}}', but got ':' "
                                "(while parsing a flow mapping); mend the YAML there")


@pytest.mark.slow
def test_snakemake_on_a_config_file_that_is_not_yaml(tmp_path):
    """The workflow's own config.yaml: one line with the file, the line and the column. A --configfile:
    Snakemake reads it before the Snakefile runs and says what docs/usage.md quotes, naming neither
    (if this fails because Snakemake now names them, say so in docs/usage.md)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(BROKEN)
    line = refusal(snakemake(workdir, "--dry-run", check=False))
    assert line == ("config.yaml, line 3, column 6: not valid YAML: expected ',' or '}', but got ':' "
                    "(while parsing a flow mapping); mend the YAML there")

    result = snakemake(workdir, "--dry-run", "--configfile", str(workdir / "config.yaml"), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Config file is not valid JSON or YAML" in output, output[-2000:]
    assert "line 3" not in output and "config.yaml" not in output.replace("profiles/default", "")
    assert 'Snakemake stops with "Config file is not valid JSON or YAML"' in flat(USAGE)


# ---- after a crash: the recipe of the README ----


def recipe(text: str) -> list[str]:
    """The commands of the "After a crash" recipe in a page: each `snakemake ...` line of its code block."""
    return re.findall(r"^ +(snakemake --unlock|snakemake --cores 2 --rerun-incomplete) +#", text, flags=re.MULTILINE)


@pytest.mark.slow
def test_the_recovery_recipe_after_a_killed_snakemake(tmp_path):
    """Snakemake SIGKILLed while a job runs leaves its lock, and the job, which outlives it (as a SLURM
    job outlives the Snakemake that submitted it), writes outputs that stay marked incomplete: the
    same command is refused until `--rerun-incomplete`, which is refused until `--unlock`. The
    README's and docs/usage.md's recipe, run as they give it, redoes the job."""
    assert recipe(README) == recipe(USAGE) == ["snakemake --unlock", "snakemake --cores 2 --rerun-incomplete"]
    workdir = tmp_path / "work"
    config = yaml.safe_load(SMOKE.read_text())
    config["datasets"]["stdlib"]["max_bytes"] = 1_000_000
    configfile = tmp_path / "crash.yaml"
    configfile.write_text(yaml.safe_dump(config))
    corpus = workdir / "results" / config["study"] / "data" / "stdlib"
    target = str((corpus / "manifest.json").relative_to(workdir))

    process = subprocess.Popen(snakemake_command(workdir, target, "--configfile", str(configfile)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=offline_env())
    deadline = time.monotonic() + 300
    while not any((workdir / ".snakemake" / "incomplete").glob("*")):  # the job has started
        assert process.poll() is None, "snakemake ended before its job started"
        assert time.monotonic() < deadline, "no job started within 300 s"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # Snakemake alone: its job goes on
    process.wait()
    while not (corpus / "manifest.json").exists():
        assert time.monotonic() < deadline, "the corpus job left by Snakemake did not finish within 300 s"
        time.sleep(0.1)
    time.sleep(0.5)

    def again(*flags: str) -> subprocess.CompletedProcess:
        return snakemake(workdir, target, *flags, "--configfile", str(configfile), check=False, timeout=600)

    incomplete = again()
    assert incomplete.returncode != 0
    assert "IncompleteFilesException" in incomplete.stderr and "--rerun-incomplete" in incomplete.stderr
    locked = again("--rerun-incomplete")
    assert locked.returncode != 0
    assert "Directory cannot be locked" in locked.stderr and "--unlock" in locked.stderr

    written = (corpus / "manifest.json").stat().st_mtime_ns
    for command in recipe(README):  # `--cores 2` is in snakemake_command already
        flags = [flag for flag in command.split()[1:] if flag not in ("--cores", "2")]
        result = again(*flags)
        assert result.returncode == 0, result.stderr[-4000:]
    assert (corpus / "manifest.json").stat().st_mtime_ns > written  # the job ran again
    assert "Nothing to be done" in again().stderr


# ---- the SLURM profile without its executor plugin ----


def test_the_slurm_profile_without_its_plugin(tmp_path):
    """Snakemake parses `--profile profiles/slurm` (`executor: slurm`) with its command line, before the
    Snakefile runs, so no code of the workflow can shorten what it prints: its usage (~100 lines), then
    the line the docs quote. The docs give the install command first. The plugin is hidden from
    Snakemake's plugin registry (it looks for packages named snakemake_executor_plugin_*) by a plain
    module of the same name ahead on the path."""
    hide = tmp_path / "hide"
    hide.mkdir()
    for name in ("snakemake_executor_plugin_slurm", "snakemake_executor_plugin_slurm_jobstep"):
        (hide / f"{name}.py").write_text("")
    env = {**offline_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")]))}
    command = snakemake_command(tmp_path / "work", "--dry-run", "--profile", str(REPO / "profiles" / "slurm"),
                                "--configfile", str(SMOKE))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and lines[1].startswith("usage: "), lines[:3]
    assert len(lines) > 50  # the usage
    last = "error: argument --executor/-e: invalid choice: 'slurm' (choose from 'local', 'dryrun', 'touch')"
    assert lines[-1].endswith(f": {last}"), lines[-1]  # after the program's name
    assert last in flat((REPO / "profiles" / "README.md").read_text())
    cluster = flat(USAGE.split("## Run on a cluster\n", 1)[1])
    assert cluster.startswith('First install the SLURM executor plugin, `pip install -e ".[slurm]"` (or `pip install '
                              'snakemake-executor-plugin-slurm`)'), cluster[:200]
    assert "--executor/-e: invalid choice: 'slurm'" in cluster
    assert 'pip install -e ".[slurm]"   # or: pip install snakemake-executor-plugin-slurm' in README
