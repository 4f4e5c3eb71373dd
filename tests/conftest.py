"""Shared fixtures: where the repository and the published testbeds are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTBEDS = Path(os.environ.get("LMSCALE_TESTBEDS", REPO.parent / "shared" / "testbeds"))


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
