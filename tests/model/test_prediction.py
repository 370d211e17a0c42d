"""`config.prediction = "sample"`: the network predicts x0 and forward returns the velocity it implies, in every
mode (bidirectional, chunk-causal, streaming)."""

import pytest
import torch
from model_helpers import model_inputs, randomize_

from sana_wm.model import SanaWMTransformer, TokenLayout, get_config


@pytest.fixture(scope="module")
def pair():
    flow_cfg = get_config("tiny")
    flow = randomize_(SanaWMTransformer(flow_cfg), seed=5).double().eval()
    sample = SanaWMTransformer(flow_cfg.replace(prediction="sample", sample_min_sigma=0.05)).double().eval()
    sample.load_state_dict(flow.state_dict())
    return flow, sample


def _as_double(inputs):
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal"])
def test_velocity_from_the_predicted_sample(pair, mode):
    flow, sample = pair
    inputs = _as_double(model_inputs(flow.config, batch=2, frames=5))
    with torch.no_grad():
        x0 = flow(**inputs, mode=mode)  # the same network's raw output, read as x0
        v = sample(**inputs, mode=mode)
    sigma = (inputs["timestep"][:, 0].floor() / 1000).clamp_min(0.05)  # (B, T); frame 0 is clean: 0.05
    expected = (inputs["latents"] - x0) / sigma[:, None, :, None, None]
    torch.testing.assert_close(v, expected, rtol=1e-10, atol=1e-10)


def test_streaming_equals_chunk_causal_with_sample_prediction(pair):
    _, sample = pair
    model = SanaWMTransformer(sample.config.replace(padded_softmax_in_streaming=False)).double().eval()
    model.load_state_dict(sample.state_dict())
    inputs = _as_double(model_inputs(model.config, batch=1, frames=7))
    layout = TokenLayout.build(7, 4, 6, "chunk_causal", None, model.config.chunk_frames)
    with torch.no_grad():
        whole = model(**inputs, mode="chunk_causal")
        cache, parts = None, []
        for a, b in layout.chunks:
            chunk = {**inputs, "latents": inputs["latents"][:, :, a:b], "timestep": inputs["timestep"][..., a:b],
                     "camera_vector": inputs["camera_vector"][:, a:b], "plucker": inputs["plucker"][:, :, a:b]}
            out, cache = model.forward_chunk(**chunk, cache=cache)
            parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=1e-9, atol=1e-9)


def test_config_checks_and_round_trip():
    cfg = get_config("synth-pca")
    assert cfg.prediction == "sample" and type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="prediction must be 'flow' or 'sample'"):
        cfg.replace(prediction="eps")
    with pytest.raises(ValueError, match="sample_min_sigma must be in"):
        cfg.replace(sample_min_sigma=0.0)
    with pytest.raises(ValueError, match="flow .velocity. prediction only"):
        cfg.to_diffusers()
