"""The bundled model's parameterisation: a wrapper that turns the transformer into a warp-prior x0 predictor.

A small model trained on a CPU learns the look of its world long before it learns to move pixels by the right
amount, and most of its codec's channels are fine detail that cannot be known (a velocity network leaks its
noise into them as blocky texture). So the bundled network predicts the clean latents ``x0`` *minus a warp
prior*: the first frame warped along the camera path with an assumed depth (:mod:`sana_wm.bundled.warp`).
Rotation and the coarse parallax of a walk come from geometry; the network corrects what the warp gets wrong.

:class:`WarpPriorModel` wraps a plain :class:`~sana_wm.model.SanaWMTransformer` and returns the velocity the
prediction implies, ``v = (x_t - x0) / sigma`` with ``x0 = prior + network output``, so it satisfies the
samplers' velocity-model contract (:mod:`sana_wm.samplers.conditioning`) and the trainer's flow loss. The
prior travels as the samplers' opaque extra conditioning (:class:`WarpPrior`), sliced per chunk and paired
for guidance without the samplers knowing what it holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sana_wm.bundled.warp import DEFAULT_EYE_HEIGHT, DEFAULT_FAR_DEPTH, warp_prior_latents
from sana_wm.model.config import UCPE_RENORM_DIFFUSERS, SanaWMConfig
from sana_wm.model.transformer import frame_timesteps

__all__ = ["SYNTH_CONFIG", "WRAPPER_KIND", "WarpPrior", "WarpPriorModel", "WarpPriorSettings", "wrap_transformer"]

WRAPPER_KIND = "warp_prior_x0"  # the ``kind`` of a model folder's ``sana_wm.wrapper`` section

# The bundled transformer (docs/models/sana-wm-synth.md): the released block pattern (GDN with a softmax
# block every 4th) and both camera branches at width 192, on the 128-channel latents of the patch codec
# (16 x 16 pixels x 8 frames per latent cell: 8 x 8 tokens per 128 x 128 frame). Text-free, so the caption
# width is nominal. It was trained with the UCPE renorm in every block kind (the diffusers port's setting).
SYNTH_CONFIG = SanaWMConfig(depth=8, hidden_size=192, num_heads=3, head_dim=64, in_channels=128,
                            caption_channels=64, caption_length=8, mlp_ratio=2.5,
                            ucpe_rms_renorm=UCPE_RENORM_DIFFUSERS)


@dataclass(frozen=True)
class WarpPriorSettings:
    """The parameterisation's constants (a model folder's ``sana_wm.wrapper`` section, minus ``kind``)."""

    # x0 -> v divides by sigma = t / 1000, floored here: at sigma 0 (the clean conditioning frame) the
    # velocity is meaningless and only has to stay finite.
    min_sigma: float = 0.05
    # The depth guess of the prior (sana_wm.bundled.warp.box_depth), in metres.
    eye_height: float = DEFAULT_EYE_HEIGHT
    far_depth: float = DEFAULT_FAR_DEPTH

    def __post_init__(self) -> None:
        if not 0 < self.min_sigma <= 1:
            raise ValueError(f"wrapper.min_sigma must be in (0, 1], got {self.min_sigma}")
        if not (self.eye_height > 0 and self.far_depth > 0):
            raise ValueError(f"wrapper.eye_height and wrapper.far_depth must be positive, got {self.eye_height} "
                             f"and {self.far_depth}")

    def to_dict(self) -> dict:
        return {"kind": WRAPPER_KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "wrapper") -> WarpPriorSettings:
        """From a ``{kind: warp_prior_x0, ...fields}`` mapping; ``where`` names it in errors."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping with kind: {WRAPPER_KIND}, got {d!r}")
        fields = dict(d)
        kind = fields.pop("kind", None)
        if kind != WRAPPER_KIND:
            raise ValueError(f"{where}.kind: the only model wrapper is {WRAPPER_KIND!r} (the bundled model's), "
                             f"got {kind!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: kind, {', '.join(sorted(known))}")
        return cls(**{k: float(v) for k, v in fields.items()})


@dataclass(frozen=True)
class WarpPrior:
    """The prior latents ``(B, C, T, H, W)`` of a batch of videos: the samplers' extra conditioning."""

    latents: Tensor

    def frames(self, start: int, end: int) -> WarpPrior:
        return WarpPrior(self.latents[:, :, start:end])

    def guided_with(self, negative: WarpPrior) -> WarpPrior:
        """The prior of the guided batch ``[uncond; cond]``: ``negative``'s (batch ``B`` or 1) first."""
        neg = negative.latents
        B = self.latents.shape[0]
        if neg.shape[0] == 1 and B > 1:
            neg = neg.expand(B, *neg.shape[1:])
        if tuple(neg.shape) != tuple(self.latents.shape):
            raise ValueError(f"the negative's warp prior {tuple(neg.shape)} does not match the prior "
                             f"{tuple(self.latents.shape)}")
        return WarpPrior(torch.cat([neg.to(self.latents), self.latents]))

    def to(self, device) -> WarpPrior:
        return WarpPrior(self.latents.to(device))


