"""The training objective: rectified-flow matching on LTX-2 latents (reference §3.2, §7.3).

Conventions, shared with the samplers: ``x_sigma = (1 - sigma) x0 + sigma eps``, the model predicts the
velocity ``v = eps - x0`` and sees the timestep ``1000 sigma`` (which it floors to an integer).
Training sigmas are logit-normal (``sigmoid(N(mean, std))``) pushed through the flow shift
``s sigma / (1 + (s - 1) sigma)`` (``s = 9.95`` in the released recipe), so most training happens at
high noise, where the long-range structure of a video is decided.

Each sample draws its own noise plan (per-frame sigmas, which frames count in the loss, whether its
caption or camera is dropped) from its own generator, seeded by the run seed, the step and the clip's
key (:func:`sample_seed`). A sample therefore gets the same noise whichever rank or batch position it
lands on, which makes a run reproducible across world sizes and after a resume.

Two recipes:

* ``bidirectional`` (released ``task: ti2v``): one sigma for every frame of a sample.
* ``chunk_causal`` (released ``task: df``, diffusion forcing): one sigma per chunk of latent frames
  (the model's chunks, :func:`sana_wm.model.layout.chunk_schedule` of its ``chunk_frames``), drawn by one
  of four strategies chosen per sample with the released weights (:data:`CHUNK_STRATEGIES`).

In both, with probability ``image_condition_prob`` (0.9) latent frame 0 is the conditioning image: kept
clean (sigma 0, ``x = x0``) and left out of the loss. Otherwise the sample is plain text-to-video.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from sana_wm.errors import ConfigError

__all__ = [
    "CHUNK_STRATEGIES",
    "LOSS_WEIGHTINGS",
    "RECIPES",
    "NoisePlan",
    "ObjectiveConfig",
    "channel_loss_weights",
    "flow_loss",
    "logit_normal_sigmas",
    "make_noisy",
    "sample_chunk_sigmas",
    "sample_noise_plan",
    "sample_seed",
    "shift_sigmas",
]

RECIPES = ("bidirectional", "chunk_causal")
LOSS_WEIGHTINGS = ("flow", "x0")

CHUNK_STRATEGIES = ("same_t", "incremental", "last_chunk_anchor", "teacher_forcing_clean")
"""How the chunk-causal recipe draws per-chunk sigmas (``K`` chunks, ``c`` the *current* chunk):

* ``same_t``: every chunk shares one sigma; every chunk is in the loss (the bidirectional recipe
  under a chunk-causal mask).
* ``incremental``: ``c`` uniform in ``0..K-1``; chunks ``0..c`` get ``c + 1`` independent sigmas sorted
  so the noise never decreases along the video (earlier chunks are cleaner, as when generating
  autoregressively); chunks after ``c`` are pure noise (sigma 1) and left out of the loss. Causality
  makes them invisible to chunks ``0..c``, so they only cost compute.
* ``last_chunk_anchor``: ``incremental`` with ``c = K - 1``, so every chunk is trained.
* ``teacher_forcing_clean``: ``c`` uniform in ``1..K-1``; chunks before ``c`` are clean (sigma 0) and
  left out of the loss (at sigma 0 the target ``eps - x0`` is unpredictable), chunk ``c`` gets one
  sigma, later chunks are pure noise and left out: the teacher-forced next-chunk prediction.
