"""Image motion of a video against a reference video: does the picture move the way the truth moves?

Pose estimation needs frames sharp enough to match features; a small or early model makes blurry frames,
and then a camera error says more about the estimator than about the model. This measure needs no
features: dense optical flow (OpenCV's Farneback) between consecutive frames, summarised per frame pair
by the least-squares affine motion field ``u(x) = b + A x`` over the image, with ``x`` the pixel position
relative to the image centre divided by half the image size. The six numbers ``(b_x, b_y, A_xx, A_xy,
A_yx, A_yy)`` are all in pixels (``A`` is the displacement at the image edge): ``b`` is pan and tilt,
the diagonal of ``A`` is zoom (walking forward), its antisymmetric part is roll.

:func:`motion_agreement` compares the two series of six numbers over the whole clip:

* ``gain``: the least-squares slope of the video's motion on the reference's, ``<m, r> / <r, r>``:
  1 moves like the truth, 0 does not move (or moves unrelated to it), 0.3 moves a third as much,
  negative moves the other way. ``None`` when the reference does not move.
* ``corr``: their Pearson correlation: whether the motion has the right direction and timing,
  whatever its size. ``None`` when either video does not move (RMS motion below ``MIN_MOTION_PX``: the
  flow of two identical frames is not exactly zero, and a correlation of that noise means nothing).

A video that repeats its first frame gets gain 0; a perfect model gets 1 (up to flow noise).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MIN_MOTION_PX", "affine_flow", "motion_agreement"]

MIN_MOTION_PX = 0.01  # RMS affine motion per frame pair below which a video "does not move"

_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
              "flags": 0}


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def affine_flow(frames) -> np.ndarray:
    """``(F - 1, 6)`` affine motion ``(b_x, b_y, A_xx, A_xy, A_yx, A_yy)`` in pixels between consecutive
    frames of ``(F, H, W[, 3])`` uint8 frames (module doc)."""
    video = np.asarray(frames)
    if video.dtype != np.uint8 or video.ndim not in (3, 4) or len(video) < 2:
        raise ValueError(f"affine_flow: expected (F, H, W[, 3]) uint8 frames with F >= 2, got {video.shape} "
                         f"{video.dtype}")
    H, W = video.shape[1:3]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    xn = (xs - (W - 1) / 2) / (W / 2)
    yn = (ys - (H - 1) / 2) / (H / 2)
    design = np.stack([np.ones(H * W), xn.ravel(), yn.ravel()], axis=1)  # (HW, 3)
    pinv = np.linalg.pinv(design)  # (3, HW)
    out = np.zeros((len(video) - 1, 6))
    prev = _gray(video[0])
    for i in range(1, len(video)):
        cur = _gray(video[i])
        flow = cv2.calcOpticalFlowFarneback(prev, cur, None, **_FARNEBACK).reshape(-1, 2).astype(np.float64)
        coef = pinv @ flow  # rows: constant, x, y; columns: u_x, u_y
        out[i - 1] = (coef[0, 0], coef[0, 1], coef[1, 0], coef[2, 0], coef[1, 1], coef[2, 1])
        prev = cur
    return out


def motion_agreement(video, reference, *, reference_flow: np.ndarray | None = None) -> dict:
    """``{"gain", "corr", "magnitude", "reference_magnitude"}`` of ``video`` against ``reference`` (module
    doc); ``magnitude``: RMS of the video's six motion numbers per frame pair, in pixels.
    ``reference_flow`` (:func:`affine_flow` of the reference) saves recomputing it for several videos."""
    m = affine_flow(video)
    r = affine_flow(reference) if reference_flow is None else np.asarray(reference_flow, dtype=np.float64)
    n = min(len(m), len(r))
    if n < 1:
        raise ValueError("motion_agreement: need at least two frames in both videos")
    m, r = m[:n].ravel(), r[:n].ravel()
    mag, ref_mag = float(np.sqrt(np.mean(m * m) * 6)), float(np.sqrt(np.mean(r * r) * 6))
    gain = float(m @ r / (r @ r)) if ref_mag >= MIN_MOTION_PX else None
    mc, rc = m - m.mean(), r - r.mean()
    denom = float(np.sqrt((mc @ mc) * (rc @ rc)))
    moving = mag >= MIN_MOTION_PX and ref_mag >= MIN_MOTION_PX and denom > 0
    corr = float(mc @ rc / denom) if moving else None
    return {"gain": gain, "corr": corr, "magnitude": mag, "reference_magnitude": ref_mag}
