"""The model as a training target: initialisation semantics and gradients."""

import torch
from model_helpers import model_inputs, randomize_

from sana_wm.model import SanaWMTransformer, get_config

# Parameters the forward never reads: the unused absolute-map camera input, and the GDN gates that
# softmax blocks carry only because the checkpoints do.
_UNUSED = ("raymap_embedder.", "blocks.3.attn.beta_proj.", "blocks.3.attn.gate_proj.", "blocks.3.attn.A_log",
           "blocks.3.attn.dt_bias")


def test_camera_paths_start_as_no_ops():
    torch.manual_seed(0)
    model = SanaWMTransformer(get_config("tiny")).eval()
    inputs = model_inputs(model.config, batch=1, frames=3)
    with torch.no_grad():
        with_camera = model(**inputs)
        without = model(**{**inputs, "camera_vector": None, "plucker": None})
    assert torch.equal(with_camera, without)
    gate = model.blocks[0].attn.output_gate
    assert torch.nn.functional.silu(gate.bias).sub(1).abs().max() < 1e-4  # SiLU(1.27846) = 1


def test_gradients_reach_every_used_parameter():
    torch.manual_seed(0)
    model = randomize_(SanaWMTransformer(get_config("tiny")))
    model.gradient_checkpointing = True
    inputs = model_inputs(model.config, batch=1, frames=3)
    model(**inputs).square().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith(_UNUSED):
            assert p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
