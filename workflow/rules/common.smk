# Paths, wildcard constraints and the functions the rule files call. A one-line input function
# stands in its rule as a lambda; a longer one lives here, under the name of the file it feeds,
# as Snakemake's lint keeps functions out of the files with rules ("Mixed rules and functions in
# same snakefile"; test_smoke_study.py runs --lint).
# Each rule's `job` param is its stage's description (lmscale.jobs), built from the config
# and the wildcards by that description's `from_config`.
# Nothing here reads the disk while the Snakefile is parsed: what depends on a file (a tables
# testbed's tasks.csv, a local tokenizer folder, the task table) is decided in an input function,
# when the jobs are planned.
import os
import re
import types

from snakemake.logging import logger

from lmscale import config as study_config
from lmscale.evaluation import task_list
from lmscale.io import importers
from lmscale import jobs
from lmscale.evaluation import offline_tasks
from lmscale.jobs import resources as job_resources

RESULTS = f"results/{config['study']}"
LOGS = f"{RESULTS}/logs"
# Every rule runs the `lmscale` command; with --software-deployment-method conda, from this environment.
ENV = "../../envs/lmscale.yaml"

# One run of the grid is "{size}_M{mult}" under its dataset; a replicate trained with
# another seed (`replicate_seeds`) is "{size}_M{mult}_seed{k}": {replica} is "" or "_seed{k}".
RUN = "{size}_M{mult}{replica}"
MODEL_DIR = f"{RESULTS}/models/{{dataset}}/{RUN}"
RUN_JSON = f"{MODEL_DIR}/run.json"
LOSS_EVAL = f"{RESULTS}/eval/loss/{{dataset}}/{RUN}/{{valset}}.json"
TASK_EVAL = f"{RESULTS}/eval/tasks/{{dataset}}/{RUN}.json"
LOSS_TABLE = f"{RESULTS}/testbed/loss.csv"
TASK_TABLE = f"{RESULTS}/testbed/tasks.csv"
LAWS = f"{RESULTS}/laws/{{dataset}}/{{valset}}"
BACKTEST = f"{RESULTS}/backtest/{{dataset}}/{{valset}}_{{tag}}"
PREDICTIONS = f"{RESULTS}/predictions/{{dataset}}/{{valset}}_{{tag}}"
# Per-task predictions (a study with tasks: t{t} only, no loss-only variant).
PER_TASK = f"{RESULTS}/per_task/{{dataset}}/{{valset}}_t{{t}}"

# Corpus splits, the tokenizer and the token streams:
#   data/{dataset}/{train,validation}.jsonl      a training dataset's splits
#   data/valsets/{valset}/validation.jsonl       a validation set with a source of its own
#   tokenizer/tokenizer.json                     (Hugging Face tokenizer folder)
#   tokens/<same path as the split>.bin + .json  flat token streams
DATA = f"{RESULTS}/data"
TOKENIZER = f"{RESULTS}/tokenizer/tokenizer.json"
TOKENS = f"{RESULTS}/tokens"
# Validation sets with a source of their own live apart from the training datasets.
VALSET_SPLIT = "valsets/{valset}/validation"
# A dataset with `shards` > 1 is cut into shards, one corpus job and one token stream each:
#   data/{dataset}/shards/{shard}/{train,validation}.jsonl   shard {shard} ("00003-of-00016")
#   data/{dataset}/validation.jsonl + manifest.json          the shards' validation splits, joined
#   tokens/{dataset}/shards/{shard}/train.bin + .json        a shard's train stream
#   tokens/{dataset}/train.index.json                        the shards' streams, read by training as one
SHARD_DIR = f"{DATA}/{{dataset}}/shards/{{shard}}"
SHARD_TOKENS = f"{TOKENS}/{{dataset}}/shards/{{shard}}/train"


wildcard_constraints:
    dataset=r"[^/]+",
    size=r"[^/]+",
    mult=r"[0-9]+(\.[0-9]+)?",
    replica=r"(_seed[0-9]+)?",
    valset=r"[^/]+",
    t=r"[0-9]+(\.[0-9]+)?",
    taskset=r"t[0-9]+(\.[0-9]+)?|all",
    tag=r"t[0-9]+(\.[0-9]+)?|loss",
    shard=r"[0-9]+-of-[0-9]+",


def dataset_names(sharded):
    """A wildcard constraint matching the datasets cut into shards (or those that are not); none: nothing."""
    names = [name for name in config["datasets"] if (config["datasets"][name]["shards"] > 1) == sharded]
    return "|".join(re.escape(name) for name in names) or "(?!)"


