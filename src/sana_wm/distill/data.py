"""Clips -> model inputs for the distiller, with the trainer's pieces: its dataset classes, its latent and
text stand-ins or caches, and :func:`~sana_wm.train.data.build_batch`."""

from __future__ import annotations

import torch
from torch import Tensor

from sana_wm.data import CachedLatentDataset, ClipDataset, LatentCache
from sana_wm.distill.config import transformer_config
from sana_wm.errors import ConfigError
from sana_wm.samplers.conditioning import Conditioning
from sana_wm.train.data import HashTextEncoder, ModelBatch, SyntheticEncoder, build_batch
from sana_wm.train.distributed import DistEnv
from sana_wm.train.text_states import CaptionStates

__all__ = ["DistillData", "batch_conditioning"]


class DistillData:
    """The dataset of ``cfg.data`` split over ranks, and the conversion of its samples to a
    :class:`~sana_wm.train.data.ModelBatch`. ``null_caption (L, C)``: the model's null caption, every
    sample's text when ``data.text`` is ``none``."""

    def __init__(self, cfg, env: DistEnv, null_caption: Tensor, *, shuffle: bool | None = None,
                 window_mode: str | None = None) -> None:
        d = cfg.data
        self.data, self.null_caption = d, null_caption.detach().float().cpu()
        kind = CachedLatentDataset if d.latents == "latent_cache_only" else ClipDataset
        self.dataset = kind(d.root, window=d.window, fps=d.fps, size=tuple(d.size), crop=d.crop, seed=cfg.seed,
                            shuffle=d.shuffle if shuffle is None else shuffle,
                            window_mode=window_mode or d.window_mode,
                            quality_ranges={k: tuple(v) for k, v in d.quality_ranges.items()}, load_depth=False,
                            rank=env.rank, world_size=env.world_size)
        channels = null_caption.shape[-1]
        self.encoder = SyntheticEncoder(transformer_config(cfg).in_channels, d.spatial_stride)
        if d.text == "none":
            self.text_encoder = self._null_states
        elif d.text == "text_cache":
            self.text_encoder = CaptionStates([d.root], channels=channels)
        else:
            self.text_encoder = HashTextEncoder(channels, null_caption.shape[0])
        self.latent_cache = LatentCache(d.root) if d.latents == "latent_cache" else None

    def _null_states(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        n = len(captions)
        return self.null_caption.expand(n, -1, -1).clone(), torch.ones(n, self.null_caption.shape[0], dtype=torch.bool)

    def batch(self, samples: list[dict]) -> ModelBatch:
        return build_batch(samples, encoder=self.encoder, text_encoder=self.text_encoder,
                           spatial_stride=self.data.spatial_stride, camera=self.data.camera,
                           latent_cache=self.latent_cache)

    def negative_text(self, prompt: str, batch: int) -> tuple[Tensor, Tensor]:
        """The states of the unconditional prompt, repeated for ``batch`` rows. From the caption states it is
        read as a negative (no instruction prefix); the empty prompt is always stored there, another one must
        have been stored with ``sana-wm data encode-text --negative-prompt``."""
        if isinstance(self.text_encoder, CaptionStates):
            text, mask = self.text_encoder.negative_prompt(prompt)
        else:
            text, mask = self.text_encoder([prompt])
        return text.expand(batch, -1, -1), mask.expand(batch, -1)

    def check_negative(self, prompt: str, key: str) -> None:
        """Refuse, before any work, a negative prompt (the config's ``key``) whose states are not stored."""
        try:
            self.negative_text(prompt, 1)
        except FileNotFoundError as err:
            raise ConfigError(f"{key}: {err}") from None


def batch_conditioning(batch: ModelBatch) -> Conditioning:
    """The prompt and camera of ``batch`` as the samplers take them."""
    return Conditioning(batch.text, batch.text_mask, batch.camera_vector, batch.plucker)
