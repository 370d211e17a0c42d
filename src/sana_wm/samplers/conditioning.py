"""What a sampler hands the model besides latents and timesteps, and how guidance pairs it up.

The samplers only rely on the transformer's public call signatures (:class:`VelocityModel`,
:class:`ChunkVelocityModel`), so tests can drive them with small fakes. A model wrapper that needs more than
the prompt and camera (the bundled model) gets it as ``extra=`` on every call, from
:attr:`Conditioning.extra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.errors import InputError

__all__ = [
    "ChunkVelocityModel",
    "Conditioning",
    "ExtraConditioning",
    "Guidance",
    "VelocityModel",
    "guided_batch",
    "guided_chunk_count",
    "guided_input",
    "guided_velocity",
]


class VelocityModel(Protocol):
    """``SanaWMTransformer.__call__``: latents ``(B, C, T, H, W)`` and per-frame timesteps ``(B, 1, T)`` in
    ``[0, 1000]`` -> velocity ``eps - x0`` of the same shape."""

    def __call__(self, latents: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor | None = None,
                 camera_vector: Tensor | None = None, plucker: Tensor | None = None,
                 mode: str = "bidirectional", chunk_lengths=None) -> Tensor: ...


class ExtraConditioning(Protocol):
    """Model-specific conditioning that the samplers pass through untouched, as ``extra=`` of every model
    call (the bundled model's :class:`sana_wm.bundled.WarpPrior`, for one). It covers the whole video; the
    samplers only cut it to latent frames and pair it for guidance."""

    def frames(self, start: int, end: int) -> ExtraConditioning:
        """The same conditioning restricted to latent frames ``[start, end)``."""
        ...

    def guided_with(self, negative: ExtraConditioning) -> ExtraConditioning:
        """The conditioning of the guided batch ``[uncond; cond]``, ``negative`` (batch ``B`` or 1) first."""
        ...


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
    whole video (poses relative to its first frame); None skips that camera branch. ``extra``: what a model
    wrapper needs besides (:class:`ExtraConditioning`, passed to the model as ``extra=``); None for the
    transformer itself.
    """

    text: Tensor
    text_mask: Tensor | None = None
    camera_vector: Tensor | None = None
    plucker: Tensor | None = None
    extra: ExtraConditioning | None = None

    def frames(self, start: int, end: int) -> Conditioning:
        """The same conditioning restricted to latent frames ``[start, end)`` (text is per video)."""
        return Conditioning(
            self.text,
            self.text_mask,
            None if self.camera_vector is None else self.camera_vector[:, start:end],
            None if self.plucker is None else self.plucker[:, :, start:end],
            None if self.extra is None else self.extra.frames(start, end),
        )

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = dict(text=self.text, text_mask=self.text_mask, camera_vector=self.camera_vector,
                      plucker=self.plucker)
        if self.extra is not None:  # only model wrappers take it
            kwargs["extra"] = self.extra
        return kwargs


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance: ``v = v_uncond + scale (v_cond - v_uncond)``.

    The unconditional branch swaps the prompt for ``negative_text`` (``(B or 1, L', C_text)``; the reference
    CLI's ``--negative_prompt`` defaults to the empty prompt) and, when ``negative_camera`` is given, the camera
    for that one (a :class:`Conditioning` whose ``camera_vector``/``plucker`` cover the whole video, batch
    ``B`` or 1; typically a camera that stands still, so guidance pushes the video along the requested path:
    camera guidance). Without ``negative_text`` the unconditional branch keeps the prompt, without
    ``negative_camera`` it keeps the camera (the reference's text-only guidance). Both branches run in one
    batched forward, unconditional first. ``scale == 1`` skips the unconditional branch altogether, as the
    reference does (the streaming student has its guidance baked in and runs at 1).

    ``chunks`` (streaming only; None = every chunk) guides only the first ``chunks`` chunks of a streamed
    video; later chunks run the conditional branch alone, against the conditional half of the cache. Camera
    guidance moves a video further along its path but compounds drift over a long rollout, while the first
    chunk is held in place by the real image.
    """

    scale: float
    negative_text: Tensor | None = None
    negative_text_mask: Tensor | None = None
    negative_camera: Conditioning | None = None
    chunks: int | None = None

    def __post_init__(self) -> None:
        if self.chunks is not None:
            guided_chunk_count(self.chunks, "guidance chunks")
        if self.is_active and self.negative_text is None and self.negative_camera is None:
            raise ValueError(f"guidance scale {self.scale} needs negative_text (the unconditional prompt's "
                             "text-encoder states) or negative_camera; pass scale=1 to sample without guidance")

    @property
    def is_active(self) -> bool:
        return self.scale != 1.0


def guided_batch(cond: Conditioning, guidance: Guidance | None) -> Conditioning:
    """The conditioning of the model's batch: ``cond`` itself, or ``[uncond; cond]`` (2B) when guiding.
    Prompts of different lengths are right-padded with masked-out zeros; the camera is duplicated, or paired
    with ``guidance.negative_camera`` (whose own text is ignored)."""
    if guidance is None or not guidance.is_active:
        return cond
    neg_cam = _negative_camera(cond, guidance.negative_camera)
    if guidance.negative_text is None:
        return Conditioning(torch.cat([cond.text, cond.text]),
                            None if cond.text_mask is None else torch.cat([cond.text_mask, cond.text_mask]),
                            *neg_cam)
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

    return Conditioning(torch.cat([neg, text]), torch.cat([neg_mask, mask]), *neg_cam)


def _negative_camera(cond: Conditioning, negative: Conditioning | None) -> list[Any]:
    """``[camera_vector, plucker, extra]`` of the guided batch ``[uncond; cond]``: the negative camera's (broadcast
    to the batch) for the unconditional half, or the camera's own twice when there is none."""
    B = cond.text.shape[0]
    out = []
    for name in ("camera_vector", "plucker", "extra"):
        x = getattr(cond, name)
        neg = x if negative is None else getattr(negative, name)
        if (x is None) != (neg is None):
            raise ValueError(f"negative_camera.{name} must be given exactly when the camera's {name} is "
                             f"({'missing' if neg is None else 'unexpected'})")
        if x is None:
            out.append(None)
            continue
        if name == "extra":
            out.append(x.guided_with(neg))
            continue
        if neg.shape[0] == 1 and B > 1:
            neg = neg.expand(B, *neg.shape[1:])
        if tuple(neg.shape) != tuple(x.shape):
            raise ValueError(f"negative_camera.{name} {tuple(neg.shape)} does not match the camera's "
                             f"{tuple(x.shape)}")
        out.append(torch.cat([neg.to(x), x]))
    return out


def guided_chunk_count(value, what: str) -> int:
    """``value`` (a count of guided chunks, as :attr:`Guidance.chunks`) as an int >= 1, or a ValueError
    naming ``what``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 1
    if not ok:
        raise InputError(f"{what} must be a whole number >= 1 (or None: every chunk), got {value!r}")
    return int(value)


def require_whole_clip(guidance: Guidance | None, sampler: str) -> None:
    """Samplers that denoise the whole clip together cannot stop guiding after some chunks."""
    if guidance is not None and guidance.is_active and guidance.chunks is not None:
        raise ValueError(f"{sampler}: guidance.chunks = {guidance.chunks} limits guidance to the first chunks of a "
                         "streamed video (stream_sample); this sampler guides every frame, so leave it None")


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