"""

_RELEASED_MIXTURE = {"same_t": 0.1, "incremental": 0.4, "last_chunk_anchor": 0.4, "teacher_forcing_clean": 0.1}


@dataclass
class ObjectiveConfig:
    """Knobs of the objective; defaults are the released stage-1 recipe (reference §7.3, §5.5)."""

    recipe: str = "bidirectional"  # "bidirectional" (ti2v) or "chunk_causal" (diffusion forcing)
    shift: float = 9.95  # training flow shift
    logit_mean: float = 0.0
    logit_std: float = 1.0
    image_condition_prob: float = 0.9  # latent frame 0 kept clean and out of the loss
    caption_dropout_prob: float = 0.0  # caption replaced by the null caption (for CFG at inference)
    # "null_embedding": the model's y_embedder.y_embedding buffer (what the released training used);
    # "empty_prompt": the text encoder's embedding of "" (what inference feeds as the negative prompt).
    null_caption: str = "null_embedding"
    camera_dropout_prob: float = 0.0  # both camera branches masked out for the sample (camera_mask False)
    chunk_mixture: dict[str, float] = field(default_factory=lambda: dict(_RELEASED_MIXTURE))
    # "flow": plain velocity MSE (the released recipe). "x0": the velocity error of each frame weighted by
    # sigma^2, which is the MSE of the implied clean latent x0 = x_sigma - sigma v: it stops low-noise frames
    # (velocity error ~ x0 error / sigma) from dominating, for models sampled in a few high-noise steps.
    loss_weighting: str = "flow"
    # Per-channel loss weights from the autoencoder's latent statistics: a file or folder holding a
    # ``latents_std`` tensor (our codec's ``codec.safetensors``, or a model folder with one under
    # ``patch_codec/``). Channel ``c`` weighs ``std_c ** (2 * channel_weight_power)``, normalised to mean 1.
    # Training runs on per-channel normalised latents, where every channel weighs the same; with power 1 the
    # loss of a linear orthonormal codec (``sana_wm.bundled.codec``) becomes the pixel MSE, with 0.5 the
    # coarse channels weigh by their amplitude. None (default): every channel weighs 1.
    channel_weights: str | None = None
    channel_weight_power: float = 0.5

    def validate(self, where: str = "objective") -> None:
        """Raise ``ValueError`` naming the offending key."""
        if self.recipe not in RECIPES:
            raise ConfigError(f"{where}.recipe: expected one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if not self.shift > 0:
            raise ConfigError(f"{where}.shift: must be positive, got {self.shift}")
        if not self.logit_std > 0:
            raise ConfigError(f"{where}.logit_std: must be positive, got {self.logit_std}")
        for name in ("image_condition_prob", "caption_dropout_prob", "camera_dropout_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{where}.{name}: a probability must lie in [0, 1], got {p}")
        if self.null_caption not in ("null_embedding", "empty_prompt"):
            raise ConfigError(f"{where}.null_caption: expected 'null_embedding' or 'empty_prompt', "
                             f"got {self.null_caption!r}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ConfigError(f"{where}.loss_weighting: expected one of {', '.join(LOSS_WEIGHTINGS)}, "
                             f"got {self.loss_weighting!r}")
        if not self.channel_weight_power >= 0:
            raise ConfigError(f"{where}.channel_weight_power: must be >= 0, got {self.channel_weight_power}")
        unknown = sorted(set(self.chunk_mixture) - set(CHUNK_STRATEGIES))
        if unknown:
            raise ConfigError(f"{where}.chunk_mixture: unknown strategies {unknown}; "
                             f"known: {', '.join(CHUNK_STRATEGIES)}")
        weights = list(self.chunk_mixture.values())
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"{where}.chunk_mixture: weights must be >= 0 with a positive sum, got {weights}")


@dataclass
class NoisePlan:
    """How one sample is noised: ``sigma (T,)`` per latent frame, ``loss_mask (T,)`` (1 = in the loss)."""

    sigma: Tensor  # (T,) float32 in [0, 1]
    loss_mask: Tensor  # (T,) float32, 0 or 1
    image_condition: bool  # latent frame 0 clean and out of the loss
    drop_caption: bool
    drop_camera: bool
    strategy: str  # "bidirectional" or one of CHUNK_STRATEGIES


# ------------------------------------------------------------------------------------------------
# Sigma samplers
# ------------------------------------------------------------------------------------------------
def sample_seed(*parts) -> int:
    """A 63-bit generator seed from any printable parts (run seed, step, clip key...): stable across
    processes and Python versions (unlike ``hash``)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def shift_sigmas(sigma: Tensor, shift: float) -> Tensor:
    """The flow shift ``s sigma / (1 + (s - 1) sigma)`` (diffusers' ``FlowMatchEulerDiscreteScheduler``)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def logit_normal_sigmas(n: int, generator: torch.Generator, *, mean: float = 0.0, std: float = 1.0,
                        shift: float = 1.0) -> Tensor:
    """``n`` shifted logit-normal sigmas ``(n,)`` in ``(0, 1)``."""
    u = torch.sigmoid(mean + std * torch.randn(n, generator=generator, dtype=torch.float64))
    return shift_sigmas(u, shift).float()


def _uniform_int(low: int, high: int, generator: torch.Generator) -> int:
    """An integer uniform in ``low..high`` inclusive."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def sample_chunk_sigmas(num_chunks: int, strategy: str, generator: torch.Generator, *, mean: float = 0.0,
                        std: float = 1.0, shift: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-chunk ``sigma (K,)`` and ``loss_mask (K,)`` for one of :data:`CHUNK_STRATEGIES`."""
    K = num_chunks

    def draw(n: int) -> Tensor:
        return logit_normal_sigmas(n, generator, mean=mean, std=std, shift=shift)

    sigma = torch.ones(K)
    mask = torch.zeros(K)
    if strategy == "same_t":
        sigma[:] = draw(1)
        mask[:] = 1
    elif strategy in ("incremental", "last_chunk_anchor"):
        current = K - 1 if strategy == "last_chunk_anchor" else _uniform_int(0, K - 1, generator)
        sigma[:current + 1] = draw(current + 1).sort().values
        mask[:current + 1] = 1
    elif strategy == "teacher_forcing_clean":
        current = _uniform_int(1, K - 1, generator) if K > 1 else 0
        sigma[:current] = 0.0
        sigma[current] = draw(1)[0]
        mask[current] = 1
    else:
        raise ValueError(f"unknown chunk strategy {strategy!r}; known: {', '.join(CHUNK_STRATEGIES)}")
    return sigma, mask


def sample_noise_plan(cfg: ObjectiveConfig, num_frames: int, generator: torch.Generator, *,
                      chunk_lengths: list[int] | None = None, train: bool = True) -> NoisePlan:
    """The noise plan of one sample of ``num_frames`` latent frames. ``chunk_lengths``: the model's chunks
    (:func:`sana_wm.model.layout.chunk_schedule`), needed by the ``chunk_causal`` recipe. ``train=False``
    (validation) never drops the caption or the camera, so a validation loss measures the conditioned model."""
    T = num_frames
    if cfg.recipe == "bidirectional":
        strategy = "bidirectional"
        sigma = logit_normal_sigmas(1, generator, mean=cfg.logit_mean, std=cfg.logit_std,
                                    shift=cfg.shift).expand(T).clone()
        mask = torch.ones(T)
    else:
        names = list(cfg.chunk_mixture)
        weights = torch.tensor([cfg.chunk_mixture[n] for n in names], dtype=torch.float64)
        strategy = names[int(torch.multinomial(weights, 1, generator=generator))]
        if chunk_lengths is None or sum(chunk_lengths) != T:
            raise ValueError(f"the chunk_causal recipe needs the model's chunk_lengths over the {T} latent frames, "
                             f"got {chunk_lengths}")
        lengths = list(chunk_lengths)
        chunk_sigma, chunk_mask = sample_chunk_sigmas(len(lengths), strategy, generator, mean=cfg.logit_mean,
                                                      std=cfg.logit_std, shift=cfg.shift)
        repeats = torch.tensor(lengths)
        sigma = chunk_sigma.repeat_interleave(repeats)
        mask = chunk_mask.repeat_interleave(repeats)
    # Draw every decision even when its probability is 0, so changing one knob does not reshuffle the rest.
    coins = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    image_condition = T > 1 and coins[0] < cfg.image_condition_prob
    if image_condition:
        sigma[0] = 0.0
        mask[0] = 0.0
    drop_caption = train and coins[1] < cfg.caption_dropout_prob
    drop_camera = train and coins[2] < cfg.camera_dropout_prob
    return NoisePlan(sigma, mask, image_condition, drop_caption, drop_camera, strategy)


# ------------------------------------------------------------------------------------------------
# Noising and the loss
# ------------------------------------------------------------------------------------------------
def make_noisy(x0: Tensor, sigma: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """``x0, noise (B, C, T, H, W)``, ``sigma (B, T)`` -> the model input ``x_sigma`` and the target
    velocity ``eps - x0``. Frames with sigma 0 come out exactly as ``x0``."""
    s = sigma[:, None, :, None, None].to(x0.dtype)
    return (1 - s) * x0 + s * noise, noise - x0


def channel_loss_weights(source: str | Path, power: float, channels: int) -> Tensor:
    """``(channels,)`` float32 loss weights ``std ** (2 power)`` with mean 1, from the ``latents_std`` tensor of
    ``source``: a ``.safetensors`` file, a codec folder (``codec.safetensors``) or a model folder with one
    (``patch_codec/codec.safetensors``). See ``ObjectiveConfig.channel_weights``."""
    # The codec's file name and folder, from where they are defined (imported here: only a run with channel
    # weights needs them).
    from sana_wm.bundled import CODEC_DIR, LEGACY_CODEC_DIR
    from sana_wm.bundled.codec import WEIGHTS_NAME

    path = Path(source)
    if path.is_dir():
        candidates = (path / WEIGHTS_NAME, path / CODEC_DIR / WEIGHTS_NAME, path / LEGACY_CODEC_DIR / WEIGHTS_NAME)
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise FileNotFoundError(f"objective.channel_weights: {path} holds neither {WEIGHTS_NAME} nor "
                                    f"{CODEC_DIR}/{WEIGHTS_NAME}")
        path = found[0]
    elif not path.is_file():
        raise FileNotFoundError(f"objective.channel_weights: no such file or folder: {path}")
    with safe_open(str(path), framework="pt") as f:
        if "latents_std" not in f.keys():
            raise KeyError(f"objective.channel_weights: {path} has no 'latents_std' tensor "
                           f"(keys: {', '.join(sorted(f.keys())) or 'none'})")
        std = f.get_tensor("latents_std").double().flatten()
    if std.numel() != channels:
        raise ConfigError(f"objective.channel_weights: {path} has latents_std for {std.numel()} channels, "
                         f"the model takes {channels}")
    if not bool((std > 0).all()):
        raise ConfigError(f"objective.channel_weights: {path} has non-positive latents_std values")
    w = std.pow(2 * power)
    return (w / w.mean()).float()


def flow_loss(pred: Tensor, target: Tensor, loss_mask: Tensor, frame_weight: Tensor | None = None,
              channel_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """MSE over the frames in the loss, in float32: ``(mean over samples, per-sample (B,))``.

    Each sample is averaged over its own loss frames first, so samples weigh equally and the mean of
    per-rank losses (what data-parallel gradient averaging computes) is the global-batch loss.
    ``frame_weight (B, T)`` scales each frame's error (e.g. ``sigma ** 2``: ``loss_weighting: x0``),
    ``channel_weight (C,)`` each channel's (``objective.channel_weights``).
    """
    sq = (pred.float() - target.float()).square()
    if channel_weight is not None:
        sq = sq * channel_weight.to(sq)[None, :, None, None, None]
    err = sq.mean(dim=(1, 3, 4))  # (B, T)
    if frame_weight is not None:
        err = err * frame_weight.to(err)
    mask = loss_mask.to(err)
    per_sample = (err * mask).sum(1) / mask.sum(1).clamp_min(1)
    return per_sample.mean(), per_sample
