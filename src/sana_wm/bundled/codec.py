"""A linear spatio-temporal patch codec (PCA), the bundled model's autoencoder.

A learned VAE small enough to train on a laptop CPU blurred the synthetic world beyond use (17 dB on
held-out clips, and the pose estimator failed on 99% of its frame pairs). A fixed linear code, fitted in
closed form, keeps far more at the same latent size:

* Frames are grouped causally, exactly as the LTX-2 VAE groups them: latent frame 0 holds frame 0 alone
  (repeated ``t = 8`` times, as a causal convolution pads it), latent frame ``k >= 1`` holds frames
  ``8k - 7 .. 8k``. A ``8k + 1``-frame video becomes ``k + 1`` latent frames.
* Each group is cut into ``p x p`` pixel patches; a patch of a group is one vector of
  ``D = t * p * p * 3`` numbers, ordered (frame, row, column, colour).
* The code of a patch is its projection onto the ``C`` leading principal components of such vectors
  fitted on training clips: ``z = (v - mean) @ basis`` with ``basis`` ``(D, C)`` orthonormal, and the
  decoder is the transpose, ``v = z @ basis.T + mean``. Frame 0 is decoded as the mean of its group's
  ``t`` reconstructed copies (the least-squares estimate of a repeated frame).
* Latents are normalised per channel like the released VAE's (``latents_mean`` / ``latents_std``: the
  component means, zero, and standard deviations on the fitting data), so the transformer sees
  unit-scale channels.

Every latent frame decodes on its own, so chunked (streaming) decoding equals one-shot decoding exactly.

On disk (``save_pretrained``): ``config.json`` (``"_class_name": "PatchPCACodec"``, the fields of
:class:`PatchPCAConfig`) and ``codec.safetensors`` (``mean``, ``basis``, ``latents_mean``, ``latents_std``).
:meth:`sana_wm.vae.VideoVAE.from_pretrained` reads such a folder like any VAE folder.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sana_wm.bundled import CODEC_CLASS_NAME, is_codec_dir
from sana_wm.errors import InputError
from sana_wm.io import replace_folder
from sana_wm.vae import VideoVAE

__all__ = ["CLASS_NAME", "PatchPCACodec", "PatchPCAConfig", "fit_patch_pca", "is_codec_dir", "patch_vectors",
           "reconstruction_psnr"]

CLASS_NAME = CODEC_CLASS_NAME
WEIGHTS_NAME = "codec.safetensors"


@dataclass(frozen=True)
class PatchPCAConfig:
    patch_size: int = 16  # pixels per latent cell side (the spatial stride)
    temporal_compression_ratio: int = 8  # frames per latent frame after the first
    latent_channels: int = 128  # principal components kept
    in_channels: int = 3
    explained_variance: float | None = None  # fraction of the fitting data's variance the code keeps
    fitted_on: dict = field(default_factory=dict)  # what the basis was fitted on (free-form, for the record)
    # Read by VideoVAE's normalisation like the diffusers VAE's config field; a constant, not stored.
    scaling_factor: ClassVar[float] = 1.0

    @property
    def patch_dim(self) -> int:
        return self.temporal_compression_ratio * self.patch_size ** 2 * self.in_channels

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.temporal_compression_ratio < 1 or self.in_channels < 1:
            raise InputError(f"patch_size, temporal_compression_ratio and in_channels must be >= 1: {self}")
        if not 1 <= self.latent_channels <= self.patch_dim:
            raise InputError(f"latent_channels must be in 1..{self.patch_dim} (t * p * p * 3), "
                             f"got {self.latent_channels}")


def patch_vectors(video: Tensor, patch_size: int, temporal: int) -> Tensor:
    """``(B, 3, F, H, W)`` with ``F = t k + 1`` -> ``(B, k + 1, H / p, W / p, D)``: frame 0 repeated ``t``
    times as the first group, then the following groups of ``t`` frames, each cut into ``p x p`` patches."""
    B, c, F, H, W = video.shape
    p, t = patch_size, temporal
    if (F - 1) % t:
        raise ValueError(f"the patch codec needs {t}k+1 frames, got {F}")
    if H % p or W % p:
        raise ValueError(f"video size {W}x{H} must be a multiple of the patch size {p}")
    x = torch.cat([video[:, :, :1].expand(-1, -1, t - 1, -1, -1), video], dim=2)  # (B, c, t (k + 1), H, W)
    n = x.shape[2] // t
    x = x.reshape(B, c, n, t, H // p, p, W // p, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(B, n, H // p, W // p, t * p * p * c)


def _vectors_to_frames(v: Tensor, patch_size: int, temporal: int, channels: int, *, first: bool) -> Tensor:
    """The inverse layout of :func:`patch_vectors`: ``(B, n, h, w, D)`` -> ``(B, 3, F, H, W)``; with
    ``first`` the first group is frame 0 (its ``t`` copies averaged), so ``F = t (n - 1) + 1``."""
    B, n, h, w, _ = v.shape
    p, t = patch_size, temporal
    x = v.reshape(B, n, h, w, t, p, p, channels).permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, c, n, t, h, p, w, p)
    x = x.reshape(B, channels, n, t, h * p, w * p)
    if first:
        head = x[:, :, :1].mean(dim=3)  # (B, c, 1, H, W)
        rest = x[:, :, 1:].reshape(B, channels, (n - 1) * t, h * p, w * p)
        return torch.cat([head, rest], dim=2)
    return x.reshape(B, channels, n * t, h * p, w * p)


class _Codec(torch.nn.Module):
    """The codec's tensors as a module (so ``.to()`` and ``state_dict`` work as for a VAE)."""

    def __init__(self, config: PatchPCAConfig, mean: Tensor, basis: Tensor, latents_mean: Tensor,
                 latents_std: Tensor) -> None:
        super().__init__()
        self.config = config
        D, C = config.patch_dim, config.latent_channels
        for name, tensor, shape in (("mean", mean, (D,)), ("basis", basis, (D, C)),
                                    ("latents_mean", latents_mean, (C,)), ("latents_std", latents_std, (C,))):
            if tuple(tensor.shape) != shape:
                raise InputError(f"patch codec tensor {name!r}: expected shape {shape}, got {tuple(tensor.shape)}")
            if not torch.isfinite(tensor).all():
                raise InputError(f"patch codec tensor {name!r} has non-finite values")
            self.register_buffer(name, tensor.detach().clone().float())
        if (self.latents_std <= 0).any():
            raise InputError("patch codec tensor 'latents_std' must be positive")


