"""Self-attention of a SANA-WM block: a main branch and a UCPE camera branch (reference §2, §5.3).

Every block has the same parameters; ``kind`` picks the mixer:

* ``"gdn"``: frame-wise Gated DeltaNet (:func:`sana_wm.ops.gdn.gdn_scan`). Main branch: K short conv,
  ReLU feature maps on RMS-normed q/k, key scale ``1/sqrt(D*S)``, RoPE on the numerator only.
  Camera branch: its own projections, short conv and norms, UCPE-encoded q/k/v, numerator-only scan
  with ``beta`` discounted by the key inflation of the transform.
* ``"softmax"``: scaled dot-product attention with full 3D RoPE (main) or UCPE (camera); the GDN gate
  parameters exist (the checkpoint has them) but are unused, and there is no short conv.

Both branches' raw outputs are summed (camera through the zero-initialised ``out_proj_cam``) and a
shared SiLU output gate and projection are applied once (§2.6).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.model.cache import GDNCache, KVWindow, SoftmaxCache
from sana_wm.model.config import SanaWMConfig
from sana_wm.model.layers import RMSNorm, TemporalShortConv
from sana_wm.model.layout import TokenLayout
from sana_wm.model.positions import Rotary, apply_rotary, ucpe_transform
from sana_wm.ops.gdn import GDNState, gdn_scan

__all__ = ["AttentionContext", "CameraRays", "HybridAttention", "padded_head_dim"]

_NORM_FLOOR = 1e-6  # the reference clamps key norms and RMS values at 1e-6


def padded_head_dim(head_dim: int) -> int:
    """The head dim after the reference's zero-padding to a FlashAttention size (112 -> 128).

    Padding q/k with zeros leaves the logits unchanged, but SDPA's default scale then becomes
    ``1/sqrt(padded)``. The reference pads in the camera branch and in the streaming (cached) softmax,
    not in the offline main branch: the released model scales by ``1/sqrt(128)`` there and
    ``1/sqrt(112)`` in the main branch (reference §2.3).
    """
    if head_dim in (32, 64, 128, 256) or head_dim > 256:
        return head_dim
    return 128 if head_dim <= 128 else 256


@dataclass(frozen=True)
class CameraRays:
    """Per-token UCPE ray frames (see :func:`sana_wm.camera.conditioning.ucpe_ray_transforms`)."""

    P: Tensor  # (B, N, 4, 4) world -> ray-local
    P_inv: Tensor  # (B, N, 4, 4) ray-local -> world


@dataclass(frozen=True)
class AttentionContext:
    """What every block's self-attention needs besides its input, computed once per forward."""

    layout: TokenLayout
    rope: Rotary  # (N, head_dim / 2) pairs, main branch
    rope_cam: Rotary  # (N, head_dim / 4) pairs, second half of camera heads
    rays: CameraRays | None  # None: no camera input, the camera branch is skipped
    # Streaming: blocks read the previous chunks' cache and return their own; kv_window is the empty
    # window (with its size policy) a softmax block starts from on the first chunk.
    streaming: bool = False
    kv_window: KVWindow = KVWindow()
    # (B,) bool: the rows that have a camera; a False row's camera branches (UCPE and Pluecker) add nothing,
    # as if it had no camera input. None: every row has one. Lets a batch mix rows with and without camera
    # (training's camera dropout) in one forward.
    camera_mask: Tensor | None = None

    def camera_rows(self, update: Tensor) -> Tensor:
        """``update (B, ...)``, a camera branch's contribution, zeroed in the rows without a camera."""
        if self.camera_mask is None:
            return update
        keep = self.camera_mask.view(-1, *(1,) * (update.ndim - 1))
        # where, not a product: a dropped row's contribution is exactly 0 even if its unused camera is not finite.
        return torch.where(keep, update, torch.zeros((), dtype=update.dtype, device=update.device))


