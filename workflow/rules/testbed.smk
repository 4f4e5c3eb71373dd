# The testbed tables: collected from this study's evals, or imported from published results.

if trains_models():

    # Nothing but its inputs decides the tables: no job description.
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
    IMPORT = jobs.ImportTestbedJob.from_config(config)

    rule import_testbed:
        input:
            # Every file of testbed_path the import reads: an edited table reruns the import and what
            # reads the tables. A file rewritten with the same content reruns nothing: Snakemake 9
            # reruns a job for an input newer than its outputs only if the input's checksum differs
            # from the one it recorded when the job ran. It records checksums of files up to
            # --max-checksum-file-size (100 MB in profiles/default, 1 MB without it). `--rerun-triggers`
            # changes nothing here: Snakemake 9.27 checks a newer input whether or not mtime is listed.
            lambda w: importers.testbed_files(IMPORT),
        output:
            loss=LOSS_TABLE,
            tasks=TASK_TABLE,
        params:
            job=IMPORT.to_json(),
        conda:
            ENV
        log:
            f"{LOGS}/import_testbed.log",
        shell:
            "lmscale import-testbed --job {params.job:q} --loss-out {output.loss:q} --tasks-out {output.tasks:q}"
            " > {log:q} 2>&1"
