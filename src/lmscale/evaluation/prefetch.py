"""Prefetch stage: what the offline jobs read from the Hugging Face Hub, fetched once where the network is.

The evaluation jobs run with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 (cluster
nodes often have no network), and so does the job of a pretrained tokenizer:
whatever they read from the Hub must be in the Hugging Face cache before they
start. This stage runs where Snakemake runs (a `localrule`: the login node of
a cluster) and fills that cache with

- the datasets of every lm-eval task of the study's task table
  (`tasks.suite: llm_foundry_46`), as lm-eval's own task definitions name
  them (`dataset_path`, `dataset_name`, `dataset_kwargs`, through groups and
  tags: mmlu is 57 configs of cais/mmlu), read from lm-eval's TaskManager
  index without loading any dataset; the table's local tasks generate their
  data and need none;
- a pretrained tokenizer named by its hub id (`tokenizer.name`).

The cache is the config's `hf_cache` (`hub/` and `datasets/` under it, on
shared storage on a cluster), else Hugging Face's own. Every download is
recorded in the manifest (dataset, config, revision, files), which the
evaluation jobs and the tokenizer job take as input, so that none starts
before its data is there.

Without a network (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or TRANSFORMERS_OFFLINE
set, or the Hub unreachable) nothing is downloaded: a cache that holds
everything passes, and a missing download fails the job at once, naming what
is missing and how to fetch it elsewhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

from lmscale import jobs
from lmscale.evaluation import offline_tasks, task_list
from lmscale.io import hub
from lmscale.io.files import atomic_write_json
from lmscale.jobs import PrefetchJob

log = logging.getLogger(__name__)

# The files AutoTokenizer may read from a hub repository (a repository has some of them): the
# tokenizer's own, and the model's config.json, which transformers 5 reads first.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "vocab.txt", "tokenizer.model", "added_tokens.json", "config.json")


@dataclass(frozen=True)
class Download:
    """One thing the offline jobs read: a dataset config lm-eval loads, or a tokenizer."""

    kind: str  # "dataset" or "tokenizer"
    path: str  # the dataset's path (lm-eval's dataset_path) or the tokenizer's hub id
    config: str | None  # the dataset config (lm-eval's dataset_name); None: its only or default one
    kwargs: dict  # further arguments of datasets.load_dataset (lm-eval's dataset_kwargs)
    tasks: tuple[str, ...]  # the table's tasks that read it

    @property
    def label(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.config})" if self.config else "")


# ---------------------------------------------------------------- what to fetch


def downloads_of(job: PrefetchJob) -> list[Download]:
    """Every download the study's offline jobs need, in a stable order: the datasets, then the tokenizer."""
    downloads = task_datasets(job.tasks) if job.tasks is not None else []
    if job.tokenizer is not None:
        downloads.append(Download("tokenizer", job.tokenizer, None, {}, ()))
    return downloads


def task_datasets(tasks_config: dict) -> list[Download]:
    """The datasets of the lm-eval tasks a `tasks` section chooses, from lm-eval's task definitions.

    One download per (path, config, kwargs), listing the table's tasks that read it.
    """
    specs = [spec for spec in task_list.task_specs(tasks_config, None)
             if spec.lm_eval_task not in offline_tasks.GENERATED_TASKS]
    index = lm_eval_index()
    task_list.check_registered(specs, list(index))
    found: dict[str, Download] = {}
    for spec in specs:
        for path, config, kwargs in lm_eval_datasets(spec.lm_eval_task, index):
            key = json.dumps([path, config, kwargs], sort_keys=True)
            known = found.get(key, Download("dataset", path, config, kwargs, ()))
            if spec.name not in known.tasks:
                found[key] = dataclasses.replace(known, tasks=(*known.tasks, spec.name))
    return list(found.values())


