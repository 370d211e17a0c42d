"""Shared helpers of the model tests."""


import numpy as np
import torch
from scipy.spatial.transform import Rotation

from random_weights import randomize_  # noqa: F401 (re-exported for the tests here)
from sana_wm.camera.conditioning import prepare_camera


def camera_inputs(batch: int, frames: int, height: int, width: int):
    """Smooth turning, climbing, forward-moving paths through ``prepare_camera``: (camera_vector, plucker).
    Each batch row has its own path (row b turns and moves differently), so a model that mixes up or
    broadcasts rows' cameras fails the parity tests."""
    n_raw = 8 * (frames - 1) + 1
    s = np.linspace(0.0, 1.0, n_raw)
    vectors, pluckers = [], []
    for b in range(batch):
        turn, lift, forward = 0.6 - 0.5 * b, 0.2 + 0.15 * b, 1.5 - 0.7 * b
        c2w = np.tile(np.eye(4), (n_raw, 1, 1))
        angles = np.stack([turn * s, lift * np.sin(3 * s), 0.1 * s], -1)
        c2w[:, :3, :3] = Rotation.from_euler("yxz", angles).as_matrix()
        c2w[:, :3, 3] = np.stack([(0.8 - 0.6 * b) * s, 0.1 * np.sin(5 * s), forward * s], -1)
        cam = prepare_camera(c2w, [150.0, 140.0, 96.0, 64.0], target_size=(32 * height, 32 * width)).batched(1)
        vectors.append(cam.camera_vector)
        pluckers.append(cam.plucker)
    return torch.cat(vectors), torch.cat(pluckers)


def model_inputs(config, batch=2, frames=5, height=4, width=6, text_len=7, seed=2):
    """Keyword inputs of ``SanaWMTransformer.forward`` with per-frame timesteps differing across frames
    (and fractional, to exercise the flooring) and a padded text in the second sample."""
    g = torch.Generator().manual_seed(seed)
    camera_vector, plucker = camera_inputs(batch, frames, height, width)
    timestep = torch.rand(batch, 1, frames, generator=g) * 1000
    timestep[:, :, 0] = 0.0  # the clean conditioning frame
    text_mask = torch.ones(batch, text_len)
    text_mask[1:, text_len - 2:] = 0
    return dict(
        latents=torch.randn(batch, config.in_channels, frames, height, width, generator=g),
        timestep=timestep,
        text=torch.randn(batch, 1, text_len, config.caption_channels, generator=g),
        text_mask=text_mask,
        camera_vector=camera_vector,
        plucker=plucker,
    )


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()
