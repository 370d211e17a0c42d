"""Chunk-causal mode: no frame sees a later chunk, and one chunk is the bidirectional model."""

import pytest
import torch
from model_helpers import camera_inputs, model_inputs, rel_err

from sana_wm.model import TokenLayout

FRAMES = 7


def _forward(model, inputs, **kwargs):
    with torch.no_grad():
        return model(**inputs, **kwargs)


def _perturb_from(inputs, first_frame: int, seed: int = 5):
    """Change every per-frame input (latents, timesteps, camera pose and rays) from ``first_frame`` on."""
    g = torch.Generator().manual_seed(seed)
    out = dict(inputs)
    out["latents"] = inputs["latents"].clone()
    out["latents"][:, :, first_frame:] += torch.randn(out["latents"][:, :, first_frame:].shape, generator=g)
    out["timestep"] = inputs["timestep"].clone()
    out["timestep"][..., first_frame:] = 1000 - out["timestep"][..., first_frame:]
    other_vector, other_plucker = camera_inputs(inputs["latents"].shape[0], FRAMES + 3, 4, 6)
    out["camera_vector"] = inputs["camera_vector"].clone()
    out["camera_vector"][:, first_frame:] = other_vector[:, -(FRAMES - first_frame):]
    out["plucker"] = inputs["plucker"].clone()
    out["plucker"][:, :, first_frame:] = other_plucker[:, :, -(FRAMES - first_frame):]
    return out


def test_default_chunks_are_the_released_schedule():
    assert TokenLayout.build(FRAMES, 4, 6, "chunk_causal").chunk_lengths == (4, 3)
    assert TokenLayout.build(121, 22, 40, "chunk_causal").chunk_lengths == (4,) + (3,) * 39
    with pytest.raises(ValueError, match="sum to the 7"):
        TokenLayout.build(FRAMES, 4, 6, "chunk_causal", chunk_lengths=[4, 4])


def test_one_chunk_equals_bidirectional(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    bidirectional = _forward(tiny_model, inputs)
    one_chunk = _forward(tiny_model, inputs, mode="chunk_causal", chunk_lengths=[FRAMES])
    assert rel_err(one_chunk, bidirectional) <= 1e-5


@pytest.mark.parametrize("chunk_lengths", [None, [2, 3, 2]])
def test_later_chunks_do_not_change_earlier_outputs(tiny_model, chunk_lengths):
    layout = TokenLayout.build(FRAMES, 4, 6, "chunk_causal", chunk_lengths)
    boundary = layout.chunks[-1][0]  # first frame of the last chunk
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    base = _forward(tiny_model, inputs, mode="chunk_causal", chunk_lengths=chunk_lengths)
    moved = _forward(tiny_model, _perturb_from(inputs, boundary), mode="chunk_causal", chunk_lengths=chunk_lengths)
    scale = base.abs().max()
    assert (moved[:, :, :boundary] - base[:, :, :boundary]).abs().max() <= 1e-6 * scale
    assert (moved[:, :, boundary:] - base[:, :, boundary:]).abs().max() > 1e-2 * scale


def test_frames_see_later_frames_of_their_own_chunk(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    base = _forward(tiny_model, inputs, mode="chunk_causal")  # chunks [0, 4), [4, 7)
    moved = _forward(tiny_model, _perturb_from(inputs, 6), mode="chunk_causal")
    scale = base.abs().max()
    assert (moved[:, :, :4] - base[:, :, :4]).abs().max() <= 1e-6 * scale
    assert (moved[:, :, 4] - base[:, :, 4]).abs().max() > 1e-3 * scale  # frame 4 reads frame 6


def test_bidirectional_sees_everything(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=FRAMES)
    base = _forward(tiny_model, inputs)
    moved = _forward(tiny_model, _perturb_from(inputs, 6))
    assert (moved[:, :, 0] - base[:, :, 0]).abs().max() > 1e-3 * base.abs().max()
