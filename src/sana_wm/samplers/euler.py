"""Bidirectional flow-Euler sampler: the whole video denoised jointly (reference §3.2, ``flow_euler_ltx``).

Every latent frame but the first starts as pure noise and walks the schedule together; the first frame is
the clean conditioning image latent, given to the model at timestep 0 at every step and never updated
(``condition_frame_info {0: 0.0}``: no extra noise on it). One step, with ``v`` the guided velocity::

    x0_hat = x - sigma v                       # the clean-sample prediction (reported, not used)
    x     <- x + (sigma_next - sigma) v        # Euler on the flow ODE dx/dsigma = v = eps - x0

This is what diffusers' ``FlowMatchEulerDiscreteScheduler.step`` does with per-token timesteps, which the
reference sampler uses (its ``dt`` is 0 for the frame at t = 0).
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm import tqdm

from sana_wm.samplers.common import SamplerOutput, SamplerStep, StepCallback, as_first_frame, initial_latents
from sana_wm.samplers.conditioning import (
    Conditioning,
    Guidance,
    VelocityModel,
    guided_batch,
    guided_input,
    guided_velocity,
    require_whole_clip,
)
from sana_wm.samplers.schedules import SigmaSchedule

__all__ = ["euler_sample"]


@torch.no_grad()
def euler_sample(
    model: VelocityModel,
    cond: Conditioning,
    first_frame: Tensor,
    num_frames: int,
    schedule: SigmaSchedule,
    *,
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    keep_x0: bool = False,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> SamplerOutput:
    """Denoise ``num_frames`` latent frames after the conditioning frame ``first_frame (B, C, 1, H, W)``.

    ``schedule``: e.g. ``SigmaSchedule.shifted(60, 9.8)`` (the released config; its benchmark uses 8.0).
    ``guidance``: text CFG (released: scale 5); None or scale 1 runs the conditional branch only.
    ``generator`` seeds the starting noise (or pass ``noise (B, C, T, H, W)``). ``keep_x0`` returns each
    step's ``x0_hat``; ``callback`` gets a :class:`SamplerStep` after every step; ``progress`` shows tqdm.
    """
    first_frame = as_first_frame(first_frame)
    latents = initial_latents(first_frame, num_frames, generator, noise)
    B, T, device = latents.shape[0], num_frames, latents.device
    require_whole_clip(guidance, "euler_sample")
    batch_cond = guided_batch(cond, guidance)

    noisy = torch.ones(T, device=device)
    noisy[0] = 0.0  # the conditioning frame stays at sigma 0
    sigmas, timesteps = schedule.sigmas.to(device), schedule.timesteps.to(device)
    x0_predictions = []
    for i in tqdm(range(schedule.num_steps), disable=not progress, desc="euler"):
        sigma, step = noisy * sigmas[i], noisy * (sigmas[i + 1] - sigmas[i])  # (T,) per frame
        timestep = noisy * timesteps[i]  # (T,)
        x_in, t_in = guided_input(latents, timestep.expand(B, 1, T), guidance)
        velocity = guided_velocity(model(x_in, t_in, **batch_cond.model_kwargs()), guidance)
        x0 = latents - _frames(sigma) * velocity
        latents = latents + _frames(step) * velocity
        latents[:, :, :1] = first_frame  # bit-exact, whatever the velocity of the clean frame
        if keep_x0:
            x0_predictions.append(x0)
        if callback is not None:
            callback(SamplerStep(i, schedule.num_steps, timestep, latents, x0))
    return SamplerOutput(latents, tuple(x0_predictions))


def _frames(per_frame: Tensor) -> Tensor:
    """``(T,)`` -> ``(1, 1, T, 1, 1)`` to broadcast over ``(B, C, T, H, W)``."""
    return per_frame.view(1, 1, -1, 1, 1)
