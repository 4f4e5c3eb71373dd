# Task selection, the loss and error laws, and the chained predictions.


rule select_tasks:
    input:
        tasks=TASK_TABLE,
    output:
        f"{RESULTS}/laws/tasks_t{{t}}.json",
    params:
        job=lambda w: jobs.SelectTasksJob.from_config(config, w.t).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/select_tasks_t{{t}}.log",
    shell:
        "lmscale select-tasks --job {params.job:q} --tasks-table {input.tasks:q} --out {output:q} > {log:q} 2>&1"


rule fit_loss:
    input:
        loss=LOSS_TABLE,
    output:
        f"{LAWS}/loss_law.json",
    params:
        job=lambda w: jobs.FitLossJob.from_config(config, w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/fit_loss/{{dataset}}/{{valset}}.log",
    shell:
        "lmscale fit-loss --job {params.job:q} --loss-table {input.loss:q} --out {output:q} > {log:q} 2>&1"


rule fit_error:
    input:
        loss=LOSS_TABLE,
        tasks=TASK_TABLE,
        selection=error_fit_tasks,
    output:
        f"{LAWS}/error_law_{{taskset}}.json",
    params:
        job=lambda w: jobs.FitErrorJob.from_config(config, w.dataset, w.valset, w.taskset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/fit_error/{{dataset}}/{{valset}}_{{taskset}}.log",
    shell:
        "lmscale fit-error --job {params.job:q} --loss-table {input.loss:q} --tasks-table {input.tasks:q}"
        " --selection {input.selection:q} --out {output:q} > {log:q} 2>&1"


rule predict:
    input:
        loss=LOSS_TABLE,
        tasks=TASK_TABLE,
        loss_law=f"{LAWS}/loss_law.json",
        error_law=f"{LAWS}/error_law_t{{t}}.json",
        error_law_all=f"{LAWS}/error_law_all.json",
    output:
        f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv",
    params:
        job=lambda w: jobs.PredictJob.from_config(config, w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_t{{t}}.log",
    shell:
        "lmscale predict --job {params.job:q} --loss-table {input.loss:q} --tasks-table {input.tasks:q}"
        " --loss-law {input.loss_law:q} --error-law {input.error_law:q} --error-law-all {input.error_law_all:q}"
        " --out {output:q} > {log:q} 2>&1"


# A loss-only study (a `tables` testbed without tasks.csv): the loss law's predictions alone.
rule predict_loss:
    input:
        loss=LOSS_TABLE,
        loss_law=f"{LAWS}/loss_law.json",
    output:
        f"{RESULTS}/predictions/{{dataset}}/{{valset}}_loss.csv",
    params:
        job=lambda w: jobs.PredictJob.from_config(config, w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_loss.log",
    shell:
        "lmscale predict --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.loss_law:q}"
        " --out {output:q} > {log:q} 2>&1"
