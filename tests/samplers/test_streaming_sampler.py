"""The streaming few-step sampler: chunk by chunk against the model's cache, yielded as it goes."""

import pytest
import torch
from sampler_helpers import C, ExactFlow, FakeCache, H, W, conditioning, first_frame, rel_err, tensor_bytes

from sana_wm.model import KVWindow
from sana_wm.samplers import (
    Conditioning,
    Guidance,
    SigmaSchedule,
    chunk_causal_sample,
    stream_sample,
    streaming_sample,
)

T = 10  # chunks [0, 4), [4, 7), [7, 10)
LENGTHS = [4, 3, 3]
SCHEDULE = SigmaSchedule.from_timesteps()  # [1000, 960, 889, 727, 0]
SHORT = SigmaSchedule.from_timesteps([1000, 889, 0])  # fewer tiny-model forwards (2-core CI)


def _noise(batch, frames=T, seed=21):
    return torch.randn(batch, C, frames, H, W, generator=torch.Generator().manual_seed(seed))


def _by_hand(model, cond, frame0, schedule, *, noise=None, generator=None, step_rule="euler"):
    """The streaming student written out with whole-prefix chunk-causal forwards instead of a cache
    (earlier chunks enter clean at t = 0), drawing randomness in the sampler's documented order: per
    chunk its start noise (unless ``noise`` is given), then with "renoise" one draw per step but the last."""
    B = frame0.shape[0]
    video = torch.zeros(B, C, T, H, W)
    sigmas, start = schedule.sigmas.tolist(), 0
    for c, n in enumerate(LENGTHS):
        end = start + n
        video[:, :, start:end] = noise[:, :, start:end] if noise is not None else torch.randn(
            B, C, n, H, W, generator=generator)
        video[:, :, :1] = frame0
        for i in range(schedule.num_steps):
            sigma = torch.full((n,), sigmas[i])
            if c == 0:
                sigma[0] = 0.0  # the conditioning frame
            t = torch.zeros(B, 1, end)
            t[:, :, start:] = 1000 * sigma
            v = model(video[:, :, :end], t, cond.text, cond.text_mask, cond.camera_vector[:, :end],
                      cond.plucker[:, :, :end], mode="chunk_causal", chunk_lengths=LENGTHS[:c + 1]).float()
            v, x, sigma = v[:, :, start:end], video[:, :, start:end], sigma.view(1, 1, n, 1, 1)
            if step_rule == "euler" or sigmas[i + 1] == 0:
                x = x + (sigmas[i + 1] - sigma) * (sigma > 0) * v
            else:
                x0 = x - sigma * v
                x = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * torch.randn(x.shape, generator=generator)
            video[:, :, start:end] = x
            video[:, :, :1] = frame0
        start = end
    return video


def test_streaming_equals_chunk_causal_when_the_window_keeps_everything(tiny_model):
    frame0, cond, noise = first_frame(2), conditioning(2, T), _noise(2)
    streamed = streaming_sample(tiny_model, cond, frame0, T, SHORT, kv_window=KVWindow(), noise=noise)
    by_hand = _by_hand(tiny_model, cond, frame0, SHORT, noise=noise)
    sequential = chunk_causal_sample(tiny_model, cond, frame0, T, SHORT, interval_k=1.0, noise=noise).latents
    assert torch.equal(streamed[:, :, :1], frame0)
    assert rel_err(streamed, by_hand) < 1e-5
    assert rel_err(sequential, by_hand) < 1e-5


def test_renoising_streaming_equals_the_hand_rollout_with_the_same_draws(tiny_model):
    frame0, cond = first_frame(1), conditioning(1, T)
    streamed = streaming_sample(tiny_model, cond, frame0, T, SHORT, kv_window=KVWindow(), step_rule="renoise",
                                generator=torch.Generator().manual_seed(5))
    by_hand = _by_hand(tiny_model, cond, frame0, SHORT, generator=torch.Generator().manual_seed(5),
                       step_rule="renoise")
    assert rel_err(streamed, by_hand) < 1e-5
    euler = streaming_sample(tiny_model, cond, frame0, T, SHORT, kv_window=KVWindow(),
                             generator=torch.Generator().manual_seed(5))
    assert rel_err(streamed, euler) > 1e-3  # the two step rules really differ


