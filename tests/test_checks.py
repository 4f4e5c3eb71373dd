"""Bad configuration fails when the workflow is planned (`snakemake -n`), in a few lines naming the
key, the value and the fix, instead of after the grid has trained; no config value reaches a
shell as code.

The Snakefile checks the config as written (`checks.check_written`), validates it against the
schema (a refusal is `config.schema_error`'s message) and then calls `checks.check_study`: each
probe runs those three in-process, as the Snakefile does; two dry runs show such a message reaching the user of `snakemake -n`."""

from __future__ import annotations

import copy
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.exceptions import WorkflowError

from lmscale import checks, jobs
from lmscale.config import ConfigError, schema_error
from lmscale.laws import targets
from lmscale.planning import design, study
from tests.test_tables import lab_tables, study_config
from tests.workflow import REPO, offline_env, snakemake, snakemake_with_jobs, validated_config

SMOKE = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


def changed(**changes) -> dict:
    config = copy.deepcopy(SMOKE)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        section = config
        for parent in parents:
            section = section.setdefault(parent, {})
        section[key] = value
    return config


def configfile(tmp_path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def plan(tmp_path, config: dict, *args: str):
    return snakemake(tmp_path / "work", "--configfile", str(configfile(tmp_path, config)), *args, check=False,
                     timeout=120)


SHAPE = {"width": 16, "depth": 1, "heads": 2, "mlp_width": 48, "context": 64, "tie_embeddings": True}

# Each error of issue #17 that waited for the grid to train, or gave no fix: the config, then what the
# message must name (the key, the value, the fix).
CONFIG_ERRORS = {
    "fit-set size not in the grid": (
        changed(loss_fit_set=[*SMOKE["loss_fit_set"], {"size": "s9", "M": 5}]),
        ["loss_fit_set[6] = {size: s9, M: 5}", "size 's9' is not in the grid", "add the run to a `grid` block"]),
    "fit-set run not in the grid": (
        changed(loss_fit_set=[*SMOKE["loss_fit_set"], {"size": "s1", "M": 40}]),
        ["loss_fit_set[6] = {size: s1, M: 40}", "at M = 5, 10 only", "drop it from loss_fit_set"]),
    "error-fit run not in the grid": (
        changed(error_fit_extra=[{"size": "s3", "M": 20}]),
        ["error_fit_extra[0] = {size: s3, M: 20}", "at M = 5, 10 only", "drop it from error_fit_extra"]),
    "held-out size not in the grid": (
        changed(held_out=[{"size": "s4", "M": 10}]),
        ["held_out[0] = {size: s4, M: 10}", "size 's4' is not in the grid", "drop it from held_out"]),
    "unknown reference_size": (
        changed(reference_size="0.154B"), ["reference_size = '0.154B'", "its sizes: s1, s2, s3"]),
    "held-out run also in a fit set": (
        changed(held_out=[{"size": "s3", "M": 10}]),
        ["held_out[0] = {size: s3, M: 10} is also in loss_fit_set", "drop it from `held_out`"]),
    "valsets naming no validation set": (
        changed(valsets=["stdlib_validation"]),
        ["valsets[0] = 'stdlib_validation' names no validation set", "known: stdlib_heldout, pydoc_prose",
         "add it under `validation_sets`"]),
    "width not divisible by heads": (
        changed(sizes__s2={**SHAPE, "width": 24, "heads": 5}),
        ["sizes.s2: width 24 is not divisible by heads 5", "choose heads"]),
    "heads not divisible by kv_heads": (
        changed(sizes__s2={**SHAPE, "heads": 4, "kv_heads": 3}),
        ["sizes.s2: heads 4 is not divisible by kv_heads 3"]),
    "batch not divisible by micro-batches": (
        changed(train__micro_batch_size=5), ["sizes.s1: batch_size 16 is not a multiple of micro_batch_size 5"]),
    "empty grid": (changed(grid=[]), ["`grid` has no runs to train", "add a block such as"]),
    "tokenizer.dataset unknown": (
        changed(tokenizer__dataset="stdlb"), ["tokenizer.dataset = 'stdlb' is not a dataset", "known: stdlib"]),
    "tasks.heldout_dataset unknown": (
        changed(tasks__heldout_dataset="stdlb"), ["tasks.heldout_dataset = 'stdlb' is not a dataset"]),
    "validation set of an unknown dataset": (
        changed(validation_sets__extra={"dataset": "web"}),
        ["validation_sets.extra.dataset = 'web' is not a dataset under `datasets`"]),
    "more shards than files": (
        changed(datasets__stdlib={"source": "local", "paths": [str(REPO / "README.md")], "shards": 2}),
        ["datasets.stdlib.shards = 2, but its local source has 1 file(s)", "set shards to at most 1"]),
    "testbed_path null": (
        changed(testbed_format="tables", testbed_path=None),
        ["testbed_format tables reads published results, but testbed_path is not set", "--config testbed_path="]),
    "testbed_path not a folder": (
        changed(testbed_format="gadre2024", testbed_path="no/such/folder"),
        ["testbed_path = 'no/such/folder' is not a folder"]),
    # Issue #23: values the schema allows but that cannot be meant.
    "wsd cooldown of the whole run": (
        changed(train__schedule="wsd", train__cooldown=1),
        ["train.cooldown = 1: run stdlib/s1_M5 would spend all of its", "its trunk trains nothing",
         "lower train.cooldown"]),
    "two multipliers one name": (
        changed(grid=[{"sizes": ["s1", "s2", "s3"], "multipliers": [5, 5.0000001, 10]}]),
        ["grid[0].multipliers: M = 5.0000001 is named M5 in file names", "at most 6 significant digits"]),
    "validation set with a dataset and a source": (
        changed(validation_sets__stdlib_heldout={"dataset": "stdlib", "source": "pydoc_topics"}),
        ["validation_sets.stdlib_heldout sets both dataset = 'stdlib' and source = 'pydoc_topics'",
         "drop `dataset` or the source keys"]),
    "required key misspelt": (
        changed(sizes__s2={"depth": 1, "heads": 2, "mlp_width": 48, "context": 64, "widht": 16}),
        ["config key `sizes.s2.width` is missing: it is required; is `widht` a misspelling of it?"]),
    # Issue #26: the plan block names what the study has; a law given as its prior can be planned from.
    "plan.dataset unknown": (changed(plan={"dataset": "web"}), ["plan.dataset = 'web' is not one of the study's"]),
    "plan target size unknown": (
        changed(plan={"targets": [{"size": "s9", "M": 20}]}),
        ["plan.targets[0].size = 's9' is not under `sizes`", "give a target by its N"]),
    "plan prior without its noise": (
        changed(plan={"prior": {"form": "gadre", "params": {"E": 1.8, "a": 212, "b": 367, "eta": 0.14}}}),
        ["plan.prior: a law given without its fit points' noise", "plan.default_noise_sd"]),
    "plan prior missing a parameter": (
        changed(plan={"prior": {"form": "gadre", "params": {"E": 1.8, "a": 212, "b": 367}},
                      "default_noise_sd": 0.01}),
        ["plan.prior: params", "the gadre law's parameters are E, a, b, eta"]),
    "misspelt top-level key": (
        changed(treshold=5), ["config key `treshold` is not a known key; did you mean `threshold`?"]),
    "value out of range": (
        changed(threshold=500), ["config key `threshold` = 500 is greater than the maximum of 100"]),
    "study named ..": (changed(study=".."), ["config key `study` = \"..\" does not match"]),
    # Issue #25: targets in a shape no resolver takes, and two rows of one name.
    "target in no shape": (
        changed(targets=[{"name": "big", "C": 1.0e+22, "loss": 2.0}]),
        ["targets[0]: target 'big': give N and M; or C (and M); or loss or err (and M or inference_tokens); "
         "got C, loss"]),
    "target with a number YAML reads as text": (
        changed(targets=[{"name": "big", "C": "1e22"}]), ["targets[0]: target 'big': C = '1e22' is not a number"]),
    "two targets of one name": (
        changed(targets=[{"name": "big", "C": 1.0e+22}, {"name": "big", "loss": 2.0}]),
        ["targets[1]: the name 'big' is taken by an earlier target"]),
    "dataset named `my data`": (
        changed(datasets={"my data": SMOKE["datasets"]["stdlib"]}),
        ["config key `datasets`: the name \"my data\" does not match", "letters, digits and _ . = + - only"]),
    # Issue #24: a per-task candidate the study never evaluates.
    "per_task.tasks naming no evaluated task": (
        changed(per_task={"tasks": ["code_next_lexme"]}),
        ["per_task.tasks[0] = 'code_next_lexme'", "closest: code_next_lexeme", "among the tasks the study evaluates",
         "set per_task.tasks to null"]),
}


def planning_error(config: dict) -> str:
    """The message planning `config` stops with, as the Snakefile makes it: check_written's (of the
    config as written), else the schema's refusal (validated with its defaults filled in), else check_study's."""
    try:
        checks.check_written(config)
    except ConfigError as error:
        return str(error)
    try:
        filled = validated_config(config)
    except WorkflowError as error:
        refusal = schema_error(error)
        assert isinstance(refusal, ConfigError), refusal
        return str(refusal)
    with pytest.raises(ConfigError) as error:
        checks.check_study(filled)
    return str(error.value)


@pytest.mark.parametrize("probe", CONFIG_ERRORS)
def test_a_config_error_is_named_with_key_value_and_fix(probe):
    config, expected = CONFIG_ERRORS[probe]
    message = planning_error(config)
    for part in expected:
        assert part in message, message
    assert len(message.splitlines()) < 15, message  # a few lines, not a schema dump


def test_every_target_shape_the_resolver_takes_passes_the_schema_and_the_checks():
    """The schema's shapes of a target are lmscale.laws.targets.KINDS', and each plans."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    shapes = {frozenset(shape["required"]) for shape in schema["$defs"]["target"]["oneOf"]}
    assert shapes == set(targets.KINDS)
    values = {"N": 1.0e+9, "M": 20, "C": 1.0e+21, "loss": 2.5, "err": 0.4, "inference_tokens": 2.0e+12}
    asked = [{"name": f"target{i}", **{key: values[key] for key in sorted(shape)}} for i, shape in enumerate(targets.KINDS)]
    config = changed(targets=asked)
    checks.check_written(config)
    checks.check_study(validated_config(config))
    with pytest.raises(WorkflowError):  # the schema alone refuses another shape too
        validated_config(changed(targets=[{"name": "big", "C": 1.0e+22, "loss": 2.0}]))


def test_an_error_goal_in_a_loss_only_study_fails_when_planned(tmp_path):
    loss, _ = lab_tables()
    loss.to_csv(tmp_path / "loss.csv", index=False)  # no tasks.csv: a loss-only study
    config = study_config(tmp_path) | {"targets": [{"name": "goal", "loss": 2.4}, {"name": "err_goal", "err": 0.4}]}
    for key in ("threshold", "reference_size", "error_fit_extra"):
        config.pop(key)
    assert planning_error(config) == ("targets[1] 'err_goal': err = 0.4 is an error goal, but this study has no "
                                      "task results (loss only), so no error law; ask for a loss instead")


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_the_configs_of_the_repository_pass_the_checks(schedule):
    for path in ("config.yaml", "configs/smoke.yaml", "configs/paper.yaml"):
        config = yaml.safe_load((REPO / path).read_text())
        config.setdefault("train", {})["schedule"] = schedule
        checks.check_study(validated_config(config))


@pytest.mark.parametrize("probe", ["fit-set size not in the grid", "misspelt top-level key"])
def test_a_config_error_fails_the_dry_run_in_a_few_lines(tmp_path, probe):
    """check_study's error and the schema's, as `snakemake -n` shows them: the message, no traceback."""
    config, expected = CONFIG_ERRORS[probe]
    result = plan(tmp_path, config, "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for part in expected:
        assert part in output, output[-3000:]
    assert len(output.splitlines()) < 15, output  # a few lines, not a schema dump or a traceback
    assert "Traceback" not in output
    assert not (tmp_path / "work" / "results").exists()


def tables_study(tmp_path, **changes) -> dict:
    testbed = tmp_path / "testbed"
    testbed.mkdir(exist_ok=True)
    loss, tasks = lab_tables()
    loss.to_csv(testbed / "loss.csv", index=False)
    tasks.to_csv(testbed / "tasks.csv", index=False)
    config = {"study": "lab", "testbed_format": "tables", "testbed_path": str(testbed), "datasets": {"web": {}},
              "valsets": ["val"], "threshold": 5, "reference_size": "s2",
              "loss_fit_set": [{"size": s, "M": 20} for s in ("s1", "s2", "s3", "s4")] + [{"size": "s1", "M": 80}],
              "fit": {"bootstrap": 0}}
    return {**config, **changes}


def test_per_task_tasks_of_an_imported_testbed_are_those_of_its_table(tmp_path):
    config = validated_config(tables_study(tmp_path, per_task={"tasks": ["nope"]}))
    with pytest.raises(ConfigError, match=r"per_task.tasks\[0\] = 'nope': unknown task 'nope' among the tasks"):
        checks.check_study(config)
    every_task = sorted(lab_tables()[1]["task"].unique())
    checks.check_study(validated_config(tables_study(tmp_path, per_task={"tasks": every_task})))


@pytest.mark.parametrize("key", ["valsets", "datasets"])
def test_a_hostile_name_never_runs(tmp_path, key):
    """`valsets: ['val$(touch X)']` once created X in a real run (the import's command line); the
    schema now refuses the name before any job, and the run leaves no file behind."""
    marker = tmp_path / "work" / "PWNED"  # jobs run in the working directory
    hostile = "val$(touch PWNED)"
    config = tables_study(tmp_path, **({"valsets": [hostile]} if key == "valsets" else {"datasets": {hostile: {}}}))
    result = plan(tmp_path, config)
    output = result.stdout + result.stderr
    assert not marker.exists()
    assert not (tmp_path / "work" / "results").exists()
    assert result.returncode != 0
    assert f"config key `{key}" in output and "does not match" in output


@pytest.mark.parametrize("change,key", [
    ({"sizes__s1;touch PWNED": SHAPE}, "sizes"),
    ({"train__device": "cpu; touch PWNED"}, "train.device"),
    ({"tasks__device": "cpu; touch PWNED"}, "tasks.device"),
])
def test_a_hostile_size_or_device_fails_the_dry_run(tmp_path, change, key):
    """`snakemake -n -p` used to print `--size s1;touch PWNED` and `--device cpu; touch PWNED` in the
    train and eval-tasks commands."""
    result, jobs = snakemake_with_jobs(tmp_path / "work", "--configfile", str(configfile(tmp_path, changed(**change))),
                                       "--dry-run", "--printshellcmds")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key `{key}" in output and "touch PWNED" in output
    assert jobs == []  # refused before any job was planned: no shell command was shown


# Each rule's shell command as Snakemake builds it from the rule files, its placeholders unfilled, by
# rule name: a rule written by a loop (figures.smk, from its table) as well as one written out.
RULE_COMMANDS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(ResourceSettings(), ConfigSettings(configfiles=[Path(sys.argv[2])]),
                            snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[3]))._workflow
    print(json.dumps({rule.name: rule.shellcmd for rule in workflow.rules if rule.shellcmd}))
"""


def shell_commands(folder: Path, config: dict) -> dict[str, str]:
    (folder / "work").mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-c", RULE_COMMANDS, str(REPO / "Snakefile"),
                             str(configfile(folder, config)), str(folder / "work")],
                            check=False, capture_output=True, text=True, env=offline_env(), timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_value_in_a_rule_command_is_quoted(tmp_path):
    """Each placeholder of a shell command (a file, param, wildcard, thread count or resource) carries
    `:q` (shell quoting), in every rule that runs one: those of a study that trains, under
    train.schedule wsd (its trunk rule; the run rule's command is the same under either schedule,
    train or branch), and those of a study of an imported testbed (its import rule)."""
    commands = {**shell_commands(tmp_path / "trains", changed(train__schedule="wsd")),
                **shell_commands(tmp_path / "testbed", tables_study(tmp_path))}
    # Every rule with a shell command: the 23 written out (the run rule under both its names, train
    # and branch: 24) and the 8 figure rules written by a loop.
    assert len(commands) == 24 + 8 and {"train", "branch", "trunk", "import_testbed", "loss_heatmap",
                                        "per_task_figure"} <= set(commands)
    unquoted = [f"{rule}: {field}" for rule, command in commands.items()
                for field in re.findall(r"\{([^{}]*)\}", command) if not field.endswith(":q")]
    assert not unquoted


# ---- issue #33: what the plan block asks that no plan can give, refused when the workflow is planned

# The smoke study has no held-out run: a target of N = 1e6 (every size smaller) sets its plan up.
PLAN_TARGET = [{"N": 1.0e+6, "M": 20}]

# Each: the config, then the whole line `snakemake -n` stops with (the plan job stops with the same:
# tests/test_plan_study.py).
PLAN_REFUSALS = {
    "prior outside its region": (
        changed(plan={"prior": {"form": "gadre", "params": {"E": 1.8, "a": 212, "b": 367, "eta": -0.136}},
                      "default_noise_sd": 0.01}),
        "plan.prior: params eta = -0.136, not > 0: outside the gadre law's region (E >= 0, a >= 0, b >= 0, eta > 0); "
        "give parameters inside it, such as those of a law fitted to a testbed"),
    "prior parameter not a number": (
        changed(plan={"prior": {"form": "chinchilla", "params": {"E": float("nan"), "A": 400, "B": 410, "alpha": 0.34,
                                                                 "beta": 0.28}}, "default_noise_sd": 0.01}),
        "plan.prior: params E = nan, not >= 0: outside the chinchilla law's region (E >= 0, A >= 0, B >= 0, "
        "alpha > 0, beta > 0); give parameters inside it, such as those of a law fitted to a testbed"),
    "noise of no finite amount": (
        changed(plan={"default_noise_sd": float("inf")}),
        "plan.default_noise_sd = inf is not a finite number above 0; give one run's loss sd in log units (e.g. 0.01 "
        "for 1%)"),
    "multiplier below one step": (
        changed(plan={"targets": PLAN_TARGET, "candidates": {"multipliers": [0.001, 5, 10]}}),
        "plan.candidates.multipliers[0] = 0.001 is less than one training step of s1: D = M x N = 12 tokens, where a "
        "step is 1,024 (batch_size x context), and training would take a whole step (M = 0.0884); give multipliers "
        "of at least 0.0884, or drop it"),
    "too few candidates for the fit": (
        changed(plan={"targets": PLAN_TARGET, "candidates": {"multipliers": [5]}}),
        "plan.fit_needs asks for 5 runs over 2 sizes and 2 multipliers, but the 3 candidate runs (s1_M5, s2_M5, "
        "s3_M5) hold only 3 runs and 1 multiplier; add candidate runs (plan.candidates.sizes, "
        "plan.candidates.multipliers) or lower plan.fit_needs"),
    "target named like a run it is not": (
        changed(plan={"targets": [{"name": "s1_M5", "size": "s3", "M": 20}]}),
        "plan.targets[0].name = 's1_M5' names the run s1 at M = 5, but the target is {size: s3, M: 20}; plan.csv "
        "names each run it chooses so: give the target a name of its own, or leave the name out"),
    "two targets of one name": (
        changed(plan={"targets": [{"name": "big", "N": 1.0e+6, "M": 20}, {"name": "big", "N": 2.0e+6, "M": 20}]}),
        "plan.targets[1].name = 'big' is taken by plan.targets[0]: each target is a row of plan.csv; give it a name "
        "of its own"),
    "budget of no finite amount": (
        changed(plan={"targets": PLAN_TARGET, "budget": {"flops": float("inf")}}),
        "plan.budget = {flops: inf} is not a finite amount above 0; give what the plan may spend in FLOPs, or leave "
        "plan.budget out for the FLOPs of the study's loss fit set"),
    "budget below the cheapest valid set": (
        changed(plan={"targets": PLAN_TARGET, "budget": {"flops": 1.0e+6}}),
        "plan.budget = {flops: 1e6} is below the cheapest set that meets plan.fit_needs (5 runs over 2 sizes and 2 "
        "multipliers): s1_M5, s1_M10, s2_M5, s2_M10, s3_M5 at 1.303e11 FLOPs; raise the budget or lower "
        "plan.fit_needs"),
}


@pytest.mark.parametrize("probe", PLAN_REFUSALS)
def test_what_no_plan_can_give_is_refused_when_planned_in_one_line(probe):
    config, expected = PLAN_REFUSALS[probe]
    assert planning_error(config) == expected


def test_the_cheapest_set_a_refused_budget_names_is_the_cheapest_valid_one():
    """Brute force over the 6 candidates of the smoke grid: the named set meets what a fit needs
    (5 runs, 2 sizes, 2 multipliers), and no set that does costs less."""
    config, message = PLAN_REFUSALS["budget below the cheapest valid set"]
    job = jobs.PlanJob.from_config(validated_config(config))
    table = study.candidates_of(job, None, None, study.target_runs(job, None), "flops")
    names = np.array(design.run_names(table))
    valid = [mask for mask in itertools.product([False, True], repeat=len(table))
             if sum(mask) >= 5 and table["size"][list(mask)].nunique() >= 2 and table["M"][list(mask)].nunique() >= 2]
    cheapest = min(valid, key=lambda mask: table["cost"][list(mask)].sum())
    assert f": {', '.join(names[list(cheapest)])} at " in message


# Each: the plan block of a study of a lab's tables (held-out run s5 at M = 80), then the line.
IMPORTED_PLAN_REFUSALS = {
    "candidate size not in the testbed": (
        {"candidates": {"sizes": ["s1", "s9"]}},
        "plan.candidates.sizes[1] = 's9' is not a size of the loss table's runs on web/val (its sizes: s1, s2, s3, "
        "s4, s5); name one of them, or leave plan.candidates.sizes out for every size smaller than the largest target"),
    "candidate multiplier not in the testbed": (
        {"candidates": {"multipliers": [20, 30]}},
        "plan.candidates.multipliers[1] = 30 is not a multiplier of the loss table's runs on web/val (its "
        "multipliers: 10, 20, 40, 80); name one of them, or leave plan.candidates.multipliers out for every one"),
    "target size not in the testbed": (
        {"targets": [{"size": "s9", "M": 20}]},
        "plan.targets[0].size = 's9' is neither under `sizes` nor a size of the loss table's runs (known: s1, s2, s3, "
        "s4, s5); name one of them, or give the target by its N"),
    "target named like a run of the testbed": (
        {"targets": [{"name": "s2_M40", "size": "s5", "M": 40}]},
        "plan.targets[0].name = 's2_M40' names the run s2 at M = 40, but the target is {size: s5, M: 40}; plan.csv "
        "names each run it chooses so: give the target a name of its own, or leave the name out"),
    "too few candidates for the fit": (
        {"fit_needs": {"sizes": 5}},
        "plan.fit_needs asks for 5 runs over 5 sizes and 2 multipliers, but the 16 candidate runs (s1_M10, s1_M20, "
        "s1_M40, s1_M80, s2_M10, s2_M20, s2_M40, s2_M80, s3_M10, s3_M20, s3_M40, s3_M80 and 4 more) hold only 4 "
        "sizes; add candidate runs (plan.candidates.sizes, plan.candidates.multipliers) or lower plan.fit_needs"),
    "budget below the cheapest valid set": (
        {"budget": {"flops": 1.0e+6}},
        "plan.budget = {flops: 1e6} is below the cheapest set that meets plan.fit_needs (5 runs over 2 sizes and 2 "
        "multipliers): s1_M10, s1_M20, s1_M40, s1_M80, s2_M10 at 1.14e19 FLOPs; raise the budget or lower "
        "plan.fit_needs"),
}


@pytest.mark.parametrize("probe", IMPORTED_PLAN_REFUSALS)
def test_what_an_imported_testbed_lacks_is_refused_when_planned_in_one_line(tmp_path, probe):
    plan_block, expected = IMPORTED_PLAN_REFUSALS[probe]
    assert planning_error(tables_study(tmp_path, plan=plan_block, held_out=[{"size": "s5", "M": 80}])) == expected


def held_out_study() -> dict:
    """The smoke study fitted to s1 and s2 only, s3 at M = 10 held out: its default plan (targets
    the held-out run, candidates the 4 smaller runs) cannot meet plan.fit_needs (5 runs)."""
    return changed(loss_fit_set=[p for p in SMOKE["loss_fit_set"] if p["size"] != "s3"],
                   held_out=[{"size": "s3", "M": 10}])


def test_a_default_plan_that_cannot_be_made_stops_only_a_study_that_writes_a_plan_block(tmp_path):
    """What only the plan's defaults could not give is the plan job's to refuse, in a study that
    never asked for a plan; `snakemake -n plan` of one that writes a `plan` block stops in one line."""
    checks.check_study(validated_config(held_out_study()), plan_written=False)
    passed = snakemake(tmp_path / "work", "--dry-run", "--configfile", str(configfile(tmp_path, held_out_study())),
                       check=False, timeout=120)
    assert passed.returncode == 0, (passed.stdout + passed.stderr)[-3000:]
    written = {**held_out_study(), "plan": {"budget": {"flops": 1.0e+12}}}
    expected = ("plan.fit_needs asks for 5 runs over 2 sizes and 2 multipliers, but the 4 candidate runs (s1_M5, "
                "s1_M10, s2_M5, s2_M10) hold only 4 runs; add candidate runs (plan.candidates.sizes, "
                "plan.candidates.multipliers) or lower plan.fit_needs")
    assert planning_error(written) == expected
    refused = snakemake(tmp_path / "work", "plan", "--dry-run", "--configfile", str(configfile(tmp_path, written)),
                        check=False, timeout=120)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and expected in output.splitlines(), output[-3000:]
    assert "Traceback" not in output and len(output.splitlines()) < 15, output
    assert not (tmp_path / "work" / "results").exists()
