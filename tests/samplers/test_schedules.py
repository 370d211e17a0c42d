"""Sigma schedules equal diffusers' FlowMatchEulerDiscreteScheduler, the reference samplers' scheduler."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from sana_wm.samplers import DISTILL_TIMESTEPS, STREAMING_TIMESTEPS, SigmaSchedule, shift_sigmas


@pytest.mark.parametrize("shift", [1.0, 3.0, 8.0, 9.8, 9.95])
@pytest.mark.parametrize("num_steps", [1, 2, 4, 28, 60])
def test_shifted_schedule_equals_diffusers(shift, num_steps):
    oracle = FlowMatchEulerDiscreteScheduler(shift=shift)  # num_train_timesteps 1000, static shift
    oracle.set_timesteps(num_steps)
    ours = SigmaSchedule.shifted(num_steps, shift)
    assert ours.num_steps == num_steps
    assert torch.equal(ours.sigmas, oracle.sigmas)  # bit for bit, terminal 0 included
    assert torch.equal(ours.timesteps[:-1], oracle.timesteps)
    assert ours.timesteps[-1] == 0


@pytest.mark.parametrize("timesteps", [STREAMING_TIMESTEPS, DISTILL_TIMESTEPS, (1000, 500, 0), (750, 0)])
def test_explicit_schedule_equals_reference_setup(timesteps):
    # The reference streaming sampler: shift 1.0 and sigmas = t / 1000 without the trailing 0.
    oracle = FlowMatchEulerDiscreteScheduler(shift=1.0)
    oracle.set_timesteps(sigmas=[t / 1000.0 for t in timesteps[:-1]])
    ours = SigmaSchedule.from_timesteps(timesteps)
    assert torch.equal(ours.sigmas, oracle.sigmas)
    assert torch.equal(ours.timesteps[:-1], oracle.timesteps)
    # Used verbatim: after the model's flooring it sees exactly the listed integers.
    assert ours.timesteps.long().tolist() == list(timesteps)


def test_default_explicit_schedule_is_the_streaming_list():
    assert SigmaSchedule.from_timesteps().timesteps.tolist() == [1000.0, 960.0, 889.0, 727.0, 0.0]
    assert SigmaSchedule.from_timesteps(DISTILL_TIMESTEPS).timesteps.tolist() == [1000.0, 967.0, 908.0, 764.0, 0.0]


def test_shift_map():
    sigma = torch.linspace(0, 1, 11, dtype=torch.float64)
    shifted = shift_sigmas(sigma, 8.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert (shifted[1:] > shifted[:-1]).all() and (shifted[1:-1] > sigma[1:-1]).all()  # more time at high noise
    assert torch.equal(shift_sigmas(sigma, 1.0), sigma)


@pytest.mark.parametrize("bad", [(1000, 960), (0, 1000, 0), (1000, 1000, 0), (1200, 0), (0,)])
def test_bad_explicit_lists_are_rejected(bad):
    with pytest.raises(ValueError):
        SigmaSchedule.from_timesteps(bad)


def test_bad_shifted_arguments_are_rejected():
    with pytest.raises(ValueError):
        SigmaSchedule.shifted(0, 3.0)
    with pytest.raises(ValueError):
        SigmaSchedule.shifted(10, 0.0)
