"""Generation: one image + a camera path (+ a prompt) -> an MP4 and its sidecar.

:class:`SanaWMPipeline` only orchestrates. A call (``pipe(image=..., trajectory=...)`` or :meth:`generate`)
builds a :class:`GenerationRequest` (frozen, checked on construction) and runs it in named stages:

1. :meth:`~SanaWMPipeline.plan` -> :class:`SamplingPlan`: the request's settings over the model's defaults, only
   those that take effect; every given option that cannot act warns (:class:`OptionWarning`, naming the option)
   and nonsense is an :class:`OptionError`;
2. :meth:`~SanaWMPipeline.prepare` -> :class:`PreparedInputs`: the image cropped and encoded to the first latent
   frame, the trajectory fitted to the frame count with its camera conditioning, the text states, guidance;
3. :meth:`~SanaWMPipeline.sample` -> :meth:`~SanaWMPipeline.refine` -> :meth:`~SanaWMPipeline.decode`: generators
   of latent chunks, so the streaming variant samples, refines, decodes and writes each chunk as it comes;
4. the sidecar (:mod:`~sana_wm.pipeline.sidecar`), recording what took effect.

The models' insides live in :mod:`sana_wm.model`, the samplers in :mod:`sana_wm.samplers`, the VAE in
:mod:`sana_wm.vae`, the text encoder and refiner wrappers next to this file. On CUDA the transformer runs in
bf16 by default, elsewhere in float32 (:func:`default_dtype`).

Model folders (reference §11.4), resolved by :func:`resolve_model` (``"sana-wm-synth"`` names the bundled model's
folder, :mod:`sana_wm.bundled`):

==============  ==================================================  =====================
variant         transformer weights                                 VAE
==============  ==================================================  =====================
bidirectional   ``dit/sana_wm_1600m_720p.safetensors``              ``vae/``
chunk-causal    ``dit/sana_wm_chunk_causal_1600m_720p.safetensors``  ``vae/`` (not in that release: taken
                                                                    from the bidirectional one, or ``vae=``)
streaming       ``sana_dit/model.pt``                               ``ltx2_causal_vae/``
==============  ==================================================  =====================

A model that is not the official 2.6B one declares itself in the folder's ``config.yaml`` under a ``sana_wm``
key (the released ``config.yaml`` has no such key, which means "official")::

    sana_wm:
      transformer: tiny            # a named config, or a mapping of SanaWMConfig fields
      image_size: [64, 96]         # (H, W) the model generates; default [704, 1280]
      fps: 16
      text_encoder: none           # optional: a text-free model, conditioned on its null caption only
      sampler: {steps: 8, shift: 3.0, cfg: 1.0}   # optional: this model's sampling defaults
      vae: patch_codec             # optional: its VAE folder, instead of the variant's released one
      wrapper: {kind: ...}         # optional: a model wrapper around the transformer (sana_wm.bundled)

The text encoder is ``text_encoder=`` (folder or hub id), else the folder's ``text_encoder/`` if present, else
``Efficient-Large-Model/gemma-2-2b-it``.

The refiner (stage 2, reference §6) is the folder's ``refiner/`` or ``refiner_diffusers/`` (or any refiner folder
or hub id given as ``refiner=``). The bidirectional and chunk-causal variants refine the whole stage-1 latent
video at once ("bidirectional" refiner mode); the streaming variant refines each stage-1 chunk as soon as it is
sampled (block-streaming mode, blocks of 3 latent frames = one chunk), so frames still reach the MP4 chunk by
chunk. As in the release, the refined video drops the decoded sink frame (the conditioning image): it has one
frame fewer than stage 1, and its frame ``i`` shows pose ``i + 1`` of the trajectory (the sidecar records this as
``first_pose``); ``RefinerSettings(keep_sink_frame=True)`` keeps it.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sana_wm.camera.conditioning import (
    DEFAULT_TARGET_SIZE,
    CropGeometry,
    center_crop_geometry,
    conditioning_from_trajectory,
    relative_poses,
)
from sana_wm.camera.resample import fit_to_frames, snap_frame_count
from sana_wm.camera.trajectory import DEFAULT_FOV_RANGE_DEG, Intrinsics, Trajectory, TrajectoryError
from sana_wm.errors import ConfigError, InputError, LimitError
from sana_wm.limits import check_frames
from sana_wm.pipeline import overlap
from sana_wm.pipeline.errors import ModelFilesError, OptionError, OptionWarning
from sana_wm.pipeline.memory import (
    LOADED,
    MemoryEstimate,
    available_bytes,
    estimate_generation,
    offloaded,
    refusal,
)
from sana_wm.pipeline.prompt_embeds import PromptEmbeds, encoder_fingerprint
from sana_wm.pipeline.refiner import Refiner, RefinerSettings, find_refiner, resolve_refiner
from sana_wm.pipeline.resume import (
    ResumeError,
    ResumePoint,
    cpu_threads,
    load_resume_point,
    record_differences,
    request_hash,
    resume_path,
    save_resume_point,
)
from sana_wm.pipeline.sidecar import file_fingerprint, publish_video, sha256_file, trajectory_to_dict
from sana_wm.pipeline.text import (
    DEFAULT_PROMPT,
    GEMMA_ID,
    TEXT_ENCODER_DTYPES,
    PromptCache,
    TextEmbedding,
    TextEncoder,
    default_instruction,
)
from sana_wm.pipeline.text import text_encoder_dtype as resolve_text_dtype  # from_pretrained's argument has its name
from sana_wm.pipeline.video import VideoWriter, draw_action_overlay, partial_video_path, to_uint8_frames
from sana_wm.quant import DeviceInfo, QuantReport, choose_backend, quantize_model
from sana_wm.samplers.conditioning import guided_chunk_count
from sana_wm.samplers.schedules import SigmaSchedule
from sana_wm.vae import VideoVAE

__all__ = [
    "DEFAULT_FOV_DEG",
    "EXTEND_MODES",
    "OFFICIAL_REPOS",
    "VARIANTS",
    "VARIANT_DEFAULTS",
    "GenerationRequest",
    "GenerationResult",
    "ModelFiles",
    "ModelFilesError",
    "OptionError",
    "OptionWarning",
    "PreparedInputs",
    "SamplingPlan",
    "SanaWMPipeline",
    "check_generation_numbers",
    "default_dtype",
    "first_write_bytes",
    "resolve_model",
]

VARIANTS = ("bidirectional", "chunk-causal", "streaming")
OFFICIAL_REPOS = {
    "bidirectional": "Efficient-Large-Model/SANA-WM_bidirectional",
    "chunk-causal": "Efficient-Large-Model/SANA-WM_chunk_causal",
    "streaming": "Efficient-Large-Model/SANA-WM_streaming",
}
DIT_FILES = {
    "bidirectional": "dit/sana_wm_1600m_720p.safetensors",
    "chunk-causal": "dit/sana_wm_chunk_causal_1600m_720p.safetensors",
    "streaming": "sana_dit/model.pt",
}
VAE_DIRS = {"bidirectional": "vae", "chunk-causal": "vae", "streaming": "ltx2_causal_vae"}
CONFIG_FILE = "config.yaml"
SETTINGS_KEYS = {"transformer", "image_size", "fps", "text_encoder", "sampler", "vae", "wrapper"}  # config.yaml
TEXT_FREE = "none"  # ModelFiles.text_encoder of a model that takes no text


@dataclass(frozen=True)
class VariantDefaults:
    steps: int
    cfg: float
    shift: float
    timesteps: tuple[float, ...] | None = None  # an explicit list used verbatim (streaming)
    camera_cfg: float = 1.0  # camera guidance against a standing camera (1 = off)
    camera_cfg_chunks: int | None = None  # streaming: guide only the first N chunks (None = all)


# Reference §3.2 / §11.1: bidirectional as the benchmark script (shift 8), chunk-causal as its config (9.8),
# streaming with the distilled student's explicit timestep list and CFG baked in.
VARIANT_DEFAULTS = {
    "bidirectional": VariantDefaults(60, 5.0, 8.0),
    "chunk-causal": VariantDefaults(60, 5.0, 9.8),
    "streaming": VariantDefaults(4, 1.0, 8.0, (1000.0, 960.0, 889.0, 727.0, 0.0)),
}
# sana_wm.sampler; "timesteps": an explicit list used verbatim (a distilled student's own, sana_wm.distill)
SAMPLER_KEYS = frozenset({"steps", "cfg", "shift", "camera_cfg", "camera_cfg_chunks", "timesteps"})
DEFAULT_FOV_DEG = 60.0  # horizontal FOV assumed for a camera path without intrinsics
EXTEND_MODES = ("error", "hold", "resample")  # what to do with a camera path shorter than the video
STREAM_CHUNK_FRAMES = 3  # latent frames per streaming chunk: videos are snapped to 8 * 3k + 1 raw frames
# A streaming run writes its resume file after every chunk unless told otherwise: for the bundled model that costs
# little next to sampling a chunk (docs/reliability.md, "Resumable generation").
DEFAULT_RESUME_EVERY = 1


# ------------------------------------------------------------------------------------------------
# Model folders
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFiles:
    """Where one variant's files are: ``root`` folder, transformer weights, VAE folder, text encoder source."""

    source: str  # what the user passed (folder or hub id)
    variant: str
    root: Path
    dit: Path
    vae: Path
    text_encoder: str
    settings: dict = field(default_factory=dict)  # the config.yaml "sana_wm" section


def _detect_variant(root: Path) -> str | None:
    for variant in ("streaming", "chunk-causal", "bidirectional"):
        if (root / DIT_FILES[variant]).is_file():
            return variant
    return None


