"""How much memory a generation needs, component by component, and how much the device has.

The estimate is a small typed model: one :class:`MemoryComponent` (a name, a byte count and the stage of the
run that holds it) per thing that takes memory, so that a caller can print it, a test can check each part and
a planner can change one part (a lower-precision weight, an offloaded encoder) without touching the others.

Stages: ``loaded`` components are already on the device when the estimate is made (the weights the pipeline
loaded there), so the memory the device reports as available excludes them; ``prompt`` ones are held only while
the prompt is encoded (an offloaded text encoder moved in); ``sample`` ones while the video is sampled, refined,
decoded and written, which overlap chunk by chunk. The run needs ``max(prompt, sample)`` beyond what is loaded.
``first`` ones are held before anything else is loaded and freed before it is (the text encoders run first, as
``generate`` does with ``sana-wm encode-prompt``'s path), so the peak is ``max(first, loaded + needed)``.

Every formula is meant as an upper bound that is not absurd: ``tests/pipeline/test_memory.py`` measures the peak
resident memory of generations of the bundled model and checks ``measured <= estimate`` and that the estimate
without its fixed runtime workspace is at most 3 times the measured peak.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from sana_wm.errors import LimitError
from sana_wm.pipeline.errors import OptionError

__all__ = ["FIRST", "LOADED", "PROMPT", "SAMPLE", "GenerationShape", "InsufficientMemoryError", "MemoryComponent",
           "MemoryEstimate", "available_bytes", "estimate_generation", "host_available_bytes", "module_bytes",
           "offloaded", "refusal"]

FIRST, LOADED, PROMPT, SAMPLE = "first", "loaded", "prompt", "sample"

# Activations of one transformer block per token, in units of the hidden width: the block input and its norm,
# q/k/v and the attention output for the main and the camera branch, the Mix-FFN's widened hidden state (counted
# by mlp_ratio below) and the residual sums; doubled for the temporaries the kernels allocate around them.
_BLOCK_WIDTHS = 24
# Tensors of the size of the latents the sampler keeps at once (state, velocity, noise, the x0 estimate).
_SAMPLER_COPIES = 4
# The VAE decoder's working set per output pixel value: a convolutional decoder widens to hundreds of channels
# just before the last upsampling; a codec without convolutions (the bundled patch codec) works in place.
_CONV_DECODER_FACTOR = 48
_LINEAR_DECODER_FACTOR = 4
# What a run allocates beyond its tensors: torch's thread pools and allocator slack, the video encoder's buffers
# (x264 keeps a few dozen frames of look-ahead), on CUDA the cuBLAS/cuDNN workspaces and fragmentation.
_RUNTIME_BYTES = {"cpu": 128 * 2**20, "cuda": 1024 * 2**20}


@dataclass(frozen=True)
class MemoryComponent:
    """One thing that takes memory during a generation."""

    name: str
    bytes: int
    stage: str  # FIRST, LOADED, PROMPT or SAMPLE


@dataclass(frozen=True)
class MemoryEstimate:
    """The components of one generation on one device (``"cpu"`` or ``"cuda"``)."""

    device: str
    components: tuple[MemoryComponent, ...]

    def stage_bytes(self, stage: str) -> int:
        return sum(c.bytes for c in self.components if c.stage == stage)

    @property
    def needed_bytes(self) -> int:
        """What the run needs beyond what is already loaded: the larger of its two stages."""
        return max(self.stage_bytes(PROMPT), self.stage_bytes(SAMPLE))

    @property
    def peak_bytes(self) -> int:
        """Loaded weights plus :attr:`needed_bytes`, or what runs first if that is more: the peak of the run."""
        return max(self.stage_bytes(FIRST), self.stage_bytes(LOADED) + self.needed_bytes)

    def stage_peaks(self) -> dict[str, int]:
        """The peak of each stage of the run: what is resident while it runs."""
        loaded = self.stage_bytes(LOADED)
        peaks = {stage: loaded + self.stage_bytes(stage) for stage in (PROMPT, SAMPLE) if self.stage_bytes(stage)}
        if self.stage_bytes(FIRST):
            peaks = {FIRST: self.stage_bytes(FIRST), **peaks}
        return peaks or {SAMPLE: loaded}

    def table(self) -> str:
        """One line per component, largest first, for a report or a ``--debug`` message."""
        rows = sorted(self.components, key=lambda c: -c.bytes)
        return "\n".join(f"{c.name:<32s} {c.stage:<7s} {_gib(c.bytes)}" for c in rows)


@dataclass(frozen=True)
class GenerationShape:
    """The sizes of one generation that its memory depends on (read from a loaded pipeline)."""

    variant: str  # bidirectional | chunk-causal | streaming
    num_frames: int  # video frames generated
    latent_frames: int
    latent_hw: tuple[int, int]
    image_hw: tuple[int, int]  # (H, W) of the video
    latent_channels: int
    chunk_frames: int  # latent frames per streaming chunk
    guided: bool  # classifier-free guidance doubles the batch
    hidden_size: int
    depth: int
    mlp_ratio: float
    act_bytes: int  # element size of the transformer's activations
    conv_decoder: bool  # the VAE decodes with convolutions (LTX-2) rather than a linear codec
    keep_frames: bool  # every decoded frame is kept in memory (no output file, or keep_frames)
    refiner_hidden: int = 0  # 0: no refiner runs
    refiner_frames: int = 0  # latent frames the refiner refines at once (a block when streaming)
    refiner_layers: int = 0
    refiner_window_frames: int = 0  # latent frames of K/V the streaming refiner keeps (0: not streaming)
    refiner_ffn_ratio: float = 4.0  # LTX-2's feed-forward widens 4x
    vae_act_bytes: int = 4  # element size of the VAE decoder's activations (its dtype: float32 on the CPU)

    @property
    def frames_at_once(self) -> int:
        """Latent frames one transformer call sees: the first chunk (it also holds the image) when streaming."""
        if self.variant == "streaming":
            return min(self.latent_frames, self.chunk_frames + 1)
        return self.latent_frames

    @property
    def decoded_at_once(self) -> int:
        """Video frames the decoder produces in one call: a chunk's when streaming, else the whole video."""
        if self.variant == "streaming":
            return min(self.num_frames, 8 * (self.chunk_frames + 1))
        return self.num_frames


