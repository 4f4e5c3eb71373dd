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
import keyword
import logging
import random
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

import yaml

from lmscale import jobs
from lmscale.files import atomic_copy, atomic_write_json, atomic_writer, folder_of
from lmscale.jobs import TaskSuiteJob

log = logging.getLogger(__name__)

# The lm-eval definitions of the local tasks ship inside the package, so that an installed
# lmscale (not only a checkout) carries its suite, and a checkout's workflow uses its own.
TASKS_DIR = Path(str(resources.files("lmscale") / "tasks"))
MANIFEST = "suite.json"
OFFLINE_TAG = "lmscale_offline"

# A document is one JSON object; its fields depend on the task's kind:
#   multiple_choice: context, choices, label      (lm-eval scores every choice)
#   loglikelihood:   context, target              (acc = target is the greedy continuation)
#   generate_until:  context, target              (acc = exact match of the greedy generation)
Document = dict


# ---------------------------------------------------------------- held-out text


def read_documents(path: str | Path) -> list[str]:
    """The "text" field of every line of a JSONL split."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"held-out split {path} does not exist; run the corpus stage first "
            f"(`lmscale corpus ...`) or point --heldout at a JSONL file with a 'text' field"
        )
    documents = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "text" not in record:
                raise ValueError(f"{path}:{number} has no 'text' field (keys: {sorted(record)})")
            documents.append(record["text"])
    return documents


@dataclass(frozen=True)
class CodeLine:
    """A line of a held-out document and the lines just before it."""

    document: int
    context: str  # the preceding lines, each ending in a newline
    line: str  # without its newline


def is_substantial(line: str) -> bool:
    """A line worth asking about: real code, not blank, a lone bracket or a comment."""
    stripped = line.strip()
    return (
        len(stripped) >= 8
        and not stripped.startswith("#")
        and any(ch.isalpha() for ch in stripped)
        and len(line) <= 100
    )


def code_lines(documents: list[str], context_lines: int) -> list[CodeLine]:
    """Every substantial line that has `context_lines` lines of its document before it."""
    lines = []
    for index, text in enumerate(documents):
        rows = text.split("\n")
        for position in range(context_lines, len(rows)):
            if not is_substantial(rows[position]):
                continue
            before = rows[position - context_lines : position]
            if sum(len(row) for row in before) > 600:
                continue  # keep contexts short: the suite must run in a minute on 2 cores
            context = "".join(row + "\n" for row in before)
            if not context.strip():
                continue  # lm-eval moves trailing whitespace to the answer and cannot score an empty context
            lines.append(CodeLine(index, context, rows[position]))
    return lines


# Lexical tokens of a line: identifiers and numbers, or single punctuation marks.
LEXEME = re.compile(r"\w+|[^\w\s]")
CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
CLOSERS = ")]}"


def next_line_choice(lines: list[CodeLine], rng: random.Random, n: int) -> Iterator[Document]:
    """HellaSwag-like: the true next line of a file among lines of other files.

    Distractors have about the true line's length, so summed log-likelihood
    cannot win by preferring the shortest line.
    """
    by_length = sorted(range(len(lines)), key=lambda i: len(lines[i].line))
    rank_of = {item: rank for rank, item in enumerate(by_length)}
    for item in rng.sample(range(len(lines)), len(lines)):
        true = lines[item]
        rank = rank_of[item]
        window = [by_length[j] for j in range(max(0, rank - 40), min(len(lines), rank + 41))]
        candidates = [
            j
            for j in window
            if lines[j].document != true.document and lines[j].line.strip() != true.line.strip()
        ]
        if len(candidates) < 3:
            continue
        distractors = [lines[j].line for j in rng.sample(candidates, 3)]
        if len(set(distractors)) < 3:
            continue
        label = rng.randrange(4)
        choices = distractors[:label] + [true.line] + distractors[label:]
        yield {"context": true.context, "choices": choices, "label": label}
        n -= 1
        if n == 0:
            return


IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
LAST_IDENTIFIER = re.compile(IDENTIFIER.pattern + "$")


def lines_ending_in_a_name(lines: list[CodeLine], rng: random.Random) -> Iterator[tuple[CodeLine, str, str]]:
    """The lines that end in a name (not a keyword), in random order: (line, the line up to
    that name, the name). A line that is only the name gives nothing to read and is skipped."""
    for item in rng.sample(range(len(lines)), len(lines)):
        stripped = lines[item].line.rstrip()
        match = LAST_IDENTIFIER.search(stripped)
        if match and not keyword.iskeyword(match.group()) and stripped[: match.start()].strip():
            yield lines[item], stripped[: match.start()], match.group()


def last_token_cloze(lines: list[CodeLine], rng: random.Random, n: int) -> Iterator[Document]:
    """LAMBADA-like: the last identifier of a line, one the context already used.

    As in LAMBADA, the target is predictable from the passage, not from the
    line alone: a model that tracks names across lines gets it right.
    """
    for line, prefix, word in lines_ending_in_a_name(lines, rng):
        if len(word) < 3 or not re.search(rf"\b{word}\b", line.context):
            continue
        yield {"context": line.context + prefix, "target": word}
        n -= 1
        if n == 0:
            return


def next_lexeme_cloze(lines: list[CodeLine], rng: random.Random, n: int) -> Iterator[Document]:
    """LAMBADA-like at any point of a line: the next lexeme (a name, number or punctuation
    mark, with the spaces before it) after a random prefix of the line.

    Where the other text tasks ask one kind of question, this one mixes easy ones (a closing
    bracket, a colon) with hard ones (which attribute), so its accuracy grows gradually with
    the model, in step with its loss, instead of saturating or jumping.
    """
    for item in rng.sample(range(len(lines)), len(lines)):
        line = lines[item]
        spans = [m.span() for m in LEXEME.finditer(line.line)]
        if len(spans) < 2:
            continue
        i = rng.randrange(1, len(spans))
        cut = spans[i - 1][1]
        yield {"context": line.context + line.line[:cut], "target": line.line[cut : spans[i][1]]}
        n -= 1
        if n == 0:
            return


def names_in(text: str) -> list[str]:
    """The distinct identifiers of a text that are not keywords, in order of first use."""
    return list(dict.fromkeys(m.group() for m in IDENTIFIER.finditer(text) if not keyword.iskeyword(m.group())))


def name_choice(lines: list[CodeLine], rng: random.Random, n: int) -> Iterator[Document]:
    """Cloze as multiple choice: which of four names from the context ends the line.

    The distractors are other names the context uses, of about the answer's length, so
    neither "seen before" nor "short" singles out the answer: the model must read the
    line. Graded where the greedy cloze is all or nothing.
    """
    for line, prefix, word in lines_ending_in_a_name(lines, rng):
        context_names = names_in(line.context)
        if word not in context_names:
            continue
        others = sorted((name for name in context_names if name != word), key=lambda name: abs(len(name) - len(word)))
        if len(others) < 3:
            continue
        distractors = rng.sample(others[:6], 3)
        label = rng.randrange(4)
        choices = distractors[:label] + [word] + distractors[label:]
        yield {"context": line.context + prefix, "choices": choices, "label": label}
        n -= 1
        if n == 0:
            return


def swap_two_names(line: str, rng: random.Random) -> str | None:
    """The line with two different names trading places (one use of each).

    The result usually still parses, so only what the names mean tells the lines apart.
    """
    spans = [m.span() for m in IDENTIFIER.finditer(line) if not keyword.iskeyword(m.group())]
    pairs = [(i, j) for i in range(len(spans)) for j in range(i + 1, len(spans))
             if line[slice(*spans[i])] != line[slice(*spans[j])]]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    (a0, a1), (b0, b1) = spans[i], spans[j]
    return line[:a0] + line[b0:b1] + line[a1:b0] + line[a0:a1] + line[b1:]


def swap_adjacent_lexemes(line: str, rng: random.Random) -> str | None:
    """The line with two neighbouring, different lexemes swapped (characters kept)."""
    spans = [m.span() for m in LEXEME.finditer(line)]
    pairs = [
        i
        for i in range(len(spans) - 1)
        if line[slice(*spans[i])] != line[slice(*spans[i + 1])]
    ]
    if not pairs:
        return None
    i = rng.choice(pairs)
    (a0, a1), (b0, b1) = spans[i], spans[i + 1]
    return line[:a0] + line[b0:b1] + line[a1:b0] + line[a0:a1] + line[b1:]


def mismatch_closing_bracket(line: str, rng: random.Random) -> str | None:
    """The line with one closing bracket replaced by a closer of another kind.

    Same length as the real line, so only the bracket structure tells them apart.
    """
    positions = [i for i, ch in enumerate(line) if ch in CLOSERS]
    if not positions:
        return None
    i = rng.choice(positions)
    wrong = rng.choice([ch for ch in CLOSERS if ch != line[i]])
    return line[:i] + wrong + line[i + 1 :]


def minimal_pairs(
    corrupt: Callable[[str, random.Random], str | None],
) -> Callable[[list[CodeLine], random.Random, int], Iterator[Document]]:
    """BLiMP-like pairs: the real line against `corrupt(line)`, after the same context."""

    def generate(lines: list[CodeLine], rng: random.Random, n: int) -> Iterator[Document]:
        for item in rng.sample(range(len(lines)), len(lines)):
            line = lines[item]
            corrupted = corrupt(line.line, rng)
            if corrupted is None or corrupted == line.line:
                continue
            label = rng.randrange(2)
            choices = [corrupted, line.line] if label else [line.line, corrupted]
            yield {"context": line.context, "choices": choices, "label": label}
            n -= 1
            if n == 0:
                return

    return generate


# ---------------------------------------------------------------- procedural tasks

NAMES = ["a", "b", "x", "y", "n", "key", "item", "value", "data", "self.obj"]
FUNCTIONS = ["f", "g", "len", "str", "int", "list", "max", "sorted", "self.get"]


def nested_expression(rng: random.Random, depth: int) -> tuple[str, list[str]]:
    """A Python-like expression cut off inside `depth` nested brackets.

    Returns the open prefix and the closers it still needs, innermost first.
    """
    text, closers = "", []
    for level in range(depth):
        opener = rng.choice("([{")
        if opener == "(":
            text += rng.choice(FUNCTIONS) + "("
        elif opener == "[" and level and rng.random() < 0.5:
            text += rng.choice(NAMES) + "["
        else:
            text += opener
        closers.insert(0, CLOSER_OF[opener])
        if rng.random() < 0.6:
            text += rng.choice(NAMES) + (": " if opener == "{" else ", ")
    text += rng.choice(NAMES)
    return text, closers


def bracket_next(rng: random.Random, n: int) -> Iterator[Document]:
    """Dyck-like multiple choice: which bracket closes next."""
    for _ in range(n):
        prefix, closers = nested_expression(rng, rng.randint(2, 5))
        choices = list(CLOSERS)
        yield {"context": "x = " + prefix, "choices": choices, "label": choices.index(closers[0])}


def bracket_completion(rng: random.Random, n: int) -> Iterator[Document]:
    """BIG-bench Dyck languages, generated: every closer the line still needs."""
    for _ in range(n):
        prefix, closers = nested_expression(rng, rng.randint(2, 4))
        yield {"context": "x = " + prefix, "target": "".join(closers)}


def addition(rng: random.Random, n: int) -> Iterator[Document]:
    """Sums written as a doctest, the form arithmetic takes in Python source."""
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        yield {"context": f">>> {a} + {b}\n", "target": str(a + b)}


def comparison(rng: random.Random, n: int) -> Iterator[Document]:
    """A doctest comparison: True or False."""
    for _ in range(n):
        a, b = rng.sample(range(100), 2)
        operator = rng.choice(["<", ">"])
        truth = a < b if operator == "<" else a > b
        yield {"context": f">>> {a} {operator} {b}\n", "choices": ["True", "False"], "label": 0 if truth else 1}


def string_repetition(rng: random.Random, n: int) -> Iterator[Document]:
    """BIG-bench repeat-copy logic, as Python: 'ab' * 3 is 'ababab'."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(n):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 3)))
        times = rng.randint(2, 4)
        yield {"context": f">>> {word!r} * {times}\n", "target": repr(word * times)}


