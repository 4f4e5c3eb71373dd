"""Shared fixtures: where the repository and the published testbeds are."""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads (here, in xdist's workers and in the workflows
# the tests start): the tests run two workers on two cores, and scipy's fits (L-BFGS-B on small
# matrices) then spend most of their time in OpenBLAS threads waiting on each other (measured: the
# model-error fits of one backtest pool took 2.3 s of CPU with the default threads, 0.05 s with one).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from lmscale.config import training_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTBEDS = Path(os.environ.get("LMSCALE_TESTBEDS", REPO.parent / "shared" / "testbeds"))


# Two pytest-xdist workers (pyproject's addopts) take whole test files (`--dist loadgroup`), so that a
# module's fixture (a study run once for its tests) is built once; files that share a session
# fixture go together.
SHARED_SESSION_FIXTURE = {"test_eval_loss": "smoke_study", "test_smoke_study": "smoke_study"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SHARED_SESSION_FIXTURE.get(item.path.stem, item.path.stem)))


def shared_testbed(name: str) -> Path:
    path = SHARED_TESTBEDS / name
    if not path.is_dir():
        pytest.skip(f"the published testbed {name} is not at {path} (set LMSCALE_TESTBEDS to its parent folder)")
    return path


@pytest.fixture
def gadre2024() -> Path:
    return shared_testbed("gadre2024")


@pytest.fixture
def chinchilla_epoch2024() -> Path:
    return shared_testbed("chinchilla_epoch2024")


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> dict:
    """The smoke study (configs/smoke.yaml) run whole by `snakemake --cores 2` from nothing, once per session."""
    from tests.workflow import snakemake, validated_config

    workdir = tmp_path_factory.mktemp("smoke")
    configfile = REPO / "configs" / "smoke.yaml"
    config = yaml.safe_load(configfile.read_text())
    started = time.monotonic()
    snakemake(workdir, "--configfile", str(configfile))
    return {"workdir": workdir, "configfile": configfile, "config": config,
            "results": workdir / "results" / config["study"], "runs": training_runs(validated_config(config)),
            "seconds": time.monotonic() - started}
