"""ClipDataset: splitting across ranks and workers, determinism, mid-epoch resume, bad data, windows."""

from __future__ import annotations

import json
import logging
import types

import numpy as np
import pytest
import torch
from data_helpers import make_clip
from torch.utils.data import DataLoader

import sana_wm.data.dataset as dataset_module
from sana_wm.data import ClipDataset, load_index, plan_streams, rebuild_index, write_clips

SMALL = {"num_frames": 3, "height": 8, "width": 8, "depth": False}


def _keys_of_stream(ds, monkeypatch, worker: int, workers: int) -> list[str]:
    """The keys one DataLoader worker of ``ds`` would produce (worker info faked: no processes needed)."""
    if workers == 0:
        return [s["key"] for s in ds]
    info = types.SimpleNamespace(id=worker, num_workers=workers)
    monkeypatch.setattr(dataset_module, "get_worker_info", lambda: info)
    try:
        return [s["key"] for s in ds]
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize(("num_clips", "per_shard"), [(14, 2), (5, 5)], ids=["7-shards", "1-shard"])
def test_streams_cover_every_clip_exactly_once(tmp_path, make_clips, monkeypatch, num_clips, per_shard):
    write_clips(make_clips(num_clips, **SMALL), tmp_path, frames_codec="npz", max_clips_per_shard=per_shard)
    everything = sorted(f"clip{i:03d}" for i in range(num_clips))
    for world in (1, 2, 3):
        for workers in (0, 1, 2, 3):
            keys = []
            for rank in range(world):
                ds = ClipDataset(tmp_path, rank=rank, world_size=world, seed=5)
                for worker in range(max(workers, 1)):
                    keys += _keys_of_stream(ds, monkeypatch, worker, workers)
            assert sorted(keys) == everything, f"world {world}, workers {workers}"


def test_shard_split_keeps_shards_whole_and_balanced(tmp_path, make_clips):
    index = write_clips(make_clips(14, **SMALL), tmp_path, frames_codec="npz", max_clips_per_shard=2)
    shard_of = {item: s for s, items in enumerate(index.shard_items()) for item in items}
    plans = plan_streams(index, 3, seed=0, epoch=0, shuffle=True)
    for plan in plans:
        shards = [shard_of[i] for i in plan]
        assert shards == sorted(shards, key=shards.index)  # each shard's clips are contiguous
    assert max(map(len, plans)) - min(map(len, plans)) <= 2


def test_order_is_deterministic_per_seed_and_epoch(tmp_path, make_clips):
    write_clips(make_clips(12, **SMALL), tmp_path, frames_codec="npz", max_clips_per_shard=3)

    def keys(seed, epoch, shuffle=True):
        ds = ClipDataset(tmp_path, seed=seed, shuffle=shuffle)
        ds.set_epoch(epoch)
        return [s["key"] for s in ds]

    assert keys(0, 0) == keys(0, 0)
    assert keys(0, 0) != keys(0, 1)
    assert keys(0, 0) != keys(1, 0)
    assert keys(0, 0, shuffle=False) == [f"clip{i:03d}" for i in range(12)]


def _signature(sample) -> tuple:
    return sample["key"], tuple(sample["frame_indices"].tolist()), int(sample["frames"].sum())


@pytest.fixture
def resume_root(tmp_path, make_clips):
    write_clips(make_clips(11, num_frames=12, height=12, width=16, depth=False), tmp_path, frames_codec="npz",
                max_clips_per_shard=2)
    return tmp_path


def _resume_dataset(root):
    return ClipDataset(root, window=4, fps=8.0, size=(8, 8), crop="random", seed=3)


@pytest.mark.parametrize("stop_after", [3, 4, 9])
def test_resume_with_workers_continues_the_exact_sequence(resume_root, stop_after):
    full = [_signature(s) for s in DataLoader(_resume_dataset(resume_root), num_workers=2, batch_size=None)]
    assert len(full) == 11

    first_ds = _resume_dataset(resume_root)
    it = iter(DataLoader(first_ds, num_workers=2, batch_size=None))
    first = []
    for _ in range(stop_after):
        sample = next(it)
        first_ds.update_progress(sample)
        first.append(_signature(sample))
    state = json.loads(json.dumps(first_ds.state_dict()))  # what a checkpoint would hold
    del it

    resumed_ds = _resume_dataset(resume_root)
    resumed_ds.load_state_dict(state)
    rest = [_signature(s) for s in DataLoader(resumed_ds, num_workers=2, batch_size=None)]
    assert first + rest == full


