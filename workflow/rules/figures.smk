# One rule per figure, so a changed plot setting redraws only the figures it touches.

rule loss_heatmap:
    input:
        loss=LOSS_TABLE,
        law=f"{LAWS}/loss_law.json",
    output:
        figure_files("loss_heatmap"),
    params:
        max_percent=FIGURE_SETTINGS["heatmap_max_percent"],
        dpi=FIGURE_SETTINGS["dpi"],
        held_out=study_config.to_json(config.get("held_out", [])),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/loss_heatmap.log",
    shell:
        "lmscale figure loss-heatmap --dataset {wildcards.dataset:q} --valset {wildcards.valset:q}"
        " --loss-table {input.loss:q} --loss-law {input.law:q} --max-percent {params.max_percent:q}"
        " --held-out {params.held_out:q} --dpi {params.dpi:q} --out {output:q} > {log:q} 2>&1"


rule loss_vs_compute:
    input:
        loss=LOSS_TABLE,
        law=f"{LAWS}/loss_law.json",
    output:
        figure_files("loss_vs_compute"),
    params:
        dpi=FIGURE_SETTINGS["dpi"],
        held_out=study_config.to_json(config.get("held_out", [])),
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/loss_vs_compute.log",
    shell:
        "lmscale figure loss-vs-compute --dataset {wildcards.dataset:q} --valset {wildcards.valset:q}"
        " --loss-table {input.loss:q} --loss-law {input.law:q} --held-out {params.held_out:q}"
        " --dpi {params.dpi:q} --out {output:q} > {log:q} 2>&1"


rule error_heatmap:
    input:
        predictions=f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv",
    output:
        figure_files("error_heatmap_t{t}"),
    params:
        max_percent=FIGURE_SETTINGS["heatmap_max_percent"],
        dpi=FIGURE_SETTINGS["dpi"],
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/error_heatmap_t{{t}}.log",
    shell:
        "lmscale figure error-heatmap --dataset {wildcards.dataset:q} --valset {wildcards.valset:q}"
        " --predictions {input.predictions:q} --max-percent {params.max_percent:q}"
        " --dpi {params.dpi:q} --out {output:q} > {log:q} 2>&1"


rule error_vs_loss:
    input:
        predictions=f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv",
        law=f"{LAWS}/error_law_t{{t}}.json",
        law_all=f"{LAWS}/error_law_all.json",
    output:
        figure_files("error_vs_loss_t{t}"),
    params:
        dpi=FIGURE_SETTINGS["dpi"],
    conda:
        ENV
    log:
        f"{LOGS}/figures/{{dataset}}/{{valset}}/error_vs_loss_t{{t}}.log",
    shell:
        "lmscale figure error-vs-loss --dataset {wildcards.dataset:q} --valset {wildcards.valset:q}"
        " --predictions {input.predictions:q} --error-law {input.law:q} --error-law-all {input.law_all:q}"
        " --dpi {params.dpi:q} --out {output:q} > {log:q} 2>&1"
