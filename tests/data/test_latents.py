"""LatentCache: computed once, reused across instances, recomputed when the clip or the encoder changes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from data_helpers import make_clip

from sana_wm.data import LatentCache, prepare_clip, read_clips, write_clips


class CountingEncoder:
    """A tiny deterministic stand-in for the video VAE: 4x4 spatial average pooling."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert x.shape[:2] == (1, 3) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        return F.avg_pool3d(x, (1, 4, 4))


def test_latents_are_computed_once_and_invalidated(tmp_path):
    clip = make_clip("scene", num_frames=5, height=16, width=24)
    enc = CountingEncoder()
    cache = LatentCache(tmp_path)
    first = cache.get_or_compute(clip, enc, "avgpool4")
    assert enc.calls == 1 and first.latents.shape == (1, 3, 5, 4, 6)
    assert (tmp_path / "latents" / "scene.safetensors").exists()
    again = cache.get_or_compute(clip, enc, "avgpool4")
    assert enc.calls == 1 and torch.equal(again.latents, first.latents)

    reopened = LatentCache(tmp_path)  # a new process reads what the first one wrote
    loaded = reopened.get_or_compute(make_clip("scene", num_frames=5, height=16, width=24), enc, "avgpool4")
    assert enc.calls == 1 and reopened.stats.hits == 1
    np.testing.assert_array_equal(loaded.c2w.numpy(), clip.c2w)
    np.testing.assert_array_equal(loaded.intrinsics.numpy(), clip.intrinsics)
    assert (loaded.fps, loaded.width, loaded.height) == (16.0, 24, 16)

    changed = make_clip("scene", num_frames=5, height=16, width=24)
    changed.frames[2, 3, 4, 0] ^= 1  # one value of one pixel
    cache.get_or_compute(changed, enc, "avgpool4")
    assert enc.calls == 2 and cache.stats.stale == 1
    cache.get_or_compute(changed, enc, "avgpool4-v2")  # another encoder
    assert enc.calls == 3 and cache.stats.stale == 2
    assert cache.load("scene").encoder_id == "avgpool4-v2"
    assert cache.load("missing") is None
    assert sorted(p.name for p in (tmp_path / "latents").iterdir()) == ["scene.safetensors"]  # no temp files


def test_encode_a_stored_dataset_at_model_resolution(tmp_path):
    write_clips([make_clip(f"c{i}", num_frames=13, height=30, width=40, fps=24.0, seed=i) for i in range(3)],
                tmp_path, frames_codec="npz")
    enc = CountingEncoder()
    cache = LatentCache(tmp_path)
    prepared = [prepare_clip(c, size=(16, 24), fps=12.0, num_frames=5) for c in read_clips(tmp_path)]
    assert prepared[0].frames.shape == (5, 16, 24, 3) and prepared[0].fps == 12.0
    cache.encode_all(prepared, enc, "avgpool4")
    cache.encode_all(prepared, enc, "avgpool4")
    assert enc.calls == 3 and cache.stats.hits == 3
    entry = cache.load("c1")
    np.testing.assert_array_equal(entry.intrinsics.numpy(), prepared[1].intrinsics)
    assert entry.latents.shape == (1, 3, 5, 4, 6)
