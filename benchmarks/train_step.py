"""lmscale's training step against the Hugging Face Trainer, size by size (run by hand; prints a table).

    PYTHONPATH=src python benchmarks/train_step.py --config config.yaml
    PYTHONPATH=src python benchmarks/train_step.py --config config.yaml --sizes s1 s6 --threads 2
    PYTHONPATH=src python benchmarks/train_step.py --config config.yaml --sizes wide \
        --size 'wide={"width": 256, "depth": 4, "heads": 4, "mlp_width": 1024, "context": 128, "batch_size": 16}'

For each size of the config, one model (Qwen3 at the size's shape, the same initial weights),
one stream of random tokens of the tokenizer's vocabulary, the size's batch and the study's
optimizer settings (AdamW, fused, with its betas, epsilon, weight decay, warmup and cosine to the
floor, gradient clipping, z-loss) are trained by
  (a) lmscale's step (lmscale.training.loop: `build`, `compile_step`, `step`), eager and compiled, and
  (b) transformers.Trainer (its defaults otherwise: eager, fused AdamW, logging every
      `train.log_every` steps, no checkpoints), the z-loss added by `compute_loss_func`.
They run interleaved in one process: a Trainer callback runs a block of each lmscale step after
every block of the Trainer's, so all three see the machine at the same moments. The first block
of each is left out (start-up; compiling is timed apart). Figures are medians over blocks.

FLOP/s count 6 x N per token with N every parameter (embeddings included): the arithmetic the
step does, attention's own FLOPs aside. "of peak" divides them by a matmul's FLOP/s measured in
the same run with the same threads (fp32 on the CPU, bf16 on a GPU); on a GPU, MFU divides them
by the device's dense bf16 peak from lmscale.training.performance's table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def study_config(path: Path, extra_sizes: dict) -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    config["sizes"].update(extra_sizes)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return config


def random_stream(folder: Path, vocab_size: int, tokens: int, seed: int = 0) -> Path:
    """A token stream of uniformly random tokens, in lmscale's format (.bin and .json)."""
    from lmscale.data.token_streams import token_dtype

    dtype = token_dtype(vocab_size)
    path = folder / "train.bin"
    np.random.default_rng(seed).integers(1, vocab_size, tokens, dtype=np.int64).astype(dtype).tofile(path)
    path.with_suffix(".json").write_text(json.dumps({
        "tokens": tokens, "documents": 1, "dtype": dtype.name, "vocab_size": vocab_size, "end_of_text_id": 0,
        "source": "random", "tokenizer_sha256": "random"}))
    return path


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, seconds: float = 1.0) -> float:
    """FLOP/s of a square matmul (fp32 on the CPU, bf16 on a GPU): the best of short repeats."""
    import torch

    from lmscale.training.performance import cpu_matmul_peak

    if device.type == "cpu":
        return cpu_matmul_peak(seconds)
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        synchronize(device)
        started = time.perf_counter()
        for _ in range(10):
            a @ a
        synchronize(device)
        best = max(best, 10 * 2 * 8192 ** 3 / (time.perf_counter() - started))
    return best


class LmscaleStep:
    """lmscale's training loop without its files: build, compile (timed apart), then blocks of steps."""

    def __init__(self, job, options, tokens: Path, device: str):
        from lmscale.training import distributed, loop
        from lmscale.training.setup import plan

        self.loop = loop
        self.planned = plan(job, tokens)
        self.context = distributed.Context(device=__import__("torch").device(device))
        self.rows = self.context.local_rows(self.planned.hp.batch_size)
        self.trained = loop.build(self.context, self.planned, options)
        self.trained.model.train()
        self.compile_seconds = (loop.compile_step(self.context, self.planned, self.trained, 0, self.rows)
                                if self.trained.compiled else 0.0)
        self.index, self.loss = 0, None

    def run(self, steps: int) -> float:
        """Seconds for the next `steps` steps, the last loss read (as TrainLog reads it once per interval)."""
        started = time.perf_counter()
        for _ in range(steps):
            _, loss, _ = self.loop.step(self.context, self.planned, self.trained, self.index, self.rows)
            self.index += 1
        self.loss = float(loss)
        synchronize(self.context.device)
        return time.perf_counter() - started


