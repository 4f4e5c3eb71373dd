# One job per run of the N x M grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a
# job's outputs before rerunning it, and a killed run must find its checkpoints.

CHECKPOINTS = f"{RESULTS}/checkpoints/{{dataset}}/{RUN}"
TRAIN = config["train"]


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
        # GPUs: the size's own `gpus`, else the `train` block's (0: a CPU job). The command
        # runs itself under torchrun, one process per GPU it was granted.
        gpu=lambda w: config["sizes"][w.size].get("gpus", TRAIN["gpus"]),
        # Host memory (MB) and wall time (minutes) from the shape and D = M x N, times the attempt.
        mem_mb=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["runtime"],
    shell:
        "lmscale train --job {params.job:q} --options {params.options:q}"
        " --tokens {input.tokens:q} --tokenizer {params.tokenizer:q} --out-dir {params.out_dir:q}"
        " --checkpoint-dir {params.checkpoints:q} --threads {threads:q} --gpus {resources.gpu:q} > {log:q} 2>&1"