@pytest.mark.parametrize("step_rule", ["euler", "renoise"])
def test_exact_flow_recovers_x0(step_rule):
    frame0 = first_frame(2)
    x0 = torch.randn(2, C, T, H, W, generator=torch.Generator().manual_seed(7))
    x0[:, :, :1] = frame0
    out = streaming_sample(ExactFlow(x0), conditioning(2, T), frame0, T, step_rule=step_rule,
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)
    assert torch.equal(out[:, :, :1], frame0)


def test_each_chunk_sees_the_schedule_then_a_clean_pass_against_the_previous_clean_cache():
    model = ExactFlow(torch.zeros(1, C, T, H, W))
    window = KVWindow(max_chunks=2, sink=True)
    list(stream_sample(model, conditioning(1, T), first_frame(1), T, kv_window=window,
                       generator=torch.Generator().manual_seed(0)))
    N = SCHEDULE.num_steps
    assert len(model.calls) == len(LENGTHS) * (N + 1)
    start = 0
    for c, n in enumerate(LENGTHS):
        calls = model.calls[c * (N + 1):(c + 1) * (N + 1)]
        expected = [[t] * n for t in (1000.0, 960.0, 889.0, 727.0, 0.0)]  # N steps, then the clean re-forward
        if c == 0:
            for row in expected:
                row[0] = 0.0  # the conditioning frame is clean throughout
        assert [call.timestep[0, 0].tolist() for call in calls] == expected
        # Every pass of chunk c reads the cache returned by chunk c-1's clean pass (call number c (N + 1)).
        previous_clean = None if c == 0 else FakeCache(next_frame=start, serial=c * (N + 1))
        for call in calls:
            assert call.start_frame == start and call.frames == n
            assert call.cache == previous_clean
            assert call.kv_window == (window if c == 0 else None)  # set once, then it travels in the cache
        start += n


def test_chunks_are_yielded_as_soon_as_they_are_done():
    model = ExactFlow(torch.zeros(1, C, T, H, W))
    stream = stream_sample(model, conditioning(1, T), first_frame(1), T, generator=torch.Generator().manual_seed(0))
    assert model.calls == []  # a generator: nothing runs before the first chunk is asked for
    chunks = []
    for c, chunk in enumerate(stream):
        assert len(model.calls) == (c + 1) * (SCHEDULE.num_steps + 1)  # this chunk's steps + clean pass, no more
        chunks.append(chunk)
    assert [(ch.index, ch.start_frame, ch.end_frame) for ch in chunks] == [(0, 0, 4), (1, 4, 7), (2, 7, 10)]


class _CacheMeter:
    """Delegates to the real model and records the size of the cache each forward reads."""

    def __init__(self, model):
        self.model, self.cache_bytes = model, []

    def forward_chunk(self, *args, cache=None, **kwargs):
        self.cache_bytes.append(tensor_bytes(cache))
        return self.model.forward_chunk(*args, cache=cache, **kwargs)


def test_memory_stays_bounded_with_a_bounded_window(tiny_model):
    frames, schedule = 19, SigmaSchedule.from_timesteps([1000, 0])  # chunks 4 + 3 x 5; one step + clean pass
    cond, frame0 = conditioning(1, frames), first_frame(1)

    def per_chunk_cache(window):
        meter = _CacheMeter(tiny_model)
        for _ in stream_sample(meter, cond, frame0, frames, schedule, kv_window=window,
                               generator=torch.Generator().manual_seed(0)):
            pass
        return meter.cache_bytes[::2]  # the cache each chunk is denoised against

    bounded = per_chunk_cache(KVWindow(max_chunks=2, sink=True))
    unbounded = per_chunk_cache(KVWindow())
    assert len(bounded) == 6
    assert bounded[3] == bounded[4] == bounded[5] > 0  # window full: sink + last chunk + fixed GDN state
    assert all(a < b for a, b in zip(unbounded[1:-1], unbounded[2:], strict=True))  # keeping everything does grow


