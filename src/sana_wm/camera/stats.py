"""Numbers that describe a trajectory: what `sana-wm camera info` prints."""

from __future__ import annotations

import numpy as np

from sana_wm.camera.trajectory import Trajectory

__all__ = ["rotation_angles_deg", "describe", "format_description"]


def rotation_angles_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotations ``(..., 3, 3)``: ``arccos((tr(R_a^T R_b) - 1) / 2)``."""
    rel = np.swapaxes(R_a, -1, -2) @ R_b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def describe(traj: Trajectory) -> dict:
    """Frames, duration, path length, speeds and rotation range of a trajectory.

    Speeds are per second at the trajectory's fps. ``max_rotation_from_start_deg`` is the largest
    geodesic angle between any frame's orientation and the first frame's; ``yaw``/``pitch`` ranges are
    measured on the forward axis (+Z of the camera) relative to the first frame, with world up = -Y.
    """
    pos = traj.positions
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1) if traj.num_frames > 1 else np.zeros(0)
    R = traj.rotations
    step_angles = rotation_angles_deg(R[:-1], R[1:]) if traj.num_frames > 1 else np.zeros(0)
    rel = np.swapaxes(R[:1], -1, -2) @ R  # orientation relative to the first frame
    fwd = rel[:, :, 2]  # forward axis in the first camera's frame
    yaw = np.degrees(np.arctan2(fwd[:, 0], fwd[:, 2]))
    pitch = np.degrees(np.arctan2(-fwd[:, 1], np.hypot(fwd[:, 0], fwd[:, 2])))
    info = {
        "num_frames": traj.num_frames,
        "fps": traj.fps,
        "duration_s": traj.duration,
        "path_length_m": float(steps.sum()),
        "net_displacement_m": float(np.linalg.norm(pos[-1] - pos[0])),
        "max_speed_m_per_s": float(steps.max() * traj.fps) if steps.size else 0.0,
        "mean_speed_m_per_s": float(steps.sum() / traj.duration) if traj.duration > 0 else 0.0,
        "max_angular_speed_deg_per_s": float(step_angles.max() * traj.fps) if step_angles.size else 0.0,
        "max_rotation_from_start_deg": float(rotation_angles_deg(R[:1], R).max()),
        "yaw_range_deg": [float(yaw.min()), float(yaw.max())],
        "pitch_range_deg": [float(pitch.min()), float(pitch.max())],
        "extent_m": (pos.max(axis=0) - pos.min(axis=0)).tolist(),
    }
    if traj.intrinsics is not None:
        fov = traj.intrinsics.fov_deg()
        info["image_size"] = [traj.intrinsics.width, traj.intrinsics.height]
        info["fov_deg"] = {"horizontal": [float(fov[:, 0].min()), float(fov[:, 0].max())],
                           "vertical": [float(fov[:, 1].min()), float(fov[:, 1].max())]}
    else:
        info["image_size"] = None
        info["fov_deg"] = None
    return info


def format_description(info: dict) -> str:
    """Human-readable lines for :func:`describe`'s output."""
    lines = [
        f"frames            {info['num_frames']} at {info['fps']:g} fps ({info['duration_s']:.2f} s)",
        f"path length       {info['path_length_m']:.3f} m (net displacement {info['net_displacement_m']:.3f} m)",
        f"speed             max {info['max_speed_m_per_s']:.3f} m/s, mean {info['mean_speed_m_per_s']:.3f} m/s",
        f"rotation          max {info['max_rotation_from_start_deg']:.1f} deg from start, "
        f"max {info['max_angular_speed_deg_per_s']:.1f} deg/s",
        f"yaw range         {info['yaw_range_deg'][0]:.1f} .. {info['yaw_range_deg'][1]:.1f} deg",
        f"pitch range       {info['pitch_range_deg'][0]:.1f} .. {info['pitch_range_deg'][1]:.1f} deg",
        "extent (x, y, z)  " + ", ".join(f"{v:.3f}" for v in info["extent_m"]) + " m",
    ]
    if info["fov_deg"] is None:
        lines.append("intrinsics        none")
    else:
        h, v = info["fov_deg"]["horizontal"], info["fov_deg"]["vertical"]
        w, hh = info["image_size"]
        lines.append(f"intrinsics        {w}x{hh} px, FOV {h[0]:.1f}-{h[1]:.1f} x {v[0]:.1f}-{v[1]:.1f} deg")
    return "\n".join(lines)
