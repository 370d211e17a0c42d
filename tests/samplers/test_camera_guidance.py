"""Camera guidance: the unconditional branch sees a standing camera instead of (or besides) a negative prompt."""

import pytest
import torch
from sampler_helpers import C, H, W, conditioning, first_frame, rel_err

from sana_wm.samplers import Conditioning, Guidance, SigmaSchedule, euler_sample, streaming_sample
from sana_wm.samplers.conditioning import guided_batch

T = 4


class CameraVelocity:
    """``v`` = each frame's mean camera vector plus a little of the latents: tells cameras apart per frame."""

    def __call__(self, latents, timestep, text, text_mask=None, camera_vector=None, plucker=None,
                 mode="bidirectional", chunk_lengths=None):
        level = camera_vector.float().mean(-1)[:, None, :, None, None]  # (B, 1, T, 1, 1)
        return level + 0.1 * latents


def test_guided_velocity_is_standing_plus_scale_times_difference():
    # One step from known noise: x1 = noise + (0 - 1) v, so v = noise - x1 is the guided velocity.
    cond, still = conditioning(1, T), conditioning(1, T, still=True)
    noise = torch.randn(1, C, T, H, W, generator=torch.Generator().manual_seed(1))
    out = euler_sample(CameraVelocity(), cond, first_frame(1), T, SigmaSchedule.shifted(1),
                       guidance=Guidance(3.0, negative_camera=still), noise=noise)
    level = lambda cv: cv.float().mean(-1)[:, None, :, None, None]  # noqa: E731
    v_cond, v_still = level(cond.camera_vector) + 0.1 * noise, level(still.camera_vector) + 0.1 * noise
    expected = v_still + 3.0 * (v_cond - v_still)
    assert not torch.allclose(v_cond[:, :, 1:], v_still[:, :, 1:])  # the path does move
    torch.testing.assert_close((noise - out.latents)[:, :, 1:], expected[:, :, 1:], rtol=1e-5, atol=1e-5)


def test_batch_pairs_the_standing_camera_with_the_same_prompt():
    cond = conditioning(2, T)
    batch = guided_batch(cond, Guidance(2.0, negative_camera=conditioning(1, T, still=True)))  # batch 1 broadcast to 2
    assert torch.equal(batch.text, torch.cat([cond.text, cond.text]))
    assert torch.equal(batch.text_mask, torch.cat([cond.text_mask, cond.text_mask]))
    still = conditioning(2, T, still=True)
    assert torch.equal(batch.camera_vector, torch.cat([still.camera_vector, cond.camera_vector]))
    assert torch.equal(batch.plucker, torch.cat([still.plucker, cond.plucker]))


def test_scale_zero_is_the_standing_camera_and_one_is_the_path_with_the_real_model(tiny_model):
    frame0, cond = first_frame(2), conditioning(2, T)
    still = conditioning(2, T, still=True)
    schedule = SigmaSchedule.shifted(2, 3.0)

    def run(c, guidance=None):
        return euler_sample(tiny_model, c, frame0, T, schedule, guidance=guidance,
                            generator=torch.Generator().manual_seed(5)).latents

    alone = run(still)  # the same prompt on the standing camera
    assert rel_err(run(cond, Guidance(0.0, negative_camera=still)), alone) < 1e-5
    assert torch.equal(run(cond, Guidance(1.0, negative_camera=still)), run(cond))
    guided = run(cond, Guidance(4.0, negative_camera=still))
    assert torch.isfinite(guided).all() and rel_err(guided, run(cond)) > 1e-3


def test_text_and_camera_negatives_together(tiny_model):
    frame0, cond = first_frame(2), conditioning(2, T)
    still = conditioning(2, T, still=True)
    negative = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(9))
    schedule = SigmaSchedule.shifted(2, 3.0)

    def run(c, guidance=None):
        return euler_sample(tiny_model, c, frame0, T, schedule, guidance=guidance,
                            generator=torch.Generator().manual_seed(5)).latents

    both = Guidance(0.0, negative, negative_camera=still)
    assert rel_err(run(cond, both), run(Conditioning(negative, None, still.camera_vector, still.plucker))) < 1e-5


def test_streaming_scale_zero_is_the_standing_camera(tiny_model):
    frames = 7  # chunks [0, 4), [4, 7): the doubled cache carries the standing camera into chunk 2
    frame0, cond, still = first_frame(2), conditioning(2, frames), conditioning(2, frames, still=True)
    schedule = SigmaSchedule.from_timesteps([1000, 0])

    def run(c, **kw):
        return streaming_sample(tiny_model, c, frame0, frames, schedule,
                                generator=torch.Generator().manual_seed(3), **kw)

    guided = run(cond, guidance=Guidance(0.0, negative_camera=still))
    alone = run(still)
    assert rel_err(guided, alone) < 1e-5
    assert rel_err(run(cond, guidance=Guidance(2.5, negative_camera=still)), run(cond)) > 1e-3


def test_bad_negative_cameras():
    cond = conditioning(2, T)
    with pytest.raises(ValueError, match="negative_text.*or negative_camera"):
        Guidance(5.0)
    short = conditioning(2, T - 1, still=True)
    with pytest.raises(ValueError, match=r"negative_camera.camera_vector .* does not match"):
        guided_batch(cond, Guidance(2.0, negative_camera=short))
    no_plucker = Conditioning(cond.text, cond.text_mask, conditioning(2, T, still=True).camera_vector, None)
    with pytest.raises(ValueError, match="negative_camera.plucker must be given"):
        guided_batch(cond, Guidance(2.0, negative_camera=no_plucker))
    # A camera-free prompt cannot be guided by a camera.
    with pytest.raises(ValueError, match="negative_camera.camera_vector must be given exactly"):
        guided_batch(conditioning(2, T, camera=False), Guidance(2.0, negative_camera=conditioning(2, T, still=True)))
