"""Corpus stage: a text source -> deterministic train/validation splits as JSONL.

A source is a small mapping from the config (`datasets.<name>` or
`validation_sets.<name>`), selected by its `source` key:

- `stdlib` (the default, offline): the `.py` files of the running interpreter's
  standard library, one document per file.
- `pydoc_topics` (offline): the English reference text in `pydoc_data.topics`,
  one document per topic; prose, kept out of the `stdlib` corpus so that it can
  serve as an out-of-distribution validation set.
- `local`: text, JSONL (one record per line with a text field) or parquet files.
- `hf`: a Hugging Face dataset by name, config, split and text field, streamed
  (C4, RedPajama, RefinedWeb; needs a network).

Every document has an `id`; a document goes to the validation split when a
hash of its id falls below `validation_fraction`. The split therefore depends
only on the id, never on the order or the machine, and adding a file moves no
other file between splits.

A large corpus is cut into shards (`datasets.<name>.shards`), one job each
(`corpus-shard`): shard k of K holds a contiguous run of the source's
documents, so the shards in order hold every document once, in the order of
the whole. A file source (stdlib, local, pydoc_topics) is cut between files,
the runs balanced by bytes; an hf source between the files the dataset
streams from (datasets' `IterableDataset.shard`). The shards' validation
splits are then joined (`join-shards`); their train splits are tokenised
shard by shard, and training reads the streams as one (`lmscale.data.token_streams`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import itertools
import json
import logging
import os
import sysconfig
from pathlib import Path
from typing import Iterator

from lmscale.config import shard_name
from lmscale.io.files import atomic_write_json, atomic_writer

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")

# Kept out of the default stdlib corpus: test suites are mostly fixtures, and
# pydoc_data is the out-of-distribution prose validation set.
STDLIB_EXCLUDE = ("site-packages/*", "dist-packages/*", "test/*", "*/tests/*", "*/test/*", "idlelib/idle_test/*",
                  "pydoc_data/*")

Document = dict  # {"id": str, "text": str}
Shard = tuple[int, int]  # (index from 0, count); None: the whole source


# ---- sources -----------------------------------------------------------------


def stdlib_documents(source: dict, shard: Shard | None = None) -> Iterator[Document]:
    """The standard library's .py files, sorted by path; ids are paths relative to it."""
    root = stdlib_root(source)
    paths = _cap_bytes(stdlib_paths(source), source.get("max_bytes"), key=lambda p: _rel(p, root))
    for path in shard_share(paths, shard, [path.stat().st_size for path in paths], f"stdlib under {root}"):
        yield {"id": _rel(path, root), "text": path.read_text(encoding="utf-8", errors="replace")}


def stdlib_root(source: dict) -> Path:
    return Path(source.get("root") or sysconfig.get_paths()["stdlib"])


def stdlib_paths(source: dict) -> list[Path]:
    """The .py files of the standard library a source keeps (before max_bytes), sorted."""
    root = stdlib_root(source)
    exclude = list(source.get("exclude", STDLIB_EXCLUDE))
    include = list(source.get("include", ["*"]))
    paths = sorted(
        path
        for path in root.rglob("*.py")
        if path.is_file()
        and any(fnmatch.fnmatch(_rel(path, root), pattern) for pattern in include)
        and not any(fnmatch.fnmatch(_rel(path, root), pattern) for pattern in exclude)
    )
    if not paths:
        raise FileNotFoundError(f"no .py files under {root} (include={include}, exclude={exclude})")
    return paths


def pydoc_topics_documents(source: dict, shard: Shard | None = None) -> Iterator[Document]:
    """Python's reference manual as shipped in pydoc_data: English prose, one document per topic."""
    # deferred: 0.7 MB of reference text, read by a pydoc_topics source only
    from pydoc_data.topics import topics

    names = sorted(topics)
    for name in shard_share(names, shard, [len(topics[name]) for name in names], "pydoc_topics"):
        yield {"id": f"pydoc_data/{name}", "text": topics[name]}


def local_paths(source: dict) -> list[Path]:
    """The files a local source's `paths` (files or globs) match, sorted."""
    patterns = source.get("paths") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    paths = sorted({Path(p) for pattern in patterns for p in _glob(pattern)})
    if not paths:
        raise FileNotFoundError(
            f"local source matches no files: paths={patterns}; give existing files or globs"
        )
    return paths


def local_documents(source: dict, shard: Shard | None = None) -> Iterator[Document]:
    """Local files by glob: .txt (one document per file), .jsonl/.json (one per line), .parquet."""
    paths = _cap_bytes(local_paths(source), source.get("max_bytes"), key=str)
    field = source["text_field"]
    for path in shard_share(paths, shard, [path.stat().st_size for path in paths], "local source"):
        kind = source.get("format") or _format_of(path)
        if kind == "text":
            yield {"id": str(path), "text": path.read_text(encoding="utf-8", errors="replace")}
        elif kind == "jsonl":
            with open(path, encoding="utf-8") as handle:
                for line_number, line in enumerate(handle):
                    if line.strip():
                        yield {"id": f"{path}:{line_number}", "text": _text_field(json.loads(line), field, path)}
        elif kind == "parquet":
            # deferred: pyarrow, for parquet files only
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[field])
            for row, text in enumerate(table.column(field).to_pylist()):
                yield {"id": f"{path}:{row}", "text": text or ""}
        else:
            raise ValueError(f"unknown local format {kind!r} for {path}; use text, jsonl or parquet")


