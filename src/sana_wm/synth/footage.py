"""Realistic test footage: synthetic walks, orbits and look-arounds degraded like real camera video, written
as plain H.264 MP4 files with the exact ground truth kept beside them.

The renderer's frames are too clean to test pose estimation fairly, so each frame goes through what a
camera and its encoder do to light, in this order:

1. **motion blur**: the frame is the mean of ``blur_subframes`` renders at poses spread over the shutter
   interval (``shutter`` of the frame time, centred on the frame's pose; the ground truth is the centre);
2. **exposure drift**: a gain that wanders slowly over the clip (a smooth random walk, +-``exposure_drift``)
   with a vertical gradient that moves with it (rolling exposure change);
3. **lens distortion**: radial ``k1`` (barrel when negative) applied to the image, rendered with a margin
   so the wider view at the edges is real; the ground truth keeps the pinhole intrinsics and ``k1``, and
   the depth sidecar is the pinhole camera's;
4. **sensor noise**: Gaussian read noise plus signal-dependent shot noise, in 8-bit units;
5. **H.264** at ``crf``, with no metadata beyond the frame rate.

Written files (``NAME`` is the stem of ``out``)::

    NAME.mp4          the video, no side information
    NAME.truth.npz    ground truth for evaluation: c2w (F,4,4) OpenCV metres, K (3,3) pinhole, k1, fps, size
    NAME.depth.npz    ground-truth metric z-depth (F,H,W) float16 (a sidecar annotate may use for scale)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.data.codecs import encode_mp4
from sana_wm.io import atomic_write, write_bytes_atomic
from sana_wm.synth.paths import exploration_path
from sana_wm.synth.render import render
from sana_wm.synth.scene import generate_scene

__all__ = ["Footage", "FootageConfig", "make_footage", "write_footage"]


@dataclass(frozen=True)
class FootageConfig:
    seconds: float = 10.0
    fps: float = 10.0
    size: tuple[int, int] = (360, 640)  # (H, W)
    style: str = "walk"  # a synth path style: walk, orbit, look_around, revisit, mixed
    kind: str | None = "room"  # scene kind, None: drawn from the seed
    fov_deg: float = 70.0
    blur_subframes: int = 3
    shutter: float = 0.5  # fraction of the frame interval the shutter is open
    exposure_drift: float = 0.15  # largest relative gain change over the clip
    k1: float = -0.03  # radial distortion (normalised image coordinates)
    read_noise: float = 2.0  # 8-bit units, standard deviation
    shot_noise: float = 0.02  # relative, times sqrt(signal)
    crf: int = 23


@dataclass(frozen=True)
class Footage:
    frames: np.ndarray  # (F, H, W, 3) uint8 after degradation (before H.264)
    c2w: np.ndarray  # (F, 4, 4) exact cameras
    K: np.ndarray  # (3, 3) pinhole intrinsics of the frames
    depth: np.ndarray  # (F, H, W) float32 metric z-depth, 0 where the ray escapes
    config: FootageConfig
    seed: int


def _subframe_poses(c2w: np.ndarray, subframes: int, shutter: float) -> np.ndarray:
    """``(F * subframes, 4, 4)`` poses spread over each frame's shutter interval (clamped to the clip)."""
    F = len(c2w)
    if subframes <= 1:
        return c2w.copy()
    offsets = (np.arange(subframes) - (subframes - 1) / 2) * shutter / subframes
    times = np.clip(np.arange(F)[:, None] + offsets[None], 0, F - 1).ravel()
    slerp = Slerp(np.arange(F), Rotation.from_matrix(c2w[:, :3, :3]))
    out = np.tile(np.eye(4), (len(times), 1, 1))
    out[:, :3, :3] = slerp(times).as_matrix()
    for k in range(3):
        out[:, k, 3] = np.interp(times, np.arange(F), c2w[:, k, 3])
    return out


