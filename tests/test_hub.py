"""The Hugging Face cache and the offline switch (lmscale.io.hub), as every stage that reads the Hub sets them."""

from __future__ import annotations

import os

from lmscale.io import hub


def test_the_study_cache_holds_the_hub_and_the_datasets(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    hub.use_cache(None)  # Hugging Face's own cache
    assert "HF_HUB_CACHE" not in os.environ
    monkeypatch.chdir(tmp_path)
    hub.use_cache("cache")
    assert os.environ["HF_HUB_CACHE"] == str(tmp_path / "cache" / "hub")
    assert os.environ["HF_DATASETS_CACHE"] == str(tmp_path / "cache" / "datasets")


def test_why_the_hub_cannot_be_reached(monkeypatch):
    for name in (*hub.OFFLINE_VARIABLES, "TOKENIZERS_PARALLELISM"):  # restored after the test
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    assert hub.offline_reason() == "TRANSFORMERS_OFFLINE=yes"
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert hub.offline_reason().startswith("127.0.0.1 cannot be reached (")
    hub.set_offline()
    assert hub.offline_reason() == "HF_HUB_OFFLINE=1"
