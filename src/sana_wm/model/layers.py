"""The transformer's building blocks other than self-attention.

Attribute names are those of the released checkpoints (reference §11.5), so a state dict loads as is;
the small wrapper modules that exist only to reproduce a name (``inverted_conv.conv``, ``y_proj.fc1``,
``t_embedder.mlp.0``) say so.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.model.layout import TokenLayout

__all__ = [
    "CaptionEmbedder",
    "CrossAttention",
    "FinalLayer",
    "GLUMBConvTemp",
    "PatchEmbed",
    "RMSNorm",
    "TemporalShortConv",
    "TimestepEmbedder",
    "timestep_sinusoids",
]


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dim; statistics in float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


class PatchEmbed(nn.Module):
    """Per-token linear map written as a 1x1x1 ``Conv3d`` (the checkpoint's layout):
    ``(B, C_in, T, H, W)`` -> ``(B, T*H*W, C)`` in frame-major order."""

    def __init__(self, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def timestep_sinusoids(t: Tensor, channels: int, max_period: float = 10000.0) -> Tensor:
    """``(..., channels)`` embedding ``[cos(t f_i), sin(t f_i)]`` (cosines first) with
    ``f_i = max_period^(-i / (channels / 2))``."""
    half = channels // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Sinusoids -> Linear -> SiLU -> Linear, held in ``mlp`` (checkpoint names ``mlp.0``, ``mlp.2``)."""

    def __init__(self, hidden_size: int, frequency_channels: int = 256) -> None:
        super().__init__()
        self.frequency_channels = frequency_channels
        self.mlp = nn.Sequential(nn.Linear(frequency_channels, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    def forward(self, t: Tensor) -> Tensor:
        """``t (...)`` -> ``(..., hidden_size)``."""
        emb = timestep_sinusoids(t, self.frequency_channels)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class _Mlp(nn.Module):
    """``fc2(act(fc1(x)))``; a class only so the checkpoint's ``fc1`` / ``fc2`` names exist."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, act: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CaptionEmbedder(nn.Module):
    """Text-encoder states ``(B, L, C_text)`` -> ``(B, L, C)`` through a GELU(tanh) MLP.

    ``y_embedding`` is the learned "null caption" used for caption dropout in training; inference
    never reads it, but the released checkpoints carry it, so it is kept as a buffer.
    """

    def __init__(self, caption_channels: int, hidden_size: int, caption_length: int) -> None:
        super().__init__()
        self.y_proj = _Mlp(caption_channels, hidden_size, hidden_size, nn.GELU(approximate="tanh"))
        self.register_buffer("y_embedding", torch.randn(caption_length, caption_channels) / caption_channels**0.5)

    def forward(self, caption: Tensor) -> Tensor:
        return self.y_proj(caption)


class CrossAttention(nn.Module):
    """Image tokens attend to text tokens (plain residual, not modulated); q/k RMSNorm over all
    channels before the head split; padded text tokens are masked out."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_linear = nn.Linear(hidden_size, hidden_size)
        self.kv_linear = nn.Linear(hidden_size, 2 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.q_norm = RMSNorm(hidden_size, eps=1e-6)
        self.k_norm = RMSNorm(hidden_size, eps=1e-6)

    def forward(self, x: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """``x (B, N, C)``, ``text (B, L, C)``, ``text_mask (B, L)`` bool (True = real token)."""
        B, N, C = x.shape
        H = self.num_heads
        q = self.q_norm(self.q_linear(x)).view(B, N, H, C // H).transpose(1, 2)
        k, v = self.kv_linear(text).chunk(2, dim=-1)
        k = self.k_norm(k).view(B, -1, H, C // H).transpose(1, 2)
        v = v.reshape(B, -1, H, C // H).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=text_mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class _Conv2d(nn.Module):
    """A ``Conv2d`` held as ``.conv`` (the checkpoint's ``mlp.inverted_conv.conv.weight`` naming)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class GLUMBConvTemp(nn.Module):
    """The FFN (reference §1.4): a gated inverted bottleneck over each frame's grid, then a residual
    full ``C -> C`` temporal conv over the frames.

    ``1x1 conv C -> 2F (SiLU) -> depthwise kxk -> split (value, gate) -> value * SiLU(gate) -> 1x1 F -> C``
    gives ``y``; the output is ``y + t_conv(y)`` where ``t_conv`` has kernel ``(k_t, 1)`` over
    ``(time, space)``. In chunk-causal mode the temporal conv sees, for each chunk, the chunk itself
    plus the ``k_t // 2`` frames before it (earlier chunks) and zeros after it, so no frame reads a
    later chunk; a streaming cache holds exactly those left frames.
    """

    def __init__(self, hidden_size: int, mlp_hidden: int, spatial_kernel: int = 3, t_kernel: int = 3) -> None:
        super().__init__()
        self.inverted_conv = _Conv2d(hidden_size, 2 * mlp_hidden, 1)
        self.depth_conv = _Conv2d(2 * mlp_hidden, 2 * mlp_hidden, spatial_kernel, groups=2 * mlp_hidden)
        self.point_conv = _Conv2d(mlp_hidden, hidden_size, 1, bias=False)
        self.t_conv = nn.Conv2d(hidden_size, hidden_size, kernel_size=(t_kernel, 1), bias=False)

    def forward(self, x: Tensor, layout: TokenLayout, left: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, N, C)`` -> ``(y, tail)``. ``left (B, C, k_t // 2, S)``: the temporal conv's input on the
        frames just before this sequence (streaming; None = zeros). ``tail``: the same for the next one."""
        B, N, C = x.shape
        T, Hh, Ww = layout.frames, layout.height, layout.width
        h = x.reshape(B * T, Hh, Ww, C).permute(0, 3, 1, 2)
        h = self.depth_conv(F.silu(self.inverted_conv(h)))
        value, gate = h.chunk(2, dim=1)
        y = self.point_conv(value * F.silu(gate))  # (B*T, C, H, W)
        y = y.reshape(B, T, C, Hh * Ww).transpose(1, 2)  # (B, C, T, S)
        r = self.t_conv.kernel_size[0] // 2
        if left is None:
            left = y.new_zeros(B, C, r, Hh * Ww)
        seq = torch.cat([left.to(y.dtype), y], dim=2)  # frame f sits at index f + r
        # Each chunk sees its own frames, the r frames before it and zeros after it.
        parts = [self.t_conv(F.pad(seq[:, :, a:b + r], (0, 0, 0, r))) for a, b in layout.chunks]
        y = y + (parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
        # The tail is copied: a view would keep this chunk's whole conv input alive in a streaming cache.
        return y.permute(0, 2, 3, 1).reshape(B, N, C), seq[:, :, seq.shape[2] - r:].clone()


def _depthwise_taps(seq: Tensor, w: Tensor) -> Tensor:
    """``F.conv1d(seq, w, groups=C)`` for ``seq (N, C, L)``, ``w (C, 1, K)`` as ``K`` shifted multiply-adds.

    Same numbers up to rounding; on the CPU the backward pass of oneDNN's depthwise 1-D convolution took a
    fifth of a training step of the bundled model at these sizes (K = 4, a dozen frames), the taps a small
    part of that."""
    K = w.shape[-1]
    L = seq.shape[-1] - K + 1
    out = seq[..., :L] * w[:, 0, 0, None]
    for k in range(1, K):
        out = out + seq[..., k:k + L] * w[:, 0, k, None]
    return out


class TemporalShortConv(nn.Module):
    """Depthwise short conv along time on each token position (reference §2.2, K only).

    ``weight (C, 1, K)`` is a causal kernel (last tap = current frame). The symmetric filter is the
    causal conv forward plus the causal conv run on the time-reversed sequence, minus one copy of the
    centre tap: taps ``t-K+1 .. t+K-1``. In chunk-causal mode the reversed pass is restarted inside
    each chunk, so the look-ahead stops at the chunk's end while the look-back crosses chunks.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, 1, kernel_size))

    def forward(self, x: Tensor, layout: TokenLayout, tail: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, N, C)`` frame-major -> ``(out (B, N, C), tail (B*S, C, K-1))``.

        ``tail``: the conv input of the ``K-1`` frames just before this sequence (streaming; None =
        zeros); the returned one is the same for the sequence that follows.
        """
        B, N, C = x.shape
        T, S = layout.frames, layout.tokens_per_frame
        K = self.weight.shape[-1]
        w = self.weight.to(x.dtype)
        xt = x.reshape(B, T, S, C).permute(0, 2, 3, 1).reshape(B * S, C, T)
        if tail is None:
            tail = xt.new_zeros(B * S, C, K - 1)
        seq = torch.cat([tail.to(xt.dtype), xt], dim=-1)
        past = _depthwise_taps(seq, w)  # causal: frames t-K+1 .. t
        future = [_depthwise_taps(F.pad(xt[..., a:b].flip(-1), (K - 1, 0)), w).flip(-1)
                  for a, b in layout.chunks]  # frames t .. t+K-1 inside the chunk
        future = future[0] if len(future) == 1 else torch.cat(future, dim=-1)
        out = past + future - w[:, 0, -1, None] * xt
        tail = seq[..., seq.shape[-1] - (K - 1):].clone()  # a copy: a view would keep all of seq alive in a cache
        return out.reshape(B, S, C, T).permute(0, 3, 1, 2).reshape(B, N, C), tail


class FinalLayer(nn.Module):
    """LayerNorm (no affine) modulated per frame by ``scale_shift_table + t``, then Linear to latents."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        """``x (B, N, C)``, ``t_emb (B, T, C)`` the per-frame timestep embedding -> ``(B, N, C_out)``."""
        B, N, C = x.shape
        T = t_emb.shape[1]
        shift, scale = (self.scale_shift_table[None, None] + t_emb[:, :, None]).unbind(2)  # (B, T, C) each
        h = self.norm_final(x).view(B, T, -1, C) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.linear(h.reshape(B, N, C))
