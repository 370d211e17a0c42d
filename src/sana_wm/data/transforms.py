"""Per-sample augmentations that keep the camera exact: temporal windows, frame-rate change, resize + crop.

Pixel convention for resizing: an image of width ``W`` covers the continuous interval ``[0, W]``, so
resizing by ``s`` maps ``u -> s * u`` and cropping at ``left`` maps ``u -> u - left``; that is exactly
:meth:`Intrinsics.resized_and_cropped`, and torch's ``interpolate(align_corners=False)`` samples the
same way, so a 3D point projects onto the same image content before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from sana_wm.camera.resample import resample
from sana_wm.camera.trajectory import Intrinsics, Trajectory
from sana_wm.errors import InputError

__all__ = ["CROP_MODES", "POSE_MODES", "WINDOW_MODES", "FrameSelection", "resize_and_crop", "sample_trajectory",
           "select_frames"]

CROP_MODES = ("center", "random")
WINDOW_MODES = ("random", "start")
POSE_MODES = ("nearest", "interpolate")
_TIME_TOL = 1e-6  # in source frames: guards floor() against float error in (k * src_fps / fps)


@dataclass(frozen=True)
class FrameSelection:
    """Which source frames make an output clip. ``positions`` are fractional source-frame times
    (``start + k * step``); ``indices`` the nearest stored frames, shown as the output frames."""

    indices: np.ndarray  # (T,) int64 source frame per output frame
    positions: np.ndarray  # (T,) float64 exact source-frame time of each output frame
    fps: float  # output frame rate


def select_frames(num_frames: int, src_fps: float, *, window: int | None = None, fps: float | None = None,
                  mode: str = "random", rng: np.random.Generator | None = None) -> FrameSelection | None:
    """Choose ``window`` output frames (all that fit, if ``None``) at ``fps`` (the source rate if ``None``).

    Output frame ``k`` sits at source time ``start + k * src_fps / fps`` (in source frames); the frame
    shown is the nearest stored one (ties round up). ``start`` is a whole source frame, uniform over all
    starts that fit (``mode="random"``) or 0 (``"start"``). Returns ``None`` if the clip is too short.
    """
    if mode not in WINDOW_MODES:
        raise InputError(f"window mode must be one of {', '.join(WINDOW_MODES)}, got {mode!r}")
    out_fps = float(src_fps if fps is None else fps)
    step = src_fps / out_fps  # source frames per output frame
    last = num_frames - 1
    if window is None:
        count = math.floor(last / step + _TIME_TOL) + 1
        start = 0
    else:
        count = int(window)
        latest_start = math.floor(last - (count - 1) * step + _TIME_TOL)
        if latest_start < 0:
            return None
        if mode == "random" and latest_start > 0:
            rng = rng if rng is not None else np.random.default_rng()
            start = int(rng.integers(0, latest_start + 1))
        else:
            start = 0
    positions = np.minimum(start + np.arange(count) * step, last)
    indices = np.minimum(np.floor(positions + 0.5 + _TIME_TOL).astype(np.int64), last)
    return FrameSelection(indices, positions, out_fps)


def sample_trajectory(traj: Trajectory, selection: FrameSelection, mode: str = "nearest") -> Trajectory:
    """The camera path of the selected frames, at the output fps.

    ``"nearest"``: the poses of the frames actually shown (image and pose always agree).
    ``"interpolate"``: poses at the exact output times via :func:`sana_wm.camera.resample.resample`
    (slerp), which differ from the shown frames' poses by up to half a source frame when the rates do
    not divide. Both agree exactly when ``src_fps / fps`` is a whole number.
    """
    if mode == "nearest":
        return replace(traj.take(selection.indices), fps=selection.fps)
    if mode != "interpolate":
        raise InputError(f"pose mode must be one of {', '.join(POSE_MODES)}, got {mode!r}")
    first = int(selection.positions[0])  # starts are whole source frames
    end = min(traj.num_frames - 1, math.ceil(selection.positions[-1] - _TIME_TOL))
    span = traj.take(np.arange(first, end + 1))
    count = len(selection.indices)
    if span.num_frames == 1:
        return replace(span.take(np.zeros(count, dtype=np.int64)), fps=selection.fps)
    out = resample(span, fps=selection.fps)
    if out.num_frames < count:  # float rounding dropped the last sample: hold it
        out = out.take(np.minimum(np.arange(count), out.num_frames - 1))
    return replace(out.take(np.arange(count)), meta=dict(traj.meta))


def resize_and_crop(frames: np.ndarray, intrinsics: Intrinsics, size: tuple[int, int], *,
                    depth: np.ndarray | None = None, crop: str = "center",
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, Intrinsics, np.ndarray | None]:
    """Scale ``(T, H, W, 3)`` uint8 frames to cover ``size = (height, width)`` keeping the aspect ratio,
    then crop that size (centred, or at a uniformly random offset).

    ``intrinsics`` are first rescaled to the frames' size if given for another size. Frames use
    antialiased bilinear resampling; ``depth (T, H, W)`` uses nearest neighbour (never mixes depths across
    an edge). Returns ``(frames, intrinsics, depth)`` with intrinsics exact for the output pixels.
    """
    if crop not in CROP_MODES:
        raise InputError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
    T, H, W = frames.shape[:3]
    out_h, out_w = int(size[0]), int(size[1])
    if (intrinsics.width, intrinsics.height) != (W, H):
        intrinsics = intrinsics.rescaled(W, H)
    scale = max(out_h / H, out_w / W)
    res_h, res_w = max(out_h, round(H * scale)), max(out_w, round(W * scale))
    if crop == "random":
        rng = rng if rng is not None else np.random.default_rng()
        top = int(rng.integers(0, res_h - out_h + 1))
        left = int(rng.integers(0, res_w - out_w + 1))
    else:
        top, left = (res_h - out_h) // 2, (res_w - out_w) // 2

    if (res_h, res_w) != (H, W):
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(res_h, res_w), mode="bilinear", align_corners=False,
                          antialias=res_h < H or res_w < W)
        frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if depth is not None:
            d = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[:, None]
            d = F.interpolate(d, size=(res_h, res_w), mode="nearest-exact")[:, 0].numpy()
            depth = d.astype(depth.dtype, copy=False)
    frames = np.ascontiguousarray(frames[:, top:top + out_h, left:left + out_w])
    if depth is not None:
        depth = np.ascontiguousarray(depth[:, top:top + out_h, left:left + out_w])
    intrinsics = intrinsics.resized_and_cropped((res_w, res_h), (left, top), (out_w, out_h))
    return frames, intrinsics, depth
