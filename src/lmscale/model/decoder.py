"""The network training drives: Qwen3ForCausalLM's, written in one screen.

`Decoder` holds the same parameters under the same names as the stock
`transformers` Qwen3ForCausalLM (its state dict is one, key for key) and runs
the same operations in the same order: pre-norm RMSNorm, QK-norm, rotary
positions, causal attention, SwiGLU, tied or untied head. What it leaves out
is what a general-purpose model does on every call: building the causal mask
and the rotary table, cache and keyword plumbing, output objects. Its rotary
table is computed once, its forward can end in the loss (so that the loss
compiles into the same graph), and the whole of it compiles into one graph.

A run starts from the stock model's initial weights (`build_decoder`) and
saves a stock model (`to_transformers`), so checkpoints, the saved model and
everything that reads it (AutoModelForCausalLM, lm-eval) know nothing of this
module; tests/test_decoder.py checks that both give the same logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmscale.model.architecture import Shape, build_model

# Qwen3Config's default RMSNorm epsilon, which build_config keeps.
RMS_NORM_EPS = 1e-6


class RMSNorm(nn.Module):
    """Qwen3RMSNorm: normalised in fp32, scaled in the input's dtype."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_NORM_EPS)
        return self.weight * x.to(dtype)


def rotate(x, cos, sin):
    """Rotary positions, as transformers' apply_rotary_pos_emb (the two halves rotated)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        head_dim, kv_heads = shape.width // shape.heads, shape.kv_heads or shape.heads
        self.head_dim, self.gqa = head_dim, kv_heads != shape.heads
        self.q_proj = nn.Linear(shape.width, shape.heads * head_dim, bias=False)
        self.k_proj = nn.Linear(shape.width, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(shape.width, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(shape.heads * head_dim, shape.width, bias=False)
        self.q_norm, self.k_norm = RMSNorm(head_dim), RMSNorm(head_dim)

    def forward(self, x, cos, sin):
        batch, length, _ = x.shape
        heads = (batch, length, -1, self.head_dim)
        q = rotate(self.q_norm(self.q_proj(x).view(heads)).transpose(1, 2), cos, sin)
        k = rotate(self.k_norm(self.k_proj(x).view(heads)).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.head_dim ** -0.5, enable_gqa=self.gqa)
        return self.o_proj(y.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.gate_proj = nn.Linear(shape.width, shape.mlp_width, bias=False)
        self.up_proj = nn.Linear(shape.width, shape.mlp_width, bias=False)
        self.down_proj = nn.Linear(shape.mlp_width, shape.width, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.self_attn, self.mlp = Attention(shape), MLP(shape)
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(shape.width), RMSNorm(shape.width)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    """Qwen3Model's parameters: the embedding, the layers, the final norm."""

    def __init__(self, shape: Shape, vocab_size: int, end_of_text_id: int):
        super().__init__()
        # padding_idx as Qwen3Model's (its pad_token_id): that row's input gradient is zero.
        self.embed_tokens = nn.Embedding(vocab_size, shape.width, padding_idx=end_of_text_id)
        self.layers = nn.ModuleList(Layer(shape) for _ in range(shape.depth))
        self.norm = RMSNorm(shape.width)


class Decoder(nn.Module):
    """Qwen3ForCausalLM's network for training: the same parameter names, the same operations.

    `forward(input_ids)` gives the logits; `forward(input_ids, targets, z_loss)` the mean token
    cross-entropy and the z-loss of `loss_terms` instead.
    """

    SAVED_AS = "Qwen3ForCausalLM"  # the class `to_transformers` gives, which saved models load as

    def __init__(self, shape: Shape, vocab_size: int, end_of_text_id: int):
        super().__init__()
        self.shape, self.vocab_size, self.end_of_text_id = shape, vocab_size, end_of_text_id
        self.model = Body(shape, vocab_size, end_of_text_id)
        self.lm_head = nn.Linear(shape.width, vocab_size, bias=False)
        if shape.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # The rotary table of every position, once (fp32, as Qwen3RotaryEmbedding's for fp32 inputs).
        head_dim = shape.width // shape.heads
        inverse = 1.0 / (float(shape.rope_theta) ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        angles = torch.arange(shape.context, dtype=torch.float)[:, None] * inverse
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, input_ids, targets=None, z_loss: float = 0.0):
        length = input_ids.shape[1]
        cos, sin = self.cos[:length], self.sin[:length]
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))
        if targets is None:
            return logits
        return loss_terms(logits, targets, z_loss)


def loss_terms(logits, targets, z_loss: float):
    """Mean token cross-entropy and the z-loss, z_loss x mean(log Z^2), which keeps logits from drifting."""
    logits = logits.float().reshape(-1, logits.shape[-1])
    # One log-partition serves both terms: cross-entropy is log Z minus the target's logit.
    log_z = logits.logsumexp(dim=-1)
    cross_entropy = (log_z - logits.gather(1, targets.reshape(-1, 1)).squeeze(1)).mean()
    z = z_loss * log_z.pow(2).mean()
    return cross_entropy, z


def build_decoder(shape: Shape, vocab_size: int, end_of_text_id: int, seed: int) -> Decoder:
    """The training module, holding the very initial weights `build_model` gives for `seed`."""
    decoder = Decoder(shape, vocab_size, end_of_text_id)
    decoder.load_state_dict(build_model(shape, vocab_size, end_of_text_id, seed).state_dict())
    return decoder


def to_transformers(weights: dict, shape: Shape, vocab_size: int, end_of_text_id: int):
    """The stock Qwen3ForCausalLM holding `weights` (a Decoder's state dict), on the CPU in fp32."""
    model = build_model(shape, vocab_size, end_of_text_id, seed=0)
    model.load_state_dict({key: value.detach().to("cpu", torch.float32) for key, value in weights.items()})
    return model
