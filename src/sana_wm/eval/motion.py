"""Image motion of a video against a reference video: does the picture move the way the truth moves?

Pose estimation needs frames sharp enough to match features; a small or early model makes blurry frames,
and then a camera error says more about the estimator than about the model. This measure needs no
features: the affine motion ``u(x) = b + A x`` that best aligns each frame with the next, found by OpenCV's
ECC image alignment (``findTransformECC``, ``MOTION_AFFINE``), which maximises the correlation of the
two whole images and so still works on smooth, blurry frames (dense optical flow does not: Farneback flow
on the ground truth blurred by a Gaussian of 4 pixels recovered only 7-28% of its motion on our scenes,
ECC 81-130%). ``x`` is the pixel position relative to the image centre divided by half the image size,
so the six numbers ``(b_x, b_y, A_xx, A_xy, A_yx, A_yy)`` are all in pixels (``A`` is the displacement at
the image edge): ``b`` is pan and tilt, the diagonal of ``A`` is zoom (walking forward), its
antisymmetric part is roll. A pair that ECC cannot align (a flat frame, no convergence) is a failure, not
a standstill: its six numbers are NaN, it is left out of the comparison and counted (``failed_pairs``).

:func:`motion_agreement` compares the two series of six numbers over the whole clip:

* ``gain``: the least-squares slope of the video's motion on the reference's, ``<m, r> / <r, r>``:
  1 moves like the truth, 0 does not move (or moves unrelated to it), 0.3 moves a third as much,
  negative moves the other way. ``None`` when the reference does not move.
* ``corr``: their Pearson correlation: whether the motion has the right direction and timing,
  whatever its size. ``None`` when either video does not move (RMS motion below ``MIN_MOTION_PX``: the
  flow of two identical frames is not exactly zero, and a correlation of that noise means nothing).
* ``pairs``, ``failed_pairs`` / ``reference_failed_pairs``: the frame pairs compared, and those of each
  video that ECC could not align. ``gain``, ``corr`` and the magnitudes use only the pairs aligned in both
  videos (all ``None`` when there are none).

A video that repeats its first frame gets gain 0; a perfect model gets 1 (up to flow noise).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MIN_MOTION_PX", "affine_flow", "motion_agreement"]

MIN_MOTION_PX = 0.01  # RMS affine motion per frame pair below which a video "does not move"

_ECC_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-5)  # iterations, correlation change
_ECC_BLUR = 5  # Gaussian pre-filter of findTransformECC, in pixels


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def affine_flow(frames) -> np.ndarray:
    """``(F - 1, 6)`` affine motion ``(b_x, b_y, A_xx, A_xy, A_yx, A_yy)`` in pixels from each frame to the
    next of ``(F, H, W[, 3])`` uint8 frames (module doc); a pair ECC cannot align gets NaNs."""
    video = np.asarray(frames)
    if video.dtype != np.uint8 or video.ndim not in (3, 4) or len(video) < 2:
        raise ValueError(f"affine_flow: expected (F, H, W[, 3]) uint8 frames with F >= 2, got {video.shape} "
                         f"{video.dtype}")
    H, W = video.shape[1:3]
    centre = np.array([(W - 1) / 2, (H - 1) / 2])
    out = np.zeros((len(video) - 1, 6))
    prev = _gray(video[0]).astype(np.float32)
    for i in range(1, len(video)):
        cur = _gray(video[i]).astype(np.float32)
        warp = np.eye(2, 3, dtype=np.float32)
        try:  # warp maps a pixel of the earlier frame to where its content is in the later one
            _, warp = cv2.findTransformECC(prev, cur, warp, cv2.MOTION_AFFINE, _ECC_CRITERIA, None, _ECC_BLUR)
        except cv2.error:  # no texture to align, or no convergence: unknown motion, not zero motion
            out[i - 1] = np.nan
            prev = cur
            continue
        L = warp[:, :2].astype(np.float64) - np.eye(2)  # u(p) = L p + t in pixels
        b = warp[:, 2].astype(np.float64) + L @ centre  # the displacement at the image centre
        out[i - 1] = (b[0], b[1], L[0, 0] * W / 2, L[0, 1] * H / 2, L[1, 0] * W / 2, L[1, 1] * H / 2)
        prev = cur
    return out


def motion_agreement(video, reference, *, reference_flow: np.ndarray | None = None) -> dict:
    """``{"gain", "corr", "magnitude", "reference_magnitude", "pairs", "failed_pairs", "reference_failed_pairs"}``
    of ``video`` against ``reference`` (module doc); ``magnitude``: RMS of the video's six motion numbers per
    frame pair, in pixels. ``reference_flow`` (:func:`affine_flow` of the reference) saves recomputing it for
    several videos."""
    m = affine_flow(video)
    r = affine_flow(reference) if reference_flow is None else np.asarray(reference_flow, dtype=np.float64)
    n = min(len(m), len(r))
    if n < 1:
        raise ValueError("motion_agreement: need at least two frames in both videos")
    m_ok, r_ok = np.isfinite(m[:n]).all(axis=1), np.isfinite(r[:n]).all(axis=1)
    counts = {"pairs": n, "failed_pairs": int((~m_ok).sum()), "reference_failed_pairs": int((~r_ok).sum())}
    both = m_ok & r_ok
    if not both.any():
        return {"gain": None, "corr": None, "magnitude": None, "reference_magnitude": None, **counts}
    m, r = m[:n][both].ravel(), r[:n][both].ravel()
    mag, ref_mag = float(np.sqrt(np.mean(m * m) * 6)), float(np.sqrt(np.mean(r * r) * 6))
    gain = float(m @ r / (r @ r)) if ref_mag >= MIN_MOTION_PX else None
    mc, rc = m - m.mean(), r - r.mean()
    denom = float(np.sqrt((mc @ mc) * (rc @ rc)))
    moving = mag >= MIN_MOTION_PX and ref_mag >= MIN_MOTION_PX and denom > 0
    corr = float(mc @ rc / denom) if moving else None
    return {"gain": gain, "corr": corr, "magnitude": mag, "reference_magnitude": ref_mag, **counts}
