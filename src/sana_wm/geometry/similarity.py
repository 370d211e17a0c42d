"""Similarity transforms between point sets and camera paths (Umeyama 1991).

The one Umeyama fit of the package: trajectory metrics align an estimate to a reference with it, window
joining chains overlapping reconstructions with it, and evaluation's ATE uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Sim3", "fit_sim3", "fit_sim3_poses", "umeyama_sim3"]

_EPS = 1e-12


@dataclass(frozen=True)
class Sim3:
    """``X' = s R X + t``: a similarity acting on world points, and on cameras by moving their world."""

    s: float
    R: np.ndarray  # (3, 3) rotation
    t: np.ndarray  # (3,)

    @classmethod
    def identity(cls) -> Sim3:
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """``(N, 3)`` points in the new world."""
        return self.s * np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def apply_c2w(self, c2w: np.ndarray) -> np.ndarray:
        """``(N, 4, 4)`` camera-to-world poses seeing the same scene in the new world: rotation ``R R_i``,
        centre moved like a point (the scene's scale changes, the cameras stay rigid)."""
        out = np.array(c2w, dtype=np.float64, copy=True)
        out[:, :3, :3] = self.R @ out[:, :3, :3]
        out[:, :3, 3] = self.apply_points(out[:, :3, 3])
        return out

    def compose(self, inner: Sim3) -> Sim3:
        """``self`` after ``inner``."""
        return Sim3(self.s * inner.s, self.R @ inner.R, self.s * self.R @ inner.t + self.t)


def umeyama_sim3(source: np.ndarray, target: np.ndarray, *, with_scale: bool = True
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s, R, t)`` minimising ``sum ||target_i - (s R source_i + t)||^2`` (Umeyama 1991, reflection
    guarded). ``source``, ``target``: ``(N, 3)``. A source collapsed to one point gets ``s = 0``."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 1:
        raise ValueError(f"umeyama_sim3: expected two (N, 3) arrays of the same shape, got {source.shape} "
                         f"and {target.shape}")
    mx, my = source.mean(axis=0), target.mean(axis=0)
    xc, yc = source - mx, target - my
    var_x = float(np.mean(np.sum(xc * xc, axis=1)))
    cov = yc.T @ xc / len(source)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    if with_scale:
        s = float(np.trace(np.diag(D) @ S) / var_x) if var_x > _EPS else 0.0
    else:
        s = 1.0
    t = my - s * R @ mx
    return s, R, t


def fit_sim3(source: np.ndarray, target: np.ndarray, *, with_scale: bool = True) -> Sim3:
    """:func:`umeyama_sim3` as a :class:`Sim3`."""
    s, R, t = umeyama_sim3(source, target, with_scale=with_scale)
    return Sim3(s, R, t)



def fit_sim3_poses(source_c2w: np.ndarray, target_c2w: np.ndarray) -> Sim3:
    """The similarity taking cameras ``source_c2w`` onto ``target_c2w`` (both ``(N, 4, 4)``), using their
    orientations as well as their centres.

    Centres alone leave the rotation about their line free when the cameras move in a straight line (a
    walk); the orientations fix it. ``R`` is the chordal mean of ``R_target_i R_source_i^T`` (SVD projection
    onto SO(3)); ``s`` and ``t`` then minimise ``sum ||c_target_i - (s R c_source_i + t)||^2``.
    """
    src, dst = np.asarray(source_c2w, np.float64), np.asarray(target_c2w, np.float64)
    M = np.sum(dst[:, :3, :3] @ np.swapaxes(src[:, :3, :3], 1, 2), axis=0)
    U, _, Vt = np.linalg.svd(M)
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    a = src[:, :3, 3] @ R.T
    b = dst[:, :3, 3]
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    var = float(np.sum(da * da))
    s = float(np.sum(da * db) / var) if var > _EPS else 1.0
    return Sim3(s, R, b.mean(axis=0) - s * a.mean(axis=0))
