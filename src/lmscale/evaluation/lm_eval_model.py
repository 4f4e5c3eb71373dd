"""lm-eval's `hf` model with the per-request work done per batch.

Scoring a multiple-choice document is a handful of log-likelihood requests,
each a context and a continuation. lm-eval's HFLM (0.4.13) tokenizes each
request with two calls of the tokenizer, builds one tensor per request, and
after each batch's forward pass picks every request's scores apart with a
dozen small tensor operations. For a model of 15k parameters and 32 tokens
that bookkeeping costs more than the forward passes (tens of thousands of
requests per model). `BatchedHFLM` computes the same numbers with the work
batched: every distinct text tokenized in one call of the fast tokenizer,
each batch built as one tensor, and the continuation's log-probabilities and
greedy check gathered for the whole batch at once. Requests, order, padding
(right, with zeros), truncation (from the left, to the model's length) and
results are lm-eval's; anything else (other backends, several processes,
automatic batch sizes, the one-token logits cache) is left to lm-eval's own
code. tests/test_lm_eval_model.py checks both give the same scores.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator, _add_special_kwargs, has_bos_prefix
from tqdm import tqdm


class BatchedHFLM(HFLM):
    """HFLM whose log-likelihood requests are tokenized and scored a batch at a time."""

    truncated = 0  # requests cut from the left to fit the model's length (lm-eval warns once per request)

    def _batched(self) -> bool:
        return (self.backend == "causal" and not self.logits_cache and isinstance(self.batch_size, int)
                and self.world_size == 1)

    def encode_texts(self, texts: list[str]) -> dict[str, list[int]]:
        """`tok_encode` of every distinct text, in one call of the tokenizer where it can."""
        unique = list(dict.fromkeys(texts))
        kwargs = _add_special_kwargs(None, self.add_bos_token)
        bos = self.tokenizer.decode(self.prefix_token_id)
        plain = [text for text in unique if not has_bos_prefix(text, bos)]
        encoded = dict(zip(plain, self.encode_batch(plain, kwargs))) if plain else {}
        for text in unique:  # a text that starts with BOS: lm-eval's own handling
            if text not in encoded:
                encoded[text] = self.tok_encode(text)
        return encoded

    def encode_batch(self, texts: list[str], kwargs: dict) -> list[list[int]]:
        """`tokenizer.encode` of each text; straight from the Rust tokenizer of a fast one that neither
        truncates nor pads (what `encode` sets it to), which skips building a dict per text."""
        backend = getattr(self.tokenizer, "_tokenizer", None)
        if backend is None or backend.truncation is not None or backend.padding is not None:
            return self.tokenizer(texts, **kwargs)["input_ids"]
        add_special_tokens = kwargs.get("add_special_tokens", True)
        return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if not self._batched():
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        pairs = []
        for context, continuation in (request.args for request in requests):
            if context == "":
                pairs.append((context, continuation, None, None))
                continue
            spaces = len(context) - len(context.rstrip())  # trailing spaces belong to the continuation
            moved_context = context[:-spaces] if spaces else context
            moved_continuation = context[-spaces:] + continuation if spaces else continuation
            pairs.append((context, continuation, moved_context, moved_context + moved_continuation))
        encoded = self.encode_texts([text for pair in pairs for text in pair[2:] if text is not None])
        new_requests = []
        for context, continuation, moved_context, whole in pairs:
            if moved_context is None:  # empty context: the prefix token, as lm-eval does
                continuation_enc = self.tok_encode(continuation, add_special_tokens=False)
                context_enc, continuation_enc = (
                    ([self.prefix_token_id], continuation_enc) if self.prefix_token_id != continuation_enc[0]
                    else (continuation_enc[:1], continuation_enc[1:]))
            else:
                context_enc = encoded[moved_context]
                continuation_enc = encoded[whole][len(context_enc):]
            new_requests.append(((context, continuation), context_enc, continuation_enc))
        return self._loglikelihood_tokens(new_requests, disable_tqdm=disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if not self._batched() or override_bs is not None:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        # lm-eval's order: longest first, ties by tokens; each batch padded to its first request.
        order = Collator(requests, sort_fn=lambda request: (-len(request[1] + request[2]),
                                                            tuple(request[1] + request[2])))
        results = []
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="Running loglikelihood requests",
                        mininterval=10.0)
        for chunk in order.get_batched(n=self.batch_size):
            results.extend(self._score(chunk))
            progress.update(len(chunk))
        progress.close()
        return order.get_original(results)

    def _score(self, chunk) -> list[tuple[float, bool]]:
        """(summed log-probability of the continuation, whether it is the greedy one) of each request."""
        windows, continuations = [], []
        for _, context_enc, continuation_enc in chunk:
            assert len(context_enc) > 0 and 0 < len(continuation_enc) <= self.max_length
            whole = context_enc + continuation_enc
            if len(whole) > self.max_length + 1:
                self.truncated += 1
            windows.append(whole[-(self.max_length + 1):][:-1])
            continuations.append(continuation_enc)
        lengths = np.array([len(window) for window in windows])
        sizes = np.array([len(continuation) for continuation in continuations])
        inputs = np.zeros((len(windows), lengths.max()), dtype=np.int64)
        targets = np.zeros((len(windows), sizes.max()), dtype=np.int64)
        for row, (window, continuation) in enumerate(zip(windows, continuations)):
            inputs[row, : len(window)] = window
            targets[row, : len(continuation)] = continuation
        # The logits that predict a continuation: at its tokens' positions in the window, minus one.
        offsets = np.arange(sizes.max())
        valid = offsets < sizes[:, None]
        positions = np.where(valid, lengths[:, None] - sizes[:, None] + offsets, 0)
        device = self.device
        logits = self._model_call(torch.from_numpy(inputs).to(device))
        picked = logits[torch.arange(len(windows), device=device)[:, None], torch.from_numpy(positions).to(device)]
        log_probs = F.log_softmax(picked, dim=-1, dtype=self.softmax_dtype)  # a position's own, as lm-eval's
        targets, valid = torch.from_numpy(targets).to(device), torch.from_numpy(valid).to(device)
        scores = log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).masked_fill(~valid, 0.0).sum(dim=1)
        greedy = ((log_probs.argmax(dim=-1) == targets) | ~valid).all(dim=1)
        answers = list(zip(scores.tolist(), greedy.tolist()))
        for (request, _, _), answer in zip(chunk, answers):
            self.cache_hook.add_partial("loglikelihood", request, answer)
        return answers
