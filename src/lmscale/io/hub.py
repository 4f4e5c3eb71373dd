"""The Hugging Face cache and the offline switch, shared by every stage that reads the Hub.

The prefetch stage fills the cache where the network is; the tokenizer and
evaluation stages read it offline. Each points Hugging Face at the study's
cache (`hf_cache`) before `huggingface_hub` or `datasets` is imported, since
both read their variables once, at import.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def use_cache(cache: str | None) -> None:
    """Point Hugging Face's hub and datasets caches at `cache`/hub and `cache`/datasets.

    None leaves Hugging Face's own. Must run before huggingface_hub or datasets is imported:
    both read the variables once.
    """
    if cache is None:
        return
    root = Path(cache).expanduser().resolve()
    os.environ["HF_HUB_CACHE"] = str(root / "hub")
    os.environ["HF_DATASETS_CACHE"] = str(root / "datasets")


def set_offline() -> None:
    """Nothing may reach the Hugging Face Hub; must run before datasets is imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def offline_reason() -> str | None:
    """Why the Hub cannot be reached, or None when it can: an offline setting, or no connection."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{name}={os.environ[name]}"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=10).close()
    except OSError as error:
        return f"{endpoint.hostname} cannot be reached ({error})"
    return None
