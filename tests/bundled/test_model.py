"""`config.prediction = "sample"`: the network predicts x0 and forward returns the velocity it implies, in every
mode (bidirectional, chunk-causal, streaming); `"sample_residual"`: x0 minus the clean first frame."""

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


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal"])
def test_residual_prediction_adds_the_clean_first_frame(pair, mode):
    """x0 = network output + frame 0 for samples whose frame 0 is clean; + nothing where it is noisy."""
    flow, sample = pair
    residual = SanaWMTransformer(sample.config.replace(prediction="sample_residual")).double().eval()
    residual.load_state_dict(flow.state_dict())
    inputs = _as_double(model_inputs(flow.config, batch=2, frames=5))
    inputs["timestep"][1, :, 0] = 500.0  # sample 1: a noisy frame 0, so no anchor
    with torch.no_grad():
        x0_net = flow(**inputs, mode=mode)  # the network's raw output
        v = residual(**inputs, mode=mode)
    sigma = (inputs["timestep"][:, 0].floor() / 1000).clamp_min(0.05)
    x = inputs["latents"]
    anchor = torch.stack([x[0, :, :1], torch.zeros_like(x[1, :, :1])])
    expected = (x - (x0_net + anchor)) / sigma[:, None, :, None, None]
    torch.testing.assert_close(v, expected, rtol=1e-10, atol=1e-10)
    # a zero output layer predicts the first frame again, at every later frame
    zero = SanaWMTransformer(residual.config).double().eval()
    zero.load_state_dict(residual.state_dict())
    torch.nn.init.zeros_(zero.final_layer.linear.weight)
    torch.nn.init.zeros_(zero.final_layer.linear.bias)
    with torch.no_grad():
        x0_hat = x - sigma[:, None, :, None, None] * zero(**inputs, mode=mode)
    torch.testing.assert_close(x0_hat[0], x[0, :, :1].expand_as(x0_hat[0]), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x0_hat[1], torch.zeros_like(x0_hat[1]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("prediction", ["sample", "sample_residual"])
def test_streaming_equals_chunk_causal_with_sample_prediction(pair, prediction):
    """Streaming: the residual's anchor is taken in the first chunk and carried in the cache."""
    _, sample = pair
    model = SanaWMTransformer(sample.config.replace(padded_softmax_in_streaming=False,
                                                    prediction=prediction)).double().eval()
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


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal", "streaming"])
def test_warp_prediction_adds_the_given_prior(pair, mode):
    """``sample_warp``: x0 = network output + prior, in every mode (streaming takes the chunk's slice)."""
    flow, sample = pair
    warp = SanaWMTransformer(sample.config.replace(prediction="sample_warp", padded_softmax_in_streaming=False)
                             ).double().eval()
    warp.load_state_dict(flow.state_dict())
    plain = SanaWMTransformer(warp.config.replace(prediction="flow")).double().eval()
    plain.load_state_dict(flow.state_dict())
    inputs = _as_double(model_inputs(flow.config, batch=2, frames=7))
    prior = torch.randn_like(inputs["latents"])
    with torch.no_grad():
        if mode == "streaming":
            layout = TokenLayout.build(7, 4, 6, "chunk_causal", None, warp.config.chunk_frames)
            parts, cache, net_parts, net_cache = [], None, [], None
            for a, b in layout.chunks:
                chunk = {**inputs, "latents": inputs["latents"][:, :, a:b], "timestep": inputs["timestep"][..., a:b],
                         "camera_vector": inputs["camera_vector"][:, a:b], "plucker": inputs["plucker"][:, :, a:b]}
                out, cache = warp.forward_chunk(**chunk, cache=cache, prior=prior[:, :, a:b])
                net, net_cache = plain.forward_chunk(**chunk, cache=net_cache)
                parts.append(out)
                net_parts.append(net)
            v, x0_net = torch.cat(parts, dim=2), torch.cat(net_parts, dim=2)
        else:
            x0_net = plain(**inputs, mode=mode)  # the network's raw output
            v = warp(**inputs, mode=mode, prior=prior)
    sigma = (inputs["timestep"][:, 0].floor() / 1000).clamp_min(0.05)
    expected = (inputs["latents"] - (x0_net + prior)) / sigma[:, None, :, None, None]
    torch.testing.assert_close(v, expected, rtol=1e-9, atol=1e-9)


def test_warp_prediction_needs_a_prior_of_the_latents_shape(pair):
    _, sample = pair
    warp = SanaWMTransformer(sample.config.replace(prediction="sample_warp")).double().eval()
    inputs = _as_double(model_inputs(warp.config, batch=1, frames=4))
    with pytest.raises(ValueError, match="pass prior="):
        warp(**inputs)
    with pytest.raises(ValueError, match="prior: expected the latents' shape"):
        warp(**inputs, prior=inputs["latents"][:, :, :2])
    with pytest.raises(ValueError, match="pass prior="):
        warp.forward_chunk(**inputs)
    # other models ignore it
    sample(**inputs, prior=None)


def test_config_checks_and_round_trip():
    cfg = get_config("synth-pca")
    assert cfg.prediction == "sample" and type(cfg).from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(prediction="sample_residual").prediction == "sample_residual"
    with pytest.raises(ValueError, match="prediction must be one of flow, sample, sample_residual, sample_warp"):
        cfg.replace(prediction="eps")
    warp = get_config("synth-pca-warp")
    assert warp.prediction == "sample_warp" and type(warp).from_dict(warp.to_dict()) == warp
    with pytest.raises(ValueError, match="warp_eye_height and warp_far_depth must be positive"):
        warp.replace(warp_far_depth=0.0)
    with pytest.raises(ValueError, match="sample_min_sigma must be in"):
        cfg.replace(sample_min_sigma=0.0)
    with pytest.raises(ValueError, match="flow .velocity. prediction only"):
        cfg.to_diffusers()
