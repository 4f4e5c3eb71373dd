"""Cluster resources of a training job: GPUs, host memory and wall time.

A pure function of the model's shape, the run's token budget D = M x N and the
attempt, so that the `train` rule can ask SLURM (or a workstation's scheduler)
for what a run needs, and for more on every retry.

Assumptions, stated once:
- compute per training token is 6 N + 6 x depth x context x width FLOPs
  (weights, forward and backward, plus the attention scores; Kaplan et al.
  2020, Hoffmann et al. 2022 appendix F), N counting every parameter;
- a GPU sustains PEAK_FLOPS_PER_GPU x MFU: an A100's 312 TFLOP/s dense bf16 at
  30% model-FLOPs utilisation, about 94 TFLOP/s; several GPUs in one job scale
  perfectly (data parallel); on the CPU one thread sustains CPU_FLOPS_PER_THREAD;
- host memory (what `sbatch --mem` limits; weights and optimizer state live on
  the GPUs) holds a base for Python, torch and the data loader, one process per
  GPU with its CUDA context and an fp32 copy of the weights, and one full
  checkpoint (fp32 weights + two AdamW moments = 16 bytes per parameter);
- the estimate is multiplied by SAFETY and STARTUP_MINUTES added before the
  attempt multiplies it: attempt k asks for k times attempt 1.

A size may replace either estimate in the config (`sizes.<label>.mem_mb`,
`sizes.<label>.runtime`, the values of attempt 1); the attempt still scales
them. `gpus` comes from the size, else the `train` block (0: a CPU job).

Under `train.schedule: wsd` a job trains part of a run (`part`): a trunk the
stable steps of its largest M up to the branch point, a branch its cooldown.
A trunk that extends an earlier one and a branch that must train stable steps
first (after a changed cooldown) take longer than asked; a retry asks for twice.
`schedule_costs` sums a grid's training under both schedules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lmscale.config import size_settings, training_runs, trunks
from lmscale.data import documents
from lmscale.training.budget import Budget, branch_point

PEAK_FLOPS_PER_GPU = 312e12  # A100, dense bf16
MFU = 0.30  # model-FLOPs utilisation assumed for every size
CPU_FLOPS_PER_THREAD = 2e10  # fp32 training on one core, roughly
SAFETY = 1.5  # runtime margin over the estimate
STARTUP_MINUTES = 15  # imports, mapping the token stream, the final save and checkpoints

BASE_HOST_MB = 8192  # Python, torch, data loader of a GPU job
PER_GPU_HOST_MB = 4096  # one process per GPU: CUDA context, pinned buffers
CPU_BASE_HOST_MB = 2048  # a CPU job: Python and torch
BYTES_PER_PARAMETER_CHECKPOINT = 16  # fp32 weights + AdamW's two moments, gathered on the host to save
BYTES_PER_PARAMETER_PER_GPU = 4  # each process builds the fp32 model on the host first
MB = 2**20

# GPT-NeoX-20B's tokenizer as open_lm pads it (50277 tokens rounded up to a
# multiple of 128): the vocabulary assumed for a pretrained tokenizer, whose size
# is not known before it is fetched.
DEFAULT_VOCAB_SIZE = 50432


@dataclass(frozen=True)
class Estimate:
    """What one training run costs: parameters, tokens, FLOPs and time at the assumed throughput."""

    N: int
    D: int
    steps: int
    flops: float
    gpus: int
    seconds: float  # at the assumed throughput, before SAFETY and STARTUP_MINUTES
    host_mb: int  # host memory, before rounding and the attempt


def parameter_count(size_config: dict, vocab_size: int) -> int:
    """N of a size, embeddings included, as lmscale.model.architecture builds it (Qwen3: SwiGLU, QK-norm, no biases).

    Per block: q, k, v, o projections (4 width^2 with heads x head_dim =
    width; key/value heads shrink k and v), the SwiGLU MLP (3 width x
    mlp_width), two RMSNorm gains (2 width) and the per-head QK-norm gains
    (2 head_dim); then the final norm, the input embedding and, unless tied,
    the output head.
    """
    width, depth, heads = size_config["width"], size_config["depth"], size_config["heads"]
    head_dim = width // heads
    kv_width = (size_config["kv_heads"] or heads) * head_dim
    block = (2 * width * width + 2 * width * kv_width + 3 * width * size_config["mlp_width"]
             + 2 * width + 2 * head_dim)
    return depth * block + width + embedding_count(size_config, vocab_size)


def embedding_count(size_config: dict, vocab_size: int) -> int:
    """The embedding parameters: the input embedding and, unless tied, the output head."""
    return vocab_size * size_config["width"] * (1 if size_config["tie_embeddings"] else 2)


def flops_per_token(size_config: dict, vocab_size: int) -> float:
    """Training FLOPs per token: 6 N plus the attention scores, 6 x depth x context x width."""
    n = parameter_count(size_config, vocab_size)
    return 6.0 * n + 6.0 * size_config["depth"] * size_config["context"] * size_config["width"]


# What a job trains of a run: all of it (cosine), a trunk's stable steps or a branch's cooldown (wsd).
PARTS = ("run", "trunk", "cooldown")


def estimate(settings: dict, multiplier: float, vocab_size: int, part: str = "run") -> Estimate:
    """N (every parameter), D (M x the counted N, rounded to whole steps, as lmscale.training plans it),
    FLOPs, seconds and host memory of a size at M, from its settings (config.size_settings: its
    shape, and the train block with the size's own values over it). `part` other than "run": D
    and steps are those the job trains, the trunk's steps to M's branch point or M's cooldown
    (`cooldown` of its steps)."""
    if multiplier <= 0:
        raise ValueError(f"token multiplier must be positive, got {multiplier!r}")
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r} of a run; use one of {', '.join(PARTS)}")
    n = parameter_count(settings, vocab_size)
    batch = int(settings["batch_size"])
    micro = int(settings["micro_batch_size"] or batch)
    context = settings["context"]
    # D exactly as training plans it.
    counts = {"N": n, "N_non_embedding": n - embedding_count(settings, vocab_size)}
    budget = Budget.plan(counts, multiplier, batch, context, bool(settings["count_embeddings"]))
    steps = budget.steps
    if part != "run":
        stable = branch_point(budget.steps, float(settings["cooldown"]))
        steps = stable if part == "trunk" else budget.steps - stable
    d = steps * budget.tokens_per_step
    flops = flops_per_token(settings, vocab_size) * d
    gpus = int(settings["gpus"])
    threads = int(settings["threads"])
    if gpus > 0:
        seconds = flops / (gpus * PEAK_FLOPS_PER_GPU * MFU)
        host = (BASE_HOST_MB * MB + gpus * (PER_GPU_HOST_MB * MB + BYTES_PER_PARAMETER_PER_GPU * n)
                + BYTES_PER_PARAMETER_CHECKPOINT * n)
    else:
        seconds = flops / (threads * CPU_FLOPS_PER_THREAD)
        # On the CPU the activations live in host memory too: per sequence of a
        # micro-batch, about 34 x width bytes per token and block (fp32, saved for
        # backward) plus the logits and their gradient (3 x vocab x 4 bytes per token).
        activations = micro * context * (34 * settings["width"] * settings["depth"] + 12 * vocab_size)
        host = CPU_BASE_HOST_MB * MB + (BYTES_PER_PARAMETER_CHECKPOINT + 4) * n + activations
    return Estimate(N=n, D=d, steps=steps, flops=flops, gpus=gpus, seconds=seconds, host_mb=math.ceil(host / MB))


def training_resources(settings: dict, multiplier: float, vocab_size: int, attempt: int = 1,
                       part: str = "run") -> dict:
    """{gpu, mem_mb, runtime} of a training job of a size (its settings, as `estimate` takes them)
    on its `attempt` (1, 2, ...): attempt k asks k times attempt 1.

    mem_mb is rounded up to a multiple of 1024 MB, runtime (minutes) to a
    multiple of 10; a size's `mem_mb` or `runtime` replaces the estimate.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    cost = estimate(settings, multiplier, vocab_size, part)
    # A size's own resources, where it sets them: the schema has no default of either.
    mem_mb = settings.get("mem_mb") or 1024 * math.ceil(cost.host_mb / 1024)
    runtime = settings.get("runtime") or 10 * math.ceil(
        (STARTUP_MINUTES + SAFETY * cost.seconds / 60) / 10
    )
    return {"gpu": cost.gpus, "mem_mb": int(mem_mb) * attempt, "runtime": int(runtime) * attempt}


def study_vocab_size(config: dict) -> int:
    """The vocabulary a study's models will have: a BPE's configured size, else DEFAULT_VOCAB_SIZE."""
    tokenizer = config["tokenizer"]
    if tokenizer["kind"] == "bpe":
        return int(tokenizer["vocab_size"])
    return DEFAULT_VOCAB_SIZE


def train_job(config: dict, size: str, multiplier, attempt: int = 1, part: str = "run") -> dict:
    """`training_resources` of one run of a study's grid (or its `part`), as the `train` rule (or
    the `trunk` and `branch` rules) ask for them."""
    return training_resources(size_settings(config, size), float(multiplier), study_vocab_size(config), attempt,
                              part)


def train_priority(config: dict, size: str, multiplier, part: str = "run") -> int:
    """Scheduling priority of a training job: larger for more FLOPs, so that the longest runs
    start first and the study does not wait at its end on one long run started last."""
    cost = estimate(size_settings(config, size), float(multiplier), study_vocab_size(config), part)
    return round(100 * math.log10(max(cost.flops, 1.0)))


@dataclass(frozen=True)
class ScheduleCost:
    """What one size's runs cost under each schedule: FLOPs (as the resource estimates count
    them) and device hours (GPU hours, or CPU core hours for a CPU size) at the assumed
    throughput, before any margin."""

    size: str
    runs: int
    trunks: int
    cosine_flops: float
    wsd_flops: float
    cosine_hours: float
    wsd_hours: float
    gpus: int

    @property
    def saved(self) -> float:
        return 1 - self.wsd_flops / self.cosine_flops


def device_hours(cost: Estimate, threads: int) -> float:
    """A run's GPU hours at the assumed throughput (seconds on its GPUs), or its CPU core hours
    (on its threads) for a CPU run."""
    return cost.seconds * (cost.gpus or threads) / 3600


def schedule_costs(config: dict) -> list[ScheduleCost]:
    """Every size's training under cosine (each run alone) and under wsd (each trunk to its
    largest M's branch point once, plus every cooldown), the grid and replicates as configured."""
    vocab, threads = study_vocab_size(config), int(config["train"]["threads"])
    totals: dict[str, dict] = {}
    for trunk in trunks(config):
        settings = size_settings(config, trunk.size)
        parts = [estimate(settings, m, vocab) for m in trunk.multipliers]
        wsd = [estimate(settings, trunk.top, vocab, "trunk")]
        wsd += [estimate(settings, m, vocab, "cooldown") for m in trunk.multipliers]
        row = totals.setdefault(trunk.size, {"runs": 0, "trunks": 0, "cosine": [], "wsd": []})
        row["runs"] += len(trunk.multipliers)
        row["trunks"] += 1
        row["cosine"] += parts
        row["wsd"] += wsd

    def hours(estimates: list[Estimate]) -> float:
        return sum(device_hours(e, threads) for e in estimates)

    return [ScheduleCost(size, row["runs"], row["trunks"], sum(e.flops for e in row["cosine"]),
                         sum(e.flops for e in row["wsd"]), hours(row["cosine"]), hours(row["wsd"]),
                         row["cosine"][0].gpus) for size, row in totals.items()]


def schedule_summary(costs: list[ScheduleCost]) -> str:
    """The training of a grid under both schedules, in one line: device hours and FLOPs."""
    gpu = [c for c in costs if c.gpus]
    cpu = [c for c in costs if not c.gpus]
    cosine, wsd = sum(c.cosine_flops for c in costs), sum(c.wsd_flops for c in costs)
    parts = []
    for unit, rows in (("GPU hours", gpu), ("CPU core hours", cpu)):
        if rows:
            before, after = sum(c.cosine_hours for c in rows), sum(c.wsd_hours for c in rows)
            parts.append(f"{after:,.0f} {unit} under wsd against {before:,.0f} under cosine "
                         f"({before - after:,.0f} saved)" if before >= 10 else
                         f"{after:,.2f} {unit} under wsd against {before:,.2f} under cosine")
    return (f"{'; '.join(parts)}; {wsd:.3g} training FLOPs against {cosine:.3g}, {1 - wsd / cosine:.1%} fewer "
            f"({sum(c.trunks for c in costs)} trunks, {sum(c.runs for c in costs)} branches)")


# ---- corpus shards and their token streams: CPU jobs ----------------------------------
#
# A shard job streams its documents through (the corpus job reads one record and writes one
# line at a time; the tokenize job encodes BATCH_DOCUMENTS at a time): its memory does not
# grow with the shard, its wall time does. Assumed, stated once:
# - a shard's text is the corpus's over the shards: a local or stdlib source's files as they
#   are on disk (at most max_bytes), an hf source's max_documents x HF_BYTES_PER_DOCUMENT, else
#   at least what the grid's largest run on the dataset reads (D / (1 - validation_fraction)
#   tokens of BYTES_PER_TOKEN bytes: the corpus must hold that much, as train.repeat_data
#   refuses a run beyond it);
# - one process streams and writes CORPUS_BYTES_PER_SECOND of text from the Hub (less from a
#   local disk), and encodes TOKENIZE_BYTES_PER_SECOND of text per thread.

BYTES_PER_TOKEN = 4.2  # GPT-NeoX's BPE on web text
HF_BYTES_PER_DOCUMENT = 2300  # C4's mean document
CORPUS_BYTES_PER_SECOND = 5e6
TOKENIZE_BYTES_PER_SECOND = 4e6
DATA_STARTUP_MINUTES = 10  # imports, opening the stream, the first files
CORPUS_MB = 4096  # Python, datasets and pyarrow's read buffers of one file
TOKENIZE_MB = 2048  # Python, the tokenizer and one batch of documents


def corpus_bytes(config: dict, dataset: str) -> int:
    """The text of a training dataset's corpus, in bytes: measured for files, estimated for a hub dataset."""
    entry = config["datasets"][dataset]
    source = entry["source"]
    if source in ("stdlib", "local"):
        paths = documents.local_paths(entry) if source == "local" else documents.stdlib_paths(entry)
        total = sum(path.stat().st_size for path in paths)
        return min(total, entry.get("max_bytes") or total)
    if source == "hf" and entry.get("max_documents"):
        return entry["max_documents"] * HF_BYTES_PER_DOCUMENT
    vocab = study_vocab_size(config)
    needed = max((estimate(size_settings(config, run.size), run.multiplier, vocab).D
                  for run in training_runs(config) if run.dataset == dataset), default=0)
    return math.ceil(needed / (1 - entry["validation_fraction"]) * BYTES_PER_TOKEN)


def shard_bytes(config: dict, dataset: str) -> int:
    """The text of one shard of a training dataset's corpus, in bytes (`corpus_bytes` over the shards)."""
    return math.ceil(corpus_bytes(config, dataset) / config["datasets"][dataset]["shards"])


def data_job(shard: int, stage: str, attempt: int = 1, threads: int = 1) -> dict:
    """{mem_mb, runtime} of the `corpus_shard` or `tokenize_shard` job of a shard of `shard` bytes on its `attempt`.

    Memory is the stage's fixed share (the jobs stream their shard through); wall time grows
    with the shard's text, with a 1.5x margin and DATA_STARTUP_MINUTES on top, rounded up to
    10 minutes. Attempt k asks k times attempt 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt!r}")
    if stage == "corpus":
        seconds, mem_mb = shard / CORPUS_BYTES_PER_SECOND, CORPUS_MB
    elif stage == "tokenize":
        seconds, mem_mb = shard / (TOKENIZE_BYTES_PER_SECOND * max(1, threads)), TOKENIZE_MB
    else:
        raise ValueError(f"unknown data stage {stage!r}; use corpus or tokenize")
    runtime = 10 * math.ceil((DATA_STARTUP_MINUTES + SAFETY * seconds / 60) / 10)
    return {"mem_mb": mem_mb * attempt, "runtime": runtime * attempt}
