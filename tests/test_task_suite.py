"""The generated offline task suite: deterministic, well-formed, honest about chance."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import yaml

from lmscale import cli
from lmscale.evaluation import offline_tasks
from lmscale.jobs import TaskSuiteJob
from tests.workflow import validated_config

# Held-out "Python source" for the text tasks: a few modules of the interpreter's own library.
HELDOUT_MODULES = ["textwrap.py", "json/encoder.py", "json/decoder.py", "shlex.py", "fnmatch.py", "glob.py",
                   "bisect.py", "heapq.py", "string.py", "colorsys.py", "numbers.py", "queue.py", "sched.py"]


def write_heldout(path: Path) -> Path:
    library = Path(sysconfig.get_paths()["stdlib"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for module in HELDOUT_MODULES:
            handle.write(json.dumps({"text": (library / module).read_text()}) + "\n")
    return path


def write_suite(out: Path, tasks: list[str] | None = None, heldout: Path | None = None, tokenizer: Path | None = None,
                context: int | None = None, **settings) -> dict:
    """`tasks` (default: the offline suite) written as the workflow writes them, with the `tasks`
    section's settings (the schema's, but for `settings`)."""
    config = validated_config({"tasks": settings})
    job = TaskSuiteJob.from_config(config, tasks if tasks is not None else offline_tasks.offline_suite(), context)
    return offline_tasks.write_suite(out, job, heldout, tokenizer)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    return write_heldout(tmp_path_factory.mktemp("data") / "validation.jsonl")


@pytest.fixture(scope="module")
def suite(tmp_path_factory, heldout) -> Path:
    out = tmp_path_factory.mktemp("suite")
    write_suite(out, heldout=heldout, seed=0, size=60, fewshot_pool=10)
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_offline_suite_covers_the_papers_kinds_and_categories():
    names = offline_tasks.offline_suite()
    assert len(names) >= 8
    definitions = [offline_tasks.task_definition(name) for name in names]
    assert {d["output_type"] for d in definitions} == {"multiple_choice", "loglikelihood", "generate_until"}
    manners = {d["metadata"]["in_the_manner_of"] for d in definitions}
    assert {"hellaswag", "lambada_openai", "blimp", "bigbench_dyck_languages",
            "simple_arithmetic", "bigbench_repeat_copy_logic"} <= manners
    for definition in definitions:
        assert definition["task"] in offline_tasks.GENERATED_TASKS
        assert 0 <= definition["metadata"]["random_baseline"] < 1
        assert isinstance(definition["num_fewshot"], int)


def test_suite_is_deterministic(tmp_path, heldout, suite):
    again = tmp_path / "again"
    write_suite(again, heldout=heldout, seed=0, size=60, fewshot_pool=10)
    for name in offline_tasks.offline_suite():
        for split in ("test", "train"):
            assert (again / name / f"{split}.jsonl").read_bytes() == (suite / name / f"{split}.jsonl").read_bytes()
    other = tmp_path / "other"
    write_suite(other, tasks=["code_next_line"], heldout=heldout, seed=1, size=60, fewshot_pool=10)
    assert (other / "code_next_line" / "test.jsonl").read_bytes() != (suite / "code_next_line" / "test.jsonl").read_bytes()


def test_manifest_matches_documents(suite):
    manifest = offline_tasks.read_manifest(suite)
    assert [entry["task"] for entry in manifest["tasks"]] == offline_tasks.offline_suite()
    for entry in manifest["tasks"]:
        test = read_jsonl(suite / entry["task"] / "test.jsonl")
        train = read_jsonl(suite / entry["task"] / "train.jsonl")
        assert len(test) == entry["num_docs"] == 60
        assert len(train) == entry["num_fewshot_docs"] == 10
        assert (suite / f"{entry['task']}.yaml").exists()
        if entry["kind"] == "multiple_choice":
            # The declared baseline is chance: one over the number of choices.
            for doc in test:
                assert 0 <= doc["label"] < len(doc["choices"])
                assert entry["random_baseline"] == pytest.approx(1 / len(doc["choices"]), abs=1e-3)
        else:
            assert entry["random_baseline"] == 0
            assert all(doc["target"] for doc in test)


def test_simple_arithmetic_tasks_for_the_paper_table(tmp_path):
    manifest = write_suite(
        tmp_path, tasks=["simple_arithmetic_nospaces", "simple_arithmetic_withspaces"], size=50, fewshot_pool=10
    )
    assert [e["num_fewshot"] for e in manifest["tasks"]] == [10, 10]
    for doc in read_jsonl(tmp_path / "simple_arithmetic_withspaces" / "test.jsonl"):
        assert " " in doc["context"] and str(eval(doc["context"][:-1])) == doc["target"]
    for doc in read_jsonl(tmp_path / "simple_arithmetic_nospaces" / "test.jsonl"):
        assert " " not in doc["context"]


def test_yaml_names_its_data_relative_to_itself(suite):
    definition = yaml.safe_load((suite / "code_next_line.yaml").read_text())
    for file in definition["dataset_kwargs"]["data_files"].values():
        assert not Path(file).is_absolute() and (suite / file).exists()


def test_unknown_task_names_the_closest(tmp_path, heldout):
    with pytest.raises(ValueError, match="code_next_line"):
        write_suite(tmp_path, tasks=["code_next_lines"], heldout=heldout)


def test_missing_heldout_is_a_clean_error(tmp_path, caplog):
    job = TaskSuiteJob.from_config(validated_config(), offline_tasks.offline_suite(), None)
    status = cli.main(["task-suite", "--job", job.to_json(), "--heldout", str(tmp_path / "none.jsonl"),
                       "--out", str(tmp_path / "s")])
    assert status == 1
    assert "none.jsonl" in caplog.text and "corpus" in caplog.text


def test_too_little_text_fails_with_the_fix(tmp_path):
    heldout = tmp_path / "tiny.jsonl"
    heldout.write_text(json.dumps({"text": "import os\nprint(os.getcwd())\n"}) + "\n")
    with pytest.raises(ValueError, match="larger validation split"):
        write_suite(tmp_path / "s", tasks=["code_next_line"], heldout=heldout)


def test_fewshot_pool_must_hold_the_shots(tmp_path):
    with pytest.raises(ValueError, match="fewshot_pool to at least 10"):
        write_suite(tmp_path, tasks=["simple_arithmetic_nospaces"], size=20, fewshot_pool=5)


def test_answers_fit_half_the_models_context(tmp_path, heldout, suite):
    """A short-context model can score every document: lm-eval asserts on a continuation
    longer than the context, and failed the whole task for the models that met one."""
    from transformers import AutoTokenizer

    from lmscale.data.vocabulary import train_bpe

    tokenizer_dir = train_bpe(heldout, tmp_path / "tokenizer", vocab_size=300)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def longest_answer(folder: Path, name: str) -> int:
        delimiter = offline_tasks.task_definition(name).get("target_delimiter", " ")
        return max(
            len(tokenizer(delimiter + answer, add_special_tokens=False)["input_ids"])
            for split in ("test", "train")
            for doc in read_jsonl(folder / name / f"{split}.jsonl")
            for answer in offline_tasks.answers(doc)
        )

    names = ["code_next_line", "code_swap_pairs", "bracket_next"]
    manifest = write_suite(tmp_path / "short", tasks=names, heldout=heldout, seed=0, size=60,
                                      fewshot_pool=10, tokenizer=tokenizer_dir, context=32)
    assert manifest["max_answer_tokens"] == 16
    assert [entry["num_docs"] for entry in manifest["tasks"]] == [60, 60, 60]
    for name in names:
        assert longest_answer(tmp_path / "short", name) <= 16
    # Whole lines of code do not fit unfiltered; one-character brackets always do, so their
    # documents are the unfiltered suite's, draw for draw.
    assert longest_answer(suite, "code_next_line") > 16
    assert (tmp_path / "short" / "bracket_next" / "test.jsonl").read_bytes() == (
        suite / "bracket_next" / "test.jsonl").read_bytes()


def test_context_needs_the_tokenizer(tmp_path, heldout):
    with pytest.raises(ValueError, match="--tokenizer and --context"):
        write_suite(tmp_path, tasks=["bracket_next"], context=32)


def test_answers_are_scored_as_written(tmp_path, heldout, suite):
    """lm-eval splits context and answer after encoding them together; where a token spans
    the boundary (`)` then `:`) it scores other tokens than the answer's, or none and asserts.
    The suite keeps only documents that lm-eval's own split scores as written."""
    from types import SimpleNamespace

    from lm_eval.api.model import TemplateLM
    from transformers import AutoTokenizer

    from lmscale.data.vocabulary import train_bpe

    tokenizer_dir = train_bpe(heldout, tmp_path / "tokenizer", vocab_size=300)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    # lm-eval's own pair encoding, as its causal Hugging Face backend runs it.
    lm = SimpleNamespace(tok_encode=encode, backend="causal")

    def scored_as_written(doc: dict) -> bool:
        for answer in offline_tasks.answers(doc):
            _, continuation = TemplateLM._encode_pair(lm, doc["context"], answer)
            if continuation != encode(doc["context"][len(doc["context"].rstrip()):] + answer):
                return False
        return True

    unfiltered = read_jsonl(suite / "code_next_lexeme" / "test.jsonl")
    assert not all(map(scored_as_written, unfiltered))  # the boundary case occurs in real code
    write_suite(tmp_path / "short", tasks=["code_next_lexeme"], heldout=heldout, seed=0, size=60,
                           fewshot_pool=10, tokenizer=tokenizer_dir, context=32)
    for split in ("test", "train"):
        assert all(map(scored_as_written, read_jsonl(tmp_path / "short" / "code_next_lexeme" / f"{split}.jsonl")))
