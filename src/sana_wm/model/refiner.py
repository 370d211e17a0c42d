"""The stage-2 refiner's transformer (reference §6): diffusers' ``LTX2VideoTransformer3DModel`` run on its
video stream only, one block of latent frames at a time against a :class:`RefinerWindow`.

**Attention layout** ("shifted sink"). Queries come from the block being refined; keys/values are
``[sink, history, block]``:

* the sink's keys/values come from one forward of the sink frames alone at timestep 0; its keys are kept
  *before* RoPE and rotated for every block to the positions just before the history, so the sink always
  sits next to the window whatever the block's absolute position;
* the history holds the keys/values (after RoPE, at the frames' absolute positions) of the most recent
  refined frames, from one more forward of each finished block at timestep 0 against the same window;
  at most ``kv_max_frames - sink_frames`` frames are kept (released: 11 - 1 = 10).

The history is the stage-1 cache's :class:`~sana_wm.model.cache.KVWindow` with one entry per latent frame
(the refiner's window slides by frames, not by whole blocks). The sink is not the KVWindow's ``sink``: that
one keeps the first chunk's keys at their own positions, after RoPE, while the refiner's sink is re-rotated
for every block, so it is kept apart, before RoPE.

The SDEdit loop that drives this model is :mod:`sana_wm.samplers.sdedit`; loading the released folders, the
Gemma-3 text encoder and the user's settings are in :mod:`sana_wm.pipeline.refiner`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.model.cache import KVWindow

__all__ = ["RefinerText", "RefinerTransformer", "RefinerWindow"]

_AUDIO_MODULES = ("audio_proj_in", "audio_caption_projection", "audio_time_embed", "av_cross_attn_video_scale_shift",
                  "av_cross_attn_audio_scale_shift", "av_cross_attn_video_a2v_gate", "av_cross_attn_audio_v2a_gate",
                  "audio_scale_shift_table", "audio_rope", "cross_attn_rope", "cross_attn_audio_rope",
                  "audio_norm_out", "audio_proj_out", "prompt_adaln", "audio_prompt_adaln")
_AUDIO_BLOCK_MODULES = ("audio_norm1", "audio_attn1", "audio_norm2", "audio_attn2", "audio_to_video_norm",
                        "audio_to_video_attn", "video_to_audio_norm", "video_to_audio_attn", "audio_norm3", "audio_ff",
                        "audio_scale_shift_table", "video_a2v_cross_attn_scale_shift_table",
                        "audio_a2v_cross_attn_scale_shift_table", "audio_prompt_scale_shift_table")


# ------------------------------------------------------------------------------------------------
# Streaming state
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefinerWindow:
    """What a block attends to besides itself (module docstring), per layer: the sink's keys (before RoPE) and
    values ``(B, N_sink, H * D)``, and a :class:`KVWindow` of the history's keys (after RoPE) and values, one
    ``(B, N_frame, H, D)`` entry per latent frame, oldest first."""

    sink: tuple[tuple[Tensor, Tensor], ...]
    sink_frames: int
    history: tuple[KVWindow, ...]

    @classmethod
    def start(cls, sink: Sequence[tuple[Tensor, Tensor]], sink_frames: int, *,
              max_history_frames: int | None = None) -> RefinerWindow:
        """A window holding only the sink; at most ``max_history_frames`` history frames (None: all) later."""
        return cls(tuple(sink), sink_frames, tuple(KVWindow(max_chunks=max_history_frames) for _ in sink))

    @property
    def history_frames(self) -> int:
        return len(self.history[0].chunks) if self.history else 0

    def sink_positions(self, block_start: int) -> list[int]:
        """Where the sink sits for a block starting at ``block_start``: just before the history."""
        first = block_start - self.history_frames - self.sink_frames
        return list(range(first, first + self.sink_frames))

    def push(self, block: Sequence[tuple[Tensor, Tensor]], frames: int) -> RefinerWindow:
        """The window after appending a refined block's per-layer keys/values ``(B, frames * N_frame, H, D)``,
        the history trimmed to its newest frames."""
        history = []
        for window, (keys, values) in zip(self.history, block, strict=True):
            for k, v in zip(keys.chunk(frames, dim=1), values.chunk(frames, dim=1), strict=True):
                window = window.push(k, v)
            history.append(window)
        return RefinerWindow(self.sink, self.sink_frames, tuple(history))


@dataclass(frozen=True)
class RefinerText:
    """Caption tokens projected once per video, ``(B, L, D)``, and the additive cross-attention mask."""

    hidden: Tensor
    bias: Tensor | None


def _tensors(module: nn.Module) -> list[Tensor]:
    """A module's parameters and buffers in a fixed order (alike modules pair up)."""
    return [*module.parameters(), *module.buffers()]


