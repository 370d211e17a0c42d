"""The bundled model's warp prior: the first frame warped along the camera path with an assumed depth.

The bundled network predicts the clean latents *minus this warp* (:mod:`sana_wm.bundled.model`): rotation
(which needs no depth) and the coarse parallax of a walk come from geometry, and the network corrects what
the warp gets wrong (disocclusions, wrong depth, new content entering the view).

The depth is a fixed guess, not an estimate: a level camera at ``eye_height`` metres inside a box whose
floor and ceiling are ``eye_height`` away, capped at ``far`` metres. For a pixel of a target camera at
normalised image height ``y = (v - cy) / fy`` (OpenCV axes, +y down) the z-depth is
``min(far, eye_height / |y|)``. Fitted on frames of the synthetic world (scene seeds 0-47): the median depth
of the rows below the horizon follows ``1.6 / y`` within 5%, and the median inverse depth near the horizon
is 1/7 m. A rotation-only path warps exactly whatever the depth.

The warp is backward: every pixel of frame ``f`` is lifted with the assumed depth, moved into the first
camera and sampled there bilinearly; points that leave the first view take its border colour.

:func:`warp_prior_latents` turns that into latents: the first latent frame is decoded, warped and the warped
video encoded again, a few latent frames at a time so that memory stays bounded over a long path. The pipeline
and the trainer both build the prior from the first latent frame (not the input image), so the model sees the
same prior in training and in generation. Block-wise encoding is exact for a codec whose latent frames depend
only on their own 8 video frames (the bundled patch codec, :mod:`sana_wm.bundled.codec`); a VAE with temporal
context across groups (LTX-2) gets an approximation at block edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_EYE_HEIGHT", "DEFAULT_FAR_DEPTH", "box_depth", "warp_first_frame", "warp_prior_latents"]

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


@torch.no_grad()
def warp_prior_latents(vae, first_latent: Tensor, c2w: Tensor, intrinsics: Tensor, *,
                       eye_height: float = DEFAULT_EYE_HEIGHT, far: float = DEFAULT_FAR_DEPTH,
                       block_latent_frames: int = 8) -> Tensor:
    """``(B, C, T, h, w)`` float32 prior latents for a video of ``T`` latent frames.

    vae: anything with ``encode``/``decode`` on normalised latents and ``temporal_stride`` (the patch codec,
    or any :class:`~sana_wm.vae.VideoVAE`). first_latent: ``(B, C, 1, h, w)`` (or more
    frames, of which the first is used). c2w: ``(B, F, 4, 4)`` camera-to-world poses of the
    ``F = s (T - 1) + 1`` video frames (the first one took the image); intrinsics ``(B, F, 4)``
    ``[fx, fy, cx, cy]`` in pixels of the decoded image. Latent frame 0 of the prior is ``first_latent`` itself.
    """
    s = int(vae.temporal_stride)
    B, Fn = c2w.shape[:2]
    if (Fn - 1) % s:
        raise ValueError(f"warp prior: the camera path has {Fn} frames; it needs {s}k + 1 (one per video frame)")
    if tuple(intrinsics.shape[:2]) != (B, Fn):
        raise ValueError(f"warp prior: intrinsics {tuple(intrinsics.shape)} do not match c2w {tuple(c2w.shape)}")
    if block_latent_frames < 1:
        raise ValueError(f"warp prior: block_latent_frames must be >= 1, got {block_latent_frames}")
    first_latent = first_latent[:, :, :1].float()
    image = vae.decode(first_latent)[:, :, 0]  # (B, 3, H, W) in [-1, 1]
    T = (Fn - 1) // s + 1
    out = [first_latent.to(image.device)]
    for a in range(1, T, block_latent_frames):
        b = min(T, a + block_latent_frames)
        frames = slice(s * (a - 1) + 1, s * (b - 1) + 1)  # the video frames of latent frames [a, b)
        warped = warp_first_frame(image, c2w[:, frames], intrinsics[:, frames], first_c2w=c2w[:, 0],
                                  first_intrinsics=intrinsics[:, 0], eye_height=eye_height, far=far)
        # The VAE codes a video that starts with a lone frame; lead with the first frame and drop its latent.
        video = torch.cat([image[:, :, None], warped], dim=2)
        out.append(vae.encode(video)[:, :, 1:].float())
    return torch.cat(out, dim=2)
