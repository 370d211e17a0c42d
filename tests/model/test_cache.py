"""Storing a streaming cache as named tensors (a resumed run's cache) and rebuilding it."""

import json

import pytest
import torch
from model_helpers import model_inputs

from sana_wm.model.cache import GDNCache, SoftmaxCache, StreamCache, cache_from_tensors, cache_to_tensors


def _cache(model):
    """The cache after two chunks of 4 and 3 frames, camera on (both branches cached)."""
    inputs = model_inputs(model.config, batch=1, frames=7)
    cache = None
    with torch.no_grad():
        for a, b in ((0, 4), (4, 7)):
            chunk = dict(inputs, latents=inputs["latents"][:, :, a:b], timestep=inputs["timestep"][..., a:b],
                         camera_vector=inputs["camera_vector"][:, a:b], plucker=inputs["plucker"][:, :, a:b])
            _, cache = model.forward_chunk(**chunk, cache=cache)
    return inputs, cache


def test_a_cache_survives_a_safetensors_file_and_the_next_chunk_sees_no_difference(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    inputs, cache = _cache(tiny_model)
    tensors, structure = cache_to_tensors(cache)
    save_file(tensors, str(tmp_path / "cache.safetensors"), metadata={"cache": json.dumps(structure)})
    rebuilt = cache_from_tensors(load_file(str(tmp_path / "cache.safetensors")), structure)
    assert isinstance(rebuilt, StreamCache) and rebuilt.next_frame == cache.next_frame == 7
    kinds = {type(block.attn) for block in rebuilt.blocks}
    assert kinds == {GDNCache, SoftmaxCache}  # both block kinds, camera branches included
    assert all(block.attn.kv_cam is not None for block in rebuilt.blocks if isinstance(block.attn, SoftmaxCache))
    first = next(block.attn.kv for block in rebuilt.blocks if isinstance(block.attn, SoftmaxCache))
    original = next(block.attn.kv for block in cache.blocks if isinstance(block.attn, SoftmaxCache))
    assert (first.max_chunks, first.sink, len(first.chunks)) == (original.max_chunks, original.sink, 2)
    nxt = dict(inputs, latents=inputs["latents"][:, :, 4:7], timestep=inputs["timestep"][..., 4:7],
               camera_vector=inputs["camera_vector"][:, 4:7], plucker=inputs["plucker"][:, :, 4:7])
    with torch.no_grad():
        expected, _ = tiny_model.forward_chunk(**nxt, cache=cache)
        got, _ = tiny_model.forward_chunk(**nxt, cache=rebuilt)
    assert torch.equal(got, expected)


def test_a_stored_structure_only_builds_cache_records(tiny_model):
    _, cache = _cache(tiny_model)
    tensors, structure = cache_to_tensors(cache)
    with pytest.raises(ValueError, match="unknown cached record 'Popen'"):
        cache_from_tensors(tensors, {"record": "Popen", "fields": {}})
    with pytest.raises(ValueError, match="missing"):
        cache_from_tensors({}, structure)
    with pytest.raises(ValueError, match="not a StreamCache"):
        cache_from_tensors(tensors, {"tuple": []})
    with pytest.raises(TypeError, match="cannot store"):
        cache_to_tensors(StreamCache((object(),), 0))