def test_resume_with_batches_and_in_process(resume_root):
    def run(ds, **kw):
        return [k for b in DataLoader(ds, batch_size=2, **kw) for k in b["key"]]

    full = run(_resume_dataset(resume_root), num_workers=2)
    ds = _resume_dataset(resume_root)
    it = iter(DataLoader(ds, batch_size=2, num_workers=2))
    first = []
    for _ in range(2):
        batch = next(it)
        assert batch["progress"].shape == (2, len(dataset_module.PROGRESS_FIELDS))
        ds.update_progress(batch)
        first += batch["key"]
    del it
    resumed = _resume_dataset(resume_root)
    resumed.load_state_dict(ds.state_dict())
    assert first + run(resumed, num_workers=2) == full

    # num_workers=0: iterating records progress by itself.
    full0 = [s["key"] for s in _resume_dataset(resume_root)]
    ds0 = _resume_dataset(resume_root)
    it0 = iter(ds0)
    first0 = [next(it0)["key"] for _ in range(5)]
    resumed0 = _resume_dataset(resume_root)
    resumed0.load_state_dict(ds0.state_dict())
    assert first0 + [s["key"] for s in resumed0] == full0
    with pytest.raises(RuntimeError, match="use num_workers=2"):
        bad = _resume_dataset(resume_root)
        bad.load_state_dict(ds.state_dict())  # saved with 2 workers
        next(iter(bad))
    with pytest.raises(ValueError, match="seed"):
        ClipDataset(resume_root, seed=4).load_state_dict(ds.state_dict())


def test_truncated_shard_is_skipped_and_counted(tmp_path, make_clips, caplog):
    write_clips(make_clips(6, num_frames=4, height=16, width=16), tmp_path, frames_codec="npz",
                max_clips_per_shard=3)
    shard = tmp_path / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    ds = ClipDataset(tmp_path, shuffle=False)
    with caplog.at_level(logging.WARNING):
        keys = [s["key"] for s in ds]
    stats = ds.stats
    assert keys[:3] == ["clip000", "clip001", "clip002"]
    assert stats.skipped["truncated"] >= 1 and stats.read + stats.total_skipped == 6
    assert stats.read == len(keys)
    assert str(shard) in caplog.text and "clip005" in caplog.text

    # Without index.json the shards are scanned; the truncated tar is indexed up to the damage.
    (tmp_path / "index.json").unlink()
    with caplog.at_level(logging.WARNING):
        index = rebuild_index(tmp_path)
    assert [c.key for c in index.entries][:3] == ["clip000", "clip001", "clip002"]
    assert len(index.entries) < 6
    assert sorted(s["key"] for s in ClipDataset(tmp_path)) == sorted(c.key for c in index.entries)


