"""Small synthetic clips for the data tests: smooth images, a smooth camera path, optional depth."""

from __future__ import annotations

import numpy as np

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.data import Clip


def smooth_frames(num_frames: int, height: int, width: int, phase: float = 0.0) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 moving colour gradients: smooth enough that H.264 keeps them well above 30 dB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for f in range(num_frames):
        t = phase + 0.15 * f
        r = 0.5 + 0.4 * np.sin(2 * np.pi * (x / width + t))
        g = 0.5 + 0.4 * np.cos(2 * np.pi * (y / height - 0.5 * t))
        b = 0.5 + 0.3 * np.sin(2 * np.pi * ((x + y) / (width + height) + 0.3 * t))
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.round(np.stack(frames) * 255), 0, 255).astype(np.uint8)


def camera_path(num_frames: int, phase: float = 0.0) -> np.ndarray:
    """``(F, 4, 4)`` a camera walking forward (+Z) while yawing slowly."""
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    for f in range(num_frames):
        yaw = 0.05 * f + phase
        c, s = np.cos(yaw), np.sin(yaw)
        c2w[f, :3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
        c2w[f, :3, 3] = [0.1 * np.sin(phase + 0.2 * f), 0.0, 0.25 * f]
    return c2w


def make_clip(key: str, *, num_frames: int = 9, height: int = 24, width: int = 32, fps: float = 16.0,
              seed: int = 0, depth: bool = True, depth_dtype=np.float32) -> Clip:
    rng = np.random.default_rng(seed)
    phase = float(rng.uniform(0, 1))
    intr = Intrinsics.from_fov(60.0 + 10 * phase, width, height, num_frames)
    d = None
    if depth:
        d = (1.0 + rng.random((num_frames, height, width)) * 10).astype(depth_dtype)
    return Clip(key=key, frames=smooth_frames(num_frames, height, width, phase), c2w=camera_path(num_frames, phase),
                intrinsics=intr.values, fps=fps, depth=d, caption=f"a walk through scene {key}",
                source="synthetic-test", licence="CC0-1.0", quality={"dover": 0.5 + phase / 4, "flow": 10.0 * phase},
                meta={"seed": seed, "tags": ["test"]})