@functools.cache
def lm_eval_index() -> dict:
    """lm-eval's registry of its own tasks, groups and tags, their YAMLs read (~15,000 files), no dataset loaded."""
    # deferred: lm-eval imports torch and transformers; a study without lm-eval tasks never needs it
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=True).task_index


def lm_eval_datasets(name: str, index: dict, overrides: dict | None = None) -> list[tuple[str, str | None, dict]]:
    """(dataset_path, dataset_name, dataset_kwargs) of every task lm-eval runs for a task, group or tag.

    As lm-eval's TaskFactory builds them: a tag is its tasks; a group its members, each
    with the group's own task settings and the member's overrides on top; a task its config.
    """
    # deferred: lm-eval imports torch and transformers
    from lm_eval.tasks._index import Kind

    entry = index.get(name)
    if entry is None:
        raise ValueError(f"lm-eval has no task, group or tag {name!r}")
    if entry.kind is Kind.TAG:
        return [found for task in sorted(entry.tags) for found in lm_eval_datasets(task, index, overrides)]
    if entry.kind is Kind.GROUP:
        return group_datasets(entry.cfg, index, overrides)
    return [task_dataset(name, {**entry.cfg, **(overrides or {})})]


def group_datasets(cfg: dict, index: dict, overrides: dict | None) -> list[tuple[str, str | None, dict]]:
    # deferred: lm-eval imports torch and transformers
    from lm_eval.config.group import GroupConfig

    group_keys = {field.name for field in dataclasses.fields(GroupConfig)}
    inherited = {**{k: v for k, v in cfg.items() if k not in group_keys}, **(overrides or {})}
    found = []
    for item in cfg.get("task") or []:
        if isinstance(item, str):
            found += lm_eval_datasets(item, index, inherited)
        elif "group" in item:  # a registered group with overrides, or one defined inline
            own = {k: v for k, v in item.items() if k != "group"}
            found += (lm_eval_datasets(item["group"], index, {**inherited, **own}) if item["group"] in index
                      else group_datasets(item, index, inherited))
        elif item.get("task") in index:  # a registered task with overrides
            found += lm_eval_datasets(item["task"], index, {**inherited, **item})
        else:  # a task defined inline
            found.append(task_dataset(str(item.get("task")), {**inherited, **item}))
    return found


def task_dataset(name: str, cfg: dict) -> tuple[str, str | None, dict]:
    if cfg.get("custom_dataset") or not cfg.get("dataset_path"):
        raise ValueError(f"lm-eval task {name!r} names no dataset_path (it builds its data in Python): the "
                         f"prefetch stage cannot tell what it loads; leave it out with tasks.exclude")
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    # datasets >= 4 runs no loading script, and lm-eval drops the flag likewise.
    kwargs.pop("trust_remote_code", None)
    return cfg["dataset_path"], cfg.get("dataset_name"), kwargs


# ---------------------------------------------------------------- fetch or find


def dataset_record(download: Download, online: bool) -> dict:
    """Fetch a dataset into the cache (online) or find it there (offline); its manifest entry.

    Online, `datasets` asks the Hub for the dataset's latest revision and downloads it unless
    the cache holds that revision already. Offline it reads the cache alone.
    """
    # deferred: after use_cache and set_offline, which datasets reads once at import
    import datasets

    builder = datasets.load_dataset_builder(download.path, download.config, **download.kwargs)
    if online:
        builder.download_and_prepare()
    builder.as_dataset()  # every split readable, as lm-eval will read it
    root = Path(datasets.config.HF_DATASETS_CACHE)
    files = sorted(str(path.relative_to(root)) for path in Path(builder.cache_dir).iterdir() if path.is_file())
    return {"kind": "dataset", "dataset": download.path, "config": download.config, "kwargs": download.kwargs,
            "revision": builder.hash, "files": files, "tasks": list(download.tasks)}


