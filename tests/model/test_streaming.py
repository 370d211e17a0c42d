"""Streaming chunk by chunk with a typed cache equals the chunk-causal model over the whole video."""

import dataclasses
import math

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
    if inputs["camera_vector"] is not None:
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


def _softmax_scales(model, inputs, layout, monkeypatch, *, streaming: bool) -> set[float]:
    """The ``scale`` of every SDPA call the self-attention makes (streamed chunk by chunk, or chunk-causal at
    once); None stands for SDPA's default."""
    import sana_wm.model.attention as attention

    scales = []

    class Recording:
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        @staticmethod
        def scaled_dot_product_attention(*args, scale=None, **kwargs):
            scales.append(scale)
            return torch.nn.functional.scaled_dot_product_attention(*args, scale=scale, **kwargs)

    monkeypatch.setattr(attention, "F", Recording())
    with torch.no_grad():
        if streaming:
            _stream(model, inputs, layout)
        else:
            model(**inputs, mode="chunk_causal")
    monkeypatch.undo()
    return set(scales)


@pytest.mark.parametrize("padded", [True, False])
def test_softmax_scales_at_the_released_head_dim(padded, monkeypatch):
    """head_dim 112 as released: the streaming main branch scales logits by exactly 1/sqrt(128) where the release
    pads heads (padded_softmax_in_streaming), 1/sqrt(112) otherwise and in the chunk-causal forward; the camera
    branch always by 1/sqrt(128) (reference §2.3)."""
    from model_helpers import randomize_

    from sana_wm.model import get_config

    cfg = get_config("tiny").replace(hidden_size=224, num_heads=2, head_dim=112, depth=1, softmax_blocks=(0,),
                                     padded_softmax_in_streaming=padded)
    model = randomize_(SanaWMTransformer(cfg)).eval()
    inputs = model_inputs(cfg, batch=1, frames=FRAMES, height=2, width=3)
    layout = TokenLayout.build(FRAMES, 2, 3, "chunk_causal")
    no_camera = {**inputs, "camera_vector": None, "plucker": None}
    main = _softmax_scales(model, no_camera, layout, monkeypatch, streaming=True)
    assert main == {1 / math.sqrt(128) if padded else 1 / math.sqrt(112)}
    assert _softmax_scales(model, no_camera, layout, monkeypatch, streaming=False) == {1 / math.sqrt(112)}
    with_camera = _softmax_scales(model, inputs, layout, monkeypatch, streaming=True)
    assert with_camera == main | {1 / math.sqrt(128)}
    assert _softmax_scales(model, inputs, layout, monkeypatch, streaming=False) == {1 / math.sqrt(112),
                                                                                   1 / math.sqrt(128)}


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


# Five chunks (4 + 3 + 3 + 3 + 3 frames): the released schedule over a longer clip.
LONG_FRAMES = 16


def test_streaming_equals_chunk_causal_over_five_chunks(tiny_model):
    model = _unpadded(tiny_model)
    inputs = model_inputs(model.config, batch=1, frames=LONG_FRAMES)
    layout = TokenLayout.build(LONG_FRAMES, 4, 6, "chunk_causal")
    assert layout.chunk_lengths == (4, 3, 3, 3, 3)
    with torch.no_grad():
        whole = model(**inputs, mode="chunk_causal")
    streamed, cache = _stream(model, inputs, layout)
    assert len(cache.blocks[3].attn.kv.chunks) == 5
    assert rel_err(streamed, whole) <= 1e-5


def _cache_tensors(obj):
    """Every tensor reachable from a cache record (dataclasses, tuples)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            yield from _cache_tensors(getattr(obj, field.name))
    elif isinstance(obj, tuple):
        for item in obj:
            yield from _cache_tensors(item)


def _cache_bytes(cache) -> tuple[int, int]:
    """(bytes of the cache's tensors, bytes of the storages they keep alive). The second is the memory
    the cache really holds: a tensor that is a view into a larger activation keeps all of it."""
    tensors = list(_cache_tensors(cache))
    logical = sum(t.numel() * t.element_size() for t in tensors)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return logical, sum(storages.values())


def _stream_bytes(model, inputs, layout, kv_window):
    cache, held = None, []
    with torch.no_grad():
        for a, b in layout.chunks:
            _, cache = model.forward_chunk(**_chunk(inputs, a, b), cache=cache,
                                           kv_window=kv_window if cache is None else None)
            held.append(_cache_bytes(cache))
    return held


def test_released_window_cache_memory_is_flat(tiny_model):
    # Six chunks with the released window (sink + the most recent chunk, 2 in all): once the window
    # holds two chunks (after chunk 1), every further chunk leaves the cache's bytes exactly unchanged.
    frames = 4 + 3 * 5
    inputs = model_inputs(tiny_model.config, batch=1, frames=frames)
    layout = TokenLayout.build(frames, 4, 6, "chunk_causal")
    held = _stream_bytes(tiny_model, inputs, layout, KVWindow(max_chunks=2, sink=True))
    assert len(held) == 6
    assert len(set(held[1:])) == 1, held
    # The cache holds only its own tensors, not the chunk activations they were sliced from.
    assert all(logical == stored for logical, stored in held), held


def test_unbounded_window_cache_grows_by_one_chunk_of_keys_values(tiny_model):
    # The same measure without a window: each 3-frame chunk adds its keys and values (main + camera
    # branch) to every softmax block, and nothing else grows.
    frames = 4 + 3 * 3
    cfg = tiny_model.config
    inputs = model_inputs(cfg, batch=1, frames=frames)
    layout = TokenLayout.build(frames, 4, 6, "chunk_causal")
    held = [stored for _, stored in _stream_bytes(tiny_model, inputs, layout, KVWindow())]
    per_chunk = len(cfg.softmax_block_indices) * 2 * 2 * (3 * 4 * 6) * cfg.hidden_size * 4  # (k, v) x 2 branches
    assert [b - a for a, b in zip(held[:-1], held[1:], strict=True)] == [per_chunk] * 3
