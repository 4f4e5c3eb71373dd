# One rule per figure, so a changed plot setting redraws only the figures it touches.
# Each figure in every configured format (figure_files): common.smk.

rule loss_heatmap:
    input:
        loss=LOSS_TABLE,
        law=f"{LAWS}/loss_law.json",
    output:
        figure_files("loss_heatmap"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "loss-heatmap", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/loss_heatmap.log",
    shell:
        "lmscale figure --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.law:q}"
        " --out {output:q} > {log:q} 2>&1"


rule loss_vs_compute:
    input:
        loss=LOSS_TABLE,
        law=f"{LAWS}/loss_law.json",
    output:
        figure_files("loss_vs_compute"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "loss-vs-compute", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/loss_vs_compute.log",
    shell:
        "lmscale figure --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.law:q}"
        " --out {output:q} > {log:q} 2>&1"


rule error_heatmap:
    input:
        predictions=f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv",
    output:
        figure_files("error_heatmap_t{t}"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "error-heatmap", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/error_heatmap_t{{t}}.log",
    shell:
        "lmscale figure --job {params.job:q} --predictions {input.predictions:q} --out {output:q} > {log:q} 2>&1"


rule error_vs_loss:
    input:
        predictions=f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv",
        law=f"{LAWS}/error_law_t{{t}}.json",
        law_all=f"{LAWS}/error_law_all.json",
    output:
        figure_files("error_vs_loss_t{t}"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "error-vs-loss", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/error_vs_loss_t{{t}}.log",
    shell:
        "lmscale figure --job {params.job:q} --predictions {input.predictions:q} --error-law {input.law:q}"
        " --error-law-all {input.law_all:q} --out {output:q} > {log:q} 2>&1"


rule backtest_figure:
    input:
        table=f"{BACKTEST}.csv",
        summary=f"{BACKTEST}.json",
    output:
        figure_files("backtest_{tag}"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "backtest", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/backtest_{{tag}}.log",
    shell:
        "lmscale figure --job {params.job:q} --backtest {input.table:q} --summary {input.summary:q}"
        " --out {output:q} > {log:q} 2>&1"


rule calibration_figure:
    input:
        predictions=f"{PREDICTIONS}.csv",
        summary=f"{PREDICTIONS}_calibration.json",
    output:
        figure_files("calibration_{tag}"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "calibration", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/calibration_{{tag}}.log",
    shell:
        "lmscale figure --job {params.job:q} --predictions {input.predictions:q} --summary {input.summary:q}"
        " --out {output:q} > {log:q} 2>&1"


# What a budget buys and what over-training costs (lmscale.figures.isoflop): the loss law alone, so a
# changed target redraws nothing here; the budgets are `figures.isoflop_budgets` (null: among the runs).
rule isoflop:
    input:
        loss=LOSS_TABLE,
        law=f"{LAWS}/loss_law.json",
    output:
        figure_files("isoflop"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "isoflop", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/isoflop.log",
    shell:
        "lmscale figure --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.law:q}"
        " --out {output:q} > {log:q} 2>&1"


rule per_task_figure:
    input:
        table=f"{PER_TASK}.csv",
        summary=f"{PER_TASK}.json",
    output:
        figure_files("per_task_t{t}"),
    params:
        job=lambda w: jobs.FigureJob.from_config(config, "per-task", w.dataset, w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/per_task_t{{t}}.log",
    shell:
        "lmscale figure --job {params.job:q} --per-task {input.table:q} --summary {input.summary:q}"
        " --out {output:q} > {log:q} 2>&1"
