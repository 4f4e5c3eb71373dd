"""The prefetch stage: what the offline jobs read from the Hugging Face Hub, fetched once, offline-tested.

- the downloads for configs/tasks/llm_foundry_46.csv, from lm-eval's own task definitions: the
  dataset path and config of every lm-eval task the table names (41 rows; the two local
  YAMLs generate their data);
- with an empty cache and no network the prefetch job fails before any evaluation job
  starts, naming the missing datasets; with a cache a test prepared (tiny datasets built
  here and saved where `datasets` reads them offline) it passes, records them, and the
  evaluations read them;
- a pretrained tokenizer named by a hub id likewise, read offline by the tokenizer job;
- the default study (offline suite, its own BPE) has no prefetch job.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lmscale import jobs
from lmscale.evaluation import offline_tasks, prefetch
from tests.workflow import REPO, planned, snakemake_with_jobs

TABLE = REPO / "configs" / "tasks" / "llm_foundry_46.csv"
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the Hub's

# ---- the downloads -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_downloads() -> list[prefetch.Download]:
    selection = {"suite": "llm_foundry_46", "table": str(TABLE), "include": [], "exclude": []}
    return prefetch.downloads_of(jobs.PrefetchJob(selection, "EleutherAI/gpt-neox-20b", None))


def test_the_downloads_name_the_dataset_of_every_lm_eval_task_of_the_table(paper_downloads):
    with open(TABLE, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["lm_eval_task"]]
    lm_eval_rows = [row for row in rows if row["lm_eval_task"] not in offline_tasks.GENERATED_TASKS]
    assert len(rows) == 43 and len(lm_eval_rows) == 41
    datasets = [download for download in paper_downloads if download.kind == "dataset"]
    by_task: dict[str, list[tuple]] = {}
    for download in datasets:
        for task in download.tasks:
            by_task.setdefault(task, []).append((download.path, download.config))
    # Every lm-eval row has its datasets; the local YAMLs have none (they generate their data).
    assert set(by_task) == {row["task"] for row in lm_eval_rows}
    assert not set(by_task) & {"simple_arithmetic_nospaces", "simple_arithmetic_withspaces"}
    # As lm-eval's task YAMLs name them (dataset_path, dataset_name).
    assert by_task["hellaswag"] == by_task["hellaswag_zeroshot"] == [("Rowan/hellaswag", None)]
    assert by_task["copa"] == [("aps/super_glue", "copa")]
    assert by_task["winograd"] == [("lighteval/winograd_wsc", "wsc273")]
    assert by_task["arc_easy"] == [("allenai/ai2_arc", "ARC-Easy")]
    assert by_task["bigbench_strategy_qa"] == [("hails/bigbench", "strategyqa_zero_shot")]
    assert by_task["agi_eval_lsat_ar"] == [("hails/agieval-lsat-ar", None)]
    # A group through its subgroups and tags: mmlu is its 57 subjects, one config each.
    assert by_task["mmlu"] == by_task["mmlu_zeroshot"]
    assert len(by_task["mmlu"]) == 57 and {path for path, _ in by_task["mmlu"]} == {"cais/mmlu"}
    assert ("cais/mmlu", "abstract_algebra") in by_task["mmlu"]
    # Each dataset config once, with every task that reads it; the tokenizer last.
    assert len({(d.path, d.config) for d in datasets}) == len(datasets) == 94
    assert paper_downloads[-1] == prefetch.Download("tokenizer", "EleutherAI/gpt-neox-20b", None, {}, ())
    print(f"\nprefetch downloads of {TABLE.name}: {len(datasets)} dataset configs for {len(by_task)} table rows")


def test_the_downloads_follow_include_and_exclude():
    selection = {"suite": "llm_foundry_46", "table": str(TABLE), "include": ["copa", "piqa", "simple_arithmetic_nospaces"],
                 "exclude": ["piqa"]}
    downloads = prefetch.task_datasets(selection)
    assert [(d.path, d.config, d.tasks) for d in downloads] == [("aps/super_glue", "copa", ("copa",))]


# ---- a cache prepared here, in the layout `datasets` reads offline ------------------------------


def rows(task: str, count: int) -> list[dict]:
    """Documents with the fields lm-eval's task reads."""
    if task == "copa":
        return [{"premise": f"The glass fell {i}.", "choice1": "It broke.", "choice2": "It sang.",
                 "question": "effect", "label": i % 2, "idx": i} for i in range(count)]
    if task == "boolq":
        return [{"question": f"is {i} even", "passage": f"The number {i}.", "label": i % 2, "idx": i}
                for i in range(count)]
    return [{"goal": f"Open jar {i}", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": i % 2}
            for i in range(count)]


# lm-eval's datasets of the three tasks the workflow tests evaluate: (path, config) -> task.
PREPARED = {("aps/super_glue", "copa"): "copa", ("aps/super_glue", "boolq"): "boolq", ("baber/piqa", None): "piqa"}
VALIDATION_DOCUMENTS = 6


def prepare_cache(datasets_cache: Path) -> None:
    """Tiny train and validation splits of each PREPARED dataset, written by a `datasets` builder under
    the repository's name, config and a commit hash: the layout a download leaves and offline loading reads
    ({namespace}___{name}/{config}/{version}/{revision}/)."""
    import datasets

    for (path, config), task in PREPARED.items():
        splits = {"train": rows(task, 12), "validation": rows(task, VALIDATION_DOCUMENTS)}

        class Tiny(datasets.GeneratorBasedBuilder):
            BUILDER_CONFIGS = [datasets.BuilderConfig(name=config or "default")]

            def _info(self):
                return datasets.DatasetInfo()

            def _split_generators(self, dl_manager, splits=splits):
                return [datasets.SplitGenerator(name=name, gen_kwargs={"documents": documents})
                        for name, documents in splits.items()]

            def _generate_examples(self, documents):
                yield from enumerate(documents)

        Tiny(cache_dir=str(datasets_cache), dataset_name=path.split("/")[-1], repo_id=path,
             config_name=config or "default", hash=REVISION).download_and_prepare()


def prepare_hub_tokenizer(hub_cache: Path, repo_id: str, tokenizer_dir: Path) -> None:
    """A tokenizer folder as the hub cache holds a download: models--{org}--{name}/snapshots/{revision}/,
    refs/main naming the revision; config.json beside it, which AutoTokenizer reads first."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (snapshot / name).write_bytes((tokenizer_dir / name).read_bytes())
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


def tiny_study(study: str, **overrides) -> dict:
    """One tiny model on a small stdlib corpus, its tasks three of the paper's lm-eval tasks."""
    return {
        "study": study, "hf_cache": "hf-cache",  # relative: read from the working directory
        "datasets": {"stdlib": {"source": "stdlib", "max_bytes": 300_000, "validation_fraction": 0.1}},
        "validation_sets": {"heldout": {"dataset": "stdlib", "tokens": 2048}},
        "tokenizer": {"kind": "bpe", "vocab_size": 300},
        "sizes": {"s1": {"width": 16, "depth": 1, "heads": 2, "mlp_width": 32, "context": 64,
                         "tie_embeddings": True, "batch_size": 8, "lr": 0.01, "warmup": 5}},
        "train": {"device": "cpu"}, "grid": [{"sizes": ["s1"], "multipliers": [5]}],
        "tasks": {"suite": "llm_foundry_46", "table": str(TABLE), "include": ["copa", "boolq", "piqa"],
                  "device": "cpu", "threads": 1, "batch_size": 8},
        "valsets": ["heldout"], "threshold": 5, "reference_size": "s1", "loss_fit_set": [{"size": "s1", "M": 5}],
        **overrides,
    }


def run(workdir: Path, config: dict, *targets: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Snakemake on `config` to `targets`, and every job it scheduled (tests.workflow.snakemake_with_jobs)."""
    configfile = workdir / f"{config['study']}.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return snakemake_with_jobs(workdir, *targets, "--configfile", str(configfile))


@pytest.fixture(scope="module")
def task_study(tmp_path_factory):
    """The tiny study to one model's task evaluation: first with an empty cache, then with a prepared one."""
    workdir = tmp_path_factory.mktemp("prefetch")
    config = tiny_study("hub")
    target = "results/hub/eval/tasks/stdlib/s1_M5.json"
    results = workdir / "results" / "hub"
    empty, empty_jobs = run(workdir, config, target)
    after_empty = {"log": (results / "logs" / "prefetch.log").read_text(),
                   "evaluated": (results / "eval" / "tasks").exists(),
                   "manifest": (results / "prefetch" / "manifest.json").exists()}
    prepare_cache(workdir / "hf-cache" / "datasets")
    prepared, _ = run(workdir, config, target)
    return {"workdir": workdir, "empty": empty, "empty_jobs": empty_jobs, "after_empty": after_empty,
            "prepared": prepared, "results": results}


@pytest.mark.slow
def test_with_an_empty_cache_and_no_network_prefetch_fails_before_any_evaluation(task_study):
    empty, after = task_study["empty"], task_study["after_empty"]
    log = after["log"]
    assert empty.returncode != 0
    # It names every missing dataset and the tasks that need it, and how to fetch them elsewhere.
    assert "3 of 3 downloads are not in the Hugging Face cache hf-cache and the Hub cannot be reached" in log
    assert "HF_HUB_OFFLINE=1" in log
    for line in ("dataset aps/super_glue (copa) for copa", "dataset aps/super_glue (boolq) for boolq",
                 "dataset baber/piqa for piqa"):
        assert line in log, line
    assert "lmscale prefetch --job" in log and "results/hub/prefetch/manifest.json" in log
    # No evaluation started: its job never ran, and no manifest exists for one to read.
    assert "eval_tasks" not in {job["rule"] for job in task_study["empty_jobs"]}
    assert not after["evaluated"] and not after["manifest"]


@pytest.mark.slow
def test_with_a_prepared_cache_prefetch_passes_offline_and_the_evaluations_read_it(task_study):
    prepared, results = task_study["prepared"], task_study["results"]
    assert prepared.returncode == 0, prepared.stderr[-4000:]
    manifest = json.loads((results / "prefetch" / "manifest.json").read_text())
    cache = (task_study["workdir"] / "hf-cache").resolve()
    assert manifest["hf_cache"] == str(cache) and manifest["datasets_cache"] == str(cache / "datasets")
    assert manifest["online"] is False
    recorded = {(entry["dataset"], entry["config"]): entry for entry in manifest["downloads"]}
    assert set(recorded) == set(PREPARED)
    for (path, config), entry in recorded.items():
        assert entry["revision"] == REVISION and entry["tasks"] == [PREPARED[(path, config)]]
        folder = f"{path.replace('/', '___')}/{config or 'default'}/0.0.0/{REVISION}"
        name = path.split("/")[-1]
        assert {f"{folder}/{name}-train.arrow", f"{folder}/{name}-validation.arrow"} <= set(entry["files"])
    # The evaluation read the prepared documents: each task scored on its 6 validation documents.
    evaluation = json.loads((results / "eval" / "tasks" / "stdlib" / "s1_M5.json").read_text())
    assert evaluation["failed"] == {}
    assert {task: result["num_docs"] for task, result in evaluation["tasks"].items()} == {
        "copa": VALIDATION_DOCUMENTS, "boolq": VALIDATION_DOCUMENTS, "piqa": VALIDATION_DOCUMENTS}


def test_a_hub_tokenizer_is_prefetched_and_read_offline(tmp_path):
    """A pretrained tokenizer named by a hub id: the prefetch job finds it in the cache and the tokenizer
    job reads it with the Hub switched off. (With nothing in the cache the prefetch job names it:
    test_paper_config.py, GPT-NeoX's.)"""
    from lmscale.data import documents
    from lmscale.data.vocabulary import train_bpe

    documents.write_corpus({"source": "stdlib", "max_bytes": 100_000}, tmp_path / "text", validation_fraction=0.1)
    trained = train_bpe(tmp_path / "text" / "train.jsonl", tmp_path / "bpe", vocab_size=280)
    config = tiny_study("tok", tokenizer={"kind": "pretrained", "name": "lmscale-test/tiny-bpe"},
                        tasks={"suite": "offline"})
    target = "results/tok/tokenizer/tokenizer.json"
    prepare_hub_tokenizer(tmp_path / "hf-cache" / "hub", "lmscale-test/tiny-bpe", trained)
    found, _ = run(tmp_path, config, target)
    assert found.returncode == 0, found.stderr[-3000:]
    manifest = json.loads((tmp_path / "results/tok/prefetch/manifest.json").read_text())
    [entry] = manifest["downloads"]
    assert (entry["kind"], entry["dataset"], entry["revision"]) == ("tokenizer", "lmscale-test/tiny-bpe", REVISION)
    assert f"models--lmscale-test--tiny-bpe/snapshots/{REVISION}/tokenizer.json" in entry["files"]
    assert (tmp_path / target).read_bytes() != b""
    from lmscale.data.vocabulary import end_of_text_id

    assert end_of_text_id(tmp_path / "results/tok/tokenizer") == end_of_text_id(trained)


def test_the_default_study_has_no_prefetch_job(tmp_path):
    """The offline suite generates its data and a BPE is the study's own: nothing to fetch, no job."""
    jobs_planned = planned(tmp_path, "--configfile", str(REPO / "config.yaml"))
    assert jobs_planned and not [job for job in jobs_planned if job["rule"] == "prefetch"]
    tasks = [job for job in jobs_planned if job["rule"] == "eval_tasks"]
    assert tasks and all("prefetch" not in job["shellcmd"] for job in tasks)
