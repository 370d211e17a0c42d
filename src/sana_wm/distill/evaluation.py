"""How close a few-step sampler gets to the teacher's many-step samples, on latents.

The reference is the teacher's ODE solved finely (many Euler steps, every chunk in lockstep under the
chunk-causal mask: the trajectories the ODE stage regresses). Each candidate (the teacher with few steps, a
student streaming with its own steps) starts from the same noise with the same first frame and camera, and is
scored on the noisy frames (frame 0 is the given image) by

* the per-frame PSNR of its latents against the reference's (``sana_wm.eval.metrics.psnr_frames``, the data
  range the reference latents' peak-to-peak), averaged over frames and clips;
* the Fréchet distance between Gaussians fitted to the per-token latent vectors (``C``-dimensional, every
  token of every noisy frame) of the candidate and of a reference set (the teacher's samples, or the data).

On a few small clips both numbers move with the clips and noise drawn, so :func:`paired_bootstrap` gives their
spread: the samples (one per clip and noise draw) are resampled with replacement, the same indices for every
candidate and the reference, so differences between candidates keep their pairing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sana_wm.eval.metrics import psnr_frames
from sana_wm.model.cache import KVWindow
from sana_wm.samplers import Conditioning, SigmaSchedule, chunk_causal_sample, streaming_sample

__all__ = ["frechet_distance", "latent_psnr", "paired_bootstrap", "student_samples", "teacher_samples"]


@torch.no_grad()
def teacher_samples(teacher, cond: Conditioning, first_frame: Tensor, num_frames: int, schedule: SigmaSchedule,
                    noise: Tensor) -> Tensor:
    """The teacher's ODE in lockstep over ``schedule`` from ``noise (B, C, T, H, W)`` (frame 0 replaced by the
    first frame): ``(B, C, T, H, W)``."""
    return chunk_causal_sample(teacher, cond, first_frame, num_frames, schedule, interval_k=0.0, noise=noise).latents


@torch.no_grad()
def student_samples(student, cond: Conditioning, first_frame: Tensor, num_frames: int, schedule: SigmaSchedule,
                    noise: Tensor, kv_window: KVWindow | None = None) -> Tensor:
    """The student streaming chunk by chunk with its own ``schedule`` (deterministic Euler steps, as
    `sana-wm generate` runs it) from ``noise``: ``(B, C, T, H, W)``."""
    return streaming_sample(student, cond, first_frame, num_frames, schedule, kv_window=kv_window or KVWindow(),
                            noise=noise)


def _frames(latents: Tensor) -> np.ndarray:
    """``(B, C, T, H, W)`` -> the noisy frames as ``(B * (T - 1), H, W, C)`` float64."""
    return latents[:, :, 1:].permute(0, 2, 3, 4, 1).reshape(-1, *latents.shape[3:], latents.shape[1]).double().numpy()


def latent_psnr(latents: Tensor, reference: Tensor) -> float:
    """Mean per-frame PSNR (dB) of the noisy frames of ``latents`` against ``reference``, both ``(B, C, T, H,
    W)``; the data range is the reference's peak-to-peak."""
    data_range = float(reference.max() - reference.min())
    return float(np.mean(psnr_frames(_frames(latents), _frames(reference), data_range=data_range)))


def frechet_distance(latents: Tensor, reference: Tensor) -> float:
    """Fréchet distance between Gaussian fits of the per-token latent vectors of the noisy frames of ``latents``
    and ``reference`` (``(B, C, T, H, W)``, any batch sizes): ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2
    S_b S_a^1/2)^1/2)``, in float64."""
    a = torch.from_numpy(_frames(latents)).reshape(-1, latents.shape[1])
    b = torch.from_numpy(_frames(reference)).reshape(-1, reference.shape[1])
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    return float((mu_a - mu_b).square().sum() + torch.trace(cov_a + cov_b - 2 * cross))


def _sqrtm_psd(m: Tensor) -> Tensor:
    """The square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def paired_bootstrap(candidates: dict[str, Tensor], reference: Tensor, metric: Callable[[Tensor, Tensor], float], *,
                     rounds: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """``metric(candidate, reference)`` over ``rounds`` bootstrap resamples of the batch dimension: ``{name:
    (rounds,)}``. Every tensor is ``(N, C, T, H, W)`` with sample ``i`` of each made from the same clip and noise;
    each round draws ``N`` indices with replacement and applies them to every candidate and to the reference, so
    ``values[a] - values[b]`` is the bootstrap distribution of the difference between two candidates."""
    n = reference.shape[0]
    for name, x in candidates.items():
        if x.shape[0] != n:
            raise ValueError(f"paired_bootstrap: {name!r} has {x.shape[0]} samples, the reference {n}")
    generator = np.random.default_rng(seed)
    out = {name: np.empty(rounds) for name in candidates}
    for r in range(rounds):
        index = torch.from_numpy(generator.integers(0, n, size=n))
        ref = reference[index]
        for name, x in candidates.items():
            out[name][r] = metric(x[index], ref)
    return out
