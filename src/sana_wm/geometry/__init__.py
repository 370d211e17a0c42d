"""Camera geometry from video: pose backends, similarity fits, keyframes, window joining, metric scale and
trajectory errors. Annotation (``sana-wm annotate``) and evaluation both use it.

    backend = make_backend("pycolmap")                    # or "opencv", "learned"
    result = backend.estimate(frames, intrinsics, fps)    # PoseResult: c2w up to a similarity, registered mask
    trajectory_errors(reference_c2w, result.c2w, fps=fps) # ATE (after Umeyama), RPE per second

OpenCV and pycolmap are imported by the modules that need them, not here.
"""

from sana_wm.geometry.backends import BACKENDS, PoseBackend, PoseResult, make_backend
from sana_wm.geometry.metrics import TrajectoryErrors, ate, path_length, rpe, trajectory_errors
from sana_wm.geometry.scale import (
    ScaleEstimate,
    scale_from_camera_height,
    scale_from_depth_ratios,
    scale_unobservable,
    user_scale,
)
from sana_wm.geometry.similarity import Sim3, fit_sim3, fit_sim3_poses, umeyama_sim3
from sana_wm.geometry.windows import WindowJoin, join_windows, plan_windows

__all__ = [
    "BACKENDS",
    "PoseBackend",
    "PoseResult",
    "ScaleEstimate",
    "Sim3",
    "TrajectoryErrors",
    "WindowJoin",
    "ate",
    "fit_sim3",
    "fit_sim3_poses",
    "join_windows",
    "make_backend",
    "path_length",
    "plan_windows",
    "rpe",
    "scale_from_camera_height",
    "scale_from_depth_ratios",
    "scale_unobservable",
    "trajectory_errors",
    "umeyama_sim3",
    "user_scale",
]
