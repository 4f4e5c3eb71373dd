"""The model: a size declared by its shape, built as a stock `transformers` Qwen3.

Qwen3 is open_lm's recipe in a registered architecture: pre-norm (RMSNorm),
SwiGLU MLP, rotary positions, QK-norm, no biases. Being registered, a saved
model loads with `AutoModelForCausalLM.from_pretrained(path)` and through
lm-eval's `hf` backend with no custom code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Shape:
    """A model size by its shape, as `sizes.<label>` declares it in the config (defaults: the schema's)."""

    width: int
    depth: int
    heads: int
    mlp_width: int
    context: int
    kv_heads: int | None  # None: one key/value head per attention head
    rope_theta: float
    tie_embeddings: bool

    @classmethod
    def from_config(cls, label: str, size: dict) -> "Shape":
        known = {f.name for f in fields(cls)}
        shape = cls(**{key: value for key, value in size.items() if key in known})
        shape = replace(shape, rope_theta=float(shape.rope_theta))  # 10000 and 10000.0: one setting
        if shape.width % shape.heads:
            raise ValueError(f"size {label}: width {shape.width} is not divisible by heads {shape.heads}")
        if shape.heads % (shape.kv_heads or shape.heads):
            raise ValueError(f"size {label}: heads {shape.heads} is not divisible by kv_heads {shape.kv_heads}")
        return shape

    def as_dict(self) -> dict:
        return asdict(self)


def build_config(shape: Shape, vocab_size: int, end_of_text_id: int):
    # deferred: transformers takes seconds; jobs and the workflow import Shape from here
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=shape.width,
        num_hidden_layers=shape.depth,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads or shape.heads,
        head_dim=shape.width // shape.heads,
        intermediate_size=shape.mlp_width,
        max_position_embeddings=shape.context,
        rope_parameters={"rope_type": "default", "rope_theta": float(shape.rope_theta)},
        tie_word_embeddings=shape.tie_embeddings,
        attention_bias=False,
        use_sliding_window=False,
        bos_token_id=end_of_text_id,
        eos_token_id=end_of_text_id,
        pad_token_id=end_of_text_id,
    )


def build_model(shape: Shape, vocab_size: int, end_of_text_id: int, seed: int):
    """A freshly initialised model; the seed fixes the initial weights."""
    # deferred: torch and transformers take seconds; jobs and the workflow import Shape from here
    import torch
    from transformers import Qwen3ForCausalLM

    config = build_config(shape, vocab_size, end_of_text_id)
    # sdpa runs everywhere (CPU included) and is what a reloaded model uses by default.
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    return model


def parameter_counts(model) -> dict:
    """N (every parameter, embeddings included: the paper's convention) and N without embeddings.

    `model.parameters()` yields a tied matrix once, so tied embeddings count once.
    """
    total = sum(p.numel() for p in model.parameters())
    embedding = {id(p): p.numel() for p in (model.get_input_embeddings().weight,
                                            model.get_output_embeddings().weight)}
    return {"N": total, "N_non_embedding": total - sum(embedding.values())}
