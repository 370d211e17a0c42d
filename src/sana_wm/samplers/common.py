"""Pieces every sampler shares: the starting latents, the model's chunks, the per-step report and the output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sana_wm.model.config import SanaWMConfig
from sana_wm.model.layout import chunk_schedule

__all__ = ["SamplerOutput", "SamplerStep", "StepCallback", "draw_noise", "initial_latents", "model_chunk_lengths"]


@dataclass(frozen=True)
class SamplerStep:
    """A sampler's report after one denoising step (for callbacks and previews).

    ``timestep (T_seen,)`` are the per-frame timesteps the model was given for the frames it saw,
    ``latents`` and ``x0`` ``(B, C, T_seen, H, W)`` the state after the step and the clean-sample
    prediction ``x - sigma v`` of those frames, which start at latent frame ``start_frame``.
    """

    step: int  # 0-based; per chunk when streaming, global when chunk-causal
    num_steps: int
    timestep: Tensor
    latents: Tensor
    x0: Tensor
    start_frame: int = 0
    chunk: int | None = None  # streaming: the chunk being denoised


StepCallback = Callable[[SamplerStep], None]


@dataclass(frozen=True)
class SamplerOutput:
    """``latents (B, C, T, H, W)`` float32 clean latents (frame 0 is the conditioning latent, bit for bit);
    ``x0_predictions``: one ``(B, C, T_seen, H, W)`` per step when asked for (``keep_x0``), else empty."""

    latents: Tensor
    x0_predictions: tuple[Tensor, ...] = ()


def draw_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal float32 noise drawn on the generator's device (so a seed gives the same numbers
    wherever the model runs), then moved to ``device``."""
    noise_device = generator.device if generator is not None else device
    noise = torch.randn(shape, generator=generator, device=noise_device, dtype=torch.float32)
    if noise.device.type == "cpu" and torch.device(device).type == "cuda":
        # Through pinned memory without blocking: a copy from pageable memory may wait for the stream to run dry,
        # which would stop one host thread from queuing other streams' work meanwhile (pipeline/overlap.py).
        return noise.pin_memory().to(device, non_blocking=True)
    return noise.to(device)


def as_first_frame(first_frame: Tensor) -> Tensor:
    """The conditioning latent as ``(B, C, 1, H, W)`` float32 (``(B, C, H, W)`` is accepted too)."""
    if first_frame.ndim == 4:
        first_frame = first_frame.unsqueeze(2)
    if first_frame.ndim != 5 or first_frame.shape[2] != 1:
        raise ValueError("first_frame: expected the conditioning image latent as (B, C, 1, H, W), got "
                         f"{tuple(first_frame.shape)}")
    return first_frame.float()


def initial_latents(first_frame: Tensor, num_frames: int, generator: torch.Generator | None,
                    noise: Tensor | None = None) -> Tensor:
    """``(B, C, num_frames, H, W)`` float32 pure noise with the clean conditioning latent as frame 0.

    ``noise`` (same shape; its frame 0 is ignored) replaces the draw from ``generator``."""
    first_frame = as_first_frame(first_frame)
    B, C, _, H, W = first_frame.shape
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    shape = (B, C, num_frames, H, W)
    if noise is None:
        latents = draw_noise(shape, generator, first_frame.device)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise: expected {shape} (B, C, T, H, W), got {tuple(noise.shape)}")
    else:
        latents = noise.to(first_frame.device, torch.float32, copy=True)
    latents[:, :, :1] = first_frame
    return latents


def model_chunk_lengths(model, num_frames: int, chunk_lengths: Sequence[int] | None = None) -> list[int]:
    """The chunks a chunk-by-chunk sampler walks over ``num_frames`` latent frames: the model's own schedule,
    :func:`~sana_wm.model.layout.chunk_schedule` of ``model.config.chunk_frames`` (a model without a config,
    such as a test fake, gets the released ``SanaWMConfig.chunk_frames``). ``chunk_lengths``, if given, must
    cover the video and, for a model with a config, be that schedule: the model was trained on it."""
    config = getattr(model, "config", None)
    chunk_frames = getattr(config, "chunk_frames", None)
    expected = chunk_schedule(num_frames, chunk_frames if chunk_frames is not None else SanaWMConfig.chunk_frames)
    if chunk_lengths is None:
        return expected
    lengths = [int(n) for n in chunk_lengths]
    if any(n < 1 for n in lengths) or sum(lengths) != num_frames:
        raise ValueError(f"chunk_lengths {lengths} must be positive and sum to num_frames = {num_frames}")
    if chunk_frames is not None and lengths != expected:
        raise ValueError(f"chunk_lengths {lengths} differ from the model's chunk schedule {expected} "
                         f"(config.chunk_frames = {chunk_frames}); leave chunk_lengths unset to use it")
    return lengths