def test_garbage_bytes_and_missing_shard_are_skipped(tmp_path, make_clips, caplog):
    write_clips(make_clips(6, num_frames=4, height=16, width=16), tmp_path, frames_codec="png",
                max_clips_per_shard=2)
    index = load_index(tmp_path)
    victim = index.entries[1]
    offset, size, _ = victim.members["f000002.png"]
    shard = tmp_path / victim.shard
    data = bytearray(shard.read_bytes())
    data[offset + size // 3: offset + size // 3 + 40] = np.random.default_rng(0).bytes(40)
    shard.write_bytes(bytes(data))
    (tmp_path / "shard-000002.tar").unlink()

    ds = ClipDataset(tmp_path, shuffle=False)
    with caplog.at_level(logging.WARNING):
        keys = [s["key"] for s in ds]
    assert keys == ["clip000", "clip002", "clip003"]
    assert ds.stats.skipped == {"checksum": 1, "shard_missing": 2}
    assert "clip001" in caplog.text and str(shard) in caplog.text
    assert "clip004" in caplog.text and str(tmp_path / "shard-000002.tar") in caplog.text

    # With loader workers the counts reach the main process through the samples' progress vectors.
    ds = ClipDataset(tmp_path, shuffle=False)
    keys = []
    for sample in DataLoader(ds, num_workers=2, batch_size=None):
        ds.update_progress(sample)
        keys.append(sample["key"])
    assert sorted(keys) == ["clip000", "clip002", "clip003"] and ds.stats.read == 3
    assert ds.stats.skipped["checksum"] + ds.stats.skipped["shard_missing"] <= 3

    # An index rebuilt from the damaged shard has matching CRCs, so the PNG decoder must catch it.
    rebuild_index(tmp_path)
    ds = ClipDataset(tmp_path, shuffle=False)
    assert [s["key"] for s in ds] == ["clip000", "clip002", "clip003"]
    assert ds.stats.skipped == {"decode": 1}


def test_invalid_poses_are_rejected_with_the_reason(tmp_path, make_clips, caplog):
    clips = make_clips(3, **SMALL)
    clips[1].c2w[2, :3, :3] *= 1.1  # a scaled rotation
    clips[2].intrinsics[:, :2] *= 0.1  # a 150+ degree field of view
    write_clips(clips, tmp_path, frames_codec="npz")
    ds = ClipDataset(tmp_path, shuffle=False)
    with caplog.at_level(logging.WARNING):
        assert [s["key"] for s in ds] == ["clip000"]
    assert ds.stats.skipped == {"invalid_poses": 2}
    assert "clip001" in caplog.text and "frame 2" in caplog.text and "not orthonormal" in caplog.text
    assert "clip002" in caplog.text and "field of view" in caplog.text
    assert [s["key"] for s in ClipDataset(tmp_path, shuffle=False, validate={"fov_range_deg": None})] == [
        "clip000", "clip002"]


def test_window_and_fps_pick_the_right_frames_and_poses(tmp_path):
    clip = make_clip("walk", num_frames=33, height=12, width=16, fps=30.0)
    write_clips([clip], tmp_path, frames_codec="npz")

    (sample,) = ClipDataset(tmp_path, window=5, fps=15.0, window_mode="start")
    assert sample["frame_indices"].tolist() == [0, 2, 4, 6, 8]
    assert sample["fps"] == 15.0
    np.testing.assert_array_equal(sample["frames"].numpy(), clip.frames[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(sample["c2w"].numpy(), clip.c2w[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(sample["depth"].numpy(), clip.depth[[0, 2, 4, 6, 8]])

    starts = set()
    for seed in range(8):
        (sample,) = ClipDataset(tmp_path, window=5, fps=15.0, seed=seed)
        idx = sample["frame_indices"].numpy()
        np.testing.assert_array_equal(np.diff(idx), 2)
        assert 0 <= idx[0] and idx[-1] <= 32
        np.testing.assert_array_equal(sample["frames"].numpy(), clip.frames[idx])
        np.testing.assert_array_equal(sample["c2w"].numpy(), clip.c2w[idx])
        starts.add(int(idx[0]))
    assert len(starts) > 2

    (sample,) = ClipDataset(tmp_path, window=5, fps=16.0, window_mode="start")
    assert sample["frame_indices"].tolist() == [0, 2, 4, 6, 8]  # 0, 1.875, 3.75, 5.625, 7.5 -> nearest
    (whole,) = ClipDataset(tmp_path)
    assert whole["frames"].shape == (33, 12, 16, 3)
    assert ClipDataset(tmp_path, window=20, fps=15.0).stats.read == 0
    too_long = ClipDataset(tmp_path, window=20, fps=15.0)
    assert list(too_long) == [] and too_long.stats.skipped == {"too_short": 1}


def test_quality_ranges_filter_before_splitting(tmp_path, make_clips):
    clips = make_clips(6, **SMALL)
    write_clips(clips, tmp_path, frames_codec="npz")
    ds = ClipDataset(tmp_path, quality_ranges={"dover": (0.6, 1.0)}, shuffle=False)
    expected = [c.key for c in clips if c.quality["dover"] >= 0.6]
    assert 0 < len(expected) < 6 and ds.num_clips == len(expected)
    assert [s["key"] for s in ds] == expected


def test_samples_collate_into_batches(tmp_path, make_clips):
    write_clips(make_clips(4, num_frames=9, height=24, width=32), tmp_path, frames_codec="npz")
    batch = next(iter(DataLoader(ClipDataset(tmp_path, window=5, size=(16, 16), crop="random"), batch_size=2)))
    assert batch["frames"].shape == (2, 5, 16, 16, 3) and batch["frames"].dtype == torch.uint8
    assert batch["c2w"].shape == (2, 5, 4, 4) and batch["intrinsics"].shape == (2, 5, 4)
    assert batch["depth"].shape == (2, 5, 16, 16)


def test_cached_latent_dataset_reads_the_cache_alone(tmp_path):
    """CachedLatentDataset serves the cached latents and camera without the shards; a clip with no cache
    entry is skipped and counted, naming the missing file."""
    import torch.nn.functional as F

    from sana_wm.data import CachedLatentDataset, LatentCache, prepare_clip, read_clips

    write_clips([make_clip(f"c{i}", num_frames=9, height=16, width=24, seed=i) for i in range(3)], tmp_path,
                frames_codec="npz")
    cache = LatentCache(tmp_path)
    prepared = [prepare_clip(c, size=(16, 24), fps=16.0, num_frames=9) for c in read_clips(tmp_path)]
    cache.encode_all(prepared[:2], lambda x: F.avg_pool3d(x, (1, 4, 4)), "avgpool4")
    for shard in tmp_path.glob("*.tar"):
        shard.unlink()
    ds = CachedLatentDataset(tmp_path, window=9, fps=16.0, size=(16, 24), window_mode="start", shuffle=False)
    samples = list(ds)
    assert [s["key"] for s in samples] == ["c0", "c1"]
    for s, clip in zip(samples, prepared, strict=False):
        assert s["frame_shape"] == (9, 16, 24) and "frames" not in s
        np.testing.assert_array_equal(s["c2w"].numpy(), clip.c2w)
        np.testing.assert_array_equal(s["intrinsics"].numpy(), clip.intrinsics)
        assert torch.equal(s["latents"], cache.load(clip.key).latents)
    assert ds.stats.skipped == {"shard_missing": 1}
    with pytest.raises(ValueError, match="window_mode='start'"):
        CachedLatentDataset(tmp_path, window=9)
    too_long = CachedLatentDataset(tmp_path, window=17, window_mode="start", shuffle=False)
    assert list(too_long) == [] and too_long.stats.skipped == {"too_short": 2, "shard_missing": 1}
