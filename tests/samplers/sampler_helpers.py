"""Fakes and inputs shared by the sampler tests."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

import numpy as np
import torch
from torch import Tensor

from random_weights import randomize_  # noqa: F401 (re-exported for the tests here)
from sana_wm.camera.conditioning import prepare_camera
from sana_wm.samplers import Conditioning

C, H, W = 16, 4, 6  # latent channels of the "tiny" config, latent grid


def conditioning(batch: int, frames: int, text_len: int = 5, caption_channels: int = 64, seed: int = 3,
                 camera: bool = True, still: bool = False) -> Conditioning:
    """A random prompt (padded in the second sample) and a forward-moving, turning camera path (``still``:
    the same prompt and lens on a camera that stays at the first pose)."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, text_len, caption_channels, generator=g)
    mask = torch.ones(batch, text_len)
    mask[1:, text_len - 2:] = 0
    if not camera:
        return Conditioning(text, mask)
    n_raw = 8 * (frames - 1) + 1
    s = np.linspace(0.0, 1.0, n_raw)
    c2w = np.tile(np.eye(4), (n_raw, 1, 1))
    angle = 0.5 * s
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = np.cos(angle), np.sin(angle), -np.sin(angle), np.cos(angle)
    c2w[:, :3, 3] = np.stack([0.5 * s, 0.05 * np.sin(4 * s), 1.2 * s], -1)
    if still:
        c2w[:] = np.eye(4)
    cam = prepare_camera(c2w, [150.0, 140.0, 96.0, 64.0], target_size=(32 * H, 32 * W)).batched(batch)
    return Conditioning(text, mask, cam.camera_vector, cam.plucker)


def first_frame(batch: int, seed: int = 4) -> Tensor:
    return torch.randn(batch, C, 1, H, W, generator=torch.Generator().manual_seed(seed))


def rel_err(a: Tensor, b: Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def tensor_bytes(obj) -> int:
    """Bytes of the distinct storages behind the tensors inside nested dataclasses / tuples (e.g. a
    StreamCache): what they keep alive, views of larger activations included."""
    storages = {}

    def visit(o):
        if isinstance(o, Tensor):
            storages[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
        elif is_dataclass(o):
            for f in fields(o):
                visit(getattr(o, f.name))
        elif isinstance(o, (tuple, list)):
            for item in o:
                visit(item)

    visit(obj)
    return sum(storages.values())


# ------------------------------------------------------------------------------------------------
# Fake models
# ------------------------------------------------------------------------------------------------
@dataclass
class Call:
    timestep: Tensor  # (B, 1, T) as given
    frames: int
    mode: str | None = None
    chunk_lengths: list[int] | None = None
    cache: object = None
    kv_window: object = None
    start_frame: int = 0


@dataclass(frozen=True)
class FakeCache:
    next_frame: int
    serial: int


@dataclass
class ExactFlow:
    """The velocity of the exact flow towards a known clean video ``x0 (B, C, T, H, W)``: from a state
    ``x`` at noise level ``sigma = t / 1000`` the noise must be ``(x - (1 - sigma) x0) / sigma``, so
    ``v = eps - x0 = (x - x0) / sigma`` (0 for clean frames). Records every call; also streams."""

    x0: Tensor
    calls: list[Call] = field(default_factory=list)

    def velocity(self, latents: Tensor, timestep: Tensor, start: int) -> Tensor:
        sigma = (timestep.reshape(latents.shape[0], 1, -1, 1, 1) / 1000).float()
        x0 = self.x0[:, :, start:start + latents.shape[2]].repeat(latents.shape[0] // self.x0.shape[0], 1, 1, 1, 1)
        return torch.where(sigma > 0, (latents - x0) / sigma.clamp(min=1e-12), torch.zeros_like(latents))

    def __call__(self, latents, timestep, text, text_mask=None, camera_vector=None, plucker=None,
                 mode="bidirectional", chunk_lengths=None):
        self.calls.append(Call(timestep.clone(), latents.shape[2], mode, list(chunk_lengths or [])))
        return self.velocity(latents, timestep, 0)

    def forward_chunk(self, latents, timestep, text, text_mask=None, camera_vector=None, plucker=None,
                      cache=None, kv_window=None):
        start = cache.next_frame if cache is not None else 0
        self.calls.append(Call(timestep.clone(), latents.shape[2], cache=cache, kv_window=kv_window,
                               start_frame=start))
        return self.velocity(latents, timestep, start), FakeCache(start + latents.shape[2], len(self.calls))


@dataclass
class ConstantVelocity:
    """``v = velocity`` whatever the input (sliced to the frames given); repeated over a CFG batch."""

    velocity: Tensor

    def __call__(self, latents, timestep, text, text_mask=None, camera_vector=None, plucker=None,
                 mode="bidirectional", chunk_lengths=None):
        v = self.velocity[:, :, :latents.shape[2]]
        return v.repeat(latents.shape[0] // v.shape[0], 1, 1, 1, 1)


class TextVelocity:
    """``v`` = the mean of each sample's text states, broadcast over its latents: tells prompts apart."""

    def __call__(self, latents, timestep, text, text_mask=None, camera_vector=None, plucker=None,
                 mode="bidirectional", chunk_lengths=None):
        level = text.reshape(text.shape[0], -1).mean(1).view(-1, 1, 1, 1, 1)
        return level * torch.ones_like(latents) + 0.1 * latents
