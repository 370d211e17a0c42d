"""Trajectory errors of an estimated camera path against a reference: ATE and RPE.

Definitions (those of evo's ``evo_ape -as`` and ``evo_rpe -as --delta 1 --delta_unit s --all_pairs``, checked against
evo in the tests):

* The estimate is aligned to the reference by one similarity (Umeyama on the camera centres), since a
  monocular estimate is known up to a rotation, offset and scale of its world.
* ``ate``: RMSE of the aligned camera centres' distance to the reference's (reference units, metres);
  ``ate_percent``: the same as a percentage of the reference's path length.
* RPE over a step of ``delta_s`` seconds (``k = round(delta_s * fps)`` frames): for every ``i``, the relative
  motion ``E_i = (Q_i^-1 Q_{i+k})^-1 (P_i^-1 P_{i+k})`` between the reference ``Q`` and the aligned estimate
  ``P``; ``rpe_trans`` is the RMSE of ``|translation(E_i)|`` and ``rpe_rot_deg`` the RMSE of its angle, both
  per ``delta_s`` seconds.
* ``scale``: the alignment's scale (estimate units -> reference units). For an estimate that claims metric
  units, ``scale_error = |scale - 1|`` is its relative scale error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sana_wm.camera.stats import rotation_angles_deg
from sana_wm.camera.trajectory import invert_se3
from sana_wm.geometry.similarity import fit_sim3

__all__ = ["TrajectoryErrors", "ate", "path_length", "rpe", "trajectory_errors"]


def path_length(c2w: np.ndarray) -> float:
    """Sum of the distances between consecutive camera centres."""
    centres = np.asarray(c2w, dtype=np.float64)[:, :3, 3]
    return float(np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1)))


def ate(reference: np.ndarray, estimate: np.ndarray, *, with_scale: bool = True) -> tuple[float, float]:
    """``(rmse, scale)`` of the camera centres after the Umeyama similarity of the estimate onto the reference."""
    ref, est = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    sim = fit_sim3(est[:, :3, 3], ref[:, :3, 3], with_scale=with_scale)
    moved = sim.apply_points(est[:, :3, 3])
    return float(np.sqrt(np.mean(np.sum((ref[:, :3, 3] - moved) ** 2, axis=1)))), sim.s


def rpe(reference: np.ndarray, aligned_estimate: np.ndarray, step: int) -> tuple[float, float]:
    """``(translation RMSE, rotation RMSE in degrees)`` of relative motions over ``step`` frames; the
    estimate must already be in the reference's units (see :func:`trajectory_errors`)."""
    ref, est = np.asarray(reference, np.float64), np.asarray(aligned_estimate, np.float64)
    if step < 1 or step >= len(ref):
        raise ValueError(f"rpe: step must be between 1 and {len(ref) - 1} frames, got {step}")
    rel_ref = invert_se3(ref[:-step]) @ ref[step:]
    rel_est = invert_se3(est[:-step]) @ est[step:]
    err = invert_se3(rel_ref) @ rel_est
    trans = np.linalg.norm(err[:, :3, 3], axis=1)
    rot = rotation_angles_deg(np.tile(np.eye(3), (len(err), 1, 1)), err[:, :3, :3])
    return float(np.sqrt(np.mean(trans ** 2))), float(np.sqrt(np.mean(rot ** 2)))


@dataclass(frozen=True)
class TrajectoryErrors:
    """Errors of an estimate against a reference (see the module's definitions)."""

    ate: float  # metres (reference units), RMSE after the similarity fit
    ate_percent: float  # of the reference path length (inf when the reference does not move)
    rpe_trans: float  # reference units per delta_s seconds, RMSE
    rpe_rot_deg: float  # degrees per delta_s seconds, RMSE
    scale: float  # the similarity's scale
    path_length: float  # of the reference
    delta_s: float
    num_frames: int

    @property
    def scale_error(self) -> float:
        """``|scale - 1|``: the relative scale error of an estimate that claims metric units."""
        return abs(self.scale - 1.0)

    def summary(self) -> dict:
        return {"ate_m": self.ate, "ate_percent": self.ate_percent, "rpe_trans_m_per_s": self.rpe_trans / self.delta_s,
                "rpe_rot_deg_per_s": self.rpe_rot_deg / self.delta_s, "scale": self.scale,
                "scale_error": self.scale_error, "path_length_m": self.path_length, "num_frames": self.num_frames}


def trajectory_errors(reference: np.ndarray, estimate: np.ndarray, *, fps: float, delta_s: float = 1.0
                      ) -> TrajectoryErrors:
    """ATE and RPE of ``estimate`` against ``reference`` (both ``(F, 4, 4)`` c2w at ``fps``).

    The similarity of the ATE is applied to the estimate before the RPE, so both measure one aligned path.
    """
    ref, est = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    if ref.shape != est.shape or ref.ndim != 3 or ref.shape[1:] != (4, 4) or len(ref) < 2:
        raise ValueError(f"trajectory_errors: expected two (F, 4, 4) paths of the same length F >= 2, got "
                         f"{ref.shape} and {est.shape}")
    sim = fit_sim3(est[:, :3, 3], ref[:, :3, 3])
    aligned = sim.apply_c2w(est)
    ate_m = float(np.sqrt(np.mean(np.sum((ref[:, :3, 3] - aligned[:, :3, 3]) ** 2, axis=1))))
    length = path_length(ref)
    step = min(max(int(round(delta_s * fps)), 1), len(ref) - 1)
    rpe_t, rpe_r = rpe(ref, aligned, step)
    return TrajectoryErrors(ate=ate_m, ate_percent=100.0 * ate_m / length if length > 0 else float("inf"),
                            rpe_trans=rpe_t, rpe_rot_deg=rpe_r, scale=sim.s, path_length=length,
                            delta_s=step / fps, num_frames=len(ref))
