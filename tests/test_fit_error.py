"""The error-law stage (lmscale.analysis.fits): Err(L) = eps - k exp(-gamma L) fitted to each fit run's loss
beside its average error, over the selected tasks or all of them."""

from __future__ import annotations

import numpy as np
import pytest

from lmscale.analysis import fits
from lmscale.jobs import FitErrorJob
from tests.test_tables import ERROR_LAW, TASKS, imported_lab_tables, study_config
from tests.workflow import validated_config


@pytest.fixture
def lab(tmp_path) -> tuple:
    """The lab testbed (tests/test_tables.py: each task's error a known offset from one error law of the
    loss) and its study's error job over every task, without a bootstrap."""
    loss, tasks = imported_lab_tables(tmp_path)
    config = validated_config({**study_config(tmp_path), "fit": {"bootstrap": 0}})
    return loss, tasks, FitErrorJob.from_config(config, "web", "val", "all")


def test_the_law_of_the_average_error_over_the_tasks_averaged(lab):
    loss, tasks, job = lab
    law = fits.fit_error(loss, tasks, job, None)
    # Averaged over every task, the tasks' offsets shift eps by their mean; task_a alone has none.
    assert law["params"] == pytest.approx({**ERROR_LAW, "eps": ERROR_LAW["eps"] + np.mean(list(TASKS.values()))},
                                          rel=1e-9)
    assert law["tasks"] == sorted(TASKS)
    assert [(run["size"], run["M"]) for run in law["fit_set"]] == [(p.size, p.M) for p in job.fit_set]
    selected = fits.fit_error(loss, tasks, job, ["task_a"])
    assert selected["params"] == pytest.approx(ERROR_LAW, rel=1e-9) and selected["tasks"] == ["task_a"]


def test_an_error_law_without_tasks_or_runs_enough_is_refused(lab):
    loss, tasks, job = lab
    with pytest.raises(ValueError, match="the tasks table is empty: the error law needs downstream results"):
        fits.fit_error(loss, tasks.iloc[:0], job, None)
    with pytest.raises(ValueError, match="the error fit set has 2 runs; the error law needs at least 3"):
        fits.fit_error(loss, tasks, FitErrorJob(**{**vars(job), "fit_set": job.fit_set[:2]}), None)
