# Paths, wildcard constraints and the small input functions the rules share.
# Each rule's `job` param is its stage's description (lmscale.jobs), built from the config
# and the wildcards by that description's `from_config`.
import os
import re

from snakemake.logging import logger

from lmscale import config as study_config
from lmscale import task_list
from lmscale import jobs
from lmscale import task_suite as offline_task_suite
from lmscale import resources as job_resources

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


# A `tables` testbed without tasks.csv is a loss-only study: its loss law, loss predictions
# and loss figures are made; the selection, the error laws and the error figures are not.
HAS_TASKS = study_config.has_tasks(config)
if not HAS_TASKS:
    logger.info(
        f"loss-only study: {config['testbed_path']} has no tasks.csv, so the task selection, the error laws "
        "and the error figures are skipped; the loss law, loss predictions and loss figures are made"
    )


def threshold_tag():
    return f"t{study_config.format_multiplier(config['threshold'])}"


def analysis_tag():
    """What a study's predictions chain: t{t} (the error laws over the tasks kept at t) or `loss`."""
    return threshold_tag() if HAS_TASKS else "loss"


def analysis_datasets():
    return list(config["datasets"])


def analysis_targets():
    tag = analysis_tag()
    targets = [f"{RESULTS}/laws/tasks_{tag}.json"] if HAS_TASKS else []
    for dataset in analysis_datasets():
        for valset in config["valsets"]:
            laws = f"{RESULTS}/laws/{dataset}/{valset}"
            targets += [f"{laws}/loss_law.json"]
            if HAS_TASKS:
                targets += [f"{laws}/error_law_{tag}.json", f"{laws}/error_law_all.json"]
            targets += [
                f"{RESULTS}/backtest/{dataset}/{valset}_{tag}.csv",
                f"{RESULTS}/predictions/{dataset}/{valset}_{tag}.csv",
                f"{RESULTS}/predictions/{dataset}/{valset}_{tag}_calibration.json",
            ]
    return targets


def all_targets():
    return [*analysis_targets(), *figure_targets()]


# ---- laws ----

LAWS = f"{RESULTS}/laws/{{dataset}}/{{valset}}"
BACKTEST = f"{RESULTS}/backtest/{{dataset}}/{{valset}}_{{tag}}"
PREDICTIONS = f"{RESULTS}/predictions/{{dataset}}/{{valset}}_{{tag}}"


def chained_inputs(wildcards):
    """What a backtest or a prediction chains: the loss law, and the error laws unless loss only."""
    inputs = {"loss": LOSS_TABLE, "loss_law": f"{LAWS}/loss_law.json"}
    if wildcards.tag != "loss":
        inputs |= {"tasks": TASK_TABLE, "error_law": f"{LAWS}/error_law_{wildcards.tag}.json",
                   "error_law_all": f"{LAWS}/error_law_all.json"}
    return inputs


def error_law_flags(wildcards, input):
    """The command's flags for the inputs `chained_inputs` adds for the error laws."""
    if wildcards.tag == "loss":
        return []
    return ["--tasks-table", input.tasks, "--error-law", input.error_law, "--error-law-all", input.error_law_all]


def error_fit_tasks(wildcards):
    """The selection file for a threshold task set; nothing for the all-task average."""
    if wildcards.taskset == "all":
        return []
    return f"{RESULTS}/laws/tasks_{wildcards.taskset}.json"


# ---- figures ----

FIGURE_DIR = f"{RESULTS}/figures/{{dataset}}/{{valset}}"


def figure_job(kind):
    return lambda w: jobs.FigureJob.from_config(config, kind, w.dataset, w.valset).to_json()


def figure_name(name):
    """A figure's name without its threshold or tag: error_heatmap_t{t} -> error_heatmap."""
    return name.split("_t{t}")[0].split("_{tag}")[0]


def figure_files(name):
    """The figure in every configured format; the PNG goes into the report."""
    files = []
    for ext in config["figures"]["formats"]:
        path = f"{FIGURE_DIR}/{name}.{ext}"
        if ext == "png":
            path = report(
                path,
                caption=f"../report/{figure_name(name)}.rst",
                category="{dataset}",
                subcategory="{valset}",
                labels={"figure": figure_name(name), "dataset": "{dataset}", "valset": "{valset}"},
            )
        files.append(path)
    return files


def figure_targets():
    tag = analysis_tag()
    names = ["loss_heatmap", "loss_vs_compute", f"backtest_{tag}", f"calibration_{tag}"]
    if HAS_TASKS:
        names += [f"error_heatmap_{tag}", f"error_vs_loss_{tag}"]
    return [
        f"{RESULTS}/figures/{dataset}/{valset}/{name}.{ext}"
        for dataset in analysis_datasets()
        for valset in config["valsets"]
        for name in names
        for ext in config["figures"]["formats"]
    ]


# ---- data: corpus splits, tokenizer, token streams ----
#   data/{dataset}/{train,validation}.jsonl      a training dataset's splits
#   data/valsets/{valset}/validation.jsonl       a validation set with a source of its own
#   tokenizer/tokenizer.json                     (Hugging Face tokenizer folder)
#   tokens/<same path as the split>.bin + .json  flat token streams

DATA = f"{RESULTS}/data"
TOKENIZER_DIR = f"{RESULTS}/tokenizer"
TOKENIZER = f"{TOKENIZER_DIR}/tokenizer.json"
TOKENS = f"{RESULTS}/tokens"
# Validation sets with a source of their own live apart from the training datasets.
VALSET_SPLIT = "valsets/{valset}/validation"