def _tensors_of(module) -> list[torch.Tensor]:
    """The parameters and buffers of a module, of an object that lists its own (``RefinerTransformer``: those on
    its device), or of the ``nn.Module`` attributes of an object holding modules (``VideoVAE``)."""
    if isinstance(module, torch.nn.Module) or hasattr(module, "buffers"):
        return [*module.parameters(), *module.buffers()]
    return [t for m in vars(module).values() if isinstance(m, torch.nn.Module)
            for t in (*m.parameters(), *m.buffers())]


def module_bytes(module) -> int:
    """Bytes of a module's parameters and buffers (:func:`_tensors_of`), each tensor once."""
    seen: set[int] = set()
    total = 0
    for t in _tensors_of(module):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def _module_device(module) -> torch.device | None:
    return next((t.device for t in _tensors_of(module)), None)


def _weights(name: str, module, device: torch.device, moved_in_for: str) -> list[MemoryComponent]:
    """A module's weights: loaded when it lives on ``device``; else moved in (offload) for its stage."""
    if module is None:
        return []
    where = _module_device(module)
    stage = LOADED if where is None or where.type == device.type else moved_in_for
    return [MemoryComponent(name, module_bytes(module), stage)]


def runtime_bytes(device_type: str) -> int:
    """The fixed workspace a run needs on ``device_type`` beside its tensors."""
    return _RUNTIME_BYTES.get(device_type, _RUNTIME_BYTES["cuda"])


