"""Streaming few-step sampler of the distilled student (Self-Forcing style; reference §2.5, §3.2, §9.1).

Chunks are generated one after another (released: the conditioning frame plus 3 latent frames, then 3 at
a time), each against the model's cache of the chunks before it:

1. the chunk starts as pure noise (the first chunk's frame 0 is the clean conditioning latent, given at
   t = 0 at every step and never updated);
2. it is denoised with an explicit sigma list (default :data:`~sana_wm.samplers.schedules.STREAMING_TIMESTEPS`
   ``[1000, 960, 889, 727, 0]``), one ``forward_chunk`` per step against the same cache;
3. the finished chunk is run once more, clean, at t = 0; the cache that pass returns (and only it) is what
   the next chunk attends to;
4. the chunk's latents are yielded at once, so a pipeline can decode and write frames while the next chunk
   is being denoised.

The step rule. The reference inference sampler (``SelfForcingFlowEulerCamCtrl.sample_chunks``) steps with
diffusers' ``FlowMatchEulerDiscreteScheduler(shift=1.0)`` built on the explicit sigmas, deterministic
(``stochastic_sampling`` off), i.e. the Euler step ``x <- x + (sigma' - sigma) v`` — this is our default,
``step_rule="euler"``. The Self-Forcing *training* rollout instead predicts ``x0_hat = x - sigma v`` and
re-noises it with fresh noise, ``x <- (1 - sigma') x0_hat + sigma' eps``: ``step_rule="renoise"``. Both land
on ``x0_hat`` at the last step (sigma' = 0).

Randomness, drawn from ``generator`` in this order so that runs are reproducible: per chunk, its starting
noise ``(B, C, n, H, W)``; then, with ``"renoise"``, one fresh ``(B, C, n, H, W)`` draw after each step but
the last. ``noise (B, C, T, H, W)`` replaces the starting draws (slices of it are used per chunk).

Memory: only the current chunk and the cache are held; with a bounded :class:`~sana_wm.model.KVWindow`
(released: 2 chunks + sink) the cache stops growing after a few chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from sana_wm.model.cache import KVWindow, StreamCache, batch_rows
from sana_wm.samplers.common import SamplerStep, StepCallback, as_first_frame, draw_noise, model_chunk_lengths
from sana_wm.samplers.conditioning import (
    ChunkVelocityModel,
    Conditioning,
    Guidance,
    guided_batch,
    guided_input,
    guided_velocity,
)
from sana_wm.samplers.schedules import STREAMING_TIMESTEPS, SigmaSchedule

__all__ = [
    "RELEASED_KV_WINDOW",
    "STEP_RULES",
    "StreamedChunk",
    "chunk_cache",
    "denoise_chunk",
    "sample_chunk",
    "stream_sample",
    "streaming_sample",
]

RELEASED_KV_WINDOW = KVWindow(max_chunks=2, sink=True)  # --num_cached_blocks 2, sink token on
STEP_RULES = ("euler", "renoise")


@dataclass(frozen=True)
class StreamedChunk:
    """One finished chunk: ``latents (B, C, n, H, W)`` float32 clean latents of frames
    ``[start_frame, start_frame + n)`` (chunk 0 starts with the conditioning latent), and ``cache``, what the
    next chunk attends to (with the generator's state, what a resumed run needs to continue after this chunk)."""

    index: int
    start_frame: int
    latents: Tensor
    cache: StreamCache | None = None

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.latents.shape[2]


@torch.no_grad()
def stream_sample(
    model: ChunkVelocityModel,
    cond: Conditioning,
    first_frame: Tensor,
    num_frames: int,
    schedule: SigmaSchedule | None = None,
    *,
    chunk_lengths: Sequence[int] | None = None,
    kv_window: KVWindow = RELEASED_KV_WINDOW,
    step_rule: str = "euler",
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
    start_chunk: int = 0,
    cache: StreamCache | None = None,
) -> Iterator[StreamedChunk]:
    """Yield the chunks of a ``num_frames``-latent-frame video one by one (module docstring).

    ``schedule``: default ``SigmaSchedule.from_timesteps(STREAMING_TIMESTEPS)``. Chunks: the model's
    (:func:`~sana_wm.samplers.common.model_chunk_lengths`: released ``[4, 3, 3, ...]``; the released streaming
    script uses ``3k + 1`` latent frames, where both agree); ``chunk_lengths``, if given, must match them.
    ``kv_window``: an empty window setting how many earlier chunks softmax blocks keep (``KVWindow()`` keeps
    all: streaming then equals the chunk-causal model).
    ``guidance``: None (the student has CFG baked in); an active one doubles the batch and the cache, for
    every chunk or, with ``guidance.chunks = N``, for the first N chunks (the cache then keeps its
    conditional half).
    ``start_chunk``/``cache``: continue a run after its chunk ``start_chunk - 1``, from the cache that chunk
    yielded and with ``generator`` in the state it had then; the chunks that follow equal the uninterrupted
    run's.
    """
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}, got {step_rule!r}")
    if kv_window.chunks:
        raise ValueError("kv_window must be empty: it only sets the window size (max_chunks, sink)")
    schedule = schedule if schedule is not None else SigmaSchedule.from_timesteps(STREAMING_TIMESTEPS)
    first_frame = as_first_frame(first_frame)
    B, C, _, H, W = first_frame.shape
    device = first_frame.device
    lengths = model_chunk_lengths(model, num_frames, chunk_lengths)
    if noise is not None and tuple(noise.shape) != (B, C, num_frames, H, W):
        raise ValueError(f"noise: expected {(B, C, num_frames, H, W)} (B, C, T, H, W), got {tuple(noise.shape)}")
    if guidance is not None and not guidance.is_active:
        guidance = None
    if not 0 <= start_chunk <= len(lengths) or (start_chunk > 0) != (cache is not None):
        raise ValueError(f"start_chunk={start_chunk} of {len(lengths)} chunks: a run continues after a finished "
                         "chunk, with the cache that chunk yielded (and none at chunk 0)")
    if guidance is not None and guidance.chunks is not None and start_chunk > guidance.chunks:
        guidance = None  # guidance ended before this point: the cache already holds the conditional half only
    batch_cond = guided_batch(cond, guidance)

    start = sum(lengths[:start_chunk])
    bar = tqdm(total=(len(lengths) - start_chunk) * schedule.num_steps, disable=not progress, desc="streaming")
    for index, n in enumerate(lengths[start_chunk:], start=start_chunk):
        end = start + n
        if guidance is not None and guidance.chunks is not None and index >= guidance.chunks:
            # Guidance ends here: drop the unconditional half (first B rows) of the batch and the cache.
            guidance, batch_cond = None, cond
            if cache is not None:
                cache = batch_rows(cache, B, 2 * B)
        if noise is None:
            x = draw_noise((B, C, n, H, W), generator, device)
        else:
            x = noise[:, :, start:end].to(device, torch.float32, copy=True)
        chunk = sample_chunk(model, batch_cond.frames(start, end), x, schedule, index=index, start_frame=start,
                             cache=cache, kv_window=kv_window, step_rule=step_rule, guidance=guidance,
                             generator=generator, first_frame=first_frame if index == 0 else None,
                             callback=callback, on_step=bar.update)
        cache = chunk.cache
        yield chunk
        start = end
    bar.close()


