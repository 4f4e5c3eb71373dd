"""The documents of the offline suite's tasks, generated deterministically from a seed.

Two families (lmscale.evaluation.offline_tasks puts them together and writes them for lm-eval):
- text tasks, cut from the study's held-out split: next-line choice (in the manner of
  HellaSwag), last-token and next-lexeme cloze (LAMBADA), minimal pairs of a real line
  against a corrupted one;
- symbolic tasks from procedural generators: bracket completion (BIG-bench Dyck
  languages), arithmetic (MosaicML simple arithmetic), string repetition (BIG-bench
  repeat-copy logic).
"""

from __future__ import annotations

import json
import keyword
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

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
