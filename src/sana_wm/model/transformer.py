"""The SANA-WM transformer: latents + per-frame timesteps + text + camera -> velocity (reference §1).

Block dataflow (§1.3), with per-latent-frame AdaLN-Zero modulation ``mod = scale_shift_table + t_block(t)``::

    x = x + gate_msa * attn(LN(x) * (1 + scale_msa) + shift_msa)      # GDN or softmax, + camera branch
    x = x + plucker_proj(plucker_emb)                                  # fine camera branch (§5.4)
    x = x + cross_attn(x, text)                                        # not modulated
    x = x + gate_mlp * mlp(LN(x) * (1 + scale_mlp) + shift_mlp)

Parameter names follow the released checkpoints, so their state dicts load directly
(:mod:`sana_wm.model.loading`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sana_wm.camera.conditioning import ucpe_ray_transforms
from sana_wm.model.attention import AttentionContext, CameraRays, HybridAttention
from sana_wm.model.cache import BlockCache, KVWindow, StreamCache
from sana_wm.model.config import SanaWMConfig
from sana_wm.model.layers import (
    CaptionEmbedder,
    CrossAttention,
    FinalLayer,
    GLUMBConvTemp,
    PatchEmbed,
    RMSNorm,
    TimestepEmbedder,
)
from sana_wm.model.layout import TokenLayout
from sana_wm.model.positions import rotary_tables

__all__ = ["SanaWMBlock", "SanaWMTransformer", "frame_timesteps"]

_OUTPUT_GATE_BIAS = 1.27846  # SiLU(1.27846) = 1: the output gate starts as the identity
_Y_NORM_INIT = 0.01  # caption RMSNorm weight at init ("y_norm_scale_factor")


class SanaWMBlock(nn.Module):
    def __init__(self, config: SanaWMConfig, kind: str) -> None:
        super().__init__()
        C = config.hidden_size
        self.kind = kind
        self.scale_shift_table = nn.Parameter(torch.randn(6, C) / C**0.5)
        self.norm1 = nn.LayerNorm(C, elementwise_affine=False, eps=1e-6)
        self.attn = HybridAttention(config, kind)
        if config.plucker_channels:
            self.plucker_proj = nn.Linear(C, C)
        self.cross_attn = CrossAttention(C, config.num_heads)
        self.norm2 = nn.LayerNorm(C, elementwise_affine=False, eps=1e-6)
        self.mlp = GLUMBConvTemp(C, config.mlp_hidden, config.spatial_kernel_size, config.t_kernel_size)

    def forward(self, x: Tensor, t_mod: Tensor, text: Tensor, text_mask: Tensor, plucker_emb: Tensor | None,
                ctx: AttentionContext, cache: BlockCache | None = None) -> tuple[Tensor, BlockCache | None]:
        """``x (B, N, C)``; ``t_mod (B, T, 6, C)`` per-frame modulation; ``text (B, L, C)``;
        ``text_mask (B, L)`` bool; ``plucker_emb (B, N, C)`` or None. When streaming, ``cache`` is this
        block's cache before the chunk (None at the start) and the one after it is returned."""
        B, N, C = x.shape
        T = ctx.layout.frames
        mod = (self.scale_shift_table + t_mod)[:, :, :, None]  # (B, T, 6, 1, C): broadcast over a frame
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unbind(2)

        def per_frame(h: Tensor) -> Tensor:
            return h.view(B, T, -1, C)

        h = (per_frame(self.norm1(x)) * (1 + scale_msa) + shift_msa).view(B, N, C)
        attn, attn_cache = self.attn(h, ctx, cache.attn if cache is not None else None)
        x = x + (gate_msa * per_frame(attn)).view(B, N, C)
        if plucker_emb is not None and hasattr(self, "plucker_proj"):
            x = x + ctx.camera_rows(self.plucker_proj(plucker_emb))
        x = x + self.cross_attn(x, text, text_mask)
        h = (per_frame(self.norm2(x)) * (1 + scale_mlp) + shift_mlp).view(B, N, C)
        mlp, ffn_tail = self.mlp(h, ctx.layout, cache.ffn_tail if cache is not None else None)
        x = x + (gate_mlp * per_frame(mlp)).view(B, N, C)
        return x, (BlockCache(attn_cache, ffn_tail) if ctx.streaming else None)


