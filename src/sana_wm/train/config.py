"""The trainer's configuration: one dataclass tree, read from YAML and checked before training starts.

Every section is a dataclass below; a YAML file sets any subset of their fields. Unknown keys, values of
the wrong type and impossible combinations are refused with a :class:`ConfigError` that names the key
path, e.g. ``stages[1].lr: expected float, got 'abc'``. ``configs/train/*.yaml`` are annotated examples.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sana_wm.errors import ConfigError
from sana_wm.model.config import CONFIGS
from sana_wm.train.objective import ObjectiveConfig

__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EMAConfig",
    "LoggingConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "StageConfig",
    "TrainConfig",
    "ValidationConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]


# The caption width of the released weights (Gemma-2-2B's hidden size): weights that read real text states.
_GEMMA_CHANNELS = 2304


@dataclass
class ModelConfig:
    name: str | None = "tiny"  # a named config of sana_wm.model.CONFIGS or the bundled "sana-wm-synth" ...
    config_path: str | None = None  # ... or a SanaWMConfig JSON file (then set name: null)
    init_from: str | None = None  # weights to start from: a checkpoint file or a model directory
    gradient_checkpointing: bool = False  # recompute each block's activations in backward
    # A model wrapper around the transformer, as {kind: ..., vae: CODEC_DIR, ...settings}: the bundled model's
    # parameterisation (sana_wm.bundled.training; vae: the codec the latents were encoded with). None trains
    # the transformer's own flow prediction.
    wrapper: dict[str, str | float] | None = None


@dataclass
class DataConfig:
    root: str = ""  # a dataset written by sana_wm.data.ShardWriter
    window: int = 9  # raw frames per sample; 8k+1 (121 latent frames = 961 raw frames)
    fps: float | None = 16.0  # resample clips to this rate (None: keep each clip's own)
    size: list[int] = field(default_factory=lambda: [704, 1280])  # (H, W) pixels after resize + crop
    batch_size: int = 1  # samples per rank per forward (the micro-batch)
    # Micro-batches whose gradients are summed before each optimizer step, so one step sees a global
    # batch of batch_size x accumulation x world size samples at the memory of batch_size.
    accumulation: int = 1
    num_workers: int = 0  # DataLoader workers per rank
    shuffle: bool = True
    crop: str = "center"  # "center" or "random"
    window_mode: str = "random"  # "random" start or the clip's "start"
    quality_ranges: dict[str, list[float]] = field(default_factory=dict)  # {score: [lo, hi]} kept
    # How frames become latents: "synthetic" is a fixed pixel-unshuffle + linear map standing in for
    # the VAE (tests, smoke runs); "latent_cache" reads <root>/latents/<key>.safetensors written by
    # sana_wm.data.LatentCache (whole clips encoded from their first frame; needs window_mode "start");
    # "latent_cache_only" reads the clips from that cache alone, never opening the shards (only
    # index.json and latents/ are needed; captions live in the shards, so it needs text: none).
    latents: str = "synthetic"
    spatial_stride: int = 32  # pixels per latent cell (LTX-2: 32; synthetic encoder: any)
    # Text states: "text_cache" reads each caption's Gemma-2 states from <root>/text_states, written once by
    # `sana-wm data encode-text` (sana_wm.train.text_states; also <validation.root>/text_states); "hash"
    # gives every caption a fixed random embedding (tests and smoke runs only: refused when fine-tuning
    # weights that read Gemma-2 states); "none" gives every sample the model's null caption, for a
    # text-free model (the bundled synthetic-world model).
    text: str = "hash"
    camera: bool = True  # False: identity cameras (clips without camera labels)


@dataclass
class OptimizerConfig:
    """AdamW; defaults are the released stage-1 recipe (reference §7.3)."""

    lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-10
    weight_decay: float = 0.0
    grad_clip: float | None = 0.5  # max global grad norm; None: no clipping


@dataclass
class ScheduleConfig:
    kind: str = "constant"  # "constant" or "warmup" (linear from 0 over warmup_steps, then constant)
    warmup_steps: int = 0


@dataclass
class StageConfig:
    """One stage of progressive training; unset fields inherit from ``data`` / ``optimizer``."""

    steps: int = 1
    name: str | None = None
    window: int | None = None  # raw frames per sample
    size: list[int] | None = None  # (H, W)
    batch_size: int | None = None
    accumulation: int | None = None
    lr: float | None = None
    trainable: list[str] = field(default_factory=lambda: ["*"])  # fnmatch patterns of parameter names


@dataclass
class CheckpointConfig:
    dir: str | None = None  # default: <output_dir>/checkpoints
    every: int = 0  # steps between checkpoints (0: only the final one)
    keep_last: int = 3
    save_final: bool = True


@dataclass
class LoggingConfig:
    metrics: str | None = None  # JSONL file; default: <output_dir>/metrics.jsonl
    every: int = 1
    progress_bar: bool = True
    tensorboard: bool = False  # also write TensorBoard scalars to <output_dir>/tensorboard if installed


@dataclass
class ValidationConfig:
    every: int = 0  # steps between validation losses (0: off)
    root: str | None = None  # validation clips; default: data.root
    num_batches: int | None = None  # per rank; None: every clip of the rank's share
    batch_size: int | None = None  # default: data.batch_size
    at_start: bool = True  # also measure before the first step


@dataclass
class EMAConfig:
    decay: float = 0.0  # 0: no EMA; e.g. 0.9999


# Default LoRA targets (fnmatch patterns over the names of model.named_modules()): every block's
# self-attention q/k/v and output projections in both branches (main GDN/softmax and UCPE camera), the
# cross-attention projections, and the FFN's two 1x1 convolutions.
DEFAULT_LORA_TARGETS = [
    "blocks.*.attn.qkv",
    "blocks.*.attn.proj",
    "blocks.*.attn.*_proj_cam",
    "blocks.*.cross_attn.q_linear",
    "blocks.*.cross_attn.kv_linear",
    "blocks.*.cross_attn.proj",
    "blocks.*.mlp.inverted_conv.conv",
    "blocks.*.mlp.point_conv.conv",
]


@dataclass
class LoraConfig:
    """Low-rank adapters (peft LoRA) on a frozen base model; the section's presence turns LoRA on."""

    rank: int = 16
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # dropout on the adapter's input
    # fnmatch patterns of module names that get an adapter; only nn.Linear and ungrouped nn.Conv layers
    # qualify, so a broad pattern ("blocks.*") silently skips norms, gates and depthwise convs.
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    # fnmatch patterns of modules trained in full next to the adapters and saved with them (peft's
    # modules_to_save), e.g. ["final_layer.linear"].
    trainable_modules: list[str] = field(default_factory=list)
    # The frozen base weights' dtype: "bf16" halves their memory (5.3 GB instead of 10.6 GB for the 2.6B
    # model) and needs precision: bf16; adapters and their AdamW state stay float32 either way.
    base_dtype: str = "fp32"


