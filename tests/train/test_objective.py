"""The flow-matching objective: sigma samplers, the chunk-causal mixture, noising and the loss."""

import math

import pytest
import torch

from sana_wm.model import chunk_schedule
from sana_wm.train.objective import (
    CHUNK_STRATEGIES,
    ObjectiveConfig,
    channel_loss_weights,
    flow_loss,
    logit_normal_sigmas,
    make_noisy,
    sample_chunk_sigmas,
    sample_noise_plan,
    sample_seed,
    shift_sigmas,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shift_matches_the_scheduler_formula():
    sigma = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(shift_sigmas(sigma, 1.0), sigma)
    assert shift_sigmas(torch.tensor(0.5), 3.0).item() == pytest.approx(0.75)
    shifted = shift_sigmas(sigma, 9.95)
    assert shifted[0] == 0 and shifted[-1] == 1 and (shifted.diff() > 0).all()


def test_logit_normal_statistics():
    s = logit_normal_sigmas(40_000, gen(), mean=0.0, std=1.0, shift=1.0).double()
    logit = torch.log(s / (1 - s))
    assert abs(logit.mean().item()) < 0.02 and abs(logit.std().item() - 1) < 0.02
    shifted = logit_normal_sigmas(40_000, gen(1), shift=9.95)
    # The shift is monotone, so the median maps through it: 9.95 * 0.5 / (1 + 8.95 * 0.5) = 0.9087.
    assert shifted.median().item() == pytest.approx(9.95 * 0.5 / (1 + 8.95 * 0.5), abs=0.005)
    assert 0 < shifted.min() and shifted.max() < 1


def test_sample_seed_is_stable():
    assert sample_seed(0, "train", 3, "clip000") == sample_seed(0, "train", 3, "clip000")
    assert sample_seed(0, "train", 3, "clip000") != sample_seed(0, "train", 4, "clip000")
    assert 0 <= sample_seed("x") < 2**63


def test_bidirectional_plan_and_image_condition_rate():
    cfg = ObjectiveConfig()
    g = gen()
    plans = [sample_noise_plan(cfg, 5, g) for _ in range(3000)]
    rate = sum(p.image_condition for p in plans) / len(plans)
    assert abs(rate - 0.9) < 0.02
    for p in plans[:200]:
        rest = p.sigma[1:]
        assert torch.all(rest == rest[0]) and torch.all(p.loss_mask[1:] == 1)
        if p.image_condition:
            assert p.sigma[0] == 0 and p.loss_mask[0] == 0
        else:
            assert p.sigma[0] == rest[0] and p.loss_mask[0] == 1
    one_frame = sample_noise_plan(cfg, 1, gen())
    assert not one_frame.image_condition and one_frame.loss_mask.sum() == 1  # nothing to condition on


def test_dropout_rates_and_validation_never_drops():
    cfg = ObjectiveConfig(caption_dropout_prob=0.3, camera_dropout_prob=0.2)
    g = gen(2)
    plans = [sample_noise_plan(cfg, 3, g) for _ in range(3000)]
    assert abs(sum(p.drop_caption for p in plans) / 3000 - 0.3) < 0.03
    assert abs(sum(p.drop_camera for p in plans) / 3000 - 0.2) < 0.03
    g = gen(2)
    assert not any(sample_noise_plan(cfg, 3, g, train=False).drop_caption for _ in range(200))


def test_same_t():
    sigma, mask = sample_chunk_sigmas(5, "same_t", gen())
    assert torch.all(sigma == sigma[0]) and 0 < sigma[0] < 1 and torch.all(mask == 1)


@pytest.mark.parametrize("strategy", ["incremental", "last_chunk_anchor"])
def test_incremental_profiles_are_monotone(strategy):
    K, g = 5, gen(3)
    currents = []
    for _ in range(2000):
        sigma, mask = sample_chunk_sigmas(K, strategy, g)
        current = int(mask.sum()) - 1
        currents.append(current)
        assert torch.all(mask[:current + 1] == 1) and torch.all(mask[current + 1:] == 0)
        assert torch.all(sigma[:current + 1].diff() >= 0)  # earlier chunks are never noisier
        assert torch.all(sigma[current + 1:] == 1)  # after the current chunk: pure noise, out of the loss
        assert torch.all(sigma[:current + 1] > 0)
    counts = torch.bincount(torch.tensor(currents), minlength=K).double() / len(currents)
    if strategy == "last_chunk_anchor":
        assert counts[-1] == 1
    else:
        assert torch.allclose(counts, torch.full((K,), 1 / K, dtype=torch.float64), atol=0.03)


def test_teacher_forcing_clean():
    K, g = 4, gen(4)
    currents = []
    for _ in range(1500):
        sigma, mask = sample_chunk_sigmas(K, "teacher_forcing_clean", g)
        assert mask.sum() == 1
        current = int(mask.argmax())
        currents.append(current)
        assert current >= 1
        assert torch.all(sigma[:current] == 0) and 0 < sigma[current] < 1 and torch.all(sigma[current + 1:] == 1)
    assert set(currents) == {1, 2, 3}
    sigma, mask = sample_chunk_sigmas(1, "teacher_forcing_clean", gen())
    assert mask.tolist() == [1.0]  # one chunk: nothing to force, the chunk itself is trained


def test_chunk_mixture_frequencies_and_frame_layout():
    cfg = ObjectiveConfig(recipe="chunk_causal", image_condition_prob=0.0)
    T = 10
    lengths = [4, 3, 3]  # chunk_schedule(10, 3), written out
    g = gen(5)
    plans = [sample_noise_plan(cfg, T, g, chunk_lengths=lengths) for _ in range(4000)]
    for name, weight in cfg.chunk_mixture.items():
        assert abs(sum(p.strategy == name for p in plans) / len(plans) - weight) < 0.025, name
    bounds = [0, *torch.tensor(lengths).cumsum(0).tolist()]
    for p in plans[:300]:
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # constant within a chunk
            assert torch.all(p.sigma[a:b] == p.sigma[a]) and torch.all(p.loss_mask[a:b] == p.loss_mask[a])
    assert set(CHUNK_STRATEGIES) == {p.strategy for p in plans}


def test_chunk_causal_image_condition_only_touches_frame_zero():
    cfg = ObjectiveConfig(recipe="chunk_causal", image_condition_prob=1.0, chunk_mixture={"same_t": 1.0})
    p = sample_noise_plan(cfg, 7, gen(), chunk_lengths=chunk_schedule(7, 3))
    assert p.sigma[0] == 0 and p.loss_mask[0] == 0
    assert torch.all(p.sigma[1:] == p.sigma[1]) and torch.all(p.loss_mask[1:] == 1)


def test_plans_are_reproducible():
    cfg = ObjectiveConfig(recipe="chunk_causal")
    a = sample_noise_plan(cfg, 10, gen(7), chunk_lengths=chunk_schedule(10, 3))
    b = sample_noise_plan(cfg, 10, gen(7), chunk_lengths=chunk_schedule(10, 3))
    assert torch.equal(a.sigma, b.sigma) and a.strategy == b.strategy


def test_the_chunk_causal_recipe_needs_the_model_chunks():
    cfg = ObjectiveConfig(recipe="chunk_causal")
    with pytest.raises(ValueError, match="chunk_lengths"):
        sample_noise_plan(cfg, 10, gen())
    with pytest.raises(ValueError, match="chunk_lengths"):
        sample_noise_plan(cfg, 10, gen(), chunk_lengths=[4, 3])


def test_make_noisy_and_target():
    g = gen()
    x0, noise = torch.randn(2, 4, 3, 2, 2, generator=g), torch.randn(2, 4, 3, 2, 2, generator=g)
    sigma = torch.tensor([[0.0, 0.5, 1.0], [0.25, 0.25, 0.0]])
    x, target = make_noisy(x0, sigma, noise)
    assert torch.equal(x[0, :, 0], x0[0, :, 0]) and torch.equal(x[1, :, 2], x0[1, :, 2])  # clean frames exact
    assert torch.allclose(x[0, :, 2], noise[0, :, 2])
    assert torch.allclose(x[0, :, 1], 0.5 * (x0[0, :, 1] + noise[0, :, 1]))
    assert torch.equal(target, noise - x0)
    # x0 is recovered from the true velocity: x0 = x_sigma - sigma v.
    assert torch.allclose(x - sigma[:, None, :, None, None] * target, x0, atol=1e-6)


def test_flow_loss_masks_frames_and_weighs_samples_equally():
    target = torch.zeros(2, 1, 3, 1, 1)
    pred = torch.zeros(2, 1, 3, 1, 1)
    pred[0, 0, 0] = 100.0  # a masked-out frame: ignored
    pred[0, 0, 1] = 2.0
    pred[1, 0, :] = 1.0
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    loss, per_sample = flow_loss(pred, target, mask)
    assert per_sample.tolist() == [2.0, 1.0]  # (4 + 0) / 2 and 3 / 3
    assert math.isclose(loss.item(), 1.5)


def test_x0_weighting_is_the_mse_of_the_implied_clean_latent():
    """``frame_weight = sigma^2`` turns the velocity MSE into the MSE of ``x0_hat = x_sigma - sigma v_hat``
    (``loss_weighting: x0``), checked against that formula in float64."""
    g = gen(3)
    x0 = torch.randn(2, 4, 5, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 4, 5, 3, 3, generator=g, dtype=torch.float64)
    sigma = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0], [0.0, 0.3, 0.3, 0.7, 0.7]], dtype=torch.float64)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0, 1.0]])
    x_t, target = make_noisy(x0, sigma, noise)
    v_hat = target + 0.3 * torch.randn(target.shape, generator=g, dtype=torch.float64)
    loss, per_sample = flow_loss(v_hat, target, mask, sigma.square())
    x0_hat = x_t - sigma[:, None, :, None, None] * v_hat
    err = (x0_hat - x0).square().mean(dim=(1, 3, 4))  # (B, T)
    expected = (err * mask.double()).sum(1) / mask.double().sum(1)
    torch.testing.assert_close(per_sample.double(), expected, rtol=1e-6, atol=0)
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-6)
    # Without weights it is the plain velocity MSE, which is larger here since every sigma <= 1.
    plain, _ = flow_loss(v_hat, target, mask)
    assert plain.item() > loss.item()