class SanaWMTransformer(nn.Module):
    """SANA-WM DiT with hybrid GDN/softmax attention and dual-branch camera control."""

    def __init__(self, config: SanaWMConfig) -> None:
        super().__init__()
        self.config = config
        C = config.hidden_size
        self.x_embedder = PatchEmbed(config.in_channels, C)
        self.t_embedder = TimestepEmbedder(C, config.timestep_channels)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.y_embedder = CaptionEmbedder(config.caption_channels, C, config.caption_length)
        self.attention_y_norm = RMSNorm(C, eps=config.norm_eps)
        # The reference's "absolute map" camera input; skipped whenever the Plucker branch is on (always
        # in the release) but present in the checkpoints, so it is kept and never called (§5.3).
        self.raymap_embedder = PatchEmbed(3, C)
        if config.plucker_channels:
            self.plucker_embedder = PatchEmbed(config.plucker_channels, C)
        self.blocks = nn.ModuleList(SanaWMBlock(config, config.block_kind(i)) for i in range(config.depth))
        self.final_layer = FinalLayer(C, config.out_channels)
        self.gradient_checkpointing = False  # recompute each block's activations in backward (training)
        self.init_weights()

    def compile_blocks(self, **compile_options) -> None:
        """Opt-in: ``torch.compile`` every block in place (``compile_options`` go to ``torch.compile``).

        For the streaming step on CUDA: a chunk's forward is hundreds of small kernels per block, launch-bound
        at 3 latent frames; compiled, each block's elementwise work is fused. Compilation happens on the first
        call with each new input shape (the first chunk, then the chunks while the KV window fills) and its
        cost lands on those calls; later chunks reuse the compiled code. The Triton GDN scan is left out of
        the graphs (it is already one kernel per pass). Results equal the eager blocks up to the fused
        kernels' rounding.
        """
        # Static shapes by default: a chunk step has a handful of shapes, each compiled once; dynamic shapes
        # would trade that for recompiles when a shape seen as static first turns up again.
        compile_options.setdefault("dynamic", False)
        for block in self.blocks:
            block.compile(**compile_options)

    # -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self) -> None:
        """Training initialisation (reference §2.2, §2.6, §5.3-5.4): every camera path and temporal
        addition starts as a no-op and the GDN gates "mimic linear attention". Loading a checkpoint
        overwrites all of it."""
        for block in self.blocks:
            attn = block.attn
            nn.init.zeros_(attn.beta_proj.weight)
            nn.init.constant_(attn.beta_proj.bias, 5.0)  # beta ~ 0.993
            nn.init.zeros_(attn.gate_proj.weight)
            nn.init.zeros_(attn.gate_proj.bias)
            nn.init.constant_(attn.dt_bias, -5.0)
            nn.init.zeros_(attn.A_log)  # gamma = exp(-softplus(-5)) ~ 0.9933
            nn.init.zeros_(attn.output_gate.weight)
            nn.init.constant_(attn.output_gate.bias, _OUTPUT_GATE_BIAS)
            for conv in (getattr(attn, "conv_k", None), getattr(attn, "conv_k_cam", None)):
                if conv is not None:
                    nn.init.zeros_(conv.weight)
                    conv.weight[:, 0, -1] = 1.0  # identity filter
            # Camera branch starts from the main branch's projections and contributes nothing.
            C = self.config.hidden_size
            for i, lin in enumerate((attn.q_proj_cam, attn.k_proj_cam, attn.v_proj_cam)):
                lin.weight.copy_(attn.qkv.weight[i * C:(i + 1) * C])
                nn.init.zeros_(lin.bias)
            nn.init.zeros_(attn.out_proj_cam.weight)
            nn.init.zeros_(attn.out_proj_cam.bias)
            nn.init.zeros_(block.mlp.t_conv.weight)
            if hasattr(block, "plucker_proj"):
                nn.init.zeros_(block.plucker_proj.weight)
                nn.init.zeros_(block.plucker_proj.bias)
        if hasattr(self, "plucker_embedder"):
            nn.init.zeros_(self.plucker_embedder.proj.weight)
            nn.init.zeros_(self.plucker_embedder.proj.bias)
        nn.init.constant_(self.attention_y_norm.weight, _Y_NORM_INIT)

    @property
    def dtype(self) -> torch.dtype:
        return self.x_embedder.proj.weight.dtype

    # -------------------------------------------------------------------------------------------
    def forward(
        self,
        latents: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        camera_vector: Tensor | None = None,
        plucker: Tensor | None = None,
        mode: str = "bidirectional",
        chunk_lengths=None,
        camera_mask: Tensor | None = None,
    ) -> Tensor:
        """Predict the flow velocity ``v = eps - x0`` for every latent.

        latents: ``(B, C_in, T, H, W)``.
        timestep: ``(B, 1, T)`` / ``(B, T)`` per latent frame, or ``(B,)`` for all frames; in
            ``[0, 1000]`` (sigma * 1000). Floored to integers, as the released model does.
        text: ``(B, 1, L, C_text)`` or ``(B, L, C_text)`` text-encoder states; text_mask ``(B, L)``
            (nonzero = real token; None = all real).
        camera_vector: ``(B, T, 20)`` per-frame relative c2w (row-major 16) + fx, fy, cx, cy in
            latent units, for the UCPE branch; None skips it.
        plucker: ``(B, plucker_channels, T, H, W)`` for the fine camera branch; None skips it.
        mode: ``"bidirectional"`` or ``"chunk_causal"`` (``chunk_lengths`` default: the released
            schedule, ``chunk_frames + 1`` frames then ``chunk_frames`` each).
        camera_mask: ``(B,)`` bool, the rows that have a camera: a False row comes out as if
            ``camera_vector`` and ``plucker`` were None for it (both camera branches add nothing), so rows
            with and without camera share one forward. None: every row has its camera.
        Returns ``(B, C_in, T, H, W)`` in the model's dtype.
        """
        _, T, H, W, t_frames, text, text_mask = _check_inputs(self.config, latents, timestep, text, text_mask,
                                                              camera_vector, plucker)
        layout = TokenLayout.build(T, H, W, mode, chunk_lengths, self.config.chunk_frames)
        return self._run(latents, t_frames, text, text_mask, camera_vector, plucker, layout,
                         camera_mask=_check_camera_mask(camera_mask, latents))[0]

    def forward_chunk(
        self,
        latents: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        camera_vector: Tensor | None = None,
        plucker: Tensor | None = None,
        cache: StreamCache | None = None,
        kv_window: KVWindow | None = None,
        camera_mask: Tensor | None = None,
    ) -> tuple[Tensor, StreamCache]:
        """Streaming: one chunk of latent frames given the cache of the chunks before it.

        Inputs are those of :meth:`forward` restricted to the chunk's frames (``camera_vector`` keeps
        poses relative to the video's first frame). ``cache`` is None for the first chunk; the returned
        cache is for the next one (a sampler keeps the one from its final, clean pass). ``kv_window``
        (first chunk only) sets how many earlier chunks softmax blocks keep; the default keeps all, which
        makes streaming equal to :meth:`forward` in ``"chunk_causal"`` mode over the whole video.
        ``camera_mask`` as in :meth:`forward`; pass the same one for every chunk of a video.
        """
        _, T, H, W, t_frames, text, text_mask = _check_inputs(self.config, latents, timestep, text, text_mask,
                                                              camera_vector, plucker)
        if cache is not None and len(cache.blocks) != len(self.blocks):
            raise ValueError(f"cache has {len(cache.blocks)} blocks, the model {len(self.blocks)}")
        if cache is not None and kv_window is not None:
            raise ValueError("kv_window is set on the first chunk; later chunks take it from the cache")
        layout = TokenLayout(T, H, W)
        return self._run(latents, t_frames, text, text_mask, camera_vector, plucker, layout, streaming=True,
                         cache=cache, kv_window=kv_window or KVWindow(),
                         camera_mask=_check_camera_mask(camera_mask, latents))

    def _run(self, latents, t_frames, text, text_mask, camera_vector, plucker, layout: TokenLayout, *,
             streaming: bool = False, cache: StreamCache | None = None,
             kv_window: KVWindow | None = None,
             camera_mask: Tensor | None = None) -> tuple[Tensor, StreamCache | None]:
        """The forward pass on checked inputs (see :func:`_check_inputs`)."""
        cfg = self.config
        dtype, device = self.dtype, self.x_embedder.proj.weight.device
        B, T, H, W = latents.shape[0], layout.frames, layout.height, layout.width
        first_frame = cache.next_frame if cache is not None else 0

        x = self.x_embedder(latents.to(dtype))  # (B, N, C)
        t_emb = self.t_embedder(t_frames)  # (B, T, C)
        t_mod = self.t_block(t_emb).unflatten(-1, (6, cfg.hidden_size))  # (B, T, 6, C)
        y = self.attention_y_norm(self.y_embedder(text.to(dtype)))  # (B, L, C)
        plucker_emb = None
        if plucker is not None and hasattr(self, "plucker_embedder"):
            plucker_emb = self.plucker_embedder(plucker.to(dtype))

        rope, rope_cam = rotary_tables(layout, cfg.head_dim, cfg.rope_theta, cfg.rope_max_positions, device,
                                       frame_offset=first_frame)
        rays = None
        if camera_vector is not None:
            P, P_inv = ucpe_ray_transforms(camera_vector, (H, W))  # float32 geometry
            rays = CameraRays(P.float(), P_inv.float())
        ctx = AttentionContext(layout, rope, rope_cam, rays, streaming, kv_window or KVWindow(),
                               camera_mask=None if camera_mask is None else camera_mask.to(device))

        block_caches = []
        for i, block in enumerate(self.blocks):
            args = (x, t_mod, y, text_mask, plucker_emb, ctx, cache.blocks[i] if cache is not None else None)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x, block_cache = checkpoint(block, *args, use_reentrant=False)
            else:
                x, block_cache = block(*args)
            block_caches.append(block_cache)
        x = self.final_layer(x, t_emb)  # (B, N, C_out)
        out = x.view(B, T, H, W, -1).permute(0, 4, 1, 2, 3)
        return out, (StreamCache(tuple(block_caches), first_frame + T) if streaming else None)


