"""Reference frame-wise Gated DeltaNet scan: one readable loop over frames, the oracle.

Every other form of the scan (``gdn_fast``, any future fused kernel) is tested against this file.
It favours the equations of SANA-WM (frame-wise Gated DeltaNet; single-path camera scan) over speed,
and runs in whatever floating dtype it is given, float64 included.

Layout (shared by all forms): tensors are ``(B, H, T, S, D)`` -- batch, heads, latent frames, tokens
per frame, head channels. The state ``S`` is ``(B, H, D, D)`` and maps keys to values, so a query
``q`` (a length-``D`` row of the layout) reads ``S @ q``; the normalizer ``z`` is ``(B, H, D)`` and a
query reads ``z . q``. All tokens of a frame update the state at once (the frame is the delta-rule
chunk), so there is no order among tokens of one frame.

Per frame ``t`` with keys ``K`` (``S x D`` here; the paper's ``K^T``), values ``V``, ``B = diag(beta_t)``::

    S_t = gamma_t S_{t-1} (I - K~^T B K~) + V^T B K~          (rotated keys K~)
    z_t = gamma_t z_{t-1} + K^T B (1 - K gamma_t z_{t-1})      (un-rotated keys K; target value 1)

The forward pass reads each frame's state *after* the frame's own update (inclusive); the backward
pass runs the same recurrence from the last frame of a chunk towards its first and reads each
frame's state *before* the frame's own update (exclusive: frame t sees frames t+1 .. end of chunk).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gdn_naive"]


def _step(
    S: Tensor,  # (B, H, D, D) numerator state before the frame
    z: Tensor | None,  # (B, H, D) normalizer state before the frame, None without normalizer
    k_num: Tensor,  # (B, H, S, D) keys of the frame used by the numerator (rotated)
    v: Tensor,  # (B, H, S, D) values of the frame
    beta: Tensor,  # (B, H, S) per-token write strength
    gamma: Tensor,  # (B, H) per-frame decay
    k_den: Tensor | None,  # (B, H, S, D) un-rotated keys of the frame, None without normalizer
) -> tuple[Tensor, Tensor | None]:
    """One frame of the delta rule: decay the state, then write every token of the frame at once."""
    g = gamma[..., None, None]  # (B, H, 1, 1)
    beta_k = beta[..., None] * k_num  # (B, H, S, D) = B K~
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    S = g * S @ (eye - k_num.mT @ beta_k) + v.mT @ beta_k
    if z is not None:
        gz = gamma[..., None] * z  # (B, H, D)
        residual = 1.0 - (k_den @ gz[..., None])[..., 0]  # (B, H, S): target 1 minus what z predicts
        z = gz + (k_den.mT @ (beta * residual)[..., None])[..., 0]
    return S, z


def _read(
    S: Tensor,  # (B, H, D, D)
    z: Tensor | None,  # (B, H, D)
    q_num: Tensor,  # (B, H, S, D) rotated queries of the frame
    q_den: Tensor | None,  # (B, H, S, D) un-rotated queries of the frame
) -> tuple[Tensor, Tensor | None]:
    """Numerator ``S q~`` (B, H, S, D) and denominator ``z . q`` (B, H, S) for every query of a frame."""
    num = q_num @ S.mT
    den = None if z is None else (q_den @ z[..., None])[..., 0]
    return num, den


def gdn_naive(
    q_num: Tensor,  # (B, H, T, S, D) numerator queries (RoPE/UCPE-transformed)
    k_num: Tensor,  # (B, H, T, S, D) numerator keys (RoPE/UCPE-transformed)
    v: Tensor,  # (B, H, T, S, D) values
    beta: Tensor,  # (B, H, T, S) per-token write strength
    gamma: Tensor,  # (B, H, T) per-frame decay
    q_den: Tensor | None,  # (B, H, T, S, D) un-rotated queries, None: numerator only (camera branch)
    k_den: Tensor | None,  # (B, H, T, S, D) un-rotated keys, None: numerator only
    chunk_lengths: list[int] | None,  # backward pass restarts in each chunk; None: no backward pass
    S0: Tensor | None,  # (B, H, D, D) forward state before frame 0, None: zeros
    z0: Tensor | None,  # (B, H, D) forward normalizer before frame 0, None: zeros
    eps: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Scan in the inputs' dtype; returns ``(out (B,H,T,S,D), S_T (B,H,D,D), z_T (B,H,D) | None)``.

    ``out`` is ``(num_f + num_b) / (den_f + den_b + eps)`` with a normalizer, ``num_f + num_b``
    without; ``S_T``/``z_T`` are the forward state after the last frame (what a next chunk starts from).
    """
    Bsz, H, T, _, D = q_num.shape
    normalized = q_den is not None
    zeros_S = q_num.new_zeros(Bsz, H, D, D)
    zeros_z = q_num.new_zeros(Bsz, H, D) if normalized else None

    def frame(x: Tensor | None, t: int) -> Tensor | None:
        return None if x is None else x[:, :, t]

    num = torch.zeros_like(q_num)  # (B, H, T, S, D)
    den = q_num.new_zeros(q_num.shape[:-1]) if normalized else None  # (B, H, T, S)

    # Forward pass, inclusive: frame t reads the state that already holds frames 0..t.
    S = zeros_S if S0 is None else S0
    z = zeros_z if (z0 is None or not normalized) else z0
    for t in range(T):
        S, z = _step(S, z, k_num[:, :, t], v[:, :, t], beta[:, :, t], gamma[:, :, t], frame(k_den, t))
        num_t, den_t = _read(S, z, q_num[:, :, t], frame(q_den, t))
        num[:, :, t] += num_t
        if normalized:
            den[:, :, t] += den_t
    S_final, z_final = S, z

    # Backward pass, exclusive and restarted per chunk: frame t reads frames t+1 .. end of its chunk.
    start = 0
    for length in chunk_lengths or []:
        S, z = zeros_S, zeros_z
        for t in reversed(range(start, start + length)):
            num_t, den_t = _read(S, z, q_num[:, :, t], frame(q_den, t))
            num[:, :, t] += num_t
            if normalized:
                den[:, :, t] += den_t
            S, z = _step(S, z, k_num[:, :, t], v[:, :, t], beta[:, :, t], gamma[:, :, t], frame(k_den, t))
        start += length

    out = num / (den[..., None] + eps) if normalized else num
    return out, S_final, z_final
