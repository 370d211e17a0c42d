"""The Self-Forcing rollout: gradient through each chunk's exit step only; the cache refresh without gradient."""

import dataclasses

import pytest
import torch

from random_weights import randomize_
from sana_wm.distill.rollout import draw_exit_steps, rollout_noise, self_forcing_rollout
from sana_wm.model import SanaWMTransformer, get_config
from sana_wm.samplers import Conditioning, SigmaSchedule

T, C, H, W = 4, 16, 2, 2  # chunks [2, 1, 1] with 1-frame chunks
SCHEDULE = SigmaSchedule.from_timesteps((1000, 967, 908, 764, 0))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SanaWMTransformer(dataclasses.replace(get_config("tiny"), chunk_frames=1))
    return randomize_(m, 1, bias_scale=0.3).train()


def _inputs(batch=2):
    g = torch.Generator().manual_seed(5)
    first = torch.randn(batch, C, 1, H, W, generator=g)
    text = torch.randn(batch, 3, 64, generator=g)
    camera = torch.randn(batch, T, 20, generator=g) * 0.1
    noise = rollout_noise([torch.Generator().manual_seed(10 + b) for b in range(batch)], 4, (C, T, H, W))
    return first, Conditioning(text, None, camera, None), noise


def _reference(model, cond, first, noise, exit_steps, detach_others=True):
    """Every denoising step run with gradient; the state leaving a non-exit step detached (when asked)."""
    sigmas, timesteps = SCHEDULE.sigmas.tolist(), SCHEDULE.timesteps.tolist()
    B = first.shape[0]
    cache, outputs, start = None, [], 0
    for index, (n, exit_step) in enumerate(zip([2, 1, 1], exit_steps, strict=True)):
        kwargs = cond.frames(start, start + n).model_kwargs()
        noisy = torch.ones(n)
        if index == 0:
            noisy[0] = 0
        x = noise[:, 0, :, start:start + n].clone()
        if index == 0:
            x[:, :, :1] = first
        for i in range(exit_step + 1):
            v, _ = model.forward_chunk(x, (noisy * timesteps[i]).expand(B, 1, n), **kwargs, cache=cache)
            x0 = x - (noisy * sigmas[i]).view(1, 1, -1, 1, 1) * v
            if i < exit_step:
                x = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * noise[:, i + 1, :, start:start + n]
                if detach_others:
                    x = x.detach()
                if index == 0:
                    x = torch.cat([first, x[:, :, 1:]], dim=2)
        outputs.append(x0)
        with torch.no_grad():
            _, cache = model.forward_chunk(x0.detach(), torch.zeros(B, 1, n), **kwargs, cache=cache)
        start += n
    return torch.cat(outputs, dim=2)


def _grads(model, out):
    model.zero_grad(set_to_none=True)
    (out.square().mean() + out.mean()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_reaches_only_each_chunks_exit_step(model):
    first, cond, noise = _inputs()
    exit_steps = [2, 0, 3]
    out = self_forcing_rollout(model, cond, first, T, SCHEDULE, exit_steps, noise)
    grads = _grads(model, out)
    ref = _reference(model, cond, first, noise, exit_steps)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    ref_grads = _grads(model, ref)
    assert grads.keys() == ref_grads.keys() and len(grads) > 20
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-5, atol=1e-8, msg=name)
    # Without the detaching, gradient would also flow through the earlier steps: the check can fail.
    full = _grads(model, _reference(model, cond, first, noise, exit_steps, detach_others=False))
    assert any(not torch.allclose(full[n], grads[n], rtol=1e-3, atol=1e-6) for n in grads)
    assert torch.equal(out[:, :, :1], first)  # the conditioning frame passes through untouched


def test_cache_refresh_and_steps_before_the_exit_run_without_gradient(model, monkeypatch):
    first, cond, noise = _inputs(batch=1)
    calls = []
    original = model.forward_chunk

    def spy(latents, timestep, *args, **kwargs):
        calls.append((torch.is_grad_enabled(), float(timestep.max())))
        return original(latents, timestep, *args, **kwargs)

    monkeypatch.setattr(model, "forward_chunk", spy)
    self_forcing_rollout(model, cond, first, T, SCHEDULE, [1, 2, 0], noise)
    expected = []
    for exit_step in (1, 2, 0):
        expected += [(i == exit_step, t) for i, t in enumerate([1000.0, 967.0, 908.0, 764.0][:exit_step + 1])]
        expected.append((False, 0.0))  # the refresh at t = 0
    assert calls == expected
    calls.clear()
    with torch.no_grad():  # the critic-only steps: no gradient anywhere
        self_forcing_rollout(model, cond, first, T, SCHEDULE, [1, 2, 0], noise)
    assert not any(grad for grad, _ in calls)


def test_exit_steps_are_drawn_per_rollout_or_per_chunk(model):
    g = torch.Generator().manual_seed(0)
    shared = draw_exit_steps(g, 5, 4, same_for_all_chunks=True)
    assert len(set(shared)) == 1 and 0 <= shared[0] < 4
    draws = [draw_exit_steps(g, 5, 4, same_for_all_chunks=False) for _ in range(50)]
    assert {s for d in draws for s in d} == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="one per chunk"):
        first, cond, noise = _inputs(batch=1)
        self_forcing_rollout(model, cond, first, T, SCHEDULE, [0, 0], noise)
    with pytest.raises(ValueError, match="must lie in"):
        self_forcing_rollout(model, cond, first, T, SCHEDULE, [0, 4, 0], noise)