def trains_models():
    """A study trains its own testbed unless it imports a published one."""
    return config["testbed_format"] == "trained"


def training_runs():
    return study_config.training_runs(config) if trains_models() else []


def expand_runs(pattern, **extra):
    """`pattern` filled in for every run of the grid."""
    return [
        pattern.format(
            dataset=run.dataset,
            size=run.size,
            mult=study_config.format_multiplier(run.multiplier),
            replica=study_config.replicate_suffix(run.replicate_seed),
            **extra,
        )
        for run in training_runs()
    ]


def shard_paths(pattern, dataset):
    """`pattern` filled in for every shard of `dataset`, in order."""
    return [pattern.format(dataset=dataset, shard=shard) for shard in study_config.shard_names(config, dataset)]


# ---- the study's targets (rule all, in the Snakefile)


def all_targets(wildcards):
    """The laws, backtests, predictions and figures of every dataset and validation set.

    A `tables` testbed without tasks.csv is a loss-only study: its loss law, loss predictions and
    loss figures are made; the selection, the error laws and the error figures are not.
    """
    has_tasks = study_config.has_tasks(config)
    if not has_tasks:
        logger.info(
            f"loss-only study: {config['testbed_path']} has no tasks.csv, so the task selection, the error laws "
            "and the error figures are skipped; the loss law, loss predictions and loss figures are made"
        )
    tag = study_tag(has_tasks)
    return [*analysis_targets(tag, has_tasks), *figure_targets(tag, has_tasks), *per_task_targets(tag, has_tasks)]


def study_tag(has_tasks):
    """What the predictions chain: t{t} (the error laws over the tasks kept at t) or `loss`."""
    return f"t{study_config.format_multiplier(config['threshold'])}" if has_tasks else "loss"


def analysis_targets(tag, has_tasks):
    targets = [f"{RESULTS}/laws/tasks_{tag}.json"] if has_tasks else []
    for dataset in config["datasets"]:
        for valset in config["valsets"]:
            laws = f"{RESULTS}/laws/{dataset}/{valset}"
            targets += [f"{laws}/loss_law.json"]
            if has_tasks:
                targets += [f"{laws}/error_law_{tag}.json", f"{laws}/error_law_all.json"]
            targets += [
                f"{RESULTS}/backtest/{dataset}/{valset}_{tag}.csv",
                f"{RESULTS}/predictions/{dataset}/{valset}_{tag}.csv",
                f"{RESULTS}/predictions/{dataset}/{valset}_{tag}_calibration.json",
            ]
    return targets


def figure_targets(tag, has_tasks):
    names = ["loss_heatmap", "loss_vs_compute", f"backtest_{tag}", f"calibration_{tag}"]
    if has_tasks:
        names += [f"error_heatmap_{tag}", f"error_vs_loss_{tag}"]
    names += ["isoflop"]  # the loss law's alone (issue #25)
    return [
        f"{RESULTS}/figures/{dataset}/{valset}/{name}.{ext}"
        for dataset in config["datasets"]
        for valset in config["valsets"]
        for name in names
        for ext in config["figures"]["formats"]
    ]


def per_task_targets(tag, has_tasks):
    """Each task's predictions, their summary and figure, for a study with tasks."""
    if not has_tasks:
        return []
    return [
        path
        for dataset in config["datasets"]
        for valset in config["valsets"]
        for path in [
            f"{RESULTS}/per_task/{dataset}/{valset}_{tag}.csv",
            f"{RESULTS}/per_task/{dataset}/{valset}_{tag}.json",
            *[f"{RESULTS}/figures/{dataset}/{valset}/per_task_{tag}.{ext}" for ext in config["figures"]["formats"]],
        ]
    ]


# ---- laws.smk


def chained_inputs(wildcards):
    """What a backtest or a prediction chains: the loss law, and the error laws with the tasks table
    unless {tag} is `loss` (a loss-only study), where they are empty and the command reads them as absent."""
    chains_errors = wildcards.tag != "loss"
    return {
        "loss": LOSS_TABLE,
        "loss_law": f"{LAWS}/loss_law.json",
        "tasks": TASK_TABLE if chains_errors else [],
        "error_law": f"{LAWS}/error_law_{wildcards.tag}.json" if chains_errors else [],
        "error_law_all": f"{LAWS}/error_law_all.json" if chains_errors else [],
    }


# ---- figures.smk


