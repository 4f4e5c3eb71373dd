# One job per run of the grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a
# job's outputs before rerunning it, and a killed run must find its checkpoints.

CHECKPOINTS = f"{RESULTS}/checkpoints/{{dataset}}/{RUN}"
TRAIN = config["train"]


def train_resources(part):
    """The GPUs, host memory (MB) and wall time (minutes) of a training job that trains `part` of its
    run (lmscale.resources: from the shape and the tokens, times the attempt)."""
    return dict(
        # GPUs: the size's own `gpus`, else the `train` block's (0: a CPU job). The command
        # runs itself under torchrun, one process per GPU it was granted.
        gpu=lambda w: config["sizes"][w.size].get("gpus", TRAIN["gpus"]),
        mem_mb=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt, part)["mem_mb"],
        runtime=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt, part)["runtime"],
    )


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
            # What changes no result (log and checkpoint cadence, device, processes): a resource,
            # not a param, so that changing it retrains nothing.
            options=jobs.TrainOptions.from_config(config).to_json(),
        shell:
            "lmscale train --job {params.job:q} --options {resources.options:q}"
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
TRUNK_DIR = f"{RESULTS}/trunks/{{dataset}}/{{size}}{{replica}}"
TRUNK_RECORD = f"{RESULTS}/trunks/{{dataset}}/{RUN}.json"
TRUNKS = {(t.dataset, t.size, t.replicate_seed): t for t in study_config.trunks(config)} if trains_models() else {}


def trunk_of(w):
    return TRUNKS[(w.dataset, w.size, study_config.replicate_seed_of(w.replica))]


def trunk_record(w):
    """The record of the trunk job a branch waits for: the first finished one that reached its M,
    else the trunk of the size's largest M."""
    trunk = trunk_of(w)
    top = study_config.trunk_to_wait_for(
        study_config.finished_trunks(f"{RESULTS}/trunks/{w.dataset}", w.size, trunk.replicate_seed),
        float(w.mult), trunk.top)
    return TRUNK_RECORD.format(dataset=w.dataset, size=w.size, mult=study_config.format_multiplier(top),
                               replica=w.replica)


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
            trunk=TRUNK_DIR,
        conda:
            ENV
        log:
            f"{LOGS}/trunk/{{dataset}}/{RUN}.log",
        threads: TRAIN["threads"] * TRAIN["processes"]
        priority: lambda w: job_resources.train_priority(config, w.size, w.mult, "trunk")
        resources:
            **train_resources("trunk"),
            # Where it stops and leaves its states (the cooldown and the grid's Ms) changes no state:
            # an option, so that a changed cooldown retrains no trunk.
            options=lambda w: jobs.TrunkOptions.from_config(config, trunk_of(w).multipliers).to_json(),
        shell:
            "lmscale trunk --job {params.job:q} --options {resources.options:q} --tokens {input.tokens:q}"
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
            options=jobs.TrainOptions.from_config(config).to_json(),
        shell:
            "lmscale branch --job {params.job:q} --options {resources.options:q}"
            " --tokens {input.tokens:q} --tokenizer {params.tokenizer:q} --out-dir {params.out_dir:q}"
            " --checkpoint-dir {params.checkpoints:q} --trunk-dir {params.trunk:q} --threads {threads:q}"
            " --gpus {resources.gpu:q} > {log:q} 2>&1"
