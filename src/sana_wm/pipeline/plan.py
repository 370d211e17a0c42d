"""The memory planner: the settings under which a generation fits a GPU memory budget, best first.

A model is described by :class:`ModelSizes`, read from its configs without loading a weight: the transformers
are built on the meta device (their GEMM shapes, split by the quantization rules into what a precision shrinks
and what stays), the VAE and the text encoders are counted from their files' headers (or, for the release, the
published parameter counts). For a :class:`PlanRequest` (budget, variant, length, refiner, guidance, the GPU's
compute capability, the settings the user fixed) :func:`plan_generation` enumerates the candidate
:class:`Setting` s: precision per transformer (what the GPU can run), the text encoders run first on the GPU or
on the CPU (or not at all, with ``--prompt-embeds``), the refiner resident or moved in block by block, the
refiner's K/V window (11 frames released, 2 saves memory with more flicker). Each gets a
:class:`~sana_wm.pipeline.memory.MemoryEstimate` from the same per-component model the pipeline checks before
sampling (:mod:`sana_wm.pipeline.memory`), with weights at the quantized formats' packed sizes
(:func:`sana_wm.quant.formats.stored_weight_bytes`).

Ranking: settings that fit, then those whose weight transfers alone do not make them slower than real time, then
quality, then speed. Quality is the measured order of the CPU emulation (``docs/benchmarks.md``, "Low precision"):
bf16, then int8 / fp8, then int4, then nvfp4; the 2-frame K/V window costs as much as one such step. A precision
in :data:`NOT_A_DEFAULT` (its camera error rose by more than 10% against the unquantized bundled model) is never
chosen on its own, only when the user sets it. Speed is not invented: the one cost modelled is the time to move
offloaded weights over PCIe at an assumed :data:`PCIE_BYTES_PER_S`; precisions are not ranked by speed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

import torch
from torch import nn

from sana_wm.errors import LimitError
from sana_wm.pipeline.errors import OptionError
from sana_wm.pipeline.memory import (
    FIRST,
    LOADED,
    SAMPLE,
    GenerationShape,
    MemoryComponent,
    MemoryEstimate,
    runtime_bytes,
    shape_components,
)

__all__ = ["NOT_A_DEFAULT", "PCIE_BYTES_PER_S", "MemoryPlan", "ModelSizes", "NothingFitsError", "PlanRequest",
           "PlanRow", "Setting", "TransformerSizes", "host_text_encoder_bytes", "model_sizes", "official_sizes",
           "plan_generation"]

GIB = 2**30
# Host-to-device copies from pinned memory over PCIe 4.0 x16 reach about 25 GB/s; an assumption (PCIe 5.0 doubles
# it), used only for the time offloaded weights spend moving.
PCIE_BYTES_PER_S = 25e9
# The measured quality order of the precisions (docs/benchmarks.md, "Low precision"): relative error of one
# stage-1 step at the released shapes bf16 1%, int8 1%, fp8 4%, int4 9%, nvfp4 15-22%.
PRECISION_COST = {"bf16": 0, "int8": 1, "fp8": 1, "int4": 2, "nvfp4": 3}
KV_WINDOWS = (11, 2)  # the release's window (1 sink + 10 frames) and its low-memory one (more flicker)
WINDOW_COST = {11: 0, 2: 1}
# Precisions whose camera error (RotErr or TransErr_rel, mean over the clips) rose by more than 10% against the
# unquantized bundled model in the paired evaluation of docs/benchmarks.md (24 clips): not chosen unless asked
# for. None did: fp8 -10%/-12%, int8 -3%/+3%, int4 -8%/-8%, nvfp4 -21%/-17% (PSNR within 0.02 dB).
NOT_A_DEFAULT: frozenset[str] = frozenset()
REFINER_OFFLOAD = ("resident", "blocks")
# Published parameter counts of the released text encoders, used when their files are not on this machine.
GEMMA2_2B_PARAMS = 2_614_341_888
GEMMA3_12B_PARAMS = 12_187_325_040
_REFINER_STEPS = 3  # the refiner's SDEdit steps: each moves every offloaded block in once per chunk
_VIDEO_SECONDS_PER_CHUNK = 3 * 8 / 16.0  # a streaming chunk: 3 latent frames of 8 video frames at 16 fps


# -- what a model is made of --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformerSizes:
    """A transformer's parameters as memory sees them: the GEMM weights its quantization rules quantize, as
    ``(out, in)`` shapes, and every other element (biases, kept GEMMs, norms, embedders, buffers)."""

    gemms: tuple[tuple[int, int], ...]
    gemm_bias: int
    other: int
    blocks: int = 1  # repeated blocks, for moving them in one at a time
    block_share: float = 1.0  # fraction of the quantized GEMMs' and the other elements that sit in the blocks

    @property
    def params(self) -> int:
        return sum(n * k for n, k in self.gemms) + self.gemm_bias + self.other

    def weight_bytes(self, precision: str, *, dtype_bytes: int = 2, stored: str = "packed") -> int:
        """Bytes of the weights at ``precision`` ("bf16": unquantized, ``dtype_bytes`` each): the quantized GEMMs
        packed as a kernel stores them, or ``stored="emulated"`` as the CPU emulation does (dequantized float32,
        with float32 biases); everything else at ``dtype_bytes``."""
        from sana_wm.quant.formats import stored_weight_bytes

        if precision == "bf16":
            return self.params * dtype_bytes
        if stored == "emulated":
            gemm = 4 * (sum(n * k for n, k in self.gemms) + self.gemm_bias)
        else:
            gemm = sum(stored_weight_bytes(precision, n, k) for n, k in self.gemms) + self.gemm_bias * dtype_bytes
        return gemm + self.other * dtype_bytes

    def block_bytes(self, precision: str, *, dtype_bytes: int = 2) -> int:
        """Bytes of one repeated block at ``precision`` (the blocks are alike)."""
        return math.ceil(self.block_share * self.weight_bytes(precision, dtype_bytes=dtype_bytes) / self.blocks)

    @classmethod
    def of(cls, module: nn.Module, rules, block_list: str | None = None) -> TransformerSizes:
        """From a module (built on the meta device: only shapes are read) and its rule set."""
        from sana_wm.quant.rules import classify

        quantized, _ = classify(module, rules)
        gemms, bias, seen = [], 0, set()
        for path in quantized:
            m = module.get_submodule(path)
            gemms.append((int(m.weight.shape[0]), int(m.weight[0].numel())))  # a 1x1 conv's (out, in, 1, 1) too
            seen.add(id(m.weight))
            if m.bias is not None:
                bias += m.bias.numel()
                seen.add(id(m.bias))
        other = sum(t.numel() for t in (*module.parameters(), *module.buffers()) if id(t) not in seen)
        blocks, share = 1, 1.0
        if block_list is not None:
            listed = module.get_submodule(block_list)
            blocks = len(listed)
            total = sum(t.numel() for t in (*module.parameters(), *module.buffers()))
            share = sum(t.numel() for t in listed.parameters()) / total
        return cls(tuple(gemms), int(bias), int(other), blocks, share)


@dataclass(frozen=True)
class ModelSizes:
    """What the planner knows of a model: its transformers' sizes and shapes, the other parts' parameter counts
    and the video geometry."""

    name: str
    stage1: TransformerSizes
    stage1_config: object  # SanaWMConfig
    vae_params: int
    conv_decoder: bool  # an LTX-2 convolutional decoder (else a linear codec)
    text_encoder_params: int  # 0: a model that takes no text
    image_hw: tuple[int, int]
    latent_channels: int
    spatial_stride: int = 32
    temporal_stride: int = 8
    fps: float = 16.0
    refiner: TransformerSizes | None = None
    refiner_layers: int = 0
    refiner_hidden: int = 0
    refiner_text_encoder_params: int = 0

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.image_hw[0] // self.spatial_stride, self.image_hw[1] // self.spatial_stride

    def latent_frames(self, num_frames: int) -> int:
        return 1 + (num_frames - 1) // self.temporal_stride


def _meta_stage1(config) -> TransformerSizes:
    from sana_wm.model import SanaWMTransformer
    from sana_wm.quant.rules import STAGE1_RULES

    with torch.device("meta"):
        model = SanaWMTransformer(config)
    return TransformerSizes.of(model, STAGE1_RULES, "blocks")


def _meta_refiner(config: Mapping | None) -> tuple[TransformerSizes, int, int]:
    """The refiner transformer (diffusers' default LTX-2 size: the release's, or ``config``), audio dropped."""
    from diffusers import LTX2VideoTransformer3DModel

    from sana_wm.model.refiner import RefinerTransformer
    from sana_wm.quant.rules import REFINER_RULES

    with torch.device("meta"):
        raw = LTX2VideoTransformer3DModel() if config is None else LTX2VideoTransformer3DModel.from_config(config)
    refiner = RefinerTransformer(raw)
    c = refiner.config
    sizes = TransformerSizes.of(refiner.model, REFINER_RULES, "transformer_blocks")
    return sizes, int(c.num_layers), int(c.num_attention_heads * c.attention_head_dim)


@cache
def official_sizes() -> ModelSizes:
    """The released streaming/bidirectional model: ``official-2.6b``, the LTX-2 refiner and VAE at diffusers'
    default (released) sizes on the meta device, Gemma-2-2B and Gemma-3-12B by their published counts."""
    from diffusers import AutoencoderKLLTX2Video

    from sana_wm.camera.conditioning import DEFAULT_TARGET_SIZE
    from sana_wm.model import get_config

    config = get_config("official-2.6b")
    with torch.device("meta"):
        vae = AutoencoderKLLTX2Video()
    refiner, layers, hidden = _meta_refiner(None)
    return ModelSizes("official", _meta_stage1(config), config, sum(p.numel() for p in vae.parameters()), True,
                      GEMMA2_2B_PARAMS, tuple(DEFAULT_TARGET_SIZE), int(vae.config.latent_channels),
                      refiner=refiner, refiner_layers=layers, refiner_hidden=hidden,
                      refiner_text_encoder_params=GEMMA3_12B_PARAMS)


def _file_elements(folder: Path) -> int | None:
    """Elements of every tensor in ``folder``'s ``*.safetensors`` files, from their headers (no data read)."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 -- safe_open has keys(), not iteration
                total += math.prod(f.get_slice(key).get_shape())
    return total


