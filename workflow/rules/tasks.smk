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
        heldout=lambda w, input: f"--heldout {input.heldout}" if input.heldout else "",
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
        "lmscale task-suite --out {output} --tasks {params.tasks:q} {params.heldout}"
        " --seed {params.seed} --size {params.size} --fewshot-pool {params.fewshot_pool}"
        " --context-lines {params.context_lines} --tokenizer {params.tokenizer:q} --context {params.context}"
        " > {log} 2>&1"


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
        limit=lambda w: f"--limit {tasks_config()['limit']}" if tasks_config()["limit"] else "",
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
        " --suite {input.suite:q} --tasks-config {params.selection:q} {params.limit}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " --dataset {wildcards.dataset} --size {wildcards.size} --mult {wildcards.mult}"
        " --out {output} > {log} 2>&1"