def tokenizer_record(download: Download, online: bool) -> dict:
    """Fetch a tokenizer into the hub cache (online) or find it there (offline); its manifest entry."""
    # deferred: after use_cache and set_offline, which the hub and transformers read once at import
    from huggingface_hub import constants, try_to_load_from_cache
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(download.path)  # downloads what loading it needs, or reads the cache
    cached = [try_to_load_from_cache(download.path, name) for name in TOKENIZER_FILES]
    cached = [Path(path) for path in cached if isinstance(path, str)]
    if not cached:
        raise FileNotFoundError(f"tokenizer {download.path} loaded, but none of its files is in the hub cache")
    snapshot = cached[0].parent
    root = Path(constants.HF_HUB_CACHE)
    return {"kind": "tokenizer", "dataset": download.path, "config": None, "kwargs": {},
            "revision": snapshot.name, "files": sorted(str(path.relative_to(root)) for path in cached), "tasks": []}


def record(download: Download, online: bool) -> dict:
    return (dataset_record if download.kind == "dataset" else tokenizer_record)(download, online)


def prefetch(job: PrefetchJob, out: str | Path) -> dict:
    """Fetch (or, offline, find) every download the job needs; write and return the manifest."""
    hub.use_cache(job.hf_cache)
    reason = hub.offline_reason()
    if reason:
        hub.set_offline()  # before datasets and huggingface_hub are imported: not one request is tried
    log.info("prefetch: %s", f"offline ({reason}): the cache alone is read" if reason else "online")
    downloads = downloads_of(job)
    log.info("prefetch: %d downloads", len(downloads))
    records, missing = [], []
    for download in downloads:
        try:
            records.append(record(download, online=reason is None))
            log.info("%s: revision %s, %d files", download.label, records[-1]["revision"], len(records[-1]["files"]))
        except Exception as error:  # noqa: BLE001 (every missing download is named, not the first alone)
            missing.append((download, f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"))
            (log.debug if reason else log.error)("%s: %s", download.label, missing[-1][1])
    if missing:
        raise ValueError(missing_message(job, missing, len(downloads), reason, out))
    # deferred: after use_cache and set_offline, which datasets reads once at import
    import datasets
    from huggingface_hub import constants

    manifest = {"hf_cache": str(Path(job.hf_cache).expanduser().resolve()) if job.hf_cache else None,
                "hub_cache": str(constants.HF_HUB_CACHE), "datasets_cache": str(datasets.config.HF_DATASETS_CACHE),
                "online": reason is None, "downloads": records}
    atomic_write_json(out, manifest)
    log.info("prefetch: every download is in the cache; manifest %s", out)
    return manifest


def missing_message(job: PrefetchJob, missing: list[tuple[Download, str]], total: int, reason: str | None,
                    out) -> str:
    where = job.hf_cache or "Hugging Face's default cache (HF_HOME, ~/.cache/huggingface)"
    lines = [f"prefetch: {len(missing)} of {total} downloads are not in the Hugging Face cache {where}"
             + (f" and the Hub cannot be reached ({reason}):" if reason else ", and fetching them failed:")]
    for download, error in missing:
        tasks = f" for {', '.join(download.tasks)}" if download.tasks else ""
        # Offline, the error only says that the Hub cannot be reached.
        lines.append(f"  {download.label}{tasks}" + ("" if reason else f": {error}"))
    command = f"lmscale prefetch --job {shlex.quote(job.to_json())} --out {shlex.quote(str(out))}"
    lines.append("Fetch them where the Hub can be reached, into the cache these jobs read: on a machine with a "
                 "network that sees the cache (a login node, `hf_cache` on shared storage), run the workflow up to "
                 f"{out} (snakemake ... {out}), or `{command}`; or run it elsewhere and copy that cache's hub/ and "
                 "datasets/ folders into this one. Gated datasets need `hf auth login` first.")
    return "\n".join(lines)


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, PrefetchJob)
    parser.add_argument("--out", required=True, help="the manifest (JSON): every download, its revision and files")


def main(args: argparse.Namespace) -> int:
    prefetch(args.job, args.out)
    return 0
