"""Camera-following errors between an estimated and a reference camera path.

Conventions (``docs``: shared/reference/evaluation.md §1.3, §1.5, §1.10):

* Both paths are made relative to their first frame, ``P_i <- P_0^{-1} P_i`` ("left" relativisation),
  after the optional drop of frame 0 (a generator that copies the conditioning frame gets it for free).
* The estimate is known only up to a global scale (monocular pose estimation), so it is aligned to the
  reference before the errors are measured. Two alignments:

  - ``"sim3_extrinsics"`` (default, the SANA-WM benchmark's): one similarity fitted on the w2c
    extrinsics, rotation by SVD of ``mean_i Rg_i^T Re_i`` (no det guard, as released), then scale and
    offset by least squares on camera-frame translations. We default to it because it is the benchmark
    we reproduce; it absorbs a global rotation offset and any scale error, hence ``ScaleErr`` beside it.
  - ``"scale"``: no rotation alignment; a single least-squares scale ``s = argmin sum ||c_gt - s c_est||^2``
    on the relativised camera centres (the WorldScore-style fit, squared). Use it when a constant
    rotation offset should count as an error.

* Per frame, then mean over frames: ``RotErr`` (geodesic angle, degrees), ``TransErr_rel``
  (``||c_gt - c_est'||``, reference units), ``CamMC_rel`` (Frobenius norm of the 3x4 c2w difference).
* ``ATE``: RMSE of camera centres after a Umeyama Sim(3) fit on the centres (evo ``-as``,
  :func:`sana_wm.geometry.metrics.ate`), independent of the alignment above;
  ``ScaleErr = |ln s|`` with ``s`` the alignment's scale (meaningful only when the
  estimate claims metric scale).

A reference that hardly moves (largest distance from the first camera below ``min_translation``) makes
every translation number a ratio of noise: they are reported as ``None`` (undefined), never as a
division by ~0. Rotation errors stay defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sana_wm.camera.stats import rotation_angles_deg
from sana_wm.camera.trajectory import Trajectory, as_c2w_array, invert_se3, relative_poses
from sana_wm.geometry.metrics import ate as ate_rmse
from sana_wm.geometry.similarity import umeyama_sim3

__all__ = [
    "ALIGNMENTS",
    "CameraErrors",
    "align_scale",
    "align_sim3_extrinsics",
    "camera_errors",
    "umeyama_sim3",
]

ALIGNMENTS = ("sim3_extrinsics", "scale")
MIN_TRANSLATION = 1e-2  # metres: a reference whose cameras stay within 1 cm of the start "does not move"
_EPS = 1e-12


@dataclass(frozen=True)
class CameraErrors:
    """Errors of an estimated path against a reference (means over frames; per-frame arrays beside them).

    Translation fields are ``None`` when ``translation_defined`` is False (reference does not move).
    """

    RotErr: float  # degrees, mean over frames
    TransErr_rel: float | None  # reference units (metres), mean over frames
    CamMC_rel: float | None
    ATE: float | None  # RMSE of centres after Umeyama Sim(3)
    ScaleErr: float | None  # |ln s| of the alignment's scale
    scale: float | None  # the alignment's scale (estimate units -> reference units)
    rot_err_per_frame: np.ndarray  # (N,) degrees
    trans_err_per_frame: np.ndarray | None  # (N,)
    cammc_per_frame: np.ndarray | None  # (N,)
    alignment: str
    num_frames: int
    translation_defined: bool
    reference_extent: float  # max distance of a reference camera from the first one
    # The two paths as compared: (N, 4, 4) c2w after truncation, frame-0 drop and relativisation; the estimate
    # after the alignment (for plots of the estimated path over the requested one).
    reference_c2w: np.ndarray | None = None
    aligned_c2w: np.ndarray | None = None

    def summary(self) -> dict:
        """The scalar fields as a JSON-ready dict."""
        return {"RotErr": self.RotErr, "TransErr_rel": self.TransErr_rel, "CamMC_rel": self.CamMC_rel,
                "ATE": self.ATE, "ScaleErr": self.ScaleErr, "scale": self.scale, "alignment": self.alignment,
                "num_frames": self.num_frames, "translation_defined": self.translation_defined,
                "reference_extent": self.reference_extent}


def _c2w(path, what: str) -> np.ndarray:
    return path.c2w if isinstance(path, Trajectory) else as_c2w_array(path, what=what)


def align_sim3_extrinsics(ref_c2w: np.ndarray, est_c2w: np.ndarray) -> tuple[np.ndarray, float]:
    """The SANA-WM alignment (PyTorch3D ``cameras_alignment`` "extrinsics" mode) of ``est`` onto ``ref``.

    Returns the aligned estimate as c2w ``(N, 4, 4)`` and the fitted scale. Works on w2c ``[R|t]``:
    ``Q = V U^T`` from the SVD of ``mean_i Rg_i^T Re_i``; with ``a_i = Re_i^T te_i`` and
    ``b_i = Re_i^T tg_i``, ``s = mean((a - a_mean) . (b - b_mean)) / mean(|a - a_mean|^2)`` and
    ``u = b_mean - s a_mean``; aligned ``R'_i = Re_i Q``, ``t'_i = Re_i u + s te_i``. An estimate whose
    cameras all sit at one point gets ``s = 0`` (the limit of the fit), not a division by zero.
    """
    wg, we = invert_se3(ref_c2w), invert_se3(est_c2w)
    Rg, tg = wg[:, :3, :3], wg[:, :3, 3]
    Re, te = we[:, :3, :3], we[:, :3, 3]
    M = np.mean(np.swapaxes(Rg, 1, 2) @ Re, axis=0)
    U, _, Vt = np.linalg.svd(M)
    Q = Vt.T @ U.T
    ReT = np.swapaxes(Re, 1, 2)
    a = np.einsum("nij,nj->ni", ReT, te)
    b = np.einsum("nij,nj->ni", ReT, tg)
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    var = float(np.mean(da * da))
    s = float(np.mean(da * db) / var) if var > _EPS else 0.0
    u = b.mean(axis=0) - s * a.mean(axis=0)
    aligned = np.zeros_like(we)
    aligned[:, :3, :3] = Re @ Q
    aligned[:, :3, 3] = np.einsum("nij,j->ni", Re, u) + s * te
    aligned[:, 3, 3] = 1.0
    return invert_se3(aligned), s


def align_scale(ref_c2w: np.ndarray, est_c2w: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares scale on camera centres (both already relative to their first frame), no rotation
    alignment: ``s = sum(c_gt . c_est) / sum(|c_est|^2)`` (0 if the estimate does not move)."""
    cg, ce = ref_c2w[:, :3, 3], est_c2w[:, :3, 3]
    den = float(np.sum(ce * ce))
    s = float(np.sum(cg * ce) / den) if den > _EPS else 0.0
    aligned = est_c2w.copy()
    aligned[:, :3, 3] *= s
    return aligned, s