@dataclass
class DistributedConfig:
    backend: str = "auto"  # "auto" (nccl with CUDA, else gloo), "nccl" or "gloo"
    strategy: str = "auto"  # "auto" (= fsdp2 when world size > 1), "fsdp2", "ddp" or "none"
    device: str = "auto"  # "auto", "cpu" or "cuda"


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    seed: int = 0
    precision: str = "fp32"  # "fp32" or "bf16" (autocast; master weights and optimizer stay fp32)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    lora: LoraConfig | None = None  # set (even to {}) to fine-tune low-rank adapters on a frozen base

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint.dir) if self.checkpoint.dir else Path(self.output_dir) / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return Path(self.logging.metrics) if self.logging.metrics else Path(self.output_dir) / "metrics.jsonl"

    def stage_at(self, step: int) -> tuple[int, StageConfig]:
        """``(index, stage)`` that runs optimizer step ``step`` (0-based)."""
        end = 0
        for i, stage in enumerate(self.stages):
            end += stage.steps
            if step < end:
                return i, stage
        return len(self.stages) - 1, self.stages[-1]

    def stage_start(self, index: int) -> int:
        return sum(s.steps for s in self.stages[:index])

    def stage_data(self, index: int) -> DataConfig:
        """``data`` with stage ``index``'s overrides applied."""
        stage = self.stages[index]
        keys = ("window", "size", "batch_size", "accumulation")
        changes = {k: getattr(stage, k) for k in keys if getattr(stage, k) is not None}
        return dataclasses.replace(self.data, **changes)

    def stage_lr(self, index: int) -> float:
        lr = self.stages[index].lr
        return self.optimizer.lr if lr is None else lr