def model_sizes(files, refiner_files=None) -> ModelSizes:
    """The sizes of a resolved model (:class:`~sana_wm.pipeline.pipeline.ModelFiles`) and optional refiner
    (:class:`~sana_wm.pipeline.refiner.RefinerFiles`), from their configs and file headers."""
    from sana_wm.camera.conditioning import DEFAULT_TARGET_SIZE
    from sana_wm.pipeline.pipeline import TEXT_FREE, _transformer_config

    config = _transformer_config(files.settings, files.root)
    vae_config = json.loads((Path(files.vae) / "config.json").read_text())
    conv = vae_config.get("_class_name", "AutoencoderKLLTX2Video") == "AutoencoderKLLTX2Video"
    vae_params = _file_elements(files.vae)
    if vae_params is None:
        raise OptionError(f"{{model}} {files.source}: no weights in its VAE folder {files.vae}")
    text = 0
    if files.text_encoder != TEXT_FREE:
        text = _file_elements(Path(files.text_encoder)) or GEMMA2_2B_PARAMS
    sizes = ModelSizes(str(files.source), _meta_stage1(config), config, vae_params, conv, text,
                       tuple(files.settings.get("image_size", DEFAULT_TARGET_SIZE)),
                       int(vae_config.get("latent_channels", config.in_channels)),
                       # LTX-2 states its stride; a patch codec's stride is its patch
                       spatial_stride=int(vae_config.get("spatial_compression_ratio")
                                          or vae_config.get("patch_size") or 32),
                       temporal_stride=int(vae_config.get("temporal_compression_ratio", 8)),
                       fps=float(files.settings.get("fps", 16.0)))
    if refiner_files is None:
        return sizes
    refiner_config = json.loads((Path(refiner_files.transformer) / "config.json").read_text())
    refiner, layers, hidden = _meta_refiner(refiner_config)
    encoder = _file_elements(refiner_files.text_encoder) or GEMMA3_12B_PARAMS
    return replace(sizes, refiner=refiner, refiner_layers=layers, refiner_hidden=hidden,
                   refiner_text_encoder_params=encoder + (_file_elements(refiner_files.connectors) or 0))


