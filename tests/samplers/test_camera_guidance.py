"""Camera guidance: the unconditional branch sees a standing camera instead of (or besides) a negative prompt."""

from __future__ import annotations

from dataclasses import dataclass

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


def _stream_reference(model, cond, guided_cond, frame0, lengths, schedule, noise, guided_chunks, scale):
    """The streaming loop written out plainly: chunks before ``guided_chunks`` guided against ``guided_cond``
    (the standing camera), later ones conditional only; each chunk's clean pass builds the cache of the
    branch(es) still running, so the conditional cache never sees the standing camera."""
    from sana_wm.samplers.streaming import RELEASED_KV_WINDOW

    sig = schedule.sigmas.tolist()
    caches, out, start = {"cond": None, "still": None}, [], 0
    for index, n in enumerate(lengths):
        end = start + n
        branches = ("still", "cond") if index < guided_chunks else ("cond",)
        conds = {"cond": cond.frames(start, end), "still": guided_cond.frames(start, end)}
        x = noise[:, :, start:end].clone()
        noisy = torch.ones(n)
        if index == 0:
            x[:, :, :1], noisy[0] = frame0, 0.0
        for i in range(schedule.num_steps):
            t = (noisy * schedule.timesteps[i]).expand(x.shape[0], 1, n)
            v = {b: model.forward_chunk(x, t, **conds[b].model_kwargs(), cache=caches[b],
                                        kv_window=RELEASED_KV_WINDOW if caches[b] is None else None)[0].float()
                 for b in branches}
            vel = v["still"] + scale * (v["cond"] - v["still"]) if "still" in v else v["cond"]
            x = x + (noisy * (sig[i + 1] - sig[i])).view(1, 1, -1, 1, 1) * vel
            if index == 0:
                x[:, :, :1] = frame0
        for b in branches:
            caches[b] = model.forward_chunk(x, torch.zeros(x.shape[0], 1, n), **conds[b].model_kwargs(),
                                            cache=caches[b],
                                            kv_window=RELEASED_KV_WINDOW if caches[b] is None else None)[1]
        out.append(x)
        start = end
    return torch.cat(out, dim=2)


def test_streaming_guidance_on_the_first_chunks_only(tiny_model):
    frames, lengths = 10, [4, 3, 3]
    frame0, cond, still = first_frame(2), conditioning(2, frames), conditioning(2, frames, still=True)
    schedule = SigmaSchedule.from_timesteps([1000, 727, 0])
    noise = torch.randn(2, C, frames, H, W, generator=torch.Generator().manual_seed(11))

    def run(**guidance):
        return streaming_sample(tiny_model, cond, frame0, frames, schedule, noise=noise,
                                guidance=Guidance(2.5, negative_camera=still, **guidance))

    everywhere, first_only = run(), run(chunks=1)
    torch.testing.assert_close(first_only[:, :, :4], everywhere[:, :, :4], rtol=0, atol=0)  # chunk 0 unchanged
    assert rel_err(first_only[:, :, 4:], everywhere[:, :, 4:]) > 1e-3  # later chunks are not guided
    for guided_chunks in (1, 2):
        expected = _stream_reference(tiny_model, cond, still, frame0, lengths, schedule, noise, guided_chunks, 2.5)
        assert rel_err(run(chunks=guided_chunks), expected) < 1e-5
    assert torch.equal(run(chunks=3), everywhere)  # as many chunks as the video has: guidance throughout