def hf_documents(source: dict, shard: Shard | None = None) -> Iterator[Document]:
    """A Hugging Face dataset, streamed so that a large corpus never lands on disk whole.

    The whole dataset numbers its documents in stream order; a shard reads a contiguous run of
    the files the dataset streams from, one after the other, and numbers each file's documents
    (ids `.../{file}/{row}`, the same for any number of shards above one). `max_documents` caps
    the whole, each shard at its share. Streaming needs the Hub: without it (no network, or
    HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set) the job stops in one line naming the dataset.
    """
    # deferred: datasets takes seconds to import; a Hugging Face source only needs it
    import datasets

    name = source.get("name")
    if not name:
        raise ValueError("hf source needs `name` (for instance allenai/c4)")
    split = source.get("split", "train")
    try:
        stream = datasets.load_dataset(name, source.get("config"), split=split, streaming=True)
        field = source["text_field"]
        limit = source.get("max_documents")
        prefix = f"{name}/{source.get('config')}/{split}"
        if shard is None:
            for index, record in enumerate(itertools.islice(stream, limit)):
                yield {"id": f"{prefix}/{index}", "text": _text_field(record, field, name)}
            return
        index, count = shard
        files = stream.num_shards
        if count > files:
            raise ValueError(f"hf source {name} ({source.get('config')}, {split}) streams from {files} file(s), "
                             f"too few for {count} shards: a shard is a run of whole files; set shards to at most "
                             f"{files}")
        if limit is not None:
            limit = limit * (index + 1) // count - limit * index // count
        records = ((file, row, record) for file in _contiguous(files, index, count)
                   for row, record in enumerate(stream.shard(num_shards=files, index=file)))
        for file, row, record in itertools.islice(records, limit):
            yield {"id": f"{prefix}/{file}/{row}", "text": _text_field(record, field, name)}
    except ConnectionError as error:
        # What datasets and huggingface_hub raise for a Hub out of reach or switched off, at load or mid-stream.
        raise ConnectionError(
            f"hf source {name} ({source.get('config')}, {split}): the Hugging Face Hub cannot be reached "
            f"({' '.join(str(error).split())}); a corpus of source hf is streamed from the Hub: run this job "
            f"where there is a network, with HF_HUB_OFFLINE and HF_DATASETS_OFFLINE unset, or give the "
            f"dataset as files of a `local` source") from None


SOURCES = {
    "stdlib": stdlib_documents,
    "pydoc_topics": pydoc_topics_documents,
    "local": local_documents,
    "hf": hf_documents,
}


def documents(source: dict, shard: Shard | None = None) -> Iterator[Document]:
    """The documents of a source (of one of its shards), in a fixed order; empty documents are dropped."""
    kind = source["source"]
    if kind not in SOURCES:
        raise ValueError(f"unknown corpus source {kind!r}; use one of {', '.join(SOURCES)}")
    found = 0
    for document in SOURCES[kind](source, shard):
        if document["text"].strip():
            found += 1
            yield document
    if not found:
        where = ", ".join(map(str, local_paths(source))) if kind == "local" else f"source {kind!r}"
        raise ValueError(f"{where}: no document with text (source {json.dumps(source, sort_keys=True)}); "
                         f"give files that hold text")


# ---- the split ---------------------------------------------------------------


