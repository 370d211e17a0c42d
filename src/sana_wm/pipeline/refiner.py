"""Stage 2: the released LTX-2-based refiner, applied to stage-1 latents before decoding (reference §6).

The refiner is diffusers' ``LTX2VideoTransformer3DModel`` (video stream only, run block by block:
:mod:`sana_wm.model.refiner`), its ``LTX2TextConnectors`` and a Gemma-3 text encoder
(``Gemma3ForConditionalGeneration``). It works in the stage-1 latent space (same LTX-2 VAE), so no
decode/re-encode happens in between; the SDEdit loop (three Euler steps from sigma 0.909375, the sink frame
kept clean) is :mod:`sana_wm.samplers.sdedit`. This module loads the parts, holds the user's settings and
calls the loop.

**Text.** The prompt (stripped, no instruction prefix) is tokenized to 1024 tokens with *left* padding; all
Gemma-3 hidden states (embeddings + every layer) are stacked, and the connectors normalise them per layer,
project and refine them into the tokens the transformer cross-attends to.

Two modes (:class:`RefinerSettings`): ``"bidirectional"`` refines all non-sink frames as one block;
``"streaming"`` refines blocks of 3 latent frames one after another over a sliding window, which is what lets
the streaming variant refine each stage-1 chunk as soon as it exists (:meth:`Refiner.stream`).

Folders (reference §11.4): ``refiner/`` or ``refiner_diffusers/`` holding ``transformer/`` and ``connectors/``
(diffusers folders), the Gemma-3 folder in ``refiner/text_encoder/`` or, in the streaming release, next to it
as ``gemma3_12b/``; the tokenizer lives in the Gemma-3 folder or in ``refiner/tokenizer/``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.model.refiner import RefinerTransformer
from sana_wm.pipeline.errors import ModelFilesError, OptionError
from sana_wm.pipeline.text import PromptCache, TextEmbedding
from sana_wm.samplers.sdedit import (
    RELEASED_BLOCK_FRAMES,
    RELEASED_KV_MAX_FRAMES,
    STAGE2_SIGMAS,
    RefinerStream,
    check_refiner_schedule,
    sdedit_refine,
)

__all__ = [
    "REFINER_DIRS",
    "Refiner",
    "RefinerFiles",
    "RefinerSettings",
    "RefinerTextEncoder",
    "find_refiner",
    "resolve_refiner",
]

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
        check_refiner_schedule(self.mode, self.block_frames, self.kv_max_frames, self.sink_frames, self.sigmas)

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
            raise OptionError(f"unknown refiner settings {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> RefinerSettings:
        return RefinerSettings(**{**asdict(self), **changes})

    def schedule(self) -> dict[str, Any]:
        """The sampler's arguments (:class:`~sana_wm.samplers.sdedit.RefinerStream`)."""
        return {"mode": self.mode, "block_frames": self.block_frames, "kv_max_frames": self.kv_max_frames,
                "sink_frames": self.sink_frames, "sigmas": self.sigmas}


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
            raise InputError(f"{files.connectors / 'config.json'}: text_proj_in_factor is "
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
                        cache: PromptCache | None = None, load_text_encoder: bool = True) -> Refiner:
        """Load from a refiner folder, a model folder holding one, or a hub id (:func:`resolve_refiner`).
        The Gemma-3 encoder and connectors load in ``text_dtype`` on ``text_device`` (default: as the
        transformer); ``load_text_encoder=False`` leaves them out (prompts then come precomputed)."""
        files = resolve_refiner(source, text_encoder=text_encoder)
        transformer = RefinerTransformer.from_pretrained(files.transformer, dtype=dtype, device=device)
        encoder = None
        if load_text_encoder:
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
            raise OptionError("this refiner has no text encoder; pass a precomputed refiner prompt embedding")
        return self.text_encoder.encode(prompt)

    def stream(self, text: TextEmbedding, *, fps: float, settings: RefinerSettings | None = None,
               seed: int | None = None, num_frames: int | None = None, progress: bool = False) -> RefinerStream:
        """A :class:`~sana_wm.samplers.sdedit.RefinerStream` for one video. ``seed`` falls back to
        ``settings.seed``, then 42."""
        settings = settings or RefinerSettings()
        return RefinerStream(self.transformer, self._project(text), fps=fps, seed=self._seed(settings, seed),
                             num_frames=num_frames, progress=progress, **settings.schedule())

    def refine(self, latents: Tensor, text: TextEmbedding, *, fps: float, settings: RefinerSettings | None = None,
               seed: int | None = None, progress: bool = False) -> Tensor:
        """Refined ``(B, C, T, h, w)`` float32 latents of a whole stage-1 video; the sink frames are returned
        unchanged."""
        settings = settings or RefinerSettings()
        return sdedit_refine(self.transformer, latents, self._project(text), fps=fps,
                             seed=self._seed(settings, seed), progress=progress, **settings.schedule())

    def _project(self, text: TextEmbedding):
        return self.transformer.project_text(text.embeds, text.mask)

    @staticmethod
    def _seed(settings: RefinerSettings, seed: int | None) -> int:
        return seed if seed is not None else (settings.seed if settings.seed is not None else 42)