def _check_variant(variant: str | None) -> str | None:
    if variant is None:
        return None
    variant = variant.replace("_", "-")
    if variant not in VARIANTS:
        raise OptionError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def _read_settings(root: Path) -> dict:
    path = root / CONFIG_FILE
    if not path.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    section = doc.get("sana_wm") if isinstance(doc, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InputError(f"{path}: the 'sana_wm' section must be a mapping (transformer, image_size, fps)")
    unknown = sorted(set(section) - SETTINGS_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown} in the 'sana_wm' section; known: "
                         f"{', '.join(sorted(SETTINGS_KEYS))}")
    if section.get("text_encoder", "none") != "none":
        raise InputError(f"{path}: sana_wm.text_encoder may only be 'none' (a text-free model); give a text "
                         "encoder folder with --text-encoder or a text_encoder/ folder instead")
    sampler = section.get("sampler", {})
    if not isinstance(sampler, dict) or set(sampler) - SAMPLER_KEYS:
        raise InputError(f"{path}: sana_wm.sampler must be a mapping with keys among "
                         f"{', '.join(sorted(SAMPLER_KEYS))}; "
                         f"got {sampler!r}")
    if sampler.get("camera_cfg_chunks") is not None:
        guided_chunk_count(sampler["camera_cfg_chunks"], f"{path}: sana_wm.sampler.camera_cfg_chunks")
    if sampler.get("timesteps") is not None:
        try:
            SigmaSchedule.from_timesteps(sampler["timesteps"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: sana_wm.sampler.timesteps: {exc}") from None
    vae = section.get("vae")
    if vae is not None and (not isinstance(vae, str) or not vae or Path(vae).is_absolute() or ".." in Path(vae).parts):
        raise InputError(f"{path}: sana_wm.vae must name a folder inside the model folder, got {vae!r}")
    return section


def _bundled_root(source: str) -> Path | None:
    """The bundled model's folder when ``source`` is its name (and no folder of that name is here), else None."""
    from sana_wm.bundled import BUNDLED_MODEL, bundled_model_dir

    if source != BUNDLED_MODEL or Path(source).exists():
        return None
    return bundled_model_dir()


def default_dtype(device: torch.device) -> str:
    """The transformer precision used unless one is asked for: bf16 on CUDA; float32 elsewhere (CPU kernels in
    bf16 are slower than float32: the bundled model ran 3x slower in bf16 on a CPU)."""
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def _is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def _download(repo_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=patterns))


def resolve_model(source: str | Path, variant: str | None = None, *, vae: str | Path | None = None,
                  text_encoder: str | Path | None = None, text_only: bool = False) -> ModelFiles:
    """Find (downloading official hub ids with ``huggingface_hub``; nothing else) the files of ``variant``
    (detected from the folder's contents when None). Raises :class:`ModelFilesError` naming missing files.
    ``text_only``: only what the text encoders need (the transformer and VAE are neither fetched nor checked)."""
    variant = _check_variant(variant)
    source = str(source)
    if _is_hub_id(source):
        if variant is None:
            variant = next((v for v, r in OFFICIAL_REPOS.items() if r == source), "bidirectional")
        patterns = [CONFIG_FILE] if text_only else [DIT_FILES[variant], f"{VAE_DIRS[variant]}/*", CONFIG_FILE]
        root = _download(source, patterns)
        if not text_only and vae is None and not (root / VAE_DIRS[variant]).is_dir() and variant == "chunk-causal":
            vae = _download(OFFICIAL_REPOS["bidirectional"], ["vae/*"]) / "vae"
    else:
        root = _bundled_root(source) or Path(source).expanduser()
        if not root.is_dir():
            raise ModelFilesError(f"model {source!r} is neither a folder nor a hub id (owner/name)")
        detected = _detect_variant(root)
        if variant is None:
            if detected is None:
                expected = "; ".join(f"{DIT_FILES[v]} ({v})" for v in VARIANTS)
                raise ModelFilesError(f"{root}: no transformer weights found; expected one of: {expected}")
            variant = detected
    settings = _read_settings(root)
    missing = []
    dit = root / DIT_FILES[variant]
    if not dit.is_file():
        missing.append(str(dit))
    vae_dir = Path(vae) if vae is not None else root / settings.get("vae", VAE_DIRS[variant])
    if not (vae_dir / "config.json").is_file():
        missing.append(str(vae_dir / "config.json"))
    elif not any(vae_dir.glob("*.safetensors")):
        missing.append(str(vae_dir / "diffusion_pytorch_model.safetensors"))
    if missing and not text_only:
        hint = ""
        if variant == "chunk-causal" and vae is None:
            hint = (" (the chunk-causal release ships no VAE: pass vae=/--vae the bidirectional release's vae/ "
                    "folder)")
        raise ModelFilesError(f"{root} is missing files for the {variant} variant: {', '.join(missing)}{hint}")
    if text_encoder is None:
        if settings.get("text_encoder") == TEXT_FREE:
            text_encoder = TEXT_FREE
        else:
            text_encoder = str(root / "text_encoder") if (root / "text_encoder").is_dir() else GEMMA_ID
    return ModelFiles(source, variant, root, dit, vae_dir, str(text_encoder), settings)


# H.264 at CRF 18 stays under 2 bits a pixel on the videos these models make (the bundled model's: 0.45 bits).
_VIDEO_BYTES_PER_PIXEL = 0.25
# The sidecar and the resume file's request record carry every pose inline (about 200 bytes each) and the settings.
_RECORD_BYTES_PER_FRAME, _RECORD_BYTES = 200, 64 * 1024


def _vae_stride(vae_dir: Path) -> int:
    """The spatial stride from a VAE folder's config.json, without loading it (32, the LTX-2 VAE's, if unreadable)."""
    import json

    try:
        config = json.loads((vae_dir / "config.json").read_text())
        return int(config.get("patch_size") or config.get("spatial_compression_ratio") or 32)
    except (OSError, ValueError, TypeError, AttributeError):
        return 32


def first_write_bytes(source: str | Path, variant: str | None, num_frames: int) -> int:
    """The disk space a generation needs in the output folder before its first chunk is safely written: the whole
    MP4 for a variant that samples the whole clip at once; the first chunk's MP4 and its resume file (the streaming
    cache and latents) when streaming; plus the sidecar. Read from the model folder's config without loading
    weights (a hub id: the released size and the given variant, bidirectional when none)."""
    source = str(source)
    settings: dict = {}
    if not _is_hub_id(source):
        root = _bundled_root(source) or Path(source).expanduser()
        if root.is_dir():
            settings = _read_settings(root)
            variant = variant or _detect_variant(root)
    variant = variant or "bidirectional"
    H, W = settings.get("image_size", DEFAULT_TARGET_SIZE)
    config = _transformer_config(settings, root if settings else None)
    record = _RECORD_BYTES + _RECORD_BYTES_PER_FRAME * num_frames
    if variant != "streaming":
        return int(num_frames * H * W * _VIDEO_BYTES_PER_PIXEL) + record
    first_frames = min(num_frames, 1 + 8 * STREAM_CHUNK_FRAMES)
    stride = _vae_stride(root / settings.get("vae", VAE_DIRS[variant])) if settings else 32
    hw = (H // stride) * (W // stride)
    # The resume file of the first chunk, in float32 at most: per softmax block a K/V window of the sink and one
    # chunk, per GDN block its short-conv tails (q, k, v) and its D x D states, both for the main and the camera
    # branch; and the chunk's latents.
    softmax = len(config.softmax_block_indices)
    window = (2 * config.chunk_frames + 1) * hw
    tails = (config.conv_kernel_size - 1) * hw * 3
    cache = 2 * 4 * config.hidden_size * (softmax * 2 * window + (config.depth - softmax) * tails) \
        + 2 * 4 * (config.depth - softmax) * config.num_heads * config.head_dim ** 2
    latents = (config.chunk_frames + 1) * config.in_channels * hw * 4
    return int(first_frames * H * W * _VIDEO_BYTES_PER_PIXEL) + cache + latents + 2 * record


def _refiner_source(files: ModelFiles, refiner: str | Path | bool | None) -> str | Path | None:
    """What ``from_pretrained(..., refiner=...)`` loads: None, or a folder / hub id for :class:`Refiner`."""
    if refiner is None or refiner is False:
        return None
    if refiner is True or refiner == "auto":
        required = refiner is True
        if _is_hub_id(files.source):
            try:
                resolve_refiner(files.source)
            except ModelFilesError:
                if required:
                    raise
                return None
            return files.source
        found = find_refiner(files.root)
        if found is None and required:
            raise ModelFilesError(f"{files.root} has no refiner folder (refiner/ or refiner_diffusers/ holding "
                                  "transformer/ and connectors/); pass refiner=<folder or hub id>")
        return found
    return refiner


def _transformer_config(settings: dict, root: Path | None = None):
    """The transformer config a model folder's settings name; a bad one names ``root``'s config.yaml."""
    from sana_wm.model.config import SanaWMConfig, get_config

    spec = settings.get("transformer", "official-2.6b")
    try:
        if isinstance(spec, str):
            return get_config(spec)
        if not isinstance(spec, dict):
            raise ConfigError(f"must be a config name or a mapping of its fields, got {spec!r}")
        return SanaWMConfig.from_dict(dict(spec))
    except (ConfigError, KeyError) as exc:
        where = f"{root / CONFIG_FILE}: " if root is not None else ""
        raise ConfigError(f"{where}sana_wm.transformer: {exc}") from None


def _sampled_model(transformer, settings: dict, files: ModelFiles | None):
    """What the samplers run: ``transformer``, or the model wrapper that ``sana_wm.wrapper`` describes."""
    spec = settings.get("wrapper")
    if spec is None:
        return transformer
    from sana_wm.bundled import wrap_transformer

    where = f"{files.root / CONFIG_FILE}: sana_wm.wrapper" if files is not None else "sana_wm.wrapper"
    return wrap_transformer(transformer, spec, where)


# ------------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------------
# Flow-matching samplers converge in tens of steps; a typo such as 10000000 would only burn compute.
MAX_STEPS = 1000
# The number rules of a generation: (lowest, highest, lowest excluded, whole number). One table for the Python
# API (GenerationRequest) and the command line, which checks them before it reads any file.
_NUMBER_RULES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "num_frames": (1, None, False, True),  # and at most sana_wm.limits.max_frames()
    "steps": (1, MAX_STEPS, False, True),
    "cfg": (0.0, None, False, False),
    "camera_cfg": (0.0, None, False, False),
    "shift": (0.0, None, True, False),
    "fov": (*DEFAULT_FOV_RANGE_DEG, False, False),
    "camera_cfg_chunks": (1, None, False, True),
    "resume_every": (0, None, False, True),
    "refiner_settings.block_frames": (1, None, False, True),
    "refiner_settings.kv_max_frames": (1, None, False, True),
    # torch's generators take a 64-bit seed
    "seed": (-(2**63), 2**64 - 1, False, True),
    "refiner_settings.seed": (-(2**63), 2**64 - 1, False, True),
}


class OptionLimitError(OptionError, LimitError):
    """A frame count above :func:`sana_wm.limits.max_frames`, named as an option."""


def check_generation_numbers(values: dict[str, Any]) -> None:
    """Refuse non-finite, out-of-range or fractional numbers among ``values`` (option name -> value; None is
    unset), naming the option (:class:`OptionError`, so the command line names its flag)."""
    for name, value in values.items():
        if value is None:
            continue
        low, high, low_open, whole = _NUMBER_RULES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise OptionError(f"{{{name}}} {value!r}: must be a number")
        if not math.isfinite(value):
            raise OptionError(f"{{{name}}} {value}: must be a finite number")
        if whole and value != int(value):
            raise OptionError(f"{{{name}}} {value}: must be a whole number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
            hi = "" if high is None else f"<= {high:g}"
            raise OptionError(f"{{{name}}} {value:g}: must be {' and '.join(x for x in (lo, hi) if x)}")
        if name == "num_frames":
            try:
                check_frames(value, f"{{{name}}} {value:g}")
            except LimitError as exc:
                raise OptionLimitError(str(exc)) from None


@dataclass(frozen=True)
class GenerationRequest:
    """One generation as asked for: the input image, the camera path and every option, checked on construction.

    ``image``: a path, PIL image or uint8 ``(H, W, 3)`` array. ``trajectory``: the camera path; intrinsics are in
    pixels of ``image`` (any resolution of its aspect); without them a horizontal ``fov`` (default 60 deg) is
    assumed. ``num_frames``: requested raw frames (default: the trajectory's length), snapped down to ``8k + 1``
    (streaming: ``24k + 1``); a shorter trajectory is an error unless ``extend`` is "hold" or "resample".
    ``prompt`` (default :data:`DEFAULT_PROMPT`) and ``negative_prompt`` (default empty): text, a
    :class:`TextEmbedding` or a saved embedding ``.safetensors``. ``steps``/``cfg``/``shift`` default to the
    model's sampler settings (:meth:`SanaWMPipeline.sampler_defaults`); ``sigmas`` (a decreasing list ending
    in 0) replaces the shifted schedule. ``camera_cfg`` (1 = off) is camera guidance: the unconditional branch
    sees a camera that stands still (same intrinsics); it replaces text guidance rather than adding to it (one
    of ``cfg``/``camera_cfg`` must be 1). ``camera_cfg_chunks`` (streaming) limits camera guidance to the first
    N chunks. ``output``: the MP4 to write (plus ``<stem>.sana-wm.json``); streaming writes each chunk as soon
    as it is decoded. ``action`` (the action string the trajectory came from) is recorded and, with
    ``overlay_actions``, drawn on the frames. ``keep_frames``: also return the frames when writing a file.

    Stage 2: ``refine`` (default: whenever a refiner is loaded) runs the refiner with ``refiner_settings`` (a
    :class:`~sana_wm.pipeline.refiner.RefinerSettings` or a dict of its fields over the variant's defaults; its
    seed defaults to ``seed``) on ``refiner_prompt`` (default: ``prompt``, which must then be text).

    ``prompt_embeds``: a :class:`~sana_wm.pipeline.prompt_embeds.PromptEmbeds` (or its file) in place of
    ``prompt``, ``negative_prompt`` and ``refiner_prompt``: states encoded beforehand, refused when another
    encoder made them.

    Resuming (streaming without a refiner, with ``output``): every ``resume_every`` chunks (default
    :data:`DEFAULT_RESUME_EVERY`; 0 = never) the run saves ``OUT.resume.safetensors``
    (:mod:`~sana_wm.pipeline.resume`), removed when it ends; ``resume=True`` continues an interrupted run of the
    same request from that file, to the same video an uninterrupted run makes.

    ``memory_check`` (default on): before sampling, refuse a run whose memory estimate
    (:meth:`SanaWMPipeline.memory_estimate`) exceeds what the device has free; False skips the check.

    ``overlap`` (streaming on CUDA; default on there): stage 1, the refiner and the VAE decode of successive chunks
    run on separate CUDA streams (:mod:`~sana_wm.pipeline.overlap`), with the same output as in order; False runs
    them in order. Elsewhere the stages always run in order, and a given ``overlap`` is warned about.
    """

    image: Any
    trajectory: Trajectory
    num_frames: int | None = None
    prompt: str | TextEmbedding | None = None
    negative_prompt: str | TextEmbedding | None = None
    variant: str | None = None
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None
    sigmas: tuple[float, ...] | None = None
    camera_cfg: float | None = None
    camera_cfg_chunks: int | None = None
    seed: int = 42
    output: Path | None = None
    progress: bool = True
    fov: float | None = None
    extend: str = "error"
    action: str | None = None
    overlay_actions: bool = False
    instruction: str | None = None
    keep_frames: bool = False
    hash_weights: bool = False
    refine: bool | None = None
    refiner_settings: RefinerSettings | dict | None = None
    refiner_prompt: str | TextEmbedding | None = None
    resume: bool = False
    resume_every: int | None = None
    memory_check: bool = True
    prompt_embeds: PromptEmbeds | str | Path | None = None
    overlap: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.trajectory, Trajectory):
            raise TypeError(f"trajectory must be a Trajectory, got {type(self.trajectory).__name__} (build one with "
                            "sana_wm.camera.actions.action_to_trajectory or sana_wm.camera.presets.make_preset)")
        if self.extend not in EXTEND_MODES:
            raise OptionError(f"{{extend}} {self.extend!r}: choose one of {', '.join(EXTEND_MODES)}")
        if self.output is not None:
            output = Path(self.output)
            if output.suffix.lower() != ".mp4":
                raise OptionError(f"{{output}} {str(output)!r}: the video is written as H.264 MP4, so the file name "
                                  "must end in .mp4")
            object.__setattr__(self, "output", output)
        settings = self.refiner_settings if isinstance(self.refiner_settings, dict) else {}
        check_generation_numbers({
            "num_frames": self.num_frames, "steps": self.steps, "cfg": self.cfg, "shift": self.shift,
            "camera_cfg": self.camera_cfg, "camera_cfg_chunks": self.camera_cfg_chunks, "fov": self.fov,
            "resume_every": self.resume_every, "seed": self.seed, "refiner_settings.seed": settings.get("seed"),
            "refiner_settings.block_frames": settings.get("block_frames"),
            "refiner_settings.kv_max_frames": settings.get("kv_max_frames")})
        if self.resume and self.output is None:
            raise OptionError("{resume} continues the video named by {output}: give it")
        if self.sigmas is not None:
            object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if self.prompt_embeds is not None:
            given = [name for name in ("prompt", "negative_prompt", "refiner_prompt")
                     if getattr(self, name) is not None]
            if given:
                raise OptionError(f"{{prompt_embeds}} hold the encoded prompts: drop {{{given[0]}}} (encode it into "
                                  "the file with `sana-wm encode-prompt`)")
            if not isinstance(self.prompt_embeds, PromptEmbeds):
                object.__setattr__(self, "prompt_embeds", PromptEmbeds.load(self.prompt_embeds))
        if isinstance(self.refiner_settings, dict):
            known = {f.name for f in fields(RefinerSettings)}
            unknown = sorted(set(self.refiner_settings) - known)
            if unknown:
                raise OptionError(f"{{refiner_settings}}: unknown keys {unknown}; known: {sorted(known)}")
            object.__setattr__(self, "refiner_settings", dict(self.refiner_settings))


@dataclass(frozen=True)
class SamplingPlan:
    """What a request resolves to on one pipeline: the settings that take effect (and only those: an option
    that cannot act is None here, and warned about when the request gave it)."""

    steps: int
    cfg: float  # text guidance; 1 = off (always for a text-free model)
    shift: float
    schedule: Any  # sana_wm.samplers.SigmaSchedule
    camera_cfg: float  # 1 = off
    camera_cfg_chunks: int | None  # guided streaming chunks; None = all of them, or no camera guidance
    refiner: RefinerSettings | None  # None = stage 1 only
    prompt: str | TextEmbedding | None  # None for a text-free model
    negative_prompt: str | TextEmbedding | None  # None unless text guidance is on
    refiner_prompt: str | TextEmbedding | None  # what the refiner encodes; None without a refiner
    resume_every: int = 0  # save a resume file every N chunks; 0 = never
    prompt_embeds: PromptEmbeds | None = None  # where prompt, negative and refiner states came from
    overlap: bool | None = None  # stages on separate CUDA streams; None where that cannot take effect


@dataclass(frozen=True)
class PreparedInputs:
    """The prepare stage's output: everything the sampler, refiner and writer need, on the compute device."""

    image: Any  # PIL.Image.Image, RGB, as given
    image_path: Path | None  # None for an in-memory image
    trajectory: Trajectory  # fitted to num_frames, with intrinsics (in pixels of the input image)
    requested_frames: int
    num_frames: int  # raw frames stage 1 generates (8k + 1, streaming 24k + 1)
    latent_frames: int
    fov: float | None  # the horizontal FOV assumed; None when the path had intrinsics
    first_latent: torch.Tensor  # (1, C, 1, h, w) the encoded input image
    cond: Any  # sana_wm.samplers.Conditioning
    guidance: Any  # sana_wm.samplers.Guidance or None
    refiner_text: TextEmbedding | None
    first_pose: int  # trajectory index of the video's first frame (the refiner drops the sink's frames)
    held_keys: list[frozenset] | None  # per frame, the keys to draw (action overlay)


@dataclass
class GenerationResult:
    """``frames (F, H, W, 3)`` uint8 (kept when no file was written, or with ``keep_frames``), the decoded
    ``latents (1, C, T_lat, h, w)`` (refined when the refiner ran; ``stage1_latents`` then holds stage 1's), the
    video and sidecar paths (None without ``output``). ``num_frames``: frames in the video."""

    frames: np.ndarray | None
    fps: float
    num_frames: int
    latents: torch.Tensor | None
    video_path: Path | None
    sidecar: Path | None
    seconds: float
    stage1_latents: torch.Tensor | None = None
    timing: dict[str, Any] | None = None  # when each chunk's frames were written (:func:`chunk_timing`)


def _warn(template: str) -> None:
    warnings.warn(OptionWarning(template), stacklevel=5)  # the caller of generate


@dataclass(frozen=True)
class DecodedChunk:
    """The decode stage's output for one chunk, on the host: its ``latents (1, C, n, h, w)`` and its decoded
    ``video (1, 3, F, H, W)`` in [-1, 1]."""

    latents: torch.Tensor
    video: torch.Tensor


# A streaming run's chunks take the same time from this one on: the released K/V window (2 chunks + the sink) is
# full, so no new shape comes (each new shape costs a compilation with compile_blocks).
STEADY_FROM_CHUNK = 3


def chunk_timing(started: float, written: list[float]) -> dict[str, Any]:
    """The timing record of a run from the clock at the start of sampling and the clock each time a chunk's frames
    were written: the first chunk's time (with compile_blocks, its compilation), each chunk's, and the median of the
    chunks from :data:`STEADY_FROM_CHUNK` on (None when there are none)."""
    seconds = [b - a for a, b in zip([started, *written], written, strict=False)]
    steady = seconds[STEADY_FROM_CHUNK:]
    return {"first_chunk_s": round(seconds[0], 4) if seconds else None,
            "chunk_s": [round(s, 4) for s in seconds],
            "steady_chunk_s": round(statistics.median(steady), 4) if steady else None}


class _FrameSink:
    """Where decoded frames go, in order: the MP4 (if any) and/or memory. Drops the refiner's sink frames
    (``first_pose``) and draws the action overlay."""

    def __init__(self, request: GenerationRequest, inputs: PreparedInputs, fps: float) -> None:
        self.first_pose = inputs.first_pose
        self.held = inputs.held_keys
        self.keep = request.keep_frames or request.output is None
        # The MP4 is written under its partial name and renamed when complete (publish_video), so a failed or
        # killed run never replaces an earlier video at the output, and what it leaves is named incomplete.
        self.writer = VideoWriter(partial_video_path(request.output), fps, keep_frames=request.keep_frames) \
            if request.output is not None else None
        self.kept: list[np.ndarray] = []
        self.decoded = 0  # frames decoded so far (dropped sink frames included)
        self.written = 0  # frames handed to the video (or kept)

    def add(self, video: torch.Tensor) -> None:
        """``video (1, 3, F, H, W)`` in [-1, 1], the next decoded frames."""
        skip = max(0, min(self.first_pose - self.decoded, video.shape[2]))
        self.decoded += video.shape[2]
        frames = to_uint8_frames(video[:, :, skip:])
        if not len(frames):
            return
        start = self.decoded - len(frames)  # the trajectory index of frames[0]
        if self.held is not None:
            frames = draw_action_overlay(frames, self.held[start:start + len(frames)])
        if self.writer is not None:
            self.writer.write(frames)
        elif self.keep:
            self.kept.append(frames)
        self.written += len(frames)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def frames(self) -> np.ndarray | None:
        if self.writer is not None and self.keep:
            return self.writer.frames
        return np.concatenate(self.kept) if self.kept else None


class _ResumeSaver:
    """Writes the resume file every ``every`` chunks, once the chunk's frames are in the video: the sample stage
    reports each new chunk (:meth:`sampled`), the host each written one (:meth:`written`). Without a refiner each
    sampled chunk is decoded to one written chunk, in order; with overlapped stages stage 1 runs a few chunks
    ahead, so each sampled chunk waits in a queue with the generator's state it left, until its frames are written.
    ``to_host`` copies latents to the host (on the stage's stream, without waiting: they are read only after their
    frames are written)."""

    def __init__(self, path: Path, every: int, record: dict[str, Any], resume: ResumePoint | None,
                 num_chunks: int, to_host: Callable[[torch.Tensor], torch.Tensor] = torch.Tensor.cpu) -> None:
        self.path, self.every, self.record, self.num_chunks = path, every, record, num_chunks
        self.to_host = to_host
        self.digest = request_hash(record)
        self.latents: list[torch.Tensor] = [] if resume is None else [resume.latents]  # of the chunks written
        self.expected_frames = None if resume is None else (resume.next_chunk, resume.frames_written)
        self.stored_chunks = 0 if resume is None else resume.next_chunk  # decoded again before new ones come
        self.chunks_written = 0
        self.pending: deque = deque()  # (chunk, host latents, generator state) of sampled chunks not yet written

    def sampled(self, chunk, generator: torch.Generator) -> None:
        self.pending.append((chunk, self.to_host(chunk.latents), generator.get_state()))

    def written(self, sink: _FrameSink) -> None:
        self.chunks_written += 1
        if self.expected_frames is not None and self.chunks_written == self.expected_frames[0] \
                and sink.written != self.expected_frames[1]:
            raise ResumeError(f"{self.path}: the stored chunks decode to {sink.written} frames, but the file says "
                              f"{self.expected_frames[1]} were written; it is damaged; generate the video again")
        if self.chunks_written <= self.stored_chunks:  # a stored chunk, decoded again
            return
        chunk, latents, state = self.pending.popleft()
        self.latents.append(latents)
        done = chunk.index + 1
        if done % self.every or done == self.num_chunks:  # the last chunk: the run is about to end anyway
            return
        self.latents = [torch.cat(self.latents, dim=2)]  # joined once per save, not again from every piece
        save_resume_point(self.path, ResumePoint(done, chunk.cache, state, self.latents[0], sink.written,
                                                 self.record, self.digest, torch.get_num_threads()))


class SanaWMPipeline:
    """SANA-WM generation (module docstring). Build with :meth:`from_pretrained`; call it like a diffusers
    pipeline (``pipe(image=..., trajectory=...)``) or with :meth:`generate`."""

    def __init__(self, transformer, vae: VideoVAE, text_encoder: TextEncoder | None, *, variant: str,
                 image_size: tuple[int, int] = DEFAULT_TARGET_SIZE, fps: float = 16.0, device="cpu",
                 files: ModelFiles | None = None, offload: bool = False, refiner: Refiner | None = None) -> None:
        self.transformer = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.variant = _check_variant(variant)
        self.image_size = (int(image_size[0]), int(image_size[1]))  # (H, W)
        self.fps = float(fps)
        self.device = torch.device(device)
        self.files = files
        self.offload = offload
        self.refiner = refiner  # stage 2, applied to the latents before decoding (None: stage 1 only)
        # what quantize_model did to each transformer ("stage1", "refiner"); empty: built unquantized
        self.quantization: dict[str, QuantReport] = {}
        # the memory plan applied (sana_wm.pipeline.plan, ``generate --gpu-memory``), recorded in the sidecar
        self.memory_plan: dict | None = None
        self.compiled = False  # the transformer's blocks run torch.compile'd (compile_blocks)
        settings = files.settings if files is not None else {}
        self.text_free = text_encoder is None and settings.get("text_encoder") == TEXT_FREE
        self._sampler_settings = dict(settings.get("sampler", {}))
        self.model = _sampled_model(transformer, settings, files)
        s = vae.spatial_stride
        if self.image_size[0] % s or self.image_size[1] % s:
            raise InputError(f"image size {self.image_size} must be a multiple of the VAE stride {s}")

    def sampler_defaults(self, variant: str | None = None) -> VariantDefaults:
        """The sampling defaults: the variant's released ones, overridden by the model's ``sana_wm.sampler``."""
        base = VARIANT_DEFAULTS[_check_variant(variant) or self.variant]
        own = self._sampler_settings
        if not own:
            return base
        timesteps = own.get("timesteps")
        if timesteps is not None:  # the model's own explicit list (a distilled student's)
            timesteps = tuple(float(t) for t in timesteps)
        steps = len(timesteps) - 1 if timesteps is not None else int(own.get("steps", base.steps))
        return VariantDefaults(steps, float(own.get("cfg", base.cfg)),
                               float(own.get("shift", base.shift)), timesteps,
                               float(own.get("camera_cfg", base.camera_cfg)),
                               own.get("camera_cfg_chunks", base.camera_cfg_chunks))

    # -- loading ------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str | Path, variant: str | None = None, *, text_encoder: str | Path | None = None,
                        vae: str | Path | None = None, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, offload: bool = False,
                        prompt_cache: str | Path | None = None, instruction: str | None = None,
                        refiner: str | Path | bool | None = None,
                        refiner_text_encoder: str | Path | None = None, stage1_precision: str = "bf16",
                        refiner_precision: str | None = None, quant_backend: str = "auto",
                        text_encoders: bool = True, refiner_offload: str | None = None,
                        compile: bool = False, text_encoder_dtype: str | None = None) -> SanaWMPipeline:
        """Load a released (or released-layout) model folder, an official hub id, or the bundled model by its
        name, ``"sana-wm-synth"`` (module docstring).

        ``device``: default cuda when available, else cpu. ``dtype`` of the transformer (and refiner): default
        :func:`default_dtype` of the device, bf16 on CUDA and float32 on CPU. ``refiner``: None/False for
        stage 1 only; True for the model's own refiner (an error if it has none); "auto" for the model's refiner
        when it has one; or a refiner folder / model folder / hub id.
        ``refiner_text_encoder`` overrides its Gemma-3 folder.

        ``stage1_precision`` / ``refiner_precision`` (default "bf16": not quantized, the transformers run in
        ``dtype``): "fp8", "nvfp4", "int8" or "int4", applied by :func:`sana_wm.quant.quantize_model` under its
        rules on ``quant_backend`` ("auto": torchao on a GPU that runs the precision, else a
        :class:`~sana_wm.quant.PrecisionError` naming the alternative; on the CPU the exact emulation, said in a
        warning). ``text_encoders=False`` loads neither text encoder: prompts must then be precomputed
        (:class:`~sana_wm.pipeline.prompt_embeds.PromptEmbeds`), which lets the encoders run and be freed before
        the transformers load. ``refiner_offload="blocks"`` keeps the refiner's blocks in host memory and moves
        each in while it runs (:meth:`~sana_wm.model.refiner.RefinerTransformer.offload_blocks`); default
        "resident". ``compile=True`` (CUDA): :meth:`compile_blocks`, the transformer's blocks compiled;
        elsewhere it does not take effect (a warning says so). ``text_encoder_dtype``: what both text encoders
        run in, "bf16" (default, on the CPU too) or "fp32" (:func:`~sana_wm.pipeline.text.text_encoder_dtype`)."""
        from sana_wm.model.loading import from_pretrained as load_transformer
        from sana_wm.model.loading import resolve_dtype

        files = resolve_model(source, variant, vae=vae, text_encoder=text_encoder)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = resolve_dtype(default_dtype(device) if dtype is None else dtype)
        idle = torch.device("cpu") if offload else device
        choose_backend(stage1_precision, DeviceInfo.of(device), quant_backend)  # refuse before any loading
        if refiner_precision is not None:
            choose_backend(refiner_precision, DeviceInfo.of(device), quant_backend, flag="--refiner-precision")
        transformer = load_transformer(files.dit, _transformer_config(files.settings, files.root), dtype=dtype,
                                       device=device)
        quantization = {"stage1": quantize_model(transformer, stage1_precision, quant_backend, device=device)}
        # The VAE in full precision on CPU (its half-precision CPU convolutions are slow or missing).
        aux_dtype = dtype if device.type == "cuda" else torch.float32
        video_vae = VideoVAE.from_pretrained(files.vae, dtype=aux_dtype, device=idle)
        text_dtype = resolve_text_dtype(text_encoder_dtype)
        cache = PromptCache(prompt_cache) if prompt_cache is not None else None
        encoder = None
        if files.text_encoder != TEXT_FREE and text_encoders:
            encoder = TextEncoder.from_pretrained(files.text_encoder, dtype=text_dtype, device=idle, cache=cache,
                                                  instruction=instruction)
        refiner_source = _refiner_source(files, refiner)
        if refiner_source is None and refiner_text_encoder is not None:
            warnings.warn(OptionWarning("{refiner_text_encoder} is ignored: no refiner is loaded"), stacklevel=2)
        if refiner_source is None and refiner_precision is not None:
            warnings.warn(OptionWarning("{refiner_precision} is ignored: no refiner is loaded"), stacklevel=2)
        if refiner_offload not in (None, "resident", "blocks"):
            raise OptionError(f"{{refiner_offload}} {refiner_offload!r}: choose resident or blocks")
        if refiner_source is None and refiner_offload is not None:
            warnings.warn(OptionWarning("{refiner_offload} is ignored: no refiner is loaded"), stacklevel=2)
        stage2 = None
        if refiner_source is not None:
            blocks = refiner_offload == "blocks"
            stage2 = Refiner.from_pretrained(refiner_source, text_encoder=refiner_text_encoder, dtype=dtype,
                                             device=torch.device("cpu") if blocks else idle, text_dtype=text_dtype,
                                             text_device=idle, cache=cache, load_text_encoder=text_encoders)
            quantization["refiner"] = quantize_model(stage2.transformer, refiner_precision or "bf16", quant_backend,
                                                     device=device, flag="--refiner-precision")
            if blocks:  # after quantizing: the blocks leave the model
                stage2.transformer.offload_blocks(device)
                stage2.transformer.to(idle)
        for report in quantization.values():
            if report.note is not None:
                warnings.warn(report.summary(), stacklevel=2)
        image_size = tuple(files.settings.get("image_size", DEFAULT_TARGET_SIZE))
        pipe = cls(transformer, video_vae, encoder, variant=files.variant, image_size=image_size,
                   fps=float(files.settings.get("fps", 16.0)), device=device, files=files, offload=offload,
                   refiner=stage2)
        pipe.quantization = quantization
        if compile and device.type != "cuda":
            warnings.warn(OptionWarning(f"{{compile}} does not take effect: compiled blocks pay off on CUDA, where a "
                                        f"chunk's small kernels are launch-bound; this pipeline runs on the "
                                        f"{device.type}"), stacklevel=2)
        elif compile:
            pipe.compile_blocks()
        return pipe

    def compile_blocks(self, **compile_options) -> None:
        """``torch.compile`` the stage-1 transformer's blocks in place
        (:meth:`~sana_wm.model.transformer.SanaWMTransformer.compile_blocks`; ``compile_options`` go to
        ``torch.compile``). Each new input shape compiles once, on its first call: a streaming run's first chunks
        (until the K/V window is full) take that time, which the timing record of the sidecar keeps apart
        (``first_chunk_s``, ``chunk_s``, ``steady_chunk_s``). Recorded in the sidecar as ``settings.compile``."""
        self.transformer.compile_blocks(**compile_options)
        self.compiled = True

    # -- helpers ------------------------------------------------------------------------------------
    def _use(self, module):
        """Move an auxiliary model to the compute device (a no-op without offload)."""
        if self.offload:
            module.to(self.device)
        return module

    def _release(self, module) -> None:
        if self.offload:
            module.to(torch.device("cpu"))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def snap_num_frames(self, num_frames: int) -> int:
        """The frame count actually generated for a request: ``8k + 1`` (rounded down; streaming: ``24k + 1``,
        whole 3-latent-frame chunks after the first frame)."""
        stride = self.vae.temporal_stride * (STREAM_CHUNK_FRAMES if self.variant == "streaming" else 1)
        if num_frames < stride + 1:
            raise TrajectoryError(f"{num_frames} frames is too short: the {self.variant} variant needs at least "
                                  f"{stride + 1} frames")
        return snap_frame_count(num_frames, stride, "down")

    def memory_estimate(self, num_frames: int, *, guided: bool, refine: bool = True, keep_frames: bool = False,
                        variant: str | None = None, refiner_kv_frames: int = 11) -> MemoryEstimate:
        """The memory a generation of ``num_frames`` video frames needs on this pipeline's device, component by
        component (:mod:`sana_wm.pipeline.memory`); ``variant``: as if it held that variant's weights."""
        return estimate_generation(self, num_frames, guided=guided, refine=refine and self.refiner is not None,
                                   keep_frames=keep_frames, variant=variant, refiner_kv_frames=refiner_kv_frames)

    def check_memory(self, num_frames: int, *, guided: bool, refine: bool = True, keep_frames: bool = False,
                     refiner_kv_frames: int = 11) -> None:
        """Refuse (:class:`~sana_wm.pipeline.memory.InsufficientMemoryError`) a generation whose estimate exceeds
        the memory the device has free, naming settings that would fit; a no-op where that cannot be known."""
        available = available_bytes(self.device)
        if available is None:
            return
        options = dict(guided=guided, refine=refine, keep_frames=keep_frames, refiner_kv_frames=refiner_kv_frames)
        estimate = self.memory_estimate(num_frames, **options)
        if estimate.needed_bytes <= available:
            return
        room = available + estimate.stage_bytes(LOADED)  # what the device would have without our weights

        def fits(candidate: MemoryEstimate) -> bool:
            return candidate.peak_bytes <= room

        advice = []
        if self.variant != "streaming" and fits(self.memory_estimate(num_frames, variant="streaming", **options)):
            advice.append("{variant} streaming (its weights make one chunk at a time)")
        if self.device.type == "cuda" and not self.offload and fits(offloaded(estimate)):
            advice.append("{offload}")
        stride = self.vae.temporal_stride * (STREAM_CHUNK_FRAMES if self.variant == "streaming" else 1)
        low, high = 0, (num_frames - 1) // stride  # frames = 1 + k * stride; find the largest k that fits
        while low < high:
            mid = (low + high + 1) // 2
            if fits(self.memory_estimate(1 + mid * stride, **options)):
                low = mid
            else:
                high = mid - 1
        if low >= 1:
            frames = 1 + low * stride
            advice.append(f"{{num_frames}} {frames} ({(frames - 1) / self.fps:g} s)")
        raise refusal(estimate, available, num_frames, self.fps, self.variant, advice)

    def _load_image(self, image):
        from PIL import Image

        from sana_wm.pipeline.image import load_image, to_rgb8

        if isinstance(image, Image.Image):
            return to_rgb8(image), None
        if isinstance(image, np.ndarray):
            return to_rgb8(Image.fromarray(image)), None
        return load_image(image), Path(image)

    def _text(self, prompt: str | TextEmbedding, negative: bool, instruction: str | None) -> TextEmbedding:
        if isinstance(prompt, TextEmbedding):
            return prompt
        if isinstance(prompt, (str, Path)) and str(prompt).endswith(".safetensors") and Path(prompt).is_file():
            return TextEmbedding.load(prompt)
        if self.text_encoder is None:
            if self.text_free:
                # A text-free model was trained on its null caption alone; any prompt is ignored.
                y = self.transformer.y_embedder.y_embedding.detach()
                return TextEmbedding(y[None].float().cpu(), torch.ones(1, y.shape[0], dtype=torch.bool))
            raise OptionError("this pipeline has no text encoder; pass precomputed prompt embeddings")
        encoder = self._use(self.text_encoder)
        saved = encoder.instruction
        try:
            if instruction is not None:
                encoder.instruction = instruction
            return encoder.encode(str(prompt), negative=negative)
        finally:
            encoder.instruction = saved
            self._release(encoder)

    # -- conditioning helpers ------------------------------------------------------------------------
    def encode_first_frame(self, pil, geometry: CropGeometry) -> torch.Tensor:
        """The first latent frame ``(1, C, 1, h, w)`` on the compute device: ``pil`` (8-bit RGB) resized and
        cropped by ``geometry`` to the model's size, then encoded."""
        cropped = np.asarray(geometry.apply_to_image(pil), dtype=np.float32)
        pixels = torch.from_numpy(cropped).permute(2, 0, 1)[None, :, None] / 127.5 - 1.0  # (1, 3, 1, H, W)
        vae = self._use(self.vae)
        first = vae.encode(pixels).to(self.device)
        self._release(vae)
        return first

    def _standing_camera(self, traj: Trajectory, first: torch.Tensor, geometry: CropGeometry):
        """The camera-guidance negative: ``traj``'s intrinsics on a camera that never moves (``first``: the
        first latent frame, for the model's extra conditioning; ``geometry``: the input image's resize and
        crop)."""
        from sana_wm.samplers import Conditioning

        still = Trajectory(np.tile(np.eye(4), (traj.num_frames, 1, 1)), traj.intrinsics, traj.fps,
                           {"source": "camera guidance negative"})
        width, height = geometry.size
        camera = conditioning_from_trajectory(still, src_image_size=geometry.source, target_size=(height, width),
                                              temporal_stride=self.vae.temporal_stride,
                                              spatial_stride=self.vae.spatial_stride)
        return Conditioning(torch.zeros(1, 0), None, camera.camera_vector[None].to(self.device),
                            camera.plucker[None].to(self.device, self.transformer.dtype),
                            self._extra_conditioning(first, still, geometry))

    def _extra_conditioning(self, first: torch.Tensor, traj: Trajectory, geometry: CropGeometry):
        """What a model wrapper with an ``extra_conditioning`` hook (the bundled model) needs besides the
        prompt and camera, for ``traj`` (intrinsics for the input image before ``geometry``) from the first
        latent frame ``first``; None for the transformer itself."""
        hook = getattr(self.model, "extra_conditioning", None)
        if hook is None:
            return None
        intrinsics = torch.from_numpy(np.ascontiguousarray(geometry.apply_to(traj.intrinsics).values))
        c2w = torch.from_numpy(relative_poses(traj.c2w))
        vae = self._use(self.vae)
        extra = hook(vae, first, c2w[None], intrinsics[None].expand(1, traj.num_frames, 4))
        self._release(vae)
        return extra

    # -- generation ---------------------------------------------------------------------------------
    def __call__(self, image=None, trajectory: Trajectory | None = None, **options) -> GenerationResult:
        """``pipe(image=..., trajectory=..., **options)``: :meth:`generate` with the frames always returned
        (``result.frames``, uint8 ``(F, H, W, 3)``; ``result.video_path`` is None unless ``output`` was given).
        ``options`` are :class:`GenerationRequest`'s fields."""
        if image is None or trajectory is None:
            raise TypeError("pipe(image=..., trajectory=...) needs both the first frame and the camera path")
        options.setdefault("keep_frames", True)
        return self.generate(image, trajectory, **options)

    def generate(self, image, trajectory: Trajectory, **options) -> GenerationResult:
        """Generate a video from ``image`` following ``trajectory``; ``options`` are :class:`GenerationRequest`'s
        fields (see there). The stages: :meth:`plan` (settings that take effect), :meth:`prepare` (image,
        camera, text, first latent), :meth:`sample` -> :meth:`refine` -> :meth:`decode` (chunk by chunk when
        streaming, so frames reach the MP4 as they are made), then the sidecar. The refined video drops the
        decoded sink frame unless ``keep_sink_frame`` (module docstring)."""
        return self.run(GenerationRequest(image, trajectory, **options))

    def run(self, request: GenerationRequest) -> GenerationResult:
        """Generate what ``request`` asks for (:meth:`generate`)."""
        started = time.perf_counter()
        plan = self.plan(request)
        resume = load_resume_point(resume_path(request.output), device=self.device) if request.resume else None
        # A resumed CPU run takes the interrupted run's thread count: sums split otherwise would round otherwise.
        with cpu_threads(resume.threads if resume is not None and self.device.type == "cpu" else None):
            inputs = self.prepare(request, plan)
            record = self._record(request, plan, inputs) if request.output is not None else None
            if resume is not None:
                self._check_resume(resume, request, record)
                record = resume.record  # the run's own record: it also holds how the request was first spelled
            return self._run(request, plan, inputs, record, resume, started)

    def _run(self, request: GenerationRequest, plan: SamplingPlan, inputs: PreparedInputs,
             record: dict[str, Any] | None, resume: ResumePoint | None, started: float) -> GenerationResult:
        """Sample, refine, decode and write, then the sidecar (``record``); ``resume`` continues from a chunk.
        The three stages are chained through a :class:`~sana_wm.pipeline.overlap.StageSchedule`: on separate CUDA
        streams, the host up to ``OVERLAP_AHEAD`` chunks ahead, when ``plan.overlap``; else in order."""
        backend = overlap.backend_for(self.device) if plan.overlap else None
        schedule = overlap.StageSchedule(backend or overlap.INLINE, overlap.OVERLAP_AHEAD if backend else 0)
        to_host = schedule.backend.to_host
        saver = None
        if plan.resume_every:
            saver = _ResumeSaver(resume_path(request.output), plan.resume_every, record, resume,
                                 len(self._stream_chunks(inputs)), to_host)
        sink = _FrameSink(request, inputs, self.fps)
        stage1: list[torch.Tensor] = []
        latents: list[torch.Tensor] = []
        sampling_started, written = time.perf_counter(), []
        try:
            sampled = schedule.stage("stage1", self.sample(inputs, plan, seed=request.seed, progress=request.progress,
                                                           resume=resume, saver=saver))
            refined = schedule.stage("refiner", self.refine(sampled, inputs, plan, stage1, progress=request.progress,
                                                            to_host=to_host))
            for chunk in schedule.host(schedule.stage("decode", self.decode(refined, to_host=to_host))):
                sink.add(chunk.video)
                latents.append(chunk.latents)
                if saver is not None:
                    saver.written(sink)
                written.append(time.perf_counter())
        finally:
            sink.close()
        timing = chunk_timing(sampling_started, written)
        sidecar = None
        if request.output is not None:
            sidecar = publish_video(sink.writer.path, request.output, {**record, "timing": timing})
            resume_path(request.output).unlink(missing_ok=True)  # the video is complete
        return GenerationResult(sink.frames(), self.fps, inputs.num_frames - inputs.first_pose,
                                torch.cat(latents, dim=2), request.output, sidecar, time.perf_counter() - started,
                                torch.cat(stage1, dim=2) if stage1 else None, timing)

    def _stream_chunks(self, inputs: PreparedInputs) -> list[int]:
        from sana_wm.samplers.common import model_chunk_lengths

        return model_chunk_lengths(self.model, inputs.latent_frames)

    def _check_resume(self, point: ResumePoint, request: GenerationRequest, record: dict[str, Any]) -> None:
        """Refuse a resume file made for another request than the one ``record`` describes."""
        if point.request_hash != request_hash(record):
            differ = record_differences(point.record, record)
            raise ResumeError(f"{resume_path(request.output)} belongs to a run with other settings "
                              f"({', '.join(differ[:6]) or 'files'} differ); resume with the recorded settings "
                              f"(`sana-wm generate --resume {request.output}` alone) or generate the video again")

    def plan(self, request: GenerationRequest) -> SamplingPlan:
        """Resolve ``request``'s settings against the model's defaults; warn (:class:`OptionWarning`) about each
        given option that cannot take effect, and raise where the request cannot mean anything."""
        from sana_wm.samplers import SigmaSchedule

        variant = _check_variant(request.variant) or self.variant
        if variant != self.variant:
            raise OptionError(f"this pipeline holds {self.variant} weights; the {variant} variant needs its own "
                             f"weights (load them with from_pretrained(..., variant={variant!r}))")
        defaults = self.sampler_defaults(variant)
        steps = defaults.steps if request.steps is None else int(request.steps)
        cfg = defaults.cfg if request.cfg is None else float(request.cfg)
        shift = defaults.shift if request.shift is None else float(request.shift)
        camera_cfg = defaults.camera_cfg if request.camera_cfg is None else float(request.camera_cfg)
        prompt = DEFAULT_PROMPT if request.prompt is None else request.prompt
        negative = "" if request.negative_prompt is None else request.negative_prompt
        embeds = request.prompt_embeds
        if embeds is not None and self.text_free:
            _warn("{prompt_embeds} is ignored: this model takes no text (its config.yaml says text_encoder: none)")
            embeds = None
        if embeds is not None:
            self._check_stage1_embeds(embeds, request.instruction)
            prompt, negative = embeds.stage1, embeds.negative
        if self.text_free:
            # A text-free model was trained on its null caption alone: prompts and text guidance cannot act.
            if isinstance(request.prompt, str) and request.prompt not in ("", DEFAULT_PROMPT):
                _warn("{prompt} is ignored: this model takes no text (its config.yaml says text_encoder: none)")
            if isinstance(request.negative_prompt, str) and request.negative_prompt:
                _warn("{negative_prompt} is ignored: this model takes no text (its config.yaml says "
                      "text_encoder: none)")
            if request.cfg is not None and cfg != 1.0:
                _warn(f"{{cfg}} {cfg:g} is ignored: this model takes no text, so text guidance would compare the "
                      "same prediction with itself (its config.yaml says text_encoder: none)")
            cfg = 1.0
            prompt = negative = None
        elif cfg == 1.0:
            given_negative = request.negative_prompt if embeds is None else embeds.negative_prompt
            if isinstance(given_negative, str) and given_negative:
                _warn("{negative_prompt} is ignored: text guidance is off ({cfg} 1)")
            negative = None
        chunks = request.camera_cfg_chunks if request.camera_cfg_chunks is not None else defaults.camera_cfg_chunks
        if chunks is not None:
            chunks = guided_chunk_count(chunks, "camera_cfg_chunks")
        if request.camera_cfg_chunks is not None and camera_cfg == 1.0:
            _warn("{camera_cfg_chunks} is ignored: camera guidance is off ({camera_cfg} 1)")
        elif request.camera_cfg_chunks is not None and variant != "streaming":
            raise OptionError(f"{{camera_cfg_chunks}} limits guidance to the first chunks of a streamed video; the "
                              f"{variant} variant samples the whole clip at once, so leave it unset")
        if camera_cfg == 1.0 or variant != "streaming":
            chunks = None
        if camera_cfg != 1.0 and cfg != 1.0:
            raise OptionError(f"{{camera_cfg}} {camera_cfg:g} and text {{cfg}} {cfg:g} are both on; guidance takes "
                              "one unconditional branch, so set one of them to 1")
        if request.sigmas is not None:
            schedule = SigmaSchedule(torch.tensor(request.sigmas, dtype=torch.float32))
        elif defaults.timesteps is not None and steps == defaults.steps and shift == defaults.shift:
            schedule = SigmaSchedule.from_timesteps(defaults.timesteps)
        else:
            schedule = SigmaSchedule.shifted(steps, shift)

        refine = self.refiner is not None if request.refine is None else bool(request.refine)
        refiner, refiner_prompt = None, None
        if refine:
            refiner = self._refiner_settings(variant, request.refiner_settings, request.seed)
            refiner_prompt = prompt if request.refiner_prompt is None else request.refiner_prompt
            if embeds is not None:
                embeds.check_refiner(self.refiner.files)
                refiner_prompt = embeds.refiner
            if refiner_prompt is None:  # a text-free stage 1 still hands the refiner a prompt
                refiner_prompt = DEFAULT_PROMPT
        else:
            why = "no refiner is loaded" if self.refiner is None else "refine=False"
            given = request.refiner_settings
            keys = sorted(given) if isinstance(given, dict) else (["refiner_settings"] if given is not None else [])
            for key in keys:
                name = key if key == "refiner_settings" else f"refiner_settings.{key}"
                _warn(f"{{{name}}} is ignored: {why}")
            if request.refiner_prompt is not None:
                _warn(f"{{refiner_prompt}} is ignored: {why}")
        resume_every = self._resume_every(request, variant, refiner)
        return SamplingPlan(schedule.num_steps, cfg, shift, schedule, camera_cfg, chunks, refiner, prompt, negative,
                            refiner_prompt, resume_every, embeds, self._overlap(request, variant))

    def _overlap(self, request: GenerationRequest, variant: str) -> bool | None:
        """Whether the stages run on separate CUDA streams; None where that cannot take effect (warned about when
        ``request.overlap`` was given)."""
        why = None
        if variant != "streaming":
            why = f"the {variant} variant makes the whole video at once, so there are no chunks to overlap"
        elif overlap.backend_for(self.device) is None:
            why = f"the stages overlap on CUDA streams only, and this pipeline runs on the {self.device.type}"
        if why is not None:
            if request.overlap is not None:
                _warn(f"{{overlap}} does not take effect: {why}")
            return None
        return True if request.overlap is None else bool(request.overlap)

    def _check_stage1_embeds(self, embeds: PromptEmbeds, instruction: str | None) -> None:
        """Refuse prompt embeddings of another text encoder, instruction prefix or width."""
        if instruction is None:
            instruction = self.text_encoder.instruction if self.text_encoder is not None else default_instruction()
        channels = self.transformer.config.caption_channels
        if self.files is None:  # a pipeline built by hand: only the width can be checked
            embeds.check_stage1(embeds.stage1_encoder, embeds.stage1_fingerprint, instruction, channels)
            return
        encoder = str(self.files.text_encoder)
        embeds.check_stage1(encoder, encoder_fingerprint(encoder), instruction, channels)

    def _resume_every(self, request: GenerationRequest, variant: str, refiner: RefinerSettings | None) -> int:
        """How often the run saves a resume file (0: never); raises when ``request.resume`` cannot work."""
        why = None
        if variant != "streaming":
            why = (f"the {variant} variant samples the whole video at once, so a run cannot be continued part-way "
                   "(only streaming runs can)")
        elif refiner is not None:
            why = "the refiner's stream state is not saved, so a run with the refiner cannot be continued"
        elif "stage1" in self.quantization and self.quantization["stage1"].stochastic_rounding:
            why = "the stochastic rounding of the nvfp4 stage 1 is not saved, so a run with it cannot be continued"
        if why is not None:
            if request.resume:
                raise OptionError(f"{{resume}}: {why}; generate the video again")
            if request.resume_every is not None:
                _warn(f"{{resume_every}} is ignored: {why}")
            return 0
        if request.output is None:
            if request.resume_every is not None:
                _warn("{resume_every} is ignored: the resume file goes next to the video, and no {output} is given")
            return 0
        return DEFAULT_RESUME_EVERY if request.resume_every is None else int(request.resume_every)

    def prepare(self, request: GenerationRequest, plan: SamplingPlan) -> PreparedInputs:
        """The image (cropped to the model size and encoded to the first latent frame), the camera path (fitted
        to the frame count, with intrinsics) as camera conditioning, the text states and the guidance branch."""
        from sana_wm.samplers import Conditioning, Guidance

        pil, image_path = self._load_image(request.image)
        src_w, src_h = pil.size
        trajectory = request.trajectory
        requested = trajectory.num_frames if request.num_frames is None else int(request.num_frames)
        if request.num_frames is None and trajectory.num_frames < 2:
            raise TrajectoryError("the camera trajectory has a single pose; give num_frames and extend='hold'")
        n = self.snap_num_frames(requested)
        if trajectory.num_frames < n and request.extend == "error":
            most = trajectory.num_frames
            try:
                fewer = f"ask for at most {self.snap_num_frames(most)} frames (--num-frames)"
            except TrajectoryError:
                fewer = "use a longer trajectory"
            raise TrajectoryError(
                f"the camera trajectory has {most} frames but {n} are needed for the requested {requested}; "
                f"{fewer}, or extend it (--extend hold repeats the last pose, --extend resample stretches it)")
        if n < requested:
            grid = "24k+1" if self.variant == "streaming" else "8k+1"
            asked = "{num_frames} " + str(requested) if request.num_frames is not None \
                else f"the camera path's {requested} poses"
            up = self._next_frame_count(requested)
            _warn(f"{asked}: the {self.variant} variant makes {grid} frames, so the video has {n} "
                  f"({requested - n} dropped); ask for {{num_frames}} {up} with {{extend}} hold to keep them all")
        traj = fit_to_frames(trajectory, n, extend=request.extend)
        fov = None
        if traj.intrinsics is None:
            fov = DEFAULT_FOV_DEG if request.fov is None else float(request.fov)
            traj = traj.with_intrinsics(Intrinsics.from_fov(fov, src_w, src_h, traj.num_frames))
        elif request.fov is not None:
            _warn("{fov} is ignored: the camera path has its own intrinsics")
        H, W = self.image_size
        geometry = center_crop_geometry(src_w, src_h, target_w=W, target_h=H)
        camera = conditioning_from_trajectory(traj, src_image_size=(src_w, src_h), target_size=(H, W),
                                              temporal_stride=self.vae.temporal_stride,
                                              spatial_stride=self.vae.spatial_stride)
        T = self.vae.num_latent_frames(n)
        if request.memory_check:
            self.check_memory(n, guided=plan.cfg != 1.0 or plan.camera_cfg != 1.0, refine=plan.refiner is not None,
                              keep_frames=request.keep_frames or request.output is None,
                              refiner_kv_frames=plan.refiner.kv_max_frames if plan.refiner is not None else 11)

        refiner_text = self._refiner_text(plan.refiner_prompt) if plan.refiner is not None else None
        text = self._text(plan.prompt, False, request.instruction)
        negative = self._text(plan.negative_prompt, True, request.instruction) if plan.cfg != 1.0 else None
        first = self.encode_first_frame(pil, geometry)

        model_dtype = self.transformer.dtype
        cond = Conditioning(text.embeds.to(self.device, model_dtype), text.mask.to(self.device),
                            camera.camera_vector[None].to(self.device),
                            camera.plucker[None].to(self.device, model_dtype),
                            self._extra_conditioning(first, traj, geometry))
        guidance = None
        if negative is not None:
            guidance = Guidance(plan.cfg, negative.embeds.to(self.device, model_dtype), negative.mask.to(self.device))
        elif plan.camera_cfg != 1.0:
            guidance = Guidance(plan.camera_cfg, negative_camera=self._standing_camera(traj, first, geometry),
                                chunks=plan.camera_cfg_chunks)

        # The refined video starts after the sink's decoded frames (released behaviour), unless kept.
        first_pose = 0
        if plan.refiner is not None and not plan.refiner.keep_sink_frame:
            first_pose = self.vae.num_video_frames(plan.refiner.sink_frames)
        held = None
        if request.action is not None and request.overlay_actions:
            from sana_wm.camera.actions import per_frame_keys

            keys = per_frame_keys(request.action)
            held = [frozenset()] + [keys[min(i, len(keys) - 1)] for i in range(n - 1)]
        return PreparedInputs(pil, image_path, traj, requested, n, T, fov, first, cond, guidance, refiner_text,
                              first_pose, held)

    def sample(self, inputs: PreparedInputs, plan: SamplingPlan, *, seed: int, progress: bool = False,
               resume: ResumePoint | None = None, saver: _ResumeSaver | None = None) -> Iterator[torch.Tensor]:
        """Stage 1: the latent video ``(1, C, T, h, w)``, yielded chunk by chunk by the streaming variant and
        whole by the others. Streaming, ``resume`` first yields the chunks it stored, then continues from its
        position; ``saver`` is told of each new chunk (its cache and the generator's state)."""
        from sana_wm.samplers import chunk_causal_sample, euler_sample, stream_sample
        from sana_wm.samplers.common import model_chunk_lengths

        generator = torch.Generator(device="cpu").manual_seed(int(seed))  # same noise on every device
        if self.variant != "streaming":
            sample = euler_sample if self.variant == "bidirectional" else chunk_causal_sample
            yield sample(self.model, inputs.cond, inputs.first_latent, inputs.latent_frames, plan.schedule,
                         guidance=inputs.guidance, generator=generator, progress=progress).latents
            return
        start_chunk, cache = 0, None
        if resume is not None:
            lengths = model_chunk_lengths(self.model, inputs.latent_frames)
            done = sum(lengths[:resume.next_chunk])
            if resume.next_chunk > len(lengths) or resume.latents.shape[2] != done:
                raise ResumeError(f"the resume file stores {resume.latents.shape[2]} latent frames at chunk "
                                  f"{resume.next_chunk} of {len(lengths)}; expected {done}: it is damaged")
            generator.set_state(resume.generator_state)
            start_chunk, cache = resume.next_chunk, resume.cache
            for stored in resume.latents.split(lengths[:start_chunk], dim=2):  # decoded again, as sampled
                yield stored.to(self.device)
        bar = _chunk_bar(progress, inputs.latent_frames)
        if bar is not None and start_chunk:
            bar.update(resume.latents.shape[2])
        try:
            for chunk in stream_sample(self.model, inputs.cond, inputs.first_latent, inputs.latent_frames,
                                       plan.schedule, guidance=inputs.guidance, generator=generator, progress=False,
                                       start_chunk=start_chunk, cache=cache):
                if saver is not None:
                    saver.sampled(chunk, generator)
                yield chunk.latents
                if bar is not None:
                    bar.update(chunk.latents.shape[2])
        finally:
            if bar is not None:
                bar.close()

    def refine(self, chunks: Iterable[torch.Tensor], inputs: PreparedInputs, plan: SamplingPlan,
               stage1: list[torch.Tensor], *, progress: bool = False,
               to_host: Callable[[torch.Tensor], torch.Tensor] = torch.Tensor.cpu) -> Iterator[torch.Tensor]:
        """Stage 2 over stage 1's ``chunks`` (passed through without a refiner): each chunk as soon as the
        refiner's window allows when streaming, else the whole video. Stage 1's latents are appended to
        ``stage1`` (copied to the host by ``to_host``) when the refiner runs."""
        if plan.refiner is None:
            yield from chunks
            return
        if self.variant != "streaming":
            for latents in chunks:  # with offload, the refiner comes to the device after stage 1 is done
                stage1.append(to_host(latents))
                refined = self._use(self.refiner).refine(latents, inputs.refiner_text, fps=self.fps,
                                                         settings=plan.refiner, seed=plan.refiner.seed,
                                                         progress=progress)
                self._release(self.refiner)  # before the decoder needs the memory
                yield refined
            return
        stream = self._use(self.refiner).stream(inputs.refiner_text, fps=self.fps, settings=plan.refiner,
                                                seed=plan.refiner.seed, num_frames=inputs.latent_frames)
        for latents in chunks:
            stage1.append(to_host(latents))
            ready = stream.push(latents)
            if ready is not None:
                yield ready
        tail = stream.finish()
        if tail is not None:
            yield tail
        self._release(self.refiner)

    def decode(self, latents: Iterable[torch.Tensor], *,
               to_host: Callable[[torch.Tensor], torch.Tensor] = torch.Tensor.cpu) -> Iterator[DecodedChunk]:
        """Decode ``latents`` as they come (the streaming variant's causal decoder carries its state from chunk to
        chunk); yields each chunk's latents and frames, copied to the host by ``to_host``."""
        decoder = None
        for chunk in latents:
            vae = self._use(self.vae)
            if self.variant == "streaming":
                decoder = decoder or vae.stream_decoder()
                video = decoder.decode_chunk(chunk)
            else:
                video = vae.decode(chunk)
            yield DecodedChunk(to_host(chunk), to_host(video))
        self._release(self.vae)

    def _next_frame_count(self, num_frames: int) -> int:
        """The smallest frame count on this variant's grid that is at least ``num_frames``."""
        stride = self.vae.temporal_stride * (STREAM_CHUNK_FRAMES if self.variant == "streaming" else 1)
        return 1 + stride * -(-(num_frames - 1) // stride)

    def _refiner_settings(self, variant: str, settings: RefinerSettings | dict | None, seed: int) -> RefinerSettings:
        if self.refiner is None:
            raise OptionError("no refiner is loaded: load one with SanaWMPipeline.from_pretrained(..., refiner=...) "
                             "or generate with refine=False")
        if isinstance(settings, RefinerSettings):
            resolved = settings
        else:
            resolved = RefinerSettings.for_variant(variant, **(settings or {}))
        if resolved.seed is None:
            resolved = resolved.replace(seed=int(seed))
        if variant == "streaming" and resolved.mode != "streaming":
            raise OptionError("the streaming variant refines each chunk as it is sampled: use the refiner's "
                             "'streaming' mode (bidirectional refinement needs the whole video first)")
        return resolved

    def _refiner_text(self, prompt: str | TextEmbedding) -> TextEmbedding:
        if isinstance(prompt, TextEmbedding):
            return prompt
        if str(prompt).endswith(".safetensors"):
            raise OptionError(f"the refiner encodes its prompt with its own Gemma-3 encoder and cannot reuse the "
                             f"stage-1 embedding {prompt}; pass refiner_prompt= (the prompt text or a refiner "
                             "TextEmbedding)")
        encoder = self._use(self.refiner.text_encoder)
        try:
            return self.refiner.encode_prompt(str(prompt))
        finally:
            self._release(encoder)

    def _precision(self, model: str) -> str:
        report = self.quantization.get(model)
        return "bf16" if report is None else report.precision

    def _record(self, request: GenerationRequest, plan: SamplingPlan, inputs: PreparedInputs) -> dict[str, Any]:
        """The sidecar: the settings that took effect (None for options that could not act), the inputs and the
        model files, enough for :func:`~sana_wm.pipeline.sidecar.regenerate_from_sidecar`."""
        from sana_wm import __version__

        image: dict[str, Any] = {"size": list(inputs.image.size)}
        if inputs.image_path is not None:
            image.update(path=str(inputs.image_path.resolve()), sha256=sha256_file(inputs.image_path))
        model: dict[str, Any] = {"variant": self.variant}
        if self.files is not None:
            f = self.files
            hashed = request.hash_weights
            vae_files = sorted(f.vae.glob("*.safetensors"))
            model.update(source=f.source, root=str(f.root), dit=file_fingerprint(f.dit, hash_contents=hashed),
                         vae_dir=str(f.vae), vae=[file_fingerprint(p, hash_contents=hashed) for p in vae_files],
                         text_encoder=f.text_encoder, config=f.settings)
        if plan.refiner is not None and self.refiner.files is not None:
            model["refiner"] = self.refiner.files.fingerprint(hash_contents=request.hash_weights)
        encoder = self.text_encoder
        refiner_prompt = None if plan.refiner is None or request.refiner_prompt is None else plan.refiner_prompt
        embeds = plan.prompt_embeds
        prompt, negative = _text_field(plan.prompt), _text_field(plan.negative_prompt)
        if embeds is not None:  # the texts the states were encoded from: regenerating encodes them again
            prompt, negative = embeds.prompt, None if plan.negative_prompt is None else embeds.negative_prompt
        instruction_sha = None if encoder is None else _sha(request.instruction or encoder.instruction)
        return {
            "sana_wm_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "prompt": prompt,
            "negative_prompt": negative,
            "seed": int(request.seed),
            "num_frames": inputs.num_frames,
            "requested_frames": inputs.requested_frames,
            "video_frames": inputs.num_frames - inputs.first_pose,
            "first_pose": inputs.first_pose,
            "fps": self.fps,
            "image": image,
            "model": model,
            "action": request.action,
            "trajectory": trajectory_to_dict(inputs.trajectory),
            "settings": {
                "variant": self.variant, "steps": plan.steps, "cfg": plan.cfg, "shift": plan.shift,
                "sigmas": [float(s) for s in plan.schedule.sigmas.tolist()], "fov": inputs.fov,
                "extend": request.extend, "image_size": list(self.image_size),
                "dtype": str(self.transformer.dtype).removeprefix("torch."), "offload": self.offload,
                "device": str(self.device), "overlay_actions": bool(request.overlay_actions),
                "instruction": request.instruction,
                "instruction_sha256": embeds.instruction_sha256 if embeds is not None else instruction_sha,
                "text_encoder_id": embeds.stage1_encoder if embeds is not None else (
                    None if encoder is None else encoder.model_id),
                "prompt_embeds": None if embeds is None else embeds.meta(),
                "text_encoder_dtype": embeds.text_encoder_dtype if embeds is not None else (
                    None if encoder is None else _dtype_name(encoder.model.dtype)),
                "camera_cfg": plan.camera_cfg, "camera_cfg_chunks": plan.camera_cfg_chunks,
                "refiner": None if plan.refiner is None else plan.refiner.to_dict(),
                "stage1_precision": self._precision("stage1"),
                "refiner_precision": None if plan.refiner is None else self._precision("refiner"),
                "refiner_offload": None if plan.refiner is None else (
                    "blocks" if self.refiner.transformer.offloaded else "resident"),
                "memory_plan": self.memory_plan,
                "quantization": {name: report.to_dict() for name, report in self.quantization.items()
                                 if report.precision != "bf16" and (name == "stage1" or plan.refiner is not None)},
                "refiner_prompt": None if refiner_prompt is None else _text_field(refiner_prompt),
                "overlap": plan.overlap,
                "compile": True if self.compiled else None,
            },
        }


def _dtype_name(dtype: torch.dtype) -> str:
    """A text encoder's dtype as ``--text-encoder-dtype`` names it (an encoder built by hand may have another)."""
    return next((name for name, d in TEXT_ENCODER_DTYPES.items() if d == dtype), str(dtype).removeprefix("torch."))


def _text_field(prompt) -> str | None:
    if prompt is None:
        return None
    return prompt if isinstance(prompt, str) else "<precomputed embedding>"


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunk_bar(progress: bool, total_latent_frames: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total_latent_frames, desc="streaming (latent frames)", unit="frame",
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