def shape_components(shape: GenerationShape, device_type: str) -> list[MemoryComponent]:
    """The activations, caches, latents and frames of a generation of ``shape`` (weights not included)."""
    h, w = shape.latent_hw
    H, W = shape.image_hw
    batch = 2 if shape.guided else 1
    tokens = batch * shape.frames_at_once * h * w
    widths = _BLOCK_WIDTHS + 2 * shape.mlp_ratio
    parts = [
        MemoryComponent("transformer activations", int(tokens * shape.hidden_size * shape.act_bytes * widths),
                        SAMPLE),
        MemoryComponent("sampler latents", _SAMPLER_COPIES * batch * shape.latent_channels * shape.frames_at_once
                        * h * w * 4, SAMPLE),
        # The decode stage keeps every latent chunk on the CPU and joins them at the end; a resume file's saver
        # keeps its own joined copy.
        MemoryComponent("latents of the video", 3 * shape.latent_channels * shape.latent_frames * h * w * 4, SAMPLE),
        # The decoder's float output, its uint8 copy and the action overlay's copy.
        MemoryComponent("decoded frames", shape.decoded_at_once * H * W * 3 * (4 + 1 + 1), SAMPLE),
        MemoryComponent("VAE decoder activations", shape.decoded_at_once * H * W * 3 * shape.vae_act_bytes
                        * (_CONV_DECODER_FACTOR if shape.conv_decoder else _LINEAR_DECODER_FACTOR), SAMPLE),
        MemoryComponent("runtime workspace", runtime_bytes(device_type), SAMPLE),
    ]
    if shape.variant == "streaming":
        # Per block a K/V window of the sink chunk and the last chunk for both branches (an upper bound for the
        # GDN blocks too, whose states and short-conv tails are smaller); the sampler holds the old cache and
        # the new one at once.
        window = (2 * shape.chunk_frames + 1) * h * w
        per_block = 2 * 2 * batch * window * shape.hidden_size * shape.act_bytes
        parts.append(MemoryComponent("streaming cache", 2 * shape.depth * per_block, SAMPLE))
    if shape.keep_frames:
        parts.append(MemoryComponent("frames kept in memory", shape.num_frames * H * W * 3, SAMPLE))
    if shape.refiner_hidden:
        r_tokens = shape.refiner_frames * h * w
        widths = _BLOCK_WIDTHS + 2 * shape.refiner_ffn_ratio
        parts.append(MemoryComponent("refiner activations", int(r_tokens * shape.refiner_hidden * shape.act_bytes
                                                                * widths), SAMPLE))
        if shape.refiner_window_frames:
            # Keys and values of every layer for the window, and for the block being refined, which joins it.
            frames = shape.refiner_window_frames + shape.refiner_frames
            parts.append(MemoryComponent("refiner K/V window", 2 * shape.refiner_layers * frames * h * w
                                         * shape.refiner_hidden * shape.act_bytes, SAMPLE))
    return parts


