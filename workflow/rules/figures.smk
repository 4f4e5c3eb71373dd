# One rule per figure, so a changed plot setting redraws only the figures it touches.

FIGURE_SETTINGS = {"formats": ["png", "pdf"], "dpi": 150, "heatmap_max_percent": 20}
FIGURE_SETTINGS.update(config.get("figures", {}))
FIGURE_DIR = RESULTS + "/figures/{dataset}/{valset}"


def figure_files(name):
    """The figure in every configured format; the PNG goes into the report."""
    files = []
    for ext in FIGURE_SETTINGS["formats"]:
        path = f"{FIGURE_DIR}/{name}.{ext}"
        if ext == "png":
            path = report(
                path,
                caption=f"../report/{name.split('_t{t}')[0]}.rst",
                category="{dataset}",
                subcategory="{valset}",
                labels={"figure": name.replace("_t{t}", ""), "dataset": "{dataset}", "valset": "{valset}"},
            )
        files.append(path)
    return files


def figure_targets():
    t = threshold_tag()
    names = ["loss_heatmap", "loss_vs_compute", f"error_heatmap_{t}", f"error_vs_loss_{t}"]
    return [
        f"{RESULTS}/figures/{dataset}/{valset}/{name}.{ext}"
        for dataset in analysis_datasets()
        for valset in config["valsets"]
        for name in names
        for ext in FIGURE_SETTINGS["formats"]
    ]


rule loss_heatmap:
    input:
        loss=LOSS_TABLE,
        law=LAWS + "/loss_law.json",
    output:
        figure_files("loss_heatmap"),
    params:
        max_percent=FIGURE_SETTINGS["heatmap_max_percent"],
        dpi=FIGURE_SETTINGS["dpi"],
    log:
        LOGS + "/figures/{dataset}/{valset}/loss_heatmap.log",
    shell:
        "lmscale figure loss-heatmap --dataset {wildcards.dataset} --valset {wildcards.valset}"
        " --loss-table {input.loss} --loss-law {input.law} --max-percent {params.max_percent}"
        " --dpi {params.dpi} --out {output} > {log} 2>&1"


rule loss_vs_compute:
    input:
        loss=LOSS_TABLE,
        law=LAWS + "/loss_law.json",
    output:
        figure_files("loss_vs_compute"),
    params:
        dpi=FIGURE_SETTINGS["dpi"],
    log:
        LOGS + "/figures/{dataset}/{valset}/loss_vs_compute.log",
    shell:
        "lmscale figure loss-vs-compute --dataset {wildcards.dataset} --valset {wildcards.valset}"
        " --loss-table {input.loss} --loss-law {input.law} --dpi {params.dpi} --out {output} > {log} 2>&1"


rule error_heatmap:
    input:
        predictions=RESULTS + "/predictions/{dataset}/{valset}_t{t}.csv",
    output:
        figure_files("error_heatmap_t{t}"),
    params:
        max_percent=FIGURE_SETTINGS["heatmap_max_percent"],
        dpi=FIGURE_SETTINGS["dpi"],
    log:
        LOGS + "/figures/{dataset}/{valset}/error_heatmap_t{t}.log",
    shell:
        "lmscale figure error-heatmap --dataset {wildcards.dataset} --valset {wildcards.valset}"
        " --predictions {input.predictions} --max-percent {params.max_percent}"
        " --dpi {params.dpi} --out {output} > {log} 2>&1"


rule error_vs_loss:
    input:
        predictions=RESULTS + "/predictions/{dataset}/{valset}_t{t}.csv",
        law=LAWS + "/error_law_t{t}.json",
        law_all=LAWS + "/error_law_all.json",
    output:
        figure_files("error_vs_loss_t{t}"),
    params:
        dpi=FIGURE_SETTINGS["dpi"],
    log:
        LOGS + "/figures/{dataset}/{valset}/error_vs_loss_t{t}.log",
    shell:
        "lmscale figure error-vs-loss --dataset {wildcards.dataset} --valset {wildcards.valset}"
        " --predictions {input.predictions} --error-law {input.law} --error-law-all {input.law_all}"
        " --dpi {params.dpi} --out {output} > {log} 2>&1"
