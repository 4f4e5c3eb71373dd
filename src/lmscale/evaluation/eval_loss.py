"""Eval-loss stage: a model's mean per-token loss on validation sets.

The model is loaded the way anyone else would load it,
`AutoModelForCausalLM.from_pretrained(model_dir)`, so the number measured is
the number a user of the checkpoint gets. Each validation set contributes a
fixed prefix of its token stream (`tokens` tokens, the same for every model),
cut into sequences of the model's context; the loss is the mean over all
predicted tokens, and its 95% interval comes from the spread of the
per-sequence means (sequences, not tokens, are the roughly independent units).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from lmscale import jobs
from lmscale.data.token_streams import open_tokens
from lmscale.io.files import atomic_write_json, folder_of
from lmscale.jobs import EvalLossJob

log = logging.getLogger(__name__)

Z_95 = 1.959963984540054


def evaluation_windows(tokens: np.ndarray, context: int, max_tokens: int) -> np.ndarray:
    """Sequences of context + 1 tokens covering the first `max_tokens` predicted tokens of a stream."""
    sequences = min(max_tokens, len(tokens) - 1) // context
    if sequences < 1:
        raise ValueError(f"validation stream has {len(tokens)} tokens, fewer than one sequence of {context + 1}")
    starts = np.arange(sequences) * context
    return np.stack([tokens[s : s + context + 1] for s in starts]).astype(np.int64)


def sequence_losses(model, windows: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Mean token cross-entropy of each window (fp32 on CPU, bf16 autocast on GPU)."""
    # deferred: torch takes seconds to import; `lmscale eval-loss` parses its arguments first
    import torch
    import torch.nn.functional as F

    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                if torch.device(device).type == "cuda" else None)
    losses = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size]).to(device)
            if autocast is not None:
                with autocast:
                    logits = model(input_ids=batch[:, :-1]).logits
            else:
                logits = model(input_ids=batch[:, :-1]).logits
            token_losses = F.cross_entropy(
                logits.float().transpose(1, 2), batch[:, 1:], reduction="none"
            )
            losses.append(token_losses.mean(dim=1).cpu().numpy())
    return np.concatenate(losses).astype(np.float64)


def summarize(losses: np.ndarray) -> dict:
    """Mean loss and a normal 95% interval over sequences (equal lengths: the token mean)."""
    mean = float(losses.mean())
    half = Z_95 * float(losses.std(ddof=1)) / math.sqrt(len(losses)) if len(losses) > 1 else float("nan")
    return {"loss": mean, "loss_lo": mean - half, "loss_hi": mean + half}


def load_model(model_dir: str | Path, device: str):
    # deferred: torch takes seconds to import; `lmscale eval-loss` parses its arguments first
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.to(device)


def evaluate(model_dir: str | Path, valsets: dict, outputs: dict, threads: int = 1,
             batch_size: int = 32, device: str = "auto") -> dict:
    """Loss of one model on each validation set.

    `valsets` maps a name to {"tokens_path": ..., "tokens": max tokens}; `outputs`
    maps the same names to the JSON each result goes to. One process serves all
    sets because loading torch and transformers costs more than a small eval.
    """
    # deferred: torch takes seconds to import; `lmscale eval-loss` parses its arguments first
    import torch

    torch.set_num_threads(max(1, threads))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = json.loads((Path(model_dir) / "run.json").read_text())
    model = load_model(model_dir, device)
    context = model.config.max_position_embeddings
    results = {}
    for name, valset in valsets.items():
        tokens, summary = open_tokens(valset["tokens_path"])
        windows = evaluation_windows(tokens, context, int(valset["tokens"]))
        losses = sequence_losses(model, windows, batch_size, device)
        result = {
            "model": run["model"], "dataset": run["dataset"], "size": run["size"],
            "N": run["N"], "D": run["D"], "M": run["M"], "valset": name,
            **summarize(losses),
            "tokens": int(windows.shape[0] * context), "sequences": int(windows.shape[0]),
            "context": context, "stream_tokens": summary["tokens"],
        }
        if int(valset["tokens"]) > len(tokens) - 1:
            log.warning("%s: asked for %d tokens but the stream has %d; evaluated %d",
                        name, valset["tokens"], len(tokens), result["tokens"])
        atomic_write_json(outputs[name], result)
        log.info("%s/%s on %s: loss %.4f [%.4f, %.4f] over %d tokens", run["dataset"], run["model"], name,
                 result["loss"], result["loss_lo"], result["loss_hi"], result["tokens"])
        results[name] = result
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs.add_argument(parser, EvalLossJob)
    parser.add_argument("--model", required=True, metavar="RUN_JSON",
                        help="the model's run.json (`lmscale train`), beside its Hugging Face checkpoint")
    parser.add_argument("--streams", nargs="+", required=True,
                        help="the token stream (.bin) of each validation set, in the job's order")
    parser.add_argument("--out", nargs="+", required=True, help="the JSON of each validation set, in the job's order")
    parser.add_argument("--threads", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    names = [valset.name for valset in args.job.valsets]
    if not len(names) == len(args.streams) == len(args.out):
        raise ValueError(f"the job names {len(names)} validation sets ({', '.join(names)}) but --streams gives "
                         f"{len(args.streams)} and --out {len(args.out)}: one of each per set, in the job's order")
    valsets = {valset.name: {"tokens_path": stream, "tokens": valset.tokens}
               for valset, stream in zip(args.job.valsets, args.streams)}
    evaluate(folder_of([args.model], ["run.json"]), valsets, dict(zip(names, args.out)), args.threads)
    return 0
