"""Stage 2: the released LTX-2-based refiner, applied to stage-1 latents before decoding (reference §6).

The refiner is diffusers' ``LTX2VideoTransformer3DModel`` (video stream only; its audio modules are dropped
after loading), its ``LTX2TextConnectors`` and a Gemma-3 text encoder (``Gemma3ForConditionalGeneration``).
It works in the stage-1 latent space (same LTX-2 VAE), so no decode/re-encode happens in between.

**Text.** The prompt (stripped, no instruction prefix) is tokenized to 1024 tokens with *left* padding; all
Gemma-3 hidden states (embeddings + every layer) are stacked, and the connectors normalise them per layer,
project and refine them into the tokens the transformer cross-attends to.

**SDEdit in three steps.** The first latent frame (the conditioning image) is a clean *sink*: it is never
refined and enters every block as context at timestep 0. Every other frame is re-noised from its stage-1
value ``z`` to ``x = (1 - 0.909375) z + 0.909375 eps`` and denoised with three deterministic Euler steps on
the sigmas ``(0.909375, 0.725, 0.421875, 0.0)`` (LTX-2's distilled stage-2 schedule): the model predicts a
velocity ``v``, ``x0 = x - sigma v`` and ``x <- x + (sigma' - sigma) v``, which lands on ``x0`` at the last
step.

**Attention layout** ("shifted sink", :class:`RefinerWindow`). Queries come from the block being refined;
keys/values are ``[sink, history, block]``:

* the sink's keys/values come from one forward of the sink frames alone at timestep 0; its keys are kept
  *before* RoPE and rotated for every block to the positions just before the history, so the sink always
  sits next to the window whatever the block's absolute position;
* the history holds the keys/values (after RoPE, at the frames' absolute positions) of the most recent
  refined frames, from one more forward of each finished block at timestep 0 against the same window;
  at most ``kv_max_frames - sink_frames`` frames are kept (released: 11 - 1 = 10).

Two modes (:class:`RefinerSettings`): ``"bidirectional"`` refines all non-sink frames as one block (they
attend to each other and to the sink); ``"streaming"`` refines blocks of 3 latent frames one after another
over the sliding window, which is what lets the streaming variant refine each stage-1 chunk as soon as it
exists (:class:`RefinerStream`).

Randomness: one standard-normal draw of each block's shape, in block order, from a CPU generator seeded with
the refiner seed (same numbers on every device).

Folders (reference §11.4): ``refiner/`` or ``refiner_diffusers/`` holding ``transformer/`` and ``connectors/``
(diffusers folders), the Gemma-3 folder in ``refiner/text_encoder/`` or, in the streaming release, next to it
as ``gemma3_12b/``; the tokenizer lives in the Gemma-3 folder or in ``refiner/tokenizer/``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.pipeline.errors import ModelFilesError
from sana_wm.pipeline.text import PromptCache, TextEmbedding

__all__ = [
    "REFINER_DIRS",
    "REFINER_MODES",
    "STAGE2_SIGMAS",
    "LayerKV",
    "Refiner",
    "RefinerFiles",
    "RefinerSettings",
    "RefinerStream",
    "RefinerTextEncoder",
    "RefinerTransformer",
    "RefinerWindow",
    "find_refiner",
    "resolve_refiner",
    "save_tiny_refiner",
]

STAGE2_SIGMAS = (0.909375, 0.725, 0.421875, 0.0)  # LTX-2's distilled stage-2 schedule
REFINER_MODES = ("bidirectional", "streaming")
RELEASED_BLOCK_FRAMES = 3
RELEASED_KV_MAX_FRAMES = 11  # 1 sink + 10 history frames
TEXT_MAX_TOKENS = 1024
REFINER_DIRS = ("refiner", "refiner_diffusers")
GEMMA3_DIRS = ("text_encoder", "../gemma3_12b")  # relative to the refiner folder
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


# ------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefinerSettings:
    """How to refine. ``mode``: "bidirectional" (all non-sink frames as one block) or "streaming" (blocks of
    ``block_frames`` over a window of ``kv_max_frames`` cached frames, sink included). ``seed``: the noise
    seed (None: the generation's seed). ``keep_sink_frame``: keep the decoded sink frame in the video (the
    release drops it, so a refined video has one frame fewer than stage 1)."""

    mode: str = "bidirectional"
    block_frames: int = RELEASED_BLOCK_FRAMES
    kv_max_frames: int = RELEASED_KV_MAX_FRAMES
    sink_frames: int = 1
    sigmas: tuple[float, ...] = STAGE2_SIGMAS
    seed: int | None = None
    keep_sink_frame: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if self.mode not in REFINER_MODES:
            raise ValueError(f"refiner mode must be one of {', '.join(REFINER_MODES)}, got {self.mode!r}")
        if self.block_frames < 1 or self.sink_frames < 1:
            raise ValueError(f"refiner block_frames and sink_frames must be >= 1, got {self.block_frames} and "
                             f"{self.sink_frames}")
        if self.kv_max_frames <= self.sink_frames:
            raise ValueError(f"refiner kv_max_frames ({self.kv_max_frames}) must exceed sink_frames "
                             f"({self.sink_frames}): it counts the sink plus the history frames kept")
        s = self.sigmas
        if len(s) < 2 or s[-1] != 0.0 or not 0.0 < s[0] <= 1.0 or any(a <= b for a, b in pairwise(s)):
            raise ValueError(f"refiner sigmas must decrease from (0, 1] to 0.0, got {list(s)}")

    @classmethod
    def for_variant(cls, variant: str, **overrides) -> RefinerSettings:
        """The released pairing: block streaming for the streaming variant, bidirectional otherwise."""
        mode = "streaming" if variant == "streaming" else "bidirectional"
        return cls(**{"mode": mode, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sigmas"] = list(self.sigmas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefinerSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown refiner settings {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> RefinerSettings:
        return RefinerSettings(**{**asdict(self), **changes})


# ------------------------------------------------------------------------------------------------
# Folders
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefinerFiles:
    """Where a refiner's parts are: the ``transformer/`` and ``connectors/`` diffusers folders, the Gemma-3
    folder and the tokenizer folder."""

    source: str
    root: Path
    transformer: Path
    connectors: Path
    text_encoder: Path
    tokenizer: Path

    def fingerprint(self, *, hash_contents: bool = False) -> dict[str, Any]:
        from sana_wm.pipeline.sidecar import file_fingerprint

        weights = sorted(self.transformer.glob("*.safetensors")) + sorted(self.connectors.glob("*.safetensors"))
        return {"source": self.source, "root": str(self.root), "text_encoder": str(self.text_encoder),
                "weights": [file_fingerprint(p, hash_contents=hash_contents) for p in weights]}


def _is_refiner_dir(path: Path) -> bool:
    return (path / "transformer").is_dir() and (path / "connectors").is_dir()


def find_refiner(model_root: str | Path) -> Path | None:
    """The refiner folder inside a model folder (``refiner/`` or ``refiner_diffusers/``), or None."""
    root = Path(model_root)
    for name in REFINER_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


def _hub_refiner(repo_id: str) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(repo_id)
    tops = {f.split("/", 1)[0] for f in files}
    name = next((n for n in REFINER_DIRS if n in tops), None)
    if name is None:
        raise ModelFilesError(f"hub repo {repo_id} has no refiner folder ({' or '.join(REFINER_DIRS)})")
    patterns = [f"{name}/*"] + (["gemma3_12b/*"] if "gemma3_12b" in tops else [])
    return Path(snapshot_download(repo_id, allow_patterns=patterns)) / name


def _check_diffusers_folder(path: Path, what: str, missing: list[str]) -> None:
    if not (path / "config.json").is_file():
        missing.append(f"{path / 'config.json'} ({what} config)")
    elif not any(path.glob("*.safetensors")):
        missing.append(f"{path / 'diffusion_pytorch_model.safetensors'} ({what} weights)")


def resolve_refiner(source: str | Path, *, text_encoder: str | Path | None = None) -> RefinerFiles:
    """Find a refiner's files: ``source`` is a refiner folder (holding ``transformer/`` and ``connectors/``), a
    model folder holding ``refiner/`` or ``refiner_diffusers/``, or a hub id (downloads that folder and, in the
    streaming release, ``gemma3_12b/``). ``text_encoder`` overrides the Gemma-3 folder. Raises
    :class:`ModelFilesError` naming every missing file."""
    source_str = str(source)
    path = Path(source_str).expanduser()
    if path.is_dir():
        root = path if _is_refiner_dir(path) else find_refiner(path)
        if root is None:
            raise ModelFilesError(f"{path}: no refiner found; expected {path}/refiner/ (or refiner_diffusers/) "
                                  "holding transformer/ and connectors/, or a refiner folder itself")
    elif re.fullmatch(r"[\w.-]+/[\w.-]+", source_str) and not source_str.startswith("."):
        root = _hub_refiner(source_str)
    else:
        raise ModelFilesError(f"refiner {source_str!r} is neither a folder nor a hub id (owner/name)")

    missing: list[str] = []
    _check_diffusers_folder(root / "transformer", "refiner transformer", missing)
    _check_diffusers_folder(root / "connectors", "refiner text connectors", missing)
    if text_encoder is not None:
        gemma = Path(text_encoder).expanduser()
    else:
        candidates = [(root / rel).resolve() for rel in GEMMA3_DIRS]
        gemma = next((c for c in candidates if c.is_dir()), candidates[0])
    if not (gemma / "config.json").is_file():
        where = " or ".join(str((root / rel).resolve()) for rel in GEMMA3_DIRS) if text_encoder is None else gemma
        missing.append(f"{gemma / 'config.json'} (Gemma-3 text encoder; looked in {where})")
    elif not any(gemma.glob("*.safetensors")):
        missing.append(f"{gemma / 'model.safetensors'} (Gemma-3 text encoder weights)")
    tokenizer = next((d for d in (gemma, root / "tokenizer") if any((d / f).is_file() for f in _TOKENIZER_FILES)),
                     None)
    if tokenizer is None:
        missing.append(f"{gemma / 'tokenizer.json'} (Gemma-3 tokenizer; also looked in {root / 'tokenizer'})")
    if missing:
        raise ModelFilesError(f"refiner {root} is missing files: {'; '.join(missing)}")
    return RefinerFiles(source_str, root, root / "transformer", root / "connectors", gemma, tokenizer)


# ------------------------------------------------------------------------------------------------
# Text: Gemma-3 -> stacked hidden states -> connectors
# ------------------------------------------------------------------------------------------------
class RefinerTextEncoder:
    """Gemma-3 (its language model's hidden states), its tokenizer and the refiner's ``LTX2TextConnectors``."""

    def __init__(self, model, tokenizer, connectors, *, model_id: str = "", max_tokens: int = TEXT_MAX_TOKENS,
                 cache: PromptCache | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.connectors = connectors.eval()
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.cache = cache

    @classmethod
    def from_pretrained(cls, files: RefinerFiles, *, dtype: torch.dtype = torch.bfloat16,
                        connectors_dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
                        cache: PromptCache | None = None) -> RefinerTextEncoder:
        from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
        from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

        tokenizer = AutoTokenizer.from_pretrained(str(files.tokenizer))
        model = Gemma3ForConditionalGeneration.from_pretrained(str(files.text_encoder), dtype=dtype)
        connectors = LTX2TextConnectors.from_pretrained(str(files.connectors),
                                                        torch_dtype=connectors_dtype or dtype)
        layers = model.config.get_text_config().num_hidden_layers + 1
        if connectors.config.text_proj_in_factor != layers:
            raise ValueError(f"{files.connectors / 'config.json'}: text_proj_in_factor is "
                             f"{connectors.config.text_proj_in_factor} but the Gemma-3 text encoder in "
                             f"{files.text_encoder} gives {layers} hidden states (embeddings + layers)")
        return cls(model.to(device), tokenizer, connectors.to(device), model_id=str(files.text_encoder), cache=cache)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device=None) -> RefinerTextEncoder:
        self.model.to(device)
        self.connectors.to(device)
        return self

    @torch.no_grad()
    def encode(self, prompt: str) -> TextEmbedding:
        """``embeds (1, L, C)`` float32 connector outputs and ``mask (1, L)`` (1 = attend) for one prompt."""
        prompt = prompt.strip()
        key = None
        if self.cache is not None:
            key = self.cache.key(self.model_id, "refiner-connectors", prompt, self.max_tokens)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        batch = self.tokenizer([prompt], padding="max_length", padding_side="left", max_length=self.max_tokens,
                               truncation=True, add_special_tokens=True, return_tensors="pt")
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        states = torch.stack(out.hidden_states, dim=-1)  # (1, L, C_gemma, layers + 1)
        dtype = next(self.connectors.parameters()).dtype
        embeds, _, connector_mask = self.connectors(states.to(dtype), mask, padding_side="left")
        result = TextEmbedding(embeds.float().cpu(), connector_mask.cpu())
        if key is not None:
            self.cache.put(key, result)
        return result


# ------------------------------------------------------------------------------------------------
# Streaming state
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerKV:
    """One layer's keys and values, ``(B, N, H * D)`` each (heads not split)."""

    keys: Tensor
    values: Tensor


@dataclass(frozen=True)
class RefinerWindow:
    """What a block attends to besides itself (module docstring): per layer, the sink's keys (before RoPE)
    and values, and the history's keys (after RoPE) and values, oldest first."""

    sink: tuple[LayerKV, ...]
    sink_frames: int
    history: tuple[LayerKV, ...] = ()
    history_frames: int = 0
    max_history_frames: int | None = None  # None: keep everything

    def sink_positions(self, block_start: int) -> list[int]:
        """Where the sink sits for a block starting at ``block_start``: just before the history."""
        first = block_start - self.history_frames - self.sink_frames
        return list(range(first, first + self.sink_frames))

    def push(self, block: Sequence[LayerKV], frames: int) -> RefinerWindow:
        """The window after appending a refined block's keys/values (``frames`` latent frames), trimmed to the
        newest ``max_history_frames`` frames."""
        if self.history:
            merged = [LayerKV(torch.cat([h.keys, b.keys], 1), torch.cat([h.values, b.values], 1))
                      for h, b in zip(self.history, block, strict=True)]
        else:
            merged = list(block)
        total = self.history_frames + frames
        limit = self.max_history_frames
        if limit is not None and total > limit:
            keep = merged[0].keys.shape[1] // total * limit  # tokens per frame x frames kept
            merged = [LayerKV(kv.keys[:, -keep:].clone(), kv.values[:, -keep:].clone()) for kv in merged]
            total = limit
        return RefinerWindow(self.sink, self.sink_frames, tuple(merged), total, self.max_history_frames)


# ------------------------------------------------------------------------------------------------
# The transformer, run video-only one block at a time
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Text:
    """Caption tokens projected once per video, ``(B, L, D)``, and the additive cross-attention mask."""

    hidden: Tensor
    bias: Tensor | None


_AUDIO_MODULES = ("audio_proj_in", "audio_caption_projection", "audio_time_embed", "av_cross_attn_video_scale_shift",
                  "av_cross_attn_audio_scale_shift", "av_cross_attn_video_a2v_gate", "av_cross_attn_audio_v2a_gate",
                  "audio_scale_shift_table", "audio_rope", "cross_attn_rope", "cross_attn_audio_rope",
                  "audio_norm_out", "audio_proj_out", "prompt_adaln", "audio_prompt_adaln")
_AUDIO_BLOCK_MODULES = ("audio_norm1", "audio_attn1", "audio_norm2", "audio_attn2", "audio_to_video_norm",
                        "audio_to_video_attn", "video_to_audio_norm", "video_to_audio_attn", "audio_norm3", "audio_ff",
                        "audio_scale_shift_table", "video_a2v_cross_attn_scale_shift_table",
                        "audio_a2v_cross_attn_scale_shift_table", "audio_prompt_scale_shift_table")


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
        return len(self.model.transformer_blocks)

    def to(self, device=None) -> RefinerTransformer:
        self.model.to(device)
        return self

    def parameters(self):
        return self.model.parameters()

    # -- inputs -------------------------------------------------------------------------------------
    def project_text(self, text: TextEmbedding) -> _Text:
        """Caption projection (timestep-independent, so done once per video) and the additive mask."""
        hidden = self.model.caption_projection(text.embeds.to(self.device, self.dtype))
        bias = None
        if text.mask is not None:
            bias = ((1 - text.mask.to(self.device, self.dtype)) * -10000.0).unsqueeze(1)  # (B, 1, L)
        return _Text(hidden, bias)

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
    def forward_block(self, latents: Tensor, sigma: float, frames: Sequence[int], text: _Text, fps: float, *,
                      window: RefinerWindow | None = None, capture: str | None = None
                      ) -> tuple[Tensor, tuple[LayerKV, ...] | None]:
        """Velocity ``(B, C, n, h, w)`` float32 for latent frames ``frames`` (absolute indices) at noise level
        ``sigma``, attending to ``window`` (None: to themselves only). ``capture``: also return every layer's
        keys/values of these frames, "sink" before RoPE or "history" after it."""
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
        for i, block in enumerate(model.transformer_blocks):
            hidden, kv = self._block(block, hidden, temb, pe, text, sink_pe, i, window, capture)
            captured.append(kv)
        shift, scale = (model.scale_shift_table[None, None] + embedded[:, :, None]).unbind(2)
        out = model.proj_out(model.norm_out(hidden) * (1 + scale) + shift)
        velocity = out.float().reshape(B, n, h, w, C).permute(0, 4, 1, 2, 3)
        return velocity, (tuple(captured) if capture is not None else None)

    def _block(self, block, hidden, temb, pe, text: _Text, sink_pe, layer: int, window, capture):
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
        q = attn.norm_q(attn.to_q(x))
        k = attn.norm_k(attn.to_k(x))
        v = attn.to_v(x)
        kv = LayerKV(k, v) if capture == "sink" else None
        q, k = rotate(q, pe), rotate(k, pe)
        if capture == "history":
            kv = LayerKV(k, v)
        if window is not None:
            sink = window.sink[layer]
            keys = [rotate(sink.keys.to(k.dtype), sink_pe)]
            values = [sink.values.to(v.dtype)]
            if window.history:
                keys.append(window.history[layer].keys.to(k.dtype))
                values.append(window.history[layer].values.to(v.dtype))
            k = torch.cat([*keys, k], dim=1)
            v = torch.cat([*values, v], dim=1)
        B, N, _ = q.shape
        H = attn.heads
        out = F.scaled_dot_product_attention(q.view(B, N, H, -1).transpose(1, 2), k.view(B, k.shape[1], H, -1)
                                             .transpose(1, 2), v.view(B, v.shape[1], H, -1).transpose(1, 2))
        out = out.transpose(1, 2)  # (B, N, H, D)
        if attn.to_gate_logits is not None:
            # per-head gates, 2 sigmoid(logits) so that zero logits leave the heads unchanged
            out = out * (2.0 * torch.sigmoid(attn.to_gate_logits(x))).unsqueeze(-1)
        out = attn.to_out[1](attn.to_out[0](out.flatten(2).to(q.dtype)))
        return out, kv


# ------------------------------------------------------------------------------------------------
# One video's refinement
# ------------------------------------------------------------------------------------------------
class RefinerStream:
    """Refine one video as its stage-1 latents arrive (see :meth:`Refiner.stream`).

    :meth:`push` takes the next latent frames ``(B, C, n, h, w)`` in video order (the first ``sink_frames``
    are the sink) and returns the frames that are now final, in video order, the sink first (unchanged), or
    None; :meth:`finish` returns the rest. In "streaming" mode each block of ``block_frames`` is refined as
    soon as it is complete; in "bidirectional" mode everything is refined at :meth:`finish`.
    """

    def __init__(self, transformer: RefinerTransformer, text: TextEmbedding, *, fps: float,
                 settings: RefinerSettings, seed: int, num_frames: int | None = None,
                 progress: bool = False) -> None:
        self.transformer = transformer
        self.text = transformer.project_text(text)
        self.fps = float(fps)
        self.settings = settings
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.num_frames = num_frames  # total latent frames, when known: the last block then skips its capture
        self.window: RefinerWindow | None = None
        self.sink: Tensor | None = None
        self.pending: list[Tensor] = []
        self.next_frame = 0  # absolute index of the first pending frame
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=None if num_frames is None else num_frames - settings.sink_frames,
                             desc="refiner (latent frames)", unit="frame")

    def _pending_frames(self) -> int:
        return sum(p.shape[2] for p in self.pending)

    def _take(self, n: int) -> Tensor:
        frames = torch.cat(self.pending, dim=2)
        block, rest = frames[:, :, :n], frames[:, :, n:]
        self.pending = [rest] if rest.shape[2] else []
        return block

    def push(self, latents: Tensor) -> Tensor | None:
        out = []
        self.pending.append(latents.detach().float())
        if self.sink is None:
            if self._pending_frames() < self.settings.sink_frames:
                return None
            self.sink = self._take(self.settings.sink_frames)
            self._start()
            out.append(self.sink)
        if self.settings.mode == "streaming":
            while self._pending_frames() >= self.settings.block_frames:
                out.append(self._refine_block(self._take(self.settings.block_frames)))
        return torch.cat(out, dim=2) if out else None

    def finish(self) -> Tensor | None:
        if self.sink is None:
            raise ValueError(f"the refiner needs more than {self.settings.sink_frames} sink frame(s); got "
                             f"{self._pending_frames()} latent frame(s)")
        n = self._pending_frames()
        out = self._refine_block(self._take(n)) if n else None
        if self._bar is not None:
            self._bar.close()
        return out

    def _start(self) -> None:
        """Keys/values of the sink frames alone, clean (sigma 0), before RoPE."""
        s = self.settings.sink_frames
        _, kv = self.transformer.forward_block(self.sink, 0.0, range(s), self.text, self.fps, capture="sink")
        self.window = RefinerWindow(kv, s, max_history_frames=self.settings.kv_max_frames - s)
        self.next_frame = s

    def _refine_block(self, z: Tensor) -> Tensor:
        """SDEdit one block from its stage-1 latents ``z``: re-noise to the first sigma, Euler to 0."""
        from sana_wm.samplers.common import draw_noise

        sigmas = self.settings.sigmas
        n = z.shape[2]
        frames = range(self.next_frame, self.next_frame + n)
        noise = draw_noise(tuple(z.shape), self.generator, self.transformer.device)
        x = (1.0 - sigmas[0]) * z.to(noise.device) + sigmas[0] * noise
        for sigma, sigma_next in pairwise(sigmas):
            velocity, _ = self.transformer.forward_block(x, sigma, frames, self.text, self.fps, window=self.window)
            x = x + (sigma_next - sigma) * velocity
        self.next_frame += n
        last = self.num_frames is not None and self.next_frame >= self.num_frames
        if self.settings.mode == "streaming" and not last:
            # The next blocks see this one through its clean keys/values, computed against the same window.
            _, kv = self.transformer.forward_block(x, 0.0, frames, self.text, self.fps, window=self.window,
                                                   capture="history")
            self.window = self.window.push(kv, n)
        if self._bar is not None:
            self._bar.update(n)
        return x


