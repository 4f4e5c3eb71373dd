# Downstream tasks through lm-eval: the generated local suite, then one evaluation per model.
# The longer input functions (local_tasks, heldout_split, task_table, prefetched): common.smk.

TASK_SUITE = f"{RESULTS}/tasks/suite"


rule task_suite:
    input:
        heldout=heldout_split,
        definitions=lambda w: [str(offline_tasks.task_yaml(name)) for name in local_tasks()],
        tokenizer=TOKENIZER,
    output:
        directory(TASK_SUITE),
    params:
        # The shortest context among the trained models: every task answer must fit in it.
        job=lambda w: jobs.TaskSuiteJob.from_config(
            config, local_tasks(), min(config["sizes"][run.size]["context"] for run in training_runs())
        ).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/task_suite.log",
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "lmscale task-suite --job {params.job:q} --heldout {input.heldout:q} --tokenizer {input.tokenizer:q}"
        " --out {output:q} > {log:q} 2>&1"


rule eval_tasks:
    input:
        run=RUN_JSON,
        suite=TASK_SUITE,
        table=task_table,
        # lm-eval's datasets in the Hugging Face cache (the prefetch job); none for the offline suite.
        prefetched=prefetched(lm_eval_task_selection),
    output:
        TASK_EVAL,
    params:
        job=lambda w: jobs.EvalTasksJob.from_config(config, task_selection(), w.dataset, w.size, w.mult).to_json(),
        # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
        options=jobs.EvalTasksOptions.from_config(config),
    conda:
        ENV
    log:
        f"{LOGS}/eval_tasks/{{dataset}}/{RUN}.log",
    threads: config["tasks"]["threads"]
    resources:
        mem_mb=4000,
    # Fully offline: nothing may reach the Hugging Face Hub, checkpoints and data are local.
    shell:
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 lmscale eval-tasks --job {params.job:q}"
        " --options {params.options:q} --model {input.run:q} --suite {input.suite:q}"
        " --threads {threads:q} --out {output:q} > {log:q} 2>&1"
