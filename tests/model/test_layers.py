import math

import pytest
import torch
from model_helpers import model_inputs

from sana_wm.model import TokenLayout
from sana_wm.model.attention import padded_head_dim
from sana_wm.model.layers import TemporalShortConv, timestep_sinusoids
from sana_wm.model.positions import apply_rotary, rope_pairs, rotary_tables


def test_timesteps_are_floored_per_frame(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=3)
    inputs["timestep"] = torch.tensor([[[0.0, 500.0, 900.0]]])
    with torch.no_grad():
        base = tiny_model(**inputs)
        fractional = tiny_model(**{**inputs, "timestep": torch.tensor([[[0.9, 500.7, 900.2]]])})
        next_int = tiny_model(**{**inputs, "timestep": torch.tensor([[[0.0, 501.0, 900.0]]])})
    assert torch.equal(base, fractional)
    assert not torch.allclose(base, next_int)


def test_scalar_timestep_per_sample_broadcasts_to_frames(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=2, frames=2)
    with torch.no_grad():
        a = tiny_model(**{**inputs, "timestep": torch.tensor([300.0, 700.0])})
        b = tiny_model(**{**inputs, "timestep": torch.tensor([[[300.0, 300.0]], [[700.0, 700.0]]])})
    assert torch.equal(a, b)


def test_sinusoids_put_cosines_first():
    emb = timestep_sinusoids(torch.tensor([0.0, 3.0]), 8)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.tensor([10000 ** (-i / 4) for i in range(4)])
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(3 * freqs), torch.sin(3 * freqs)]))


def _explicit_short_conv(x, w, chunks):
    """Taps t-K+1..t+K-1 with weight w[K-1-|d|]; look-ahead stops at the end of the frame's chunk."""
    T, K = x.shape[1], w.shape[-1]
    out = torch.zeros_like(x)
    for a, b in chunks:
        for t in range(a, b):
            for d in range(-(K - 1), K):
                s = t + d
                if 0 <= s < T and s < b:
                    out[:, t] += w[:, 0, K - 1 - abs(d)] * x[:, s]
    return out


@pytest.mark.parametrize("chunk_lengths", [None, (2, 3, 2)])
def test_short_conv_is_the_symmetric_filter(chunk_lengths):
    torch.manual_seed(0)
    layout = TokenLayout(7, 1, 1, chunk_lengths)
    conv = TemporalShortConv(5, 4)
    with torch.no_grad():
        conv.weight.normal_()
        x = torch.randn(2, 7, 5)  # (B, N = T tokens, C)
        ours, tail = conv(x, layout)
    expected = torch.stack([_explicit_short_conv(x[b].T, conv.weight, layout.chunks).T for b in range(2)])
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(tail, x[:, -3:].transpose(1, 2))  # (B*S, C, K-1): the last 3 frames


def test_rope_split_and_camera_subtable():
    assert rope_pairs(112) == (20, 18, 18)
    assert rope_pairs(56) == (10, 9, 9)
    layout = TokenLayout(3, 2, 5)
    main, cam = rotary_tables(layout, 112, 10000.0, 1024)
    assert main.cos.shape == (30, 56) and cam.cos.shape == (30, 28)
    angles = torch.atan2(main.sin, main.cos)
    cam_angles = torch.atan2(cam.sin, cam.cos)
    # The camera table is sliced from the main one: first 10 time, 9 height, 9 width pairs.
    torch.testing.assert_close(cam_angles, torch.cat([angles[:, :10], angles[:, 20:29], angles[:, 38:47]], dim=1))
    token = 2 * 10 + 1 * 5 + 3  # frame 2, row 1, column 3
    assert angles[token, 1].item() == pytest.approx(2 * 10000 ** (-2 / 40))
    assert angles[token, 21].item() == pytest.approx(1 * 10000 ** (-2 / 36))
    assert angles[token, 38 + 1].item() == pytest.approx(math.remainder(3 * 10000 ** (-2 / 36), 2 * math.pi))


def test_rope_inverse_undoes_rope():
    main, _ = rotary_tables(TokenLayout(2, 3, 4), 48, 10000.0, 1024)
    x = torch.randn(1, 24, 2, 48)
    torch.testing.assert_close(apply_rotary(apply_rotary(x, main), main, inverse=True), x)


def test_softmax_padding_follows_the_reference():
    assert padded_head_dim(112) == 128  # released model: camera branch 1/sqrt(128)
    assert padded_head_dim(48) == 128
    assert padded_head_dim(128) == 128 and padded_head_dim(32) == 32
    assert padded_head_dim(192) == 256


def test_input_shapes_are_checked(tiny_model):
    inputs = model_inputs(tiny_model.config, batch=1, frames=2)
    with pytest.raises(ValueError, match="latents: expected"):
        tiny_model(**{**inputs, "latents": inputs["latents"][:, :3]})
    with pytest.raises(ValueError, match="camera_vector: expected"):
        tiny_model(**{**inputs, "camera_vector": inputs["camera_vector"][:, :1]})
    with pytest.raises(ValueError, match="mode must be one of"):
        tiny_model(**inputs, mode="causal")


def test_depthwise_taps_equal_grouped_conv1d_with_gradients():
    """The short conv's shifted multiply-adds are F.conv1d(groups=C), values and gradients (float64)."""
    import torch.nn.functional as F

    from sana_wm.model.layers import _depthwise_taps

    g = torch.Generator().manual_seed(3)
    seq = torch.randn(6, 5, 11, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 1, 4, generator=g, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(6, 5, 8, generator=g, dtype=torch.float64)
    ours = _depthwise_taps(seq, w)
    ref = F.conv1d(seq, w, groups=5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    ours_grads = torch.autograd.grad(ours, (seq, w), grad_out)
    ref_grads = torch.autograd.grad(ref, (seq, w), grad_out)
    for a, b in zip(ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
