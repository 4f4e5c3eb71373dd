"""The training module (lmscale.model.decoder.Decoder) is the stock Qwen3ForCausalLM, weight for weight."""

from __future__ import annotations

import pytest
import torch

from lmscale.model.architecture import Shape, build_model
from lmscale.model.decoder import build_decoder, loss_terms, to_transformers

VOCAB, END_OF_TEXT = 320, 0
SHAPES = {
    "tied": Shape(width=32, depth=2, heads=4, mlp_width=80, context=24, kv_heads=None, rope_theta=10000.0,
                  tie_embeddings=True),
    "untied, grouped queries": Shape(width=48, depth=3, heads=4, mlp_width=96, context=40, kv_heads=2,
                                     rope_theta=500.0, tie_embeddings=False),
}


def trained_like(model, seed: int) -> None:
    """Every weight moved off its initial value (norms no longer ones), as after some training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_decoder_has_qwen3s_weights_and_gives_its_logits_and_gradients(name):
    shape = SHAPES[name]
    decoder = build_decoder(shape, VOCAB, END_OF_TEXT, seed=3)
    stock = build_model(shape, VOCAB, END_OF_TEXT, seed=3)
    # The very initial weights of the stock model for the seed, under the very same names.
    assert decoder.state_dict().keys() == stock.state_dict().keys()
    assert all(torch.equal(value, stock.state_dict()[key]) for key, value in decoder.state_dict().items())

    trained_like(decoder, seed=1)
    stock = to_transformers(decoder.state_dict(), shape, VOCAB, END_OF_TEXT)
    assert type(stock).__name__ == decoder.SAVED_AS
    tokens = torch.randint(0, VOCAB, (3, shape.context + 1), generator=torch.Generator().manual_seed(2))
    tokens[0, 5] = END_OF_TEXT  # the padding_idx row of the embedding gets no input gradient in either
    torch.testing.assert_close(decoder(tokens[:, :-1]), stock(input_ids=tokens[:, :-1]).logits, atol=1e-5, rtol=0)
    # A shorter sequence reads the first rows of the rotary table.
    torch.testing.assert_close(decoder(tokens[:, :9]), stock(input_ids=tokens[:, :9]).logits, atol=1e-5, rtol=0)

    ours = sum(decoder(tokens[:, :-1], tokens[:, 1:], 1e-4))
    theirs = sum(loss_terms(stock(input_ids=tokens[:, :-1]).logits, tokens[:, 1:], 1e-4))
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    stock_parameters = dict(stock.named_parameters())
    for key, parameter in decoder.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_parameters[key].grad, atol=1e-5, rtol=1e-4, msg=key)
