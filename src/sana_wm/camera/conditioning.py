"""The camera tensors the released SANA-WM model consumes (reference §5).

From a canonical camera path (``(F, 4, 4)`` c2w, OpenCV axes, metres) and pinhole intrinsics in pixels
of the model's input image, this module builds:

* ``camera_vector`` ``(T_lat, 20)``: per latent frame ``i`` the relative pose of raw frame ``8 i``
  (row-major 4x4, 16 numbers) followed by ``fx, fy, cx, cy`` in latent-grid units (§5.2). The
  transformer's coarse UCPE branch turns it into per-token ray frames, see :func:`ucpe_ray_transforms`.
* ``plucker`` ``(48, T_lat, H_lat, W_lat)``: per latent frame the Plücker rays ``[d, o x d]`` of the 8 raw
  frames it compresses, stacked frame-major (§5.4), for the fine branch.

Conventions shared by both (§5.1): poses are made relative to the first frame, translations stay in
metres, intrinsics are scaled from pixels to the latent grid (``fx, cx *= W_lat / W``, ``fy, cy *=
H_lat / H``), and rays are cast through the integer latent grid ``u = 0..W_lat-1``, ``v = 0..H_lat-1``
(no half-pixel offset), exactly as the released model was trained.

Geometry is computed in float64 and cast to the requested dtype at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sana_wm.camera.trajectory import (
    Intrinsics,
    Trajectory,
    TrajectoryError,
    as_c2w_array,
    relative_poses,
)

__all__ = [
    "DEFAULT_TARGET_SIZE",
    "PLUCKER_CHANNELS",
    "SPATIAL_STRIDE",
    "TEMPORAL_STRIDE",
    "CameraConditioning",
    "CropGeometry",
    "center_crop_geometry",
    "conditioning_from_trajectory",
    "identity_conditioning",
    "latent_intrinsics",
    "num_latent_frames",
    "plucker_rays",
    "prepare_camera",
    "relative_poses",
    "ucpe_ray_transforms",
]

DEFAULT_TARGET_SIZE = (704, 1280)
"""``(H, W)`` of the image the released model sees (the input image is resized and centre-cropped to it)."""

TEMPORAL_STRIDE = 8
"""Raw frames per latent frame of the LTX-2 VAE (its first latent frame holds a single raw frame)."""

SPATIAL_STRIDE = 32
"""Pixels per latent cell of the LTX-2 VAE."""

PLUCKER_CHANNELS = 6 * TEMPORAL_STRIDE
"""Channels of the fine camera branch: 6 Plücker numbers for each of the 8 raw frames of a latent frame."""

_RAY_EPS = 1e-6  # the reference normalises ray-frame axes with max(|v|, 1e-6)
_ASPECT_TOL = 0.01


# ------------------------------------------------------------------------------------------------
# Image resize + centre crop
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropGeometry:
    """An aspect-preserving resize of a ``source`` image to ``resized`` followed by a ``size`` crop at
    ``offset``. All sizes are ``(W, H)`` and the offset is ``(left, top)`` in the resized image."""

    source: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]

    def apply_to(self, intrinsics: Intrinsics) -> Intrinsics:
        """The same camera in pixels of the cropped image.

        Intrinsics given for another resolution of the source image (same aspect ratio) are first
        rescaled to the source size; a different aspect ratio means they describe another image.
        """
        src_w, src_h = self.source
        if (intrinsics.width, intrinsics.height) != (src_w, src_h):
            aspect_intr = intrinsics.width / intrinsics.height
            aspect_src = src_w / src_h
            if abs(aspect_intr / aspect_src - 1.0) > _ASPECT_TOL:
                raise TrajectoryError(
                    f"intrinsics are for a {intrinsics.width}x{intrinsics.height} image but the input image "
                    f"is {src_w}x{src_h} (a different aspect ratio); give intrinsics in pixels of the input "
                    "image"
                )
            intrinsics = intrinsics.rescaled(src_w, src_h)
        return intrinsics.resized_and_cropped(self.resized, self.offset, self.size)

    def apply_to_image(self, image):
        """Resize (Lanczos) and crop a PIL image the way the released pipeline does."""
        from PIL import Image

        if image.size != self.source:
            raise ValueError(f"image is {image.size[0]}x{image.size[1]} but this crop is for a "
                             f"{self.source[0]}x{self.source[1]} image")
        left, top = self.offset
        resized = image.resize(self.resized, Image.LANCZOS)
        return resized.crop((left, top, left + self.size[0], top + self.size[1]))


def center_crop_geometry(src_w: int, src_h: int, target_w: int = DEFAULT_TARGET_SIZE[1],
                         target_h: int = DEFAULT_TARGET_SIZE[0]) -> CropGeometry:
    """Resize so the image covers ``target_w x target_h`` keeping its aspect, then crop the centre.

    Integer rounding follows the released pipeline: each resized side is ``max(target, round(side *
    scale))`` (Python's round-half-to-even) and the crop offset is the floor of half the excess.
    """
    if min(src_w, src_h, target_w, target_h) <= 0:
        raise ValueError(
            f"image sizes must be positive, got source {src_w}x{src_h}, target {target_w}x{target_h}"
        )
    scale = max(target_h / src_h, target_w / src_w)
    resized_w = max(target_w, int(round(src_w * scale)))
    resized_h = max(target_h, int(round(src_h * scale)))
    offset = ((resized_w - target_w) // 2, (resized_h - target_h) // 2)
    return CropGeometry(source=(int(src_w), int(src_h)), resized=(resized_w, resized_h), offset=offset,
                        size=(int(target_w), int(target_h)))


# ------------------------------------------------------------------------------------------------
# Small geometric helpers
# ------------------------------------------------------------------------------------------------
def latent_intrinsics(intrinsics_pixels, image_size: tuple[int, int], latent_size: tuple[int, int]):
    """Scale ``(F, 4)`` ``[fx, fy, cx, cy]`` from pixels of an ``image_size = (W, H)`` image to a
    ``latent_size = (W_lat, H_lat)`` grid: ``fx, cx *= W_lat / W`` and ``fy, cy *= H_lat / H``.

    Works on numpy arrays and torch tensors alike and returns the same kind.
    """
    sx = latent_size[0] / float(image_size[0])
    sy = latent_size[1] / float(image_size[1])
    if isinstance(intrinsics_pixels, torch.Tensor):
        scale = torch.tensor([sx, sy, sx, sy], dtype=intrinsics_pixels.dtype, device=intrinsics_pixels.device)
        return intrinsics_pixels * scale
    return np.asarray(intrinsics_pixels, dtype=np.float64) * np.array([sx, sy, sx, sy])


def num_latent_frames(num_frames: int, temporal_stride: int = TEMPORAL_STRIDE) -> int:
    """Latent frames of an ``8k+1``-frame clip: ``(F - 1) // 8 + 1``; raises for other frame counts."""
    _check_frame_count(num_frames, temporal_stride)
    return (num_frames - 1) // temporal_stride + 1


def _check_frame_count(num_frames: int, temporal_stride: int) -> None:
    if num_frames < 1 or (num_frames - 1) % temporal_stride != 0:
        lower = max(1, num_frames - (num_frames - 1) % temporal_stride)
        raise TrajectoryError(
            f"the camera path has {num_frames} frames, but the video model needs {temporal_stride}k+1 frames "
            f"(e.g. {lower} or {lower + temporal_stride}); resample the path first with "
            "sana_wm.camera.resample.snap_frame_count / fit_to_frames"
        )


def plucker_rays(c2w: np.ndarray, intrinsics_latent: np.ndarray, latent_hw: tuple[int, int]) -> np.ndarray:
    """Per-frame Plücker rays ``(F, H, W, 6)`` = ``[d, o x d]`` on the integer grid of ``latent_hw``.

    ``d = normalize(R K^-1 [u, v, 1])`` is the world direction through cell ``(u, v)`` and ``o`` the
    camera centre. ``c2w`` is ``(F, 4, 4)``, ``intrinsics_latent`` ``(F, 4)`` in grid units.
    """
    H, W = latent_hw
    fx, fy, cx, cy = (intrinsics_latent[:, k, None, None] for k in range(4))  # each (F, 1, 1)
    v, u = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    x = (u - cx) / fx
    y = (v - cy) / fy
    d_cam = np.stack([x, y, np.ones_like(x)], axis=-1)  # (F, H, W, 3)
    d_world = np.einsum("fij,fhwj->fhwi", c2w[:, :3, :3], d_cam)
    d_world /= np.linalg.norm(d_world, axis=-1, keepdims=True)
    origin = np.broadcast_to(c2w[:, None, None, :3, 3], d_world.shape)
    return np.concatenate([d_world, np.cross(origin, d_world)], axis=-1)


# ------------------------------------------------------------------------------------------------
# The conditioning bundle
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraConditioning:
    """Camera inputs of the transformer for one clip (or a batch, after :meth:`batched`).

    ``camera_vector``: ``(T_lat, 20)`` (``(B, T_lat, 20)`` batched) relative c2w of raw frame ``8 i``
    flattened row-major, then ``fx, fy, cx, cy`` in latent units.
    ``plucker``: ``(48, T_lat, H_lat, W_lat)`` (``(B, 48, ...)`` batched); channel ``6 k + c`` is Plücker
    component ``c`` (``d_x, d_y, d_z, m_x, m_y, m_z``) of the ``k``-th raw frame of the latent frame.
    """

    camera_vector: torch.Tensor
    plucker: torch.Tensor

    @property
    def is_batched(self) -> bool:
        return self.camera_vector.ndim == 3

    @property
    def num_latent_frames(self) -> int:
        return int(self.camera_vector.shape[-2])

    @property
    def latent_hw(self) -> tuple[int, int]:
        return int(self.plucker.shape[-2]), int(self.plucker.shape[-1])

    def batched(self, batch_size: int = 1) -> CameraConditioning:
        """Add a leading batch dimension holding ``batch_size`` copies (e.g. 2 for the CFG pair)."""
        if self.is_batched:
            raise ValueError(f"camera conditioning is already batched (batch {self.camera_vector.shape[0]})")
        return CameraConditioning(
            self.camera_vector.unsqueeze(0).repeat(batch_size, 1, 1),
            self.plucker.unsqueeze(0).repeat(batch_size, 1, 1, 1, 1),
        )

    def to(self, device=None, dtype: torch.dtype | None = None) -> CameraConditioning:
        return CameraConditioning(self.camera_vector.to(device=device, dtype=dtype),
                                  self.plucker.to(device=device, dtype=dtype))


def _build_conditioning(rel_c2w: np.ndarray, intr_latent: np.ndarray, latent_hw: tuple[int, int],
                        temporal_stride: int, dtype: torch.dtype) -> CameraConditioning:
    """Both tensors from relative poses ``(F, 4, 4)`` and latent-unit intrinsics ``(F, 4)`` (float64)."""
    F = rel_c2w.shape[0]
    T_lat = num_latent_frames(F, temporal_stride)
    H, W = latent_hw

    # Coarse branch: one pose per latent frame, taken at its last raw frame 8i.
    anchor = np.arange(T_lat) * temporal_stride
    camera_vector = np.concatenate([rel_c2w[anchor].reshape(T_lat, 16), intr_latent[anchor]], axis=-1)

    # Fine branch: the raw frames 8i-7 .. 8i each latent frame compresses (frames 0..7 for the first),
    # repeating the last available frame past the end of the path.
    starts = np.maximum(anchor - (temporal_stride - 1), 0)
    frame_idx = np.minimum(starts[:, None] + np.arange(temporal_stride), F - 1)  # (T_lat, 8)
    rays = plucker_rays(rel_c2w, intr_latent, latent_hw)[frame_idx]  # (T_lat, 8, H, W, 6)
    plucker = rays.transpose(1, 4, 0, 2, 3).reshape(6 * temporal_stride, T_lat, H, W)

    return CameraConditioning(torch.from_numpy(np.ascontiguousarray(camera_vector)).to(dtype),
                              torch.from_numpy(np.ascontiguousarray(plucker)).to(dtype))


def _check_latent_hw(latent_hw) -> tuple[int, int]:
    H, W = (int(s) for s in latent_hw)
    if H <= 0 or W <= 0:
        raise ValueError(f"latent grid must be positive, got {H}x{W} (H x W)")
    return H, W


def prepare_camera(c2w, intrinsics_pixels, *, target_size: tuple[int, int] = DEFAULT_TARGET_SIZE,
                   temporal_stride: int = TEMPORAL_STRIDE, spatial_stride: int = SPATIAL_STRIDE,
                   dtype: torch.dtype = torch.float32) -> CameraConditioning:
    """Camera conditioning for a path whose intrinsics are already in pixels of the model's input image.

    ``c2w``: ``(F, 4, 4)`` (or ``(F, 3, 4)``) absolute camera-to-world poses, OpenCV axes, metres;
    ``F`` must be ``8k + 1``. ``intrinsics_pixels``: ``(F, 4)`` or ``(4,)`` ``[fx, fy, cx, cy]`` in pixels
    of the ``target_size = (H, W)`` image (after resize and crop), or an :class:`Intrinsics` of that size.
    The latent grid is ``(H // 32, W // 32)``.
    """
    c2w = as_c2w_array(c2w)
    F = c2w.shape[0]
    _check_frame_count(F, temporal_stride)
    H_px, W_px = (int(s) for s in target_size)
    latent_hw = _check_latent_hw((H_px // spatial_stride, W_px // spatial_stride))

    if isinstance(intrinsics_pixels, Intrinsics):
        if (intrinsics_pixels.width, intrinsics_pixels.height) != (W_px, H_px):
            raise TrajectoryError(
                f"intrinsics are for a {intrinsics_pixels.width}x{intrinsics_pixels.height} image but the "
                f"model input is {W_px}x{H_px}; transform them with center_crop_geometry(...).apply_to() "
                "or use conditioning_from_trajectory"
            )
        intrinsics_pixels = intrinsics_pixels.values
    intr = np.asarray(intrinsics_pixels, dtype=np.float64)
    if intr.shape == (4,):
        intr = intr[None]
    if intr.ndim != 2 or intr.shape[1] != 4 or intr.shape[0] not in (1, F):
        raise TrajectoryError(f"intrinsics: expected shape ({F}, 4) [fx, fy, cx, cy] for {F} frames, "
                              f"got {tuple(intr.shape)}")
    intr = np.broadcast_to(intr, (F, 4))

    if not np.isfinite(c2w).all():
        frame = int(np.argmin(np.isfinite(c2w).all(axis=(1, 2))))
        raise TrajectoryError(f"frame {frame}: pose contains non-finite values (NaN or inf)")
    bad = ~np.isfinite(intr).all(axis=1) | (intr[:, :2] <= 0).any(axis=1)
    if bad.any():
        frame = int(np.argmax(bad))
        raise TrajectoryError(
            f"frame {frame}: intrinsics {intr[frame].tolist()} need finite values and positive focal lengths"
        )

    intr_latent = latent_intrinsics(intr, (W_px, H_px), (latent_hw[1], latent_hw[0]))
    return _build_conditioning(relative_poses(c2w), intr_latent, latent_hw, temporal_stride, dtype)


def conditioning_from_trajectory(traj: Trajectory, *, src_image_size: tuple[int, int] | None = None,
                                 target_size: tuple[int, int] = DEFAULT_TARGET_SIZE,
                                 temporal_stride: int = TEMPORAL_STRIDE, spatial_stride: int = SPATIAL_STRIDE,
                                 dtype: torch.dtype = torch.float32) -> CameraConditioning:
    """Camera conditioning for ``traj`` driving an input image of ``src_image_size = (W, H)`` pixels.

    The image is resized and centre-cropped to ``target_size = (H, W)`` (see :func:`center_crop_geometry`)
    and the trajectory's intrinsics follow the same transform. ``src_image_size`` defaults to the size
    the intrinsics are given for.
    """
    if traj.intrinsics is None:
        raise TrajectoryError(
            "the camera path has no intrinsics, which the camera conditioning needs; attach them with "
            "traj.with_intrinsics(Intrinsics.from_fov(...)) or give a field of view (e.g. --fov)"
        )
    if src_image_size is None:
        src_image_size = (traj.intrinsics.width, traj.intrinsics.height)
    geometry = center_crop_geometry(int(src_image_size[0]), int(src_image_size[1]),
                                    target_w=int(target_size[1]), target_h=int(target_size[0]))
    intrinsics = geometry.apply_to(traj.intrinsics)
    return prepare_camera(traj.c2w, intrinsics.values, target_size=target_size,
                          temporal_stride=temporal_stride, spatial_stride=spatial_stride, dtype=dtype)


def identity_conditioning(num_frames: int, latent_hw: tuple[int, int] = (22, 40), *,
                          temporal_stride: int = TEMPORAL_STRIDE,
                          dtype: torch.dtype = torch.float32) -> CameraConditioning:
    """Conditioning of a clip without camera labels (training, §5.1): identity poses and latent-unit
    intrinsics ``fx = W_lat, fy = H_lat, cx = W_lat / 2, cy = H_lat / 2``."""
    _check_frame_count(num_frames, temporal_stride)
    H, W = _check_latent_hw(latent_hw)
    poses = np.broadcast_to(np.eye(4), (num_frames, 4, 4))
    intr = np.broadcast_to(np.array([W, H, W / 2.0, H / 2.0], dtype=np.float64), (num_frames, 4))
    return _build_conditioning(poses, intr, (H, W), temporal_stride, dtype)


# ------------------------------------------------------------------------------------------------
# UCPE per-token ray frames (coarse branch, §5.3)
# ------------------------------------------------------------------------------------------------
def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(_RAY_EPS)


def ucpe_ray_transforms(camera_vector: torch.Tensor,
                        latent_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token world -> ray-local transforms ``P`` and their inverses, ``(B, T*H*W, 4, 4)`` each.

    ``camera_vector``: ``(B, T, 20)`` (see :class:`CameraConditioning`); tokens are ordered frame-major
    ``(t, h, w)`` over the ``latent_hw = (H, W)`` grid. For the ray through cell ``(u, v)``:
    ``z = R normalize(((u - cx) / fx, (v - cy) / fy, 1))``, ``x = normalize(R[:, 1] x z)``,
    ``y = normalize(z x x)``; ``P = [[R_l^T, -R_l^T t], [0, 1]]`` with ``R_l = [x y z]``, so ``P`` sends
    the camera centre to the origin and the ray to ``+z``. ``P_inv = [[R_l, t], [0, 1]]``. A token whose
    ray is NaN (degenerate intrinsics) gets the identity, as in the reference.

    Computed in float32, or float64 when given float64; lower-precision inputs are promoted, since 4x4
    ray frames in bfloat16 would lose two digits, and autocast is switched off inside for the same
    reason (it would also break ``torch.linalg.cross``). The caller casts the result if it must.
    """
    if camera_vector.ndim != 3 or camera_vector.shape[-1] != 20:
        raise ValueError(f"camera_vector: expected shape (B, T, 20), got {tuple(camera_vector.shape)}")
    with torch.autocast(camera_vector.device.type, enabled=False):
        return _ucpe_ray_transforms(camera_vector, latent_hw)


def _ucpe_ray_transforms(camera_vector: torch.Tensor,
                         latent_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    H, W = _check_latent_hw(latent_hw)
    cam = camera_vector.to(torch.promote_types(camera_vector.dtype, torch.float32))
    B, T, _ = cam.shape

    c2w = cam[..., :16].reshape(B, T, 4, 4)
    R = c2w[..., :3, :3]  # (B, T, 3, 3)
    t = c2w[..., :3, 3]  # (B, T, 3) camera centre
    fx, fy, cx, cy = (cam[..., 16 + k, None, None] for k in range(4))  # each (B, T, 1, 1)

    v, u = torch.meshgrid(torch.arange(H, dtype=cam.dtype, device=cam.device),
                          torch.arange(W, dtype=cam.dtype, device=cam.device), indexing="ij")
    x = (u - cx) / fx
    y = (v - cy) / fy
    d_cam = _normalize(torch.stack([x, y, torch.ones_like(x)], dim=-1))  # (B, T, H, W, 3)
    d_world = torch.einsum("btij,bthwj->bthwi", R, d_cam)

    z_ray = _normalize(d_world)
    cam_y = R[..., :, 1][:, :, None, None, :].expand_as(z_ray)  # the camera's "down" axis in world
    x_ray = _normalize(torch.linalg.cross(cam_y, z_ray, dim=-1))
    y_ray = _normalize(torch.linalg.cross(z_ray, x_ray, dim=-1))
    R_w2l = torch.stack([x_ray, y_ray, z_ray], dim=-2)  # rows are the ray axes: (B, T, H, W, 3, 3)
    t_b = t[:, :, None, None, :].expand_as(z_ray)

    P = torch.zeros(B, T, H, W, 4, 4, dtype=cam.dtype, device=cam.device)
    P[..., :3, :3] = R_w2l
    P[..., :3, 3] = -torch.einsum("bthwij,bthwj->bthwi", R_w2l, t_b)
    P[..., 3, 3] = 1.0
    P_inv = torch.zeros_like(P)
    P_inv[..., :3, :3] = R_w2l.transpose(-1, -2)
    P_inv[..., :3, 3] = t_b
    P_inv[..., 3, 3] = 1.0

    degenerate = torch.isnan(d_world).any(dim=-1)
    eye = torch.eye(4, dtype=cam.dtype, device=cam.device)
    P[degenerate] = eye
    P_inv[degenerate] = eye
    return P.reshape(B, T * H * W, 4, 4), P_inv.reshape(B, T * H * W, 4, 4)
