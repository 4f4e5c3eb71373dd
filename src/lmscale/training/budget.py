"""The token budget of a run and the order in which it sees its data.

D = M x N, rounded to whole optimizer steps (`Budget`); a run its corpus cannot
feed without repeating data is refused before it starts (`check_enough_data`);
under `train.schedule: wsd` a branch's cooldown is the last share of its steps
(`cooldown_steps`, `branch_point`). `SequenceOrder` is the replayable data
order: the batch of every step is a function of the step alone, so a resumed
run, or a branch that continues a trunk, sees exactly the tokens an
uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Budget:
    """The token budget of a run: D = M x N, rounded to whole optimizer steps.

    N is the counted parameters (`count_embeddings`): every parameter, or the non-embedding ones.
    """

    N: int
    N_total: int
    N_non_embedding: int
    M: float
    D_target: int  # M x N before rounding
    steps: int
    tokens_per_step: int

    @property
    def D(self) -> int:
        return self.steps * self.tokens_per_step

    @classmethod
    def plan(cls, counts: dict, multiplier: float, batch_size: int, context: int,
             count_embeddings: bool) -> "Budget":
        tokens_per_step = batch_size * context
        n = counts["N"] if count_embeddings else counts["N_non_embedding"]
        target = round(multiplier * n)
        steps = max(1, round(target / tokens_per_step))
        return cls(n, counts["N"], counts["N_non_embedding"], multiplier, target, steps, tokens_per_step)


def check_enough_data(run: str, budget: Budget, usable_tokens: int, repeat_data: bool) -> float:
    """The number of epochs; refuses a run that would repeat data unless the config allows it."""
    epochs = budget.D / usable_tokens
    if epochs > 1 and not repeat_data:
        raise ValueError(
            f"run {run} needs D = {budget.D:,} training tokens (M = {budget.M:g} x N = {budget.N:,}) "
            f"but its train split has only {usable_tokens:,}; the paper omits such runs: drop the run "
            f"from the grid, add text to the corpus, or set train.repeat_data: true"
        )
    return epochs


def cooldown_steps(steps: int, share: float) -> int:
    """The steps of a branch's cooldown: `share` of its own steps, at least one."""
    return min(steps, max(1, round(steps * share)))


def branch_point(steps: int, share: float) -> int:
    """The trunk step after which a branch of `steps` steps starts its cooldown: D x (1 - share) tokens in."""
    return steps - cooldown_steps(steps, share)


def usable_tokens(stream_tokens: int, context: int) -> int:
    """The tokens of a stream that training reads: whole sequences of context + 1 tokens, one every
    `context` (SequenceOrder); the planner leaves out the runs a split this size cannot feed."""
    return (stream_tokens - 1) // context * context


class SequenceOrder:
    """Which training sequences each step sees, as a pure function of the step.

    The stream is cut into sequences of context + 1 tokens (inputs and shifted
    targets), sequence j starting at token j x context. Epoch e visits every
    sequence once in a permutation seeded by (seed, e); step s takes the next
    batch_size positions of that walk. Nothing depends on earlier steps, so a
    resumed run replays the same batches from any step.
    """

    def __init__(self, tokens: np.ndarray, context: int, seed: int):
        self.tokens = tokens
        self.context = context
        self.seed = seed
        self.sequences = (len(tokens) - 1) // context
        if self.sequences < 1:
            raise ValueError(f"train split has {len(tokens)} tokens, fewer than one sequence of {context + 1}")
        self._epoch, self._permutation = -1, None

    @property
    def usable_tokens(self) -> int:
        return usable_tokens(len(self.tokens), self.context)

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._permutation = np.random.default_rng([self.seed, epoch]).permutation(self.sequences)
        return self._permutation

    def batch(self, step: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
        """Token windows of shape (batch_size, context + 1) for `step` (only `rows` of them), gathered
        from the stream in one indexing operation."""
        positions = np.arange(step * batch_size, (step + 1) * batch_size)[rows]
        epochs, indices = np.divmod(positions, self.sequences)
        sequences = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(epochs):  # one epoch, or two where one ends inside the step
            chosen = epochs == epoch
            sequences[chosen] = self.permutation(int(epoch))[indices[chosen]]
        windows = (sequences * self.context)[:, None] + np.arange(self.context + 1)
        return self.tokens[windows].astype(np.int64)
