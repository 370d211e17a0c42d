"""Keyframes of a video by parallax: a new keyframe whenever the image has moved enough since the last one.

Corners of the last keyframe are tracked frame to frame (pyramidal Lucas-Kanade, checked forwards and
backwards); a frame becomes a keyframe when the median displacement of the tracked corners reaches
``min_parallax`` of the image width (enough baseline to triangulate against the previous keyframe), or
when fewer than ``min_tracked_fraction`` of them survive (the view is leaving the keyframe's). Static
stretches produce no keyframes, so a mapper spends its time only where the camera moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["KeyframeConfig", "select_keyframes", "track_points"]


@dataclass(frozen=True)
class KeyframeConfig:
    min_parallax: float = 0.05  # median corner displacement since the last keyframe, fraction of the image width
    min_tracked_fraction: float = 0.5
    max_gap: int = 30  # a keyframe at least every this many frames, whatever the motion
    max_corners: int = 400


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _corners(gray: np.ndarray, max_corners: int) -> np.ndarray:
    pts = cv2.goodFeaturesToTrack(gray, maxCorners=max_corners, qualityLevel=0.01, minDistance=7)
    return np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2).astype(np.float32)


def track_points(gray_a: np.ndarray, gray_b: np.ndarray, points: np.ndarray, *, max_error_px: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Track ``(N, 2)`` pixel ``points`` from image a to image b; returns ``(points in b, ok mask)``.

    A point is kept only if tracking it back from b lands within ``max_error_px`` of where it started.
    """
    if len(points) == 0:
        return points.copy(), np.zeros(0, bool)
    p0 = points.reshape(-1, 1, 2).astype(np.float32)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, p0, None, winSize=(21, 21), maxLevel=3)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray_b, gray_a, p1, None, winSize=(21, 21), maxLevel=3)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < max_error_px)
    h, w = gray_b.shape[:2]
    p1 = p1.reshape(-1, 2)
    ok &= (p1[:, 0] >= 0) & (p1[:, 0] < w) & (p1[:, 1] >= 0) & (p1[:, 1] < h)
    return p1, ok


def select_keyframes(frames: np.ndarray, config: KeyframeConfig | None = None) -> list[int]:
    """Indices of keyframes of ``(F, H, W[, 3])`` uint8 frames; the first and the last frame always are."""
    cfg = config or KeyframeConfig()
    F = len(frames)
    if F == 0:
        return []
    keys = [0]
    prev = _gray(frames[0])
    start = _corners(prev, cfg.max_corners)
    current = start.copy()
    alive = np.ones(len(start), bool)
    for f in range(1, F):
        gray = _gray(frames[f])
        moved, ok = track_points(prev, gray, current[alive])
        idx = np.flatnonzero(alive)
        alive[idx[~ok]] = False
        current[idx[ok]] = moved[ok]
        prev = gray
        tracked = alive.sum() / max(len(start), 1)
        parallax = float(np.median(np.linalg.norm(current[alive] - start[alive], axis=1))) if alive.any() else np.inf
        moved_enough = parallax >= cfg.min_parallax * prev.shape[1]
        if moved_enough or tracked < cfg.min_tracked_fraction or f - keys[-1] >= cfg.max_gap:
            keys.append(f)
            start = _corners(gray, cfg.max_corners)
            current = start.copy()
            alive = np.ones(len(start), bool)
    if keys[-1] != F - 1:
        keys.append(F - 1)
    return keys
