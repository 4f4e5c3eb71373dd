# Loss of every trained model on every validation set (`validation_sets` in the config).
# One job per model writes one JSON per set: loading torch and transformers takes
# longer than a small evaluation, so a job per (model, set) would mostly wait on imports.

# A study that imports a published testbed has no validation sets of its own: no rule then.
if VALIDATION_SETS:

    rule eval_loss:
        input:
            run=RUN_JSON,
            weights=f"{MODEL_DIR}/model.safetensors",
            streams=[f"{TOKENS}/{valset_stream(valset)}.bin" for valset in VALIDATION_SETS],
        output:
            expand(LOSS_EVAL, valset=VALIDATION_SETS, allow_missing=True),
        params:
            valsets=loss_eval_valsets(),
            model_dir=lambda w, input: os.path.dirname(input.run),
            out=lambda w, output: [f"{valset}={path}" for valset, path in zip(VALIDATION_SETS, output)],
        conda:
            ENV
        log:
            f"{LOGS}/eval_loss/{{dataset}}/{RUN}.log",
        threads: 1
        shell:
            "lmscale eval-loss --model {params.model_dir:q} --valsets {params.valsets:q}"
            " --out {params.out:q} --threads {threads} > {log:q} 2>&1"
