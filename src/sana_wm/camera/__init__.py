"""Cameras: the canonical trajectory type, file formats, the action language, presets,
resampling, model conditioning and pictures."""

from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError

__all__ = ["Intrinsics", "Trajectory", "TrajectoryError"]
