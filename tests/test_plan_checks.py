"""Bad configuration fails when the workflow is planned (`snakemake -n`), in a few lines naming the
key, the value and the fix; no config value reaches a shell as code."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.test_tables import lab_tables
from tests.workflow import REPO, snakemake

SMOKE = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


def changed(**changes) -> dict:
    config = copy.deepcopy(SMOKE)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        section = config
        for parent in parents:
            section = section.setdefault(parent, {})
        section[key] = value
    return config


def plan(tmp_path, config: dict, *args: str):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return snakemake(tmp_path / "work", "--configfile", str(configfile), *args, check=False, timeout=120)


SHAPE = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 48, "context": 64, "tie_embeddings": True}

# Each error of issue #17 that gave no fix: the config, then what the message must name (the key,
# the value, the fix).
CONFIG_ERRORS = {
    "misspelt top-level key": (
        changed(treshold=5), ["config key `treshold` is not a known key; did you mean `threshold`?"]),
    "value out of range": (
        changed(threshold=500), ["config key `threshold` = 500 is greater than the maximum of 100"]),
    "study named ..": (changed(study=".."), ["config key `study` = \"..\" does not match"]),
    "dataset named `my data`": (
        changed(datasets={"my data": SMOKE["datasets"]["stdlib"]}),
        ["config key `datasets`: the name \"my data\" does not match", "letters, digits and _ . = + - only"]),
}


@pytest.mark.parametrize("probe", CONFIG_ERRORS)
def test_a_config_error_fails_the_dry_run_naming_key_value_and_fix(tmp_path, probe):
    config, expected = CONFIG_ERRORS[probe]
    result = plan(tmp_path, config, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for part in expected:
        assert part in output, output[-3000:]
    assert len(output.splitlines()) < 15, output  # a few lines, not a schema dump or a traceback
    assert "Traceback" not in output
    assert not (tmp_path / "work" / "results").exists()


def tables_study(tmp_path, **changes) -> dict:
    testbed = tmp_path / "testbed"
    testbed.mkdir(exist_ok=True)
    loss, tasks = lab_tables()
    loss.to_csv(testbed / "loss.csv", index=False)
    tasks.to_csv(testbed / "tasks.csv", index=False)
    config = {"study": "lab", "testbed_format": "tables", "testbed_path": str(testbed), "datasets": {"web": {}},
              "valsets": ["val"], "threshold": 5, "reference_size": "s2",
              "loss_fit_set": [{"size": s, "M": 20} for s in ("s1", "s2", "s3", "s4")] + [{"size": "s1", "M": 80}],
              "fit": {"bootstrap": 0}}
    return {**config, **changes}


@pytest.mark.parametrize("key", ["valsets", "datasets"])
def test_a_hostile_name_never_runs(tmp_path, key):
    """`valsets: ['val$(touch X)']` once created X in a real run (the import's command line); the
    schema now refuses the name before any job, and the run leaves no file behind."""
    marker = tmp_path / "work" / "PWNED"  # jobs run in the working directory
    hostile = "val$(touch PWNED)"
    config = tables_study(tmp_path, **({"valsets": [hostile]} if key == "valsets" else {"datasets": {hostile: {}}}))
    result = plan(tmp_path, config)
    output = result.stdout + result.stderr
    assert not marker.exists()
    assert not (tmp_path / "work" / "results").exists()
    assert result.returncode != 0
    assert f"config key `{key}" in output and "does not match" in output


@pytest.mark.parametrize("change,key", [
    ({"sizes__s1;touch PWNED": SHAPE}, "sizes"),
    ({"train__device": "cpu; touch PWNED"}, "train.device"),
    ({"tasks__device": "cpu; touch PWNED"}, "tasks.device"),
])
def test_a_hostile_size_or_device_fails_the_dry_run(tmp_path, change, key):
    """`snakemake -n -p` used to print `--size s1;touch PWNED` and `--device cpu; touch PWNED` in the
    train and eval-tasks commands."""
    result = plan(tmp_path, changed(**change), "--dry-run", "--printshellcmds")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key `{key}" in output and "touch PWNED" in output
    assert "Shell command" not in output
