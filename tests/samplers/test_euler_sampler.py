"""The bidirectional flow-Euler sampler: exact on an exact flow, conditioning frame untouched, CFG, seeds."""

import pytest
import torch
from sampler_helpers import C, ConstantVelocity, ExactFlow, H, TextVelocity, W, conditioning, first_frame, rel_err

from sana_wm.samplers import Conditioning, Guidance, SigmaSchedule, euler_sample

T = 5


def _clean_video(batch, frame0, seed=7):
    x0 = torch.randn(batch, C, T, H, W, generator=torch.Generator().manual_seed(seed))
    x0[:, :, :1] = frame0
    return x0


@pytest.mark.parametrize("schedule", [SigmaSchedule.shifted(1, 3.0), SigmaSchedule.shifted(6, 3.0),
                                      SigmaSchedule.from_timesteps()])
def test_constant_velocity_eps_minus_x0_recovers_x0(schedule):
    # Euler is exact on straight flow paths: with v = eps - x0 throughout, any schedule lands on x0.
    frame0 = first_frame(2)
    x0 = _clean_video(2, frame0)
    noise = torch.randn(2, C, T, H, W, generator=torch.Generator().manual_seed(8))
    out = euler_sample(ConstantVelocity(noise - x0), conditioning(2, T, camera=False), frame0, T, schedule,
                       noise=noise, keep_x0=True)
    torch.testing.assert_close(out.latents, x0, rtol=0, atol=1e-5)
    assert torch.equal(out.latents[:, :, :1], frame0)
    assert len(out.x0_predictions) == schedule.num_steps
    for x0_hat in out.x0_predictions:  # x - sigma (eps - x0) = x0 at every step of the exact flow
        torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("num_steps", [1, 8])
def test_exact_flow_model_recovers_x0_and_sees_per_frame_timesteps(num_steps):
    frame0 = first_frame(2)
    x0 = _clean_video(2, frame0)
    model = ExactFlow(x0)
    schedule = SigmaSchedule.shifted(num_steps, 9.8)
    out = euler_sample(model, conditioning(2, T, camera=False), frame0, T, schedule,
                       generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.latents, x0, rtol=0, atol=1e-5)
    assert len(model.calls) == num_steps
    for call, t in zip(model.calls, schedule.timesteps[:-1], strict=True):
        assert call.timestep.shape == (2, 1, T) and call.mode == "bidirectional"
        assert (call.timestep[:, :, 0] == 0).all()  # the conditioning frame is clean at every step
        assert (call.timestep[:, :, 1:] == t).all()


def test_first_frame_stays_bit_identical_with_the_real_model(tiny_model):
    frame0 = first_frame(2)
    steps = []
    out = euler_sample(tiny_model, conditioning(2, T), frame0, T, SigmaSchedule.shifted(3, 3.0),
                       generator=torch.Generator().manual_seed(0), callback=steps.append)
    assert torch.equal(out.latents[:, :, :1], frame0)
    assert out.latents.shape == (2, C, T, H, W) and out.latents.dtype == torch.float32
    assert torch.isfinite(out.latents).all()
    assert [s.step for s in steps] == [0, 1, 2] and all(torch.equal(s.latents[:, :, :1], frame0) for s in steps)


def test_guidance_scale_one_and_zero_with_a_fake():
    frame0, cond = first_frame(2), conditioning(2, T, camera=False)
    negative = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(9))
    schedule = SigmaSchedule.shifted(4, 3.0)

    def run(cond, guidance=None):
        return euler_sample(TextVelocity(), cond, frame0, T, schedule, guidance=guidance,
                            generator=torch.Generator().manual_seed(5)).latents

    cond_only = run(cond)
    uncond_only = run(Conditioning(negative, None))
    assert torch.equal(run(cond, Guidance(1.0, negative)), cond_only)
    torch.testing.assert_close(run(cond, Guidance(0.0, negative)), uncond_only, rtol=0, atol=1e-6)
    assert not torch.allclose(cond_only, uncond_only)


def test_guided_velocity_is_uncond_plus_scale_times_difference():
    # One step from known noise: x1 = noise + (0 - 1) v, so v = noise - x1 is the guided velocity.
    frame0 = first_frame(1)
    cond = Conditioning(torch.full((1, 3, 64), 2.0))
    negative = torch.full((1, 3, 64), -1.0)
    noise = torch.randn(1, C, T, H, W, generator=torch.Generator().manual_seed(1))
    out = euler_sample(TextVelocity(), cond, frame0, T, SigmaSchedule.shifted(1), guidance=Guidance(4.0, negative),
                       noise=noise)
    v_cond, v_uncond = 2.0 + 0.1 * noise, -1.0 + 0.1 * noise
    expected = v_uncond + 4.0 * (v_cond - v_uncond)
    torch.testing.assert_close((noise - out.latents)[:, :, 1:], expected[:, :, 1:], rtol=1e-5, atol=1e-5)


def test_guidance_with_the_real_model(tiny_model):
    frame0, cond = first_frame(2), conditioning(2, T)
    negative = torch.randn(1, 3, 64, generator=torch.Generator().manual_seed(9))  # shorter, broadcast batch
    schedule = SigmaSchedule.shifted(2, 3.0)

    def run(cond, guidance=None):
        return euler_sample(tiny_model, cond, frame0, T, schedule, guidance=guidance,
                            generator=torch.Generator().manual_seed(5)).latents

    uncond = Conditioning(negative.expand(2, -1, -1), None, cond.camera_vector, cond.plucker)
    # Scale 0 keeps only the unconditional branch, computed inside a batch of 4 with padded text.
    assert rel_err(run(cond, Guidance(0.0, negative)), run(uncond)) < 1e-5
    assert torch.equal(run(cond, Guidance(1.0, negative)), run(cond))
    guided = run(cond, Guidance(5.0, negative))
    assert torch.isfinite(guided).all() and rel_err(guided, run(cond)) > 1e-3


def test_guidance_needs_a_negative_prompt():
    with pytest.raises(ValueError, match="negative_text"):
        Guidance(5.0)


def test_same_seed_same_video_other_seed_other_video(tiny_model):
    frame0, cond = first_frame(1), conditioning(1, T)
    schedule = SigmaSchedule.shifted(2, 3.0)

    def run(seed):
        return euler_sample(tiny_model, cond, frame0, T, schedule, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(11).latents, run(11).latents, run(12).latents
    assert torch.equal(a, b)
    assert not torch.allclose(a[:, :, 1:], c[:, :, 1:])
    assert torch.equal(a[:, :, :1], c[:, :, :1])


def test_noise_shape_is_checked():
    with pytest.raises(ValueError, match="noise"):
        euler_sample(TextVelocity(), conditioning(1, T, camera=False), first_frame(1), T, SigmaSchedule.shifted(1),
                     noise=torch.zeros(1, C, T + 1, H, W))
