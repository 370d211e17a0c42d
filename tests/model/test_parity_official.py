"""Parity with diffusers at the released ``official-2.6b`` shapes (20 blocks of 2240, heads of 112).

The tiny-config parity tests (test_parity_diffusers.py) cannot catch what only the real sizes exercise:
head_dim 112 (padded to 128 in the camera softmax), 2240-channel norms, the 6720-wide FFN, the softmax
blocks 3, 7, 11, 15, 19. Here both models run on a short clip with the same fully random weights.

Memory: 2.66B float32 parameters are 10.6 GB, so only one copy exists: ours is materialised, diffusers'
model is built on the meta device and handed our tensors (``assign=True``), sharing their storage.
"""

import gc

import pytest
import torch
from model_helpers import model_inputs, randomize_, rel_err
from test_parity_diffusers import _oracle_forward

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.model.loading import to_diffusers_state_dict

diffusers_sana_wm = pytest.importorskip("diffusers.models.transformers.transformer_sana_wm")

FRAMES, HEIGHT, WIDTH = 3, 2, 4  # latent frames x grid: 8 tokens a frame


def _random_official_model(seed: int = 1) -> SanaWMTransformer:
    """``official-2.6b`` with every parameter random (``randomize_``; no default init, no second copy):
    matrices and conv kernels ~ N(0, 1/fan_in) (std ~0.02 at width 2240), norm weights ~1, other
    vectors (biases, gate constants) ~ N(0, 0.5^2)."""
    with torch.device("meta"):
        model = SanaWMTransformer(get_config("official-2.6b"))
    model.to_empty(device="cpu")
    randomize_(model, seed)
    with torch.no_grad():
        for buffer in model.buffers():  # the null caption and recall gates, never read by a forward
            buffer.zero_()
    return model.eval()


def _oracle_sharing_weights(model: SanaWMTransformer):
    """diffusers' model (default config = official shapes) whose parameters are ``model``'s tensors."""
    with torch.device("meta"):
        oracle = diffusers_sana_wm.SanaWMTransformer3DModel()
    # The rotary table is a plain attribute, not a buffer, so it was built on meta too: rebuild it.
    rope = oracle.rope
    oracle.rope = type(rope)(attention_head_dim=rope.attention_head_dim, patch_size=rope.patch_size,
                             max_seq_len=rope.max_seq_len)
    oracle.load_state_dict(to_diffusers_state_dict(model.state_dict()), strict=True, assign=True)
    assert not any(t.is_meta for t in oracle.state_dict().values())
    return oracle.eval()


@pytest.mark.slow
def test_official_shapes_match_diffusers():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # 2.66B parameters: worth the threads (the module fixture sets 1)
    try:
        model = _random_official_model()
        oracle = _oracle_sharing_weights(model)
        assert oracle.x_embedder.proj.weight.data_ptr() == model.x_embedder.proj.weight.data_ptr()
        inputs = model_inputs(model.config, batch=2, frames=FRAMES, height=HEIGHT, width=WIDTH, text_len=5)
        with torch.no_grad():
            ours = model(**inputs)
        theirs = _oracle_forward(oracle, inputs)
    finally:
        torch.set_num_threads(threads)
        model = oracle = None
        gc.collect()
    assert ours.shape == theirs.shape == inputs["latents"].shape
    assert torch.isfinite(ours).all()
    err = rel_err(ours, theirs)
    print(f"official-2.6b vs diffusers: relative error {err:.2e}")
    assert err <= 1e-5
