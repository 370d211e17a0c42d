"""Positional encodings of self-attention: Wan-style 3D RoPE and the UCPE camera transform.

RoPE (reference §1.6) rotates adjacent channel pairs ``(2i, 2i+1)`` of a head. The head's pairs are
split between the three axes: ``D//6`` pairs each for height and width, the rest for time (112 ->
20 time, 18 height, 18 width pairs). Axis ``a`` with ``d_a`` real channels uses frequencies
``theta^(-2i/d_a)``, evaluated at integer positions.

UCPE (§5.3) encodes the camera branch: the first half of every head is read as homogeneous
4-vectors, each mapped by a per-token 4x4 ray-frame matrix; the second half is rotated by a RoPE
sub-table made of the first pairs of each axis of the main table (sliced, not recomputed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sana_wm.model.layout import TokenLayout

__all__ = ["Rotary", "apply_rotary", "rope_pairs", "rotary_tables", "ucpe_transform"]


@dataclass(frozen=True)
class Rotary:
    """Per-token rotation angles as cosines and sines, each ``(N, P)`` for ``P`` channel pairs."""

    cos: Tensor
    sin: Tensor


def rope_pairs(head_dim: int) -> tuple[int, int, int]:
    """Channel pairs given to (time, height, width) for a head of ``head_dim`` channels."""
    hw = head_dim // 6
    return head_dim // 2 - 2 * hw, hw, hw


def _axis_angles(pairs: int, positions: int, theta: float, device) -> Tensor:
    """``(positions, pairs)`` angles ``p * theta^(-2i / (2 pairs))``, in float32 like the reference."""
    dim = 2 * pairs
    freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)
    return torch.outer(torch.arange(positions, dtype=torch.float32, device=device), freqs)


def rotary_tables(layout: TokenLayout, head_dim: int, theta: float, max_positions: int,
                  device=None, frame_offset: int = 0) -> tuple[Rotary, Rotary]:
    """RoPE for the main branch (``head_dim / 2`` pairs) and the camera sub-table (``head_dim / 4`` pairs).

    ``frame_offset`` shifts the time positions (a streaming chunk keeps absolute frame indices).
    """
    T, H, W = layout.frames, layout.height, layout.width
    if max(frame_offset + T, H, W) > max_positions:
        raise ValueError(f"latent grid {T}x{H}x{W} (frames from {frame_offset}) exceeds the RoPE table of "
                         f"{max_positions} positions per axis")
    pt, ph, pw = rope_pairs(head_dim)
    ct, ch, cw = rope_pairs(head_dim // 2)
    t = _axis_angles(pt, frame_offset + T, theta, device)[frame_offset:]  # (T, pt)
    h = _axis_angles(ph, H, theta, device)
    w = _axis_angles(pw, W, theta, device)

    def grid(nt: int, nh: int, nw: int) -> Tensor:
        return torch.cat([
            t[:, None, None, :nt].expand(T, H, W, nt),
            h[None, :, None, :nh].expand(T, H, W, nh),
            w[None, None, :, :nw].expand(T, H, W, nw),
        ], dim=-1).reshape(T * H * W, nt + nh + nw)

    main, cam = grid(pt, ph, pw), grid(ct, ch, cw)
    return Rotary(main.cos(), main.sin()), Rotary(cam.cos(), cam.sin())


def apply_rotary(x: Tensor, rot: Rotary, inverse: bool = False) -> Tensor:
    """Rotate adjacent pairs of the last dim of ``x (B, N, H, 2P)`` by the token angles (float32 math).

    ``inverse`` rotates by the negative angles (the complex conjugate).
    """
    xf = x.float().unflatten(-1, (-1, 2))
    a, b = xf[..., 0], xf[..., 1]  # (B, N, H, P)
    cos, sin = rot.cos[:, None, :], rot.sin[:, None, :]
    if inverse:
        sin = -sin
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).to(x.dtype)


def ucpe_transform(x: Tensor, matrices: Tensor, rot: Rotary, inverse_rope: bool = False) -> Tensor:
    """UCPE-encode ``x (B, N, H, D)``: groups of 4 in the first half ``g <- M g`` with the token's
    ``matrices (B, N, 4, 4)``; RoPE (or its inverse) with ``rot`` on the second half."""
    half = x.shape[-1] // 2
    geo = x[..., :half].unflatten(-1, (half // 4, 4))  # (B, N, H, G, 4)
    geo = torch.einsum("bnij,bnhgj->bnhgi", matrices.to(x.dtype), geo).flatten(-2)
    return torch.cat([geo, apply_rotary(x[..., half:], rot, inverse_rope)], dim=-1)
