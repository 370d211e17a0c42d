"""Sparse 3D points from a video and its camera path: corners of an anchor frame tracked forwards until
the baseline is wide enough, then triangulated (linear DLT) with the known poses.

Whatever backend placed the cameras, the metric-scale solvers read depths from these points, so every
backend is scaled the same way. Points are kept only if they lie in front of both cameras, are seen under
at least ``min_angle_deg`` of parallax and reproject within ``max_reprojection_px`` in both views.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sana_wm.camera.trajectory import invert_se3
from sana_wm.geometry.keyframes import _corners, _gray, track_points

__all__ = ["AnchorPoints", "triangulate_pair", "triangulate_anchors"]


@dataclass(frozen=True)
class AnchorPoints:
    """Points triangulated from one anchor frame: pixels in that frame and their depth (camera z) in the
    reconstruction's units."""

    frame: int
    pixels: np.ndarray  # (N, 2) x, y in pixels of the anchor frame
    depth: np.ndarray  # (N,) z in the anchor camera, reconstruction units
    angle_deg: np.ndarray  # (N,) triangulation angle


def triangulate_pair(K: np.ndarray, c2w_a: np.ndarray, c2w_b: np.ndarray, pa: np.ndarray, pb: np.ndarray,
                     *, min_angle_deg: float = 1.0, max_reprojection_px: float = 2.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points ``(N, 3)``, a keep mask ``(N,)`` and triangulation angles ``(N,)`` from pixels ``pa`` in
    camera a and ``pb`` in camera b."""
    w2c_a, w2c_b = invert_se3(c2w_a), invert_se3(c2w_b)
    Xh = cv2.triangulatePoints(K @ w2c_a[:3], K @ w2c_b[:3], pa.T.astype(np.float64), pb.T.astype(np.float64)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        X = Xh[:, :3] / Xh[:, 3:4]
    ok = np.isfinite(X).all(axis=1)
    X = np.where(ok[:, None], X, 0.0)
    ra, rb = X - c2w_a[:3, 3], X - c2w_b[:3, 3]
    cos = np.sum(ra * rb, axis=1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    ok &= angle >= min_angle_deg
    for w2c, p in ((w2c_a, pa), (w2c_b, pb)):
        Xc = X @ w2c[:3, :3].T + w2c[:3, 3]
        ok &= Xc[:, 2] > 1e-9
        proj = Xc @ K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.linalg.norm(proj[:, :2] / proj[:, 2:3] - p, axis=1)
        ok &= np.nan_to_num(err, nan=np.inf) < max_reprojection_px
    return X, ok, angle


def triangulate_anchors(frames: np.ndarray, c2w: np.ndarray, K: np.ndarray, registered: np.ndarray, *,
                        anchor_step: int = 10, max_track: int = 30, target_angle_deg: float = 3.0,
                        min_angle_deg: float = 1.0, max_corners: int = 300) -> list[AnchorPoints]:
    """Points from every ``anchor_step``-th registered frame (see the module doc). ``K``: ``(3, 3)``.

    Corners of the anchor are tracked frame by frame for at most ``max_track`` frames; tracking stops at
    the first registered frame where the median triangulation angle reaches ``target_angle_deg``. Under
    pure rotation no frame gets there and the anchor yields no points.
    """
    F = len(frames)
    out: list[AnchorPoints] = []
    for a in range(0, F, max(anchor_step, 1)):
        if not registered[a]:
            continue
        gray = _gray(frames[a])
        start = _corners(gray, max_corners)
        cur, alive, prev = start.copy(), np.ones(len(start), bool), gray
        best: AnchorPoints | None = None
        for b in range(a + 1, min(a + max_track, F - 1) + 1):
            g = _gray(frames[b])
            idx = np.flatnonzero(alive)
            moved, ok = track_points(prev, g, cur[idx])
            alive[idx[~ok]] = False
            cur[idx[ok]] = moved[ok]
            prev = g
            if alive.sum() < 8:
                break
            if not registered[b]:
                continue
            idx = np.flatnonzero(alive)
            X, keep, angle = triangulate_pair(K, c2w[a], c2w[b], start[idx], cur[idx], min_angle_deg=min_angle_deg)
            if keep.sum() >= 8:
                z = (X[keep] - c2w[a][:3, 3]) @ c2w[a][:3, :3][:, 2]
                best = AnchorPoints(a, start[idx][keep].astype(np.float64), z, angle[keep])
                if np.median(angle[keep]) >= target_angle_deg:
                    break
        if best is not None:
            out.append(best)
    return out
