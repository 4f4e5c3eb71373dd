"""Token streams (lmscale.data.token_streams): a split tokenized into a flat memmap, each document ended by the
tokenizer's end-of-text id, decoding back to its text; the narrowest dtype that holds the vocabulary.
A sharded corpus's streams and their index: test_shards."""

from __future__ import annotations

import numpy as np

from lmscale.data import documents, token_streams
from lmscale.data.vocabulary import END_OF_TEXT, end_of_text_id, train_bpe


def test_bpe_tokenizer_and_token_stream(stdlib_corpus, tmp_path):
    out, manifest = stdlib_corpus
    tokenizer_dir = train_bpe(out / "train.jsonl", tmp_path / "tokenizer", vocab_size=320)
    eot = end_of_text_id(tokenizer_dir)

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert hf.eos_token == END_OF_TEXT and hf.convert_tokens_to_ids(END_OF_TEXT) == eot

    summary = token_streams.tokenize_split(out / "validation.jsonl", tokenizer_dir, tmp_path / "val.bin", threads=2)
    stream, again = token_streams.open_tokens(tmp_path / "val.bin")
    assert stream.dtype == np.uint16 and summary == again
    assert summary["tokens"] == len(stream)
    assert summary["documents"] == manifest["splits"]["validation"]["documents"]
    # Every document ends with the end-of-text token, and the stream decodes back to the text.
    assert int((stream == eot).sum()) == summary["documents"] and stream[-1] == eot
    first_end = int(np.argmax(stream == eot))
    first_text = next(documents.read_texts(out / "validation.jsonl"))
    assert hf.decode(stream[:first_end].tolist()) == first_text


def test_token_dtype_widens_for_large_vocabularies():
    assert token_streams.token_dtype(50_257) == np.uint16
    assert token_streams.token_dtype(2**16) == np.uint16
    assert token_streams.token_dtype(2**16 + 1) == np.uint32