def test_determinism_and_guidance(tiny_model):
    frame0, cond = first_frame(2), conditioning(2, T)
    schedule = SigmaSchedule.from_timesteps([1000, 0])

    def run(seed, cond=cond, **kw):
        return streaming_sample(tiny_model, cond, frame0, T, schedule, generator=torch.Generator().manual_seed(seed),
                                **kw)

    a = run(3)
    assert torch.equal(a, run(3)) and not torch.allclose(a[:, :, 1:], run(4)[:, :, 1:])
    negative = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(9))
    uncond = Conditioning(negative, None, cond.camera_vector, cond.plucker)
    # Scale 0 = the unconditional branch alone, computed in a doubled batch with a doubled cache.
    guided = run(3, guidance=Guidance(0.0, negative))
    alone = run(3, cond=uncond)
    assert rel_err(guided, alone) < 1e-5


def test_bad_arguments():
    model, cond, frame0 = ExactFlow(torch.zeros(1, C, T, H, W)), conditioning(1, T), first_frame(1)
    with pytest.raises(ValueError, match="step_rule"):
        next(stream_sample(model, cond, frame0, T, step_rule="heun"))
    with pytest.raises(ValueError, match="chunk_lengths"):
        next(stream_sample(model, cond, frame0, T, chunk_lengths=[4, 3]))
    with pytest.raises(ValueError, match="kv_window"):
        next(stream_sample(model, cond, frame0, T, kv_window=KVWindow().push(torch.zeros(1), torch.zeros(1))))


@pytest.mark.parametrize("guided_chunks", [None, 1, 2])
@pytest.mark.parametrize("stop", [1, 2])
def test_a_run_continued_from_a_stored_chunk_equals_the_uninterrupted_run(tiny_model, tmp_path, stop, guided_chunks):
    # Through a file, as a resumed run gets it: the cache flattened to named tensors and rebuilt, the
    # generator's state restored. Guidance that ends before, at or after the stop point cuts the cache once.
    from safetensors.torch import load_file, save_file

    from sana_wm.model.cache import cache_from_tensors, cache_to_tensors

    frame0, cond = first_frame(1), conditioning(1, T)
    guidance = None
    if guided_chunks is not None:
        guidance = Guidance(2.0, negative_camera=conditioning(1, T, still=True), chunks=guided_chunks)

    def run(generator, **kw):
        return stream_sample(tiny_model, cond, frame0, T, SHORT, guidance=guidance, generator=generator, **kw)

    whole = [chunk.latents for chunk in run(torch.Generator().manual_seed(5))]
    generator = torch.Generator().manual_seed(5)
    for chunk in run(generator):
        if chunk.index == stop - 1:
            tensors, structure = cache_to_tensors(chunk.cache)
            tensors["generator"] = generator.get_state()
            save_file(tensors, str(tmp_path / "point.safetensors"))
            break
    loaded = load_file(str(tmp_path / "point.safetensors"))
    resumed_generator = torch.Generator()
    resumed_generator.set_state(loaded.pop("generator"))
    cache = cache_from_tensors(loaded, structure)
    rest = [chunk.latents for chunk in run(resumed_generator, start_chunk=stop, cache=cache)]
    assert len(rest) == len(LENGTHS) - stop
    for got, expected in zip(rest, whole[stop:], strict=True):
        assert torch.equal(got, expected)


def test_continuing_needs_the_cache_of_the_chunk_before():
    model, cond, frame0 = ExactFlow(torch.zeros(1, C, T, H, W)), conditioning(1, T), first_frame(1)
    with pytest.raises(ValueError, match="start_chunk"):
        next(stream_sample(model, cond, frame0, T, start_chunk=1))
    with pytest.raises(ValueError, match="start_chunk"):
        next(stream_sample(model, cond, frame0, T, start_chunk=4, cache=FakeCache(0, 0)))
