"""The distillation losses and the random draws they need (reference §9.1), as plain tensor functions.

Conventions as everywhere (reference §3.2): ``x_sigma = (1 - sigma) x0 + sigma eps``, the model predicts the
velocity ``v = eps - x0`` and ``x0_hat = x_sigma - sigma v``; timesteps are ``t = 1000 sigma``. Latents are
``(B, C, T, H, W)``; latent frame 0 is the clean conditioning frame everywhere (sigma 0), so every loss below
is taken over the noisy frames only (``noisy (B, T)`` bool, frame 0 False).

* ODE regression: each chunk of the teacher's trajectory is shown to the student at one of the stored
  snapshots (:func:`ode_regression_inputs`); the loss is the MSE of the student's ``x0_hat`` against the
  trajectory's end (:func:`x0_loss`).
* Self-Forcing + DMD: the generator's rollout ``x_gen`` is re-noised at a score timestep
  (:func:`score_timesteps`, one per sample); the critic ("fake score") and the frozen real score predict its
  clean latent; the real score is guided (:func:`guided_x0`), the DMD gradient is
  :func:`dmd_gradient` and the generator's loss :func:`generator_loss`; the critic learns flow matching on the
  same re-noised samples (:func:`critic_loss`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sana_wm.samplers.schedules import NUM_TRAIN_TIMESTEPS, shift_sigmas
from sana_wm.train.objective import flow_loss

__all__ = [
    "critic_loss",
    "dmd_gradient",
    "frame_sigmas",
    "generator_loss",
    "guided_x0",
    "noisy_frames",
    "ode_regression_inputs",
    "score_timesteps",
    "x0_from_velocity",
    "x0_loss",
]


def noisy_frames(batch: int, frames: int, device=None) -> Tensor:
    """``(B, T)`` bool: every latent frame but the clean conditioning frame 0."""
    noisy = torch.ones(batch, frames, dtype=torch.bool, device=device)
    noisy[:, 0] = False
    return noisy


def score_timesteps(generator: torch.Generator, *, shift: float = 10.0, min_timestep: float = 20.0,
                    max_timestep: float = 980.0) -> Tensor:
    """One score timestep ``()`` float32: uniform in ``[0, 1000)``, mapped by the flow shift ``s`` (as a sigma)
    and clamped to ``[min_timestep, max_timestep]``; floored to an integer, because the model floors the
    timesteps it reads and the noise level must be the one it is told."""
    u = torch.rand((), generator=generator, dtype=torch.float64)
    t = NUM_TRAIN_TIMESTEPS * shift_sigmas(u, shift)
    return t.clamp(min_timestep, max_timestep).floor().float()


def frame_sigmas(timestep: Tensor, frames: int) -> Tensor:
    """``timestep (B,)`` -> per-frame sigmas ``(B, T)`` with frame 0 at 0 (the clean conditioning frame)."""
    sigma = (timestep.float() / NUM_TRAIN_TIMESTEPS)[:, None].expand(-1, frames).clone()
    sigma[:, 0] = 0.0
    return sigma


def x0_from_velocity(x_t: Tensor, sigma: Tensor, velocity: Tensor) -> Tensor:
    """``x0_hat = x_sigma - sigma v`` with ``sigma (B, T)`` per frame; float32."""
    return x_t.float() - sigma[:, None, :, None, None].float() * velocity.float()


def guided_x0(x0_cond: Tensor, x0_uncond: Tensor, scale: float) -> Tensor:
    """The real score's guided prediction ``x0_c + scale (x0_c - x0_u)`` (released: scale 3.0, i.e. CFG 4 in
    the usual ``x0_u + w (x0_c - x0_u)`` form)."""
    return x0_cond + scale * (x0_cond - x0_uncond)


def dmd_gradient(x_gen: Tensor, x0_fake: Tensor, x0_real: Tensor) -> Tensor:
    """The DMD gradient ``(x0_fake - x0_real) / mean|x_gen - x0_real|``, the mean per sample over all its
    elements (frame 0 contributes 0 there: both scores return the clean frame unchanged). A sample whose
    normaliser is 0 gets gradient 0 rather than NaN. No gradient flows through it."""
    with torch.no_grad():
        dims = tuple(range(1, x_gen.ndim))
        normaliser = (x_gen.float() - x0_real.float()).abs().mean(dim=dims, keepdim=True)
        grad = (x0_fake.float() - x0_real.float()) / normaliser
        return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def generator_loss(x_gen: Tensor, grad: Tensor, noisy: Tensor) -> Tensor:
    """``0.5 MSE(x_gen, stopgrad(x_gen - grad))`` over the noisy frames (each sample averaged over its own
    noisy frames, then the batch): its gradient with respect to ``x_gen`` is ``grad`` over the element count,
    so the generator moves its samples against the DMD gradient."""
    target = (x_gen - grad).detach()
    return 0.5 * flow_loss(x_gen, target, noisy)[0]


def critic_loss(velocity: Tensor, noise: Tensor, x_gen: Tensor, noisy: Tensor) -> Tensor:
    """The critic's flow-matching loss on re-noised generator samples: MSE of its velocity against
    ``noise - x_gen`` over the noisy frames (``x_gen`` carries no gradient)."""
    return flow_loss(velocity, noise - x_gen.detach(), noisy)[0]


def x0_loss(x0_pred: Tensor, x0_target: Tensor, noisy: Tensor) -> Tensor:
    """ODE regression: MSE of the student's clean-latent prediction against the trajectory's end over the noisy
    frames."""
    return flow_loss(x0_pred, x0_target, noisy)[0]


def ode_regression_inputs(snapshots: Tensor, timesteps: Tensor, chunk_lengths: list[int],
                          generators: list[torch.Generator]) -> tuple[Tensor, Tensor]:
    """The student's input for ODE regression: ``snapshots (B, S, C, T, H, W)`` a trajectory's states at the
    ``S`` student timesteps ``timesteps (S,)`` (the last one 0: the clean end). Each chunk of each sample is
    taken from one random noisy snapshot (index ``0 .. S-2``, drawn from that sample's generator); frame 0 is
    the clean end's at t = 0. Returns ``x (B, C, T, H, W)`` and per-frame timesteps ``(B, T)``."""
    B, S, C, T, H, W = snapshots.shape
    if sum(chunk_lengths) != T:
        raise ValueError(f"chunk lengths {chunk_lengths} do not cover the {T} latent frames")
    index = torch.stack([torch.randint(0, S - 1, (len(chunk_lengths),), generator=g) for g in generators])
    frame_index = torch.repeat_interleave(index, torch.tensor(chunk_lengths), dim=1)  # (B, T)
    frame_index[:, 0] = S - 1  # the conditioning frame is clean
    gather = frame_index.to(snapshots.device)[:, None, None, :, None, None].expand(B, 1, C, T, H, W)
    x = snapshots.gather(1, gather)[:, 0]
    return x, timesteps.to(snapshots.device).float()[frame_index.to(snapshots.device)]