def simple_arithmetic(spaces: bool) -> Callable[[random.Random, int], Iterator[Document]]:
    """MosaicML's simple arithmetic: up to 3 operations on numbers of up to 3 digits."""

    def generate(rng: random.Random, n: int) -> Iterator[Document]:
        for _ in range(n):
            terms = [str(rng.randint(0, 999)) for _ in range(rng.randint(2, 4))]
            expression = terms[0]
            for term in terms[1:]:
                operator = rng.choice("+-*")
                expression += f" {operator} {term}" if spaces else f"{operator}{term}"
            yield {"context": f"{expression}=", "target": str(eval(expression))}  # noqa: S307 (digits and + - * only)

    return generate


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
            + "; local tasks are those with a generator in lmscale.task_suite"
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
    entries = []
    for name in tasks:
        definition = task_definition(name)
        shots = int(definition.get("num_fewshot", 0))
        if fewshot_pool < shots:
            raise ValueError(
                f"task {name!r} is {shots}-shot but tasks.fewshot_pool is {fewshot_pool}: "
                f"set fewshot_pool to at least {shots}"
            )
        keep = None
        if encode is not None:
            keep = answer_scorable(encode, definition.get("target_delimiter", " "), max_answer_tokens)
        test, train = generate_task(name, random.Random(task_seed(seed, name)), size, fewshot_pool, lines, keep)
        write_jsonl(out_dir / name / "test.jsonl", test)
        write_jsonl(out_dir / name / "train.jsonl", train)
        atomic_copy(task_yaml(name), out_dir / f"{name}.yaml")
        metadata = definition.get("metadata", {})
        entries.append(
            {
                "task": name,
                "kind": definition["output_type"],
                "num_fewshot": shots,
                "random_baseline": float(metadata["random_baseline"]),
                "category": metadata.get("category", ""),
                "in_the_manner_of": metadata.get("in_the_manner_of", ""),
                "num_docs": len(test),
                "num_fewshot_docs": len(train),
            }
        )
        log.info("%s: %d documents, %d few-shot examples", name, len(test), len(train))
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


def read_manifest(suite_dir: str | Path) -> dict:
    path = Path(suite_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; generate the suite with `lmscale task-suite`")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    jobs.add_argument(parser, TaskSuiteJob)
    parser.add_argument("--heldout", nargs="?",
                        help="held-out JSONL split (a 'text' field per document) for the text tasks")
    parser.add_argument("--tokenizer", metavar="TOKENIZER_JSON",
                        help="the models' tokenizer.json (with the job's context): documents whose answers "
                             "lm-eval would not score as written, in half the context, are passed over")
    parser.add_argument("--out", required=True, help="folder to write the suite to")


def main(args) -> int:
    job = args.job
    tokenizer = folder_of([args.tokenizer], ["tokenizer.json"]) if args.tokenizer else None
    manifest = write_suite(args.out, job, args.heldout, tokenizer)
    log.info("wrote %d tasks to %s", len(manifest["tasks"]), args.out)
    return 0
