"""Writing results (lmscale.io.files): a write that fails leaves the old file or none, never half of one;
a JSON file that is not JSON is named; a command's folder is found from the files its rule names."""

from __future__ import annotations

import pytest

from lmscale.io.files import atomic_copy, atomic_write_json, atomic_writer, folder_of, read_json


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out" / "law.json"
    atomic_write_json(path, {"b": 1, "a": [2]})
    assert path.read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n' and read_json(path) == {"a": [2], "b": 1}
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_writer(path) as handle:
            handle.write('{"half": ')
            raise RuntimeError("killed mid-write")
    assert read_json(path) == {"a": [2], "b": 1}
    assert [file.name for file in path.parent.iterdir()] == ["law.json"]
    atomic_write_json(path, {"b": 1, "a": 2}, sort_keys=False)  # the payload's own order
    assert list(read_json(path)) == ["b", "a"]
    atomic_copy(path, tmp_path / "copy" / "law.json")
    assert (tmp_path / "copy" / "law.json").read_bytes() == path.read_bytes()


def test_a_file_that_is_not_json_is_named(tmp_path):
    for name, content in (("job.yaml", b"dataset: web\n"), ("bytes.json", b"\xff\xfe\x00")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{tmp_path / name}: not a JSON file"):
            read_json(tmp_path / name)


def test_the_folder_of_a_rules_files_and_a_wrong_file_named(tmp_path):
    split = [tmp_path / "data" / name for name in ("validation.jsonl", "train.jsonl")]
    assert folder_of(split, ["train.jsonl", "validation.jsonl"]) == tmp_path / "data"
    for given in ([split[0]], [split[0], tmp_path / "other" / "train.jsonl"], [tmp_path / "data"], []):
        with pytest.raises(ValueError, match="expected train.jsonl, validation.jsonl in one folder, got "):
            folder_of(given, ["train.jsonl", "validation.jsonl"])