# ------------------------------------------------------------------------------------------------
# The refiner
# ------------------------------------------------------------------------------------------------
@dataclass
class Refiner:
    """The stage-2 refiner: transformer + text encoder (module docstring). Build with :meth:`from_pretrained`."""

    transformer: RefinerTransformer
    text_encoder: RefinerTextEncoder | None
    files: RefinerFiles | None = None

    @classmethod
    def from_pretrained(cls, source: str | Path, *, text_encoder: str | Path | None = None,
                        dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu",
                        text_dtype: torch.dtype | None = None, text_device: torch.device | str | None = None,
                        cache: PromptCache | None = None) -> Refiner:
        """Load from a refiner folder, a model folder holding one, or a hub id (:func:`resolve_refiner`).
        The Gemma-3 encoder and connectors load in ``text_dtype`` on ``text_device`` (default: as the
        transformer)."""
        files = resolve_refiner(source, text_encoder=text_encoder)
        transformer = RefinerTransformer.from_pretrained(files.transformer, dtype=dtype, device=device)
        encoder = RefinerTextEncoder.from_pretrained(files, dtype=text_dtype or dtype,
                                                     device=text_device if text_device is not None else device,
                                                     cache=cache)
        return cls(transformer, encoder, files)

    def to(self, device=None) -> Refiner:
        """Move the transformer (the text encoder moves on its own: it is needed once per video)."""
        self.transformer.to(device)
        return self

    def encode_prompt(self, prompt: str) -> TextEmbedding:
        if self.text_encoder is None:
            raise ValueError("this refiner has no text encoder; pass a precomputed refiner prompt embedding")
        return self.text_encoder.encode(prompt)

    def stream(self, text: TextEmbedding, *, fps: float, settings: RefinerSettings | None = None,
               seed: int | None = None, num_frames: int | None = None, progress: bool = False) -> RefinerStream:
        """A :class:`RefinerStream` for one video. ``seed`` falls back to ``settings.seed``, then 42."""
        settings = settings or RefinerSettings()
        seed = seed if seed is not None else (settings.seed if settings.seed is not None else 42)
        return RefinerStream(self.transformer, text, fps=fps, settings=settings, seed=seed, num_frames=num_frames,
                             progress=progress)

    def refine(self, latents: Tensor, text: TextEmbedding, *, fps: float, settings: RefinerSettings | None = None,
               seed: int | None = None, progress: bool = False) -> Tensor:
        """Refined ``(B, C, T, h, w)`` float32 latents of a whole stage-1 video; the sink frames are returned
        unchanged."""
        if latents.ndim != 5:
            raise ValueError(f"latents: expected (B, C, T, h, w), got {tuple(latents.shape)}")
        stream = self.stream(text, fps=fps, settings=settings, seed=seed, num_frames=latents.shape[2],
                             progress=progress)
        parts = [stream.push(latents), stream.finish()]
        return torch.cat([p for p in parts if p is not None], dim=2)