# Data jobs are short and everything waits on them: run them before any training job.
DATA_PRIORITY = 50

def valset_stream(valset):
    """The token stream of a validation set, relative to TOKENS: a dataset's held-out split or its own."""
    entry = config["validation_sets"][valset]
    if entry.get("dataset"):  # a dataset under `datasets` (checks.check_study)
        return f"{entry['dataset']}/validation"
    return VALSET_SPLIT.format(valset=valset)


# A dataset with `shards` > 1 is cut into shards, one corpus job and one token stream each:
#   data/{dataset}/shards/{shard}/{train,validation}.jsonl   shard {shard} ("00003-of-00016")
#   data/{dataset}/validation.jsonl + manifest.json          the shards' validation splits, joined
#   tokens/{dataset}/shards/{shard}/train.bin + .json        a shard's train stream
#   tokens/{dataset}/train.index.json                        the shards' streams, read by training as one
SHARD_DIR = f"{DATA}/{{dataset}}/shards/{{shard}}"
SHARD_TOKENS = f"{TOKENS}/{{dataset}}/shards/{{shard}}/train"


def dataset_names(sharded):
    """A wildcard constraint matching the datasets cut into shards (or those that are not); none: nothing."""
    names = [name for name in config["datasets"] if (config["datasets"][name]["shards"] > 1) == sharded]
    return "|".join(re.escape(name) for name in names) or "(?!)"


def shard_paths(pattern, dataset):
    """`pattern` filled in for every shard of `dataset`, in order."""
    return [pattern.format(dataset=dataset, shard=shard) for shard in study_config.shard_names(config, dataset)]


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


def tokenizer_training_split():
    """The train split a BPE tokenizer learns from (a sharded dataset's in order); none for a pretrained tokenizer."""
    if config["tokenizer"]["kind"] != "bpe":
        return []
    dataset = config["tokenizer"]["dataset"] or analysis_datasets()[0]
    if config["datasets"][dataset]["shards"] > 1:
        return shard_paths(f"{SHARD_DIR}/train.jsonl", dataset)
    return f"{DATA}/{dataset}/train.jsonl"


# ---- validation loss ----

# Sorted: the eval_loss job lists them in this order, and a config written with its keys in
# another order is the same study.
VALIDATION_SETS = sorted(config["validation_sets"])


# ---- downstream tasks ----

TASK_SUITE = f"{RESULTS}/tasks/suite"


def tasks_config():
    """The config's `tasks` section, its table found from any working directory."""
    section = config["tasks"]
    return section | {"table": repository_path(section["table"])}


def repository_path(path):
    """A relative path as given if it exists there, else inside the repository (--directory runs)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_repository = os.path.join(workflow.basedir, path)
    return in_repository if os.path.exists(in_repository) else path


def local_tasks():
    """The tasks whose data this study generates: the offline suite, or the table's own YAMLs."""
    return task_list.tasks_to_generate(tasks_config())


def shortest_context():
    """The shortest context among the trained models: every task answer must fit in it."""
    return min(config["sizes"][size]["context"] for size in {run.size for run in training_runs()})


def heldout_split():
    """The held-out text the text tasks are cut from, if the suite has any."""
    if not any(name in offline_task_suite.TEXT_TASKS for name in local_tasks()):
        return []
    dataset = tasks_config()["heldout_dataset"] or analysis_datasets()[0]
    return f"{DATA}/{dataset}/validation.jsonl"


def task_table_input():
    section = tasks_config()
    return section["table"] if section["suite"] == "llm_foundry_46" else []


def task_selection():
    """The part of the `tasks` section that decides which tasks run."""
    section = tasks_config()
    keys = ["suite", "include", "exclude"] + (["table"] if section["suite"] == "llm_foundry_46" else [])
    return {key: section[key] for key in keys}


# ---- what the offline jobs read from the Hugging Face Hub ----
# The prefetch job (a localrule: where Snakemake runs, with the network) fills the cache with the
# datasets of the lm-eval tasks and a pretrained tokenizer named by its hub id; its manifest is an
# input of the jobs that read them, so that none starts before its data is there. It is
# ancient(): fetching again (another revision, a moved cache) reruns no evaluation.
PREFETCH_MANIFEST = f"{RESULTS}/prefetch/manifest.json"


def hub_tokenizer():
    """The hub id of a pretrained tokenizer; None for a BPE of the study's own or a local folder."""
    section = config["tokenizer"]
    if section["kind"] != "pretrained" or not section["name"] or os.path.isdir(repository_path(section["name"])):
        return None
    return section["name"]


def lm_eval_task_selection():
    """The choice of tasks whose lm-eval datasets are fetched; None for the offline suite (its data are generated)."""
    return task_selection() if tasks_config()["suite"] == "llm_foundry_46" else None


PREFETCH = jobs.PrefetchJob.from_config(config, lm_eval_task_selection(), hub_tokenizer()) if trains_models() else None


def prefetched(needed):
    """The prefetch manifest as an input of a job that reads what it fetched, if it does."""
    return ancient(PREFETCH_MANIFEST) if PREFETCH is not None and needed else []


# ---- training (train.smk): a run of the grid, or under train.schedule wsd a trunk and its branches

CHECKPOINTS = f"{RESULTS}/checkpoints/{{dataset}}/{RUN}"
TRAIN = config["train"]


def train_resources(part):
    """The GPUs, host memory (MB) and wall time (minutes) of a training job that trains `part` of its
    run (lmscale.resources: from the shape and the tokens, times the attempt)."""
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
