"""The documents of the offline suite's tasks (lmscale.evaluation.task_documents): text tasks cut from held-out code
read as intended, and the symbolic tasks' answers are right. The suite they make: test_task_suite."""

from __future__ import annotations

import random

import pytest

from lmscale.evaluation.task_documents import (
    LEXEME,
    addition,
    bracket_completion,
    code_lines,
    comparison,
    last_token_cloze,
    minimal_pairs,
    mismatch_closing_bracket,
    name_choice,
    names_in,
    next_lexeme_cloze,
    next_line_choice,
    read_documents,
    string_repetition,
    swap_adjacent_lexemes,
    swap_two_names,
)
from tests.test_task_suite import write_heldout

TEXT_TASKS = {"code_swap_pairs": minimal_pairs(swap_adjacent_lexemes),
              "code_bracket_pairs": minimal_pairs(mismatch_closing_bracket), "code_line_cloze": last_token_cloze,
              "code_next_line": next_line_choice, "code_name_swap_pairs": minimal_pairs(swap_two_names),
              "code_name_choice": name_choice, "code_next_lexeme": next_lexeme_cloze}
SYMBOLIC_TASKS = {"doctest_addition": addition, "string_repetition": string_repetition,
                  "doctest_comparison": comparison, "bracket_completion": bracket_completion}


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, list[dict]]:
    """60 documents of each task, the text tasks' cut from held-out standard-library modules (4 lines of context)."""
    lines = code_lines(read_documents(write_heldout(tmp_path_factory.mktemp("data") / "validation.jsonl")), 4)
    generated = {name: list(generate(lines, random.Random(0), 60)) for name, generate in TEXT_TASKS.items()}
    generated |= {name: list(generate(random.Random(0), 60)) for name, generate in SYMBOLIC_TASKS.items()}
    assert all(len(docs) == 60 for docs in generated.values())
    return generated


def test_text_tasks_read_as_intended(documents):
    for doc in documents["code_swap_pairs"]:
        real, corrupted = doc["choices"][doc["label"]], doc["choices"][1 - doc["label"]]
        assert sorted(real) == sorted(corrupted) and real != corrupted  # same characters, other order
    for doc in documents["code_bracket_pairs"]:
        real, corrupted = doc["choices"][doc["label"]], doc["choices"][1 - doc["label"]]
        differences = [(a, b) for a, b in zip(real, corrupted) if a != b]
        assert len(real) == len(corrupted) and len(differences) == 1
        assert all(ch in ")]}" for ch in differences[0])
    for doc in documents["code_line_cloze"]:
        assert doc["target"].isidentifier() and doc["target"] in doc["context"]
    for doc in documents["code_next_line"]:
        assert len(set(doc["choices"])) == 4 and doc["context"].endswith("\n")
    for doc in documents["code_name_swap_pairs"]:
        real, corrupted = doc["choices"][doc["label"]], doc["choices"][1 - doc["label"]]
        assert sorted(real) == sorted(corrupted) and real != corrupted
        assert sorted(names_in(real)) == sorted(names_in(corrupted))  # names moved, not changed
    for doc in documents["code_name_choice"]:
        # Every choice is a name the context uses: only the line tells the answer apart.
        context_names = names_in(doc["context"])
        assert len(set(doc["choices"])) == 4 and all(choice in context_names for choice in doc["choices"])
    for doc in documents["code_next_lexeme"]:
        # One lexeme with the spaces before it, after a prefix of its line that is not blank.
        assert LEXEME.fullmatch(doc["target"].lstrip())
        assert doc["context"] == doc["context"].rstrip() and doc["context"].rpartition("\n")[2].strip()
    for doc in documents["code_swap_pairs"] + documents["code_next_line"]:
        assert doc["context"].strip()  # lm-eval cannot score after a context of blank lines


def test_symbolic_answers_are_right(documents):
    for doc in documents["doctest_addition"]:
        assert str(eval(doc["context"].removeprefix(">>> "))) == doc["target"]
    for doc in documents["string_repetition"]:
        assert repr(eval(doc["context"].removeprefix(">>> "))) == doc["target"]
    for doc in documents["doctest_comparison"]:
        assert str(eval(doc["context"].removeprefix(">>> "))) == doc["choices"][doc["label"]]
    for doc in documents["bracket_completion"]:
        closed = doc["context"] + doc["target"]
        depth = 0
        for ch in closed:
            depth += ch in "([{"
            depth -= ch in ")]}"
            assert depth >= 0
        assert depth == 0
