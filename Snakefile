# lmscale: a language-model scaling study from raw text to fitted laws.
# Stages live in workflow/rules/*.smk; each rule calls one `lmscale <stage>` command.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from lmscale import checks
from lmscale import config as study_config

min_version("9.0")

SCHEMA = "workflow/schemas/config.schema.yaml"

# A preset given with --configfile stands alone: merging it over the default
# study would leak the default's datasets and sizes into it.
if not workflow.overwrite_configfiles:
    # A config.yaml that is not YAML ends in one line naming its line and column (Snakemake's
    # own message names neither; a --configfile Snakemake reads before this file runs).
    if os.path.exists("config.yaml"):
        study_config.check_yaml_file("config.yaml")

    configfile: "config.yaml"


# `--config 'fit={bootstrap: 20}'` typed as a config file would type it: Snakemake keeps the
# numbers and booleans of a nested value as text.
study_config.typed_command_line(config, workflow.config_settings.config_args, os.path.join(workflow.basedir, SCHEMA))
# What the config file itself says, before the schema's defaults make a written key and a filled one alike.
checks.check_written(config)
# A study that writes no `plan` block may never plan: what only its default plan could not give
# (too few candidates, a budget below the cheapest valid set) is left to the plan job to refuse.
plan_written = "plan" in config
# Fills in the schema's defaults: the schema is the one place a default is written.
# A value that breaks the schema is reported as its key, the value and the rule.
try:
    validate(config, SCHEMA, set_default=True)
except WorkflowError as error:
    raise study_config.schema_error(error) from None
# Whatever can be checked before a model trains is checked now: `snakemake -n` fails on it
# (an imported testbed's tables are read now: they are small).
checks.check_study(config, plan_written)

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/testbed.smk"
include: "workflow/rules/laws.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/plan.smk"


# An input function (common.smk): whether a tables testbed has tasks.csv is read when the jobs
# are planned, not while this file is parsed.
rule all:
    input:
        all_targets,
    default_target: True
