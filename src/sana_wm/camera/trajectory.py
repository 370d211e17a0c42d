"""The one canonical camera trajectory of sana-wm, and its validation.

Canonical form (every reader converts into it, every writer converts out of it):

* ``c2w``: ``(F, 4, 4)`` float64 camera-to-world poses, OpenCV camera axes
  (+X right, +Y down, +Z forward), translations in metres.
* ``intrinsics``: optional per-frame pinhole ``[fx, fy, cx, cy]`` in pixels of an
  image of stated ``width`` x ``height``. ``None`` means "not known"; nothing in the
  package invents intrinsics without being asked to.
* ``fps``: frames per second of the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sana_wm.errors import UserError

__all__ = [
    "DEFAULT_FOV_RANGE_DEG",
    "DEFAULT_ROTATION_TOL",
    "Intrinsics",
    "Trajectory",
    "TrajectoryError",
    "as_c2w_array",
    "invert_se3",
    "orthonormalize_rotations",
    "relative_poses",
]

DEFAULT_ROTATION_TOL = 1e-4
"""Max |R^T R - I| entry and |det R - 1| accepted as a rotation (float32 storage keeps ~1e-6)."""

DEFAULT_FOV_RANGE_DEG = (25.0, 120.0)
"""Horizontal and vertical field of view accepted by validation, as the released pipeline demands."""


class TrajectoryError(UserError, ValueError):
    """A camera trajectory or its intrinsics are malformed; the message names the frame and the problem."""


def as_c2w_array(c2w, *, what: str = "c2w") -> np.ndarray:
    """Return ``c2w`` as a float64 ``(F, 4, 4)`` array, accepting ``(F, 3, 4)`` by adding the last row."""
    arr = np.asarray(c2w, dtype=np.float64)
    if arr.ndim == 2 and arr.shape in ((4, 4), (3, 4)):
        raise TrajectoryError(f"{what}: got a single {arr.shape} pose; a trajectory needs shape (F, 4, 4)")
    if arr.ndim != 3 or arr.shape[1:] not in ((4, 4), (3, 4)):
        raise TrajectoryError(f"{what}: expected shape (F, 4, 4) or (F, 3, 4), got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise TrajectoryError(f"{what}: the trajectory has no frames")
    if arr.shape[1] == 3:
        bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (arr.shape[0], 1, 4))
        arr = np.concatenate([arr, bottom], axis=1)
    return arr.copy()


@dataclass(frozen=True)
class Intrinsics:
    """Per-frame pinhole intrinsics ``[fx, fy, cx, cy]`` in pixels of a ``width`` x ``height`` image.

    ``values`` has shape ``(F, 4)``. Pixel coordinates follow OpenCV: the centre of the
    top-left pixel is (0, 0), so a centred principal point is ``((W - 1) / 2, (H - 1) / 2)``
    in a strict reading, while most datasets write ``(W / 2, H / 2)``; we store what we are given.
    """

    values: np.ndarray  # (F, 4) fx, fy, cx, cy in pixels
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = np.asarray(self.values, dtype=np.float64)
        if vals.ndim == 1 and vals.shape == (4,):
            vals = vals[None]
        if vals.ndim != 2 or vals.shape[1] != 4:
            raise TrajectoryError(f"intrinsics: expected shape (F, 4) [fx, fy, cx, cy], got {tuple(vals.shape)}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise TrajectoryError(f"intrinsics: image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "values", vals.copy())
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_matrices(cls, K, width: int, height: int) -> Intrinsics:
        """From ``(3, 3)`` or ``(F, 3, 3)`` pinhole matrices. Skew must be zero."""
        K = np.asarray(K, dtype=np.float64)
        if K.ndim == 2:
            K = K[None]
        if K.ndim != 3 or K.shape[1:] != (3, 3):
            raise TrajectoryError(f"intrinsics: expected (3, 3) or (F, 3, 3) matrices, got {tuple(K.shape)}")
        skew = np.abs(K[:, 0, 1])
        if np.any(skew > 1e-6 * np.maximum(1.0, np.abs(K[:, 0, 0]))):
            frame = int(np.argmax(skew))
            raise TrajectoryError(
                f"intrinsics: frame {frame} has non-zero skew {K[frame, 0, 1]:g}; only pinhole is supported"
            )
        vals = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], axis=-1)
        return cls(vals, width, height)

    @classmethod
    def from_fov(cls, fov_x_deg: float, width: int, height: int, num_frames: int = 1,
                 fov_y_deg: float | None = None) -> Intrinsics:
        """Centred intrinsics with the given horizontal FOV (square pixels unless ``fov_y_deg`` is given)."""
        fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
        fy = fx if fov_y_deg is None else 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        vals = np.tile([fx, fy, width / 2.0, height / 2.0], (num_frames, 1))
        return cls(vals, width, height)

    # -- views --------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fx(self) -> np.ndarray:
        return self.values[:, 0]

    @property
    def fy(self) -> np.ndarray:
        return self.values[:, 1]

    @property
    def cx(self) -> np.ndarray:
        return self.values[:, 2]

    @property
    def cy(self) -> np.ndarray:
        return self.values[:, 3]

    def matrices(self) -> np.ndarray:
        """``(F, 3, 3)`` pinhole matrices."""
        K = np.zeros((self.num_frames, 3, 3))
        K[:, 0, 0], K[:, 1, 1] = self.fx, self.fy
        K[:, 0, 2], K[:, 1, 2] = self.cx, self.cy
        K[:, 2, 2] = 1.0
        return K

    def fov_deg(self) -> np.ndarray:
        """``(F, 2)`` horizontal and vertical field of view in degrees."""
        fov_x = 2 * np.degrees(np.arctan2(0.5 * self.width, self.fx))
        fov_y = 2 * np.degrees(np.arctan2(0.5 * self.height, self.fy))
        return np.stack([fov_x, fov_y], axis=-1)

    def normalized(self) -> np.ndarray:
        """``(F, 4)`` intrinsics divided by image size: ``[fx/W, fy/H, cx/W, cy/H]``."""
        return self.values / np.array([self.width, self.height, self.width, self.height], dtype=np.float64)

    @classmethod
    def from_normalized(cls, values, width: int, height: int) -> Intrinsics:
        vals = np.asarray(values, dtype=np.float64)
        return cls(vals * np.array([width, height, width, height], dtype=np.float64), width, height)

    def take(self, indices) -> Intrinsics:
        return Intrinsics(self.values[np.asarray(indices)], self.width, self.height)

    def broadcast_to(self, num_frames: int) -> Intrinsics:
        """Repeat a single frame's intrinsics ``num_frames`` times (other counts must already match)."""
        if self.num_frames == num_frames:
            return self
        if self.num_frames != 1:
            raise TrajectoryError(
                f"intrinsics: have {self.num_frames} frames, cannot broadcast to {num_frames} frames"
            )
        return Intrinsics(np.repeat(self.values, num_frames, axis=0), self.width, self.height)

    def rescaled(self, width: int, height: int) -> Intrinsics:
        """The same camera for an image resized (without crop) to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.values * np.array([sx, sy, sx, sy]), width, height)

    def resized_and_cropped(self, resized: tuple[int, int], crop_offset: tuple[int, int],
                            size: tuple[int, int]) -> Intrinsics:
        """Intrinsics after resizing to ``resized=(W', H')`` then cropping a ``size=(w, h)`` window
        whose top-left corner is ``crop_offset=(left, top)`` in the resized image."""
        sx, sy = resized[0] / self.width, resized[1] / self.height
        v = self.values.copy()
        v[:, 0] *= sx
        v[:, 1] *= sy
        v[:, 2] = v[:, 2] * sx - crop_offset[0]
        v[:, 3] = v[:, 3] * sy - crop_offset[1]
        return Intrinsics(v, size[0], size[1])


@dataclass(frozen=True)
class Trajectory:
    """A camera path in the canonical convention (see module docstring)."""

    c2w: np.ndarray  # (F, 4, 4) camera-to-world, OpenCV axes, metres
    intrinsics: Intrinsics | None = None
    fps: float = 16.0
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "c2w", as_c2w_array(self.c2w))
        if not (isinstance(self.fps, (int, float, np.floating, np.integer)) and math.isfinite(self.fps)
                and self.fps > 0):
            raise TrajectoryError(f"fps must be a positive finite number, got {self.fps!r}")
        object.__setattr__(self, "fps", float(self.fps))
        if self.intrinsics is not None:
            object.__setattr__(self, "intrinsics", self.intrinsics.broadcast_to(self.num_frames))

    # -- basic facts ------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered by the path: (F - 1) / fps."""
        return (self.num_frames - 1) / self.fps

    @property
    def rotations(self) -> np.ndarray:
        return self.c2w[:, :3, :3]

    @property
    def positions(self) -> np.ndarray:
        """``(F, 3)`` camera centres in world coordinates (metres)."""
        return self.c2w[:, :3, 3]

    def w2c(self) -> np.ndarray:
        """``(F, 4, 4)`` world-to-camera matrices (closed-form SE(3) inverse)."""
        return invert_se3(self.c2w)

    # -- derived trajectories -------------------------------------------------------------------
    def with_intrinsics(self, intrinsics: Intrinsics | None) -> Trajectory:
        return replace(self, intrinsics=intrinsics)

    def take(self, indices) -> Trajectory:
        idx = np.asarray(indices)
        intr = None if self.intrinsics is None else self.intrinsics.take(idx)
        return Trajectory(self.c2w[idx], intr, self.fps, dict(self.meta))

    def relative_to_first(self) -> Trajectory:
        """Poses expressed in the first camera's frame (:func:`relative_poses`)."""
        return replace(self, c2w=relative_poses(self.c2w))

    def orthonormalized(self) -> Trajectory:
        """Project every rotation onto SO(3) (nearest in Frobenius norm). Only on request."""
        c2w = self.c2w.copy()
        c2w[:, :3, :3] = orthonormalize_rotations(c2w[:, :3, :3])
        c2w[:, 3] = [0.0, 0.0, 0.0, 1.0]
        return replace(self, c2w=c2w)

    # -- validation --------------------------------------------------------------------------------
    def validate(self, *, min_frames: int | None = None, rotation_tol: float = DEFAULT_ROTATION_TOL,
                 fov_range_deg: tuple[float, float] | None = DEFAULT_FOV_RANGE_DEG,
                 require_intrinsics: bool = False) -> Trajectory:
        """Check the trajectory; raise :class:`TrajectoryError` naming the first bad frame.

        Checks, in order: enough frames, finite values, the bottom row ``[0, 0, 0, 1]``, rotation
        orthonormality (``max |R^T R - I| <= rotation_tol``), ``det R = +1`` (within ``rotation_tol``),
        then for intrinsics: finite, positive focal lengths, and a field of view inside ``fov_range_deg``.
        Returns ``self`` so it can be chained.
        """
        F = self.num_frames
        if min_frames is not None and F < min_frames:
            raise TrajectoryError(f"trajectory has {F} frames but {min_frames} are needed")
        finite = np.isfinite(self.c2w).all(axis=(1, 2))
        if not finite.all():
            f = int(np.argmin(finite))
            raise TrajectoryError(f"frame {f}: pose contains non-finite values (NaN or inf)")
        bottom_err = np.abs(self.c2w[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
        if (bottom_err > rotation_tol).any():
            f = int(np.argmax(bottom_err))
            raise TrajectoryError(f"frame {f}: last row of the 4x4 pose is {self.c2w[f, 3].tolist()}, not [0, 0, 0, 1]")
        R = self.rotations
        ortho_err = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(R)
        for f in range(F):
            if ortho_err[f] > rotation_tol:
                raise TrajectoryError(
                    f"frame {f}: rotation is not orthonormal (max |R^T R - I| = {ortho_err[f]:.3g} > tolerance "
                    f"{rotation_tol:g}); pass --orthonormalize / call .orthonormalized() to project it onto SO(3)"
                )
            if abs(det[f] - 1.0) > rotation_tol:
                kind = "a reflection (det = -1); check the axis convention" if det[f] < 0 else "scaled"
                raise TrajectoryError(f"frame {f}: rotation has det {det[f]:.6g}, not +1: it is {kind}")
        intr = self.intrinsics
        if intr is None:
            if require_intrinsics:
                raise TrajectoryError("trajectory has no intrinsics; give them explicitly (e.g. --intrinsics or --fov)")
            return self
        finite = np.isfinite(intr.values).all(axis=1)
        if not finite.all():
            f = int(np.argmin(finite))
            raise TrajectoryError(f"frame {f}: intrinsics contain non-finite values: {intr.values[f].tolist()}")
        nonpos = (intr.values[:, :2] <= 0).any(axis=1)
        if nonpos.any():
            f = int(np.argmax(nonpos))
            raise TrajectoryError(
                f"frame {f}: focal lengths must be positive, got fx={intr.fx[f]:g}, fy={intr.fy[f]:g}"
            )
        if fov_range_deg is not None:
            lo, hi = fov_range_deg
            fov = intr.fov_deg()
            bad = ((fov < lo) | (fov > hi)).any(axis=1)
            if bad.any():
                f = int(np.argmax(bad))
                raise TrajectoryError(
                    f"frame {f}: field of view {fov[f, 0]:.1f} x {fov[f, 1]:.1f} deg (horizontal x vertical) is "
                    f"outside {lo:g}-{hi:g} deg for a {intr.width}x{intr.height} image; check that the intrinsics "
                    "are in pixels of that image size"
                )
        return self


def invert_se3(T: np.ndarray) -> np.ndarray:
    """Closed-form inverse of rigid transforms ``(..., 4, 4)``: ``[R | t] -> [R^T | -R^T t]``, float64.

    The one pose inverse of the package (c2w <-> w2c in the readers and writers, relative poses, pose
    metrics). A slightly non-rigid input keeps its error, ``|R R^T - I| = |R^T R - I|``, for
    :meth:`Trajectory.validate` to report."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def relative_poses(c2w) -> np.ndarray:
    """``(F, 4, 4)`` float64 poses relative to the first: ``inv(P_0) @ P_j``, with frame 0 exactly the identity.
    The one relative-pose helper of the package (camera conditioning, training data, pose metrics)."""
    c2w = as_c2w_array(c2w)
    rel = invert_se3(c2w[0]) @ c2w
    rel[0] = np.eye(4)
    return rel


def orthonormalize_rotations(R: np.ndarray) -> np.ndarray:
    """Nearest rotation matrices (SVD projection onto SO(3)) for ``(..., 3, 3)`` input."""
    U, _, Vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    d = np.sign(np.linalg.det(U @ Vt))
    U = U.copy()
    U[..., :, -1] *= d[..., None]
    return U @ Vt
