"""Shared fixtures: where the repository and the published testbeds are."""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads (here, in xdist's workers and in the workflows
# the tests start): the tests run two workers on two cores, and scipy's fits (L-BFGS-B on small
# matrices) then spend most of their time in OpenBLAS threads waiting on each other (measured: the
# model-error fits of one backtest pool took 2.3 s of CPU with the default threads, 0.05 s with one).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from lmscale.config import training_runs  # noqa: E402
from lmscale.data import documents  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTBEDS = Path(os.environ.get("LMSCALE_TESTBEDS", REPO.parent / "shared" / "testbeds"))


# Two pytest-xdist workers (pyproject's addopts) take whole test files (`--dist loadgroup`), so that a
# module's fixture (a study run once for its tests) is built once; files that share a session
# fixture go together.
SHARED_SESSION_FIXTURE = {"test_eval_loss": "smoke_study", "test_smoke_study": "smoke_study",
                          "test_corpus": "stdlib_corpus", "test_tokenizer": "stdlib_corpus",
                          "test_tokens": "stdlib_corpus",
                          "test_eval_tasks": "tiny_checkpoint", "test_lm_eval_model": "tiny_checkpoint",
                          "test_backtest": "lab", "test_predict": "lab", "test_figures": "lab"}


# The groups that take longest, longest first, as measured from a fresh clone on 2 cores (seconds of
# one worker, both busy): the smoke study's group ~300 (its study, a replicate study, a resume after
# SIGKILL), the one-node SLURM cluster ~110-150 (mostly waiting on its scheduler), then 50-100 each.
LONGEST_GROUPS = ("smoke_study", "test_slurm", "test_loop", "test_prefetch", "test_distributed", "test_gadre2024",
                  "test_shards", "test_tables", "tiny_checkpoint", "test_wsd", "test_per_task", "test_planning",
                  "test_uncertainty")


def group_of(item) -> str:
    return SHARED_SESSION_FIXTURE.get(item.path.stem, item.path.stem)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))
    # xdist hands the groups out in collection order (`--no-loadscope-reorder` in pyproject's addopts:
    # by default it orders them by their number of tests, which put the SLURM test, three tests and
    # ~100 s of waiting, last), each to the first worker free: the longest groups go first, longest
    # first, then the others with slow tests, so that the quick ones fill the gaps at the end instead
    # of one worker running a long group alone while the other idles (a stable sort: the same order
    # on every worker, as xdist requires). The suite keeps both cores busy (94% of 685 s measured),
    # so the order can only shorten that tail.
    slow_groups = {group_of(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (LONGEST_GROUPS.index(group_of(item)) if group_of(item) in LONGEST_GROUPS
                                 else len(LONGEST_GROUPS) + (group_of(item) not in slow_groups)))


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


# Five runs of the gadre2024 release, by their file names.
RELEASE_RUNS = ["rpj-d=96_l=8_h=4-1.0", "rpj-d=512_l=8_h=4-1.0", "rpj-d=576_l=24_h=8-1.0", "rpj-d=1024_l=24_h=8-1.0",
                "rpj-d=96_l=8_h=4-16.0"]


@pytest.fixture
def small_release(gadre2024, tmp_path) -> Path:
    """Five runs of the release in a scratch folder, to be damaged by the tests."""
    for folder in ("models", "evals"):
        (tmp_path / folder).mkdir()
    for run in RELEASE_RUNS:
        shutil.copy(gadre2024 / "models" / f"{run}.json", tmp_path / "models")
        shutil.copy(gadre2024 / "evals" / f"evaluation_{run}_heavy.json", tmp_path / "evals")
    shutil.copy(gadre2024 / "eval_metadata.csv", tmp_path)
    return tmp_path


SMALL_STDLIB = {"source": "stdlib", "max_bytes": 400_000}


@pytest.fixture(scope="session")
def stdlib_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A 400 kB corpus of the standard library split 90/10 (lmscale.data.documents), and its manifest, once per session."""
    out = tmp_path_factory.mktemp("corpus") / "stdlib"
    return out, documents.write_corpus(SMALL_STDLIB, out, validation_fraction=0.1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> dict:
    """A randomly initialised tiny Qwen3 saved with its BPE, and the offline suite generated with that
    tokenizer from held-out standard-library modules, once per session: {"root", "model", "suite"}."""
    # Imported when asked for: test_eval_tasks switches the Hub off for the process it is imported in.
    from tests.test_eval_tasks import build_study

    return build_study(tmp_path_factory.mktemp("study"))


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


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> dict:
    """The lab testbed through the analysis stages, in-process (test_backtest.lab_study), once per session."""
    from tests.test_backtest import lab_study

    return lab_study(tmp_path_factory.mktemp("lab"))