class WarpPriorModel(nn.Module):
    """``transformer`` (anything called like :class:`~sana_wm.model.SanaWMTransformer`, e.g. its DDP wrapper)
    read as a warp-prior x0 predictor; returns velocities (module docstring). ``extra`` is the
    :class:`WarpPrior` of the latents given, required."""

    def __init__(self, transformer: nn.Module, settings: WarpPriorSettings = WarpPriorSettings()) -> None:
        super().__init__()
        self.transformer = transformer
        self.settings = settings

    @property
    def config(self) -> SanaWMConfig:
        return _unwrapped(self.transformer).config

    @property
    def dtype(self) -> torch.dtype:
        return _unwrapped(self.transformer).dtype

    def forward(self, latents: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor | None = None,
                camera_vector: Tensor | None = None, plucker: Tensor | None = None, mode: str = "bidirectional",
                chunk_lengths=None, extra: WarpPrior | None = None, camera_mask: Tensor | None = None) -> Tensor:
        prior = self._check_prior(extra, latents)
        out = self.transformer(latents, timestep, text, text_mask, camera_vector, plucker, mode, chunk_lengths,
                               camera_mask=camera_mask)
        return self._velocity(out, prior, latents, timestep)

    def forward_chunk(self, latents: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor | None = None,
                      camera_vector: Tensor | None = None, plucker: Tensor | None = None, cache: Any = None,
                      kv_window: Any = None, extra: WarpPrior | None = None,
                      camera_mask: Tensor | None = None) -> tuple[Tensor, Any]:
        """Streaming: ``extra`` is the chunk's slice of the video's prior."""
        prior = self._check_prior(extra, latents)
        out, cache = self.transformer.forward_chunk(latents, timestep, text, text_mask, camera_vector, plucker,
                                                    cache=cache, kv_window=kv_window, camera_mask=camera_mask)
        return self._velocity(out, prior, latents, timestep), cache

    def _velocity(self, out: Tensor, prior: Tensor, latents: Tensor, timestep: Tensor) -> Tensor:
        """x0 = prior + ``out`` -> v = (x_t - x0) / sigma, sigma from the integer timesteps the network saw."""
        out = out + prior.to(out.dtype)
        work = torch.promote_types(out.dtype, torch.float32)
        t = frame_timesteps(timestep, latents.shape[0], latents.shape[2], latents.device)  # (B, T)
        sigma = (t.to(work) / 1000.0).clamp_min(self.settings.min_sigma).to(out.device)
        return ((latents.to(work) - out.to(work)) / sigma[:, None, :, None, None]).to(out.dtype)

    @staticmethod
    def _check_prior(extra: WarpPrior | None, latents: Tensor) -> Tensor:
        if not isinstance(extra, WarpPrior):
            raise ValueError("this model predicts x0 minus a warp prior: pass extra=WarpPrior(latents), the "
                             "(B, C, T, H, W) prior from WarpPriorModel.extra_conditioning, got "
                             f"{type(extra).__name__}")
        if tuple(extra.latents.shape) != tuple(latents.shape):
            raise ValueError(f"warp prior: expected the latents' shape {tuple(latents.shape)}, got "
                             f"{tuple(extra.latents.shape)}")
        return extra.latents

    @torch.no_grad()
    def extra_conditioning(self, vae, first_latent: Tensor, c2w: Tensor, intrinsics: Tensor) -> WarpPrior:
        """The prior for a video that starts at ``first_latent (B, C, 1, h, w)`` and follows the camera-to-world
        poses ``c2w (B, F, 4, 4)`` (relative to the first) with ``intrinsics (B, F, 4)`` in pixels of the
        decoded frames, built with ``vae`` (the codec of the latents); on the model's device and dtype."""
        prior = warp_prior_latents(vae, first_latent, c2w, intrinsics, eye_height=self.settings.eye_height,
                                   far=self.settings.far_depth)
        weight = next(_unwrapped(self.transformer).parameters())
        return WarpPrior(prior.to(weight.device, weight.dtype))


def _unwrapped(module: nn.Module) -> nn.Module:
    """The transformer inside a data-parallel wrapper (``.module``), or ``module`` itself."""
    return getattr(module, "module", module)


def wrap_transformer(transformer: nn.Module, settings: dict | WarpPriorSettings,
                     where: str = "wrapper") -> WarpPriorModel:
    """The model a ``sana_wm.wrapper`` section (or a training config's ``model.wrapper``) describes."""
    if not isinstance(settings, WarpPriorSettings):
        settings = WarpPriorSettings.from_dict(settings, where)
    return WarpPriorModel(transformer, settings)
