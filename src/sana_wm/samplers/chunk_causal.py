"""Chunk-causal teacher sampler: a staggered, diffusion-forcing schedule over chunks (reference §3.2,
``chunk_flow_euler``).

The video is cut into chunks (released: frames ``[0, 4), [4, 7), [7, 10), ...``; the first holds the
conditioning frame). Every chunk walks the same ``N``-step sigma schedule, but chunk ``i`` starts
``start_i = int(i * interval_k * N)`` global steps late, so earlier chunks are always at least as clean as
later ones. Semantics, as in the reference sampler:

* the run lasts ``start_{K-1} + N`` global steps;
* at global step ``g`` chunk ``i`` is *waiting* (``g < start_i``), *active* at schedule index
  ``g - start_i``, or *finished* (index ``N``: sigma 0);
* the model sees the prefix of chunks that are active or finished — finished ones at t = 0, active ones at
  their own per-frame t, waiting ones left out — in ``mode="chunk_causal"`` with those chunks' lengths;
* each active chunk takes one Euler step ``x += (sigma[k + 1] - sigma[k]) v``; finished chunks (step 0) and
  the conditioning frame (t = 0 throughout) are left as they are;
* ``interval_k`` defaults to ``1 / num_chunks`` (the reference CLI), making the last chunk start about
  ``N (K - 1) / K`` steps in, i.e. the run takes just under ``2N`` steps; ``interval_k = 0`` puts all
  chunks in lockstep; ``interval_k = 1`` denoises the chunks one after another (what streaming does).

:func:`staggered_schedule` is the schedule as a table, printable and testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from sana_wm.samplers.common import (
    SamplerOutput,
    SamplerStep,
    StepCallback,
    as_first_frame,
    initial_latents,
    model_chunk_lengths,
)
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

__all__ = ["WAITING", "chunk_causal_sample", "staggered_schedule"]

WAITING = -1  # table entry of a chunk that has not started yet


def staggered_schedule(num_steps: int, num_chunks: int, interval_k: float | None = None) -> Tensor:
    """``(global_steps, num_chunks)`` int64 table of the sigma index each chunk is at, per global step.

    Entries: :data:`WAITING` (not started: left out of the forward), ``0 .. num_steps - 1`` (active:
    denoised from ``sigmas[k]`` to ``sigmas[k + 1]`` this step), ``num_steps`` (finished: clean, seen at
    t = 0). Chunk ``i`` starts at ``int(i * interval_k * num_steps)``; ``interval_k`` defaults to
    ``1 / num_chunks``.

    >>> staggered_schedule(3, 2, interval_k=0.5)
    tensor([[ 0, -1],
            [ 1,  0],
            [ 2,  1],
            [ 3,  2]])
    """
    if num_steps < 1 or num_chunks < 1:
        raise ValueError(f"staggered_schedule: num_steps and num_chunks must be >= 1, got {num_steps}, {num_chunks}")
    if interval_k is None:
        interval_k = 1.0 / num_chunks
    if interval_k < 0:
        raise ValueError(f"interval_k must be >= 0 (0 = all chunks in lockstep), got {interval_k}")
    # Same float expression as the reference, so the starts agree where i * interval_k * N rounds down.
    starts = torch.tensor([int(i * float(interval_k) * num_steps) for i in range(num_chunks)])
    global_step = torch.arange(int(starts[-1]) + num_steps)[:, None]
    index = (global_step - starts[None]).clamp(max=num_steps)
    return torch.where(index < 0, torch.full_like(index, WAITING), index)


@torch.no_grad()
def chunk_causal_sample(
    model: VelocityModel,
    cond: Conditioning,
    first_frame: Tensor,
    num_frames: int,
    schedule: SigmaSchedule,
    *,
    chunk_lengths: Sequence[int] | None = None,
    interval_k: float | None = None,
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    keep_x0: bool = False,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> SamplerOutput:
    """Denoise ``num_frames`` latent frames after ``first_frame (B, C, 1, H, W)`` with the staggered
    chunk schedule (module docstring). The chunks are the model's
    (:func:`~sana_wm.samplers.common.model_chunk_lengths`: released ``[4, 3, 3, ...]``); ``chunk_lengths``, if
    given, must match them. Released settings: ``SigmaSchedule.shifted(60, 9.8)``, guidance scale 5. Other
    arguments as :func:`~sana_wm.samplers.euler.euler_sample`; ``x0_predictions`` and callbacks cover the
    frames the model saw that step (a prefix of the video).
    """
    first_frame = as_first_frame(first_frame)
    latents = initial_latents(first_frame, num_frames, generator, noise)
    B, device = latents.shape[0], latents.device
    lengths = model_chunk_lengths(model, num_frames, chunk_lengths)
    ends = torch.tensor(lengths).cumsum(0).tolist()
    chunk_of_frame = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device)
    table = staggered_schedule(schedule.num_steps, len(lengths), interval_k).to(device)
    require_whole_clip(guidance, "chunk_causal_sample")
    batch_cond = guided_batch(cond, guidance)

    N = schedule.num_steps
    sigmas, timesteps = schedule.sigmas.to(device), schedule.timesteps.to(device)  # (N + 1,), last = 0
    noisy = torch.ones(num_frames, device=device)
    noisy[0] = 0.0  # the conditioning frame stays at sigma 0
    x0_predictions = []
    for g in tqdm(range(table.shape[0]), disable=not progress, desc="chunk-causal"):
        index = table[g]  # (K,)
        seen = int((index != WAITING).sum())  # waiting chunks come last: the seen chunks are a prefix
        end = ends[seen - 1]
        k = index[chunk_of_frame[:end]]  # (end,) schedule index per seen frame
        sigma = noisy[:end] * sigmas[k]
        step = noisy[:end] * (sigmas[(k + 1).clamp(max=N)] - sigmas[k])  # 0 for finished chunks
        timestep = noisy[:end] * timesteps[k]
        x_in, t_in = guided_input(latents[:, :, :end], timestep.expand(B, 1, end), guidance)
        velocity = model(x_in, t_in, **batch_cond.frames(0, end).model_kwargs(), mode="chunk_causal",
                         chunk_lengths=lengths[:seen])
        velocity = guided_velocity(velocity, guidance)
        seen_latents = latents[:, :, :end]
        x0 = seen_latents - sigma.view(1, 1, -1, 1, 1) * velocity
        latents = latents.clone()
        latents[:, :, :end] = seen_latents + step.view(1, 1, -1, 1, 1) * velocity
        latents[:, :, :1] = first_frame
        if keep_x0:
            x0_predictions.append(x0)
        if callback is not None:
            callback(SamplerStep(g, table.shape[0], timestep, latents[:, :, :end], x0))
    return SamplerOutput(latents, tuple(x0_predictions))
