"""The bundled model's wrapper: x0 = warp prior + network output, returned as the velocity it implies, in every
mode (bidirectional, chunk-causal, streaming), checked in float64 against the plain transformer's output."""

import pytest
import torch
from model_helpers import model_inputs, randomize_

from sana_wm.bundled import SYNTH_CONFIG, WarpPrior, WarpPriorModel, WarpPriorSettings, wrap_transformer
from sana_wm.model import SanaWMTransformer, TokenLayout, get_config
from sana_wm.model.transformer import frame_timesteps


@pytest.fixture(scope="module")
def plain():
    config = get_config("tiny").replace(padded_softmax_in_streaming=False)
    return randomize_(SanaWMTransformer(config), seed=5).double().eval()


def _as_double(inputs):
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal", "streaming"])
def test_velocity_of_the_prior_plus_the_network_output(plain, mode):
    model = WarpPriorModel(plain, WarpPriorSettings(min_sigma=0.05))
    inputs = _as_double(model_inputs(plain.config, batch=2, frames=7))
    prior = torch.randn_like(inputs["latents"])
    with torch.no_grad():
        if mode == "streaming":  # each chunk takes its slice of the prior; the cache is the transformer's
            layout = TokenLayout.build(7, 4, 6, "chunk_causal", None, plain.config.chunk_frames)
            parts, cache, net_parts, net_cache = [], None, [], None
            for a, b in layout.chunks:
                chunk = {**inputs, "latents": inputs["latents"][:, :, a:b], "timestep": inputs["timestep"][..., a:b],
                         "camera_vector": inputs["camera_vector"][:, a:b], "plucker": inputs["plucker"][:, :, a:b]}
                out, cache = model.forward_chunk(**chunk, cache=cache, extra=WarpPrior(prior).frames(a, b))
                net, net_cache = plain.forward_chunk(**chunk, cache=net_cache)
                parts.append(out)
                net_parts.append(net)
            v, x0_net = torch.cat(parts, dim=2), torch.cat(net_parts, dim=2)
        else:
            x0_net = plain(**inputs, mode=mode)  # the network's raw output
            v = model(**inputs, mode=mode, extra=WarpPrior(prior))
    # the model sees floored timesteps; frame 0 is clean (t = 0), where sigma is held at min_sigma
    sigma = (inputs["timestep"][:, 0].floor() / 1000).clamp_min(0.05)
    expected = (inputs["latents"] - (x0_net + prior)) / sigma[:, None, :, None, None]
    torch.testing.assert_close(v, expected, rtol=1e-9, atol=1e-9)


def test_a_zero_output_layer_predicts_the_prior(plain):
    zero = SanaWMTransformer(plain.config).double().eval()
    zero.load_state_dict(plain.state_dict())
    torch.nn.init.zeros_(zero.final_layer.linear.weight)
    torch.nn.init.zeros_(zero.final_layer.linear.bias)
    inputs = _as_double(model_inputs(plain.config, batch=1, frames=4))
    inputs["timestep"] = inputs["timestep"].floor()
    prior = torch.randn_like(inputs["latents"])
    with torch.no_grad():
        v = WarpPriorModel(zero)(**inputs, extra=WarpPrior(prior))
    sigma = (inputs["timestep"][:, 0] / 1000).clamp_min(0.05)[:, None, :, None, None]
    torch.testing.assert_close(inputs["latents"] - sigma * v, prior, rtol=1e-9, atol=1e-9)


def test_the_wrapper_needs_a_prior_of_the_latents_shape(plain):
    model = WarpPriorModel(plain)
    inputs = _as_double(model_inputs(plain.config, batch=1, frames=4))
    with pytest.raises(ValueError, match="pass extra=WarpPrior"):
        model(**inputs)
    with pytest.raises(ValueError, match="warp prior: expected the latents' shape"):
        model(**inputs, extra=WarpPrior(inputs["latents"][:, :, :2]))
    with pytest.raises(ValueError, match="pass extra=WarpPrior"):
        model.forward_chunk(**inputs)
    with pytest.raises(TypeError):  # the plain transformer takes no extra conditioning
        plain(**inputs, extra=WarpPrior(inputs["latents"]))
    assert model.config is plain.config and model.dtype == torch.float64
    assert dict(model.named_parameters()).keys() == {f"transformer.{n}" for n, _ in plain.named_parameters()}


def test_prior_slices_and_pairs_for_guidance():
    prior, still = torch.randn(2, 3, 5, 2, 2), torch.randn(1, 3, 5, 2, 2)
    assert torch.equal(WarpPrior(prior).frames(1, 4).latents, prior[:, :, 1:4])
    paired = WarpPrior(prior).guided_with(WarpPrior(still))
    assert torch.equal(paired.latents, torch.cat([still.expand(2, -1, -1, -1, -1), prior]))
    assert torch.equal(WarpPrior(prior).guided_with(WarpPrior(prior)).latents, torch.cat([prior, prior]))
    with pytest.raises(ValueError, match="does not match the prior"):
        WarpPrior(prior).guided_with(WarpPrior(still[:, :, :2]))


def test_settings_round_trip_and_errors():
    settings = WarpPriorSettings(min_sigma=0.1, eye_height=1.2, far_depth=5.0)
    d = settings.to_dict()
    assert d == {"kind": "warp_prior_x0", "min_sigma": 0.1, "eye_height": 1.2, "far_depth": 5.0}
    assert WarpPriorSettings.from_dict(d) == settings
    assert wrap_transformer(torch.nn.Identity(), d).settings == settings
    with pytest.raises(ValueError, match="where.kind: the only model wrapper is 'warp_prior_x0'"):
        WarpPriorSettings.from_dict({"kind": "sample_warp"}, "where")
    with pytest.raises(ValueError, match=r"unknown field\(s\) prediction"):
        WarpPriorSettings.from_dict({"kind": "warp_prior_x0", "prediction": "x"})
    with pytest.raises(ValueError, match="eye_height and wrapper.far_depth must be positive"):
        WarpPriorSettings(far_depth=0.0)
    with pytest.raises(ValueError, match="min_sigma must be in"):
        WarpPriorSettings(min_sigma=0.0)


def test_the_bundled_transformer_config():
    """The shipped transformer: 8 blocks GGGSGGGS of width 192 on the codec's 128 channels, 7,782,176
    parameters, and a plain SANA-WM config (it exports to the diffusers format like any other)."""
    assert SYNTH_CONFIG.in_channels == 128 and SYNTH_CONFIG.softmax_block_indices == (3, 7)
    model = SanaWMTransformer(SYNTH_CONFIG).to("meta")
    assert sum(p.numel() for p in model.parameters()) == 7_782_176
    assert SYNTH_CONFIG.to_diffusers()["in_channels"] == 128


def test_frame_timesteps_are_floored_per_frame():
    t = frame_timesteps(torch.tensor([[[0.0, 999.9, 12.5]]]), 1, 3)
    assert torch.equal(t, torch.tensor([[0.0, 999.0, 12.0]]))
    assert torch.equal(frame_timesteps(torch.tensor([7.9, 3.0]), 2, 2), torch.tensor([[7.0, 7.0], [3.0, 3.0]]))
    with pytest.raises(ValueError, match="timestep: expected"):
        frame_timesteps(torch.zeros(2, 3), 2, 4)