# ------------------------------------------------------------------------------------------------
# A tiny refiner for tests
# ------------------------------------------------------------------------------------------------
def save_tiny_refiner(directory: str | Path, *, latent_channels: int = 16, text_encoder_dir: str | Path | None = None,
                      heads: int = 2, head_dim: int = 16, layers: int = 2, seed: int = 0) -> Path:
    """Write a random-weight refiner in the released layout: ``directory/{transformer,connectors}`` and a
    2-layer Gemma-3 (``Gemma3ForConditionalGeneration`` with a 1-layer vision tower) plus a word-level
    tokenizer in ``text_encoder_dir`` (default ``directory/text_encoder``)."""
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    from sana_wm.pipeline.text import tiny_tokenizer

    directory = Path(directory)
    gemma_dir = Path(text_encoder_dir) if text_encoder_dir is not None else directory / "text_encoder"
    width = heads * head_dim
    tokenizer = tiny_tokenizer()
    text_config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   head_dim=width // 2, max_position_embeddings=2 * TEXT_MAX_TOKENS,
                                   sliding_window=64)
    vision_config = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gemma = Gemma3ForConditionalGeneration(config)
        connectors = LTX2TextConnectors(caption_channels=width, text_proj_in_factor=text_config.num_hidden_layers + 1,
                                        video_connector_num_attention_heads=heads,
                                        video_connector_attention_head_dim=head_dim,
                                        video_connector_num_learnable_registers=8,
                                        audio_connector_num_attention_heads=heads,
                                        audio_connector_attention_head_dim=head_dim,
                                        audio_connector_num_learnable_registers=8, audio_connector_num_layers=1)
        transformer = LTX2VideoTransformer3DModel(
            in_channels=latent_channels, out_channels=latent_channels, num_attention_heads=heads,
            attention_head_dim=head_dim, cross_attention_dim=width, caption_channels=width, num_layers=layers,
            audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=1, audio_attention_head_dim=8,
            audio_cross_attention_dim=8)
        # LTX-2 initialises its modulation tables at a small scale; make them matter in tests.
        with torch.no_grad():
            for name, p in transformer.named_parameters():
                if "scale_shift_table" in name:
                    p.normal_(0.0, 0.5)
    gemma.save_pretrained(str(gemma_dir))
    tokenizer.save_pretrained(str(gemma_dir))
    connectors.save_pretrained(str(directory / "connectors"))
    transformer.save_pretrained(str(directory / "transformer"))
    return directory
