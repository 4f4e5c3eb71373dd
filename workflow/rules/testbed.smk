# The testbed tables: collected from this study's evals, or imported from published results.

if trains_models():

    rule collect:
        input:
            runs=expand_runs(RUN_JSON),
            loss_evals=[
                path
                for valset in config["validation_sets"]
                for path in expand_runs(LOSS_EVAL, valset=valset)
            ],
            task_evals=expand_runs(TASK_EVAL),
        output:
            loss=LOSS_TABLE,
            tasks=TASK_TABLE,
        conda:
            ENV
        log:
            f"{LOGS}/collect.log",
        shell:
            "lmscale collect --runs {input.runs:q} --loss-evals {input.loss_evals:q}"
            " --task-evals {input.task_evals:q} --loss-out {output.loss:q} --tasks-out {output.tasks:q}"
            " > {log:q} 2>&1"

else:

    rule import_testbed:
        output:
            loss=LOSS_TABLE,
            tasks=TASK_TABLE,
        params:
            format=config["testbed_format"],
            path=config["testbed_path"],
            datasets=analysis_datasets(),
            valsets=config["valsets"],
            size_labels=study_config.to_json(config.get("size_labels", {})),
        conda:
            ENV
        log:
            f"{LOGS}/import_testbed.log",
        shell:
            "lmscale import-testbed --format {params.format:q} --path {params.path:q}"
            " --datasets {params.datasets:q} --valsets {params.valsets:q}"
            " --size-labels {params.size_labels:q} --loss-out {output.loss:q} --tasks-out {output.tasks:q}"
            " > {log:q} 2>&1"
