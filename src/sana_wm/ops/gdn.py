"""Frame-wise Gated DeltaNet scan: the public entry, its state type and the chunk schedule.

The math lives in three interchangeable forms, tested equal:

* :mod:`sana_wm.ops.gdn_naive` -- a plain loop over frames, the readable oracle (runs in float64);
* :mod:`sana_wm.ops.gdn_fast` -- per-frame D x D transitions built for all frames in batched
  matmuls, then a short sequential scan in a Python loop; the default on CPU;
* :mod:`sana_wm.ops.gdn_triton` -- the same transitions, the sequential scan (and its adjoint for
  training) in one Triton kernel launch per pass; the default for CUDA tensors when ``triton``
  is installed (the ``gpu`` extra).

Three modes share one recurrence (forward inclusive, plus a backward exclusive pass restarted in
each chunk), differing only in where the backward pass may look:

* ``"bidirectional"``: one chunk covering all frames (the released offline model);
* ``"chunk_causal"``: the backward pass sees only later frames of the same chunk (streaming teacher);
* ``"causal"``: no backward pass (same as chunk-causal with one-frame chunks).

Streaming a chunk-causal model chunk by chunk is ``mode="bidirectional"`` on each chunk with the
previous chunk's forward state as ``initial_state``; it equals one ``"chunk_causal"`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import torch
from torch import Tensor

from sana_wm.ops.gdn_fast import gdn_fast
from sana_wm.ops.gdn_naive import gdn_naive

__all__ = [
    "DEFAULT_EPS",
    "GDNState",
    "gdn_scan",
    "released_chunk_lengths",
]

Mode = Literal["bidirectional", "chunk_causal", "causal"]
Impl = Literal["auto", "naive", "fast", "triton"]

DEFAULT_EPS = 1e-8
"""Added to the denominator, as in the released model's GDN blocks (the attention class default of
1e-15 is overridden to 1e-8 by the block that builds it)."""

_IMPLS = ("naive", "fast", "triton")


def _kernel(impl: str):
    """The implementation named ``impl``; Triton is imported only when asked for (it is an optional extra)."""
    if impl == "naive":
        return gdn_naive
    if impl == "fast":
        return gdn_fast
    try:
        from sana_wm.ops.gdn_triton import gdn_triton
    except ImportError as error:
        raise ImportError(
            f'gdn_scan: impl="triton" needs the triton package ({error}); install it with pip install "sana-wm[gpu]"'
        ) from error
    return gdn_triton


def _auto_impl(x: Tensor, dtype: torch.dtype) -> str:
    """Triton for CUDA tensors it supports (float32 scan, D <= 128) when triton is installed, else the fast form."""
    if x.device.type != "cuda" or dtype == torch.float64:
        return "fast"
    try:
        from sana_wm.ops.gdn_triton import MAX_HEAD_DIM
    except ImportError:
        return "fast"
    return "triton" if x.shape[-1] <= MAX_HEAD_DIM else "fast"


@dataclass(frozen=True)
class GDNState:
    """Forward (causal) scan state after the last frame, carried from one streamed chunk to the next."""

    S: Tensor  # (B, H, D, D) numerator state; maps keys to values, a query q reads S @ q
    z: Tensor | None = None  # (B, H, D) normalizer state; None for the numerator-only camera branch


def released_chunk_lengths(num_frames: int, first: int = 4, size: int = 3) -> list[int]:
    """Chunk lengths of the released chunk-causal schedule: ``first`` frames, then ``size``; last may be short.

    >>> released_chunk_lengths(9)
    [4, 3, 2]
    """
    if num_frames < 1 or first < 1 or size < 1:
        raise ValueError(
            f"released_chunk_lengths: num_frames, first and size must be >= 1, got {num_frames}, {first}, {size}"
        )
    lengths = [min(first, num_frames)]
    while sum(lengths) < num_frames:
        lengths.append(min(size, num_frames - sum(lengths)))
    return lengths


def gdn_scan(
    q: Tensor,  # (B, H, T, S, D) queries after the feature map, un-rotated (denominator)
    k: Tensor,  # (B, H, T, S, D) keys after feature map and key scale, un-rotated (denominator)
    v: Tensor,  # (B, H, T, S, D) values
    beta: Tensor,  # (B, H, T, S) per-token write strength in [0, 1], or (B, H, T) per frame
    gamma: Tensor,  # (B, H, T) per-frame decay in (0, 1]
    *,
    q_rot: Tensor | None = None,  # (B, H, T, S, D) RoPE-rotated q for the numerator; default q
    k_rot: Tensor | None = None,  # (B, H, T, S, D) RoPE-rotated k for the numerator; default k
    with_normalizer: bool = True,
    mode: Mode = "bidirectional",
    chunk_lengths: Sequence[int] | None = None,
    initial_state: GDNState | None = None,
    return_state: bool = False,
    eps: float = DEFAULT_EPS,
    impl: Impl = "auto",
) -> Tensor | tuple[Tensor, GDNState]:
    """Frame-wise Gated DeltaNet over T latent frames of S tokens; returns ``(B, H, T, S, D)`` in v's dtype.

    Main branch (``with_normalizer=True``): ``(num_f + num_b) / (den_f + den_b + eps)`` where the
    numerators read the state with ``q_rot`` (keys ``k_rot``) and the denominators read the
    normalizer ``z`` with the un-rotated ``q`` (keys ``k``). Camera branch
    (``with_normalizer=False``, pass the UCPE-transformed tensors as ``q``/``k``): ``num_f + num_b``.

    ``mode`` picks the backward pass (see the module docstring); ``chunk_lengths`` (chunk-causal
    only, default :func:`released_chunk_lengths`) must sum to T. ``initial_state`` seeds the forward
    pass only; with ``return_state`` the forward state after the last frame is returned as well.
    The scan runs in float32, or float64 when any input is float64; the returned state keeps that dtype.
    ``impl``: ``"naive"`` (the reference loop), ``"fast"`` or ``"triton"`` (float32 scans, D <= 128; CUDA
    tensors, or CPU under ``TRITON_INTERPRET=1``); ``"auto"`` picks ``"triton"`` for CUDA tensors it
    supports when triton is installed, else ``"fast"``.
    """
    Bsz, H, T, S, D = _check_5d("q", q)
    shape = (Bsz, H, T, S, D)
    for name, x in (("k", k), ("v", v), ("q_rot", q_rot), ("k_rot", k_rot)):
        if x is not None and tuple(x.shape) != shape:
            raise ValueError(f"gdn_scan: {name} has shape {tuple(x.shape)}, expected {shape} like q (B, H, T, S, D)")
    if tuple(beta.shape) == (Bsz, H, T):
        beta = beta[..., None].expand(Bsz, H, T, S)
    elif tuple(beta.shape) != (Bsz, H, T, S):
        raise ValueError(
            f"gdn_scan: beta has shape {tuple(beta.shape)}, expected per-token {(Bsz, H, T, S)} "
            f"or per-frame {(Bsz, H, T)}"
        )
    if tuple(gamma.shape) != (Bsz, H, T):
        raise ValueError(f"gdn_scan: gamma has shape {tuple(gamma.shape)}, expected one decay per frame {(Bsz, H, T)}")
    backward_chunks = _backward_chunks(mode, chunk_lengths, T)
    if impl != "auto" and impl not in _IMPLS:
        raise ValueError(f"gdn_scan: unknown impl {impl!r}; choose 'auto', {', '.join(map(repr, _IMPLS))}")

    inputs = [q, k, v, beta, gamma] + [x for x in (q_rot, k_rot) if x is not None]
    if initial_state is not None:
        _check_state(initial_state, Bsz, H, D, with_normalizer)
        inputs += [x for x in (initial_state.S, initial_state.z) if x is not None]
    for x in inputs:
        if not x.is_floating_point():
            raise TypeError(f"gdn_scan: expected floating-point tensors, got {x.dtype}")
    # The recurrence always runs in at least float32 (bf16 states drift over 121 frames).
    dtype = reduce(torch.promote_types, (x.dtype for x in inputs), torch.float32)

    if impl == "auto":
        impl = _auto_impl(q, dtype)

    def cast(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.to(dtype)

    q_num = q if q_rot is None else q_rot
    k_num = k if k_rot is None else k_rot
    out, S_final, z_final = _kernel(impl)(
        cast(q_num),
        cast(k_num),
        cast(v),
        cast(beta),
        cast(gamma),
        cast(q) if with_normalizer else None,
        cast(k) if with_normalizer else None,
        backward_chunks,
        cast(initial_state.S) if initial_state is not None else None,
        cast(initial_state.z) if initial_state is not None and with_normalizer else None,
        eps,
    )
    out = out.to(v.dtype)
    if return_state:
        return out, GDNState(S=S_final, z=z_final)
    return out


def _check_5d(name: str, x: Tensor) -> tuple[int, int, int, int, int]:
    if x.ndim != 5:
        raise ValueError(
            f"gdn_scan: {name} must be (B, H, T, S, D) = (batch, heads, frames, tokens per frame, head dim), "
            f"got shape {tuple(x.shape)}"
        )
    return tuple(x.shape)


def _backward_chunks(mode: str, chunk_lengths: Sequence[int] | None, T: int) -> list[int] | None:
    """Chunks inside which the backward (exclusive) pass runs; None means no backward pass."""
    if mode == "causal" or mode == "bidirectional":
        if chunk_lengths is not None:
            raise ValueError(f"gdn_scan: chunk_lengths only applies to mode='chunk_causal', not mode={mode!r}")
        return None if mode == "causal" else [T]
    if mode != "chunk_causal":
        raise ValueError(f"gdn_scan: unknown mode {mode!r}; choose 'bidirectional', 'chunk_causal' or 'causal'")
    lengths = released_chunk_lengths(T) if chunk_lengths is None else [int(n) for n in chunk_lengths]
    if any(n < 1 for n in lengths) or sum(lengths) != T:
        raise ValueError(f"gdn_scan: chunk_lengths {lengths} must be positive and sum to the {T} frames of the input")
    return lengths


def _check_state(state: GDNState, Bsz: int, H: int, D: int, with_normalizer: bool) -> None:
    if tuple(state.S.shape) != (Bsz, H, D, D):
        raise ValueError(f"gdn_scan: initial_state.S has shape {tuple(state.S.shape)}, expected {(Bsz, H, D, D)}")
    if with_normalizer:
        if state.z is None:
            raise ValueError(
                "gdn_scan: initial_state.z is None but with_normalizer=True; "
                "carry the state returned by a normalized (main-branch) scan"
            )
        if tuple(state.z.shape) != (Bsz, H, D):
            raise ValueError(f"gdn_scan: initial_state.z has shape {tuple(state.z.shape)}, expected {(Bsz, H, D)}")
