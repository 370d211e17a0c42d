"""Warp the first frame along a camera path with an assumed depth: the geometric prior of the bundled model.

A small model trained on a CPU learns the look of its world long before it learns to move pixels by the
right amount (docs/models/sana-wm-synth.md: the session-9 weights moved their first second about a tenth
as far as the truth). With ``prediction: sample_warp`` (:class:`~sana_wm.model.SanaWMConfig`) the network
instead predicts the clean latents *minus this warp*: rotation (which needs no depth) and the coarse
parallax of a walk come from geometry, and the network corrects what the warp gets wrong (disocclusions,
wrong depth, new content entering the view).

The depth is a fixed guess, not an estimate: a level camera at ``eye_height`` metres inside a box whose
floor and ceiling are ``eye_height`` away, capped at ``far`` metres. For a pixel of a target camera at
normalised image height ``y = (v - cy) / fy`` (OpenCV axes, +y down) the z-depth is
``min(far, eye_height / |y|)``. Fitted on frames of the synthetic world (scene seeds 0-47): the median depth
of the rows below the horizon follows ``1.6 / y`` within 5%, and the median inverse depth near the horizon
is 1/7 m. A rotation-only path warps exactly whatever the depth.

The warp is backward: every pixel of frame ``f`` is lifted with the assumed depth, moved into the first
camera and sampled there bilinearly; points that leave the first view take its border colour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_EYE_HEIGHT", "DEFAULT_FAR_DEPTH", "box_depth", "warp_first_frame"]

DEFAULT_EYE_HEIGHT = 1.6  # metres: the synthetic world's eye heights are drawn from 1.4-1.8
DEFAULT_FAR_DEPTH = 7.0  # metres: 1 / median inverse depth near the horizon in the synthetic world
_MIN_Z = 1e-3  # metres in front of the first camera; points behind it are clamped to its image border


def box_depth(intrinsics: Tensor, height: int, width: int, *, eye_height: float = DEFAULT_EYE_HEIGHT,
              far: float = DEFAULT_FAR_DEPTH) -> Tensor:
    """Assumed z-depth ``(..., height, width)`` of each pixel for cameras ``intrinsics (..., 4)`` =
    ``[fx, fy, cx, cy]`` in pixels (pixel centres at integer coordinates): ``min(far, eye_height / |y|)``."""
    if eye_height <= 0 or far <= 0:
        raise ValueError(f"box_depth: eye_height and far must be positive, got {eye_height} and {far}")
    v = torch.arange(height, dtype=intrinsics.dtype, device=intrinsics.device)
    y = (v - intrinsics[..., 3:4]) / intrinsics[..., 1:2]  # (..., height)
    z = (eye_height / y.abs().clamp_min(eye_height / far)).clamp_max(far)
    return z[..., :, None].expand(*z.shape, width)


def warp_first_frame(image: Tensor, c2w: Tensor, intrinsics: Tensor, *, first_c2w: Tensor | None = None,
                     first_intrinsics: Tensor | None = None, eye_height: float = DEFAULT_EYE_HEIGHT,
                     far: float = DEFAULT_FAR_DEPTH) -> Tensor:
    """The first frame as seen from every camera of a path, under the :func:`box_depth` guess.

    image: ``(B, C, H, W)``, the first frame (any value range). c2w: ``(B, F, 4, 4)`` camera-to-world poses
    (OpenCV axes, metres). intrinsics: ``(B, F, 4)`` ``[fx, fy, cx, cy]`` in pixels of the ``H x W`` image.
    The image was taken by the camera ``first_c2w (B, 4, 4)`` with ``first_intrinsics (B, 4)``: by default the
    path's own first camera (pass them to warp a later stretch of a path). Returns ``(B, C, F, H, W)`` in
    ``image``'s dtype; geometry runs in the image's precision, float32 at least.
    """
    if image.ndim != 4:
        raise ValueError(f"warp_first_frame: image must be (B, C, H, W), got {tuple(image.shape)}")
    B, C, H, W = image.shape
    if c2w.ndim != 4 or c2w.shape[0] != B or tuple(c2w.shape[2:]) != (4, 4):
        raise ValueError(f"warp_first_frame: c2w must be (B={B}, F, 4, 4), got {tuple(c2w.shape)}")
    Fn = c2w.shape[1]
    if tuple(intrinsics.shape) != (B, Fn, 4):
        raise ValueError(f"warp_first_frame: intrinsics must be (B={B}, F={Fn}, 4), got {tuple(intrinsics.shape)}")
    first_c2w = c2w[:, 0] if first_c2w is None else first_c2w
    first_intrinsics = intrinsics[:, 0] if first_intrinsics is None else first_intrinsics
    if tuple(first_c2w.shape) != (B, 4, 4) or tuple(first_intrinsics.shape) != (B, 4):
        raise ValueError(f"warp_first_frame: first_c2w must be (B={B}, 4, 4) and first_intrinsics (B={B}, 4), got "
                         f"{tuple(first_c2w.shape)} and {tuple(first_intrinsics.shape)}")
    work = torch.promote_types(image.dtype, torch.float32)
    c2w, intrinsics = c2w.to(image.device, work), intrinsics.to(image.device, work)
    first_c2w, k0 = first_c2w.to(image.device, work)[:, None], first_intrinsics.to(image.device, work)[:, None]

    z = box_depth(intrinsics, H, W, eye_height=eye_height, far=far)  # (B, F, H, W)
    u = torch.arange(W, dtype=work, device=image.device)
    v = torch.arange(H, dtype=work, device=image.device)
    fx, fy, cx, cy = (intrinsics[..., i, None, None] for i in range(4))  # (B, F, 1, 1)
    points = torch.stack([(u - cx) / fx * z, (v[:, None] - cy) / fy * z, z], dim=-1)  # (B, F, H, W, 3)

    # camera f -> the first camera: c2w_0^-1 @ c2w_f
    R0, t0 = first_c2w[..., :3, :3], first_c2w[..., :3, 3]  # (B, 1, 3, 3), (B, 1, 3)
    to_first = R0.transpose(-1, -2) @ c2w[..., :3, :3]  # (B, F, 3, 3)
    offset = (R0.transpose(-1, -2) @ (c2w[..., :3, 3] - t0)[..., None])[..., 0]  # (B, F, 3)
    p0 = (points.flatten(2, 3) @ to_first.transpose(-1, -2)).view_as(points) + offset[:, :, None, None]
    depth0 = p0[..., 2].clamp_min(_MIN_Z)
    u0 = k0[..., 0, None, None] * p0[..., 0] / depth0 + k0[..., 2, None, None]
    v0 = k0[..., 1, None, None] * p0[..., 1] / depth0 + k0[..., 3, None, None]
    grid = torch.stack([2 * u0 / max(W - 1, 1) - 1, 2 * v0 / max(H - 1, 1) - 1], dim=-1)  # align_corners=True
    grid = grid.clamp(-4.0, 4.0)  # far outside is the border anyway; keeps grid_sample's arithmetic finite

    frames = image[:, None].expand(B, Fn, C, H, W).reshape(B * Fn, C, H, W)
    out = F.grid_sample(frames.to(work), grid.reshape(B * Fn, H, W, 2), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.view(B, Fn, C, H, W).transpose(1, 2).to(image.dtype)