class HybridAttention(nn.Module):
    def __init__(self, config: SanaWMConfig, kind: str) -> None:
        super().__init__()
        if kind not in ("gdn", "softmax"):
            raise ValueError(f"attention kind must be 'gdn' or 'softmax', got {kind!r}")
        C, H = config.hidden_size, config.num_heads
        self.kind = kind
        self.num_heads, self.head_dim = H, config.head_dim
        self.gdn_eps = config.gdn_eps
        # The release renormalises UCPE-transformed q/k/v in softmax blocks only (config.ucpe_rms_renorm).
        self.ucpe_rms_renorm = config.renorms_ucpe(kind)
        self.padded_softmax_in_streaming = config.padded_softmax_in_streaming

        # Main branch.
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_norm = RMSNorm(C, eps=config.norm_eps)
        self.k_norm = RMSNorm(C, eps=config.norm_eps)
        # GDN gates, shared by both branches: beta per token, decay gamma per frame.
        self.beta_proj = nn.Linear(C, H)
        self.gate_proj = nn.Linear(C, H)
        self.A_log = nn.Parameter(torch.zeros(H))
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.register_buffer("recall_gate", torch.zeros(1))  # in the checkpoints, never read
        if kind == "gdn":
            self.conv_k = TemporalShortConv(C, config.conv_kernel_size)

        # Camera branch.
        self.q_proj_cam = nn.Linear(C, C)
        self.k_proj_cam = nn.Linear(C, C)
        self.v_proj_cam = nn.Linear(C, C)
        self.out_proj_cam = nn.Linear(C, C)
        self.q_norm_cam = RMSNorm(C, eps=config.norm_eps)
        self.k_norm_cam = RMSNorm(C, eps=config.norm_eps)
        if kind == "gdn":
            self.conv_k_cam = TemporalShortConv(C, config.conv_kernel_size)

        # Shared output gate and projection.
        self.output_gate = nn.Linear(C, C)
        self.proj = nn.Linear(C, C)

    # -------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, ctx: AttentionContext,
                cache: GDNCache | SoftmaxCache | None = None) -> tuple[Tensor, GDNCache | SoftmaxCache | None]:
        """``x (B, N, C)``: the modulated, normalised block input ``x_hat``. Returns ``(B, N, C)`` and,
        when streaming, this block's cache after the chunk (``cache``: the one before it, None at the start)."""
        if self.kind == "gdn":
            out, new_cache = self._forward_gdn(x, ctx, cache)
        else:
            out, new_cache = self._forward_softmax(x, ctx, cache)
        out = out.float() * F.silu(self.output_gate(x).float())
        return self.proj(out.to(x.dtype)), (new_cache if ctx.streaming else None)

    def _forward_gdn(self, x: Tensor, ctx: AttentionContext, cache: GDNCache | None) -> tuple[Tensor, GDNCache]:
        beta, gamma = self._gates(x, ctx.layout)
        out, state, tail = self._main_gdn(x, ctx, beta, gamma, cache)
        state_cam = tail_cam = None
        if ctx.rays is not None:
            cam, state_cam, tail_cam = self._camera_gdn(x, ctx, beta, gamma, cache)
            out = out + ctx.camera_rows(self.out_proj_cam(cam))
        return out, GDNCache(state, tail, state_cam, tail_cam)

    def _forward_softmax(self, x: Tensor, ctx: AttentionContext,
                         cache: SoftmaxCache | None) -> tuple[Tensor, SoftmaxCache]:
        out, kv = self._main_softmax(x, ctx, cache.kv if cache is not None else ctx.kv_window)
        kv_cam = None
        if ctx.rays is not None:
            window = cache.kv_cam if cache is not None and cache.kv_cam is not None else ctx.kv_window
            cam, kv_cam = self._camera_softmax(x, ctx, window)
            out = out + ctx.camera_rows(self.out_proj_cam(cam))
        return out, SoftmaxCache(kv, kv_cam)

    # -------------------------------------------------------------------------------------------
    def _heads(self, x: Tensor) -> Tensor:
        """``(B, N, C)`` -> ``(B, N, H, D)`` in float32 (attention math runs in fp32, §1.1)."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).float()

    @staticmethod
    def _frames(x: Tensor, layout: TokenLayout) -> Tensor:
        """``(B, N, H, D)`` -> ``(B, H, T, S, D)``, the scan layout."""
        B, _, H, D = x.shape
        return x.view(B, layout.frames, layout.tokens_per_frame, H, D).permute(0, 3, 1, 2, 4)

    @staticmethod
    def _tokens(x: Tensor) -> Tensor:
        """``(B, H, T, S, D)`` -> ``(B, N, H, D)``."""
        return x.permute(0, 2, 3, 1, 4).flatten(1, 2)

    def _gates(self, x: Tensor, layout: TokenLayout) -> tuple[Tensor, Tensor]:
        """``beta (B, H, T, S)`` = sigmoid of a per-token projection; ``gamma (B, H, T)`` =
        ``exp(-exp(A_log) softplus(W_g mean_frame(x) + b_g + dt_bias))`` from each frame's mean token."""
        B, N, C = x.shape
        T, S = layout.frames, layout.tokens_per_frame
        beta = torch.sigmoid(self.beta_proj(x)).view(B, T, S, -1).permute(0, 3, 1, 2)
        g = self.gate_proj(x.view(B, T, S, C).mean(dim=2)).float() + self.dt_bias.float()
        gamma = torch.exp(-torch.exp(self.A_log.float()) * F.softplus(g))  # (B, T, H)
        return beta, gamma.transpose(1, 2)

    def _scan(self, q, k, v, beta, gamma, layout, initial_state, *, q_rot=None, k_rot=None,
              normalized=True) -> tuple[Tensor, GDNState]:
        chunked = layout.is_chunked
        return gdn_scan(q, k, v, beta, gamma, q_rot=q_rot, k_rot=k_rot, with_normalizer=normalized,
                        mode="chunk_causal" if chunked else "bidirectional",
                        chunk_lengths=layout.chunk_lengths if chunked else None,
                        initial_state=initial_state, return_state=True, eps=self.gdn_eps)

    def _key_scale(self, layout: TokenLayout) -> float:
        # "Algebraic key scaling": keeps the delta-rule transition's spectral norm bounded (§2.2).
        return (self.head_dim * layout.tokens_per_frame) ** -0.5

    # -------------------------------------------------------------------------------------------
    def _main_gdn(self, x: Tensor, ctx: AttentionContext, beta: Tensor, gamma: Tensor, cache: GDNCache | None):
        layout = ctx.layout
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k, tail = self.conv_k(k, layout, cache.conv_tail if cache is not None else None)
        q = self._heads(F.relu(self.q_norm(q)))
        k = self._heads(F.relu(self.k_norm(k))) * self._key_scale(layout)
        v = self._heads(v)
        # RoPE only on the numerator path; the denominator keeps un-rotated q, k (§2.2).
        q_rot, k_rot = apply_rotary(q, ctx.rope), apply_rotary(k, ctx.rope)
        f = self._frames
        out, state = self._scan(f(q, layout), f(k, layout), f(v, layout), beta, gamma, layout,
                                cache.state if cache is not None else None,
                                q_rot=f(q_rot, layout), k_rot=f(k_rot, layout))
        return self._tokens(out).flatten(2).to(x.dtype), state, tail

    def _main_softmax(self, x: Tensor, ctx: AttentionContext, window: KVWindow):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = apply_rotary(self._heads(self.q_norm(q)), ctx.rope)
        k = apply_rotary(self._heads(self.k_norm(k)), ctx.rope).to(x.dtype)
        v = self._heads(v).to(x.dtype)
        padded = ctx.streaming and self.padded_softmax_in_streaming
        scale = 1 / math.sqrt(padded_head_dim(self.head_dim) if padded else self.head_dim)
        out = _softmax_attention(q, k, v, ctx.layout, scale, x.dtype, window.keys_values())
        return out.flatten(2).to(x.dtype), (window.push(k, v) if ctx.streaming else None)

    # -------------------------------------------------------------------------------------------
    def _ucpe_encode(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext):
        """q by ``P^T``, k and v by ``P^-1`` (+ camera RoPE on their second halves)."""
        rays = ctx.rays
        q_t = ucpe_transform(q, rays.P.transpose(-1, -2), ctx.rope_cam)
        k_t = ucpe_transform(k, rays.P_inv, ctx.rope_cam)
        v_t = ucpe_transform(v, rays.P_inv, ctx.rope_cam)
        if self.ucpe_rms_renorm:
            q_t, k_t, v_t = _cap_rms(q, q_t), _cap_rms(k, k_t), _cap_rms(v, v_t)
        return q_t, k_t, v_t

    def _ucpe_decode(self, out: Tensor, ctx: AttentionContext, dtype: torch.dtype) -> Tensor:
        out = ucpe_transform(out, ctx.rays.P, ctx.rope_cam, inverse_rope=True)
        return out.flatten(2).to(dtype)

    def _camera_qkv(self, x: Tensor, layout: TokenLayout, relu: bool, conv_tail: Tensor | None = None):
        q, k, v = self.q_proj_cam(x), self.k_proj_cam(x), self.v_proj_cam(x)
        tail = None
        if self.kind == "gdn":
            k, tail = self.conv_k_cam(k, layout, conv_tail)
        q, k = self.q_norm_cam(q), self.k_norm_cam(k)
        if relu:
            q, k = F.relu(q), F.relu(k)
        return self._heads(q), self._heads(k), self._heads(v), tail

    def _camera_gdn(self, x: Tensor, ctx: AttentionContext, beta: Tensor, gamma: Tensor, cache: GDNCache | None):
        layout = ctx.layout
        q, k, v, tail = self._camera_qkv(x, layout, relu=True,
                                         conv_tail=cache.conv_tail_cam if cache is not None else None)
        k = k * self._key_scale(layout)
        q_t, k_t, v_t = self._ucpe_encode(q, k, v, ctx)
        # The ray transform (a translation in homogeneous coordinates) can inflate keys; discount the
        # write strength by the frame-mean squared-norm inflation so the delta rule stays contractive.
        # Without the renorm (the release's GDN blocks) this is the raw inflation; with it, k_t is already
        # capped at k's RMS and the discount is 1.
        inflation = (k_t.norm(dim=-1).clamp_min(_NORM_FLOOR) / k.norm(dim=-1).clamp_min(_NORM_FLOOR)) ** 2
        B, N, H = inflation.shape
        frame_inflation = inflation.view(B, layout.frames, -1, H).mean(dim=2).transpose(1, 2)  # (B, H, T)
        beta_cam = beta / frame_inflation.clamp_min(1.0)[..., None]
        f = self._frames
        out, state = self._scan(f(q_t, layout), f(k_t, layout), f(v_t, layout), beta_cam, gamma, layout,
                                cache.state_cam if cache is not None else None, normalized=False)
        return self._ucpe_decode(self._tokens(out), ctx, x.dtype), state, tail

    def _camera_softmax(self, x: Tensor, ctx: AttentionContext, window: KVWindow):
        q, k, v, _ = self._camera_qkv(x, ctx.layout, relu=False)
        q_t, k_t, v_t = self._ucpe_encode(q, k, v, ctx)
        k_t, v_t = k_t.to(x.dtype), v_t.to(x.dtype)
        scale = 1 / math.sqrt(padded_head_dim(self.head_dim))
        out = _softmax_attention(q_t, k_t, v_t, ctx.layout, scale, x.dtype, window.keys_values())
        return self._ucpe_decode(out.float(), ctx, x.dtype), (window.push(k_t, v_t) if ctx.streaming else None)


