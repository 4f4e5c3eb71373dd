# Task selection, the loss and error laws, and the chained predictions.



rule select_tasks:
    input:
        tasks=TASK_TABLE,
    output:
        f"{RESULTS}/laws/tasks_t{{t}}.json",
    params:
        reference_size=config.get("reference_size"),  # none in a loss-only study
    conda:
        ENV
    log:
        f"{LOGS}/select_tasks_t{{t}}.log",
    shell:
        "lmscale select-tasks --tasks-table {input.tasks:q} --reference-size {params.reference_size:q}"
        " --threshold {wildcards.t:q} --out {output:q} > {log:q} 2>&1"


rule fit_loss:
    input:
        loss=LOSS_TABLE,
    output:
        f"{LAWS}/loss_law.json",
    params:
        fit_set=study_config.to_json(config["loss_fit_set"]),
        form=FIT["form"],
        method=FIT["method"],
        huber_delta=FIT["huber_delta"],
        bootstrap=FIT["bootstrap"],
        seed=FIT["seed"],
    conda:
        ENV
    log:
        f"{LOGS}/fit_loss/{{dataset}}/{{valset}}.log",
    shell:
        "lmscale fit-loss --loss-table {input.loss:q} --dataset {wildcards.dataset:q}"
        " --valset {wildcards.valset:q} --fit-set {params.fit_set:q} --form {params.form:q}"
        " --method {params.method:q} --huber-delta {params.huber_delta:q}"
        " --bootstrap {params.bootstrap:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


rule fit_error:
    input:
        loss=LOSS_TABLE,
        tasks=TASK_TABLE,
        selection=error_fit_tasks,
    output:
        f"{LAWS}/error_law_{{taskset}}.json",
    params:
        fit_set=study_config.to_json(config["loss_fit_set"] + config.get("error_fit_extra", [])),
        tasks=lambda w, input: ["--all-tasks"] if w.taskset == "all" else ["--selection", input.selection],
        bootstrap=FIT["bootstrap"],
        seed=FIT["seed"],
    conda:
        ENV
    log:
        f"{LOGS}/fit_error/{{dataset}}/{{valset}}_{{taskset}}.log",
    shell:
        "lmscale fit-error --loss-table {input.loss:q} --tasks-table {input.tasks:q}"
        " --dataset {wildcards.dataset:q} --valset {wildcards.valset:q} --fit-set {params.fit_set:q}"
        " {params.tasks:q} --bootstrap {params.bootstrap:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


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
        targets=study_config.to_json(config.get("targets", [])),
        held_out=study_config.to_json(config.get("held_out", [])),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_t{{t}}.log",
    shell:
        "lmscale predict --loss-table {input.loss:q} --tasks-table {input.tasks:q}"
        " --loss-law {input.loss_law:q} --error-law {input.error_law:q} --error-law-all {input.error_law_all:q}"
        " --dataset {wildcards.dataset:q} --valset {wildcards.valset:q} --targets {params.targets:q}"
        " --held-out {params.held_out:q} --out {output:q} > {log:q} 2>&1"


# A loss-only study (a `tables` testbed without tasks.csv): the loss law's predictions alone.
rule predict_loss:
    input:
        loss=LOSS_TABLE,
        loss_law=f"{LAWS}/loss_law.json",
    output:
        f"{RESULTS}/predictions/{{dataset}}/{{valset}}_loss.csv",
    params:
        targets=study_config.to_json(config.get("targets", [])),
        held_out=study_config.to_json(config.get("held_out", [])),
    conda:
        ENV
    log:
        f"{LOGS}/predict/{{dataset}}/{{valset}}_loss.log",
    shell:
        "lmscale predict --loss-table {input.loss:q} --loss-law {input.loss_law:q}"
        " --dataset {wildcards.dataset:q} --valset {wildcards.valset:q} --targets {params.targets:q}"
        " --held-out {params.held_out:q} --out {output:q} > {log:q} 2>&1"
