"""Tiny synthetic datasets and configs for the trainer tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np

from sana_wm.camera.trajectory import Intrinsics
from sana_wm.data import Clip, ShardWriter
from sana_wm.train import config_from_dict

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "train"


def smooth_frames(num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(F, size, size, 3)`` uint8: a few drifting colour gradients, different for every clip."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    freq = rng.uniform(0.5, 1.5, size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=3)
    speed = rng.uniform(-0.1, 0.1, size=3)
    frames = []
    for f in range(num_frames):
        chans = [0.5 + 0.4 * np.sin(2 * np.pi * (freq[c, 0] * x + freq[c, 1] * y) + phase[c] + speed[c] * f)
                 for c in range(3)]
        frames.append(np.stack(chans, axis=-1))
    return np.clip(np.round(np.stack(frames) * 255), 0, 255).astype(np.uint8)


def camera_path(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``(F, 4, 4)`` a camera moving forward while yawing at a random rate."""
    yaw_rate, speed = rng.uniform(-0.05, 0.05), rng.uniform(0.05, 0.3)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    for f in range(num_frames):
        c, s = np.cos(yaw_rate * f), np.sin(yaw_rate * f)
        c2w[f, :3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
        c2w[f, :3, 3] = [0.0, 0.0, speed * f]
    return c2w


def write_dataset(root: Path, num_clips: int, *, num_frames: int = 9, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with ShardWriter(root, frames_codec="npz", max_clips_per_shard=64) as writer:
        for i in range(num_clips):
            intr = Intrinsics.from_fov(60.0, size, size, num_frames)
            writer.write(Clip(key=f"clip{i:03d}", frames=smooth_frames(num_frames, size, rng),
                              c2w=camera_path(num_frames, rng), intrinsics=intr.values, fps=16.0,
                              caption=f"scene {i % 3}"))
    return root


def write_base_model(directory: Path, seed: int = 0) -> Path:
    """A seeded random ``tiny`` model directory: the stand-in for released weights that LoRA adapts."""
    import torch

    from sana_wm.model import SanaWMTransformer, get_config, save_pretrained

    torch.manual_seed(seed)
    return save_pretrained(SanaWMTransformer(get_config("tiny")), directory)


def lora_config(data_root: Path, output_dir: Path, base: Path, **sections):
    """The ``synthetic_tiny_lora`` config on ``data_root`` and the base model ``base``, with overrides."""
    model = {"name": "tiny", "init_from": str(base), **sections.pop("model", {})}
    return tiny_config(data_root, output_dir, file="synthetic_tiny_lora.yaml", model=model, **sections)


def tiny_config(data_root: Path, output_dir: Path, file: str = "synthetic_tiny.yaml", **sections):
    """The ``synthetic_tiny`` training config (or another of configs/train) pointed at ``data_root``, with
    section overrides (a dict value is merged into the section, anything else replaces it)."""
    import yaml

    raw = yaml.safe_load((CONFIG_DIR / file).read_text())
    raw["output_dir"] = str(output_dir)
    raw["data"]["root"] = str(data_root)
    raw.setdefault("logging", {})["progress_bar"] = False
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_from_dict(raw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_worker(rank: int, world_size: int, port: int, cfg, out: dict) -> None:
    """One gloo rank of a ``torch.multiprocessing.spawn`` training run; rank 0 reports into ``out``."""
    import torch

    from sana_wm.train import run_training

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = run_training(cfg)
    if rank == 0:
        out["losses"] = result.losses
        out["val_losses"] = result.val_losses
        out["checkpoint"] = str(result.checkpoint)
