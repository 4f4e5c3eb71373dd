"""The offline downstream task suite: lm-eval tasks over local JSONL.

The paper measures downstream error on 46 public tasks; a miniature study on
a laptop has no network and models too small for them. This module builds a
stand-in suite that lm-eval runs like any other: the task definitions are the
YAML files in `lmscale/tasks/`, package data (each declares its kind, shot count and random
baseline), and this module writes their data, deterministically from a seed.

Two families, so that the error law has both kinds of task the paper selects
between with its threshold t:
- text tasks, cut from the study's held-out split (Python source for the
  embedded default): next-line choice (in the manner of HellaSwag), last-token
  cloze (LAMBADA), minimal pairs of a real line against a corrupted one. Small
  models learn these, so they climb above chance as the models grow.
- symbolic tasks from procedural generators: bracket completion (BIG-bench
  Dyck languages), arithmetic (MosaicML simple arithmetic), string repetition
  (BIG-bench repeat-copy logic). These may well stay near chance.

The documents come from lmscale.evaluation.task_documents; this module puts the suite together.

Output layout of `write_suite(out_dir, ...)`:
    suite.json                 the manifest: every task's kind, baseline, shots, size
    <task>.yaml                the lm-eval definition, copied from lmscale/tasks/
    <task>/test.jsonl          the evaluated documents
    <task>/train.jsonl         the pool few-shot examples are drawn from
The YAML names its data relative to its own folder; `eval_tasks` resolves them.
"""

from __future__ import annotations

import difflib
import itertools
import json
import logging
import random
import zlib
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

import yaml

from lmscale.evaluation.task_documents import (
    CodeLine,
    Document,
    addition,
    bracket_completion,
    bracket_next,
    code_lines,
    comparison,
    last_token_cloze,
    minimal_pairs,
    mismatch_closing_bracket,
    name_choice,
    next_lexeme_cloze,
    next_line_choice,
    read_documents,
    simple_arithmetic,
    string_repetition,
    swap_adjacent_lexemes,
    swap_two_names,
)
from lmscale.io.files import atomic_copy, atomic_write_json, atomic_writer
from lmscale.jobs import TaskSuiteJob

log = logging.getLogger(__name__)

# The lm-eval definitions of the local tasks ship inside the package, so that an installed
# lmscale (not only a checkout) carries its suite, and a checkout's workflow uses its own.
TASKS_DIR = Path(str(resources.files("lmscale") / "tasks"))
MANIFEST = "suite.json"
OFFLINE_TAG = "lmscale_offline"

# ---------------------------------------------------------------- the suite

# Task name -> the generator of its documents: text tasks draw from the held-out
# lines, symbolic ones from the random stream alone. The YAML of the same name in
# lmscale/tasks/ says how lm-eval scores them; these say where the documents come from.
TEXT_TASKS: dict[str, Callable[[list[CodeLine], random.Random, int], Iterator[Document]]] = {
    "code_next_line": next_line_choice,
    "code_line_cloze": last_token_cloze,
    "code_next_lexeme": next_lexeme_cloze,
    "code_swap_pairs": minimal_pairs(swap_adjacent_lexemes),
    "code_bracket_pairs": minimal_pairs(mismatch_closing_bracket),
    "code_name_choice": name_choice,
    "code_name_swap_pairs": minimal_pairs(swap_two_names),
}
SYMBOLIC_TASKS: dict[str, Callable[[random.Random, int], Iterator[Document]]] = {
    "bracket_next": bracket_next,
    "bracket_completion": bracket_completion,
    "doctest_addition": addition,
    "doctest_comparison": comparison,
    "string_repetition": string_repetition,
    "simple_arithmetic_withspaces": simple_arithmetic(spaces=True),
    "simple_arithmetic_nospaces": simple_arithmetic(spaces=False),
}
GENERATED_TASKS = {**TEXT_TASKS, **SYMBOLIC_TASKS}


def task_yaml(name: str) -> Path:
    return TASKS_DIR / f"{name}.yaml"


