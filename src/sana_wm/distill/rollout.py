"""The Self-Forcing rollout: the student generates a whole clip chunk by chunk with its own streaming cache,
as at inference, but with gradient through one denoising step per chunk (reference §9.1).

For each chunk (the model's chunk schedule; chunk 0 holds the clean conditioning frame at t = 0):

1. start from noise and run denoising steps ``0 .. exit`` of the student's timestep list against the cache of
   the chunks before; each step predicts ``x0_hat = x - sigma v`` and, before the exit step, re-noises it
   with fresh noise to the next sigma (``x <- (1 - sigma') x0_hat + sigma' eps``, the sampler's ``"renoise"``
   rule);
2. the steps before the exit step run without gradient; the exit step's ``x0_hat`` is the chunk's output and
   the only place where gradient reaches the parameters;
3. the output, detached, is run once more at t = 0 without gradient; the cache that pass returns is what the
   next chunk attends to (as :func:`sana_wm.samplers.stream_sample` does at inference).

The exit step (how many steps run) is drawn by the caller, identically on every rank, so all ranks run the
same number of forwards (FSDP gathers weights collectively).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sana_wm.model.cache import KVWindow
from sana_wm.samplers.common import as_first_frame, model_chunk_lengths
from sana_wm.samplers.conditioning import ChunkVelocityModel, Conditioning
from sana_wm.samplers.schedules import SigmaSchedule

__all__ = ["draw_exit_steps", "rollout_noise", "self_forcing_rollout"]


def draw_exit_steps(generator: torch.Generator, num_chunks: int, num_steps: int, *, same_for_all_chunks: bool
                    ) -> list[int]:
    """Exit step indices ``0 .. num_steps - 1``, one per chunk (all equal with ``same_for_all_chunks``)."""
    steps = torch.randint(0, num_steps, (num_chunks,), generator=generator)
    if same_for_all_chunks:
        steps = steps[:1].expand(num_chunks)
    return [int(s) for s in steps]


def rollout_noise(generators: Sequence[torch.Generator], num_steps: int, shape: tuple[int, int, int, int]
                  ) -> Tensor:
    """``(B, num_steps, C, T, H, W)`` float32 noise, sample ``b`` from ``generators[b]``: index 0 is each
    chunk's starting noise, index ``i > 0`` the re-noising draw of step ``i``. One generator per sample keeps
    a sample's rollout independent of its rank and batch position."""
    return torch.stack([torch.randn((num_steps, *shape), generator=g) for g in generators])


def self_forcing_rollout(model: ChunkVelocityModel, cond: Conditioning, first_frame: Tensor, num_frames: int,
                         schedule: SigmaSchedule, exit_steps: Sequence[int], noise: Tensor, *,
                         kv_window: KVWindow | None = None) -> Tensor:
    """The rollout (module docstring): ``x_gen (B, C, T, H, W)`` float32, frame 0 the conditioning latent,
    differentiable through each chunk's exit step when grad is enabled.

    ``exit_steps``: one step index per chunk; ``noise (B, num_steps, C, T, H, W)`` from :func:`rollout_noise`;
    ``kv_window``: the softmax blocks' window (an empty one keeps every chunk)."""
    first_frame = as_first_frame(first_frame)
    B, C, _, H, W = first_frame.shape
    device = first_frame.device
    lengths = model_chunk_lengths(model, num_frames)
    if len(exit_steps) != len(lengths):
        raise ValueError(f"exit_steps: one per chunk ({len(lengths)}), got {list(exit_steps)}")
    if any(not 0 <= s < schedule.num_steps for s in exit_steps):
        raise ValueError(f"exit_steps {list(exit_steps)} must lie in 0..{schedule.num_steps - 1}")
    if tuple(noise.shape) != (B, schedule.num_steps, C, num_frames, H, W):
        raise ValueError(f"noise: expected {(B, schedule.num_steps, C, num_frames, H, W)}, got {tuple(noise.shape)}")
    sigmas, timesteps = schedule.sigmas.tolist(), schedule.timesteps.tolist()
    cache, window, outputs, start = None, kv_window or KVWindow(), [], 0
    for index, (n, exit_step) in enumerate(zip(lengths, exit_steps, strict=True)):
        end = start + n
        kwargs = cond.frames(start, end).model_kwargs()
        noisy = torch.ones(n, device=device)
        if index == 0:
            noisy[0] = 0.0  # the conditioning frame stays at sigma 0
        x = noise[:, 0, :, start:end].to(device, torch.float32, copy=True)
        if index == 0:
            x[:, :, :1] = first_frame
        for i in range(exit_step + 1):
            with torch.set_grad_enabled(torch.is_grad_enabled() and i == exit_step):
                velocity, _ = model.forward_chunk(x, (noisy * timesteps[i]).expand(B, 1, n), **kwargs, cache=cache,
                                                  kv_window=window)
                x0 = x - (noisy * sigmas[i]).view(1, 1, -1, 1, 1) * velocity.float()
            if i < exit_step:
                eps = noise[:, i + 1, :, start:end].to(device, torch.float32)
                x = (1 - sigmas[i + 1]) * x0 + sigmas[i + 1] * eps
                if index == 0:
                    x[:, :, :1] = first_frame
        outputs.append(x0)
        # The next chunk attends to the clean chunk, run once at t = 0 without gradient.
        with torch.no_grad():
            _, cache = model.forward_chunk(x0.detach(), torch.zeros(B, 1, n, device=device), **kwargs, cache=cache,
                                           kv_window=window)
        window = None  # the window travels inside the cache after the first chunk
        start = end
    return torch.cat(outputs, dim=2)