def test_batch_rows_of_a_cache_is_the_cache_of_those_videos(tiny_model):
    """A cache built for a batch of three videos, cut to rows [1, 3), is the cache of those two alone (the
    GDN conv tails are (B*S)-major, the softmax windows and FFN tails B-major)."""
    from sana_wm.model.cache import batch_rows
    from sana_wm.samplers.streaming import RELEASED_KV_WINDOW

    cond = conditioning(3, 7, seed=8)
    x = torch.randn(3, C, 7, H, W, generator=torch.Generator().manual_seed(2))
    t = torch.zeros(3, 1, 4)
    t[:, :, 1:] = 500.0
    t0 = torch.zeros(3, 1, 4)
    model = tiny_model
    with torch.no_grad():
        _, whole = model.forward_chunk(x[:, :, :4], t0, **cond.frames(0, 4).model_kwargs(),
                                       kv_window=RELEASED_KV_WINDOW)
        rows = Conditioning(cond.text[1:], cond.text_mask[1:], cond.camera_vector[1:], cond.plucker[1:])
        _, alone = model.forward_chunk(x[1:, :, :4], t0[1:], **rows.frames(0, 4).model_kwargs(),
                                       kv_window=RELEASED_KV_WINDOW)
        cut = batch_rows(whole, 1, 3)
        # The next chunk sees the same past either way.
        step = (x[1:, :, 4:], t[1:, :, 1:])
        kwargs = rows.frames(4, 7).model_kwargs()
        v_cut, _ = model.forward_chunk(*step, **kwargs, cache=cut)
        v_alone, _ = model.forward_chunk(*step, **kwargs, cache=alone)
    assert rel_err(v_cut, v_alone) < 1e-5
    with pytest.raises(ValueError, match=r"rows \[2, 4\) are outside a batch of 3"):
        batch_rows(whole, 2, 4)
    with pytest.raises(TypeError, match="expects a StreamCache"):
        batch_rows({"not": "a cache"}, 0, 1)


@pytest.mark.parametrize("chunks", [0, -1, 1.5, True])
def test_guidance_chunks_must_be_a_positive_count(chunks):
    with pytest.raises(ValueError, match="guidance chunks must be a whole number >= 1"):
        Guidance(2.0, negative_camera=conditioning(1, T, still=True), chunks=chunks)


def test_whole_clip_samplers_refuse_guidance_limited_to_chunks(tiny_model):
    from sana_wm.samplers import chunk_causal_sample

    guidance = Guidance(2.0, negative_camera=conditioning(1, T, still=True), chunks=1)
    for sample, name in ((euler_sample, "euler_sample"), (chunk_causal_sample, "chunk_causal_sample")):
        with pytest.raises(ValueError, match=rf"{name}: guidance.chunks = 1 limits guidance"):
            sample(tiny_model, conditioning(1, T), first_frame(1), T, SigmaSchedule.shifted(1), guidance=guidance)


@dataclass(frozen=True)
class _Extra:
    """An opaque extra conditioning: which rows and frames of which videos it stands for."""

    rows: tuple[str, ...]
    start: int = 0
    end: int = T

    def frames(self, start: int, end: int) -> _Extra:
        return _Extra(self.rows, self.start + start, self.start + end)

    def guided_with(self, negative: _Extra) -> _Extra:
        return _Extra(negative.rows + self.rows, self.start, self.end)


def test_extra_conditioning_travels_with_the_camera():
    """Conditioning.extra (a model wrapper's) is cut per chunk through its own frames(), reaches the model only
    when set, and is paired with the negative camera's through its own guided_with()."""
    cond, still = conditioning(2, T), conditioning(1, T, still=True)
    extra = _Extra(("cond0", "cond1"))
    with_extra = Conditioning(cond.text, cond.text_mask, cond.camera_vector, cond.plucker, extra)
    assert "extra" not in cond.model_kwargs()
    assert with_extra.frames(1, 3).model_kwargs()["extra"] == _Extra(("cond0", "cond1"), 1, 3)
    neg = Conditioning(still.text, None, still.camera_vector, still.plucker, _Extra(("still",)))
    batch = guided_batch(with_extra, Guidance(2.0, negative_camera=neg))
    assert batch.extra == _Extra(("still", "cond0", "cond1"))
    with pytest.raises(ValueError, match="negative_camera.extra must be given exactly"):
        guided_batch(with_extra, Guidance(2.0, negative_camera=still))
    # text-only guidance keeps the extra conditioning in both halves
    text_only = guided_batch(with_extra, Guidance(2.0, negative_text=cond.text))
    assert text_only.extra == _Extra(("cond0", "cond1", "cond0", "cond1"))
