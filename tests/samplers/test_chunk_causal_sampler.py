"""The chunk-causal teacher's staggered schedule and sampler."""

import pytest
import torch
from sampler_helpers import C, ExactFlow, H, W, conditioning, first_frame

from sana_wm.samplers import WAITING, SigmaSchedule, chunk_causal_sample, euler_sample, staggered_schedule

T = 10  # chunks [0, 4), [4, 7), [7, 10)


@pytest.mark.parametrize("num_steps", [1, 4, 7, 60])
@pytest.mark.parametrize("num_chunks", [1, 2, 3, 11])
@pytest.mark.parametrize("interval_k", [None, 0.0, 0.25, 0.5, 1.0, 1.5])
def test_schedule_properties(num_steps, num_chunks, interval_k):
    table = staggered_schedule(num_steps, num_chunks, interval_k)
    G = table.shape[0]
    assert table.shape[1] == num_chunks and table.dtype == torch.int64
    assert table[0, 0] == 0  # chunk 0 starts at once
    assert table[-1, -1] == num_steps - 1 and (table[-1] >= num_steps - 1).all()  # the last row finishes them all
    assert (table[1:] >= table[:-1]).all()  # monotone per chunk
    assert ((table[1:] - table[:-1]) <= 1).all()  # one schedule index per global step
    for i in range(num_chunks):  # every chunk runs each of its steps exactly once
        assert table[:, i][(table[:, i] >= 0) & (table[:, i] < num_steps)].tolist() == list(range(num_steps))
    starts = (table == WAITING).sum(0)
    assert (starts[1:] >= starts[:-1]).all()  # later chunks start no earlier
    k = 1.0 / num_chunks if interval_k is None else interval_k
    assert starts.tolist() == [int(i * k * num_steps) for i in range(num_chunks)]
    assert G == int(starts[-1]) + num_steps  # the run ends when the last chunk is done
    waiting = table == WAITING
    assert (waiting[:, 1:] >= waiting[:, :-1]).all()  # the chunks the model sees form a prefix
    assert (table[:, 1:] <= table[:, :-1]).all()  # earlier chunks are never noisier


def test_interval_zero_is_lockstep_and_one_is_sequential():
    lockstep = staggered_schedule(5, 3, interval_k=0.0)
    assert lockstep.shape == (5, 3) and (lockstep == torch.arange(5)[:, None]).all()
    sequential = staggered_schedule(4, 3, interval_k=1.0)
    assert sequential.shape == (12, 3)
    for i in range(3):  # chunk i runs while all earlier chunks are finished and later ones wait
        rows = sequential[4 * i:4 * i + 4]
        assert rows[:, i].tolist() == [0, 1, 2, 3] and (rows[:, :i] == 4).all() and (rows[:, i + 1:] == WAITING).all()


def test_default_interval_is_one_over_num_chunks():
    assert torch.equal(staggered_schedule(60, 3), staggered_schedule(60, 3, 1 / 3))
    assert (staggered_schedule(60, 3) == WAITING).sum(0).tolist() == [0, 20, 40]


def test_bad_schedule_arguments():
    for args in [(0, 3, None), (4, 0, None), (4, 3, -0.5)]:
        with pytest.raises(ValueError):
            staggered_schedule(*args)


def _clean_video(batch, frame0):
    x0 = torch.randn(batch, C, T, H, W, generator=torch.Generator().manual_seed(7))
    x0[:, :, :1] = frame0
    return x0


@pytest.mark.parametrize("interval_k", [None, 0.5, 1.0])
def test_model_sees_the_active_prefix_at_its_own_timesteps(interval_k):
    frame0 = first_frame(2)
    x0 = _clean_video(2, frame0)
    model = ExactFlow(x0)
    schedule = SigmaSchedule.shifted(4, 3.0)
    out = chunk_causal_sample(model, conditioning(2, T), frame0, T, schedule, interval_k=interval_k,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.latents, x0, rtol=0, atol=1e-5)  # every chunk walked its exact flow
    assert torch.equal(out.latents[:, :, :1], frame0)

    table = staggered_schedule(4, 3, interval_k)
    timesteps, lengths = schedule.timesteps, [4, 3, 3]
    assert len(model.calls) == table.shape[0]
    for call, row in zip(model.calls, table, strict=True):
        seen = int((row != WAITING).sum())
        assert call.mode == "chunk_causal" and call.chunk_lengths == lengths[:seen]
        expected = torch.cat([timesteps[row[i]].repeat(n) for i, n in enumerate(lengths[:seen])])
        expected[0] = 0.0  # conditioning frame
        assert call.frames == sum(lengths[:seen]) and torch.equal(call.timestep[0, 0], expected)


def test_lockstep_equals_the_bidirectional_euler_sampler_on_a_mode_blind_model():
    frame0 = first_frame(1)
    model = ExactFlow(_clean_video(1, frame0) + 0.3)  # a target the first frame does not match
    schedule = SigmaSchedule.shifted(5, 8.0)
    cond = conditioning(1, T, camera=False)
    a = chunk_causal_sample(model, cond, frame0, T, schedule, interval_k=0.0,
                            generator=torch.Generator().manual_seed(3)).latents
    b = euler_sample(model, cond, frame0, T, schedule, generator=torch.Generator().manual_seed(3)).latents
    assert torch.equal(a, b)


def test_run_with_the_tiny_model(tiny_model):
    frame0, cond = first_frame(2), conditioning(2, T)
    schedule = SigmaSchedule.shifted(3, 9.8)
    seen = []

    def run(seed):
        return chunk_causal_sample(tiny_model, cond, frame0, T, schedule, generator=torch.Generator().manual_seed(seed),
                                   keep_x0=True, callback=seen.append)

    out = run(0)
    G = staggered_schedule(3, 3).shape[0]
    assert out.latents.shape == (2, C, T, H, W) and torch.isfinite(out.latents).all()
    assert torch.equal(out.latents[:, :, :1], frame0)
    assert len(out.x0_predictions) == G == len(seen)
    assert [p.shape[2] for p in out.x0_predictions] == [4, 7, 10, 10, 10]  # the prefix grows chunk by chunk
    assert torch.equal(run(0).latents, out.latents)
    assert not torch.allclose(run(1).latents[:, :, 1:], out.latents[:, :, 1:])


def test_chunk_lengths_must_cover_the_video():
    with pytest.raises(ValueError, match="chunk_lengths"):
        chunk_causal_sample(ExactFlow(torch.zeros(1, C, T, H, W)), conditioning(1, T, camera=False), first_frame(1),
                            T, SigmaSchedule.shifted(2), chunk_lengths=[4, 3])