# -- settings and the request -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One way to run: precision per transformer, where the text encoders run, how the refiner is held."""

    stage1_precision: str = "bf16"
    refiner_precision: str | None = None  # None: no refiner
    text_encoders: str = "gpu"  # "gpu" / "cpu": run first there and freed; "embeds": not run (--prompt-embeds)
    refiner_offload: str | None = None  # REFINER_OFFLOAD
    refiner_kv_frames: int | None = None  # the streaming refiner's K/V window

    def describe(self) -> str:
        words = [f"stage 1 {self.stage1_precision}"]
        if self.refiner_precision is not None:
            held = "block by block" if self.refiner_offload == "blocks" else "resident"
            window = f", K/V {self.refiner_kv_frames}" if self.refiner_kv_frames else ""
            words.append(f"refiner {self.refiner_precision} {held}{window}")
        words.append({"gpu": "text encoders on the GPU first", "cpu": "text encoders on the CPU first",
                      "embeds": "prompt embeds given"}[self.text_encoders])
        return ", ".join(words)

    def flags(self) -> list[str]:
        """The ``generate`` flags of this setting."""
        out = ["--stage1-precision", self.stage1_precision]
        if self.refiner_precision is not None:
            out += ["--refiner-precision", self.refiner_precision]
            if self.refiner_offload == "blocks":
                out += ["--refiner-offload", "blocks"]
            if self.refiner_kv_frames:
                out += ["--refiner-kv-max-frames", str(self.refiner_kv_frames)]
        if self.text_encoders == "cpu":
            out += ["--text-encoder-device", "cpu"]
        return out


