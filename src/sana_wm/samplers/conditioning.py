"""What a sampler hands the model besides latents and timesteps, and how guidance pairs it up.

The samplers only rely on the transformer's public call signatures (:class:`VelocityModel`,
:class:`ChunkVelocityModel`), so tests can drive them with small fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ChunkVelocityModel",
    "Conditioning",
    "Guidance",
    "VelocityModel",
    "guided_batch",
    "guided_input",
    "guided_velocity",
]


class VelocityModel(Protocol):
    """``SanaWMTransformer.__call__``: latents ``(B, C, T, H, W)`` and per-frame timesteps ``(B, 1, T)`` in
    ``[0, 1000]`` -> velocity ``eps - x0`` of the same shape."""

    def __call__(self, latents: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor | None = None,
                 camera_vector: Tensor | None = None, plucker: Tensor | None = None,
                 mode: str = "bidirectional", chunk_lengths=None) -> Tensor: ...


class ChunkVelocityModel(Protocol):
    """``SanaWMTransformer.forward_chunk``: one chunk against the cache of earlier chunks -> (velocity, cache)."""

    def forward_chunk(self, latents: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor | None = None,
                      camera_vector: Tensor | None = None, plucker: Tensor | None = None,
                      cache: Any = None, kv_window: Any = None) -> tuple[Tensor, Any]: ...


@dataclass(frozen=True)
class Conditioning:
    """The prompt and camera of a batch of videos, in the layouts of the transformer's forward.

    text: ``(B, L, C_text)`` (or ``(B, 1, L, C_text)``) text-encoder states; text_mask ``(B, L)``, nonzero =
    real token, None = all real. camera_vector ``(B, T, 20)`` and plucker ``(B, P, T, H, W)`` cover the
    whole video (poses relative to its first frame); None skips that camera branch.
    """

    text: Tensor
    text_mask: Tensor | None = None
    camera_vector: Tensor | None = None
    plucker: Tensor | None = None

    def frames(self, start: int, end: int) -> Conditioning:
        """The same conditioning restricted to latent frames ``[start, end)`` (text is per video)."""
        return Conditioning(
            self.text,
            self.text_mask,
            None if self.camera_vector is None else self.camera_vector[:, start:end],
            None if self.plucker is None else self.plucker[:, :, start:end],
        )

    def model_kwargs(self) -> dict[str, Tensor | None]:
        return dict(text=self.text, text_mask=self.text_mask, camera_vector=self.camera_vector,
                    plucker=self.plucker)


@dataclass(frozen=True)
class Guidance:
    """Text-only classifier-free guidance: ``v = v_uncond + scale (v_cond - v_uncond)``.

    The unconditional branch swaps the prompt for ``negative_text`` (``(B or 1, L', C_text)``; the reference
    CLI's ``--negative_prompt`` defaults to the empty prompt) and keeps the camera unchanged. Both branches run
    in one batched forward, unconditional first. ``scale == 1`` skips the unconditional branch altogether, as
    the reference does (the streaming student has its guidance baked in and runs at 1).
    """

    scale: float
    negative_text: Tensor | None = None
    negative_text_mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.is_active and self.negative_text is None:
            raise ValueError(f"guidance scale {self.scale} needs negative_text (the unconditional prompt's "
                             "text-encoder states); pass scale=1 to sample without guidance")

    @property
    def is_active(self) -> bool:
        return self.scale != 1.0


def guided_batch(cond: Conditioning, guidance: Guidance | None) -> Conditioning:
    """The conditioning of the model's batch: ``cond`` itself, or ``[uncond; cond]`` (2B) when guiding.
    Prompts of different lengths are right-padded with masked-out zeros; camera tensors are duplicated."""
    if guidance is None or not guidance.is_active:
        return cond
    text, neg = _as_3d(cond.text), _as_3d(guidance.negative_text)
    B, L = text.shape[:2]
    mask = _mask(cond.text_mask, B, L, text.device)
    neg_mask = _mask(guidance.negative_text_mask, neg.shape[0], neg.shape[1], text.device)
    if neg.shape[0] == 1 and B > 1:
        neg, neg_mask = neg.expand(B, -1, -1), neg_mask.expand(B, -1)
    if neg.shape[0] != B or neg.shape[-1] != text.shape[-1]:
        raise ValueError(f"negative_text {tuple(guidance.negative_text.shape)} does not match the prompt's "
                         f"batch {B} and channels {text.shape[-1]}")
    length = max(L, neg.shape[1])
    text, mask = _pad(text, mask, length)
    neg, neg_mask = _pad(neg.to(text.dtype), neg_mask, length)

    def twice(x: Tensor | None) -> Tensor | None:
        return None if x is None else torch.cat([x, x])

    return Conditioning(torch.cat([neg, text]), torch.cat([neg_mask, mask]), twice(cond.camera_vector),
                        twice(cond.plucker))


def guided_input(latents: Tensor, timestep: Tensor, guidance: Guidance | None) -> tuple[Tensor, Tensor]:
    """Latents and timesteps of the model's batch (duplicated when guiding, see :func:`guided_batch`)."""
    if guidance is None or not guidance.is_active:
        return latents, timestep
    return torch.cat([latents, latents]), torch.cat([timestep, timestep])


def guided_velocity(velocity: Tensor, guidance: Guidance | None) -> Tensor:
    """The model's batched output -> the guided velocity ``v_u + w (v_c - v_u)``, in float32."""
    velocity = velocity.float()
    if guidance is None or not guidance.is_active:
        return velocity
    v_uncond, v_cond = velocity.chunk(2)
    return v_uncond + guidance.scale * (v_cond - v_uncond)


def _as_3d(text: Tensor) -> Tensor:
    return text[:, 0] if text.ndim == 4 else text


def _mask(mask: Tensor | None, B: int, L: int, device) -> Tensor:
    if mask is None:
        return torch.ones(B, L, dtype=torch.bool, device=device)
    return mask.reshape(mask.shape[0], -1).expand(B, -1) != 0


def _pad(text: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    extra = length - text.shape[1]
    return F.pad(text, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)
