"""Tiny teachers, datasets and configs for the distillation tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_helpers import write_base_model, write_dataset  # noqa: E402

from sana_wm.distill import distill_config_from_dict  # noqa: E402

__all__ = ["distill_config", "write_base_model", "write_dataset"]


def distill_config(data_root: Path, output_dir: Path, teacher: Path, stage: str = "ode", **sections):
    """A tiny distillation config: the ``tiny`` model on 49-frame clips of 32x32 (7 latent frames of 4x4:
    chunks [4, 3]), batch 2, text hash; ``sections`` override (dicts are merged into their section)."""
    raw = {
        "output_dir": str(output_dir),
        "seed": 0,
        "stage": stage,
        "steps": 3,
        "model": {"name": "tiny", "teacher": str(teacher),
                  **({"generator_init": str(teacher), "score_init": str(teacher)} if stage == "self_forcing" else {})},
        "data": {"root": str(data_root), "window": 49, "size": [32, 32], "spatial_stride": 8, "batch_size": 2,
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