# ------------------------------------------------------------------------------------------------
# Reading and checking
# ------------------------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML training config (``overrides`` merged on top, nested dicts key by key) and check it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8)") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    if overrides:
        raw = _merge(raw, overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None  # the key alone does not say which file to fix


def config_from_dict(raw: dict) -> TrainConfig:
    if isinstance(raw, dict) and isinstance(raw.get("objective"), dict) and "chunk_frames" in raw["objective"]:
        # The chunk schedule is the model's: a second setting here could only disagree with it.
        raise ConfigError("objective.chunk_frames: the chunk-causal recipe uses the model's chunks "
                          "(chunk_frames in the model config); remove the key, or use a model config with "
                          f"chunk_frames: {raw['objective']['chunk_frames']}")
    if isinstance(raw, dict) and "lora" in raw and raw["lora"] is None:
        # YAML reads a bare "lora:" as null; silently training every weight instead would be a trap.
        raise ConfigError("lora: the section is empty (null); write `lora: {}` to fine-tune with the default LoRA "
                          "settings, or remove the key to train all weights")
    cfg = _build(TrainConfig, raw, "")
    check_config(cfg)
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _type_name(tp) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _build(cls, raw, path: str):
    """Instantiate dataclass ``cls`` from ``raw``, checking every key and type."""
    where = path or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{key}: unknown key; {where} accepts {', '.join(names)}")
    values = {k: _convert(hints[k], v, f"{path}.{k}" if path else k) for k, v in raw.items()}
    return cls(**values)


def _convert(tp, value: Any, path: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        key_tp, val_tp = typing.get_args(tp)
        return {_convert(key_tp, k, path): _convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads "1e-5" (no dot) as a string; accept numeric strings of that form.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{path}: expected float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected bool (true/false), got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected str, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")  # a bug in the schema, not the YAML


def _choice(path: str, value, options) -> None:
    if value not in options:
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, options))}, got {value!r}")


def _check_window(path: str, window: int | None) -> None:
    if window is not None and (window < 1 or (window - 1) % 8):
        lower = max(1, window - (window - 1) % 8)
        raise ConfigError(f"{path}: the video VAE needs 8k+1 raw frames (e.g. {lower} or {lower + 8}), got {window}")


def _check_size(path: str, size: list[int] | None, stride: int) -> None:
    if size is None:
        return
    if len(size) != 2 or any(s <= 0 for s in size):
        raise ConfigError(f"{path}: expected [H, W] with positive sides, got {size}")
    if any(s % stride for s in size):
        raise ConfigError(f"{path}: {size} must be multiples of data.spatial_stride ({stride}) pixels")


def check_model_source(m) -> None:
    """A model section names exactly one of a built-in config (``model.name``, which must exist) and a file."""
    if (m.name is None) == (m.config_path is None):
        raise ConfigError("model.name: set exactly one of model.name and model.config_path")
    if m.name is not None:
        named_config(m.name)


