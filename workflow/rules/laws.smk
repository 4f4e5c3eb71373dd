# Task selection, the loss and error laws, and the chained predictions.
# The input function of the chained laws (chained_inputs): common.smk.


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
        # The selection file of a threshold task set; nothing for the all-task average.
        selection=lambda w: [] if w.taskset == "all" else f"{RESULTS}/laws/tasks_{w.taskset}.json",
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


rule backtest:
    input:
        unpack(chained_inputs),
    output:
        table=f"{BACKTEST}.csv",
        summary=f"{BACKTEST}.json",
    params:
        job=lambda w: jobs.BacktestJob.from_config(config, w.dataset, w.valset, w.tag).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/backtest/{{dataset}}/{{valset}}_{{tag}}.log",
    shell:
        "lmscale backtest --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.loss_law:q}"
        " --tasks-table {input.tasks:q} --error-law {input.error_law:q} --error-law-all {input.error_law_all:q}"
        " --out {output.table:q} --summary {output.summary:q} > {log:q} 2>&1"


# `{tag}` is t{t} (the error laws over the tasks kept at t) or `loss` (a loss-only study).
rule predict:
    input:
        unpack(chained_inputs),
        backtest=f"{BACKTEST}.csv",
    output:
        table=f"{PREDICTIONS}.csv",
        calibration=f"{PREDICTIONS}_calibration.json",
    params:
        job=lambda w: jobs.PredictJob.from_config(config, w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_{{tag}}.log",
    shell:
        "lmscale predict --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.loss_law:q}"
        " --tasks-table {input.tasks:q} --error-law {input.error_law:q} --error-law-all {input.error_law_all:q}"
        " --backtest {input.backtest:q} --out {output.table:q} --calibration {output.calibration:q} > {log:q} 2>&1"


# Each task's error law chained from the loss law (lmscale.analysis.task_laws); its log is the predict log's
# per-task part. Only a study with tasks has it (t{t}, never `loss`).
rule per_task:
    input:
        loss=LOSS_TABLE,
        tasks=TASK_TABLE,
        loss_law=f"{LAWS}/loss_law.json",
        selection=f"{RESULTS}/laws/tasks_t{{t}}.json",
    output:
        table=f"{PER_TASK}.csv",
        summary=f"{PER_TASK}.json",
    params:
        job=lambda w: jobs.PerTaskJob.from_config(config, w.dataset, w.valset, f"t{w.t}").to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_t{{t}}_per_task.log",
    shell:
        "lmscale per-task --job {params.job:q} --loss-table {input.loss:q} --tasks-table {input.tasks:q}"
        " --loss-law {input.loss_law:q} --selection {input.selection:q} --out {output.table:q}"
        " --summary {output.summary:q} > {log:q} 2>&1"