def camera_errors(reference, estimate, *, alignment: str = "sim3_extrinsics", drop_first: bool = False,
                  min_translation: float = MIN_TRANSLATION) -> CameraErrors:
    """Camera-following errors of ``estimate`` against ``reference`` (Trajectories or ``(N, 4, 4)`` c2w).

    Both are truncated to the shorter length, frame 0 is dropped if ``drop_first``, both are relativised to
    their first remaining frame, the estimate is aligned (``alignment`` in :data:`ALIGNMENTS`), and the
    module's metrics are computed.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}")
    ref, est = _c2w(reference, "reference"), _c2w(estimate, "estimate")
    n = min(len(ref), len(est))
    ref, est = ref[:n], est[:n]
    if drop_first:
        ref, est = ref[1:], est[1:]
    if len(ref) < 2:
        raise ValueError(f"camera errors need at least 2 frames after truncation/drop, got {len(ref)}")
    ref, est = relative_poses(ref), relative_poses(est)
    aligned, s = (align_sim3_extrinsics if alignment == "sim3_extrinsics" else align_scale)(ref, est)
    rot = rotation_angles_deg(ref[:, :3, :3], aligned[:, :3, :3])
    extent = float(np.max(np.linalg.norm(ref[:, :3, 3], axis=1)))
    defined = extent >= min_translation
    trans = cammc = None
    ate = scale_err = scale = None
    if defined:
        trans = np.linalg.norm(ref[:, :3, 3] - aligned[:, :3, 3], axis=1)
        cammc = np.linalg.norm((ref[:, :3, :4] - aligned[:, :3, :4]).reshape(len(ref), -1), axis=1)
        ate = ate_rmse(ref, est)[0]
        scale = s
        scale_err = float(abs(np.log(s))) if s > 0 else float("inf")
    return CameraErrors(
        RotErr=float(np.mean(rot)),
        TransErr_rel=None if trans is None else float(np.mean(trans)),
        CamMC_rel=None if cammc is None else float(np.mean(cammc)),
        ATE=ate, ScaleErr=scale_err, scale=scale,
        rot_err_per_frame=rot, trans_err_per_frame=trans, cammc_per_frame=cammc,
        alignment=alignment, num_frames=len(ref), translation_defined=defined, reference_extent=extent,
        reference_c2w=ref, aligned_c2w=aligned,
    )
