"""The distillation losses and draws against hand computations on fixed tensors."""

import math

import pytest
import torch

from sana_wm.distill.objective import (
    critic_loss,
    dmd_gradient,
    frame_sigmas,
    generator_loss,
    guided_x0,
    noisy_frames,
    ode_regression_inputs,
    score_timesteps,
    x0_from_velocity,
)
from sana_wm.distill.ode_data import teacher_schedule
from sana_wm.samplers import SigmaSchedule


def _fixed(shape, offset):
    n = math.prod(shape)
    return (torch.arange(n, dtype=torch.float64).reshape(shape) * 0.37 + offset).sin()


def test_dmd_gradient_and_generator_loss_by_hand():
    # B=2, C=1, T=3, H=1, W=2: small enough to write every sum out.
    x_gen, x0_fake, x0_real = _fixed((2, 1, 3, 1, 2), 0.1), _fixed((2, 1, 3, 1, 2), 1.3), _fixed((2, 1, 3, 1, 2), 2.9)
    grad = dmd_gradient(x_gen.float(), x0_fake.float(), x0_real.float())
    noisy = noisy_frames(2, 3)
    loss_sum, expect_grad = 0.0, torch.zeros_like(x_gen)
    for b in range(2):
        values = [(c, t, h, w) for c in range(1) for t in range(3) for h in range(1) for w in range(2)]
        normaliser = sum(abs(float(x_gen[b, c, t, h, w] - x0_real[b, c, t, h, w])) for c, t, h, w in values) / 6
        sample_loss = 0.0
        for c, t, h, w in values:
            g = float(x0_fake[b, c, t, h, w] - x0_real[b, c, t, h, w]) / normaliser
            assert float(grad[b, c, t, h, w]) == pytest.approx(g, rel=1e-5)  # float32
            if t > 0:  # frame 0 is the clean conditioning frame: out of the loss
                sample_loss += 0.5 * g * g / 4  # 4 noisy elements per sample
                expect_grad[b, c, t, h, w] = g / 4 / 2  # d/dx of 0.5 (x - (x - g))^2 averaged, then the batch mean
        loss_sum += sample_loss
    x = x_gen.float().clone().requires_grad_(True)
    loss = generator_loss(x, grad, noisy)
    assert float(loss.detach()) == pytest.approx(loss_sum / 2, rel=1e-6)
    loss.backward()
    torch.testing.assert_close(x.grad.double(), expect_grad, rtol=1e-5, atol=1e-7)


def test_dmd_gradient_of_a_sample_on_the_real_score_is_zero_not_nan():
    x = torch.ones(1, 1, 2, 1, 1)
    assert torch.equal(dmd_gradient(x, x + 1, x), torch.zeros_like(x))


def test_critic_loss_and_guidance_by_hand():
    velocity, noise, x_gen = _fixed((1, 2, 2, 1, 1), 0.3).float(), _fixed((1, 2, 2, 1, 1), 0.9).float(), \
        _fixed((1, 2, 2, 1, 1), 1.7).float()
    # frame 1 only (frame 0 is clean): mean over 2 channels of (v - (eps - x))^2
    expect = sum(float(velocity[0, c, 1, 0, 0] - (noise[0, c, 1, 0, 0] - x_gen[0, c, 1, 0, 0])) ** 2
                 for c in range(2)) / 2
    assert float(critic_loss(velocity, noise, x_gen, noisy_frames(1, 2))) == pytest.approx(expect, rel=1e-6)
    assert float(guided_x0(torch.tensor(2.0), torch.tensor(0.5), 3.0)) == 2.0 + 3.0 * 1.5
    sigma = frame_sigmas(torch.tensor([500.0]), 2)
    assert sigma.tolist() == [[0.0, 0.5]]
    x0 = x0_from_velocity(x_gen, sigma, velocity)
    assert torch.equal(x0[:, :, 0], x_gen[:, :, 0])
    torch.testing.assert_close(x0[:, :, 1], x_gen[:, :, 1] - 0.5 * velocity[:, :, 1])


def test_score_timesteps_follow_the_shifted_uniform_draw():
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(200):
        t = float(score_timesteps(g, shift=10.0, min_timestep=20.0, max_timestep=980.0))
        u = float(torch.rand((), generator=h, dtype=torch.float64))
        expect = math.floor(min(max(1000 * 10 * u / (1 + 9 * u), 20.0), 980.0))
        assert t == expect
    draws = torch.stack([score_timesteps(g) for _ in range(2000)])
    assert float(draws.min()) >= 20 and float(draws.max()) <= 980
    # shift 10 puts most draws at high noise: P(t > 500) = P(u > 1/11) = 10/11
    assert float((draws > 500).float().mean()) == pytest.approx(10 / 11, abs=0.03)


def test_ode_regression_inputs_take_each_chunk_from_one_noisy_snapshot():
    S, T = 5, 4
    snapshots = torch.arange(S, dtype=torch.float32).view(1, S, 1, 1, 1, 1).expand(2, S, 3, T, 2, 2).clone()
    timesteps = torch.tensor([1000.0, 967.0, 908.0, 764.0, 0.0])
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    x, t = ode_regression_inputs(snapshots, timesteps, [2, 1, 1], gens)
    check = [torch.Generator().manual_seed(i) for i in range(2)]
    for b in range(2):
        index = torch.randint(0, S - 1, (3,), generator=check[b]).tolist()
        frame_index = [S - 1, index[0], index[1], index[2]]  # frame 0 clean; chunks [2, 1, 1]
        assert x[b, :, :, 0, 0].mean(0).tolist() == [float(i) for i in frame_index]
        assert t[b].tolist() == [timesteps[i].item() for i in frame_index]
        assert max(index) < S - 1  # never the clean end itself


def test_teacher_schedule_passes_through_the_student_sigmas():
    student = SigmaSchedule.from_timesteps((1000, 967, 908, 764, 0))
    schedule, at = teacher_schedule(20, 9.8, student)
    assert [float(schedule.sigmas[i]) for i in at] == student.sigmas.tolist()
    assert at[0] == 0 and at[-1] == schedule.num_steps
    assert schedule.num_steps <= 20 + 3  # the student's inner sigmas added at most
