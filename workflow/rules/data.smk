# Text to token streams: corpus splits, the tokenizer, and one token stream per split.
#   data/{dataset}/{train,validation}.jsonl      a training dataset's splits
#   data/valsets/{valset}/validation.jsonl       a validation set with a source of its own
#   tokenizer/tokenizer.json                     (Hugging Face tokenizer folder)
#   tokens/<same path as the split>.bin + .json  flat token streams

DATA = RESULTS + "/data"
TOKENIZER_DIR = RESULTS + "/tokenizer"
TOKENIZER = TOKENIZER_DIR + "/tokenizer.json"
TOKENS = RESULTS + "/tokens"
# Validation sets with a source of their own live apart from the training datasets.
VALSET_SPLIT = "valsets/{valset}/validation"

# Data jobs are short and everything waits on them: run them before any training job.
DATA_PRIORITY = 50

# Keys of a dataset entry that are not part of where its text comes from.
SPLIT_KEYS = ("validation_fraction", "tokens", "dataset")


def text_source(entry):
    """A `datasets` or `validation_sets` entry as the corpus stage's source JSON."""
    return study_config.to_json({k: v for k, v in entry.items() if k not in SPLIT_KEYS})


def valset_stream(valset):
    """The token stream of a validation set, relative to TOKENS: a dataset's held-out split or its own."""
    entry = config["validation_sets"][valset]
    if entry.get("dataset"):
        if entry["dataset"] not in config["datasets"]:
            raise ValueError(
                f"validation set {valset!r} names dataset {entry['dataset']!r}, which is not under `datasets`"
            )
        return f"{entry['dataset']}/validation"
    return VALSET_SPLIT.format(valset=valset)


def tokenizer_config():
    section = {"kind": "bpe", "vocab_size": 8192, "dataset": None, "max_bytes": None, "name": None}
    return section | config.get("tokenizer", {})


def tokenizer_dataset():
    return tokenizer_config()["dataset"] or list(config["datasets"])[0]


rule corpus:
    output:
        train=DATA + "/{dataset}/train.jsonl",
        validation=DATA + "/{dataset}/validation.jsonl",
        manifest=DATA + "/{dataset}/manifest.json",
    params:
        source=lambda w: text_source(config["datasets"][w.dataset]),
        validation_fraction=lambda w: config["datasets"][w.dataset].get("validation_fraction", 0.05),
        out_dir=DATA + "/{dataset}",
    log:
        LOGS + "/corpus/{dataset}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --source {params.source:q} --out-dir {params.out_dir}"
        " --validation-fraction {params.validation_fraction} > {log} 2>&1"


rule corpus_valset:
    output:
        validation=DATA + "/" + VALSET_SPLIT + ".jsonl",
        manifest=DATA + "/valsets/{valset}/manifest.json",
    params:
        source=lambda w: text_source(config["validation_sets"][w.valset]),
        out_dir=DATA + "/valsets/{valset}",
    log:
        LOGS + "/corpus/valsets/{valset}.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale corpus --source {params.source:q} --out-dir {params.out_dir}"
        " --splits validation > {log} 2>&1"


rule tokenizer:
    input:
        train=[DATA + f"/{tokenizer_dataset()}/train.jsonl"] if tokenizer_config()["kind"] == "bpe" else [],
    output:
        TOKENIZER,
    params:
        kind=tokenizer_config()["kind"],
        vocab_size=tokenizer_config()["vocab_size"],
        max_bytes=tokenizer_config()["max_bytes"] or 0,
        name=tokenizer_config()["name"] or "",
        train=lambda w, input: f"--train {input.train}" if input.train else "",
        out_dir=TOKENIZER_DIR,
    log:
        LOGS + "/tokenizer.log",
    threads: 1
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenizer --kind {params.kind} {params.train} --vocab-size {params.vocab_size}"
        " --max-bytes {params.max_bytes} --name={params.name:q} --out-dir {params.out_dir} > {log} 2>&1"


rule tokenize:
    input:
        split=DATA + "/{stream}.jsonl",
        tokenizer=TOKENIZER,
    output:
        tokens=TOKENS + "/{stream}.bin",
        summary=TOKENS + "/{stream}.json",
    params:
        tokenizer_dir=TOKENIZER_DIR,
    log:
        LOGS + "/tokenize/{stream}.log",
    wildcard_constraints:
        stream=r"[^/]+/(train|validation)|valsets/[^/]+/validation",
    threads: 2
    priority: DATA_PRIORITY
    shell:
        "lmscale tokenize --split {input.split} --tokenizer {params.tokenizer_dir}"
        " --out {output.tokens} --threads {threads} > {log} 2>&1"
