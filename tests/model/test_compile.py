"""``SanaWMTransformer.compile_blocks``: compiled blocks stream exactly like eager ones and compile once per shape.

The test uses TorchDynamo with the ``eager`` backend: the blocks are captured into graphs (with the typed
caches as inputs, guards and graph breaks as on CUDA) and the captured graphs are run op by op, so the
output must equal eager bit for bit; no C++/CUDA compiler is needed. Inductor's fused kernels differ from
eager only by rounding, which the GPU suite measures.
"""

from __future__ import annotations

import copy

import torch
from model_helpers import model_inputs
from test_streaming import _stream

from sana_wm.model import KVWindow, TokenLayout

FRAMES = 5


def _leaves(cache) -> list[torch.Tensor]:
    return [leaf for leaf in torch.utils._pytree.tree_leaves(cache) if isinstance(leaf, torch.Tensor)]


def test_compiled_blocks_stream_like_eager_and_compile_once_per_shape(tiny_model):
    from torch._dynamo.utils import counters

    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal", [2, 2, 1])
    window = KVWindow(max_chunks=1, sink=True)
    expected, expected_cache = _stream(tiny_model, inputs, layout, window)

    model = copy.deepcopy(tiny_model)  # the fixture is shared: compile a copy
    torch._dynamo.reset()
    counters.clear()
    model.compile_blocks(backend="eager")
    streamed, cache = _stream(model, inputs, layout, window)
    assert torch.equal(streamed, expected)
    assert all(torch.equal(a, b) for a, b in zip(_leaves(cache), _leaves(expected_cache), strict=True))
    compiled = counters["stats"]["unique_graphs"]
    assert compiled > 0

    _stream(model, inputs, layout, window)  # the same shapes again: nothing new to compile
    assert counters["stats"]["unique_graphs"] == compiled
    torch._dynamo.reset()
