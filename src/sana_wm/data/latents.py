"""A cache of per-clip VAE latents and camera tensors, computed once and stored beside the shards.

Layout: ``<dataset>/latents/<key>.safetensors`` holding ``latents`` (whatever the encoder returns),
``c2w`` float64 ``(F, 4, 4)``, ``intrinsics`` float64 ``(F, 4)`` in pixels of the encoded frames, and
metadata strings (key, fps, frame size, encoder id, fingerprint). The fingerprint hashes the clip's
content (frames, camera, fps, depth, caption) together with the encoder id, so an entry made from
other frames or another encoder is stale and is recomputed. Files are written to a temporary name and
renamed, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sana_wm.data.clip import Clip, clip_fingerprint
from sana_wm.data.transforms import resize_and_crop, sample_trajectory, select_frames
from sana_wm.errors import InputError

__all__ = ["CachedLatents", "LatentCache", "frames_to_vae_input", "prepare_clip"]

_FORMAT = "sana-wm-latents"

Encoder = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``(1, 3, F, H, W)`` float32 frames in ``[-1, 1]`` (the video VAE's layout) to latents."""


def frames_to_vae_input(frames) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 -> ``(1, 3, F, H, W)`` float32 in ``[-1, 1]``."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    return (x.permute(3, 0, 1, 2).float() / 127.5 - 1.0).unsqueeze(0)


def prepare_clip(clip: Clip, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 num_frames: int | None = None) -> Clip:
    """The clip as the model will see it: resampled to ``fps``, cut to its first ``num_frames`` frames,
    resized to cover ``size = (H, W)`` and centre-cropped, with the camera kept exact."""
    traj = clip.trajectory
    sel = select_frames(clip.num_frames, clip.fps, window=num_frames, fps=fps, mode="start")
    if sel is None:
        raise InputError(f"clip {clip.key!r} has {clip.num_frames} frames at {clip.fps:g} fps; "
                         f"{num_frames} frames at {fps or clip.fps:g} fps do not fit")
    out = sample_trajectory(traj, sel)
    frames = clip.frames_numpy()[sel.indices]
    depth = None if clip.depth is None else clip.depth_numpy()[sel.indices]
    intr = out.intrinsics
    if size is not None:
        frames, intr, depth = resize_and_crop(frames, intr, size, depth=depth)
    elif (intr.width, intr.height) != (clip.width, clip.height):
        intr = intr.rescaled(clip.width, clip.height)
    return Clip(key=clip.key, frames=frames, c2w=out.c2w, intrinsics=intr.values, fps=out.fps, depth=depth,
                caption=clip.caption, source=clip.source, licence=clip.licence, quality=dict(clip.quality),
                meta={**clip.meta, "source_frames": sel.indices.tolist()}, intrinsics_size=None)


@dataclass
class CachedLatents:
    key: str
    latents: torch.Tensor
    c2w: torch.Tensor  # (F, 4, 4) float64 camera-to-world of the encoded frames
    intrinsics: torch.Tensor  # (F, 4) float64 fx, fy, cx, cy in pixels of width x height
    fps: float
    width: int
    height: int
    encoder_id: str
    fingerprint: str


@dataclass
class LatentCacheStats:
    hits: int = 0
    computed: int = 0
    stale: int = 0  # recomputed because the clip or the encoder changed


class LatentCache:
    """``LatentCache(dataset_root)``: latents under ``dataset_root/latents`` (``subdir`` to change)."""

    def __init__(self, root, *, subdir: str = "latents"):
        self.dir = Path(root) / subdir
        self.stats = LatentCacheStats()

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.safetensors"

    @staticmethod
    def fingerprint(clip: Clip, encoder_id: str) -> str:
        return hashlib.blake2b(f"{clip_fingerprint(clip)}|{encoder_id}".encode(), digest_size=16).hexdigest()

    def load(self, key: str) -> CachedLatents | None:
        """The stored entry for ``key`` (not checked against any clip), or ``None``."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.exists():
            return None
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                return None
            tensors = {name: f.get_tensor(name) for name in ("latents", "c2w", "intrinsics")}
        return CachedLatents(key=meta["key"], fps=float(meta["fps"]), width=int(meta["width"]),
                             height=int(meta["height"]), encoder_id=meta["encoder_id"],
                             fingerprint=meta["fingerprint"], **tensors)

    def get_or_compute(self, clip: Clip, encoder: Encoder, encoder_id: str) -> CachedLatents:
        """The latents of ``clip`` (exactly as given: prepare it first, e.g. with :func:`prepare_clip`),
        from the cache if a fresh entry exists, else computed with ``encoder`` and stored.

        ``encoder_id`` must change whenever the encoder's output would (weights, dtype, tiling...).
        """
        fingerprint = self.fingerprint(clip, encoder_id)
        cached = self.load(clip.key)
        if cached is not None and cached.fingerprint == fingerprint:
            self.stats.hits += 1
            return cached
        if cached is not None:
            self.stats.stale += 1
        with torch.no_grad():
            latents = encoder(frames_to_vae_input(clip.frames_numpy()))
        latents = latents.detach().cpu().contiguous()
        traj = clip.trajectory
        intr = traj.intrinsics.rescaled(clip.width, clip.height)
        entry = CachedLatents(key=clip.key, latents=latents, c2w=torch.from_numpy(traj.c2w),
                              intrinsics=torch.from_numpy(intr.values), fps=float(clip.fps), width=clip.width,
                              height=clip.height, encoder_id=encoder_id, fingerprint=fingerprint)
        self._save(entry)
        self.stats.computed += 1
        return entry

    def encode_all(self, clips: Iterable[Clip], encoder: Encoder, encoder_id: str) -> LatentCacheStats:
        """:meth:`get_or_compute` for every clip (e.g. ``prepare_clip(c, ...) for c in read_clips(root)``)."""
        for clip in clips:
            self.get_or_compute(clip, encoder, encoder_id)
        return self.stats

    def _save(self, entry: CachedLatents) -> None:
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(entry.key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        save_file({"latents": entry.latents, "c2w": entry.c2w.contiguous(),
                   "intrinsics": entry.intrinsics.contiguous()}, str(tmp),
                  metadata={"format": _FORMAT, "key": entry.key, "fps": repr(entry.fps), "width": str(entry.width),
                            "height": str(entry.height), "encoder_id": entry.encoder_id,
                            "fingerprint": entry.fingerprint})
        os.replace(tmp, path)