def estimate_generation(pipe, num_frames: int, *, guided: bool, refine: bool, keep_frames: bool = False,
                        variant: str | None = None, refiner_block_frames: int = 3,
                        refiner_kv_frames: int = 11) -> MemoryEstimate:
    """The memory a generation of ``num_frames`` video frames needs on ``pipe``'s device (``variant``: as if
    the pipeline held that variant, for advice; ``refiner_*``: the streaming refiner's block and K/V window)."""
    device = pipe.device
    config = pipe.transformer.config
    vae = pipe.vae
    variant = variant or pipe.variant
    latent_frames = vae.num_latent_frames(num_frames)
    stride = vae.spatial_stride
    H, W = pipe.image_size
    refiner = pipe.refiner if refine else None
    refiner_hidden = refiner_frames = refiner_layers = refiner_window = 0
    if refiner is not None:
        rc = refiner.transformer.config
        refiner_hidden = int(rc.num_attention_heads * rc.attention_head_dim)
        refiner_layers = int(rc.num_layers)
        streaming = variant == "streaming"
        refiner_frames = refiner_block_frames if streaming else latent_frames
        refiner_window = refiner_kv_frames if streaming else 0
    shape = GenerationShape(
        variant=variant, num_frames=num_frames, latent_frames=latent_frames, latent_hw=(H // stride, W // stride),
        image_hw=(H, W), latent_channels=vae.latent_channels, chunk_frames=int(config.chunk_frames), guided=guided,
        hidden_size=int(config.hidden_size), depth=int(config.depth), mlp_ratio=float(config.mlp_ratio),
        act_bytes=torch.finfo(pipe.transformer.dtype).bits // 8,
        conv_decoder=any(isinstance(m, torch.nn.Conv3d) for m in vae.vae.modules()),
        vae_act_bytes=next((t.element_size() for t in (*vae.vae.parameters(), *vae.vae.buffers())
                            if t.is_floating_point()), 4),
        keep_frames=keep_frames, refiner_hidden=refiner_hidden, refiner_frames=refiner_frames,
        refiner_layers=refiner_layers, refiner_window_frames=refiner_window)
    parts = _weights("transformer weights", pipe.transformer, device, SAMPLE)
    parts += _weights("text encoder weights", pipe.text_encoder, device, PROMPT)
    parts += _weights("VAE weights", vae, device, SAMPLE)
    if refiner is not None:
        parts += _weights("refiner weights", refiner.transformer, device, SAMPLE)
        parts += _weights("refiner text encoder weights", getattr(refiner, "text_encoder", None), device, PROMPT)
    parts += shape_components(shape, device.type)
    return MemoryEstimate(device.type, tuple(parts))


# Weights that ``--offload`` keeps on the CPU and moves in for their stage.
_OFFLOADABLE = {"text encoder weights": PROMPT, "refiner text encoder weights": PROMPT, "VAE weights": SAMPLE,
                "refiner weights": SAMPLE}


def offloaded(estimate: MemoryEstimate) -> MemoryEstimate:
    """``estimate`` as it would be with offload: the auxiliary models' weights held only during their stage."""
    return MemoryEstimate(estimate.device, tuple(
        MemoryComponent(c.name, c.bytes, _OFFLOADABLE.get(c.name, c.stage)) if c.stage == LOADED else c
        for c in estimate.components))


# -- what the device has ---------------------------------------------------------------------------------
def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The room left under a cgroup v2 memory limit (a container's limit is often far below the host's RAM)."""
    try:
        limit = (root / "memory.max").read_text().strip()
        current = int((root / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(0, int(limit) - current)


def host_available_bytes() -> int | None:
    """The host memory a new allocation can get without swapping: ``MemAvailable`` of ``/proc/meminfo``, lowered
    to the room under the container's cgroup limit; None where neither can be read (not Linux)."""
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    return min(found) if found else None


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (None when it cannot be known)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        return host_available_bytes()
    return None


class InsufficientMemoryError(OptionError, LimitError):
    """The estimate of a generation exceeds the memory the device has; names both and settings that fit."""


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n < 10 * 2**30 else f"{n / 2**30:.0f} GiB"


def refusal(estimate: MemoryEstimate, available: int, num_frames: int, fps: float, variant: str,
            advice: Iterable[str]) -> InsufficientMemoryError:
    """The error for a run that does not fit: the estimate, what is available, the largest parts and what fits."""
    where = "GPU memory" if estimate.device == "cuda" else "host memory"
    largest = sorted((c for c in estimate.components if c.stage != LOADED), key=lambda c: -c.bytes)[:2]
    parts = ", ".join(f"{c.name} {_gib(c.bytes)}" for c in largest)
    tips = "; ".join(advice) or "use a machine with more memory"
    seconds = (num_frames - 1) / fps if fps else math.nan
    return InsufficientMemoryError(
        f"this {variant} run of {num_frames} frames ({seconds:.1f} s) needs about {_gib(estimate.needed_bytes)} of "
        f"{where} beyond the loaded weights ({parts}), but {_gib(available)} is available.\n"
        f"Try: {tips}; or skip this check ({{memory_check}}) if you know it fits")
