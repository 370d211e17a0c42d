"""Changing a trajectory's frame count or rate, and fitting it to the 8k+1 frames the video model needs.

The video VAE compresses time by 8 with a causal first frame, so a clip has ``8k + 1`` frames
(``(F - 1) / 8 + 1`` latent frames). :func:`snap_frame_count` finds such a count and
:func:`fit_to_frames` makes a trajectory exactly that long; :data:`FIT_RULES_HELP` says how, in words
for ``--help``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError
from sana_wm.limits import check_frames

__all__ = ["EXTEND_MODES", "FIT_RULES_HELP", "SNAP_MODES", "fit_to_frames", "resample", "snap_frame_count"]

SNAP_MODES = ("down", "up", "nearest")
EXTEND_MODES = ("error", "hold", "resample")

FIT_RULES_HELP = (
    "The frame count is snapped to 8k+1 (what the video VAE needs; the released pipeline snaps the "
    "requested count to 8k+1 and caps it by the trajectory length). A longer trajectory is cut to its "
    "first frames; a shorter one is an error unless you choose to hold its last pose for the remaining "
    "frames or to stretch it in time (resample) over the requested frames."
)
"""One paragraph for ``--help`` on how a trajectory is fitted to the requested number of frames."""

_TIME_TOL = 1e-9  # in units of input frames: a sample this close to an input frame copies that frame


def resample(traj: Trajectory, *, num_frames: int | None = None, fps: float | None = None) -> Trajectory:
    """Sample ``traj`` anew over the same time span ``[0, traj.duration]``.

    Give ``num_frames`` (the frame rate becomes ``(num_frames - 1) / duration``) or ``fps`` (the frame
    count becomes ``floor(duration * fps) + 1``, starting at t = 0, so the last sample may fall short
    of the end by less than one new frame), or both if they agree. Rotations are interpolated by slerp,
    translations and intrinsics linearly; a sample that falls on an input frame copies it exactly.
    """
    if num_frames is None and fps is None:
        raise TrajectoryError("resample: give num_frames or fps (or both, if they agree)")
    if num_frames is not None and (int(num_frames) != num_frames or num_frames < 1):
        raise TrajectoryError(f"resample: num_frames must be a positive integer, got {num_frames!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise TrajectoryError(f"resample: fps must be a positive finite number, got {fps!r}")

    duration = traj.duration
    if fps is not None:
        count = math.floor(duration * fps + _TIME_TOL) + 1
        if num_frames is not None and int(num_frames) != count:
            raise TrajectoryError(
                f"resample: {num_frames} frames at {fps:g} fps do not span the trajectory's {duration:g} s "
                f"(that rate gives {count} frames); give only one of num_frames and fps"
            )
        new_fps = float(fps)
    else:
        count = int(num_frames)
        if count > 1 and traj.num_frames == 1:
            raise TrajectoryError("resample: a single-frame trajectory spans no time; use fit_to_frames(..., "
                                  "extend='hold') to repeat it")
        new_fps = (count - 1) / duration if count > 1 else traj.fps
    check_frames(count, "resample")
    times = np.arange(count) / new_fps  # seconds
    positions = times * traj.fps  # in input frames, 0 .. F - 1
    positions = np.clip(positions, 0.0, traj.num_frames - 1)
    return replace(_sample(traj, positions), fps=new_fps,
                   meta={**traj.meta, "resampled_from": (traj.num_frames, traj.fps)})


def _sample(traj: Trajectory, positions: np.ndarray) -> Trajectory:
    """Interpolate ``traj`` at fractional frame ``positions`` (each within ``[0, F - 1]``)."""
    F = traj.num_frames
    keys = np.arange(F, dtype=np.float64)
    nearest = np.rint(positions)
    exact = np.abs(positions - nearest) <= _TIME_TOL
    c2w = np.zeros((len(positions), 4, 4))
    c2w[:, 3, 3] = 1.0
    if F == 1:
        c2w[:] = traj.c2w[0]
    else:
        c2w[:, :3, :3] = Slerp(keys, Rotation.from_matrix(traj.rotations))(positions).as_matrix()
        for axis in range(3):
            c2w[:, axis, 3] = np.interp(positions, keys, traj.positions[:, axis])
    c2w[exact] = traj.c2w[nearest[exact].astype(int)]

    intr = traj.intrinsics
    if intr is not None:
        values = np.stack([np.interp(positions, keys, intr.values[:, i]) for i in range(4)], axis=-1)
        values[exact] = intr.values[nearest[exact].astype(int)]
        intr = Intrinsics(values, intr.width, intr.height)
    return Trajectory(c2w, intr, traj.fps, dict(traj.meta))


def snap_frame_count(n: int, stride: int = 8, mode: str = "nearest") -> int:
    """Snap ``n`` to a count of the form ``stride * k + 1`` (k >= 0).

    ``mode``: "down" gives the largest such count <= n, "up" the smallest >= n, "nearest" the closer
    of the two (a tie goes up, e.g. 13 -> 17 with stride 8, as the diffusers port does). The result is
    at least 1.
    """
    if int(n) != n or n < 1:
        raise TrajectoryError(f"frame count must be a positive integer, got {n!r}")
    if int(stride) != stride or stride < 1:
        raise TrajectoryError(f"stride must be a positive integer, got {stride!r}")
    if mode not in SNAP_MODES:
        raise TrajectoryError(f"snap mode must be one of {', '.join(SNAP_MODES)}, got {mode!r}")
    n, stride = int(n), int(stride)
    down = n - (n - 1) % stride
    up = down if down == n else down + stride
    if mode == "down":
        return down
    if mode == "up":
        return up
    return down if n - down < up - n else up


def fit_to_frames(traj: Trajectory, num_frames: int, *, extend: str = "error") -> Trajectory:
    """Return exactly ``num_frames`` frames of ``traj`` at its own fps.

    A longer trajectory keeps its first ``num_frames`` frames. A shorter one depends on ``extend``:
    "error" raises :class:`TrajectoryError` saying how many frames there are and how many are needed;
    "hold" repeats the last pose (and intrinsics) for the missing frames; "resample" stretches the whole
    path in time over ``num_frames`` frames (slower motion, same start and end poses). The released
    pipeline snaps the requested count to 8k+1 and caps it by the trajectory length; see
    :func:`snap_frame_count` and :data:`FIT_RULES_HELP`.
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise TrajectoryError(f"num_frames must be a positive integer, got {num_frames!r}")
    if extend not in EXTEND_MODES:
        raise TrajectoryError(f"extend must be one of {', '.join(EXTEND_MODES)}, got {extend!r}")
    num_frames = int(num_frames)
    F = traj.num_frames
    if F >= num_frames:
        return traj if F == num_frames else traj.take(np.arange(num_frames))
    if extend == "error":
        raise TrajectoryError(
            f"the camera trajectory has {F} frames but {num_frames} are needed; ask for fewer frames "
            f"(at most {F}), or extend it: extend='hold' repeats the last pose, extend='resample' "
            "stretches the path in time"
        )
    if extend == "hold" or F == 1:
        index = np.minimum(np.arange(num_frames), F - 1)
        return traj.take(index)
    stretched = resample(traj, num_frames=num_frames)
    return replace(stretched, fps=traj.fps)