def check_config(cfg: TrainConfig) -> None:
    """Cross-field checks (types were checked while building); raises :class:`ConfigError`."""
    m = cfg.model
    check_model_source(m)
    _choice("precision", cfg.precision, ("fp32", "bf16"))
    if m.wrapper is not None:
        from sana_wm.bundled.training import split_wrapper_spec

        try:
            split_wrapper_spec(m.wrapper)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    d = cfg.data
    if not d.root:
        raise ConfigError("data.root: required (a dataset directory written by sana_wm.data.ShardWriter)")
    _check_window("data.window", d.window)
    if d.spatial_stride < 1:
        raise ConfigError(f"data.spatial_stride: must be >= 1, got {d.spatial_stride}")
    _check_size("data.size", d.size, d.spatial_stride)
    if d.batch_size < 1:
        raise ConfigError(f"data.batch_size: must be >= 1, got {d.batch_size}")
    if d.accumulation < 1:
        raise ConfigError(f"data.accumulation: must be >= 1 (1: no gradient accumulation), got {d.accumulation}")
    if d.num_workers < 0:
        raise ConfigError(f"data.num_workers: must be >= 0, got {d.num_workers}")
    if d.fps is not None and not d.fps > 0:
        raise ConfigError(f"data.fps: must be positive, got {d.fps}")
    _choice("data.crop", d.crop, ("center", "random"))
    _choice("data.window_mode", d.window_mode, ("random", "start"))
    _choice("data.latents", d.latents, ("synthetic", "latent_cache", "latent_cache_only"))
    _choice("data.text", d.text, ("text_cache", "hash", "none"))
    if d.text == "hash" and m.init_from and _model_config(cfg).caption_channels == _GEMMA_CHANNELS:
        raise ConfigError(f"data.text: 'hash' gives captions random states, which would untrain the text "
                          f"conditioning of the weights in model.init_from ({m.init_from}); use text: text_cache "
                          "(Gemma-2 states written by `sana-wm data encode-text`), or text: none for a text-free run")
    if d.latents != "synthetic" and d.window_mode != "start":
        raise ConfigError(f"data.window_mode: data.latents {d.latents!r} holds each clip encoded from its first "
                          "frame, so windows must start there; set window_mode: start")
    if d.latents == "latent_cache_only" and d.text != "none":
        raise ConfigError("data.text: data.latents 'latent_cache_only' never opens the shards, where captions are "
                          "stored; use text: none (a text-free model) or latents: latent_cache")
    for name, bounds in d.quality_ranges.items():
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise ConfigError(f"data.quality_ranges.{name}: expected [lo, hi] with lo <= hi, got {bounds}")

    try:
        cfg.objective.validate("objective")
    except ValueError as err:
        raise ConfigError(str(err)) from None

    o = cfg.optimizer
    if not o.lr > 0:
        raise ConfigError(f"optimizer.lr: must be positive, got {o.lr}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"optimizer.betas: expected two numbers in [0, 1), got {o.betas}")
    if o.eps <= 0 or o.weight_decay < 0:
        raise ConfigError("optimizer.eps: must be positive (and optimizer.weight_decay >= 0)")
    if o.grad_clip is not None and not o.grad_clip > 0:
        raise ConfigError(f"optimizer.grad_clip: must be positive or null, got {o.grad_clip}")

    _choice("schedule.kind", cfg.schedule.kind, ("constant", "warmup"))
    if cfg.schedule.kind == "warmup" and cfg.schedule.warmup_steps < 1:
        raise ConfigError("schedule.warmup_steps: must be >= 1 with schedule.kind 'warmup'")

    if not cfg.stages:
        raise ConfigError("stages: at least one stage is needed")
    for i, s in enumerate(cfg.stages):
        where = f"stages[{i}]"
        if s.steps < 1:
            raise ConfigError(f"{where}.steps: must be >= 1, got {s.steps}")
        _check_window(f"{where}.window", s.window)
        _check_size(f"{where}.size", s.size, d.spatial_stride)
        if s.batch_size is not None and s.batch_size < 1:
            raise ConfigError(f"{where}.batch_size: must be >= 1, got {s.batch_size}")
        if s.accumulation is not None and s.accumulation < 1:
            raise ConfigError(f"{where}.accumulation: must be >= 1, got {s.accumulation}")
        if s.lr is not None and not s.lr > 0:
            raise ConfigError(f"{where}.lr: must be positive, got {s.lr}")
        if not s.trainable:
            raise ConfigError(f"{where}.trainable: needs at least one pattern (\"*\" trains everything)")

    c = cfg.checkpoint
    if c.every < 0 or c.keep_last < 1:
        raise ConfigError("checkpoint.keep_last: must be >= 1 (and checkpoint.every >= 0)")
    if cfg.logging.every < 1:
        raise ConfigError(f"logging.every: must be >= 1, got {cfg.logging.every}")
    v = cfg.validation
    if v.every < 0:
        raise ConfigError(f"validation.every: must be >= 0, got {v.every}")
    if v.num_batches is not None and v.num_batches < 1:
        raise ConfigError(f"validation.num_batches: must be >= 1 or null, got {v.num_batches}")
    if v.batch_size is not None and v.batch_size < 1:
        raise ConfigError(f"validation.batch_size: must be >= 1, got {v.batch_size}")
    if not 0 <= cfg.ema.decay < 1:
        raise ConfigError(f"ema.decay: must be in [0, 1), got {cfg.ema.decay}")
    _choice("distributed.backend", cfg.distributed.backend, ("auto", "nccl", "gloo"))
    _choice("distributed.strategy", cfg.distributed.strategy, ("auto", "fsdp2", "ddp", "none"))
    _choice("distributed.device", cfg.distributed.device, ("auto", "cpu", "cuda"))
    if cfg.distributed.backend == "nccl" and cfg.distributed.device == "cpu":
        raise ConfigError("distributed.backend: nccl needs CUDA devices; use gloo with device cpu")
    if cfg.lora is not None:
        _check_lora(cfg)


def _check_lora(cfg: TrainConfig) -> None:
    from sana_wm.train.lora import resolve_lora_modules

    lo = cfg.lora
    if lo.rank < 1:
        raise ConfigError(f"lora.rank: must be >= 1, got {lo.rank}")
    if not lo.alpha > 0:
        raise ConfigError(f"lora.alpha: must be positive, got {lo.alpha}")
    if not 0 <= lo.dropout < 1:
        raise ConfigError(f"lora.dropout: must be in [0, 1), got {lo.dropout}")
    _choice("lora.base_dtype", lo.base_dtype, ("fp32", "bf16"))
    if lo.base_dtype == "bf16" and cfg.precision != "bf16":
        raise ConfigError("lora.base_dtype: bf16 base weights need precision: bf16 (autocast); set both, or "
                          "keep base_dtype: fp32")
    if not lo.target_modules:
        raise ConfigError("lora.target_modules: needs at least one pattern (module names such as blocks.*.attn.qkv)")
    if not cfg.model.init_from:
        raise ConfigError("model.init_from: LoRA adapts pretrained weights; set it to the base model (a checkpoint "
                          "file or model directory), or remove the lora section to train from scratch")
    # Resolving the patterns needs the module tree only: build it on the meta device (no memory, instant).
    resolve_lora_modules(_meta_model(cfg), lo)


def named_config(name: str):
    """The transformer config ``model.name`` names: one of :data:`sana_wm.model.CONFIGS`, or the bundled
    model's (``sana-wm-synth``, :data:`sana_wm.bundled.SYNTH_CONFIG`)."""
    from sana_wm.bundled import BUNDLED_MODEL, SYNTH_CONFIG

    if name == BUNDLED_MODEL:
        return SYNTH_CONFIG
    if name not in CONFIGS:
        raise ConfigError(f"model.name: unknown model config {name!r}; choose one of "
                          f"{', '.join(sorted([*CONFIGS, BUNDLED_MODEL]))}")
    return CONFIGS[name]


def _model_config(cfg: TrainConfig):
    """The transformer config of ``model``: a named one, or read from ``model.config_path``."""
    from sana_wm.model import SanaWMConfig

    m = cfg.model
    if m.name is not None:
        return named_config(m.name)
    try:
        return SanaWMConfig.load_json(m.config_path)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"model.config_path: cannot read {m.config_path}: {err}") from None


def _meta_model(cfg: TrainConfig):
    from sana_wm.model import build_model

    return build_model(_model_config(cfg), device="meta")