def figure_files(name, caption):
    """The figure in every configured format; the PNG goes into the report with its caption
    (workflow/report/<caption>), under the caption's name (error_heatmap.rst: error_heatmap)."""
    plain = caption.removesuffix(".rst")
    files = []
    for ext in config["figures"]["formats"]:
        path = f"{RESULTS}/figures/{{dataset}}/{{valset}}/{name}.{ext}"
        if ext == "png":
            path = report(
                path,
                caption=f"../report/{caption}",
                category="{dataset}",
                subcategory="{valset}",
                labels={"figure": plain, "dataset": "{dataset}", "valset": "{valset}"},
            )
        files.append(path)
    return files


def figure_job(kind):
    """The params' job of a figure of `kind`, for the dataset and valset of the wildcards."""
    return lambda wildcards: jobs.FigureJob.from_config(config, kind, wildcards.dataset, wildcards.valset).to_json()


def figure_inputs(kind, inputs):
    """A figure rule's inputs ({name: file}), checked against what `lmscale figure` reads for its
    kind, in that order (lmscale.jobs.FIGURE_INPUTS): the command takes them by position."""
    if tuple(inputs) != jobs.FIGURE_INPUTS[kind]:
        raise ValueError(f"figures.smk: a {kind} figure reads {jobs.FIGURE_INPUTS[kind]}, its rule names {tuple(inputs)}")
    return inputs


# ---- data.smk


def tokenizer_training_split(wildcards):
    """The train split a BPE tokenizer learns from (a sharded dataset's in order); none for a pretrained tokenizer."""
    if config["tokenizer"]["kind"] != "bpe":
        return []
    dataset = config["tokenizer"]["dataset"] or next(iter(config["datasets"]))
    if config["datasets"][dataset]["shards"] > 1:
        return shard_paths(f"{SHARD_DIR}/train.jsonl", dataset)
    return f"{DATA}/{dataset}/train.jsonl"


# ---- tasks.smk


def local_tasks():
    """The tasks whose data this study generates: the offline suite, or the table's own YAMLs."""
    return task_list.tasks_to_generate(tasks_config())


def heldout_split(wildcards):
    """The held-out text the text tasks are cut from, if the suite has any."""
    if not any(name in offline_tasks.TEXT_TASKS for name in local_tasks()):
        return []
    dataset = tasks_config()["heldout_dataset"] or next(iter(config["datasets"]))
    return f"{DATA}/{dataset}/validation.jsonl"


# ---- what the offline jobs read from the Hugging Face Hub (data.smk's prefetch and tokenizer,
# tasks.smk's eval_tasks)
# The prefetch job (a localrule: where Snakemake runs, with the network) fills the cache with the
# datasets of the lm-eval tasks and a pretrained tokenizer named by its hub id; its manifest is an
# input of the jobs that read them, so that none starts before its data is there. It is
# ancient(): fetching again (another revision, a moved cache) reruns no evaluation.
PREFETCH_MANIFEST = f"{RESULTS}/prefetch/manifest.json"


def repository_path(path):
    """A relative path as given if it exists there, else inside the repository (--directory runs)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_repository = os.path.join(workflow.basedir, path)
    return in_repository if os.path.exists(in_repository) else path


def tasks_config():
    """The config's `tasks` section, its table found from any working directory."""
    section = config["tasks"]
    return section | {"table": repository_path(section["table"])}


def task_selection():
    """The part of the `tasks` section that decides which tasks run."""
    section = tasks_config()
    keys = ["suite", "include", "exclude"] + (["table"] if section["suite"] == "llm_foundry_46" else [])
    return {key: section[key] for key in keys}


def task_table(wildcards):
    """The task table of the llm_foundry_46 suite, which the prefetch and eval_tasks jobs read."""
    section = tasks_config()
    return section["table"] if section["suite"] == "llm_foundry_46" else []


def hub_tokenizer():
    """The hub id of a pretrained tokenizer; None for a BPE of the study's own or a local folder."""
    section = config["tokenizer"]
    if section["kind"] != "pretrained" or not section["name"] or os.path.isdir(repository_path(section["name"])):
        return None
    return section["name"]


def lm_eval_task_selection():
    """The choice of tasks whose lm-eval datasets are fetched; None for the offline suite (its data are generated)."""
    return task_selection() if tasks_config()["suite"] == "llm_foundry_46" else None


def prefetched(reads_hub):
    """An input function: the prefetch manifest for a job that reads what it fetched (`reads_hub()`
    names something), else nothing."""
    return lambda wildcards: ancient(PREFETCH_MANIFEST) if reads_hub() is not None else []


# ---- what training reads (train.smk)


