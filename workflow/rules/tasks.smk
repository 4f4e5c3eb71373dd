# Downstream tasks through lm-eval: the generated local suite, then one evaluation per model.


rule task_suite:
    input:
        heldout=heldout_split(),
        definitions=[str(offline_task_suite.task_yaml(name)) for name in local_tasks()],
        tokenizer=TOKENIZER,
    output:
        directory(TASK_SUITE),
    params:
        job=lambda w: jobs.TaskSuiteJob.from_config(config, local_tasks(), shortest_context()).to_json(),
        tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/task_suite.log",
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "lmscale task-suite --job {params.job:q} --heldout {input.heldout:q} --tokenizer {params.tokenizer:q}"
        " --out {output:q} > {log:q} 2>&1"


rule eval_tasks:
    input:
        run=RUN_JSON,
        suite=TASK_SUITE,
        table=task_table_input(),
        # lm-eval's datasets in the Hugging Face cache (the prefetch job); none for the offline suite.
        prefetched=prefetched(lm_eval_task_selection()),
    output:
        TASK_EVAL,
    params:
        job=lambda w: jobs.EvalTasksJob.from_config(config, task_selection(), w.dataset, w.size, w.mult).to_json(),
        # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
        options=jobs.EvalTasksOptions.from_config(config),
        model=lambda w, input: os.path.dirname(input.run),
    conda:
        ENV
    log:
        f"{LOGS}/eval_tasks/{{dataset}}/{RUN}.log",
    threads: config["tasks"]["threads"]
    resources:
        mem_mb=4000,
    shell:
        # Fully offline: nothing may reach the Hugging Face Hub, checkpoints and data are local.
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 lmscale eval-tasks --job {params.job:q}"
        " --options {params.options:q} --model {params.model:q} --suite {input.suite:q}"
        " --threads {threads:q} --out {output:q} > {log:q} 2>&1"
