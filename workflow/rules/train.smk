# One job per run of the N x M grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a
# job's outputs before rerunning it, and a killed run must find its checkpoints.
from lmscale.train import OPERATIONAL_KEYS

CHECKPOINTS = RESULTS + "/checkpoints/{dataset}/{size}_M{mult}"

# The `train` block splits in two: hyperparameters (rule params, so that a change
# retrains what it affects) and operational options such as checkpoint_every,
# which change no result and are given on the command line through TRAIN_OPTIONS
# (a rule's shell template is part of what Snakemake compares; this dict is not).
TRAIN_OPTIONS = OPERATIONAL_KEYS | {
    k: v for k, v in config.get("train", {}).items() if k in OPERATIONAL_KEYS
}
TRAIN_HYPERPARAMETERS = {
    k: v for k, v in config.get("train", {}).items() if k not in OPERATIONAL_KEYS
}
KEEP_CHECKPOINTS = "--keep-checkpoints" if TRAIN_OPTIONS["keep_checkpoints"] else ""


def train_gpus(wildcards):
    """GPUs of a training job: the size's own `gpus`, else the `train` block's (0 on CPU)."""
    return config["sizes"][wildcards.size].get("gpus", TRAIN_OPTIONS["gpus"])


rule train:
    input:
        tokens=TOKENS + "/{dataset}/train.bin",
        tokenizer=TOKENIZER,
    output:
        run=RUN_JSON,
        weights=MODEL_DIR + "/model.safetensors",
        model_config=MODEL_DIR + "/config.json",
        train_log=MODEL_DIR + "/train_log.jsonl",
    params:
        size=lambda w: study_config.to_json({k: v for k, v in config["sizes"][w.size].items() if k != "gpus"}),
        train=study_config.to_json(TRAIN_HYPERPARAMETERS),
        out_dir=MODEL_DIR,
        checkpoints=CHECKPOINTS,
        tokenizer_dir=TOKENIZER_DIR,
    log:
        LOGS + "/train/{dataset}/{size}_M{mult}.log",
    threads: TRAIN_OPTIONS["threads"]
    resources:
        gpu=train_gpus,
        # Host memory (MB) and wall time (minutes) from the shape and D = M x N, times the attempt.
        mem_mb=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["runtime"],
    shell:
        "lmscale train --tokens {input.tokens} --tokenizer {params.tokenizer_dir}"
        " --dataset {wildcards.dataset} --size {wildcards.size} --multiplier {wildcards.mult}"
        " --size-config {params.size:q} --train-config {params.train:q}"
        " --out-dir {params.out_dir} --checkpoint-dir {params.checkpoints} --threads {threads}"
        " --device {TRAIN_OPTIONS[device]} --log-every {TRAIN_OPTIONS[log_every]}"
        " --checkpoint-every {TRAIN_OPTIONS[checkpoint_every]}"
        " {KEEP_CHECKPOINTS} > {log} 2>&1"