def test_unknown_loss_weighting_is_rejected():
    with pytest.raises(ValueError, match="objective.loss_weighting"):
        ObjectiveConfig(loss_weighting="snr").validate()


def _std_file(path, std):
    from safetensors.torch import save_file

    save_file({"latents_std": torch.as_tensor(std, dtype=torch.float32)}, str(path))
    return path


def test_channel_weights_at_power_one_turn_the_loss_into_the_pixel_mse(tmp_path):
    """For a linear codec with an orthonormal basis ``B`` and per-channel normalisation ``z = (B^T x - m) /
    std``, the squared pixel error of a prediction is ``sum_c std_c^2 dz_c^2``: with ``channel_weight_power``
    1 the weighted loss is that pixel error over ``sum_c std_c^2`` (checked in float64 against decoding)."""
    g = gen(5)
    C, D = 6, 20
    std = torch.tensor([5.0, 2.0, 1.5, 0.7, 0.3, 0.1], dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(D, C, generator=g, dtype=torch.float64))  # orthonormal columns
    w = channel_loss_weights(_std_file(tmp_path / "codec.safetensors", std), 1.0, C)
    assert w.dtype == torch.float32 and w.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(w.double(), std.square() / std.square().mean(), rtol=1e-6, atol=0)

    z = torch.randn(2, C, 3, 2, 2, generator=g, dtype=torch.float64)  # (B, C, T, H, W) normalised latents
    z_hat = z + 0.5 * torch.randn(z.shape, generator=g, dtype=torch.float64)
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    _, per_sample = flow_loss(z_hat, z, mask, channel_weight=w)

    def pixels(lat):  # (B, C, T, H, W) -> (B, T, H, W, D), decoded without the (cancelling) mean
        return torch.einsum("dc,bcthw->bthwd", basis, lat * std[None, :, None, None, None])

    pix_err = (pixels(z_hat) - pixels(z)).square().sum(-1).mean(dim=(2, 3))  # (B, T) squared pixel error
    expected = (pix_err / std.square().sum() * mask.double()).sum(1) / mask.double().sum(1)
    torch.testing.assert_close(per_sample.double(), expected, rtol=1e-5, atol=0)
    # Power 0 weighs every channel 1: the plain loss.
    w0 = channel_loss_weights(tmp_path / "codec.safetensors", 0.0, C)
    assert torch.equal(w0, torch.ones(C))
    torch.testing.assert_close(flow_loss(z_hat, z, mask, channel_weight=w0)[1], flow_loss(z_hat, z, mask)[1])


