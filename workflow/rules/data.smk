# Text to token streams: corpus splits, the tokenizer, and one token stream per split.


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
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --job {params.job:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
    output:
        TOKENIZER,
    params:
        job=jobs.TokenizerJob.from_config(config).to_json(),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    conda:
        ENV
    log:
        f"{LOGS}/tokenizer.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenizer --job {params.job:q} --train {input.train:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
