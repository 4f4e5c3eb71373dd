"""Downstream accuracy of one model through lm-eval, fully offline.

One model, many tasks: the checkpoint is loaded once into lm-eval's `hf`
backend and the tasks run through `lm_eval.simple_evaluate`, one call per
shot count. A call that fails is repeated task by task, so a task that fails
(a dataset missing from the cache, a metric it lacks) is recorded under
`failed` and the other tasks keep their results.

Two suites, chosen by the config's `tasks.suite` (`lmscale.evaluation.task_list` reads the choice):
- `offline` (the embedded default): the generated local suite
  (`lmscale.evaluation.offline_tasks`), every task of its manifest;
- `llm_foundry_46`: the paper's 46 LLM-Foundry tasks through the table
  `configs/tasks/llm_foundry_46.csv`, which maps each to an lm-eval task with
  the paper's shots and random baseline (their datasets are read from the
  Hugging Face cache that the prefetch stage filled, `--options`' hf_cache:
  nothing is downloaded here).

The output (TASK_EVAL in workflow/rules/common.smk) holds, per task, top-1
accuracy, its standard error, the random baseline as a fraction, the shots and
lm-eval's kind of task, so the testbed table needs nothing else.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lmscale import jobs
from lmscale.config import run_name
from lmscale.evaluation.task_list import TaskSpec, check_registered, task_specs
from lmscale.io import hub
from lmscale.io.files import atomic_write_json, folder_of
from lmscale.jobs import EvalTasksJob, EvalTasksOptions

log = logging.getLogger(__name__)

# The metric that counts as top-1 accuracy, in order of preference: lm-eval
# names it `acc` for likelihood tasks and `exact_match` for generated answers.
ACCURACY_METRICS = ("acc", "exact_match", "em", "contains")


# ---------------------------------------------------------------- lm-eval


def task_manager(suite_dir: str | Path | None, with_builtin_tasks: bool):
    """lm-eval's task registry: our generated suite, plus lm-eval's own tasks if needed.

    Indexing lm-eval's ~15,000 built-in YAML files takes about 20 s, so the
    offline suite leaves them out.
    """
    # deferred: lm-eval imports torch and transformers
    from lm_eval.tasks import TaskManager

    include_path = [str(suite_dir)] if suite_dir is not None and Path(suite_dir).exists() else None
    return TaskManager(include_path=include_path, include_defaults=with_builtin_tasks)


def local_task_config(suite_dir: Path, name: str, cache_dir: str) -> dict | None:
    """A generated task's YAML as a dict, its data files made absolute.

    The YAML names its JSONL relative to its own folder, so a results folder
    can move; `datasets` would read relative paths against the working directory.
    """
    path = Path(suite_dir) / f"{name}.yaml"
    if not path.exists():
        return None
    config = yaml.safe_load(path.read_text())
    kwargs = dict(config.get("dataset_kwargs") or {})
    kwargs["data_files"] = {
        split: str((path.parent / file).resolve()) for split, file in kwargs["data_files"].items()
    }
    # A private cache: two models evaluated at once never share a half-written Arrow file.
    kwargs["cache_dir"] = cache_dir
    config["dataset_kwargs"] = kwargs
    return config


def accuracy_of(task_results: dict) -> tuple[str, float, float]:
    """(metric, value, stderr) of the accuracy metric lm-eval reported for a task."""
    for metric in ACCURACY_METRICS:
        for key, value in task_results.items():
            name, _, _filter = key.partition(",")
            if name == metric and isinstance(value, (int, float)):
                stderr = task_results.get(f"{metric}_stderr,{_filter}")
                stderr = float(stderr) if isinstance(stderr, (int, float)) else float("nan")
                return metric, float(value), stderr
    raise ValueError(
        f"no accuracy metric ({', '.join(ACCURACY_METRICS)}) among lm-eval's results: {sorted(task_results)}"
    )


def run_details(output: dict, spec: TaskSpec) -> dict:
    """Shots, kind and number of documents lm-eval actually used for one task.

    A group such as mmlu reports these per subtask only; they share shots and kind.
    """
    name = spec.lm_eval_task
    members = [name] if name in output.get("configs", {}) else output.get("group_subtasks", {}).get(name, [])
    configs = [output["configs"][member] for member in members if member in output.get("configs", {})]
    samples = output.get("n-samples", {})
    num_docs = sum(samples.get(member, {}).get("effective", 0) for member in members)
    num_fewshot = configs[0].get("num_fewshot") if configs else None
    return {
        "num_fewshot": int(spec.num_fewshot if num_fewshot is None else num_fewshot),
        "kind": (configs[0].get("output_type") if configs else None) or spec.kind,
        "num_docs": int(num_docs),
    }


def load_model(model_dir: str | Path, batch_size: int, device: str):
    """The checkpoint in lm-eval's `hf` backend, from its folder only; its log-likelihood requests
    tokenized and scored a batch at a time (lmscale.evaluation.lm_eval_model)."""
    # deferred: lmscale.evaluation.lm_eval_model imports torch and lm-eval at its top
    from lmscale.evaluation.lm_eval_model import BatchedHFLM

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face checkpoint (no config.json); train it first")
    return BatchedHFLM(
        pretrained=str(model_dir),
        tokenizer=str(model_dir),
        device=device,
        dtype="float32",
        batch_size=batch_size,
        # The one-token cache shares a forward pass between requests whose text coincides but
        # the last token, and then reads a shorter continuation's log-likelihood at the longer
        # one's leading positions (lm-eval 0.4.13): tasks cut from the same lines changed each
        # other's accuracy (test_a_task_scores_the_same_beside_tasks_that_share_its_text).
        logits_cache=False,
    )


def batches(specs: list[TaskSpec]) -> list[list[TaskSpec]]:
    """Specs grouped for one `simple_evaluate` call each: the same shots, no name twice.

    Each call costs seconds of lm-eval's own bookkeeping (it probes the
    environment with `pip list`), so the tasks share calls wherever they can.
    """
    groups: list[list[TaskSpec]] = []
    for spec in specs:
        for group in groups:
            if group[0].num_fewshot == spec.num_fewshot and all(
                other.lm_eval_task != spec.lm_eval_task for other in group
            ):
                group.append(spec)
                break
        else:
            groups.append([spec])
    return groups


@contextmanager
def without_environment_report():
    """`simple_evaluate` without its report of the environment (collect_env, `pip list`: ~1 s a
    call, twice per model here), which evaluate_model does not keep."""
    # deferred: lm-eval imports torch and transformers
    import lm_eval.evaluator

    report = lm_eval.evaluator.add_env_info
    lm_eval.evaluator.add_env_info = lambda results: None
    try:
        yield
    finally:
        lm_eval.evaluator.add_env_info = report


class TruncationCounter(logging.Filter):
    """Counts, and keeps out of the log, lm-eval's warning per request cut to fit the context:
    on a 128-token model it is one line per request, thousands per model."""

    MARK = "exceeds model's maximum length"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.MARK in record.getMessage():
            self.count += 1
            return False
        return True


def evaluate_model(
    model_dir: str | Path,
    specs: list[TaskSpec],
    batch_size: int,
    device: str,
    suite_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int = 1234,
) -> dict:
    """Accuracy and standard error of one model on every task of `specs`.

    Returns {"tasks": {name: {...}}, "failed": {name: message}}. A call that
    fails is repeated task by task, so one broken task loses only itself.
    """
    hub.set_offline()
    needs_builtin = any(
        suite_dir is None or not (Path(suite_dir) / f"{spec.lm_eval_task}.yaml").exists() for spec in specs
    )
    manager = task_manager(suite_dir, with_builtin_tasks=needs_builtin)
    check_registered(specs, manager.all_tasks)
    evaluation = Evaluation(load_model(model_dir, batch_size, device), manager, suite_dir, limit, seed)
    truncated = TruncationCounter()
    hf_log = logging.getLogger("lm_eval.models.huggingface")
    hf_log.addFilter(truncated)
    try:
        with tempfile.TemporaryDirectory(prefix="lmscale-datasets-") as cache_dir, without_environment_report():
            for batch in batches(specs):
                if not evaluation.attempt(batch, cache_dir) and len(batch) > 1:
                    for spec in batch:
                        evaluation.attempt([spec], cache_dir)
    finally:
        hf_log.removeFilter(truncated)
    truncated.count += getattr(evaluation.lm, "truncated", 0)
    if truncated.count:
        log.info("%d requests were longer than the model's context and lost their leftmost tokens "
                 "(lm-eval truncates from the left)", truncated.count)
    order = [spec.name for spec in specs]
    return {
        "tasks": {name: evaluation.results[name] for name in order if name in evaluation.results},
        "failed": {name: evaluation.failed[name] for name in order if name in evaluation.failed},
    }


@dataclass
class Evaluation:
    """One model's simple_evaluate calls and what they found, task by task."""

    lm: object
    manager: object
    suite_dir: str | Path | None
    limit: int | None
    seed: int
    results: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    def run(self, batch: list[TaskSpec], cache_dir: str) -> None:
        """One simple_evaluate call; raises if lm-eval does."""
        # deferred: lm-eval imports torch and transformers
        from lm_eval import simple_evaluate

        suite_dir, seed = self.suite_dir, self.seed
        local = {spec.name: local_task_config(suite_dir, spec.lm_eval_task, cache_dir) if suite_dir else None
                 for spec in batch}
        output = simple_evaluate(
            model=self.lm,
            tasks=[local[spec.name] or spec.lm_eval_task for spec in batch],
            num_fewshot=batch[0].num_fewshot,
            task_manager=self.manager,
            limit=self.limit,
            bootstrap_iters=1000,
            log_samples=False,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
        for spec in batch:
            try:
                metric, value, stderr = accuracy_of(output["results"][spec.lm_eval_task])
            except (KeyError, ValueError) as error:
                self.failed[spec.name] = f"{type(error).__name__}: {error}"
                log.error("task %s: %s", spec.name, self.failed[spec.name])
                continue
            self.results[spec.name] = {
                "acc": value,
                "acc_stderr": stderr,
                "random_baseline": spec.random_baseline,
                **run_details(output, spec),
                "metric": metric,
                "lm_eval_task": spec.lm_eval_task,
            }
            log.info("%s: %s = %.4f +- %.4f", spec.name, metric, value, stderr)

    def attempt(self, batch: list[TaskSpec], cache_dir: str) -> bool:
        try:
            self.run(batch, cache_dir)
            return True
        except Exception as error:  # noqa: BLE001 (one task's failure must not lose the others)
            if len(batch) == 1:
                log.exception("task %s failed", batch[0].name)
                self.failed[batch[0].name] = f"{type(error).__name__}: {error}"
            else:
                names = ", ".join(spec.name for spec in batch)
                log.warning("lm-eval failed on one of %s; evaluating them one by one", names, exc_info=True)
            return False


# ---------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    jobs.add_argument(parser, EvalTasksJob)
    jobs.add_argument(parser, EvalTasksOptions, "--options")
    parser.add_argument("--model", required=True, metavar="RUN_JSON",
                        help="the model's run.json (`lmscale train`), beside its Hugging Face checkpoint")
    parser.add_argument("--suite", default=None, help="folder of the generated local tasks (lmscale task-suite)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def model_name(model_dir: str | Path, size: str, multiplier: float) -> str:
    """The run's name from its run.json (a replicate's carries its seed), else '{size}_M{mult}'."""
    run_json = Path(model_dir) / "run.json"
    return json.loads(run_json.read_text())["model"] if run_json.exists() else run_name(size, multiplier)


def main(args) -> int:
    hub.use_cache(args.options.hf_cache)  # where the prefetch job put lm-eval's datasets
    job = args.job
    tasks_config = job.tasks
    specs = task_specs(tasks_config, args.suite)
    if not specs:
        raise ValueError("no tasks to evaluate: tasks.include/tasks.exclude leave none")
    if args.threads:
        # deferred: torch takes seconds to import
        import torch

        torch.set_num_threads(args.threads)
    model_dir = folder_of([args.model], ["run.json"])
    started = time.perf_counter()
    evaluation = evaluate_model(
        model_dir,
        specs,
        suite_dir=args.suite,
        batch_size=job.batch_size,
        device=args.options.device,
        limit=job.limit,
    )
    record = {
        "model": model_name(model_dir, job.size, job.multiplier),
        "dataset": job.dataset,
        "size": job.size,
        "M": job.multiplier,
        "suite": tasks_config["suite"],
        **evaluation,
        "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(args.out, record)
    log.info(
        "%d tasks evaluated, %d failed, in %.1f s -> %s",
        len(record["tasks"]),
        len(record["failed"]),
        record["seconds"],
        args.out,
    )
    return 0
