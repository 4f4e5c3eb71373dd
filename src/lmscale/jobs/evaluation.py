"""The evaluation jobs: validation loss, the offline task suite, downstream tasks."""

from __future__ import annotations

from dataclasses import dataclass

from lmscale.jobs.base import Job, Options


@dataclass(frozen=True)
class Valset:
    """A validation set of a loss evaluation."""

    name: str
    tokens: int  # the first tokens of its stream, the same for every model


@dataclass(frozen=True)
class EvalLossJob(Job):
    """A model's loss on every validation set of the study, in the order of its streams."""

    valsets: list[Valset]

    @classmethod
    def from_config(cls, config: dict) -> "EvalLossJob":
        # By name, the order of the rule's streams: the order keys are written in changes nothing.
        valsets = config["validation_sets"]
        return cls([Valset(name, valsets[name]["tokens"]) for name in sorted(valsets)])


@dataclass(frozen=True)
class TaskSuiteJob(Job):
    """The offline suite's documents: which tasks, how many documents, cut how."""

    tasks: list[str]
    seed: int
    size: int  # evaluated documents per task (at most)
    fewshot_pool: int
    context_lines: int
    context: int | None  # the models' shortest context: answers take at most half of it (None: unchecked)

    @classmethod
    def from_config(cls, config: dict, tasks: list[str], context: int) -> "TaskSuiteJob":
        settings = config["tasks"]
        return cls(list(tasks), settings["seed"], settings["size"], settings["fewshot_pool"],
                   settings["context_lines"], context)


@dataclass(frozen=True)
class EvalTasksJob(Job):
    """One model's downstream accuracy: the run it names and the tasks chosen from the suite."""

    dataset: str
    size: str
    multiplier: float
    tasks: dict  # the `tasks` section's choice of tasks: suite, include, exclude (and table)
    limit: int | None
    batch_size: int

    @classmethod
    def from_config(cls, config: dict, tasks: dict, dataset: str, size: str, mult: str) -> "EvalTasksJob":
        return cls(dataset, size, float(mult), tasks, config["tasks"]["limit"], config["tasks"]["batch_size"])


@dataclass(frozen=True)
class EvalTasksOptions(Options):
    """How an evaluation is carried out, not what it measures."""

    device: str  # torch device of the evaluation
    hf_cache: str | None  # the Hugging Face cache lm-eval's datasets are read from (None: Hugging Face's default)

    @classmethod
    def from_config(cls, config: dict) -> "EvalTasksOptions":
        return cls(config["tasks"]["device"], config["hf_cache"])
