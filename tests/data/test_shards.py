"""Writing shards and reading clips back: exact round trips, shard splitting, atomic files, index recovery."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from data_helpers import make_clip

from sana_wm.data import ClipError, ShardWriter, load_index, read_clips, rebuild_index, write_clips


def _assert_same_metadata(a, b):
    assert a.key == b.key
    np.testing.assert_array_equal(a.c2w, b.c2w)
    np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
    assert a.fps == b.fps
    assert (a.caption, a.source, a.licence) == (b.caption, b.source, b.licence)
    assert a.quality == b.quality
    assert a.meta == b.meta
    assert a.trajectory.intrinsics.width == b.trajectory.intrinsics.width


@pytest.mark.parametrize("codec", ["png", "npz"])
def test_lossless_round_trip(tmp_path, make_clips, codec):
    clips = make_clips(3) + [make_clip("half", depth_dtype=np.float16, fps=29.97), make_clip("nodepth", depth=False)]
    write_clips(clips, tmp_path, frames_codec=codec, max_clips_per_shard=2)
    back = list(read_clips(tmp_path))
    assert [c.key for c in back] == [c.key for c in clips]
    for a, b in zip(clips, back, strict=True):
        _assert_same_metadata(a, b)
        np.testing.assert_array_equal(a.frames, b.frames)
        if a.depth is None:
            assert b.depth is None
        else:
            assert b.depth.dtype == a.depth.dtype
            np.testing.assert_array_equal(a.depth, b.depth)


def test_mp4_round_trip_is_close_and_metadata_exact(tmp_path):
    clips = [make_clip("even", num_frames=17, height=48, width=64, fps=16.0),
             make_clip("odd", num_frames=5, height=35, width=47, fps=30000 / 1001, seed=3)]
    write_clips(clips, tmp_path, frames_codec="mp4")
    back = list(read_clips(tmp_path))
    for a, b in zip(clips, back, strict=True):
        _assert_same_metadata(a, b)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert b.frames.shape == a.frames.shape and b.frames.dtype == np.uint8
        mse = np.mean((a.frames.astype(np.float64) - b.frames.astype(np.float64)) ** 2)
        psnr = 10 * np.log10(255.0**2 / max(mse, 1e-12))
        assert psnr > 30.0, f"{a.key}: PSNR {psnr:.1f} dB"


def test_torch_frames_are_accepted(tmp_path):
    import torch

    clip = make_clip("t")
    clip.frames = torch.from_numpy(clip.frames)
    write_clips([clip], tmp_path, frames_codec="npz")
    np.testing.assert_array_equal(next(read_clips(tmp_path)).frames, clip.frames.numpy())


def test_shards_split_by_count_and_bytes_and_index_totals(tmp_path, make_clips):
    clips = make_clips(7)
    index = write_clips(clips, tmp_path / "count", frames_codec="npz", max_clips_per_shard=3)
    assert [len(s.clips) for s in index.shards] == [3, 3, 1]
    assert sorted(p.name for p in (tmp_path / "count").iterdir()) == [
        "index.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    obj = json.loads((tmp_path / "count" / "index.json").read_text())
    assert obj["totals"]["num_clips"] == 7 and obj["totals"]["num_frames"] == 7 * 9
    assert obj["totals"]["duration_s"] == pytest.approx(7 * 9 / 16)
    for shard in obj["shards"]:
        assert shard["bytes"] == (tmp_path / "count" / shard["name"]).stat().st_size
        with tarfile.open(tmp_path / "count" / shard["name"]) as tar:
            names = tar.getnames()
        assert [c["key"] for c in shard["clips"]] == list(dict.fromkeys(n.split(".")[0] for n in names))

    one_clip = index.shards[0].bytes // 3
    index = write_clips(clips, tmp_path / "bytes", frames_codec="npz", max_shard_bytes=int(2.5 * one_clip))
    assert all(1 <= len(s.clips) <= 2 for s in index.shards) and sum(len(s.clips) for s in index.shards) == 7


def test_writer_refuses_duplicates_and_existing_datasets(tmp_path, make_clips):
    clips = make_clips(2)
    with pytest.raises(ClipError, match="already written"), ShardWriter(tmp_path / "a", frames_codec="npz") as w:
        w.write(clips[0])
        w.write(clips[0])
    write_clips(clips, tmp_path / "b", frames_codec="npz")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ShardWriter(tmp_path / "b")
    write_clips(clips[:1], tmp_path / "b", frames_codec="npz", overwrite=True)
    assert [c.key for c in read_clips(tmp_path / "b")] == ["clip000"]


def test_bad_clip_is_refused_with_its_key(tmp_path):
    clip = make_clip("bad")
    clip.c2w = clip.c2w[:-1]
    with pytest.raises(ClipError, match="'bad'.*c2w"):
        write_clips([clip], tmp_path)


def test_crash_leaves_no_shard_that_looks_complete(tmp_path, make_clips):
    clips = make_clips(5)

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom), ShardWriter(tmp_path, frames_codec="npz", max_clips_per_shard=2) as writer:
        for clip in clips:
            writer.write(clip)
        raise Boom
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["index.json", "shard-000000.tar", "shard-000001.tar"]  # the open third shard is discarded
    assert [c.key for c in read_clips(tmp_path)] == [c.key for c in clips[:4]]

    # A writer killed mid-shard leaves only a hidden .partial file, which readers never look at.
    writer = ShardWriter(tmp_path / "killed", frames_codec="npz", max_clips_per_shard=2)
    for clip in clips[:3]:
        writer.write(clip)
    writer._tar.fileobj.flush()
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == [".shard-000001.tar.partial",
                                                                        "shard-000000.tar"]
    index = load_index(tmp_path / "killed")  # no index.json: scans the finished shards (with a warning)
    assert [c.key for c in index.entries] == ["clip000", "clip001"]


def test_rebuild_index_matches_the_written_one(tmp_path, make_clips):
    written = write_clips(make_clips(4), tmp_path, frames_codec="png", max_clips_per_shard=3)
    (tmp_path / "index.json").unlink()
    rebuilt = rebuild_index(tmp_path)
    assert rebuilt.to_json() == written.to_json()
    assert (tmp_path / "index.json").exists()


def test_damaged_index_says_how_to_recover(tmp_path, make_clips):
    write_clips(make_clips(2), tmp_path, frames_codec="npz")
    (tmp_path / "index.json").write_bytes(b'{"format": "sana-wm-clips", "shar')
    with pytest.raises(ValueError, match="rebuild_index"):
        load_index(tmp_path)
    rebuild_index(tmp_path)
    assert [c.key for c in read_clips(tmp_path)] == ["clip000", "clip001"]
