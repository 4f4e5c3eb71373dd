"""The tokenizer stage (lmscale.data.vocabulary): a byte-level BPE trained on a split, or a pretrained tokenizer
copied, either way a Hugging Face folder with an end-of-text token. The BPE's end-of-text token in a
token stream: test_tokens; a hub tokenizer read offline from the prefetched cache: test_prefetch."""

from __future__ import annotations

import json

import pytest

from lmscale.data.vocabulary import end_of_text_id, fetch_pretrained, train_bpe


def test_pretrained_tokenizer_from_a_local_folder(stdlib_corpus, tmp_path):
    out, _ = stdlib_corpus
    trained = train_bpe(out / "train.jsonl", tmp_path / "bpe", vocab_size=300)
    copied = fetch_pretrained(str(trained), tmp_path / "copy")
    assert end_of_text_id(copied) == end_of_text_id(trained)
    assert (copied / "tokenizer.json").exists()


def test_a_vocabulary_without_room_for_a_merge_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size 257 is too small: byte-level BPE needs at least 258"):
        train_bpe([], tmp_path / "bpe", vocab_size=257)
    assert not (tmp_path / "bpe").exists()


def test_a_tokenizer_without_an_end_of_text_token_is_named(stdlib_corpus, tmp_path):
    trained = train_bpe(stdlib_corpus[0] / "train.jsonl", tmp_path / "bpe", vocab_size=300)
    config = json.loads((trained / "tokenizer_config.json").read_text())
    (trained / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": None}))
    with pytest.raises(ValueError, match=f"tokenizer in {trained} has no eos_token"):
        end_of_text_id(trained)
    (trained / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": "<|not-a-token|>"}))
    with pytest.raises(ValueError, match="eos token '<\\|not-a-token\\|>' of .* is not in its vocabulary"):
        end_of_text_id(trained)