# ------------------------------------------------------------------------------------------------
# The transformer, run video-only one block at a time
# ------------------------------------------------------------------------------------------------
class RefinerTransformer:
    """A diffusers ``LTX2VideoTransformer3DModel`` run on the video stream only, one block of latent frames at
    a time against a :class:`RefinerWindow` (module docstring). Its audio modules are dropped."""

    def __init__(self, model, *, config_path: str | Path = "transformer/config.json") -> None:
        cfg = model.config
        unsupported = {"patch_size": (cfg.patch_size, 1), "patch_size_t": (cfg.patch_size_t, 1),
                       "cross_attn_mod": (cfg.cross_attn_mod, False),
                       "use_keyframes_abs_pos_embedding": (cfg.use_keyframes_abs_pos_embedding, False),
                       "use_prompt_embeddings": (cfg.use_prompt_embeddings, True)}
        for key, (value, expected) in unsupported.items():
            if value != expected:
                raise ValueError(f"{config_path}: {key}={value!r} is not an LTX-2.0 refiner setting (expected "
                                 f"{expected!r}); the SANA-WM refiner runs LTX-2.0's video stream")
        for name in _AUDIO_MODULES:
            if hasattr(model, name):
                delattr(model, name)
        for block in model.transformer_blocks:
            for name in _AUDIO_BLOCK_MODULES:
                if hasattr(block, name):
                    delattr(block, name)
        self.model = model.eval()
        self._host_blocks: nn.ModuleList | None = None  # offload_blocks: the blocks, in host memory
        self._slots: list[nn.Module] = []  # offload_blocks: the device-side blocks the weights are copied into

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: torch.dtype = torch.bfloat16,
                        device: torch.device | str = "cpu") -> RefinerTransformer:
        """Load a diffusers transformer folder (any LTX-2 video transformer class name), audio dropped on the
        CPU before the rest moves to ``device``."""
        from diffusers import LTX2VideoTransformer3DModel

        path = Path(path)
        model = LTX2VideoTransformer3DModel.from_pretrained(str(path), torch_dtype=dtype)
        transformer = cls(model, config_path=path / "config.json")
        return transformer.to(device)

    @property
    def config(self):
        return self.model.config

    @property
    def dtype(self) -> torch.dtype:
        return self.model.proj_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.proj_in.weight.device

    @property
    def num_layers(self) -> int:
        return int(self.config.num_layers)

    def to(self, device=None) -> RefinerTransformer:
        self.model.to(device)  # with offload_blocks, the blocks are not in it: they stay in host memory
        for slot in self._slots:
            slot.to(device)
        return self

    def parameters(self):
        """The parameters on the compute device (with :meth:`offload_blocks`: not the blocks, only their slots)."""
        yield from self.model.parameters()
        for slot in self._slots:
            yield from slot.parameters()

    def buffers(self):
        yield from self.model.buffers()
        for slot in self._slots:
            yield from slot.buffers()

    @property
    def offloaded(self) -> bool:
        return self._host_blocks is not None

    def offload_blocks(self, device: torch.device | str) -> None:
        """Keep the transformer blocks in host memory and run each in one of two blocks on ``device`` whose
        weights are overwritten in turn: while one block computes, the next one's weights are copied into the
        other (on CUDA from pinned memory on a side stream, so the copy overlaps the compute). The rest of the
        model moves to ``device``. Device memory then holds two blocks instead of all of them; every block's
        weights cross the bus once per forward. Quantize before offloading (the blocks must be alike)."""
        if self._host_blocks is not None:
            raise ValueError("the refiner's blocks are already offloaded")
        device = torch.device(device)
        blocks = self.model.transformer_blocks.to("cpu")
        self.model.transformer_blocks = nn.ModuleList()  # so that moving the model leaves the blocks here
        if device.type == "cuda":
            for t in _tensors(blocks):
                t.data = t.data.pin_memory()  # asynchronous copies need page-locked host memory
        self._host_blocks = blocks
        self._slots = [copy.deepcopy(blocks[0]).to(device) for _ in range(min(2, len(blocks)))]
        self.model.to(device)

    def _blocks(self) -> Iterator[tuple[int, nn.Module]]:
        """``(layer, block)`` in order, each block on the compute device when it is handed out."""
        if self._host_blocks is None:
            yield from enumerate(self.model.transformer_blocks)
            return
        host, slots, device = self._host_blocks, self._slots, self.device
        side = torch.cuda.Stream(device) if device.type == "cuda" else None

        def fetch(i: int):
            slot = slots[i % len(slots)]
            if side is not None:
                side.wait_stream(torch.cuda.current_stream(device))  # the slot's previous block has finished
            with torch.cuda.stream(side) if side is not None else nullcontext():
                for dst, src in zip(_tensors(slot), _tensors(host[i]), strict=True):
                    dst.copy_(src, non_blocking=True)
            return side.record_event() if side is not None else None

        ready = fetch(0)
        for i in range(len(host)):
            if ready is not None:
                torch.cuda.current_stream(device).wait_event(ready)
            upcoming = fetch(i + 1) if i + 1 < len(host) else None
            yield i, slots[i % len(slots)]
            ready = upcoming

    # -- inputs -------------------------------------------------------------------------------------
    def project_text(self, embeds: Tensor, mask: Tensor | None = None) -> RefinerText:
        """Caption projection of the text connectors' output ``embeds (B, L, C)`` (timestep-independent, so
        done once per video) and the additive mask from ``mask (B, L)`` (1 = attend)."""
        hidden = self.model.caption_projection(embeds.to(self.device, self.dtype))
        bias = None
        if mask is not None:
            bias = ((1 - mask.to(self.device, self.dtype)) * -10000.0).unsqueeze(1)  # (B, 1, L)
        return RefinerText(hidden, bias)

    def rope(self, frames: Sequence[int], height: int, width: int, fps: float, batch: int) -> tuple[Tensor, Tensor]:
        """LTX-2 RoPE ``(cos, sin)`` for latent frames at absolute indices ``frames`` on an ``height x width``
        latent grid, tokens ordered (frame, row, column).

        LTX-2 places a token by the span it covers in the video: rows/columns in pixels (latent index times
        the VAE's 32), time in seconds. The causal VAE's first latent frame is one raw frame, the others 8
        each, so latent frame ``f`` spans raw frames ``[8f + 1 - 8, 8f + 1)`` clamped at 0 (``causal_offset``
        1), divided by ``fps``; the RoPE module takes the span's midpoint.
        """
        rope = self.model.rope
        device = self.device
        s_t, s_h, s_w = (float(s) for s in rope.scale_factors)
        f = torch.tensor(list(frames), dtype=torch.float32, device=device)
        t_spans = torch.stack([f, f + 1]) * s_t + rope.causal_offset - s_t
        t_spans = t_spans.clamp(min=0) / float(fps)  # (2, n)
        rows = torch.arange(height, dtype=torch.float32, device=device)
        cols = torch.arange(width, dtype=torch.float32, device=device)
        n, N = len(f), len(f) * height * width
        t = t_spans[:, :, None, None].expand(2, n, height, width)
        y = (torch.stack([rows, rows + 1]) * s_h)[:, None, :, None].expand(2, n, height, width)
        x = (torch.stack([cols, cols + 1]) * s_w)[:, None, None, :].expand(2, n, height, width)
        coords = torch.stack([t, y, x]).reshape(3, 2, N).transpose(1, 2)  # (3, N, [start, end))
        return rope(coords[None].expand(batch, -1, -1, -1), device=device)

    # -- forward ------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward_block(self, latents: Tensor, sigma: float, frames: Sequence[int], text: RefinerText, fps: float, *,
                      window: RefinerWindow | None = None, capture: str | None = None
                      ) -> tuple[Tensor, tuple[tuple[Tensor, Tensor], ...] | None]:
        """Velocity ``(B, C, n, h, w)`` float32 for latent frames ``frames`` (absolute indices) at noise level
        ``sigma``, attending to ``window`` (None: to themselves only). ``capture``: also return every layer's
        keys/values of these frames, "sink" before RoPE (``(B, N, H * D)``, the layout RoPE is applied in) or
        "history" after it (``(B, N, H, D)``, a :class:`KVWindow` entry's layout)."""
        if capture not in (None, "sink", "history"):
            raise ValueError(f"capture must be None, 'sink' or 'history', got {capture!r}")
        model = self.model
        B, C, n, h, w = latents.shape
        if len(frames) != n:
            raise ValueError(f"{n} latent frames but {len(frames)} frame positions")
        tokens = latents.to(self.device, self.dtype).permute(0, 2, 3, 4, 1).reshape(B, n * h * w, C)
        hidden = model.proj_in(tokens)
        # Every token of a block shares one sigma, so one embedding per sample broadcasts over the tokens.
        t = torch.full((B,), sigma * float(self.config.timestep_scale_multiplier), device=self.device)
        temb, embedded = model.time_embed(t, batch_size=B, hidden_dtype=hidden.dtype)
        temb, embedded = temb.view(B, 1, -1), embedded.view(B, 1, -1)
        pe = self.rope(frames, h, w, fps, B)
        sink_pe = None
        if window is not None:
            sink_pe = self.rope(window.sink_positions(frames[0]), h, w, fps, B)
        captured = []
        for i, block in self._blocks():
            hidden, kv = self._block(block, hidden, temb, pe, text, sink_pe, i, window, capture)
            captured.append(kv)
        shift, scale = (model.scale_shift_table[None, None] + embedded[:, :, None]).unbind(2)
        out = model.proj_out(model.norm_out(hidden) * (1 + scale) + shift)
        velocity = out.float().reshape(B, n, h, w, C).permute(0, 4, 1, 2, 3)
        return velocity, (tuple(captured) if capture is not None else None)

    def _block(self, block, hidden, temb, pe, text: RefinerText, sink_pe, layer: int, window, capture):
        B = hidden.shape[0]
        mod = block.scale_shift_table[None, None] + temb.reshape(B, temb.shape[1], block.scale_shift_table.shape[0], -1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unbind(2)[:6]
        normed = block.norm1(hidden) * (1 + scale_msa) + shift_msa
        attn, kv = self._self_attention(block.attn1, normed, pe, sink_pe, layer, window, capture)
        hidden = hidden + attn * gate_msa
        hidden = hidden + block.attn2(block.norm2(hidden), encoder_hidden_states=text.hidden,
                                      query_rotary_emb=None, attention_mask=text.bias)
        normed = block.norm3(hidden) * (1 + scale_mlp) + shift_mlp
        return hidden + block.ff(normed) * gate_mlp, kv

    def _self_attention(self, attn, x, pe, sink_pe, layer: int, window: RefinerWindow | None, capture):
        from diffusers.models.transformers.transformer_ltx2 import (
            apply_interleaved_rotary_emb,
            apply_split_rotary_emb,
        )

        rotate = apply_interleaved_rotary_emb if attn.rope_type == "interleaved" else apply_split_rotary_emb
        B, N, _ = x.shape
        H = attn.heads
        q = attn.norm_q(attn.to_q(x))
        k = attn.norm_k(attn.to_k(x))
        v = attn.to_v(x)
        kv = (k, v) if capture == "sink" else None
        q, k = rotate(q, pe).view(B, N, H, -1), rotate(k, pe).view(B, N, H, -1)
        v = v.view(B, N, H, -1)
        if capture == "history":
            kv = (k, v)
        if window is not None:
            sink_keys, sink_values = window.sink[layer]
            history = window.history[layer].chunks
            k = torch.cat([rotate(sink_keys.to(k.dtype), sink_pe).view(B, -1, H, k.shape[-1]),
                           *(hk.to(k.dtype) for hk, _ in history), k], dim=1)
            v = torch.cat([sink_values.to(v.dtype).view(B, -1, H, v.shape[-1]),
                           *(hv.to(v.dtype) for _, hv in history), v], dim=1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2)  # (B, N, H, D)
        if attn.to_gate_logits is not None:
            # per-head gates, 2 sigmoid(logits) so that zero logits leave the heads unchanged
            out = out * (2.0 * torch.sigmoid(attn.to_gate_logits(x))).unsqueeze(-1)
        out = attn.to_out[1](attn.to_out[0](out.flatten(2).to(q.dtype)))
        return out, kv
