"""Stage 5: quality scores of an annotated clip and the thresholds that keep or reject it.

Every score is computed and recorded for every clip (``Clip.quality``), kept or not; a clip is rejected
when any score fails its threshold, and the report names each failed one. Defaults (:class:`QualityConfig`):

==================== ================================================================ =============
score                meaning                                                          kept when
==================== ================================================================ =============
registered_fraction  frames the pose backend placed itself (the rest interpolated)    >= 0.9
reprojection_px      mean reprojection error of the reconstruction (if it has one)    <= 1.5
blur                 median over frames of the variance of the Laplacian of the luma  >= 20
exposure_dark        fraction of pixels at luma <= 5                                   <= 0.3
exposure_bright      fraction of pixels at luma >= 250                                 <= 0.3
speed_m_s            95th percentile camera speed (metres/s; needs a metric scale)     <= 5
rotation_deg_s       95th percentile rotation rate (degrees/s)                         <= 120
motion               path length (m) + total rotation (deg) / 30: 0 = a static camera  >= 0.05
scale_spread         relative spread of the scale's single measurements                <= 0.75
==================== ================================================================ =============

A clip whose scale is unobservable (pure rotation) is not rejected for it: its path is a rotation and
``scale_observable = 0`` says so; ``speed_m_s`` is then 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from sana_wm.camera.stats import rotation_angles_deg

__all__ = ["QualityConfig", "failed_checks", "quality_scores"]


@dataclass(frozen=True)
class QualityConfig:
    min_registered_fraction: float = 0.9
    max_reprojection_px: float = 1.5
    min_blur: float = 20.0
    max_exposure_dark: float = 0.3
    max_exposure_bright: float = 0.3
    max_speed_m_s: float = 5.0
    max_rotation_deg_s: float = 120.0
    min_motion: float = 0.05
    # Measured: 0.03 on 640x360 footage, 0.5-0.6 on 192x108, 0.8 where odometry invents translation for a
    # camera that only turns (the clip whose scale must not be trusted).
    max_scale_spread: float = 0.75

    def to_json(self) -> dict:
        return asdict(self)


def quality_scores(frames: np.ndarray, c2w: np.ndarray, fps: float, *, registered_fraction: float,
                   reprojection_px: float, scale_spread: float, scale_observable: bool) -> dict[str, float]:
    """The scores of the module's table for one clip (``c2w`` in metres when the scale is observable)."""
    step = max(1, len(frames) // 16)  # image scores on at most ~16 frames: they change slowly
    luma = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames[::step]])
    blur = float(np.median([cv2.Laplacian(g, cv2.CV_64F).var() for g in luma]))
    steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1) * fps
    rot = rotation_angles_deg(c2w[:-1, :3, :3], c2w[1:, :3, :3]) * fps
    length = float(np.sum(steps) / fps)
    turn = float(np.sum(rot) / fps)
    return {
        "registered_fraction": float(registered_fraction),
        "reprojection_px": float(reprojection_px) if math.isfinite(reprojection_px) else -1.0,
        "blur": blur,
        "exposure_dark": float(np.mean(luma <= 5)),
        "exposure_bright": float(np.mean(luma >= 250)),
        "speed_m_s": float(np.percentile(steps, 95)) if scale_observable and len(steps) else 0.0,
        "rotation_deg_s": float(np.percentile(rot, 95)) if len(rot) else 0.0,
        "motion": (length if scale_observable else 0.0) + turn / 30.0,
        "scale_spread": float(scale_spread) if math.isfinite(scale_spread) else -1.0,
        "scale_observable": float(scale_observable),
    }


def failed_checks(scores: dict[str, float], config: QualityConfig) -> list[str]:
    """Names and values of the scores that fail their thresholds, e.g. ``"blur 3.1 < 20"``."""
    c = config
    fails = []

    def low(name, bound):
        if scores[name] < bound:
            fails.append(f"{name} {scores[name]:.3g} < {bound:g}")

    def high(name, bound):
        if scores[name] > bound:
            fails.append(f"{name} {scores[name]:.3g} > {bound:g}")

    low("registered_fraction", c.min_registered_fraction)
    if scores["reprojection_px"] >= 0:
        high("reprojection_px", c.max_reprojection_px)
    low("blur", c.min_blur)
    high("exposure_dark", c.max_exposure_dark)
    high("exposure_bright", c.max_exposure_bright)
    high("speed_m_s", c.max_speed_m_s)
    high("rotation_deg_s", c.max_rotation_deg_s)
    low("motion", c.min_motion)
    if scores["scale_observable"] and scores["scale_spread"] >= 0:
        high("scale_spread", c.max_scale_spread)
    return fails