def _distort(frames: np.ndarray, K: np.ndarray, k1: float, pad: tuple[int, int], size: tuple[int, int]
             ) -> np.ndarray:
    """Apply radial distortion ``x_d = x (1 + k1 r^2)`` (normalised coordinates of ``K``) to every frame.

    ``frames`` are rendered ``pad = (px, py)`` pixels wider on each side than the output ``size = (H, W)``
    with the same focal length: a barrel lens shows more than the pinhole's field of view at its edges,
    and that content must exist (mirroring the border instead would add features no camera could see).
    """
    import cv2

    H, W = size
    # For every output (distorted) pixel, the undistorted pixel it shows: invert x_d = x (1 + k1 r^2) by
    # fixed-point iteration (converges for the small |k1| used here).
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    xd, yd = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    x, y = xd.copy(), yd.copy()
    for _ in range(10):
        f = 1 + k1 * (x * x + y * y)
        x, y = xd / f, yd / f
    map_x = (x * K[0, 0] + K[0, 2] + pad[0]).astype(np.float32)
    map_y = (y * K[1, 1] + K[1, 2] + pad[1]).astype(np.float32)
    return np.stack([cv2.remap(f, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in frames])


def make_footage(seed: int, config: FootageConfig | None = None, *, progress: bool = False) -> Footage:
    """Render and degrade one clip (see the module doc). Deterministic in ``seed`` and ``config``."""
    cfg = config or FootageConfig()
    H, W = cfg.size
    scene = generate_scene(seed, cfg.kind)
    path = exploration_path(scene, seconds=cfg.seconds, fps=cfg.fps, style=cfg.style, seed=seed)
    sub = max(int(cfg.blur_subframes), 1)
    poses = _subframe_poses(path.c2w, sub, cfg.shutter)
    K = Intrinsics.from_fov(cfg.fov_deg, W, H).matrices()[0]  # the lens --fov describes (camera module)
    # a margin for the barrel distortion's wider view: |k1| r^2 of the corner, plus a pixel
    corner = (W / 2 / K[0, 0]) ** 2 + (H / 2 / K[1, 1]) ** 2
    px, py = ((int(np.ceil(abs(min(cfg.k1, 0.0)) * corner * s / 2 * 1.5)) + 1 if cfg.k1 else 0) for s in (W, H))
    big = Intrinsics.from_matrices([[K[0, 0], 0, K[0, 2] + px], [0, K[1, 1], K[1, 2] + py], [0, 0, 1]],
                                   W + 2 * px, H + 2 * py)
    result = render(scene, Trajectory(poses, big.broadcast_to(len(poses)), cfg.fps * sub), progress=progress)
    F = len(path.c2w)
    linear = result.rgb.reshape(F, sub, H + 2 * py, W + 2 * px, 3).astype(np.float64).mean(axis=1)
    centre = sub // 2  # odd subframe counts put a render exactly at the frame's pose
    depth = result.depth.reshape(F, sub, H + 2 * py, W + 2 * px)[:, centre, py:py + H, px:px + W]
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    rng = np.random.default_rng([seed, 2024])
    drift = np.cumsum(rng.normal(0, 1, F))
    drift = drift - drift.mean()
    drift = cfg.exposure_drift * drift / max(np.abs(drift).max(), 1e-9)
    rows = np.linspace(-0.5, 0.5, linear.shape[1])[None, :, None, None]
    gain = (1 + drift)[:, None, None, None] * (1 + 0.5 * np.gradient(drift)[:, None, None, None] * rows)
    img = np.clip(linear * gain, 0, 255)
    if cfg.k1:
        img = _distort(img.astype(np.float32), K, cfg.k1, (px, py), (H, W)).astype(np.float64)
    img = img + rng.normal(0, 1, img.shape) * (cfg.read_noise + cfg.shot_noise * np.sqrt(img) * np.sqrt(255.0) / 16)
    frames = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return Footage(frames, path.c2w, K, depth, cfg, seed)


def write_footage(out, seed: int, config: FootageConfig | None = None, *, with_depth: bool = True,
                  progress: bool = False) -> Path:
    """Make footage and write ``out`` (an ``.mp4`` path) with its ground truth beside it; returns ``out``."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"footage is written as MP4: {out} must end in .mp4")
    fo = make_footage(seed, config, progress=progress)
    cfg = fo.config
    stem = out.with_suffix("")
    with atomic_write(stem.with_name(stem.name + ".truth.npz")) as tmp, open(tmp, "wb") as f:
        np.savez(f, c2w=fo.c2w, K=fo.K, k1=np.float64(cfg.k1), fps=np.float64(cfg.fps),
                 size=np.array([cfg.size[1], cfg.size[0]]), seed=np.int64(seed),
                 config=np.array(repr(asdict(cfg))))
    if with_depth:
        with atomic_write(stem.with_name(stem.name + ".depth.npz")) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, depth=fo.depth.astype(np.float16))
    write_bytes_atomic(out, encode_mp4(fo.frames, cfg.fps, crf=cfg.crf))
    return out
