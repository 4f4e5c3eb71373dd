# Paths, wildcard constraints and the small input functions the rules share.
import json

from lmscale import config as study_config

RESULTS = f"results/{config['study']}"
LOGS = f"{RESULTS}/logs"

# One run of the grid is "{size}_M{mult}" under its dataset.
MODEL_DIR = RESULTS + "/models/{dataset}/{size}_M{mult}"
RUN_JSON = MODEL_DIR + "/run.json"
LOSS_EVAL = RESULTS + "/eval/loss/{dataset}/{size}_M{mult}/{valset}.json"
TASK_EVAL = RESULTS + "/eval/tasks/{dataset}/{size}_M{mult}.json"
LOSS_TABLE = RESULTS + "/testbed/loss.csv"
TASK_TABLE = RESULTS + "/testbed/tasks.csv"


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
    return "t" + study_config.format_multiplier(config["threshold"])


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
    return analysis_targets() + figure_targets()
