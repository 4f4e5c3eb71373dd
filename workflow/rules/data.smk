# Text to token streams: corpus splits, the tokenizer, and one token stream per split; a sharded
# dataset's corpus and train stream in shards; and what the offline jobs read from the Hub.
# Paths and the longer input functions: common.smk.
import functools


# Data jobs are short and everything waits on them: run them before any training job.
DATA_PRIORITY = 50


# Planned only where a job reads what it fetches (`prefetched` in common.smk): the default study
# reads nothing from the Hub.
rule prefetch:
    input:
        table=task_table,
    output:
        PREFETCH_MANIFEST,
    params:
        job=lambda w: jobs.PrefetchJob.from_config(config, lm_eval_task_selection(), hub_tokenizer()).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/prefetch.log",
    # Where Snakemake runs, the network is: a cluster's compute nodes may have none.
    localrule: True
    threads: 1
    priority: DATA_PRIORITY + 10
    shell:
        "lmscale prefetch --job {params.job:q} --out {output:q} > {log:q} 2>&1"


rule corpus:
    output:
        train=f"{DATA}/{{dataset}}/train.jsonl",
        validation=f"{DATA}/{{dataset}}/validation.jsonl",
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    params:
        job=lambda w: jobs.CorpusJob.from_config(config, dataset=w.dataset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}.log",
    wildcard_constraints:
        dataset=dataset_names(sharded=False),
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --job {params.job:q} --out {output:q} > {log:q} 2>&1"


# One shard's text in bytes, by dataset: measured when the first shard job is planned, once
# (sizing a stdlib or local source reads its files: seconds).
shard_bytes = functools.cache(lambda dataset: job_resources.shard_bytes(config, dataset))


# Shard {shard} of a dataset with `shards` > 1: a contiguous run of its documents, split likewise.


rule corpus_shard:
    output:
        train=f"{SHARD_DIR}/train.jsonl",
        validation=f"{SHARD_DIR}/validation.jsonl",
        manifest=f"{SHARD_DIR}/manifest.json",
    params:
        job=lambda w: jobs.CorpusShardJob.from_config(config, w.dataset, w.shard).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}/{{shard}}.log",
    wildcard_constraints:
        dataset=dataset_names(sharded=True),
    threads: 1
    priority: DATA_PRIORITY
    resources:
        # CPU only; wall time from the shard's text (lmscale/resources.py), times the attempt.
        mem_mb=lambda w, attempt: job_resources.data_job(shard_bytes(w.dataset), "corpus", attempt)["mem_mb"],
        runtime=lambda w, attempt: job_resources.data_job(shard_bytes(w.dataset), "corpus", attempt)["runtime"],
    shell:
        "lmscale corpus-shard --job {params.job:q} --out {output:q} > {log:q} 2>&1"


# The shards' validation splits joined, where the corpus rule writes an unsharded dataset's.
rule join_shards:
    input:
        validation=lambda w: shard_paths(f"{SHARD_DIR}/validation.jsonl", w.dataset),
        manifests=lambda w: shard_paths(f"{SHARD_DIR}/manifest.json", w.dataset),
    output:
        validation=f"{DATA}/{{dataset}}/validation.jsonl",
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}/join.log",
    wildcard_constraints:
        dataset=dataset_names(sharded=True),
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale join-shards --validation {input.validation:q} --manifests {input.manifests:q} --out {output:q}"
        " > {log:q} 2>&1"


rule corpus_valset:
    output:
        validation=f"{DATA}/{VALSET_SPLIT}.jsonl",
        manifest=f"{DATA}/valsets/{{valset}}/manifest.json",
    params:
        job=lambda w: jobs.CorpusJob.from_config(config, valset=w.valset).to_json(),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/valsets/{{valset}}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --job {params.job:q} --out {output:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        train=tokenizer_training_split,
        prefetched=prefetched(hub_tokenizer),
    output:
        TOKENIZER,
    params:
        job=jobs.TokenizerJob.from_config(config).to_json(),
        # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
        options=jobs.TokenizerOptions.from_config(config),
    conda:
        ENV
    log:
        f"{LOGS}/tokenizer.log",
    threads: 1
    priority: DATA_PRIORITY
    # Offline: a BPE learns from the train split (none for a pretrained tokenizer); a hub
    # tokenizer is read from the cache the prefetch job filled.
    shell:
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 lmscale tokenizer --job {params.job:q} --options {params.options:q}"
        " --train {input.train:q} --out {output:q} > {log:q} 2>&1"


# Nothing but its inputs decides a token stream: no job description.
rule tokenize:
    input:
        split=f"{DATA}/{{stream}}.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=f"{TOKENS}/{{stream}}.bin",
        summary=f"{TOKENS}/{{stream}}.json",
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{stream}}.log",
    wildcard_constraints:
        stream=r"[^/]+/(train|validation)|valsets/[^/]+/validation",
    threads: 2
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenize --split {input.split:q} --tokenizer {input.tokenizer:q}"
        " --out {output.tokens:q} --threads {threads:q} > {log:q} 2>&1"


# A shard's train split to its own token stream, as `tokenize` does a whole split.
rule tokenize_shard:
    input:
        split=f"{SHARD_DIR}/train.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=f"{SHARD_TOKENS}.bin",
        summary=f"{SHARD_TOKENS}.json",
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{dataset}}/shards/{{shard}}.log",
    threads: 2
    priority: DATA_PRIORITY
    resources:
        mem_mb=lambda w, attempt, threads: job_resources.data_job(shard_bytes(w.dataset), "tokenize", attempt,
                                                                  threads)["mem_mb"],
        runtime=lambda w, attempt, threads: job_resources.data_job(shard_bytes(w.dataset), "tokenize", attempt,
                                                                   threads)["runtime"],
    shell:
        "lmscale tokenize --split {input.split:q} --tokenizer {input.tokenizer:q}"
        " --out {output.tokens:q} --threads {threads:q} > {log:q} 2>&1"


# The fan-in of a sharded train split: an index of its shards' streams, which training reads as
# one stream (no copy).
rule index_tokens:
    input:
        streams=lambda w: shard_paths(f"{SHARD_TOKENS}.bin", w.dataset),
        summaries=lambda w: shard_paths(f"{SHARD_TOKENS}.json", w.dataset),
    output:
        f"{TOKENS}/{{dataset}}/train.index.json",
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{dataset}}/index.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale index-tokens --streams {input.streams:q} --out {output:q} > {log:q} 2>&1"
