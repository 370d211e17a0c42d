"""Parity with diffusers at the released ``official-2.6b`` widths: 2240 channels, 20 heads of 112, 128-channel
latents, 2304-channel captions.

The tiny-config parity tests (test_parity_diffusers.py) cannot catch what only the real sizes exercise:
head_dim 112 (padded to 128 in the camera softmax), 2240-channel norms, the 6720-wide FFN. The released
model repeats one GDN block three times and then a softmax block, five times over; four blocks (GDN, GDN, GDN,
softmax) cover both kinds at full width, each block's parameters are checked against the released model's
shapes (built on the meta device), and both models run on a short clip with the same fully random weights.

Memory: four blocks are 0.52B float32 parameters (2.1 GB), and only one copy exists: ours is materialised,
diffusers' model is built on the meta device and handed our tensors (``assign=True``), sharing their storage.
"""

import gc

import diffusers.models.transformers.transformer_sana_wm as diffusers_sana_wm
import torch
from model_helpers import model_inputs, randomize_, rel_err
from test_parity_diffusers import _oracle_forward

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.model.config import UCPE_RENORM_DIFFUSERS
from sana_wm.model.loading import to_diffusers_state_dict

FRAMES, HEIGHT, WIDTH = 3, 2, 4  # latent frames x grid: 8 tokens a frame
BLOCKS = 4  # GDN, GDN, GDN, softmax: the released period
# Full width; diffusers renormalises UCPE-transformed q/k/v in every block kind.
CONFIG = get_config("official-2.6b").replace(depth=BLOCKS, ucpe_rms_renorm=UCPE_RENORM_DIFFUSERS)


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def test_blocks_have_the_released_shapes():
    with torch.device("meta"):
        released = SanaWMTransformer(get_config("official-2.6b"))
        ours = SanaWMTransformer(CONFIG)
    assert [b.kind for b in ours.blocks] == ["gdn", "gdn", "gdn", "softmax"]
    for i, block in enumerate(ours.blocks):
        assert _shapes(block) == _shapes(released.blocks[i]) == _shapes(released.blocks[i + 16])
    outside = {k: v for k, v in _shapes(released).items() if not k.startswith("blocks.")}
    assert {k: v for k, v in _shapes(ours).items() if not k.startswith("blocks.")} == outside


def _random_official_model(seed: int = 1) -> SanaWMTransformer:
    """``official-2.6b`` widths, four blocks, with every parameter random (``randomize_``; no default init, no
    second copy): matrices and conv kernels ~ N(0, 1/fan_in) (std ~0.02 at width 2240), norm weights ~1, other
    vectors (biases, gate constants) ~ N(0, 0.5^2)."""
    with torch.device("meta"):
        model = SanaWMTransformer(CONFIG)
    model.to_empty(device="cpu")
    randomize_(model, seed)
    with torch.no_grad():
        for buffer in model.buffers():  # the null caption and recall gates, never read by a forward
            buffer.zero_()
    return model.eval()


def _oracle_sharing_weights(model: SanaWMTransformer):
    """diffusers' model (default config = official widths, four blocks) whose parameters are ``model``'s tensors."""
    with torch.device("meta"):
        oracle = diffusers_sana_wm.SanaWMTransformer3DModel(num_layers=BLOCKS, chunk_plucker_post_attn_blocks=BLOCKS)
    # The rotary table is a plain attribute, not a buffer, so it was built on meta too: rebuild it.
    rope = oracle.rope
    oracle.rope = type(rope)(attention_head_dim=rope.attention_head_dim, patch_size=rope.patch_size,
                             max_seq_len=rope.max_seq_len)
    oracle.load_state_dict(to_diffusers_state_dict(model.state_dict()), strict=True, assign=True)
    assert not any(t.is_meta for t in oracle.state_dict().values())
    return oracle.eval()


def test_official_widths_match_diffusers():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # 0.5B parameters: worth the threads (the module fixture sets 1)
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
    print(f"official widths vs diffusers: relative error {err:.2e}")
    assert err <= 1e-5
