# Loss of every trained model on every validation set (`validation_sets` in the config).
# One job per model writes one JSON per set: loading torch and transformers takes
# longer than a small evaluation, so a job per (model, set) would mostly wait on imports.

# Sorted: the eval_loss job lists them in this order, and a config written with its keys in
# another order is the same study.
VALIDATION_SETS = sorted(config["validation_sets"])
# Each set's token stream, in that order: the held-out split of a dataset under `datasets`, or the
# set's own split (corpus_valset).
VALSET_STREAMS = [
    f"{TOKENS}/{config['validation_sets'][valset]['dataset']}/validation.bin"
    if config["validation_sets"][valset].get("dataset")
    else f"{TOKENS}/{VALSET_SPLIT.format(valset=valset)}.bin"
    for valset in VALIDATION_SETS
]

# A study that imports a published testbed has no validation sets of its own: no rule then.
if VALIDATION_SETS:

    rule eval_loss:
        input:
            run=RUN_JSON,
            weights=f"{MODEL_DIR}/model.safetensors",
            streams=VALSET_STREAMS,
        output:
            expand(LOSS_EVAL, valset=VALIDATION_SETS, allow_missing=True),
        params:
            job=jobs.EvalLossJob.from_config(config).to_json(),
        conda:
            ENV
        log:
            f"{LOGS}/eval_loss/{{dataset}}/{RUN}.log",
        threads: 1
        shell:
            "lmscale eval-loss --job {params.job:q} --model {input.run:q} --streams {input.streams:q}"
            " --out {output:q} --threads {threads:q} > {log:q} 2>&1"