def train_tokens(wildcards):
    """What training reads: the train split's token stream, or the index of its shards' streams."""
    if config["datasets"][wildcards.dataset]["shards"] > 1:
        return f"{TOKENS}/{wildcards.dataset}/train.index.json"
    return f"{TOKENS}/{wildcards.dataset}/train.bin"


def train_token_shards(wildcards):
    """The shards' streams an index names (none for a dataset in one piece): training reads them too."""
    if config["datasets"][wildcards.dataset]["shards"] > 1:
        return shard_paths(f"{SHARD_TOKENS}.bin", wildcards.dataset)
    return []


# ---- training (train.smk): a run of the grid, or under train.schedule wsd a trunk and its branches

CHECKPOINTS = f"{RESULTS}/checkpoints/{{dataset}}/{RUN}"
TRAIN = config["train"]


def train_resources(part):
    """The GPUs, host memory (MB) and wall time (minutes) of a training job that trains `part` of its
    run (lmscale.jobs.resources: from the shape and the tokens, times the attempt)."""
    return dict(
        # GPUs: the size's own `gpus`, else the `train` block's (0: a CPU job). The command
        # runs itself under torchrun, one process per GPU it was granted.
        gpu=lambda w: study_config.size_settings(config, w.size)["gpus"],
        mem_mb=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt, part)["mem_mb"],
        runtime=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt, part)["runtime"],
    )


# A trunk's folder (its log, checkpoints and states/): no declared output, so no rerun deletes it.
# Its record is named for the largest M it was trained for ({mult}).
TRUNK_DIR = f"{RESULTS}/trunks/{{dataset}}/{{size}}{{replica}}"
TRUNK_RECORD = f"{RESULTS}/trunks/{{dataset}}/{RUN}.json"
TRUNKS = {(t.dataset, t.size, t.replicate_seed): t for t in study_config.trunks(config)} if trains_models() else {}


def trunk_of(w):
    return TRUNKS[(w.dataset, w.size, study_config.replicate_seed_of(w.replica))]


def trunk_record(w):
    """The record of the trunk job a branch waits for: the first finished one that reached its M,
    else the trunk of the size's largest M."""
    trunk = trunk_of(w)
    top = study_config.trunk_to_wait_for(
        study_config.finished_trunks(f"{RESULTS}/trunks/{w.dataset}", w.size, trunk.replicate_seed),
        float(w.mult), trunk.top)
    return TRUNK_RECORD.format(dataset=w.dataset, size=w.size, mult=study_config.format_multiplier(top),
                               replica=w.replica)


WSD = TRAIN["schedule"] == "wsd"
# The run's rule (and command), its job description and the part of the run it trains (lmscale.jobs.resources).
RUN_RULE, RUN_JOB, RUN_PART = ("branch", jobs.BranchJob, "cooldown") if WSD else ("train", jobs.TrainJob, "run")


def trunk_folder(w):
    """A branch's `--trunk-dir`: its trunk's folder, whose states it continues; a cosine run has none."""
    return ["--trunk-dir", TRUNK_DIR.format(dataset=w.dataset, size=w.size, replica=w.replica)] if WSD else []


# ---- plan.smk

PLAN = f"{RESULTS}/plan"


def plan_inputs(wildcards):
    """What the plan reads: the study's loss law and its backtest's summary and table, unless plan.prior gives
    a law (the plan then waits for no trained model); the loss table when it chooses among the
    testbed's runs or the study imports one (a target's N); the train split's token summary when
    it prices the grid of a study that trains (a run the split cannot feed is no candidate)."""
    job = jobs.PlanJob.from_config(config)
    tag = study_tag(study_config.has_tasks(config))
    own_law = job.prior.law is None
    grid = job.candidates.source == "grid" and trains_models()
    tokens = re.sub(r"\.bin$", ".json", train_tokens(types.SimpleNamespace(dataset=job.dataset))) if grid else []
    return {
        "loss": LOSS_TABLE if job.candidates.source == "testbed" or not trains_models() else [],
        "loss_law": f"{RESULTS}/laws/{job.dataset}/{job.valset}/loss_law.json" if own_law else [],
        "summary": f"{RESULTS}/backtest/{job.dataset}/{job.valset}_{tag}.json" if own_law else [],
        "backtest": f"{RESULTS}/backtest/{job.dataset}/{job.valset}_{tag}.csv" if own_law else [],
        "tokens": tokens,
    }


def plan_figure_files():
    """The plan's figure in every configured format; the PNG goes into the report."""
    files = []
    for ext in config["figures"]["formats"]:
        path = f"{PLAN}/plan.{ext}"
        files.append(report(path, caption="../report/plan.rst", category="plan") if ext == "png" else path)
    return files
