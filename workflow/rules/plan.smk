# The plan: which runs a budget should buy so that the prediction at the targets is most certain
# (docs/planning.md). Not part of the study's default target: ask for it by name,
# `snakemake --cores 2 plan`. What it reads (plan_inputs) and its figure (plan_figure_files): common.smk.


rule plan:
    input:
        unpack(plan_inputs),
    output:
        table=f"{PLAN}/plan.csv",
        fragment=f"{PLAN}/plan_fragment.yaml",
        frontier=f"{PLAN}/frontier.csv",
        figure=plan_figure_files(),
    params:
        job=lambda w: jobs.PlanJob.from_config(config).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/plan.log",
    shell:
        "lmscale plan --job {params.job:q} --loss-table {input.loss:q} --loss-law {input.loss_law:q}"
        " --backtest-summary {input.summary:q} --backtest-table {input.backtest:q} --train-tokens {input.tokens:q} --out {output.table:q}"
        " --fragment {output.fragment:q} --frontier {output.frontier:q} --figure {output.figure:q} > {log:q} 2>&1"