def _cap_rms(reference: Tensor, x: Tensor) -> Tensor:
    """Scale each head vector of ``x`` down (never up) to the RMS of ``reference`` (diffusers' renorm)."""
    ref = reference.pow(2).mean(-1, keepdim=True).add(_NORM_FLOOR).sqrt()
    cur = x.pow(2).mean(-1, keepdim=True).add(_NORM_FLOOR).sqrt()
    return x * (ref / cur.clamp_min(_NORM_FLOOR)).clamp(max=1.0)


def _softmax_attention(q: Tensor, k: Tensor, v: Tensor, layout: TokenLayout, scale: float,
                       dtype: torch.dtype, prefix: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """SDPA over ``(B, N, H, D)`` tensors in ``dtype``. Chunk-causal: each chunk's queries see the keys of
    their own and all earlier chunks (a block-causal pattern: one FlexAttention call with a block mask on
    CUDA, SDPA chunk by chunk elsewhere; no dense mask either way). ``prefix``: keys and values of earlier
    chunks (streaming), seen by every query, attended without a mask."""
    q, k, v = (t.to(dtype).transpose(1, 2) for t in (q, k, v))  # (B, H, N, D)
    P = 0
    if prefix is not None:
        P = prefix[0].shape[1]
        k = torch.cat([prefix[0].to(dtype).transpose(1, 2), k], dim=2)
        v = torch.cat([prefix[1].to(dtype).transpose(1, 2), v], dim=2)
    if not layout.is_chunked:
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    elif q.is_cuda:
        out = _chunk_causal_flex(q, k, v, layout, scale, P)
    else:
        out = _chunk_causal_sdpa(q, k, v, layout, scale, P)
    return out.transpose(1, 2)


def _chunk_causal_sdpa(q: Tensor, k: Tensor, v: Tensor, layout: TokenLayout, scale: float, P: int) -> Tensor:
    """``(B, H, N, D)`` queries, ``(B, H, P + N, D)`` keys/values: one SDPA call per chunk over the keys it sees."""
    S = layout.tokens_per_frame
    return torch.cat([F.scaled_dot_product_attention(q[:, :, a * S:b * S], k[:, :, :P + b * S], v[:, :, :P + b * S],
                                                     scale=scale)
                      for a, b in layout.chunks], dim=2)


def _chunk_causal_flex(q: Tensor, k: Tensor, v: Tensor, layout: TokenLayout, scale: float, P: int) -> Tensor:
    """The same as :func:`_chunk_causal_sdpa` in one FlexAttention call: a block mask lets the kernel skip the
    key blocks a query block cannot see and apply the mask only on the blocks a chunk boundary crosses.

    Heads are zero-padded to a power of two (112 -> 128), the sizes Flex's fused kernel is built for: zero
    channels add nothing to q.k or to the output, and the released scale is passed explicitly, so the
    padding changes no number.
    """
    D = q.shape[-1]
    padded = max(16, 1 << (D - 1).bit_length())
    if padded != D:
        q, k, v = (F.pad(t, (0, padded - D)) for t in (q, k, v))
    block_mask = _chunk_causal_block_mask(layout.tokens_per_frame, tuple(layout.chunk_lengths), P, str(q.device))
    out = _flex_attention(q.device)(q, k, v, block_mask=block_mask, scale=scale)
    return out[..., :D]


@functools.lru_cache(maxsize=16)
def _chunk_causal_block_mask(tokens_per_frame: int, chunk_lengths: tuple[int, ...], prefix: int, device: str):
    """FlexAttention block mask: query n sees keys ``< prefix + (end of n's chunk)``; cached per shape."""
    from torch.nn.attention.flex_attention import create_block_mask

    ends = torch.cat([torch.full((n * tokens_per_frame,), prefix + (start + n) * tokens_per_frame)
                      for start, n in zip(itertools.accumulate((0, *chunk_lengths)), chunk_lengths, strict=False)])
    limit = ends.to(device=device, dtype=torch.int32)  # (N,) keys visible to each query

    def mask_mod(batch, head, q_index, kv_index):
        return kv_index < limit[q_index]

    N = limit.numel()
    # Compiled on CUDA: the eager builder evaluates the mask for every (query, key) pair at once.
    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=N, KV_LEN=prefix + N, device=device,
                             _compile=device.startswith("cuda"))


@functools.lru_cache(maxsize=4)
def _flex_attention(device: torch.device):
    """``flex_attention``, compiled into a fused kernel on CUDA (eager it materialises the scores)."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False) if device.type == "cuda" else flex_attention
