"""Metric scale of a monocular reconstruction, with its uncertainty.

Every solver returns a :class:`ScaleEstimate`: the factor that turns reconstruction units into metres, the
source it came from, and how well it is known. Sources:

* ``depth``: the ratio of a metric depth (a depth model's, or the ground truth's) to the reconstructed
  depth at triangulated points. The ratios are averaged in log space robustly: median, then the points
  within ``3 x 1.4826 x MAD`` of it are averaged. ``spread`` is the relative dispersion of single ratios
  (``exp(1.4826 MAD) - 1``) and ``uncertainty`` the relative standard error of the mean
  (``spread / sqrt(n)``).
* ``camera_height``: a known camera height above a ground plane fitted (RANSAC) to the points below the
  cameras.
* ``user``: a factor given by the user (``--scale``), uncertainty 0 as far as we know.

A reconstruction whose cameras do not translate (pure rotation: no triangulated points, or a baseline
that is a negligible fraction of the scene depth) has no observable scale: ``observable`` is False and
``scale`` is 1 (the path is then a rotation about a fixed point, which is metric at any scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ScaleEstimate", "scale_from_camera_height", "scale_from_depth_ratios", "scale_unobservable",
           "user_scale"]

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class ScaleEstimate:
    scale: float  # metres per reconstruction unit
    source: str  # "depth:<model or ground-truth>", "camera_height", "user", "none"
    observable: bool
    spread: float  # relative dispersion of the single measurements (0 when there is one measurement)
    uncertainty: float  # relative standard error of `scale`
    num_samples: int
    reason: str = ""  # why it is unobservable, or notes
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"scale": float(self.scale), "source": self.source, "observable": bool(self.observable),
                "spread": float(self.spread), "uncertainty": float(self.uncertainty),
                "num_samples": int(self.num_samples), "reason": self.reason,
                **({"details": self.details} if self.details else {})}


def scale_unobservable(reason: str, source: str = "none") -> ScaleEstimate:
    return ScaleEstimate(1.0, source, False, float("inf"), float("inf"), 0, reason)


def user_scale(value: float) -> ScaleEstimate:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"a scale must be a positive finite number, got {value}")
    return ScaleEstimate(float(value), "user", True, 0.0, 0.0, 1, "given with --scale")


def scale_from_depth_ratios(metric_depth: np.ndarray, reconstructed_depth: np.ndarray, *, source: str,
                            min_samples: int = 20) -> ScaleEstimate:
    """Scale from paired depths at the same points (``(N,)`` each; non-positive or non-finite pairs are
    dropped, e.g. sky or pixels a depth model leaves empty). See the module doc for the averaging."""
    m = np.asarray(metric_depth, np.float64).ravel()
    r = np.asarray(reconstructed_depth, np.float64).ravel()
    ok = np.isfinite(m) & np.isfinite(r) & (m > 0) & (r > 0)
    if ok.sum() < min_samples:
        return scale_unobservable(f"{int(ok.sum())} points with a valid depth (fewer than {min_samples}): the "
                                  "camera may only rotate, or the scene is too far or textureless", source)
    logs = np.log(m[ok] / r[ok])
    med = float(np.median(logs))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(logs - med)))
    inliers = logs[np.abs(logs - med) <= max(3.0 * sigma, 1e-12)]
    mean = float(np.mean(inliers))
    spread = float(np.expm1(sigma))
    return ScaleEstimate(float(np.exp(mean)), source, True, spread, float(spread / np.sqrt(len(inliers))),
                         len(inliers),
                         details={"points": int(ok.sum()), "outliers": int(ok.sum() - len(inliers))})


def scale_from_camera_height(points: np.ndarray, c2w: np.ndarray, height_m: float, *, iterations: int = 500,
                             seed: int = 0, min_inliers: int = 30) -> ScaleEstimate:
    """Scale from a known camera height: fit the ground plane to world ``points`` ``(N, 3)`` below the
    cameras ``c2w`` ``(F, 4, 4)`` (RANSAC; the plane's normal must lie within 30 degrees of the cameras' mean
    down axis, +y in OpenCV axes), then ``scale = height_m / median(distance of the centres to the plane)``."""
    if not (np.isfinite(height_m) and height_m > 0):
        raise ValueError(f"a camera height must be a positive number of metres, got {height_m}")
    P = np.asarray(points, np.float64)
    down = np.mean(c2w[:, :3, 1], axis=0)
    down /= max(np.linalg.norm(down), 1e-12)
    centres = c2w[:, :3, 3]
    below = P[(P - centres.mean(axis=0)) @ down > 0]
    if len(below) < min_inliers:
        return scale_unobservable(f"{len(below)} points below the cameras; no ground plane to measure the height "
                                  "from", "camera_height")
    rng = np.random.default_rng(seed)
    extent = np.median(np.abs((below - centres.mean(axis=0)) @ down))
    threshold = 0.02 * extent
    best, best_n = None, 0
    for _ in range(iterations):
        a, b, c = below[rng.choice(len(below), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        if abs(n @ down) < np.cos(np.radians(30)):
            continue
        count = int(np.sum(np.abs((below - a) @ n) < threshold))
        if count > best_n:
            best, best_n = (n, a), count
    if best is None or best_n < min_inliers:
        return scale_unobservable("no ground plane found among the points below the cameras", "camera_height")
    n, a = best
    inl = below[np.abs((below - a) @ n) < threshold]
    centroid = inl.mean(axis=0)  # refit the plane to its inliers (least squares)
    _, _, Vt = np.linalg.svd(inl - centroid)
    n = Vt[2] * np.sign(Vt[2] @ down)
    heights = (centroid - centres) @ n
    if np.median(heights) <= 0:
        return scale_unobservable("the fitted ground plane is above the cameras", "camera_height")
    h = float(np.median(heights))
    spread = float(np.std(heights) / h)
    return ScaleEstimate(height_m / h, "camera_height", True, spread, float(spread / np.sqrt(len(heights))), len(inl),
                         details={"height_m": height_m, "plane_inliers": len(inl)})