@torch.no_grad()
def sample_chunk(
    model: ChunkVelocityModel,
    chunk_cond: Conditioning,
    x: Tensor,
    schedule: SigmaSchedule,
    *,
    index: int,
    start_frame: int,
    cache: StreamCache | None,
    kv_window: KVWindow = RELEASED_KV_WINDOW,
    step_rule: str = "euler",
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    first_frame: Tensor | None = None,
    callback: StepCallback | None = None,
    on_step=None,
) -> StreamedChunk:
    """One chunk of :func:`stream_sample` (steps 1-3 of the module docstring): :func:`denoise_chunk`, then
    :func:`chunk_cache`, the clean pass whose cache the next chunk attends to."""
    latents = denoise_chunk(model, chunk_cond, x, schedule, index=index, start_frame=start_frame, cache=cache,
                            kv_window=kv_window, step_rule=step_rule, guidance=guidance, generator=generator,
                            first_frame=first_frame, callback=callback, on_step=on_step)
    cache = chunk_cache(model, chunk_cond, latents, cache=cache, kv_window=kv_window, guidance=guidance)
    return StreamedChunk(index, start_frame, latents, cache)


@torch.no_grad()
def denoise_chunk(
    model: ChunkVelocityModel,
    chunk_cond: Conditioning,
    x: Tensor,
    schedule: SigmaSchedule,
    *,
    index: int,
    start_frame: int,
    cache: StreamCache | None,
    kv_window: KVWindow = RELEASED_KV_WINDOW,
    step_rule: str = "euler",
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    first_frame: Tensor | None = None,
    callback: StepCallback | None = None,
    on_step=None,
) -> Tensor:
    """Steps 1-2 of the module docstring: denoise ``x (B, C, n, H, W)``, the chunk's starting noise, against
    ``cache`` (None for chunk 0) with ``chunk_cond`` already cut to the chunk's latent frames (and paired for
    ``guidance``); returns the clean latents. ``first_frame``: chunk 0's clean conditioning latent, kept at
    sigma 0 in its frame 0. ``generator`` draws the re-noising of ``step_rule="renoise"``. Live driving
    (:mod:`sana_wm.pipeline.live`) calls this and :func:`chunk_cache` apart: only this part needs the chunk's
    camera, so the clean pass can run before the next chunk's keys are known."""
    B, _, n = x.shape[:3]
    device = x.device
    sigmas = schedule.sigmas.tolist()
    timesteps = schedule.timesteps.tolist()
    window = kv_window if cache is None else None  # the window travels inside the cache afterwards
    noisy = torch.ones(n, device=device)
    if first_frame is not None:
        x[:, :, :1] = first_frame
        noisy[0] = 0.0  # the conditioning frame stays at sigma 0

    for i in range(schedule.num_steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        timestep = noisy * timesteps[i]  # (n,)
        x_in, t_in = guided_input(x, timestep.expand(B, 1, n), guidance)
        velocity, _ = model.forward_chunk(x_in, t_in, **chunk_cond.model_kwargs(), cache=cache, kv_window=window)
        velocity = guided_velocity(velocity, guidance)
        x0 = x - _frames(noisy * sigma) * velocity
        if step_rule == "euler" or sigma_next == 0:
            x = x + _frames(noisy * (sigma_next - sigma)) * velocity
        else:
            eps = draw_noise(tuple(x.shape), generator, device)
            x = (1 - sigma_next) * x0 + sigma_next * eps
        if first_frame is not None:
            x[:, :, :1] = first_frame
        if on_step is not None:
            on_step()
        if callback is not None:
            callback(SamplerStep(i, schedule.num_steps, timestep, x, x0, start_frame=start_frame, chunk=index))
    return x


@torch.no_grad()
def chunk_cache(
    model: ChunkVelocityModel,
    chunk_cond: Conditioning,
    latents: Tensor,
    *,
    cache: StreamCache | None,
    kv_window: KVWindow = RELEASED_KV_WINDOW,
    guidance: Guidance | None = None,
) -> StreamCache:
    """Step 3 of the module docstring: the clean pass over a denoised chunk's ``latents (B, C, n, H, W)``, with
    the ``chunk_cond`` and ``cache`` it was denoised with; returns what the next chunk attends to. The next
    chunk's cache comes from this pass, not from the denoising steps; it draws no randomness."""
    B, _, n = latents.shape[:3]
    window = kv_window if cache is None else None
    x_in, t_in = guided_input(latents, torch.zeros(B, 1, n, device=latents.device), guidance)
    _, cache = model.forward_chunk(x_in, t_in, **chunk_cond.model_kwargs(), cache=cache, kv_window=window)
    return cache


def streaming_sample(*args, **kwargs) -> Tensor:
    """All chunks of :func:`stream_sample` concatenated: ``(B, C, T, H, W)`` float32."""
    return torch.cat([chunk.latents for chunk in stream_sample(*args, **kwargs)], dim=2)


def _frames(per_frame: Tensor) -> Tensor:
    return per_frame.view(1, 1, -1, 1, 1)
