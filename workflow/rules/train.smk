# One job per run of the grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format, run.json
# written last. Under train.schedule cosine the job is `lmscale train`; under wsd the same job is a
# branch (`lmscale branch`), which continues its trunk's state (the trunk rule below) and cools down.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a job's outputs
# before rerunning it, and a killed run must find its checkpoints.
# Paths, input functions and which rule a run is under each schedule (RUN_RULE): common.smk.

rule:
    name: RUN_RULE
    input:
        # The train split's stream, or the index of its shards' streams (read as one) and the shards.
        tokens=train_tokens,
        shards=train_token_shards,
        tokenizer=TOKENIZER,
        # A branch waits for its trunk's record.
        trunk=trunk_record if WSD else [],
    output:
        run=RUN_JSON,
        weights=f"{MODEL_DIR}/model.safetensors",
        model_config=f"{MODEL_DIR}/config.json",
        train_log=f"{MODEL_DIR}/train_log.jsonl",
    params:
        # A replicate's seed rides in its job, in place of the study's.
        job=lambda w: RUN_JOB.from_config(config, w.dataset, w.size, w.mult, w.replica).to_json(),
        # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
        options=jobs.TrainOptions.from_config(config),
        checkpoints=CHECKPOINTS,
        trunk=trunk_folder,
        command=RUN_RULE,
    conda:
        ENV
    log:
        f"{LOGS}/train/{{dataset}}/{RUN}.log",
    # The whole job's threads: per process times the CPU processes (the command divides
    # them among its processes). GPU jobs take their CPUs from cpus_per_gpu in the profile.
    threads: TRAIN["threads"] * TRAIN["processes"]
    # Longest runs first (estimated FLOPs), so the last job to start is a short one.
    priority: lambda w: job_resources.train_priority(config, w.size, w.mult, RUN_PART)
    resources:
        **train_resources(RUN_PART),
    shell:
        "lmscale {params.command:q} --job {params.job:q} --options {params.options:q} --tokens {input.tokens:q}"
        " --tokenizer {input.tokenizer:q} --out {output.run:q} --checkpoint-dir {params.checkpoints:q}"
        " {params.trunk:q} --threads {threads:q} --gpus {resources.gpu:q} > {log:q} 2>&1"


# train.schedule: wsd. One trunk per dataset, size and seed trains the stable phase to the
# branch point of the size's largest M ({mult} in the trunk's record is that M), leaving its
# state at every branch point in TRUNK_DIR: no declared output, so no rerun deletes it. One
# branch per run (the rule above) continues the newest state at or before its branch point and
# writes what `train` writes. A larger M added later is a new trunk job (its M in its record's
# name) that extends the states, so the finished trunk job, and every branch waiting on it, stays
# done: were the trunk one job whose params grew, Snakemake would rerun every branch below it
# (an ancient() input does not help: Snakemake 9 then never plans the new branch).
if WSD:
    logger.info(f"train.schedule wsd: {job_resources.schedule_summary(job_resources.schedule_costs(config))}")

    rule trunk:
        input:
            tokens=train_tokens,
            shards=train_token_shards,
        output:
            record=TRUNK_RECORD,
        params:
            job=lambda w: jobs.TrunkJob.from_config(config, w.dataset, w.size, w.mult, w.replica).to_json(),
            # Where it stops and leaves its states (the cooldown and the grid's Ms) changes no state:
            # an option (an object: Snakemake's rerun check leaves it out), so that a changed
            # cooldown retrains no trunk.
            options=lambda w: jobs.TrunkOptions.from_config(config, trunk_of(w).multipliers),
            trunk=TRUNK_DIR,
        conda:
            ENV
        log:
            f"{LOGS}/trunk/{{dataset}}/{RUN}.log",
        threads: TRAIN["threads"] * TRAIN["processes"]
        priority: lambda w: job_resources.train_priority(config, w.size, w.mult, "trunk")
        resources:
            **train_resources("trunk"),
        shell:
            "lmscale trunk --job {params.job:q} --options {params.options:q} --tokens {input.tokens:q}"
            " --trunk-dir {params.trunk:q} --out {output.record:q} --threads {threads:q} --gpus {resources.gpu:q}"
            " > {log:q} 2>&1"
