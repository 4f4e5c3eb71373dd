"""The corpus (lmscale.data.documents): deterministic splits by document id, its sources; and the corpus, tokenizer and
tokenize commands as the rules call them. The tokenizer and the token streams: test_tokenizer, test_tokens."""

from __future__ import annotations

import json

import pytest

from lmscale.data import documents, token_streams
from lmscale.data.vocabulary import end_of_text_id, train_bpe
from tests.conftest import SMALL_STDLIB


def local(*paths) -> dict:
    """A local source of files or globs, as the filled config holds it (with the schema's text_field)."""
    return {"source": "local", "paths": [str(path) for path in paths], "text_field": "text"}


def read_ids(path):
    return [json.loads(line)["id"] for line in open(path)]


def test_stdlib_corpus_is_deterministic_and_split_by_path(stdlib_corpus, tmp_path):
    out, manifest = stdlib_corpus
    again = documents.write_corpus(SMALL_STDLIB, tmp_path / "again", validation_fraction=0.1)
    assert again["sha256"] == manifest["sha256"]
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()

    train, validation = read_ids(out / "train.jsonl"), read_ids(out / "validation.jsonl")
    assert train == sorted(train) and validation == sorted(validation)
    assert not set(train) & set(validation)
    assert all(documents.split_of(i, 0.1) == "validation" for i in validation)
    assert manifest["documents"] == len(train) + len(validation)
    assert 0 < manifest["bytes"] <= SMALL_STDLIB["max_bytes"]
    assert manifest["splits"]["validation"]["documents"] == len(validation) > 0
    # The out-of-distribution prose and the test suites stay out of the training corpus.
    assert not any(i.startswith(("pydoc_data/", "test/")) for i in train + validation)


def test_split_depends_on_the_id_only():
    ids = [f"pkg/module_{i}.py" for i in range(4000)]
    held_out = [i for i in ids if documents.split_of(i, 0.05) == "validation"]
    assert 0.03 < len(held_out) / len(ids) < 0.07
    assert held_out == [i for i in ids if documents.split_of(i, 0.05) == "validation"]


def test_pydoc_topics_is_english_prose(tmp_path):
    manifest = documents.write_corpus({"source": "pydoc_topics"}, tmp_path, splits=("validation",))
    assert manifest["documents"] > 50
    texts = list(documents.read_texts(tmp_path / "validation.jsonl"))
    assert any("statement" in t for t in texts)
    assert not (tmp_path / "train.jsonl").exists()


def test_local_sources_text_jsonl_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.txt").write_text("plain text document\n")
    with open(tmp_path / "b.jsonl", "w") as handle:
        for i in range(3):
            handle.write(json.dumps({"content": f"record {i}"}) + "\n")
    pq.write_table(pa.table({"content": ["row zero", "row one"]}), tmp_path / "c.parquet")

    docs = list(documents.documents(local(tmp_path / "a.txt")))
    assert [d["text"] for d in docs] == ["plain text document\n"]
    docs = list(documents.documents({"source": "local", "paths": [str(tmp_path / "*.jsonl"), str(tmp_path / "*.parquet")],
                                  "text_field": "content"}))
    assert [d["text"] for d in docs] == ["record 0", "record 1", "record 2", "row zero", "row one"]
    with pytest.raises(ValueError, match="text field 'text'"):
        list(documents.documents(local(tmp_path / "b.jsonl")))
    with pytest.raises(FileNotFoundError, match="matches no files"):
        list(documents.documents(local(tmp_path / "missing*.txt")))


def test_a_source_without_text_names_its_files(tmp_path):
    """An empty .jsonl once gave "split 'train' is empty; ... change validation_fraction"."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text('{"text": "  "}\n')
    with pytest.raises(ValueError) as error:
        documents.write_corpus(local(tmp_path / "*.jsonl"), tmp_path / "out",
                            validation_fraction=0.05)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'blank.jsonl'}, {tmp_path / 'empty.jsonl'}: no document with text")
    assert "validation_fraction" not in message
    assert not list((tmp_path / "out").glob("*.jsonl"))


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="stdlib, pydoc_topics, local, hf"):
        list(documents.documents({"source": "nope"}))


def test_hf_source_streams_by_name_config_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split, streaming):
        calls.append((name, config, split, streaming))
        return iter([{"text": f"web page {i}"} for i in range(10)])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source = {"source": "hf", "name": "allenai/c4", "config": "en", "split": "validation", "max_documents": 3,
              "text_field": "text"}
    docs = list(documents.documents(source))
    assert calls == [("allenai/c4", "en", "validation", True)]
    assert [d["text"] for d in docs] == ["web page 0", "web page 1", "web page 2"]
    assert docs[0]["id"] == "allenai/c4/en/validation/0"


def test_the_commands_take_the_files_a_rule_names(stdlib_corpus, tmp_path, caplog):
    """`lmscale corpus`, `tokenizer` and `tokenize` as the rules call them: the files they write or
    read, each folder found from its files; the same bytes as the library's functions write."""
    from lmscale import cli
    from lmscale.jobs import CorpusJob, TokenizerJob
    from tests.workflow import validated_config

    out, _ = stdlib_corpus
    config = validated_config({"datasets": {"stdlib": {**SMALL_STDLIB, "validation_fraction": 0.1}},
                               "tokenizer": {"vocab_size": 300}})
    data = tmp_path / "data" / "stdlib"
    split_files = [str(data / name) for name in ("train.jsonl", "validation.jsonl", "manifest.json")]
    job = CorpusJob.from_config(config, dataset="stdlib").to_json()
    assert cli.main(["corpus", "--job", job, "--out", *split_files]) == 0
    for name in ("train.jsonl", "validation.jsonl"):
        assert (data / name).read_bytes() == (out / name).read_bytes()

    tokenizer = tmp_path / "tokenizer" / "tokenizer.json"
    tokenizer_job = TokenizerJob.from_config(config).to_json()
    assert cli.main(["tokenizer", "--job", tokenizer_job, "--train", split_files[0], "--out", str(tokenizer)]) == 0
    direct = train_bpe(out / "train.jsonl", tmp_path / "bpe", vocab_size=300)
    assert tokenizer.read_bytes() == (direct / "tokenizer.json").read_bytes()
    stream = tmp_path / "tokens" / "validation.bin"
    assert cli.main(["tokenize", "--split", split_files[1], "--tokenizer", str(tokenizer), "--out", str(stream)]) == 0
    assert token_streams.open_tokens(stream)[1]["end_of_text_id"] == end_of_text_id(tokenizer.parent)

    # A folder, or files that are not the stage's, are refused in one line naming what was expected.
    assert cli.main(["tokenize", "--split", split_files[1], "--tokenizer", str(tokenizer.parent),
                     "--out", str(stream)]) == 1
    assert f"expected tokenizer.json in one folder, got {tokenizer.parent}" in caplog.text
    assert cli.main(["corpus", "--job", job, "--out", split_files[0], split_files[2]]) == 1
    assert "expected train.jsonl, validation.jsonl, manifest.json in one folder" in caplog.text
