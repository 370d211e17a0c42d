"""Pictures of a camera path: a top-down map and a 3D view with camera frustums.

World axes follow the canonical convention (OpenCV cameras, +Y down), so the ground plane is X-Z:
the map shows world X to the right and world Z upwards, which is the view from above (X x Z = -Y = up).
The 3D panel plots ``(X, Z, -Y)``, a right-handed frame in which up is up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sana_wm.camera.trajectory import Trajectory
from sana_wm.errors import InputError
from sana_wm.io import atomic_write

__all__ = ["DPI", "FIGSIZE_IN", "NOMINAL_FOV_DEG", "default_every", "plot_trajectory", "topdown_xy"]

FIGSIZE_IN = (13.0, 5.5)
DPI = 100
"""The PNG is ``FIGSIZE_IN * DPI`` = 1300 x 550 pixels."""

NOMINAL_FOV_DEG = 60.0
"""Horizontal field of view drawn for paths without intrinsics."""

_NOMINAL_ASPECT = 1280 / 704  # the model's input image, used for frustums without intrinsics
_TARGET_FRUSTUMS = 12
_CMAP = "viridis"


def topdown_xy(traj: Trajectory) -> np.ndarray:
    """``(F, 2)`` map coordinates of the camera centres: world X (right) and world Z (up on the map)."""
    return traj.positions[:, [0, 2]].copy()


def default_every(num_frames: int, target: int = _TARGET_FRUSTUMS) -> int:
    """Frame step that shows about ``target`` frustums (the last frame is always drawn too)."""
    return max(1, math.ceil((num_frames - 1) / max(1, target - 1)))


def _path_length(positions: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def _frustum_corners_cam(traj: Trajectory, frame: int) -> np.ndarray:
    """``(4, 3)`` image-corner directions at depth 1 in camera axes: top-left, top-right, bottom-right,
    bottom-left (top = image row 0 = camera -Y)."""
    if traj.intrinsics is not None:
        fx, fy, cx, cy = traj.intrinsics.values[frame]
        W, H = traj.intrinsics.width, traj.intrinsics.height
    else:
        W, H = _NOMINAL_ASPECT, 1.0
        fx = fy = 0.5 * W / math.tan(math.radians(NOMINAL_FOV_DEG) / 2)
        cx, cy = W / 2, H / 2
    u = np.array([0.0, W, W, 0.0])
    v = np.array([0.0, 0.0, H, H])
    return np.stack([(u - cx) / fx, (v - cy) / fy, np.ones(4)], axis=-1)


def _to_plot3d(points_world: np.ndarray) -> np.ndarray:
    """World ``(..., 3)`` -> plotted ``(X, Z, -Y)`` so that up (-Y) is the vertical axis."""
    return np.stack([points_world[..., 0], points_world[..., 2], -points_world[..., 1]], axis=-1)


def _fov_label(traj: Trajectory) -> str:
    if traj.intrinsics is None:
        return f"nominal {NOMINAL_FOV_DEG:g}° FOV (no intrinsics)"
    fov = traj.intrinsics.fov_deg()
    lo, hi = fov.min(axis=0), fov.max(axis=0)
    if np.allclose(lo, hi, atol=0.05):
        return f"FOV {lo[0]:.0f}° x {lo[1]:.0f}° from intrinsics"
    return f"FOV {lo[0]:.0f}-{hi[0]:.0f}° x {lo[1]:.0f}-{hi[1]:.0f}° from intrinsics"


def plot_trajectory(traj: Trajectory, out_path, *, every: int | None = None,
                    title: str | None = None) -> Path:
    """Write a PNG of ``traj``: (a) top-down map coloured by time with heading arrows, (b) 3D view with a
    camera frustum every ``every`` frames (default: about 12 frustums). Returns the written path."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and never opens a window
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    out_path = Path(out_path)
    F = traj.num_frames
    if every is None:
        every = default_every(F)
    if every < 1:
        raise InputError(f"every must be a positive frame step, got {every}")

    positions = traj.positions
    times = np.arange(F) / traj.fps
    norm = Normalize(0.0, traj.duration if traj.duration > 0 else 1.0)
    cmap = _CMAP
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    colour = mappable.to_rgba

    extent = float(np.ptp(positions, axis=0).max()) if F > 1 else 0.0
    size = 0.08 * extent if extent > 1e-6 else 0.5  # frustum depth / arrow length in metres
    shown = np.unique(np.r_[np.arange(0, F, every), F - 1])
    length = _path_length(positions)

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    frames = f"{F} frame{'s' if F != 1 else ''}"
    header = f"{frames}, {traj.duration:.2f} s at {traj.fps:g} fps, path length {length:.2f} m"
    fig.suptitle(header if title is None else f"{title}\n{header}")
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.09, top=0.82, wspace=0.2)

    # (a) top-down map ---------------------------------------------------------------------------
    ax = fig.add_subplot(1, 2, 1)
    xy = topdown_xy(traj)
    if F > 1:
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        lines = LineCollection(segments, cmap=cmap, norm=norm, linewidths=2)
        lines.set_array(0.5 * (times[:-1] + times[1:]))
        ax.add_collection(lines)
    forward = traj.rotations[shown][:, :, 2]  # camera +Z in world
    arrow = 1.5 * size  # arrows shrink when the camera pitches towards the ground
    ax.quiver(xy[shown, 0], xy[shown, 1], arrow * forward[:, 0], arrow * forward[:, 2],
              color=colour(times[shown]), angles="xy", scale_units="xy", scale=1, width=0.004, zorder=3)
    ax.plot(*xy[0], marker="o", color="tab:green", markersize=9, linestyle="none", label="start", zorder=4)
    ax.plot(*xy[-1], marker="s", color="tab:red", markersize=8, linestyle="none", label="end", zorder=4)
    centre = 0.5 * (xy.min(axis=0) + xy.max(axis=0))
    half = 0.5 * float(np.ptp(xy, axis=0).max()) + 2.0 * size
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("world X (m)")
    ax.set_ylabel("world Z (m)")
    ax.set_title("(a) top-down (ground plane X-Z), arrows: heading", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.colorbar(mappable, ax=ax, label="time (s)")

    # (b) 3D view with frustums ------------------------------------------------------------------
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    path3 = _to_plot3d(positions)
    if F > 1:
        path_lines = Line3DCollection(np.stack([path3[:-1], path3[1:]], axis=1), cmap=cmap, norm=norm,
                                      linewidths=1.5)
        path_lines.set_array(0.5 * (times[:-1] + times[1:]))
        ax3.add_collection3d(path_lines)
    segments3 = []
    seg_colours = []
    for f in shown:
        R, t = traj.rotations[f], positions[f]
        corners_cam = _frustum_corners_cam(traj, f) * size
        # a small roof over the top edge marks the camera's up side (-Y in camera axes)
        top_mid = 0.5 * (corners_cam[0] + corners_cam[1])
        roof_cam = top_mid + np.array([0.0, -0.25 * abs(corners_cam[0, 1] - corners_cam[3, 1]), 0.0])
        corners = _to_plot3d(corners_cam @ R.T + t)
        roof = _to_plot3d(roof_cam @ R.T + t)
        apex = _to_plot3d(t)
        edges = [(apex, c) for c in corners]
        edges += [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        edges += [(corners[0], roof), (roof, corners[1])]
        segments3.extend(edges)
        seg_colours.extend([colour(times[f])] * len(edges))
    ax3.add_collection3d(Line3DCollection(np.array(segments3), colors=seg_colours, linewidths=1.0))
    ax3.scatter(*path3[0], color="tab:green", s=40, depthshade=False)
    ax3.scatter(*path3[-1], color="tab:red", marker="s", s=35, depthshade=False)

    all_pts = np.concatenate([path3, np.array(segments3).reshape(-1, 3)], axis=0)
    centre3 = 0.5 * (all_pts.min(axis=0) + all_pts.max(axis=0))
    half3 = 0.5 * float(np.ptp(all_pts, axis=0).max()) * 1.05
    for setter, c in zip((ax3.set_xlim, ax3.set_ylim, ax3.set_zlim), centre3, strict=True):
        setter(c - half3, c + half3)
    ax3.set_box_aspect((1, 1, 1))
    ax3.set_xlabel("X (m)")
    ax3.set_ylabel("Z (m)")
    ax3.set_zlabel("up = -Y (m)")
    step = "every frame" if every == 1 else f"every {every} frames"
    ax3.set_title(f"(b) frustums {step}, {_fov_label(traj)}", fontsize="medium")

    with atomic_write(out_path) as tmp:
        fig.savefig(tmp, format="png")
    return out_path
