"""Pose backends: one interface, several ways to put a camera path on a shot.

A backend takes ``(F, H, W, 3)`` uint8 frames and the camera's :class:`~sana_wm.camera.trajectory.Intrinsics`
and returns a :class:`PoseResult`: c2w for every frame in a world of its own choosing (monocular: up to a
similarity), which frames it actually registered (the rest are interpolated), and the numbers a quality
filter reads (mean reprojection error in pixels where the backend has one). Registered backends are
listed in :data:`BACKENDS`; :func:`make_backend` builds one by name.

* ``opencv``: the light visual-odometry estimator of :mod:`sana_wm.geometry.odometry` (the one evaluation
  uses), frame to frame, no global refinement.
* ``pycolmap``: COLMAP's incremental mapper on keyframes chosen by parallax, every other frame
  registered against the keyframes' points, long shots in overlapping windows joined by similarity fits
  (:mod:`sana_wm.geometry.colmap`).
* ``learned``: a feed-forward relative-pose network whose weights the user provides
  (:mod:`sana_wm.geometry.learned`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sana_wm.camera.trajectory import Intrinsics

__all__ = ["BACKENDS", "OpenCVBackend", "PoseBackend", "PoseResult", "make_backend"]

BACKENDS = ("pycolmap", "opencv", "learned")


@dataclass(frozen=True)
class PoseResult:
    c2w: np.ndarray  # (F, 4, 4) camera-to-world, OpenCV axes, the backend's world and units
    registered: np.ndarray  # (F,) bool: frames the backend placed itself (others are interpolated)
    backend: str
    reprojection_error_px: float = math.nan  # mean over the reconstruction's observations, nan if unknown
    diagnostics: dict = field(default_factory=dict)  # JSON-ready facts about the run
    K: np.ndarray | None = None  # (3, 3) intrinsics the backend refined, in pixels of the frames; None: as given
    # Points the backend reconstructed itself (bundle-adjusted), as pixels and depths of the frames that see
    # them, in the units of `c2w`; None: the scale solvers triangulate their own (geometry.triangulation).
    points: list | None = None  # list[AnchorPoints]

    @property
    def registered_fraction(self) -> float:
        return float(np.mean(self.registered)) if len(self.registered) else 0.0


class PoseBackend(Protocol):
    name: str

    def estimate(self, frames: np.ndarray, intrinsics: Intrinsics, fps: float) -> PoseResult:
        """Camera path of ``frames`` ``(F, H, W, 3)`` uint8 filmed with ``intrinsics`` (of the frames' size)."""
        ...


class OpenCVBackend:
    """The evaluation's visual odometry (:func:`sana_wm.geometry.odometry.estimate_poses`) as a backend."""

    name = "opencv"

    def __init__(self, config=None):
        from sana_wm.geometry.odometry import PoseEstimatorConfig

        self.config = config or PoseEstimatorConfig()

    def estimate(self, frames: np.ndarray, intrinsics: Intrinsics, fps: float) -> PoseResult:
        from sana_wm.geometry.odometry import estimate_poses

        est = estimate_poses(frames, intrinsics, fps=fps, config=self.config)
        registered = np.array([m not in ("failed", "skipped") for m in est.method])
        return PoseResult(est.trajectory.c2w, registered, self.name, math.nan, est.diagnostics())


def make_backend(name: str, **options) -> PoseBackend:
    """A backend by name (:data:`BACKENDS`); ``options`` go to its constructor."""
    if name == "opencv":
        return OpenCVBackend(**options)
    if name == "pycolmap":
        from sana_wm.geometry.colmap import ColmapBackend

        return ColmapBackend(**options)
    if name == "learned":
        from sana_wm.geometry.learned import LearnedBackend

        return LearnedBackend(**options)
    raise ValueError(f"unknown pose backend {name!r}; choose one of {', '.join(BACKENDS)}")
