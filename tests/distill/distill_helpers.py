"""Tiny teachers, datasets and configs for the distillation tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_helpers import free_port, write_base_model, write_dataset  # noqa: E402

from sana_wm.distill import distill_config_from_dict  # noqa: E402

__all__ = ["distill_config", "free_port", "rank_worker", "write_base_model", "write_dataset"]


def write_model_config(path: Path) -> Path:
    """The ``tiny`` transformer with 1-frame chunks: 4 latent frames make 3 chunks ``[2, 1, 1]``, so a rollout has
    several chunks and a cache at the smallest cost."""
    import dataclasses

    from sana_wm.model import get_config

    dataclasses.replace(get_config("tiny"), chunk_frames=1).save_json(path)
    return path


def distill_config(data_root: Path, output_dir: Path, teacher: Path, stage: str = "ode", **sections):
    """A tiny distillation config: the ``tiny`` model with 1-frame chunks on 25-frame clips of 16x16 (4 latent
    frames of 2x2: chunks [2, 1, 1]), batch 2, text hash; ``sections`` override (dicts are merged into their
    section)."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    model_config = write_model_config(output_dir.parent / "tiny-chunk1.json")
    raw = {
        "output_dir": str(output_dir),
        "seed": 0,
        "stage": stage,
        "steps": 3,
        "model": {"name": None, "config_path": str(model_config), "teacher": str(teacher),
                  **({"generator_init": str(teacher), "score_init": str(teacher)} if stage == "self_forcing" else {})},
        "data": {"root": str(data_root), "window": 25, "size": [16, 16], "spatial_stride": 8, "batch_size": 2,
                 "shuffle": False, "window_mode": "start", "text": "hash"},
        "ode_data": {"dir": str(output_dir.parent / "ode_data"), "teacher_steps": 6, "teacher_shift": 3.0,
                     "clips_per_shard": 3},
        "self_forcing": {"generator_every": 2},
        "checkpoint": {"every": 0, "keep_last": 3},
        "logging": {"progress_bar": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return distill_config_from_dict(raw)


def rank_worker(rank: int, world_size: int, port: int, cfg, out: dict) -> None:
    """One gloo rank of a ``torch.multiprocessing.spawn`` run: ``ode-data`` for an ``ode`` config, else the stage
    (every rank reports its exit steps)."""
    import os

    import torch

    from sana_wm.distill import run_distill, write_ode_data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if cfg.stage == "ode":  # the trajectories only
        out["folder"] = str(write_ode_data(cfg, progress=False))
        return
    result = run_distill(cfg)
    out[f"exit_steps_{rank}"] = result.exit_steps
    if rank == 0:
        out["losses"] = result.losses
        out["student"] = str(result.student)
