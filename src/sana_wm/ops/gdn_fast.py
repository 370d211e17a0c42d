"""Fast frame-wise Gated DeltaNet scan in transition form; equal to ``gdn_naive`` up to rounding.

Same inputs, layout and outputs as :func:`sana_wm.ops.gdn_naive.gdn_naive`. The numerator recurrence
is linear in the state, ``S_t = S_{t-1} W_t + U_t`` with

    W_t = gamma_t (I - K~_t^T B_t K~_t)      U_t = V_t^T B_t K~_t          (both D x D)

so the expensive part -- contracting the S tokens of every frame -- is done in batched matmuls over
many frames at once, leaving only a cheap sequential scan of D x D matmuls over the T frames. The
backward pass is the same recurrence run from the end of each chunk: it reuses ``W``/``U`` and costs
one more D x D scan, and because both passes are read by the same queries the forward and backward
states are summed before a single batched read-out matmul. Three (D x S) @ (S x D)-sized matmuls per
frame in all, against six for running the naive form once per direction.

The normalizer ``z`` needs no D x D transition: its update is two vector-matrix products against the
frame's keys, cheaper than building a Gram matrix per frame when S > D.

Differentiable (gradients are tested against the naive form's), so it can train.
A parallel-prefix form of the D x D scan was not added: at the released shapes on CPU the D x D
scans take about a tenth of the time (the token contractions dominate) and a prefix scan multiplies
their flops by log T. It is the natural shape for a fused GPU kernel, which would register beside
this one in ``sana_wm.ops.gdn``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gdn_fast"]


# Frames per block when building the transitions are chosen so that the block's scaled keys stay
# under this many bytes: the temporaries then never reach (B, H, T, S, D) size, and stay below the
# size at which the C allocator returns memory to the OS (and pays page faults to get it back).
_BLOCK_BYTES = 16 * 2**20


def _transitions(
    k: Tensor,  # (B, H, T, S, D) numerator keys
    v: Tensor,  # (B, H, T, S, D)
    beta: Tensor,  # (B, H, T, S)
    gamma: Tensor,  # (B, H, T)
) -> tuple[Tensor, Tensor]:
    """``W = gamma (I - K~^T B K~)`` and ``U = V^T B K~``, each (B, H, T, D, D), a block of frames at a time."""
    Bsz, H, T, S, D = k.shape
    eye = torch.eye(D, dtype=k.dtype, device=k.device)
    block = max(1, _BLOCK_BYTES // (Bsz * H * S * D * k.element_size()))
    Ws, Us = [], []
    for start in range(0, T, block):
        frames = slice(start, start + block)
        k_b = k[:, :, frames]
        beta_k = beta[:, :, frames, :, None] * k_b  # (B, H, block, S, D) = B K~
        # The S-token contractions: (B*H*block) batched (D x S) @ (S x D) matmuls.
        Ws.append(gamma[:, :, frames, None, None] * (eye - torch.matmul(k_b.mT, beta_k)))
        Us.append(torch.matmul(v[:, :, frames].mT, beta_k))
    return torch.cat(Ws, dim=2), torch.cat(Us, dim=2)


def _numerator_states(
    W: Tensor,  # (B, H, T, D, D) per-frame transition
    U: Tensor,  # (B, H, T, D, D) per-frame write
    chunk_lengths: list[int] | None,
    S0: Tensor | None,  # (B, H, D, D)
) -> tuple[Tensor, Tensor]:
    """States read by each frame's queries, forward + backward summed (B, H, T, D, D), and S_T."""
    T = W.shape[2]
    S = W.new_zeros(W.shape[:2] + W.shape[3:]) if S0 is None else S0
    # Per-frame views by one unbind: indexing W[:, :, t] in the loops would make autograd zero-fill a
    # whole (B, H, T, D, D) gradient for every frame read (10% of a CPU training step of the bundled model).
    W, U = W.unbind(2), U.unbind(2)
    forward = []
    for t in range(T):
        S = torch.matmul(S, W[t]) + U[t]
        forward.append(S)
    states = torch.stack(forward, dim=2)
    if chunk_lengths:
        zero = torch.zeros_like(S)
        backward = []  # filled from the end of each chunk: frame t reads frames t+1 .. chunk end
        start = 0
        for length in chunk_lengths:
            chunk = [zero]
            for t in range(start + length - 1, start, -1):
                chunk.append(torch.matmul(chunk[-1], W[t]) + U[t])
            backward.extend(reversed(chunk))
            start += length
        states = states + torch.stack(backward, dim=2)
    return states, S


def _normalizer_states(
    k: Tensor,  # (B, H, T, S, D) un-rotated keys
    beta: Tensor,  # (B, H, T, S)
    gamma: Tensor,  # (B, H, T)
    chunk_lengths: list[int] | None,
    z0: Tensor | None,  # (B, H, D)
) -> tuple[Tensor, Tensor]:
    """Normalizer read by each frame's queries, forward + backward summed (B, H, T, 1, D), and z_T (B, H, D).

    ``z`` is kept as a row (B, H, 1, D): the two products with the frame's keys per step are then
    row-vector times matrix, which CPU BLAS runs about twice as fast as the matrix-vector form.
    """

    Bsz, H, T, _, D = k.shape
    ks, betas, gammas = k.unbind(2), beta.unbind(2), gamma.unbind(2)  # per-frame views (see _numerator_states)

    def step(z: Tensor, t: int) -> Tensor:  # z: (B, H, 1, D)
        k_t = ks[t]  # (B, H, S, D)
        gz = gammas[t][:, :, None, None] * z
        residual = betas[t][:, :, None, :] * (1.0 - torch.matmul(gz, k_t.mT))  # (B, H, 1, S)
        return gz + torch.matmul(residual, k_t)

    z = k.new_zeros(Bsz, H, 1, D) if z0 is None else z0[:, :, None, :]
    forward = []
    for t in range(T):
        z = step(z, t)
        forward.append(z)
    states = torch.stack(forward, dim=2)
    if chunk_lengths:
        zero = torch.zeros_like(z)
        backward = []
        start = 0
        for length in chunk_lengths:
            chunk = [zero]
            for t in range(start + length - 1, start, -1):
                chunk.append(step(chunk[-1], t))
            backward.extend(reversed(chunk))
            start += length
        states = states + torch.stack(backward, dim=2)
    return states, z[:, :, 0]


def gdn_fast(
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
    """Same contract as ``gdn_naive``: ``(out (B,H,T,S,D), S_T (B,H,D,D), z_T (B,H,D) | None)``."""
    W, U = _transitions(k_num, v, beta, gamma)
    states, S_final = _numerator_states(W, U, chunk_lengths, S0)
    num = torch.matmul(q_num, states.mT)  # (B, H, T, S, D): row n is states[t] @ q~_n
    if q_den is None:
        return num, S_final, None

    z_states, z_final = _normalizer_states(k_den, beta, gamma, chunk_lengths, z0)
    den = torch.matmul(q_den, z_states.mT)  # (B, H, T, S, 1)
    # In place: saves allocating (and page-faulting) a second (B, H, T, S, D) tensor; autograd-safe.
    return num.div_(den + eps), S_final, z_final
