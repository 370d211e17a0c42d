"""Chunk-causal softmax attention: the FlexAttention block-mask path (CUDA's) equals the chunk-by-chunk SDPA path.

Flex runs eagerly on CPU (its unfused reference implementation), which is enough to check the block mask,
the head padding and the scale; the fused kernel is what CUDA compiles from the same call.
"""

from __future__ import annotations

import math

import pytest
import torch

from sana_wm.model.attention import _chunk_causal_flex, _chunk_causal_sdpa
from sana_wm.model.layout import TokenLayout

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


@pytest.mark.parametrize(("chunks", "prefix", "D"), [
    ((4, 3, 2), 0, 48),  # chunk lengths the released schedule makes for 9 frames; 48 pads to 64
    ((1, 5), 7, 32),  # a streaming-like prefix of 7 keys every query sees; 32 needs no padding
    ((2, 2, 2, 1), 12, 112),  # the released head dim (pads to 128) with the released 1/sqrt(112) scale
])
def test_flex_block_mask_equals_chunk_by_chunk_sdpa(chunks, prefix, D):
    layout = TokenLayout(frames=sum(chunks), height=2, width=3, chunk_lengths=chunks)
    N = layout.num_tokens
    g = torch.Generator().manual_seed(len(chunks) + prefix + D)
    q = torch.randn(2, 3, N, D, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 3, prefix + N, D, generator=g, dtype=torch.float64) for _ in range(2))
    scale = 1 / math.sqrt(D)
    expected = _chunk_causal_sdpa(q, k, v, layout, scale, prefix)
    actual = _chunk_causal_flex(q, k, v, layout, scale, prefix)
    assert actual.shape == expected.shape == (2, 3, N, D)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def test_flex_path_sees_no_later_chunk():
    """Changing keys/values of the last chunk leaves the first chunk's outputs unchanged (and changes the last's)."""
    layout = TokenLayout(frames=5, height=1, width=4, chunk_lengths=(2, 3))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 20, 16, generator=g, dtype=torch.float64) for _ in range(3))
    out = _chunk_causal_flex(q, k, v, layout, 0.25, 0)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 8:] += 1.0
    v2[:, :, 8:] += 1.0
    out2 = _chunk_causal_flex(q, k2, v2, layout, 0.25, 0)
    torch.testing.assert_close(out2[:, :, :8], out[:, :, :8], rtol=0, atol=0)
    assert (out2[:, :, 8:] - out[:, :, 8:]).abs().max() > 0.1


def test_model_with_the_flex_path_matches(tiny_model, monkeypatch):
    """The tiny model's chunk-causal forward through Flex (as on CUDA, both branches) equals SDPA per chunk."""
    from model_helpers import model_inputs, rel_err

    import sana_wm.model.attention as attention

    inputs = model_inputs(tiny_model.config, batch=1, frames=5)
    with torch.no_grad():
        expected = tiny_model(**inputs, mode="chunk_causal", chunk_lengths=[3, 2])
        calls = []

        def flex(*args):
            calls.append(1)
            return _chunk_causal_flex(*args)

        monkeypatch.setattr(attention, "_chunk_causal_sdpa", flex)
        actual = tiny_model(**inputs, mode="chunk_causal", chunk_lengths=[3, 2])
    assert len(calls) == 2  # the one softmax block of the tiny config, main and camera branch
    assert rel_err(actual, expected) <= 1e-5