def trainer_run(planned, config: dict, device: str, block: int, blocks: int, steps: list[LmscaleStep]) -> dict:
    """transformers.Trainer on the same model, data and settings; after each of its blocks, a block of
    each lmscale step. Returns every block's seconds, by name."""
    import torch
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from lmscale.model.architecture import build_model
    from lmscale.model.decoder import loss_terms

    hp, job = planned.hp, planned.job
    order = planned.order

    class Windows(torch.utils.data.Dataset):
        """Sequence i of lmscale's data order: the Trainer's sequential sampler sees the same batches."""

        def __len__(self):
            return block * (blocks + 1) * hp.batch_size

        def __getitem__(self, i):
            step, row = divmod(i, hp.batch_size)
            window = torch.from_numpy(order.batch(step, hp.batch_size, slice(row, row + 1))[0])
            return {"input_ids": window[:-1], "labels": window[1:]}

    seconds = {"trainer": [], **{name: [] for name in steps}}

    class Interleave(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                self.mark = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % block == 0:
                synchronize(torch.device(device))
                seconds["trainer"].append(time.perf_counter() - self.mark)
                for name, runner in steps.items():
                    seconds[name].append(runner.run(block))
                self.mark = time.perf_counter()

    model = build_model(job.shape, planned.stream["vocab_size"], planned.stream["end_of_text_id"], hp.seed)
    with tempfile.TemporaryDirectory(prefix="lmscale-bench-") as out:
        arguments = TrainingArguments(
            output_dir=out, per_device_train_batch_size=hp.batch_size, max_steps=block * (blocks + 1),
            learning_rate=hp.lr, weight_decay=hp.weight_decay, adam_beta1=hp.beta1, adam_beta2=hp.beta2,
            adam_epsilon=hp.eps, max_grad_norm=hp.grad_clip, lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr": hp.lr_floor}, warmup_steps=planned.warmup,
            optim="adamw_torch_fused", logging_steps=config["train"]["log_every"], save_strategy="no",
            report_to="none", disable_tqdm=True, use_cpu=device == "cpu", bf16=device.startswith("cuda"),
            dataloader_num_workers=0, train_sampling_strategy="sequential", seed=hp.seed)
        trainer = Trainer(model=model, args=arguments, train_dataset=Windows(), callbacks=[Interleave()],
                          compute_loss_func=lambda outputs, labels, **_: sum(loss_terms(outputs.logits, labels,
                                                                                        hp.z_loss)))
        trainer.remove_callback(PrinterCallback)  # its printed log lines, not its logging
        trainer.train()
    return seconds


def measure(label: str, config: dict, tokens_dir: Path, device: str, block: int, blocks: int) -> dict:
    from lmscale.jobs import TrainJob, TrainOptions

    # A run at M = 20 (its warmup and schedule); the random stream repeats if the blocks outlast it.
    config = {**config, "train": {**config["train"], "repeat_data": True}}
    job = TrainJob.from_config(config, next(iter(config["datasets"])), label, 20)
    vocab = config["tokenizer"]["vocab_size"]
    steps_needed = block * (blocks + 1) * 3
    tokens = random_stream(tokens_dir, vocab, steps_needed * job.hyperparameters.batch_size * job.shape.context + 1)
    runners = {}
    for setting in ("off", "on"):
        options = TrainOptions.from_config({**config, "train": {**config["train"], "compile": setting,
                                                                "device": device}})
        runners[f"lmscale_{setting}"] = LmscaleStep(job, options, tokens, device)
    planned = runners["lmscale_off"].planned
    seconds = trainer_run(planned, config, device, block, blocks, runners)
    tokens_per_step = planned.budget.tokens_per_step
    result = {"size": label, "N_total": planned.counts["N"], "tokens_per_step": tokens_per_step,
              "compile_seconds": runners["lmscale_on"].compile_seconds}
    for name, times in seconds.items():
        per_step = statistics.median(times[1:]) / block
        result[name] = {"ms_per_step": 1000 * per_step, "tokens_per_second": tokens_per_step / per_step,
                        "flops_per_second": 6 * planned.counts["N"] * tokens_per_step / per_step}
    return result


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        info = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
        return (f"{info.get('Model name', platform.processor())}, {info.get('CPU(s)', '?')} CPU(s)"
                + (f", {info['Hypervisor vendor']} guest" if "Hypervisor vendor" in info else ""))
    except OSError:
        return platform.processor() or platform.machine()


def table(results: list[dict], peak: float, gpu_peak: float | None) -> str:
    columns = [("lmscale_on", "lmscale compiled"), ("lmscale_off", "lmscale eager"), ("trainer", "HF Trainer")]
    header = ["size", "N", "tokens/step"]
    for _, name in columns:
        header += [f"{name} ms/step", f"{name} tokens/s", f"{name} 6N FLOP/s", f"{name} of peak"]
        if gpu_peak:
            header.append(f"{name} MFU")
    header += ["compiled / Trainer", "eager / Trainer", "compile s"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        row = [result["size"], f"{result['N_total']:,}", str(result["tokens_per_step"])]
        for key, _ in columns:
            figures = result[key]
            row += [f"{figures['ms_per_step']:.2f}", f"{figures['tokens_per_second']:,.0f}",
                    f"{figures['flops_per_second']:.3g}", f"{figures['flops_per_second'] / peak:.1%}"]
            if gpu_peak:
                row.append(f"{figures['flops_per_second'] / gpu_peak:.1%}")
        trainer = result["trainer"]["ms_per_step"]
        row += [f"{trainer / result['lmscale_on']['ms_per_step']:.2f}x",
                f"{trainer / result['lmscale_off']['ms_per_step']:.2f}x", f"{result['compile_seconds']:.1f}"]
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--sizes", nargs="*", help="sizes of the config (default: every one)")
    parser.add_argument("--size", action="append", default=[], metavar="LABEL=JSON",
                        help="a size added to the config, e.g. 'wide={\"width\": 256, ...}'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: the config's train.threads)")
    parser.add_argument("--block", type=int, default=50, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks of each, after a first one left out")
    args = parser.parse_args()

    import torch

    extra = {label: json.loads(value) for label, _, value in (entry.partition("=") for entry in args.size)}
    config = study_config(args.config, extra)
    threads = args.threads or config["train"]["threads"]
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    from lmscale.training.performance import gpu_peak

    table_peak = gpu_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    peaks, results = [matmul_peak(device)], []
    for label in args.sizes or list(config["sizes"]):
        with tempfile.TemporaryDirectory(prefix="lmscale-bench-") as folder:
            results.append(measure(label, config, Path(folder), args.device, args.block, args.blocks))
        print(json.dumps(results[-1]), flush=True)
        peaks.append(matmul_peak(device))
    peak = max(peaks)
    kind = "bf16" if device.type == "cuda" else "fp32"
    print(f"\n{machine()}; torch {torch.__version__}, {threads} thread(s), device {device}; "
          f"{kind} matmul peak measured in this run: {peak:.3g} FLOP/s (median of {len(peaks)}: "
          f"{statistics.median(peaks):.3g})" + (f"; table bf16 peak {table_peak:.3g}" if table_peak else ""))
    print(f"blocks of {args.block} steps, {args.blocks} timed (after one left out), medians; config {args.config}\n")
    print(table(results, peak, table_peak))


if __name__ == "__main__":
    main()
