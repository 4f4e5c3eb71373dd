# Downstream tasks through lm-eval: the generated local suite, then one evaluation per model.


rule task_suite:
    input:
        heldout=heldout_split(),
        definitions=[str(offline_task_suite.task_yaml(name)) for name in local_tasks()],
        tokenizer=TOKENIZER,
    output:
        directory(TASK_SUITE),
    params:
        tasks=",".join(local_tasks()),
        heldout=lambda w, input: ["--heldout", input.heldout] if input.heldout else [],
        seed=tasks_config()["seed"],
        size=tasks_config()["size"],
        fewshot_pool=tasks_config()["fewshot_pool"],
        context_lines=tasks_config()["context_lines"],
        context=lambda w: shortest_context(),
        tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/task_suite.log",
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "lmscale task-suite --out {output:q} --tasks {params.tasks:q} {params.heldout:q}"
        " --seed {params.seed:q} --size {params.size:q} --fewshot-pool {params.fewshot_pool:q}"
        " --context-lines {params.context_lines:q} --tokenizer {params.tokenizer:q} --context {params.context:q}"
        " > {log:q} 2>&1"


rule eval_tasks:
    input:
        run=RUN_JSON,
        suite=TASK_SUITE,
        table=task_table_input(),
    output:
        TASK_EVAL,
    params:
        model=lambda w, input: os.path.dirname(input.run),
        selection=task_selection(),
        limit=lambda w: ["--limit", tasks_config()["limit"]] if tasks_config()["limit"] else [],
        batch_size=tasks_config()["batch_size"],
        device=tasks_config()["device"],
    conda:
        ENV
    log:
        f"{LOGS}/eval_tasks/{{dataset}}/{RUN}.log",
    threads: tasks_config()["threads"]
    resources:
        mem_mb=4000,
    shell:
        # Fully offline: nothing may reach the Hugging Face Hub, checkpoints and data are local.
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 lmscale eval-tasks --model {params.model:q}"
        " --suite {input.suite:q} --tasks-config {params.selection:q} {params.limit:q}"
        " --batch-size {params.batch_size:q} --device {params.device:q} --threads {threads}"
        " --dataset {wildcards.dataset:q} --size {wildcards.size:q} --mult {wildcards.mult:q}"
        " --out {output:q} > {log:q} 2>&1"
