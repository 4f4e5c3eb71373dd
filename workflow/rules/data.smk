# Text to token streams: corpus splits, the tokenizer, and one token stream per split; a sharded
# dataset's corpus and train stream in shards; and what the offline jobs read from the Hub.


if PREFETCH is not None and PREFETCH.needed():

    rule prefetch:
        input:
            table=task_table_input(),
        output:
            PREFETCH_MANIFEST,
        params:
            job=PREFETCH.to_json(),
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
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}.log",
    wildcard_constraints:
        dataset=dataset_names(sharded=False),
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --job {params.job:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# Shard {shard} of a dataset with `shards` > 1: a contiguous run of its documents, split likewise.
SHARD_BYTES = {dataset: job_resources.shard_bytes(config, dataset)
               for dataset in config["datasets"] if trains_models() and config["datasets"][dataset]["shards"] > 1}


rule corpus_shard:
    output:
        train=f"{SHARD_DIR}/train.jsonl",
        validation=f"{SHARD_DIR}/validation.jsonl",
        manifest=f"{SHARD_DIR}/manifest.json",
    params:
        job=lambda w: jobs.CorpusShardJob.from_config(config, w.dataset, w.shard).to_json(),
        out_dir=lambda w, output: os.path.dirname(output.manifest),
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
        mem_mb=lambda w, attempt: job_resources.data_job(SHARD_BYTES[w.dataset], "corpus", attempt)["mem_mb"],
        runtime=lambda w, attempt: job_resources.data_job(SHARD_BYTES[w.dataset], "corpus", attempt)["runtime"],
    shell:
        "lmscale corpus-shard --job {params.job:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# The shards' validation splits joined, where the corpus rule writes an unsharded dataset's.
rule join_shards:
    input:
        validation=lambda w: shard_paths(f"{SHARD_DIR}/validation.jsonl", w.dataset),
        manifests=lambda w: shard_paths(f"{SHARD_DIR}/manifest.json", w.dataset),
    output:
        validation=f"{DATA}/{{dataset}}/validation.jsonl",
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    params:
        shards=lambda w, input: [os.path.dirname(path) for path in input.manifests],
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}/join.log",
    wildcard_constraints:
        dataset=dataset_names(sharded=True),
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale join-shards --shards {params.shards:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule corpus_valset:
    output:
        validation=f"{DATA}/{VALSET_SPLIT}.jsonl",
        manifest=f"{DATA}/valsets/{{valset}}/manifest.json",
    params:
        job=lambda w: jobs.CorpusJob.from_config(config, valset=w.valset).to_json(),
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/valsets/{{valset}}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --job {params.job:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        train=tokenizer_training_split(),
        prefetched=prefetched(hub_tokenizer()),
    output:
        TOKENIZER,
    params:
        job=jobs.TokenizerJob.from_config(config).to_json(),
        # An object, not its JSON: changing how the job runs reruns nothing (lmscale.jobs.Options).
        options=jobs.TokenizerOptions.from_config(config),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    conda:
        ENV
    log:
        f"{LOGS}/tokenizer.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        # A BPE learns from the train split; a hub tokenizer is read offline from the cache the
        # prefetch job filled.
        "lmscale tokenizer --job {params.job:q} --train {input.train:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
        if not hub_tokenizer() else
        "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 lmscale tokenizer --job {params.job:q}"
        " --options {params.options:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


# Nothing but its inputs decides a token stream: no job description.
rule tokenize:
    input:
        split=f"{DATA}/{{stream}}.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=f"{TOKENS}/{{stream}}.bin",
        summary=f"{TOKENS}/{{stream}}.json",
    params:
        tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{stream}}.log",
    wildcard_constraints:
        stream=r"[^/]+/(train|validation)|valsets/[^/]+/validation",
    threads: 2
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenize --split {input.split:q} --tokenizer {params.tokenizer:q}"
        " --out {output.tokens:q} --threads {threads:q} > {log:q} 2>&1"


# A shard's train split to its own token stream, as `tokenize` does a whole split.
rule tokenize_shard:
    input:
        split=f"{SHARD_DIR}/train.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=f"{SHARD_TOKENS}.bin",
        summary=f"{SHARD_TOKENS}.json",
    params:
        tokenizer=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{dataset}}/shards/{{shard}}.log",
    threads: 2
    priority: DATA_PRIORITY
    resources:
        mem_mb=lambda w, attempt, threads: job_resources.data_job(SHARD_BYTES[w.dataset], "tokenize", attempt,
                                                                  threads)["mem_mb"],
        runtime=lambda w, attempt, threads: job_resources.data_job(SHARD_BYTES[w.dataset], "tokenize", attempt,
                                                                   threads)["runtime"],
    shell:
        "lmscale tokenize --split {input.split:q} --tokenizer {params.tokenizer:q}"
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
