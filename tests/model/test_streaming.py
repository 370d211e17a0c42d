"""Streaming chunk by chunk with a typed cache equals the chunk-causal model over the whole video."""

import pytest
import torch
from model_helpers import model_inputs, rel_err

from sana_wm.model import SanaWMTransformer, TokenLayout
from sana_wm.model.cache import GDNCache, KVWindow, SoftmaxCache

FRAMES = 7


def _chunk(inputs, a, b):
    out = dict(inputs)
    out["latents"] = inputs["latents"][:, :, a:b]
    out["timestep"] = inputs["timestep"][..., a:b]
    out["camera_vector"] = inputs["camera_vector"][:, a:b]
    out["plucker"] = inputs["plucker"][:, :, a:b]
    return out


def _stream(model, inputs, layout, kv_window=None):
    cache, parts = None, []
    with torch.no_grad():
        for a, b in layout.chunks:
            out, cache = model.forward_chunk(**_chunk(inputs, a, b), cache=cache,
                                             kv_window=kv_window if cache is None else None)
            parts.append(out)
    return torch.cat(parts, dim=2), cache


def _unpadded(model):
    """The same weights with the chunk-causal softmax scale in streaming too."""
    twin = SanaWMTransformer(model.config.replace(padded_softmax_in_streaming=False)).eval()
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("chunk_lengths", [None, [2, 3, 2]])
def test_streaming_equals_chunk_causal(tiny_model, chunk_lengths):
    model = _unpadded(tiny_model)
    inputs = model_inputs(model.config, batch=2, frames=FRAMES)
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal", chunk_lengths)
    with torch.no_grad():
        whole = model(**inputs, mode="chunk_causal", chunk_lengths=chunk_lengths)
    streamed, cache = _stream(model, inputs, layout)
    assert cache.next_frame == FRAMES
    assert isinstance(cache.blocks[0].attn, GDNCache) and isinstance(cache.blocks[3].attn, SoftmaxCache)
    assert rel_err(streamed, whole) <= 1e-5


def test_streaming_softmax_uses_the_padded_scale(tiny_model):
    # head_dim 48: streaming main-branch logits are scaled by 1/sqrt(128), chunk-causal by 1/sqrt(48).
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal")
    padded, _ = _stream(tiny_model, inputs, layout)
    plain, _ = _stream(_unpadded(tiny_model), inputs, layout)
    assert rel_err(padded, plain) > 1e-3


def test_cache_is_not_mutated_by_a_chunk(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    with torch.no_grad():
        _, cache = tiny_model.forward_chunk(**_chunk(inputs, 0, 4))
        first, _ = tiny_model.forward_chunk(**_chunk(inputs, 4, 7), cache=cache)
        noisier = _chunk(inputs, 4, 7)
        noisier["timestep"] = noisier["timestep"] * 0 + 900
        tiny_model.forward_chunk(**noisier, cache=cache)  # another denoising step on the same cache
        again, _ = tiny_model.forward_chunk(**_chunk(inputs, 4, 7), cache=cache)
    assert torch.equal(first, again)


def test_kv_window_keeps_sink_and_recent_chunks():
    def chunk(i):
        return torch.full((1, 2, 1, 1), float(i)), torch.full((1, 2, 1, 1), float(i))

    def kept(window):
        return [int(k[0, 0, 0, 0]) for k, _ in window.chunks]

    unbounded, released, recent = KVWindow(), KVWindow(max_chunks=2, sink=True), KVWindow(max_chunks=2)
    for i in range(5):
        unbounded, released, recent = (w.push(*chunk(i)) for w in (unbounded, released, recent))
    assert kept(unbounded) == [0, 1, 2, 3, 4]
    assert kept(released) == [0, 4]
    assert kept(recent) == [3, 4]
    keys, values = released.keys_values()
    assert keys.shape == (1, 4, 1, 1)


def test_bounded_window_forgets_old_chunks(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal", [2, 2, 3])
    everything, cache_all = _stream(tiny_model, inputs, layout)
    last_only, cache_last = _stream(tiny_model, inputs, layout, kv_window=KVWindow(max_chunks=1))
    assert len(cache_all.blocks[3].attn.kv.chunks) == 3 and len(cache_last.blocks[3].attn.kv.chunks) == 1
    assert torch.equal(everything[:, :, :4], last_only[:, :, :4])  # chunks 0, 1 see at most one earlier chunk
    assert not torch.allclose(everything[:, :, 4:], last_only[:, :, 4:])
