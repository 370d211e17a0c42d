"""The distiller's configuration: one typed YAML file per stage, checked before anything runs.

Sections shared with the trainer (``data``, ``checkpoint``, ``logging``, ``distributed``) are the trainer's
own dataclasses (:mod:`sana_wm.train.config`), read and checked by the same code, so a key means the same
thing in both. ``configs/distill/*.yaml`` are annotated examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sana_wm.samplers.schedules import DISTILL_TIMESTEPS, SigmaSchedule
from sana_wm.train.config import (
    CheckpointConfig,
    ConfigError,
    DataConfig,
    DistributedConfig,
    LoggingConfig,
    _build,
    _check_size,
    _check_window,
    _choice,
    check_model_source,
    named_config,
)

__all__ = ["STAGES", "DistillConfig", "DistillModelConfig", "ExportConfig", "OdeDataConfig", "OptimConfig",
           "transformer_config",
           "SelfForcingConfig", "load_distill_config", "distill_config_from_dict"]

STAGES = ("ode", "self_forcing")


@dataclass
class DistillModelConfig:
    name: str | None = "tiny"  # the transformer config (sana_wm.model.CONFIGS), or config_path: a JSON file
    config_path: str | None = None
    # The chunk-causal teacher (a checkpoint file or model folder): runs `ode-data`, and initialises the ODE
    # stage's student.
    teacher: str | None = None
    # Self-Forcing: the generator's starting weights (the ODE stage's student); ODE: default the teacher.
    generator_init: str | None = None
    # Self-Forcing: the bidirectional teacher; the critic ("fake score") and the frozen real score start from it.
    score_init: str | None = None
    # Self-Forcing: the critic's starting weights when not the bidirectional teacher's (e.g. a previous
    # Self-Forcing stage's critic/ checkpoint folder, to continue it at a longer clip length).
    critic_init: str | None = None
    real_score_dtype: str = "fp32"  # "bf16" halves the frozen real score's memory (it takes no gradient)
    gradient_checkpointing: bool = False


@dataclass
class OdeDataConfig:
    dir: str = ""  # where `sana-wm distill ode-data` writes the trajectories and the ODE stage reads them
    teacher_steps: int = 60  # the teacher's Euler steps (the student's timesteps are inserted into them)
    teacher_shift: float = 9.8  # flow shift of the teacher's schedule (released chunk-causal: 9.8)
    cfg: float = 1.0  # the teacher's text guidance scale (v_u + cfg (v_c - v_u)); 1 = off
    negative_prompt: str = ""  # the teacher's unconditional prompt when cfg != 1
    clips_per_shard: int = 64  # trajectories per safetensors shard
    max_clips: int | None = None  # stop after this many clips (per run, over all ranks); None: the whole dataset
    dtype: str = "fp32"  # stored precision: fp32, bf16 or fp16


@dataclass
class OptimConfig:
    """AdamW; defaults are the released ODE stage's (reference §9.1)."""

    lr: float = 2e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0


@dataclass
class SelfForcingConfig:
    guidance_scale: float = 3.0  # real score: x0_c + scale (x0_c - x0_u)
    negative_prompt: str = ""  # the real score's unconditional prompt (its text states must be stored: text_cache)
    score_shift: float = 10.0  # score timesteps: uniform [0, 1000), flow-shifted, clamped
    min_timestep: float = 20.0
    max_timestep: float = 980.0
    generator_every: int = 5  # one generator update per this many critic updates
    same_exit_for_all_chunks: bool = True  # one exit step per rollout (else one per chunk)
    kv_window_chunks: int | None = None  # softmax blocks' window in chunks (None: every chunk; released 2)
    sink: bool = False  # keep chunk 0 in the window once it slides (released: on with a 2-chunk window)
    critic_optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=2e-6, betas=[0.0, 0.999], weight_decay=0.0, grad_clip=10.0))