@dataclass(frozen=True)
class PlanRequest:
    """What to plan for. ``fixed``: the :class:`Setting` fields the user set (they are not varied).
    ``capability``: the GPU's compute capability (what precisions it runs); ``budget_bytes``: its memory."""

    budget_bytes: int
    variant: str = "streaming"
    num_frames: int = 961
    refiner: bool = True
    guided: bool = False
    capability: tuple[int, int] = (9, 0)
    fixed: Mapping[str, object] = field(default_factory=dict)
    # bytes per text-encoder weight, on the GPU or the host: bf16 unless --text-encoder-dtype fp32
    # (sana_wm.pipeline.text.text_encoder_dtype)
    text_encoder_bytes: int = 2

    def __post_init__(self) -> None:
        unknown = set(self.fixed) - {f for f in Setting.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown plan settings {sorted(unknown)}")


@dataclass(frozen=True)
class PlanRow:
    """One candidate setting with its estimate."""

    setting: Setting
    estimate: MemoryEstimate
    budget_bytes: int
    transfer_s_per_chunk: float  # weights moved over PCIe (PCIE_BYTES_PER_S) per streaming chunk, else per video
    default_ok: bool  # no precision of NOT_A_DEFAULT unless the user set it
    host_bytes: int = 0  # host memory of the text encoders when they run on the CPU (host_text_encoder_bytes)
    streaming: bool = True  # a streaming run: its transfers recur every chunk, against the chunk's video

    @property
    def peak_bytes(self) -> int:
        return self.estimate.peak_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.budget_bytes

    @property
    def missing_bytes(self) -> int:
        return max(0, self.peak_bytes - self.budget_bytes)

    @property
    def realtime_possible(self) -> bool:
        """False when moving offloaded weights alone takes longer than the video a streaming chunk makes (a
        bidirectional or chunk-causal run moves each block once per refiner step for the whole video, and has no
        real time to keep)."""
        return not self.streaming or self.transfer_s_per_chunk <= _VIDEO_SECONDS_PER_CHUNK

    @property
    def quality_cost(self) -> tuple[int, int]:
        """(the worst, the sum) of the measured quality steps of this setting's choices: 0 is the release's."""
        s = self.setting
        costs = [PRECISION_COST[s.stage1_precision]]
        if s.refiner_precision is not None:
            costs.append(PRECISION_COST[s.refiner_precision])
            costs.append(WINDOW_COST.get(s.refiner_kv_frames or 11, 1))
        return max(costs), sum(costs)

    def speed(self) -> str:
        """The speed class, in words."""
        parts = []
        if self.transfer_s_per_chunk:
            per = f"per {_VIDEO_SECONDS_PER_CHUNK:g} s chunk" if self.streaming else "for the whole video"
            parts.append(f"+{self.transfer_s_per_chunk:.1f} s {per} moving weights (PCIe "
                         f"{PCIE_BYTES_PER_S / 1e9:g} GB/s assumed)")
        if self.setting.text_encoders == "cpu":
            parts.append("prompt encoded on the CPU once (minutes for Gemma-3-12B)")
        return "; ".join(parts) or "no weight transfers"

    def stage_peaks(self) -> dict[str, int]:
        return self.estimate.stage_peaks()

    def largest(self, n: int = 3) -> list[MemoryComponent]:
        return sorted(self.estimate.components, key=lambda c: -c.bytes)[:n]

    def to_dict(self) -> dict:
        return {"setting": asdict(self.setting), "flags": self.setting.flags(), "peak_gib": self.peak_bytes / GIB,
                "fits": self.fits, "missing_gib": self.missing_bytes / GIB,
                "stage_peaks_gib": {k: v / GIB for k, v in self.stage_peaks().items()},
                "components_gib": {f"{c.name} ({c.stage})": c.bytes / GIB for c in self.estimate.components},
                "quality_cost": list(self.quality_cost), "transfer_s_per_chunk": self.transfer_s_per_chunk,
                "speed": self.speed(), "default_ok": self.default_ok, "host_peak_gib": self.host_bytes / GIB}


def _rank_key(row: PlanRow):
    return (not row.fits, not row.realtime_possible, not row.default_ok, row.quality_cost,
            row.transfer_s_per_chunk, row.setting.text_encoders == "cpu", row.peak_bytes)


@dataclass(frozen=True)
class MemoryPlan:
    """Every candidate, ranked (:func:`_rank_key`): the chosen one first."""

    request: PlanRequest
    model: str
    rows: tuple[PlanRow, ...]

    @property
    def chosen(self) -> PlanRow | None:
        """The best setting that fits and may be a default (None: none does). Not always the first row: one that
        must be asked for ranks before a default one whose weight transfers rule out real time."""
        return next((row for row in self.rows if row.fits and row.default_ok), None)

    @property
    def fitting(self) -> list[PlanRow]:
        return [row for row in self.rows if row.fits]

    @property
    def nearest(self) -> PlanRow:
        """The setting that misses the budget by least (the chosen one when one fits)."""
        return min(self.rows, key=lambda r: (r.missing_bytes, _rank_key(r)))

    def to_dict(self) -> dict:
        chosen = self.chosen
        return {"model": self.model, "budget_gib": self.request.budget_bytes / GIB,
                "request": {k: v for k, v in asdict(self.request).items() if k != "budget_bytes"},
                "chosen": None if chosen is None else chosen.to_dict(),
                "pcie_bytes_per_s_assumed": PCIE_BYTES_PER_S, "rows": [r.to_dict() for r in self.rows]}

    def table(self, *, all_rows: bool = False, limit: int = 10) -> str:
        """The first ``limit`` settings that fit (``all_rows``: every candidate), the chosen one first: peak per
        stage, the largest parts, speed; or, when nothing fits, the nearest setting and how much is missing."""
        budget = self.request.budget_bytes
        lines = [f"{self.model}: {self.request.variant}, {self.request.num_frames} frames, refiner "
                 f"{'on' if self.request.refiner else 'off'}, budget {_gib(budget)}"]
        rows = self.rows if all_rows else self.fitting[:limit]
        if not self.fitting:
            near = self.nearest
            lines.append(f"nothing fits in {_gib(budget)}: the nearest setting ({near.setting.describe()}) needs "
                         f"{_gib(near.peak_bytes)}, {_gib(near.missing_bytes)} more")
        for i, row in enumerate(rows):
            mark = "chosen" if row is self.chosen else ("fits" if row.fits else "does not fit")
            if row.fits and not row.default_ok:
                mark = "fits, not a default (set it explicitly)"
            stages = ", ".join(f"{k} {_gib(v)}" for k, v in row.stage_peaks().items())
            parts = ", ".join(f"{c.name} {_gib(c.bytes)}" for c in row.largest())
            lines += [f"{i + 1:2d}. [{mark}] peak {_gib(row.peak_bytes)}: {row.setting.describe()}",
                      f"    stages: {stages}", f"    largest: {parts}", f"    speed: {row.speed()}"]
            if row.host_bytes:
                lines.append(f"    host memory: {_gib(row.host_bytes)} (the text encoders on the CPU, one after "
                             "the other)")
            lines.append(f"    flags: {' '.join(row.setting.flags())}")
        if not all_rows and len(self.fitting) > limit:
            lines.append(f"... and {len(self.fitting) - limit} more that fit (--all lists every candidate)")
        return "\n".join(lines)


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


class NothingFitsError(OptionError, LimitError):
    """No setting runs the request within the budget."""


# -- the estimate of one setting ----------------------------------------------------------------------------
def estimate_setting(sizes: ModelSizes, setting: Setting, request: PlanRequest, *, device_type: str = "cuda",
                     dtype_bytes: int = 2, stored: str = "packed") -> MemoryEstimate:
    """The per-component memory of ``setting`` for ``request`` on ``sizes`` (the same model as
    :func:`~sana_wm.pipeline.memory.estimate_generation`, from sizes instead of loaded modules)."""
    cfg = sizes.stage1_config
    streaming = request.variant == "streaming"
    latent_frames = sizes.latent_frames(request.num_frames)
    refine = setting.refiner_precision is not None and sizes.refiner is not None
    parts = [MemoryComponent("transformer weights", sizes.stage1.weight_bytes(
        setting.stage1_precision, dtype_bytes=dtype_bytes, stored=stored), LOADED),
        MemoryComponent("VAE weights", sizes.vae_params * dtype_bytes, LOADED)]
    if setting.text_encoders == "gpu" and sizes.text_encoder_params:
        parts += [MemoryComponent("text encoder weights (run first)", _text_encoder_weight_bytes(
            sizes, setting, request), FIRST),
                  MemoryComponent("runtime workspace (text encoders)", runtime_bytes(device_type), FIRST)]
    if refine:
        r = sizes.refiner
        full = r.weight_bytes(setting.refiner_precision, dtype_bytes=dtype_bytes, stored=stored)
        if setting.refiner_offload == "blocks":
            block = r.block_bytes(setting.refiner_precision, dtype_bytes=dtype_bytes)
            rest = full - r.blocks * block
            parts += [MemoryComponent("refiner weights outside its blocks", rest, LOADED),
                      MemoryComponent("refiner blocks moved in (2 at once)", 2 * block, SAMPLE)]
        else:
            parts.append(MemoryComponent("refiner weights", full, LOADED))
    shape = GenerationShape(
        variant=request.variant, num_frames=request.num_frames, latent_frames=latent_frames,
        latent_hw=sizes.latent_hw, image_hw=tuple(sizes.image_hw), latent_channels=sizes.latent_channels,
        chunk_frames=int(cfg.chunk_frames), guided=request.guided, hidden_size=int(cfg.hidden_size),
        depth=int(cfg.depth), mlp_ratio=float(cfg.mlp_ratio), act_bytes=dtype_bytes,
        conv_decoder=sizes.conv_decoder, keep_frames=False, vae_act_bytes=dtype_bytes,
        refiner_hidden=sizes.refiner_hidden if refine else 0,
        refiner_frames=(3 if streaming else latent_frames) if refine else 0,
        refiner_layers=sizes.refiner_layers if refine else 0,
        refiner_window_frames=(setting.refiner_kv_frames or 11) if refine and streaming else 0)
    parts += shape_components(shape, device_type)
    return MemoryEstimate(device_type, tuple(parts))


def _text_encoder_weight_bytes(sizes: ModelSizes, setting: Setting, request: PlanRequest) -> int:
    """The text encoders' weights at their peak: run first and freed before the transformers load, one after the
    other, so the larger one (Gemma-3-12B with the refiner) is the peak, wherever they run."""
    refine = setting.refiner_precision is not None and sizes.refiner is not None
    encoders = max(sizes.text_encoder_params, sizes.refiner_text_encoder_params if refine else 0)
    return encoders * request.text_encoder_bytes


def host_text_encoder_bytes(sizes: ModelSizes, setting: Setting, request: PlanRequest) -> int:
    """The host memory of ``setting``'s text encoders when they run on the CPU (0 otherwise): the same weights as
    on the GPU, at the same dtype, plus the CPU runtime's workspace."""
    if setting.text_encoders != "cpu" or not sizes.text_encoder_params:
        return 0
    return _text_encoder_weight_bytes(sizes, setting, request) + runtime_bytes("cpu")


def _transfer_seconds(sizes: ModelSizes, setting: Setting) -> float:
    """Seconds of PCIe copies for the refiner's blocks moved in: every block once per SDEdit step, per streaming
    chunk or, when the refiner runs over the whole video at once, per video."""
    if setting.refiner_offload != "blocks" or setting.refiner_precision is None or sizes.refiner is None:
        return 0.0
    moved = sizes.refiner.blocks * sizes.refiner.block_bytes(setting.refiner_precision) * _REFINER_STEPS
    return moved / PCIE_BYTES_PER_S


def candidates(sizes: ModelSizes, request: PlanRequest) -> list[Setting]:
    """Every setting the planner considers for ``request``: all combinations of what is not fixed."""
    from sana_wm.quant import REFINER_RULES, STAGE1_RULES, gpu_precisions

    fixed = dict(request.fixed)
    refine = request.refiner and sizes.refiner is not None
    options = {
        "stage1_precision": gpu_precisions(STAGE1_RULES, request.capability),
        "refiner_precision": gpu_precisions(REFINER_RULES, request.capability) if refine else (None,),
        # "embeds" (--prompt-embeds) only when the user gives them; a model without text has nothing to run
        "text_encoders": ("gpu", "cpu") if sizes.text_encoder_params else ("embeds",),
        "refiner_offload": REFINER_OFFLOAD if refine else (None,),
        "refiner_kv_frames": KV_WINDOWS if refine and request.variant == "streaming" else (None,),
    }
    for name, value in fixed.items():
        if name in ("refiner_precision", "refiner_offload", "refiner_kv_frames") and not refine:
            continue  # no refiner: its settings have nothing to act on (the pipeline says so)
        options[name] = (value,)
    settings = [Setting()]
    for name, values in options.items():
        settings = [replace(s, **{name: v}) for s in settings for v in values]
    return settings


def plan_generation(sizes: ModelSizes, request: PlanRequest) -> MemoryPlan:
    """Every candidate setting of ``request`` on ``sizes``, estimated and ranked (module docstring)."""
    rows = []
    for setting in candidates(sizes, request):
        # Each transformer's precision on its own: a user who sets stage 1's has not chosen it for the refiner.
        default_ok = all(precision not in NOT_A_DEFAULT or request.fixed.get(name) == precision
                         for name in ("stage1_precision", "refiner_precision")
                         if (precision := getattr(setting, name)) is not None)
        rows.append(PlanRow(setting, estimate_setting(sizes, setting, request), request.budget_bytes,
                            _transfer_seconds(sizes, setting), default_ok,
                            host_text_encoder_bytes(sizes, setting, request), request.variant == "streaming"))
    rows.sort(key=_rank_key)
    return MemoryPlan(request, sizes.name, tuple(rows))


def nothing_fits(plan: MemoryPlan, flag: str = "--gpu-memory") -> NothingFitsError:
    """The refusal when no setting fits: the nearest one, what it needs and how much is missing."""
    budget = plan.request.budget_bytes
    fitting = plan.fitting
    if fitting:  # only settings the user must ask for fit
        row = fitting[0]
        return NothingFitsError(
            f"{flag} {budget / GIB:g}: no default setting fits; {row.setting.describe()} fits (peak "
            f"{_gib(row.peak_bytes)}) but its precision raised the camera error by more than 10% on the bundled "
            f"model.\nSet it explicitly to use it: {' '.join(row.setting.flags())}")
    near = plan.nearest
    parts = ", ".join(f"{c.name} {_gib(c.bytes)}" for c in near.largest(2))
    refiner = "{no_refiner}, " if near.setting.refiner_precision is not None else ""
    return NothingFitsError(
        f"{flag} {budget / GIB:g}: nothing fits; the nearest setting ({near.setting.describe()}) needs "
        f"{_gib(near.peak_bytes)}, {_gib(near.missing_bytes)} more ({parts}).\n"
        f"Try: a shorter video, {refiner}or a GPU with more memory (`sana-wm plan` lists every setting)")


def budget_bytes(gib: float, flag: str = "--gpu-memory") -> int:
    """``gib`` GiB as bytes, checked (a positive number up to 4096)."""
    if not math.isfinite(gib) or not 0 < gib <= 4096:
        raise OptionError(f"{flag} {gib:g}: give the GPU memory in GiB, a number in (0, 4096]")
    return int(gib * GIB)
