# One rule per figure, so a changed plot setting redraws only the figures it touches. The rules
# differ only in their line of FIGURE_RULES; the loop below it writes them, each the same shape:
# `lmscale figure` with the figure's job, the files it reads, the figure in every configured
# format (figure_files, its PNG in the report) and its log (figure_job, figure_files and
# figure_inputs: common.smk).

LOSS_LAW = f"{LAWS}/loss_law.json"
TASK_PREDICTIONS = f"{RESULTS}/predictions/{{dataset}}/{{valset}}_t{{t}}.csv"

# rule name: {kind: the figure's kind (its job, lmscale.jobs.FigureJob),
#             output: the file it writes under figures/{dataset}/{valset}/ (its log: the same name),
#             caption: its PNG's caption in the report (workflow/report/),
#             inputs: {input name: the file}, in the order lmscale.jobs.FIGURE_INPUTS gives for its kind}
FIGURE_RULES = {
    "loss_heatmap": {
        "kind": "loss-heatmap",
        "output": "loss_heatmap",
        "caption": "loss_heatmap.rst",
        "inputs": {"loss_table": LOSS_TABLE, "loss_law": LOSS_LAW},
    },
    "loss_vs_compute": {
        "kind": "loss-vs-compute",
        "output": "loss_vs_compute",
        "caption": "loss_vs_compute.rst",
        "inputs": {"loss_table": LOSS_TABLE, "loss_law": LOSS_LAW},
    },
    "error_heatmap": {
        "kind": "error-heatmap",
        "output": "error_heatmap_t{t}",
        "caption": "error_heatmap.rst",
        "inputs": {"predictions": TASK_PREDICTIONS},
    },
    "error_vs_loss": {
        "kind": "error-vs-loss",
        "output": "error_vs_loss_t{t}",
        "caption": "error_vs_loss.rst",
        "inputs": {
            "predictions": TASK_PREDICTIONS,
            "error_law": f"{LAWS}/error_law_t{{t}}.json",
            "error_law_all": f"{LAWS}/error_law_all.json",
        },
    },
    "backtest_figure": {
        "kind": "backtest",
        "output": "backtest_{tag}",
        "caption": "backtest.rst",
        "inputs": {"backtest": f"{BACKTEST}.csv", "summary": f"{BACKTEST}.json"},
    },
    "calibration_figure": {
        "kind": "calibration",
        "output": "calibration_{tag}",
        "caption": "calibration.rst",
        "inputs": {
            "predictions": f"{PREDICTIONS}.csv",
            "summary": f"{PREDICTIONS}_calibration.json",
        },
    },
    # What a budget buys and what over-training costs (lmscale.figures.isoflop): the loss law alone, so a
    # changed target redraws nothing here; the budgets are `figures.isoflop_budgets` (null: among the runs).
    "isoflop": {
        "kind": "isoflop",
        "output": "isoflop",
        "caption": "isoflop.rst",
        "inputs": {"loss_table": LOSS_TABLE, "loss_law": LOSS_LAW},
    },
    "per_task_figure": {
        "kind": "per-task",
        "output": "per_task_t{t}",
        "caption": "per_task.rst",
        "inputs": {"per_task": f"{PER_TASK}.csv", "summary": f"{PER_TASK}.json"},
    },
}


for rule_name, figure in FIGURE_RULES.items():

    rule:
        name: rule_name
        input:
            **figure_inputs(figure["kind"], figure["inputs"]),
        output:
            figure_files(figure["output"], figure["caption"]),
        params:
            job=figure_job(figure["kind"]),
        conda:
            ENV
        log:
            f"{LOGS}/figures/{{dataset}}/{{valset}}/{figure['output']}.log",
        # One command for every figure: Snakemake evaluates a rule's shell expression again when
        # the job runs, after the loop has moved on (snakemake/snakemake#2832), so it names no
        # loop variable; the figure's kind (in its job) says what its inputs are.
        shell:
            "lmscale figure --job {params.job:q} --inputs {input:q} --out {output:q} > {log:q} 2>&1"
