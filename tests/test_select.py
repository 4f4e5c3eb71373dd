"""Task selection (lmscale.analysis.selection): a task is kept when some model of the reference size lifts it at
least t points above its random baseline."""

from __future__ import annotations

import pandas as pd
import pytest

from lmscale.analysis import selection
from lmscale.io import importers


def test_a_margin_of_exactly_t_is_kept():
    """0.35 - 0.25 is 0.0999... in floats: a task lifted exactly 10 points is kept at t = 10."""
    tasks = pd.DataFrame({"model": ["s1_M20", "s1_M20", "s2_M20"], "size": ["s1", "s1", "s2"],
                          "task": ["lifted", "at_chance", "at_chance"], "acc": [0.35, 0.25, 0.9],
                          "random_baseline": [0.25, 0.25, 0.25]})
    chosen = selection.select_tasks(tasks, "s1", 10)
    assert chosen["tasks"] == ["lifted"] and chosen["reference_models"] == 1
    assert chosen["margins"] == {"at_chance": 0.0, "lifted": 10.0}
    with pytest.raises(ValueError, match=r"no task reaches 10.5 points above chance at size 's1' \(best margin 10"):
        selection.select_tasks(tasks, "s1", 10.5)


@pytest.mark.testbed
def test_selection_margin_and_unknown_reference_size(small_release):
    _, tasks = importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])
    margins = selection.task_margins(tasks, "d=576_l=24_h=8")
    ref = tasks[(tasks["size"] == "d=576_l=24_h=8") & (tasks["task"] == "piqa")].iloc[0]
    assert margins["piqa"] == pytest.approx(100 * (ref["acc"] - ref["random_baseline"]))
    kept = selection.select_tasks(tasks, "d=576_l=24_h=8", 10)["tasks"]
    assert all(margins[t] >= 10 for t in kept) and all(margins[t] < 10 for t in set(margins.index) - set(kept))
    with pytest.raises(ValueError, match=r"reference size '0.154B'"):
        selection.select_tasks(tasks, "0.154B", 10)
