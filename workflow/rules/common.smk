# Paths, wildcard constraints and the small input functions the rules share.
import json

from lmscale import config as study_config
from lmscale import resources as job_resources

RESULTS = f"results/{config['study']}"
LOGS = f"{RESULTS}/logs"
# Every rule runs the `lmscale` command; with --software-deployment-method conda, from this environment.
ENV = "../../envs/lmscale.yaml"

# One run of the grid is "{size}_M{mult}" under its dataset.
MODEL_DIR = f"{RESULTS}/models/{{dataset}}/{{size}}_M{{mult}}"
RUN_JSON = f"{MODEL_DIR}/run.json"
LOSS_EVAL = f"{RESULTS}/eval/loss/{{dataset}}/{{size}}_M{{mult}}/{{valset}}.json"
TASK_EVAL = f"{RESULTS}/eval/tasks/{{dataset}}/{{size}}_M{{mult}}.json"
LOSS_TABLE = f"{RESULTS}/testbed/loss.csv"
TASK_TABLE = f"{RESULTS}/testbed/tasks.csv"


wildcard_constraints:
    dataset=r"[^/]+",
    size=r"[^/]+",
    mult=r"[0-9]+(\.[0-9]+)?",
    valset=r"[^/]+",
    t=r"[0-9]+(\.[0-9]+)?",
    taskset=r"t[0-9]+(\.[0-9]+)?|all",


def trains_models():
    """A study trains its own testbed unless it imports a published one."""
    return config.get("testbed_format", "trained") == "trained"


def training_runs():
    return study_config.training_runs(config) if trains_models() else []


def expand_runs(pattern, **extra):
    """`pattern` filled in for every run of the grid."""
    return [
        pattern.format(
            dataset=run.dataset,
            size=run.size,
            mult=study_config.format_multiplier(run.multiplier),
            **extra,
        )
        for run in training_runs()
    ]


def threshold_tag():
    return f"t{study_config.format_multiplier(config['threshold'])}"


def analysis_datasets():
    return list(config["datasets"])


def analysis_targets():
    t = threshold_tag()
    targets = [f"{RESULTS}/laws/tasks_{t}.json"]
    for dataset in analysis_datasets():
        for valset in config["valsets"]:
            laws = f"{RESULTS}/laws/{dataset}/{valset}"
            targets += [
                f"{laws}/loss_law.json",
                f"{laws}/error_law_{t}.json",
                f"{laws}/error_law_all.json",
                f"{RESULTS}/predictions/{dataset}/{valset}_{t}.csv",
            ]
    return targets


def all_targets():
    return [*analysis_targets(), *figure_targets()]


# ---- laws ----

# The schema's defaults are filled in by `validate`, so every key below is present.
FIT = config["fit"]
LAWS = f"{RESULTS}/laws/{{dataset}}/{{valset}}"


def error_fit_tasks(wildcards):
    """The selection file for a threshold task set; nothing for the all-task average."""
    if wildcards.taskset == "all":
        return []
    return f"{RESULTS}/laws/tasks_{wildcards.taskset}.json"


# ---- figures ----

FIGURE_SETTINGS = config["figures"]
FIGURE_DIR = f"{RESULTS}/figures/{{dataset}}/{{valset}}"


def figure_files(name):
    """The figure in every configured format; the PNG goes into the report."""
    files = []
    for ext in FIGURE_SETTINGS["formats"]:
        path = f"{FIGURE_DIR}/{name}.{ext}"
        if ext == "png":
            path = report(
                path,
                caption=f"../report/{name.split('_t{t}')[0]}.rst",
                category="{dataset}",
                subcategory="{valset}",
                labels={"figure": name.replace("_t{t}", ""), "dataset": "{dataset}", "valset": "{valset}"},
            )
        files.append(path)
    return files


def figure_targets():
    t = threshold_tag()
    names = ["loss_heatmap", "loss_vs_compute", f"error_heatmap_{t}", f"error_vs_loss_{t}"]
    return [
        f"{RESULTS}/figures/{dataset}/{valset}/{name}.{ext}"
        for dataset in analysis_datasets()
        for valset in config["valsets"]
        for name in names
        for ext in FIGURE_SETTINGS["formats"]
    ]
