# One job per run of the grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a
# job's outputs before rerunning it, and a killed run must find its checkpoints.
# Paths and input functions: common.smk.


if TRAIN["schedule"] == "cosine":

    rule train:
        input:
            # The train split's stream, or the index of its shards' streams (read as one) and the shards.
            tokens=train_tokens,
            shards=train_token_shards,
            tokenizer=TOKENIZER,
        output:
            run=RUN_JSON,
            weights=f"{MODEL_DIR}/model.safetensors",
            model_config=f"{MODEL_DIR}/config.json",
            train_log=f"{MODEL_DIR}/train_log.jsonl",
        params:
            # A replicate's seed rides in its job, in place of the study's.
            job=lambda w: jobs.TrainJob.from_config(config, w.dataset, w.size, w.mult, w.replica).to_json(),
            # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
            options=jobs.TrainOptions.from_config(config),
            tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
            out_dir=lambda w, output: os.path.dirname(output.run),
            checkpoints=CHECKPOINTS,
        conda:
            ENV
        log:
            f"{LOGS}/train/{{dataset}}/{RUN}.log",
        # The whole job's threads: per process times the CPU processes (the command divides
        # them among its processes). GPU jobs take their CPUs from cpus_per_gpu in the profile.
        threads: TRAIN["threads"] * TRAIN["processes"]
        # Longest runs first (estimated FLOPs), so the last job to start is a short one.
        priority: lambda w: job_resources.train_priority(config, w.size, w.mult)
        resources:
            **train_resources("run"),
        shell:
            "lmscale train --job {params.job:q} --options {params.options:q}"
            " --tokens {input.tokens:q} --tokenizer {params.tokenizer:q} --out-dir {params.out_dir:q}"
            " --checkpoint-dir {params.checkpoints:q} --threads {threads:q} --gpus {resources.gpu:q} > {log:q} 2>&1"


# train.schedule: wsd. One trunk per dataset, size and seed trains the stable phase to the
# branch point of the size's largest M ({mult} in the trunk's record is that M), leaving its
# state at every branch point in TRUNK_DIR: no declared output, so no rerun deletes it. One
# branch per run continues the newest state at or before its branch point and writes what
# `train` writes. A larger M added later is a new trunk job (its M in its record's name) that
# extends the states, so the finished trunk job, and every branch waiting on it, stays done:
# were the trunk one job whose params grew, Snakemake would rerun every branch below it
# (an ancient() input does not help: Snakemake 9 then never plans the new branch).
if TRAIN["schedule"] == "wsd":
    logger.info(f"train.schedule wsd: {job_resources.schedule_summary(job_resources.schedule_costs(config))}")

    rule trunk:
        input:
            tokens=train_tokens,
            shards=train_token_shards,
        output:
            TRUNK_RECORD,
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
            " --trunk-dir {params.trunk:q} --out {output:q} --threads {threads:q} --gpus {resources.gpu:q}"
            " > {log:q} 2>&1"

    rule branch:
        input:
            tokens=train_tokens,
            shards=train_token_shards,
            tokenizer=TOKENIZER,
            trunk=trunk_record,
        output:
            run=RUN_JSON,
            weights=f"{MODEL_DIR}/model.safetensors",
            model_config=f"{MODEL_DIR}/config.json",
            train_log=f"{MODEL_DIR}/train_log.jsonl",
        params:
            job=lambda w: jobs.BranchJob.from_config(config, w.dataset, w.size, w.mult, w.replica).to_json(),
            tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
            out_dir=lambda w, output: os.path.dirname(output.run),
            options=jobs.TrainOptions.from_config(config),
            checkpoints=CHECKPOINTS,
            trunk=TRUNK_DIR,
        conda:
            ENV
        log:
            f"{LOGS}/train/{{dataset}}/{RUN}.log",
        threads: TRAIN["threads"] * TRAIN["processes"]
        priority: lambda w: job_resources.train_priority(config, w.size, w.mult, "cooldown")
        resources:
            **train_resources("cooldown"),
        shell:
            "lmscale branch --job {params.job:q} --options {params.options:q}"
            " --tokens {input.tokens:q} --tokenizer {params.tokenizer:q} --out-dir {params.out_dir:q}"
            " --checkpoint-dir {params.checkpoints:q} --trunk-dir {params.trunk:q} --threads {threads:q}"
            " --gpus {resources.gpu:q} > {log:q} 2>&1"
