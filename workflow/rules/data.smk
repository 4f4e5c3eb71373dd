# Text to token streams: corpus splits, the tokenizer, and one token stream per split.


rule corpus:
    output:
        train=f"{DATA}/{{dataset}}/train.jsonl",
        validation=f"{DATA}/{{dataset}}/validation.jsonl",
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    params:
        source=lambda w: text_source(config["datasets"][w.dataset]),
        validation_fraction=lambda w: config["datasets"][w.dataset]["validation_fraction"],
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/{{dataset}}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --source {params.source:q} --out-dir {params.out_dir:q}"
        " --validation-fraction {params.validation_fraction:q} > {log:q} 2>&1"


rule corpus_valset:
    output:
        validation=f"{DATA}/{VALSET_SPLIT}.jsonl",
        manifest=f"{DATA}/valsets/{{valset}}/manifest.json",
    params:
        source=lambda w: text_source(config["validation_sets"][w.valset]),
        out_dir=lambda w, output: os.path.dirname(output.manifest),
    conda:
        ENV
    log:
        f"{LOGS}/corpus/valsets/{{valset}}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --source {params.source:q} --out-dir {params.out_dir:q}"
        " --splits validation > {log:q} 2>&1"


rule tokenizer:
    input:
        train=tokenizer_training_split(),
    output:
        TOKENIZER,
    params:
        kind=config["tokenizer"]["kind"],
        vocab_size=config["tokenizer"]["vocab_size"],
        max_bytes=config["tokenizer"]["max_bytes"] or 0,
        name=config["tokenizer"]["name"] or "",
        train=lambda w, input: ["--train", input.train] if input.train else [],
        out_dir=lambda w, output: os.path.dirname(output[0]),
    conda:
        ENV
    log:
        f"{LOGS}/tokenizer.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenizer --kind {params.kind:q} {params.train:q} --vocab-size {params.vocab_size:q}"
        " --max-bytes {params.max_bytes:q} --name={params.name:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule tokenize:
    input:
        split=f"{DATA}/{{stream}}.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=f"{TOKENS}/{{stream}}.bin",
        summary=f"{TOKENS}/{{stream}}.json",
    params:
        tokenizer_dir=lambda w, input: os.path.dirname(input.tokenizer),
    conda:
        ENV
    log:
        f"{LOGS}/tokenize/{{stream}}.log",
    wildcard_constraints:
        stream=r"[^/]+/(train|validation)|valsets/[^/]+/validation",
    threads: 2
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenize --split {input.split:q} --tokenizer {params.tokenizer_dir:q}"
        " --out {output.tokens:q} --threads {threads} > {log:q} 2>&1"
