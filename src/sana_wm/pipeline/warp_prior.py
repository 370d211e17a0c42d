"""The latents of the warp prior that a ``prediction: sample_warp`` model adds to its output.

The first latent frame is decoded, warped along the camera path (:func:`sana_wm.camera.warp.warp_first_frame`)
and the warped video encoded again, a few latent frames at a time so that memory stays bounded over a long
path. The pipeline and the trainer both build the prior here, from the first latent frame (not the input
image), so a model sees the same prior in training and in generation.

Block-wise encoding is exact for a VAE whose latent frames depend only on their own 8 video frames (the
bundled patch codec, :mod:`sana_wm.ae.patch_pca`); a VAE with temporal context across groups (LTX-2) gets
an approximation at block edges.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sana_wm.camera.warp import DEFAULT_EYE_HEIGHT, DEFAULT_FAR_DEPTH, warp_first_frame

__all__ = ["warp_prior_latents"]


@torch.no_grad()
def warp_prior_latents(vae, first_latent: Tensor, c2w: Tensor, intrinsics: Tensor, *,
                       eye_height: float = DEFAULT_EYE_HEIGHT, far: float = DEFAULT_FAR_DEPTH,
                       block_latent_frames: int = 8) -> Tensor:
    """``(B, C, T, h, w)`` float32 prior latents for a video of ``T`` latent frames.

    vae: anything with ``encode``/``decode`` on normalised latents and ``temporal_stride`` (a
    :class:`~sana_wm.vae.VideoVAE` or the patch codec). first_latent: ``(B, C, 1, h, w)`` (or more
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