@dataclass
class ExportConfig:
    """The student folder written at the end (``<output_dir>/student``), which `sana-wm generate` loads."""

    vae: str | None = None  # a VAE folder copied in as ltx2_causal_vae/ (None: add one before generating)
    image_size: list[int] | None = None  # (H, W) pixels; default data.size
    fps: float = 16.0


@dataclass
class DistillConfig:
    output_dir: str = "runs/distill"
    seed: int = 0
    precision: str = "fp32"  # "fp32" or "bf16" (autocast; weights and optimizer states stay fp32)
    stage: str = "ode"  # "ode" (ODE regression) or "self_forcing" (Self-Forcing + DMD)
    steps: int = 1  # optimizer steps of the generator's optimizer clock (Self-Forcing: critic steps)
    denoising_steps: list[float] = field(default_factory=lambda: list(DISTILL_TIMESTEPS))
    model: DistillModelConfig = field(default_factory=DistillModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    ode_data: OdeDataConfig = field(default_factory=OdeDataConfig)
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    self_forcing: SelfForcingConfig = field(default_factory=SelfForcingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint.dir) if self.checkpoint.dir else Path(self.output_dir) / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return Path(self.logging.metrics) if self.logging.metrics else Path(self.output_dir) / "metrics.jsonl"

    @property
    def student_dir(self) -> Path:
        return Path(self.output_dir) / "student"

    @property
    def schedule(self) -> SigmaSchedule:
        return SigmaSchedule.from_timesteps(self.denoising_steps)


def load_distill_config(path: str | Path) -> DistillConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such distillation config")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    try:
        return distill_config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def distill_config_from_dict(raw: dict) -> DistillConfig:
    cfg = _build(DistillConfig, raw, "")
    check_distill_config(cfg)
    return cfg


def _check_optim(where: str, o: OptimConfig) -> None:
    if not o.lr > 0:
        raise ConfigError(f"{where}.lr: must be positive, got {o.lr}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"{where}.betas: expected two numbers in [0, 1), got {o.betas}")
    if o.eps <= 0 or o.weight_decay < 0:
        raise ConfigError(f"{where}.eps: must be positive (and {where}.weight_decay >= 0)")
    if o.grad_clip is not None and not o.grad_clip > 0:
        raise ConfigError(f"{where}.grad_clip: must be positive or null, got {o.grad_clip}")


def check_distill_config(cfg: DistillConfig) -> None:
    """Cross-field checks; raises :class:`ConfigError` naming the key."""
    m = cfg.model
    check_model_source(m)
    _choice("stage", cfg.stage, STAGES)
    _choice("precision", cfg.precision, ("fp32", "bf16"))
    _choice("model.real_score_dtype", m.real_score_dtype, ("fp32", "bf16"))
    if cfg.steps < 1:
        raise ConfigError(f"steps: must be >= 1, got {cfg.steps}")
    try:
        cfg.schedule  # noqa: B018 (validates the list)
    except ValueError as err:
        raise ConfigError(f"denoising_steps: {err}") from None
    if cfg.denoising_steps[0] != 1000:
        raise ConfigError(f"denoising_steps: must start at 1000 (pure noise), got {cfg.denoising_steps}")
    d = cfg.data
    if not d.root:
        raise ConfigError("data.root: required (a dataset directory written by sana_wm.data.ShardWriter)")
    _check_window("data.window", d.window)
    _check_size("data.size", d.size, d.spatial_stride)
    if d.batch_size < 1 or d.accumulation != 1:
        raise ConfigError("data.batch_size: must be >= 1 (and data.accumulation 1: the distiller does not "
                          "accumulate micro-batches)")
    _choice("data.latents", d.latents, ("synthetic", "latent_cache", "latent_cache_only"))
    _choice("data.text", d.text, ("text_cache", "hash", "none"))
    if d.latents != "synthetic" and d.window_mode != "start":
        raise ConfigError("data.window_mode: cached latents hold each clip from its first frame; "
                          "set window_mode: start")
    o = cfg.ode_data
    if cfg.stage == "ode" and not o.dir:
        raise ConfigError("ode_data.dir: required (the trajectories written by `sana-wm distill ode-data`)")
    if o.teacher_steps < 1 or o.clips_per_shard < 1 or (o.max_clips is not None and o.max_clips < 1):
        raise ConfigError("ode_data.teacher_steps: must be >= 1 (and ode_data.clips_per_shard, max_clips >= 1)")
    if not o.teacher_shift > 0:
        raise ConfigError(f"ode_data.teacher_shift: must be positive, got {o.teacher_shift}")
    _choice("ode_data.dtype", o.dtype, ("fp32", "bf16", "fp16"))
    if o.cfg != 1.0 and d.text == "none":
        raise ConfigError("ode_data.cfg: a text-free dataset (data.text: none) has no unconditional prompt; use 1")
    # A negative prompt that no forward reads would be silently ignored.
    if o.negative_prompt and o.cfg == 1.0:
        raise ConfigError("ode_data.negative_prompt: only read with text guidance (ode_data.cfg != 1); remove it or "
                          "set ode_data.cfg")
    _check_optim("optimizer", cfg.optimizer)
    s = cfg.self_forcing
    _check_optim("self_forcing.critic_optimizer", s.critic_optimizer)
    if s.negative_prompt and d.text == "none":
        raise ConfigError("self_forcing.negative_prompt: a text-free dataset (data.text: none) has no prompt; "
                          "remove it")
    if s.generator_every < 1:
        raise ConfigError(f"self_forcing.generator_every: must be >= 1, got {s.generator_every}")
    if not 0 <= s.min_timestep <= s.max_timestep <= 1000:
        raise ConfigError("self_forcing.min_timestep: need 0 <= min_timestep <= max_timestep <= 1000")
    if not s.score_shift > 0:
        raise ConfigError(f"self_forcing.score_shift: must be positive, got {s.score_shift}")
    if s.kv_window_chunks is not None and s.kv_window_chunks < 1:
        raise ConfigError(f"self_forcing.kv_window_chunks: must be >= 1 or null, got {s.kv_window_chunks}")
    if s.sink and s.kv_window_chunks is None:
        raise ConfigError("self_forcing.sink: only meaningful with a window (self_forcing.kv_window_chunks)")
    if cfg.stage == "self_forcing" and not m.score_init:
        raise ConfigError("model.score_init: required for stage self_forcing (the bidirectional teacher that "
                          "initialises the critic and the real score)")
    if cfg.stage == "self_forcing" and not (m.generator_init or m.teacher):
        raise ConfigError("model.generator_init: required for stage self_forcing (the ODE stage's student)")
    if cfg.stage == "ode" and not (m.generator_init or m.teacher):
        raise ConfigError("model.teacher: required for stage ode (the chunk-causal teacher the student starts from)")
    if cfg.export.image_size is not None:
        _check_size("export.image_size", cfg.export.image_size, d.spatial_stride)
    c = cfg.checkpoint
    if c.every < 0 or c.keep_last < 1:
        raise ConfigError("checkpoint.keep_last: must be >= 1 (and checkpoint.every >= 0)")
    if cfg.logging.every < 1:
        raise ConfigError(f"logging.every: must be >= 1, got {cfg.logging.every}")
    _choice("distributed.backend", cfg.distributed.backend, ("auto", "nccl", "gloo"))
    _choice("distributed.strategy", cfg.distributed.strategy, ("auto", "fsdp2", "none"))
    _choice("distributed.device", cfg.distributed.device, ("auto", "cpu", "cuda"))


def transformer_config(cfg: DistillConfig):
    """The student's (and teachers') transformer config: ``model.name`` or ``model.config_path``."""
    from sana_wm.model import SanaWMConfig

    m = cfg.model
    return named_config(m.name) if m.name is not None else SanaWMConfig.load_json(m.config_path)
