"""The tiny model with the Triton GDN scan (what ``impl="auto"`` picks on CUDA) equals it with the fast form.

Runs the kernels where the model runs them: on the permuted (B, H, T, S, D) views of the attention layout,
in both branches, chunk-causal, and streaming with the states carried in the cache. Without a GPU the
kernels run in Triton's interpreter (tests/conftest.py).
"""

from __future__ import annotations

import torch
from model_helpers import model_inputs, rel_err
from test_streaming import _stream

import sana_wm.ops.gdn as gdn
from sana_wm.model import KVWindow, TokenLayout

FRAMES = 5


def test_triton_scan_in_the_model_matches_the_fast_form(tiny_model, monkeypatch):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal", [3, 2])
    window = KVWindow(max_chunks=1, sink=True)
    with torch.no_grad():
        whole = tiny_model(**inputs, mode="chunk_causal", chunk_lengths=[3, 2])
    streamed, cache = _stream(tiny_model, inputs, layout, window)

    picked = []
    monkeypatch.setattr(gdn, "_auto_impl", lambda x, dtype: picked.append(x.device.type) or "triton")
    with torch.no_grad():
        whole_triton = tiny_model(**inputs, mode="chunk_causal", chunk_lengths=[3, 2])
    streamed_triton, cache_triton = _stream(tiny_model, inputs, layout, window)

    assert len(picked) == 2 * 3 * 3  # 3 GDN blocks x 2 branches, for the whole clip and each of 2 chunks
    assert rel_err(whole_triton, whole) <= 1e-5
    assert rel_err(streamed_triton, streamed) <= 1e-5
    state, state_triton = cache.blocks[0].attn.state, cache_triton.blocks[0].attn.state
    assert rel_err(state_triton.S, state.S) <= 1e-5 and rel_err(state_triton.z, state.z) <= 1e-5
