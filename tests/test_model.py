"""A model size by its shape (lmscale.model.architecture.Shape), as `sizes.<label>` declares it. The network built
from it, weight for weight the stock Qwen3: test_decoder; its parameter count: test_resources."""

from __future__ import annotations

import pytest

from lmscale.model.architecture import Shape
from tests.workflow import validated_config

SIZE = {"width": 48, "depth": 3, "heads": 4, "mlp_width": 96, "context": 40}


def size(**changes) -> dict:
    """SIZE as the workflow reads `sizes.s`: the schema's defaults filled in, with a size's other settings."""
    return validated_config({"sizes": {"s": {**SIZE, "lr": 0.01, "gpus": 2, **changes}}})["sizes"]["s"]


def test_a_shape_takes_the_sizes_shape_and_leaves_its_other_settings():
    shape = Shape.from_config("s", size(kv_heads=2))
    assert (shape.width, shape.depth, shape.heads, shape.kv_heads, shape.mlp_width) == (48, 3, 4, 2, 96)
    assert Shape.from_config("s", size()).kv_heads is None  # a key/value head per attention head
    # 10000 and 10000.0 are one setting: the same shape, the same fingerprint of a run.
    assert Shape.from_config("s", size(rope_theta=10000)) == Shape.from_config("s", size(rope_theta=10000.0))
    assert Shape(**shape.as_dict()) == shape


def test_heads_that_do_not_divide_the_width_or_share_key_value_heads_are_refused():
    with pytest.raises(ValueError, match="size s: width 48 is not divisible by heads 5"):
        Shape.from_config("s", size(heads=5))
    with pytest.raises(ValueError, match="size s: heads 4 is not divisible by kv_heads 3"):
        Shape.from_config("s", size(kv_heads=3))
