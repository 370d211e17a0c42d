"""Frame-wise Gated DeltaNet scan with the sequential part in a Triton kernel; equal to ``gdn_naive``.

Same inputs, layout and outputs as :func:`sana_wm.ops.gdn_naive.gdn_naive`. Both recurrences of the
scan are linear in their state, one D x D transition per frame (see :mod:`sana_wm.ops.gdn_fast`)::

    S_t = S_{t-1} W_t + U_t      W_t = gamma_t (I - K~^T B K~)    U_t = V^T B K~     (rows: value dims)
    z_t = z_{t-1} Wz_t + u_t     Wz_t = gamma_t (I - K^T B K)     u_t = 1^T B K       (one row)

so the work splits in three:

1. the per-frame transitions and writes -- every contraction over the S tokens of a frame -- are
   batched torch GEMMs in parallel over all frames (the bulk of the flops, tensor-core friendly);
2. the short sequential part, T steps of ``X = X @ M_t + U_t`` on a D x D state, runs in one Triton
   kernel launch per scan with the state on chip; rows of the state are independent (the transition
   multiplies from the right), so the state's rows are split across programs: ``BLOCK_R`` = 16 rows
   per program gives 7 programs per head at the released D = 112, 140 programs for 20 heads;
3. the read-out ``num = q~ @ states^T`` is again one batched GEMM over all frames.

The backward pass (:class:`_StateScan`) is the same kernel run over the transposed transitions in the
opposite direction (the adjoint of a linear recurrence is a linear recurrence), plus batched GEMMs for
the transition gradients; the gradients of steps 1 and 3 come from torch's autograd.

The scan state and every accumulation are float32 whatever the input dtype (:func:`sana_wm.ops.gdn_scan`
casts bf16/fp16 inputs up); float64 is refused (use ``impl="naive"`` as the float64 oracle). Any
D <= 128 and any S, T and chunk lengths are handled (blocks are padded and masked).

Tested on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``, set before this module is
imported); on CUDA tensors the same kernel is compiled.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["MAX_HEAD_DIM", "gdn_triton", "interpreted"]

MAX_HEAD_DIM = 128
"""Largest head dim the kernel keeps on chip: the transition tile is (D, D) padded to a power of two."""

# Per frame the kernel does one of three step orders (the forward passes and their adjoints need all three):
_INCLUSIVE = 0  # X = X @ M_t + U_t, then out_t = X        (forward pass: frame t reads frames ..t)
_EXCLUSIVE = 1  # out_t = X, then X = X @ M_t + U_t        (backward pass: frame t reads frames t+1..)
_ADD_FIRST = 2  # X = X + U_t, out_t = X, then X = X @ M_t  (adjoint of the inclusive pass)


def interpreted() -> bool:
    """Whether Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1`` when this module was imported)."""
    return _scan_kernel.__class__.__name__ == "InterpretedFunction"


@triton.jit
def _scan_kernel(
    M_ptr,  # (N, T, D, D) per-frame transitions, read through strides (a transposed view costs nothing)
    U_ptr,  # (N, T, R, D) per-frame additive terms, contiguous
    X0_ptr,  # (N, R, D) state each segment starts from (HAS_X0), contiguous
    out_ptr,  # (N, T, R, D) state read by each frame, contiguous
    final_ptr,  # (N, R, D) state after the last step of the last segment, contiguous
    bounds_ptr,  # (n_segments + 1,) int32 frame offsets of the segments (chunks)
    n_segments,
    T,
    R,
    D,
    stride_mn,
    stride_mt,
    stride_mr,
    stride_mc,
    REVERSE: tl.constexpr,  # walk each segment from its last frame to its first
    ORDER: tl.constexpr,  # _INCLUSIVE, _EXCLUSIVE or _ADD_FIRST
    HAS_X0: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    n = tl.program_id(0).to(tl.int64)  # int64: N * T * R * D passes 2**31 at large batches
    rows = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    x_mask = (rows[:, None] < R) & (cols[None, :] < D)
    m_mask = (cols[:, None] < D) & (cols[None, :] < D)
    x_offsets = rows[:, None] * D + cols[None, :]
    m_offsets = cols[:, None] * stride_mr + cols[None, :] * stride_mc
    U_n = U_ptr + n * T * R * D
    out_n = out_ptr + n * T * R * D
    M_n = M_ptr + n * stride_mn

    X = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)
    for segment in range(0, n_segments):
        start = tl.load(bounds_ptr + segment)
        stop = tl.load(bounds_ptr + segment + 1)
        if HAS_X0:
            X = tl.load(X0_ptr + n * R * D + x_offsets, mask=x_mask, other=0.0)
        else:
            X = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)
        for i in range(0, stop - start):
            if REVERSE:
                t = stop - 1 - i
            else:
                t = start + i
            M = tl.load(M_n + t * stride_mt + m_offsets, mask=m_mask, other=0.0)
            U = tl.load(U_n + t * R * D + x_offsets, mask=x_mask, other=0.0)
            if ORDER == 0:  # _INCLUSIVE (module constants are plain Python ints, not visible in the kernel)
                # "ieee": fp32 products, not TF32 (a 10-bit mantissa drifts over 241 frames).
                X = tl.dot(X, M, input_precision="ieee") + U
                tl.store(out_n + t * R * D + x_offsets, X, mask=x_mask)
            elif ORDER == 1:  # _EXCLUSIVE
                tl.store(out_n + t * R * D + x_offsets, X, mask=x_mask)
                X = tl.dot(X, M, input_precision="ieee") + U
            else:  # _ADD_FIRST
                X = X + U
                tl.store(out_n + t * R * D + x_offsets, X, mask=x_mask)
                X = tl.dot(X, M, input_precision="ieee")
    tl.store(final_ptr + n * R * D + x_offsets, X, mask=x_mask)


def _bounds(lengths: list[int], device: torch.device) -> Tensor:
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    return torch.tensor(offsets, dtype=torch.int32, device=device)


def _linear_scan(
    M: Tensor,  # (N, T, D, D) float32 transitions (any strides)
    U: Tensor,  # (N, T, R, D) float32
    X0: Tensor | None,  # (N, R, D) float32 start of every segment, None: zeros
    lengths: list[int],  # segment lengths summing to T
    *,
    reverse: bool,
    order: int,
) -> tuple[Tensor, Tensor]:
    """One kernel launch: the state each frame reads ``(N, T, R, D)``, the state after the last step ``(N, R, D)``."""
    N, T, R, D = U.shape
    U = U.contiguous()
    out = torch.empty_like(U)
    final = U.new_empty(N, R, D)
    has_x0 = X0 is not None
    X0 = X0.contiguous() if has_x0 else final  # a placeholder pointer, never read when HAS_X0 is False
    block_d = max(16, triton.next_power_of_2(D))  # tl.dot needs every block dim >= 16
    block_r = 16
    grid = (N, triton.cdiv(R, block_r))
    _scan_kernel[grid](
        M, U, X0, out, final, _bounds(lengths, U.device), len(lengths), T, R, D,
        M.stride(0), M.stride(1), M.stride(2), M.stride(3),
        REVERSE=reverse, ORDER=order, HAS_X0=has_x0, BLOCK_R=block_r, BLOCK_D=block_d,
        num_warps=4, num_stages=1,  # one stage: a pipelined (D, D) fp32 tile would not fit shared memory
    )  # fmt: skip
    return out, final


class _StateScan(torch.autograd.Function):
    """States read by each frame (forward inclusive + backward exclusive per chunk) and the final forward state.

    Forward: ``F_t = F_{t-1} W_t + U_t`` (``F_{-1} = X0``); backward pass per chunk ``Bk_{t-1} = Bk_t W_t + U_t``
    from ``Bk_end = 0``; output ``F_t + Bk_t``. Adjoints, with ``G_t`` the gradient of output t:
    ``A_t = G_t + A_{t+1} W_{t+1}^T`` (``A_{T-1}`` also gets the final state's gradient) and, per chunk,
    ``C_t = G_t + C_{t-1} W_t^T``; then ``dW_t = F_{t-1}^T A_t + Bk_t^T C_{t-1}``, ``dU_t = A_t + C_{t-1}``,
    ``dX0 = A_0 W_0^T``.
    """

    @staticmethod
    def forward(ctx, W: Tensor, U: Tensor, X0: Tensor | None, chunks: tuple[int, ...] | None):
        T = W.shape[1]
        forward, final = _linear_scan(W, U, X0, [T], reverse=False, order=_INCLUSIVE)
        backward = None
        states = forward
        if chunks:
            backward, _ = _linear_scan(W, U, None, list(chunks), reverse=True, order=_EXCLUSIVE)
            states = forward + backward
        ctx.chunks = chunks
        ctx.save_for_backward(W, forward, backward, X0)
        return states, final

    @staticmethod
    def backward(ctx, grad_states: Tensor | None, grad_final: Tensor | None):
        W, forward, backward, X0 = ctx.saved_tensors
        T = W.shape[1]
        if grad_states is None:
            grad_states = torch.zeros_like(forward)
        W_T = W.mT  # a strided view: the kernel reads the transpose in place
        A, grad_X0 = _linear_scan(W_T, grad_states, grad_final, [T], reverse=True, order=_ADD_FIRST)
        start = torch.zeros_like(forward[:, :1]) if X0 is None else X0[:, None]
        previous = torch.cat([start, forward[:, :-1]], dim=1)  # F_{t-1}
        grad_W = previous.mT @ A
        grad_U = A
        if ctx.chunks:
            C_previous, _ = _linear_scan(W_T, grad_states, None, list(ctx.chunks), reverse=False, order=_EXCLUSIVE)
            grad_W = grad_W + backward.mT @ C_previous
            grad_U = grad_U + C_previous
        return grad_W, grad_U, (grad_X0 if X0 is not None else None), None


@torch.compiler.disable  # a compiled model calls the kernel as it is, not through a traced copy of it
def _scan_states(
    W: Tensor,  # (B, H, T, D, D)
    U: Tensor,  # (B, H, T, R, D)
    X0: Tensor | None,  # (B, H, R, D)
    chunk_lengths: list[int] | None,
) -> tuple[Tensor, Tensor]:
    """``(B, H, T, R, D)`` states read by each frame and the ``(B, H, R, D)`` final forward state."""
    Bsz, H, T, R, D = U.shape
    flat = (Bsz * H, T)
    states, final = _StateScan.apply(
        W.reshape(*flat, D, D),
        U.reshape(*flat, R, D),
        None if X0 is None else X0.reshape(Bsz * H, R, D),
        tuple(chunk_lengths) if chunk_lengths else None,
    )
    return states.reshape(Bsz, H, T, R, D), final.reshape(Bsz, H, R, D)


def gdn_triton(
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
    """Same contract as ``gdn_naive``, float32 inputs only: ``(out (B,H,T,S,D), S_T (B,H,D,D), z_T (B,H,D) | None)``."""
    D = q_num.shape[-1]
    if q_num.dtype != torch.float32:
        raise ValueError(f"gdn_scan: impl='triton' scans in float32, got {q_num.dtype}; use impl='naive' for float64")
    if D > MAX_HEAD_DIM:
        raise ValueError(f"gdn_scan: impl='triton' handles head dims up to {MAX_HEAD_DIM}, got D={D}; use impl='fast'")
    if q_num.device.type != "cuda" and not interpreted():
        raise ValueError(
            f"gdn_scan: impl='triton' needs CUDA tensors, got {q_num.device.type}; use impl='fast' on CPU "
            "(or set TRITON_INTERPRET=1 before sana_wm.ops.gdn_triton is imported to run Triton's interpreter)"
        )
    eye = torch.eye(D, dtype=q_num.dtype, device=q_num.device)

    def transition(k: Tensor, beta_k: Tensor) -> Tensor:  # gamma (I - K^T B K), (B, H, T, D, D)
        return gamma[..., None, None] * (eye - k.mT @ beta_k)

    # 1. All S-token contractions of every frame at once: batched (D x S) @ (S x D) GEMMs. (gdn_fast builds
    # them a few frames at a time to bound CPU memory; on a GPU one launch over all frames is what counts.)
    beta_k = beta[..., None] * k_num  # (B, H, T, S, D) = B K~
    W = transition(k_num, beta_k)
    U = v.mT @ beta_k
    # 2. The sequential part: one kernel per pass, state on chip.
    states, S_final = _scan_states(W, U, S0, chunk_lengths)
    # 3. Read-out, batched over frames: row n of frame t is states[t] @ q~_n.
    num = q_num @ states.mT
    if q_den is None:
        return num, S_final, None

    beta_k = beta[..., None] * k_den  # un-rotated keys for the normalizer
    Wz = transition(k_den, beta_k)
    u = beta_k.sum(dim=-2, keepdim=True)  # (B, H, T, 1, D): target value 1 for every token
    z_states, z_final = _scan_states(Wz, u, None if z0 is None else z0[:, :, None], chunk_lengths)
    den = q_den @ z_states.mT  # (B, H, T, S, 1)
    return num / (den + eps), S_final, z_final[:, :, 0]
