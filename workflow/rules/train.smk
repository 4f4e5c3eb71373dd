# One job per run of the N x M grid: models/{dataset}/{size}_M{mult}/ in Hugging Face format.
# Checkpoints go to CHECKPOINTS, which is no declared output: Snakemake deletes a
# job's outputs before rerunning it, and a killed run must find its checkpoints.
import shlex

from lmscale.train import OPERATIONAL_KEYS

CHECKPOINTS = f"{RESULTS}/checkpoints/{{dataset}}/{RUN}"

# The `train` block splits in two: hyperparameters (rule params, so that a change
# retrains what it affects) and operational options such as checkpoint_every,
# which change no result. Those reach the command as job resources
# (`cpu_processes`, `train_options`): neither a param nor part of the shell
# template, both of which Snakemake compares to decide what to rerun.
TRAIN_OPTIONS = OPERATIONAL_KEYS | {
    k: v for k, v in config.get("train", {}).items() if k in OPERATIONAL_KEYS
}
TRAIN_HYPERPARAMETERS = {
    k: v for k, v in config.get("train", {}).items() if k not in OPERATIONAL_KEYS
}
TRAIN_FLAGS = (
    f"--device {shlex.quote(TRAIN_OPTIONS['device'])} --parallel {TRAIN_OPTIONS['parallel']}"
    f" --log-every {TRAIN_OPTIONS['log_every']} --checkpoint-every {TRAIN_OPTIONS['checkpoint_every']}"
    + (" --keep-checkpoints" if TRAIN_OPTIONS["keep_checkpoints"] else "")
)


# The launcher follows the job's `gpu` resource, as the scheduler granted it (the
# local profile caps it at the machine's GPUs): up to one GPU, `lmscale train`
# itself; beyond, `torchrun` with one process per GPU (NCCL). A CPU job (gpu 0)
# runs `train.processes` gloo processes (`cpu_processes`), one by default.
# lmscale.distributed.launcher is the same choice in Python.
LAUNCH = (
    "P={resources.gpu}; [ $P -ge 1 ] || P={resources.cpu_processes};"
    " if [ $P -gt 1 ]; then set -- torchrun --standalone --nproc-per-node $P -m lmscale.cli;"
    " else set -- lmscale; fi; "
)


rule train:
    input:
        tokens=f"{TOKENS}/{{dataset}}/train.bin",
        tokenizer=TOKENIZER,
    output:
        run=RUN_JSON,
        weights=f"{MODEL_DIR}/model.safetensors",
        model_config=f"{MODEL_DIR}/config.json",
        train_log=f"{MODEL_DIR}/train_log.jsonl",
    params:
        size=lambda w: study_config.to_json(
            {k: v for k, v in config["sizes"][w.size].items() if k not in job_resources.RESOURCE_KEYS}
        ),
        # A replicate's seed rides in the train block, so that the study's own runs keep the
        # params they were trained with.
        train=lambda w: study_config.to_json(
            {**TRAIN_HYPERPARAMETERS, "replicate_seed": study_config.replicate_seed_of(w.replica)}
            if w.replica else TRAIN_HYPERPARAMETERS
        ),
        out_dir=lambda w, output: os.path.dirname(output.run),
        checkpoints=CHECKPOINTS,
        tokenizer_dir=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/train/{{dataset}}/{RUN}.log",
    # The whole job's threads: per process times the CPU processes (the command divides
    # them among its processes). GPU jobs take their CPUs from cpus_per_gpu in the profile.
    threads: TRAIN_OPTIONS["threads"] * TRAIN_OPTIONS["processes"]
    # Longest runs first (estimated FLOPs), so the last job to start is a short one.
    priority: lambda w: job_resources.train_priority(config, w.size, w.mult)
    resources:
        # GPUs: the size's own `gpus`, else the `train` block's (0: a CPU job).
        gpu=lambda w: config["sizes"][w.size].get("gpus", TRAIN_OPTIONS["gpus"]),
        # Host memory (MB) and wall time (minutes) from the shape and D = M x N, times the attempt.
        mem_mb=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_resources.train_job(config, w.size, w.mult, attempt)["runtime"],
        cpu_processes=TRAIN_OPTIONS["processes"],
        train_options=TRAIN_FLAGS,
    shell:
        LAUNCH + '"$@" train --tokens {input.tokens:q} --tokenizer {params.tokenizer_dir:q}'
        " --dataset {wildcards.dataset:q} --size {wildcards.size:q} --multiplier {wildcards.mult:q}"
        " --size-config {params.size:q} --train-config {params.train:q}"
        " --out-dir {params.out_dir:q} --checkpoint-dir {params.checkpoints:q}"
        " --threads {threads} {resources.train_options} > {log:q} 2>&1"