class PatchPCACodec(VideoVAE):
    """The linear patch codec behind :class:`~sana_wm.vae.VideoVAE`'s interface (module docstring):
    ``encode``/``decode`` take and give the same layouts and the same normalised latents, and
    ``stream_decoder`` decodes chunk by chunk."""

    def __init__(self, config: PatchPCAConfig, mean: Tensor, basis: Tensor, latents_mean: Tensor,
                 latents_std: Tensor) -> None:
        self.vae = _Codec(config, mean, basis, latents_mean, latents_std)
        self.config = config

    # -- files --------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu", temporal_tiling=None) -> PatchPCACodec:
        """Read a folder written by :meth:`save_pretrained`. ``dtype`` is accepted for symmetry with the VAE
        and ignored: the codec computes in float32. ``temporal_tiling`` is ignored too (nothing to tile)."""
        from sana_wm.model.loading import load_safetensors

        path = Path(path)
        config_file, weights = path / "config.json", path / WEIGHTS_NAME
        try:
            fields = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{config_file}: cannot read the patch codec's config: {err}") from None
        if fields.get("_class_name") != CLASS_NAME:
            raise InputError(f"{config_file}: _class_name is {fields.get('_class_name')!r}, not {CLASS_NAME!r}")
        known = {f for f in PatchPCAConfig.__dataclass_fields__}
        unknown = sorted(set(fields) - known - {"_class_name"})
        if unknown:
            raise InputError(f"{config_file}: unknown patch codec field(s) {', '.join(unknown)}")
        config = PatchPCAConfig(**{k: v for k, v in fields.items() if k in known})
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: the patch codec's tensors are missing")
        tensors = load_safetensors(weights)
        missing = [k for k in ("mean", "basis", "latents_mean", "latents_std") if k not in tensors]
        if missing:
            raise InputError(f"{weights}: missing tensor(s) {', '.join(missing)}")
        return cls(config, tensors["mean"], tensors["basis"], tensors["latents_mean"],
                   tensors["latents_std"]).to(device)

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` + ``codec.safetensors`` to ``path`` atomically (a temporary folder renamed)."""
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(f".{path.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "config.json").write_text(json.dumps({"_class_name": CLASS_NAME, **asdict(self.config)}, indent=2)
                                         + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.vae.state_dict().items()}, str(tmp / WEIGHTS_NAME))
        replace_folder(tmp, path)

    def set_temporal_tiling(self, tiling) -> None:
        """Nothing to tile: every latent frame is coded on its own."""

    # -- facts --------------------------------------------------------------------------------------
    @property
    def temporal_stride(self) -> int:
        return self.config.temporal_compression_ratio

    @property
    def spatial_stride(self) -> int:
        return self.config.patch_size

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def is_causal_decoder(self) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return self.vae.basis.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def to(self, device=None, dtype: torch.dtype | None = None) -> PatchPCACodec:
        self.vae.to(device=device)  # always float32: the code is cheap and half precision gains nothing
        return self

    # -- encode / decode ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """``(B, 3, F, H, W)`` in [-1, 1] with ``F = 8k + 1`` -> normalised latents ``(B, C, k + 1, H / p, W / p)``."""
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(f"video: expected (B, {self.config.in_channels}, F, H, W), got {tuple(video.shape)}")
        v = patch_vectors(video.to(self.device, torch.float32), self.config.patch_size, self.temporal_stride)
        z = (v - self.vae.mean) @ self.vae.basis  # (B, n, h, w, C)
        return self.normalize(z.permute(0, 4, 1, 2, 3))

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents ``(B, C, T_lat, h, w)`` -> video ``(B, 3, 8 (T_lat - 1) + 1, h p, w p)`` in [-1, 1]."""
        return self._decode(latents, first=True)

    def _decode(self, latents: Tensor, *, first: bool) -> Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents: expected (B, {self.latent_channels}, T, h, w), got {tuple(latents.shape)}")
        z = self.denormalize(latents.to(self.device)).permute(0, 2, 3, 4, 1)  # (B, n, h, w, C)
        v = z @ self.vae.basis.T + self.vae.mean
        video = _vectors_to_frames(v, self.config.patch_size, self.temporal_stride, self.config.in_channels,
                                   first=first)
        return video.clamp(-1, 1)

    def stream_decoder(self) -> _StreamingPatchDecoder:
        return _StreamingPatchDecoder(self)


class _StreamingPatchDecoder:
    """Consecutive latent chunks of one video: the first chunk (starting at latent frame 0) gives
    ``8 n - 7`` frames, later chunks ``8 n``, and the frames equal the one-shot decode."""

    def __init__(self, codec: PatchPCACodec) -> None:
        self.codec = codec
        self.started = False

    @torch.no_grad()
    def decode_chunk(self, latents: Tensor) -> Tensor:
        video = self.codec._decode(latents, first=not self.started)
        self.started = True
        return video


@torch.no_grad()
def fit_patch_pca(videos: Iterable[Tensor], *, patch_size: int = 16, latent_channels: int = 128,
                  temporal: int = 8, fitted_on: dict | None = None) -> PatchPCACodec:
    """Fit the codec on ``videos``, each ``(3, F, H, W)`` or ``(1, 3, F, H, W)`` in [-1, 1] with ``F = 8k + 1``:
    the mean and the ``latent_channels`` leading eigenvectors of the covariance of all their patch vectors
    (accumulated in float64, so the data may be streamed), and the per-channel statistics of the codes.
    Eigenvector signs are fixed (largest entry positive), so a fit is reproducible."""
    config = PatchPCAConfig(patch_size=patch_size, temporal_compression_ratio=temporal,
                            latent_channels=latent_channels)
    D = config.patch_dim
    total = torch.zeros(D, dtype=torch.float64)
    outer = torch.zeros(D, D, dtype=torch.float64)
    count = 0
    for i, video in enumerate(videos):
        x = video if video.ndim == 5 else video.unsqueeze(0)
        if x.ndim != 5 or x.shape[1] != 3:
            raise InputError(f"fit_patch_pca: video {i}: expected (3, F, H, W) frames, got {tuple(video.shape)}")
        try:
            v = patch_vectors(x.float(), patch_size, temporal).reshape(-1, D).double()
        except ValueError as err:
            raise InputError(f"fit_patch_pca: video {i}: {err}") from None
        total += v.sum(0)
        outer += v.T @ v
        count += v.shape[0]
    if count <= latent_channels:
        raise InputError(f"fit_patch_pca: {count} patch vectors cannot give {latent_channels} components; "
                         "fit on more (or longer) videos")
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)
    eigvals, eigvecs = torch.linalg.eigh(cov)
    order = eigvals.argsort(descending=True)
    eigvals, eigvecs = eigvals[order].clamp_min(0), eigvecs[:, order[:latent_channels]]
    signs = torch.sign(eigvecs.gather(0, eigvecs.abs().argmax(0, keepdim=True)))
    eigvecs = eigvecs * signs
    kept = float(eigvals[:latent_channels].sum() / eigvals.sum().clamp_min(1e-30))
    std = eigvals[:latent_channels].sqrt().clamp_min(1e-6)
    config = PatchPCAConfig(**{**asdict(config), "explained_variance": round(kept, 6),
                               "fitted_on": {"patch_vectors": count, **(fitted_on or {})}})
    return PatchPCACodec(config, mean.float(), eigvecs.float(), torch.zeros(latent_channels), std.float())


def reconstruction_psnr(codec: PatchPCACodec, videos: Iterable[Tensor]) -> float:
    """Mean per-frame PSNR (dB, :func:`sana_wm.eval.metrics.psnr_frames` over frames in [-1, 1]) of ``videos``
    ``(B, 3, F, H, W)`` through the codec; NaN for no videos."""
    from sana_wm.eval.metrics import psnr_frames

    def frames(video: Tensor) -> np.ndarray:  # (B * F, H, W, 3) float64
        return video.detach().double().permute(0, 2, 3, 4, 1).flatten(0, 1).cpu().numpy()

    values = []
    for video in videos:
        values.extend(psnr_frames(frames(codec.decode(codec.encode(video))), frames(video), data_range=2.0))
    return float(np.mean(values)) if values else math.nan
