"""Importing published results: the paper's release and tidy tables, and clear errors on bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lmscale import checks
from lmscale.analysis import fits
from lmscale.config import ConfigError
from lmscale.io import importers
from lmscale.jobs import ImportTestbedJob
from tests.conftest import RELEASE_RUNS
from tests.test_fit_loss import loss_fit
from tests.test_tables import run_import
from tests.workflow import validated_config

pytestmark = pytest.mark.testbed


def test_valset_names_follow_the_release():
    assert importers.valset_name("training/eval_data/c4_val/shard-{0000000..0000010}.tar") == "c4_val"
    assert importers.valset_name("x/val_tok_mult/paloma_ptb/00000001.tar") == "paloma_ptb"
    assert importers.valset_name("x/val_tok_mult/de-en/val_de-en_100.tar") == "val_de-en_100"


def test_release_imports_as_tidy_tables(small_release):
    loss, tasks = importers.import_gadre2024(small_release, ["rpj"], ["c4_val"], {"d=96_l=8_h=4": "0.011B"})
    assert loss["model"].nunique() == 5
    assert loss["valset"].nunique() == 8
    assert len(tasks) == 5 * 46
    tiny = loss[(loss["size"] == "0.011B") & (loss["valset"] == "c4_val")].set_index("M")
    assert tiny.loc[320.0, "D"] / tiny.loc[320.0, "N"] == pytest.approx(320, rel=1e-3)
    assert tiny.loc[320.0, "C"] == pytest.approx(6 * tiny.loc[320.0, "N"] * tiny.loc[320.0, "D"])
    assert (tasks["random_baseline"].between(0, 1)).all()


def test_missing_eval_file_is_named(small_release):
    (small_release / "evals" / f"evaluation_{RELEASE_RUNS[0]}_heavy.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"evaluation_{RELEASE_RUNS[0]}_heavy.json"):
        importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])


def test_model_without_the_chosen_valset_is_named(small_release):
    with pytest.raises(ValueError, match=r"has no loss for validation set 'paloma_wikitext'"):
        importers.import_gadre2024(small_release, ["rpj"], ["paloma_wikitext"])


def test_task_missing_from_metadata_is_named(small_release):
    metadata = pd.read_csv(small_release / "eval_metadata.csv")
    metadata[metadata["Eval Task"] != "copa"].to_csv(small_release / "eval_metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"task 'copa' is missing from .*eval_metadata.csv"):
        importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])


def test_renamed_metadata_column_is_named(small_release):
    metadata = pd.read_csv(small_release / "eval_metadata.csv")
    metadata.rename(columns={"Random baseline": "Baseline"}).to_csv(small_release / "eval_metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"eval_metadata.csv: missing column\(s\) Random baseline"):
        importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])


def test_missing_field_is_named(small_release):
    path = small_release / "models" / f"{RELEASE_RUNS[1]}.json"
    record = json.loads(path.read_text())
    del record["hyperparameters"]["tokens"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"missing field 'hyperparameters.tokens'"):
        importers.import_gadre2024(small_release, ["rpj"], ["c4_val"])


def test_tidy_tables_from_elsewhere_give_the_same_law(small_release, tmp_path):
    labels = {"d=96_l=8_h=4": "s", "d=512_l=8_h=4": "m", "d=576_l=24_h=8": "l", "d=1024_l=24_h=8": "xl"}
    loss, tasks = importers.import_gadre2024(small_release, ["rpj"], ["c4_val"], labels)
    lab = tmp_path / "lab"
    lab.mkdir()
    # A lab's own table: only the required columns, M and C left to be derived.
    loss[["model", "dataset", "size", "N", "D", "valset", "loss"]].to_csv(lab / "loss.csv", index=False)
    reloaded, no_tasks = importers.import_tables(lab, ["rpj"], ["c4_val"])
    assert no_tasks is None
    job = loss_fit([("s", 20), ("m", 20), ("l", 20), ("xl", 20), ("s", 320)])
    direct = fits.fit_loss(loss, job)
    via_tables = fits.fit_loss(reloaded, job)
    for name in ("E", "a", "b", "eta"):
        assert via_tables[name] == pytest.approx(direct[name], rel=1e-9)
    tasks[["model", "dataset", "task", "acc", "random_baseline"]].to_csv(lab / "tasks.csv", index=False)
    _, reloaded_tasks = importers.import_tables(lab, ["rpj"], ["c4_val"])
    assert len(reloaded_tasks) == len(tasks) and reloaded_tasks["N"].notna().all()


def damaged(release, file: str, change) -> None:
    """`change` applied to the JSON record of one file of the release."""
    path = release / file
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def import_release(tmp_path, release) -> tuple[int, list[str]]:
    """`lmscale import-testbed` on the release in-process: its exit status and what it logged as errors;
    a refused release leaves no table behind."""
    status, errors, out = run_import(tmp_path, ImportTestbedJob("gadre2024", str(release), ["rpj"], ["c4_val"], {}))
    assert status == 0 or not out.exists()
    return status, errors


def set_metadata_cell(release, row: int, column: str, value) -> None:
    metadata = pd.read_csv(release / "eval_metadata.csv")
    metadata[column] = metadata[column].astype(object)
    metadata.loc[row, column] = value
    metadata.to_csv(release / "eval_metadata.csv", index=False)


def without_val_data(record):
    del record["results"][2]["val_data"]


def overflowing(record):
    record["hyperparameters"]["params"] = record["hyperparameters"]["tokens"] = 1e300


# Damage to the release (issue #23): the file, the key or line, and the problem the one line must name.
RELEASE_DAMAGE = {
    "a result without val_data": (lambda r: damaged(r, f"models/{RELEASE_RUNS[1]}.json", without_val_data),
                                  f"models/{RELEASE_RUNS[1]}.json: missing field 'results[2].val_data'"),
    "a baseline of twenty-five": (lambda r: set_metadata_cell(r, 3, "Random baseline", "twenty-five"),
                                  "eval_metadata.csv: line 5 (Eval Task 'triviaqa_sm_sub'), column 'Random baseline':"
                                  " 'twenty-five' is not a number"),
    "N = D = 1e300": (lambda r: damaged(r, f"models/{RELEASE_RUNS[1]}.json", overflowing),
                      f"models/{RELEASE_RUNS[1]}.json: 6 N D = inf is not a finite number "
                      "(hyperparameters.params = 1e+300"),
    "an accuracy in words": (
        lambda r: damaged(r, f"evals/evaluation_{RELEASE_RUNS[1]}_heavy.json",
                          lambda record: record["eval_metrics"]["icl"].update(copa="high")),
        f"evaluation_{RELEASE_RUNS[1]}_heavy.json: field 'eval_metrics.icl.copa' = 'high' is not a number"),
    "a task listed twice": (lambda r: set_metadata_cell(r, 4, "Eval Task", "mmlu_zeroshot"),
                            "eval_metadata.csv: line 6, column 'Eval Task': 'mmlu_zeroshot' repeats line 2"),
    "a model file that is not JSON": (lambda r: (r / "models" / f"{RELEASE_RUNS[2]}.json").write_bytes(b"\xff\xfe"),
                                      f"models/{RELEASE_RUNS[2]}.json: not valid JSON"),
}


@pytest.mark.parametrize("probe", RELEASE_DAMAGE)
def test_damage_to_the_release_is_named_in_one_line(small_release, tmp_path, probe):
    damage, message = RELEASE_DAMAGE[probe]
    damage(small_release)
    status, errors = import_release(tmp_path, small_release)
    assert status == 1 and len(errors) == 1 and "\n" not in errors[0]
    assert message in errors[0], errors[0]


def test_the_import_reads_the_files_it_declares(small_release):
    """The import rule's inputs are the release's files (an edited one reruns the import), and a
    `tables` folder's two tables."""
    job = ImportTestbedJob("gadre2024", str(small_release), ["rpj"], ["c4_val"], {})
    files = importers.testbed_files(job)
    assert files[0] == str(small_release / "eval_metadata.csv") and len(files) == 1 + 2 * len(RELEASE_RUNS)
    assert str(small_release / "evals" / f"evaluation_{RELEASE_RUNS[0]}_heavy.json") in files
    (small_release / "loss.csv").write_text("model\n")
    assert importers.testbed_files(ImportTestbedJob("tables", str(small_release), [], [], {})) == \
        [str(small_release / "loss.csv")]


def test_a_release_study_is_checked_when_planned(small_release):
    labels = {"d=96_l=8_h=4": "0.011B", "d=512_l=8_h=4": "0.079B", "d=576_l=24_h=8": "0.154B",
              "d=1024_l=24_h=8": "0.411B"}
    config = validated_config({"testbed_format": "gadre2024", "testbed_path": str(small_release), "datasets": {"rpj": {}},
                               "valsets": ["c4_val"], "size_labels": labels, "reference_size": "0.154B",
                               "loss_fit_set": [{"size": size, "M": 20} for size in labels.values()]})
    checks.check_imported_study(config)
    with pytest.raises(ConfigError, match=r"^held_out\[0\] = \{size: 1.4B, M: 640\}: no such run in .*/models for "
                                          r"any dataset: no size '1.4B' \(its sizes: 0.011B, 0.079B, 0.154B, 0.411B\)"):
        checks.check_imported_study({**config, "held_out": [{"size": "1.4B", "M": 640}]})
    with pytest.raises(ConfigError, match=r"^reference_size = '0.154' is not a size of the task results"):
        checks.check_imported_study({**config, "reference_size": "0.154"})
