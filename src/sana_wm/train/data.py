"""From dataset samples to model inputs: latents, camera tensors and text states for one batch.

The real pipeline encodes frames with the LTX-2 VAE (through :class:`~sana_wm.data.LatentCache`) and
captions with Gemma-2 (through :mod:`~sana_wm.train.text_states`), both once, ahead of training. For tests
and smoke runs two deterministic stand-ins need no weights at all:
:class:`SyntheticEncoder` (pixel-unshuffle + a fixed linear map, with the VAE's 8x temporal layout)
and :class:`HashTextEncoder` (a fixed random embedding per caption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sana_wm.camera.conditioning import TEMPORAL_STRIDE, identity_conditioning, prepare_camera, relative_poses
from sana_wm.data import LatentCache
from sana_wm.train.objective import sample_seed

__all__ = ["HashTextEncoder", "ModelBatch", "SampleStream", "SyntheticEncoder", "build_batch"]


class SyntheticEncoder:
    """A fixed stand-in for the video VAE with its layout: ``(B, 3, 8k+1, H, W)`` in ``[-1, 1]`` ->
    ``(B, C, k+1, H/s, W/s)``. Latent frame 0 is raw frame 0; latent frame ``i`` averages raw frames
    ``8i-7 .. 8i``; each ``s x s`` cell is flattened and projected by a fixed orthonormal map."""

    def __init__(self, latent_channels: int, spatial_stride: int, seed: int = 0):
        self.stride = spatial_stride
        n_in = 3 * spatial_stride**2
        g = torch.Generator().manual_seed(seed)
        basis = torch.linalg.qr(torch.randn(max(n_in, latent_channels), max(n_in, latent_channels),
                                            generator=g, dtype=torch.float64))[0]
        # Orthonormal rows: a latent keeps the scale of the pixels it summarises.
        self.proj = basis[:latent_channels, :n_in].float()
        self.id = f"synthetic-c{latent_channels}-s{spatial_stride}-seed{seed}"

    def __call__(self, video: Tensor) -> Tensor:
        B, _, F, H, W = video.shape
        if (F - 1) % TEMPORAL_STRIDE:
            raise ValueError(f"SyntheticEncoder: expected 8k+1 frames, got {F}")
        rest = video[:, :, 1:].unflatten(2, (-1, TEMPORAL_STRIDE)).mean(3)
        frames = torch.cat([video[:, :, :1], rest], dim=2)  # (B, 3, T, H, W)
        T = frames.shape[2]
        cells = torch.nn.functional.pixel_unshuffle(frames.transpose(1, 2).reshape(B * T, 3, H, W), self.stride)
        latents = torch.einsum("oi,nihw->nohw", self.proj.to(cells), cells)
        return latents.unflatten(0, (B, T)).transpose(1, 2).contiguous()


class HashTextEncoder:
    """Stand-in text encoder: each caption gets ``1 + #words`` (at most ``length``) fixed random token
    states seeded by its text; padding is masked. ``(B, length, channels)`` and a bool mask ``(B, length)``."""

    def __init__(self, channels: int, length: int):
        self.channels, self.length = channels, length

    def __call__(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        states = torch.zeros(len(captions), self.length, self.channels)
        mask = torch.zeros(len(captions), self.length, dtype=torch.bool)
        for i, caption in enumerate(captions):
            n = min(self.length, 1 + len(caption.split()))
            g = torch.Generator().manual_seed(sample_seed("caption", caption))
            states[i, :n] = torch.randn(n, self.channels, generator=g)
            mask[i, :n] = True
        return states, mask

    def empty_prompt(self) -> tuple[Tensor, Tensor]:
        """The stand-in of the empty negative prompt: ``states (1, length, channels)``, ``mask (1, length)``."""
        return self([""])


@dataclass
class ModelBatch:
    """Clean model inputs of one batch (before noising)."""

    keys: list[str]
    latents: Tensor  # (B, C, T, h, w) clean latents x0
    text: Tensor  # (B, L, C_text)
    text_mask: Tensor  # (B, L) bool
    camera_vector: Tensor  # (B, T, 20)
    plucker: Tensor  # (B, 48, T, h, w)
    extra: Any = None  # a model wrapper's extra conditioning (model.wrapper), built by the trainer per step
    # each clip's camera for that conditioning: (c2w (F, 4, 4) relative to frame 0, intrinsics (F, 4)) float64
    # on the CPU, or None for a clip without one
    cameras: list | None = None

    def to(self, device) -> ModelBatch:
        moved = (t if t is None else t.to(device) for t in (self.latents, self.text, self.text_mask,
                                                             self.camera_vector, self.plucker, self.extra))
        return ModelBatch(self.keys, *moved, cameras=self.cameras)


def build_batch(samples: list[dict], *, encoder, text_encoder, spatial_stride: int, camera: bool = True,
                latent_cache: LatentCache | None = None) -> ModelBatch:
    """``samples`` from :class:`~sana_wm.data.ClipDataset` -> :class:`ModelBatch` (on the CPU), without a
    model wrapper's extra conditioning: that depends on which clips drop their camera, drawn afterwards with
    the noise, so the trainer builds it from ``ModelBatch.cameras`` once those are known."""
    latents, vectors, pluckers, poses = [], [], [], []
    for s in samples:
        if "frames" in s:
            frames = s["frames"]  # (F, H, W, 3) uint8
            F, H, W = frames.shape[:3]
        else:  # sana_wm.data.CachedLatentDataset: the latents came with the sample
            F, H, W = s["frame_shape"]
        T = (F - 1) // TEMPORAL_STRIDE + 1
        if "latents" in s or latent_cache is not None:
            if "latents" in s:
                cached = s["latents"]
            else:
                entry = latent_cache.load(s["key"])
                if entry is None:
                    raise FileNotFoundError(f"no cached latents for clip {s['key']!r} in {latent_cache.dir}; "
                                            "encode the dataset first with sana_wm.data.LatentCache.encode_all")
                cached = entry.latents
            lat = cached.reshape(-1, *cached.shape[-4:])[0, :, :T].float()
        else:
            video = (frames.permute(3, 0, 1, 2).float() / 127.5 - 1.0).unsqueeze(0)  # (1, 3, F, H, W)
            with torch.no_grad():
                lat = encoder(video)[0]
        latents.append(lat)
        grid = (H // spatial_stride, W // spatial_stride)
        if camera and "c2w" in s:
            cond = prepare_camera(s["c2w"].numpy(), s["intrinsics"].numpy(), target_size=(H, W),
                                  spatial_stride=spatial_stride)
            intr = torch.as_tensor(s["intrinsics"], dtype=torch.float64).reshape(-1, 4).expand(F, 4)
            poses.append((torch.from_numpy(relative_poses(s["c2w"].numpy())), intr))
        else:
            cond = identity_conditioning(F, grid)
            poses.append(None)
        vectors.append(cond.camera_vector)
        pluckers.append(cond.plucker)
    text, mask = text_encoder([s.get("caption", "") for s in samples])
    return ModelBatch([s["key"] for s in samples], torch.stack(latents), text, mask, torch.stack(vectors),
                      torch.stack(pluckers), cameras=poses)


class SampleStream:
    """Endless samples of a :class:`~sana_wm.data.ClipDataset`, epoch after epoch (the trainer's and the
    distiller's data source). Each sample is reported to the dataset (``update_progress``) as it is taken, so
    the dataset's ``state_dict`` is the position of the next one. Two epochs in a row without a sample mean this
    rank has no usable clip: an error naming the dataset, not an endless loop."""

    def __init__(self, dataset, data, rank: int) -> None:
        self.dataset, self.data, self.rank = dataset, data, rank
        self._samples = None
        self._yielded = 0
        self._empty_epochs = 0

    def take(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            if self._samples is None:
                if self.data.num_workers:
                    loader = torch.utils.data.DataLoader(self.dataset, batch_size=None,
                                                         num_workers=self.data.num_workers)
                    self._samples = iter(loader)
                else:
                    self._samples = iter(self.dataset)
                self._yielded = 0
            try:
                sample = next(self._samples)
            except StopIteration:
                self._empty_epochs = self._empty_epochs + 1 if self._yielded == 0 else 0
                if self._empty_epochs >= 2:
                    raise RuntimeError(f"{self.data.root}: no usable clips for rank {self.rank} "
                                       f"(window {self.data.window} frames at {self.data.fps} fps; see the log "
                                       "for skipped clips)") from None
                self.dataset.set_epoch(self.dataset.epoch + 1)
                self._samples = None
                continue
            self._yielded += 1
            self.dataset.update_progress(sample)
            out.append(sample)
        return out