@pytest.mark.parametrize("codec_dir", ["patch_codec", "ltx2_causal_vae"])  # the codec's folder, and its old name
def test_channel_weights_find_the_codec_in_a_model_folder_and_name_bad_sources(tmp_path, codec_dir):
    model = tmp_path / "model"
    (model / codec_dir).mkdir(parents=True)
    _std_file(model / codec_dir / "codec.safetensors", [2.0, 1.0])
    torch.testing.assert_close(channel_loss_weights(model, 0.5, 2), torch.tensor([4 / 3, 2 / 3]))
    with pytest.raises(FileNotFoundError, match="neither codec.safetensors"):
        channel_loss_weights(tmp_path, 0.5, 2)
    with pytest.raises(FileNotFoundError, match="no such file"):
        channel_loss_weights(tmp_path / "missing.safetensors", 0.5, 2)
    with pytest.raises(ValueError, match="2 channels, the model takes 3"):
        channel_loss_weights(model, 0.5, 3)
    from safetensors.torch import save_file

    save_file({"basis": torch.ones(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(KeyError, match="no 'latents_std'.*basis"):
        channel_loss_weights(tmp_path / "other.safetensors", 0.5, 2)
    with pytest.raises(ValueError, match="objective.channel_weight_power"):
        ObjectiveConfig(channel_weight_power=-1.0).validate()