def task_definition(name: str) -> dict:
    """The lm-eval YAML of a local task, as a dict."""
    path = task_yaml(name)
    if not path.exists():
        raise FileNotFoundError(f"no task definition {path} for local task {name!r}")
    return yaml.safe_load(path.read_text())


def offline_suite() -> list[str]:
    """The tasks of the embedded default, in the order of lmscale/tasks/."""
    names = []
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        definition = yaml.safe_load(path.read_text())
        if OFFLINE_TAG in (definition.get("tag") or []):
            names.append(definition["task"])
    return names


def task_seed(seed: int, name: str) -> int:
    """Each task its own stream: adding a task never changes another's documents."""
    return seed * 1_000_003 + zlib.crc32(name.encode())


def unknown_tasks_message(unknown: list[str], known: list[str]) -> str:
    """'unknown task 'x' (closest: y, z)': the names a typo most likely meant."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (closest: {', '.join(close)})" if close else ""
        parts.append(f"{name!r}{hint}")
    return f"unknown task {'; '.join(parts)}"


def write_jsonl(path: Path, documents: list[Document]) -> None:
    with atomic_writer(path) as handle:
        for document in documents:
            handle.write(json.dumps(document, sort_keys=True) + "\n")


def answers(document: Document) -> list[str]:
    """What lm-eval scores as the continuation: every choice, or the target."""
    return document["choices"] if "choices" in document else [document["target"]]


def token_encoder(tokenizer_dir: str | Path) -> Callable[[str], list[int]]:
    """Token ids of a text under the study's tokenizer, as lm-eval's Hugging Face backend encodes it."""
    # deferred: transformers takes seconds; only a check of answers against a tokenizer needs it
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_scorable(encode: Callable[[str], list[int]], delimiter: str, max_tokens: int) -> Callable[[Document], bool]:
    """Whether lm-eval scores every answer of a document as written, in at most `max_tokens` tokens.

    lm-eval (its causal `_encode_pair`) moves the context's trailing whitespace into the
    continuation, encodes context and continuation together and takes as the continuation
    whatever follows the context's own tokens. Where a token spans the boundary (`)` then
    `:` may be one token) that is not the answer: it is empty, and lm-eval asserts, or it is
    cut elsewhere, and the wrong tokens are scored.
    """

    def scorable(document: Document) -> bool:
        context = document["context"].rstrip()
        moved = document["context"][len(context):]
        context_ids = encode(context)
        for answer in answers(document):
            whole = encode(context + moved + delimiter + answer)
            if whole[: len(context_ids)] != context_ids or not 1 <= len(whole) - len(context_ids) <= max_tokens:
                return False
        return True

    return scorable


def generate_task(
    name: str,
    rng: random.Random,
    size: int,
    fewshot_pool: int,
    lines: list[CodeLine] | None,
    keep: Callable[[Document], bool] | None = None,
) -> tuple[list[Document], list[Document]]:
    """(test, train) documents of one task; train is the few-shot pool.

    `keep` passes over documents the models could not score (answers longer than
    their context, or not cut where lm-eval cuts them); the generators draw lazily, so
    with nothing passed over the documents are those an unfiltered suite gets.
    """
    wanted = size + fewshot_pool
    # Enough draws for the wanted documents even if most are passed over; text tasks
    # stop anyway when the held-out lines run out.
    draws = wanted if keep is None else 50 * wanted
    if name in TEXT_TASKS:
        stream = TEXT_TASKS[name](lines or [], rng, draws)
    else:
        stream = SYMBOLIC_TASKS[name](rng, draws)
    documents = list(itertools.islice(filter(keep, stream) if keep else stream, wanted))
    # Too few documents and accuracy is noise; the error law would fit noise.
    minimum = min(size, 20) + fewshot_pool
    if len(documents) < minimum:
        where = "in the held-out text" if name in TEXT_TASKS else "from its generator"
        fitting = " whose answers lm-eval scores as written, in half the models' context" if keep else ""
        raise ValueError(
            f"task {name!r} found only {len(documents)} documents{fitting} {where} "
            f"(needs at least {minimum}); give the corpus a larger validation split, "
            f"the models a longer context, or leave {name!r} out with tasks.exclude"
        )
    return documents[fewshot_pool:], documents[:fewshot_pool]


def write_suite(out_dir: str | Path, job: TaskSuiteJob, heldout: str | Path | None = None,
                tokenizer: str | Path | None = None) -> dict:
    """Write the data and YAML of the job's tasks to `out_dir`.

    With `tokenizer` and the job's `context` (the shortest context of the study's models), a
    document is kept only if lm-eval scores each of its answers as written, in at most
    half the context (`answer_scorable`): lm-eval cannot score a continuation longer
    than the context, and an answer that fills it leaves nothing to condition on.
    Returns the manifest, which is also written to `out_dir/suite.json`.
    """
    tasks, seed, size, fewshot_pool = job.tasks, job.seed, job.size, job.fewshot_pool
    context_lines, context = job.context_lines, job.context
    if (tokenizer is None) != (context is None):
        raise ValueError("pass both --tokenizer and --context (the models' shortest context), or neither")
    max_answer_tokens = context // 2 if context is not None else None
    encode = token_encoder(tokenizer) if tokenizer is not None else None
    unknown = [name for name in tasks if name not in GENERATED_TASKS]
    if unknown:
        raise ValueError(
            unknown_tasks_message(unknown, sorted(GENERATED_TASKS))
            + "; local tasks are those with a generator in lmscale.evaluation.offline_tasks"
        )
    lines = None
    if any(name in TEXT_TASKS for name in tasks):
        if heldout is None:
            raise ValueError(
                f"tasks {', '.join(n for n in tasks if n in TEXT_TASKS)} are cut from held-out "
                f"text: pass --heldout results/<study>/data/<dataset>/validation.jsonl"
            )
        lines = code_lines(read_documents(heldout), context_lines)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [write_task(out_dir, name, job, lines, encode, max_answer_tokens) for name in tasks]
    manifest = {
        "seed": seed,
        "heldout": str(heldout) if heldout is not None else None,
        "size": size,
        "fewshot_pool": fewshot_pool,
        "context_lines": context_lines,
        "max_answer_tokens": max_answer_tokens,
        "tasks": entries,
    }
    atomic_write_json(out_dir / MANIFEST, manifest, sort_keys=False)
    return manifest


def write_task(out_dir: Path, name: str, job: TaskSuiteJob, lines: list[CodeLine] | None,
               encode: Callable[[str], list[int]] | None, max_answer_tokens: int | None) -> dict:
    """One task's documents, few-shot pool and YAML written under `out_dir`; its manifest entry."""
    definition = task_definition(name)
    shots = int(definition.get("num_fewshot", 0))
    if job.fewshot_pool < shots:
        raise ValueError(
            f"task {name!r} is {shots}-shot but tasks.fewshot_pool is {job.fewshot_pool}: "
            f"set fewshot_pool to at least {shots}"
        )
    keep = None
    if encode is not None:
        keep = answer_scorable(encode, definition.get("target_delimiter", " "), max_answer_tokens)
    test, train = generate_task(name, random.Random(task_seed(job.seed, name)), job.size, job.fewshot_pool, lines,
                                keep)
    write_jsonl(out_dir / name / "test.jsonl", test)
    write_jsonl(out_dir / name / "train.jsonl", train)
    atomic_copy(task_yaml(name), out_dir / f"{name}.yaml")
    metadata = definition.get("metadata", {})
    log.info("%s: %d documents, %d few-shot examples", name, len(test), len(train))
    return {
        "task": name,
        "kind": definition["output_type"],
        "num_fewshot": shots,
        "random_baseline": float(metadata["random_baseline"]),
        "category": metadata.get("category", ""),
        "in_the_manner_of": metadata.get("in_the_manner_of", ""),
        "num_docs": len(test),
        "num_fewshot_docs": len(train),
    }


def read_manifest(suite_dir: str | Path) -> dict:
    path = Path(suite_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; generate the suite with `lmscale task-suite`")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- CLI
