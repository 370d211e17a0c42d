"""Numerical parity with diffusers' SanaWMTransformer3DModel (the oracle), same weights, float32."""

import contextlib

import diffusers.models.transformers.transformer_sana_wm as diffusers_sana_wm
import pytest
import torch
from model_helpers import model_inputs, randomize_, rel_err

from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.model.config import UCPE_RENORM_DIFFUSERS
from sana_wm.model.loading import to_diffusers_state_dict


@contextlib.contextmanager
def _no_bf16_downcast():
    """diffusers casts float32 q/k/v to bfloat16 before its softmax SDPA (a FlashAttention habit);
    make that cast a no-op so the oracle stays in float32 and parity can be checked tightly."""
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original


def _oracle(model: SanaWMTransformer):
    kwargs = {k: v for k, v in model.config.to_diffusers().items() if not k.startswith("_")}
    oracle = diffusers_sana_wm.SanaWMTransformer3DModel(**kwargs).eval()
    oracle.load_state_dict(to_diffusers_state_dict(model.state_dict()), strict=True)
    return oracle


def _oracle_forward(oracle, inputs):
    with torch.no_grad(), _no_bf16_downcast():
        return oracle(inputs["latents"], inputs["timestep"], inputs["text"],
                      encoder_attention_mask=inputs["text_mask"], camera_conditions=inputs["camera_vector"],
                      chunk_plucker=inputs["plucker"]).sample


# "tiny" has head_dim 48 (camera softmax padded to 128: scale 1/sqrt(128)); "tiny-32" needs no padding.
@pytest.mark.parametrize("name", ["tiny", "tiny-32"])
def test_bidirectional_matches_diffusers(name):
    torch.manual_seed(0)
    # diffusers renormalises UCPE-transformed camera q/k/v in every block kind (the release: softmax only).
    model = randomize_(SanaWMTransformer(get_config(name).replace(ucpe_rms_renorm=UCPE_RENORM_DIFFUSERS))).eval()
    inputs = model_inputs(model.config)
    with torch.no_grad():
        ours = model(**inputs)
    theirs = _oracle_forward(_oracle(model), inputs)
    assert ours.shape == theirs.shape == inputs["latents"].shape
    assert rel_err(ours, theirs) <= 1e-5


def test_without_camera_matches_diffusers():
    torch.manual_seed(0)
    model = randomize_(SanaWMTransformer(get_config("tiny-32").replace(depth=2, softmax_blocks=(1,)))).eval()
    inputs = model_inputs(model.config, batch=1, frames=3)
    inputs.update(camera_vector=None, plucker=None)
    with torch.no_grad():
        ours = model(**inputs)
    assert rel_err(ours, _oracle_forward(_oracle(model), inputs)) <= 1e-5