def split_of(document_id: str, validation_fraction: float) -> str:
    """'validation' for a fixed fraction of ids, chosen by hash; 'train' for the rest."""
    digest = hashlib.sha256(document_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if position < validation_fraction else "train"


def write_corpus(
    source: dict,
    out_dir: str | Path,
    splits: tuple[str, ...] = SPLITS,
    validation_fraction: float | None = None,
    shard: Shard | None = None,
) -> dict:
    """Write `{split}.jsonl` for each split and `manifest.json` beside them; return the manifest.

    With a single split every document goes into it (a validation set drawn
    from a source of its own has no train split). With `shard`, the splits of
    that shard of the source: its validation split may be empty (the joined one
    may not), its train split may not.
    """
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use train and/or validation")
    if len(splits) == 2 and (validation_fraction is None or not 0 < validation_fraction < 1):
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    stats = {split: {"documents": 0, "bytes": 0} for split in splits}
    with contextlib.ExitStack() as stack:
        handles = {split: stack.enter_context(atomic_writer(out_dir / f"{split}.jsonl")) for split in splits}
        for document in documents(source, shard):
            split = splits[0] if len(splits) == 1 else split_of(document["id"], validation_fraction)
            handles[split].write(json.dumps(document, ensure_ascii=False) + "\n")
            encoded = document["text"].encode("utf-8")
            whole.update(document["id"].encode("utf-8") + b"\0" + encoded + b"\0")
            stats[split]["documents"] += 1
            stats[split]["bytes"] += len(encoded)
    for split in splits:
        if stats[split]["documents"] == 0 and not (shard and split == "validation"):
            where = f" (shard {shard_name(*shard)})" if shard else ""
            raise ValueError(
                f"split {split!r} of source {source['source']!r}{where} is empty; "
                f"add documents or change validation_fraction ({validation_fraction})"
                + (" or use fewer shards" if shard else "")
            )
    manifest = {
        "source": source,
        "validation_fraction": validation_fraction if len(splits) == 2 else None,
        "documents": sum(s["documents"] for s in stats.values()),
        "bytes": sum(s["bytes"] for s in stats.values()),
        "sha256": whole.hexdigest(),
        "splits": stats,
    }
    if shard:
        manifest["shard"] = shard_name(*shard)
    atomic_write_json(out_dir / "manifest.json", manifest)
    log.info(
        "corpus: %d documents, %.1f MB, sha256 %s",
        manifest["documents"], manifest["bytes"] / 1e6, manifest["sha256"][:12],
    )
    return manifest


def join_shards(shard_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """The validation split of a sharded corpus, its shards' joined in order, and its manifest.

    The train splits stay apart: each is tokenised on its own and training reads their token
    streams as one. Returns the manifest: the totals, and each shard's own manifest.
    """
    out_dir = Path(out_dir)
    manifests = [json.loads((Path(folder) / "manifest.json").read_text()) for folder in shard_dirs]
    with atomic_writer(out_dir / "validation.jsonl", "wb") as handle:
        for folder in shard_dirs:
            with open(Path(folder) / "validation.jsonl", "rb") as shard:
                while block := shard.read(1 << 20):
                    handle.write(block)
    splits = {split: {key: sum(m["splits"][split][key] for m in manifests) for key in ("documents", "bytes")}
              for split in SPLITS}
    if splits["validation"]["documents"] == 0:
        raise ValueError(f"the validation split of {out_dir} is empty in every shard; "
                         f"raise validation_fraction ({manifests[0]['validation_fraction']}) or add documents")
    manifest = {
        "source": manifests[0]["source"],
        "validation_fraction": manifests[0]["validation_fraction"],
        "documents": sum(m["documents"] for m in manifests),
        "bytes": sum(m["bytes"] for m in manifests),
        "splits": splits,
        "shards": [{key: m[key] for key in ("shard", "documents", "bytes", "sha256", "splits")} for m in manifests],
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    log.info("corpus: %d shards, %d documents, %.1f MB; validation %d documents",
             len(manifests), manifest["documents"], manifest["bytes"] / 1e6, splits["validation"]["documents"])
    return manifest


def read_texts(path: str | Path) -> Iterator[str]:
    """The texts of a split written by write_corpus, in order."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)["text"]


# ---- helpers -----------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _glob(pattern: str) -> list[str]:
    return [p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p)]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "text"


def _text_field(record: dict, field: str, where) -> str:
    if field not in record:
        raise ValueError(f"record in {where} has no text field {field!r} (fields: {', '.join(record)}); set text_field")
    return record[field] or ""


def shard_share(items: list, shard: Shard | None, sizes: list[int], what: str) -> list:
    """The items of one shard: a contiguous run of `items`, the runs of all shards balanced by size.

    Each item goes to the shard its middle byte falls in, so that the shards in order hold
    every item once, in order. None: every item.
    """
    if shard is None:
        return items
    index, count = shard
    total = sum(sizes)
    share, before = [], 0
    for position, (item, size) in enumerate(zip(items, sizes)):
        middle = (2 * before + size) * count // (2 * total) if total else position * count // len(items)
        if min(count - 1, middle) == index:
            share.append(item)
        before += size
    if not share:
        raise ValueError(f"shard {shard_name(index, count)} of {what} gets no file: {len(items)} file(s) of "
                         f"{total:,} bytes are too few or too uneven for {count} shards; use fewer shards")
    return share


def _contiguous(items: int, index: int, count: int) -> range:
    """Shard `index` of `count` of `items` numbered items: a contiguous run, the runs within one item in length."""
    return range(items * index // count, items * (index + 1) // count)


def _cap_bytes(paths: list[Path], max_bytes: int | None, key) -> list[Path]:
    """At most `max_bytes` of files, picked in hash order so the subset spans the whole tree.

    Taking the first files in sorted order would keep only the packages early
    in the alphabet; the selection is then sorted again to keep the output order.
    """
    if not max_bytes:
        return paths
    chosen, total = [], 0
    # Salted, so that the subset is independent of the hash that splits it.
    for path in sorted(paths, key=lambda p: hashlib.sha256(b"subset:" + key(p).encode()).digest()):
        size = path.stat().st_size
        if total + size > max_bytes:
            continue
        chosen.append(path)
        total += size
    return sorted(chosen)


# ---- CLI ---------------------------------------------------------------------


def corpus_files(splits: tuple[str, ...]) -> list[str]:
    """The files a corpus (or a shard of one) writes in its folder: each split's JSONL, then the manifest."""
    return [*(f"{split}.jsonl" for split in splits), "manifest.json"]