def frame_timesteps(timestep, batch: int, frames: int, device=None) -> Tensor:
    """``timestep`` as the model reads it: ``(B, T)`` float integers, from ``(B, 1, T)``, ``(B, T)``, ``(B,)`` or
    a scalar. The released model casts timesteps with ``.long()``: it only ever sees integer t (fractions
    floored)."""
    t = torch.as_tensor(timestep, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim == 3 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim == 1 and t.shape[0] == batch:
        t = t[:, None].expand(batch, frames)
    if tuple(t.shape) != (batch, frames):
        raise ValueError(f"timestep: expected (B, 1, T), (B, T) or (B,) with B={batch}, T={frames}; "
                         f"got {tuple(torch.as_tensor(timestep).shape)}")
    return t.long().float()


def _check_camera_mask(camera_mask: Tensor | None, latents: Tensor) -> Tensor | None:
    """``camera_mask`` checked to be one bool per row of ``latents``."""
    if camera_mask is None:
        return None
    B = latents.shape[0]
    if camera_mask.dtype != torch.bool or tuple(camera_mask.shape) != (B,):
        raise ValueError(f"camera_mask: expected a ({B},) bool tensor (True = the row has a camera), got "
                         f"{tuple(camera_mask.shape)} {camera_mask.dtype}")
    return camera_mask


def _check_inputs(cfg: SanaWMConfig, latents, timestep, text, text_mask, camera_vector, plucker):
    """Validate shapes once; returns ``B, T, H, W``, integer per-frame timesteps ``(B, T)``, text
    ``(B, L, C_text)`` and a bool mask ``(B, L)``."""
    if latents.ndim != 5 or latents.shape[1] != cfg.in_channels:
        raise ValueError(f"latents: expected (B, {cfg.in_channels}, T, H, W), got {tuple(latents.shape)}")
    B, _, T, H, W = latents.shape

    t = frame_timesteps(timestep, B, T, latents.device)

    if text.ndim == 4 and text.shape[1] == 1:
        text = text[:, 0]
    if text.ndim != 3 or text.shape[0] != B or text.shape[-1] != cfg.caption_channels:
        raise ValueError(f"text: expected (B, 1, L, {cfg.caption_channels}) or (B, L, {cfg.caption_channels}) "
                         f"with B={B}, got {tuple(text.shape)}")
    L = text.shape[1]
    if text_mask is None:
        text_mask = torch.ones(B, L, dtype=torch.bool, device=text.device)
    else:
        text_mask = text_mask.reshape(text_mask.shape[0], -1)
        if text_mask.shape[0] == 1 and B > 1:
            text_mask = text_mask.expand(B, -1)
        if tuple(text_mask.shape) != (B, L):
            raise ValueError(f"text_mask: expected (B, L) = ({B}, {L}), got {tuple(text_mask.shape)}")
        text_mask = text_mask != 0

    if camera_vector is not None and tuple(camera_vector.shape) != (B, T, 20):
        raise ValueError(f"camera_vector: expected (B, T, 20) = ({B}, {T}, 20), got {tuple(camera_vector.shape)}")
    if plucker is not None and tuple(plucker.shape) != (B, cfg.plucker_channels, T, H, W):
        raise ValueError(f"plucker: expected (B, {cfg.plucker_channels}, T, H, W) = "
                         f"({B}, {cfg.plucker_channels}, {T}, {H}, {W}), got {tuple(plucker.shape)}")
    return B, T, H, W, t, text, text_mask
