"""inspect_dataset: counts, durations, histograms and the pictures it writes."""

from __future__ import annotations

import pytest
from data_helpers import make_clip
from PIL import Image

from sana_wm.data import inspect_dataset, write_clips


def test_inspect_counts_and_writes_pictures(tmp_path):
    clips = [make_clip(f"c{i}", num_frames=9, height=24, width=32, fps=16.0, seed=i) for i in range(4)]
    clips.append(make_clip("wide", num_frames=17, height=18, width=40, fps=30.0, seed=9))
    clips[1].c2w[0, :3, :3] *= 2.0  # a clip whose camera fails validation
    write_clips(clips, tmp_path / "ds", frames_codec="mp4", max_clips_per_shard=2)

    summary = inspect_dataset(tmp_path / "ds", tmp_path / "out", plot_clips=2)
    assert summary["num_clips"] == 5 and summary["num_shards"] == 3
    assert summary["num_frames"] == 4 * 9 + 17
    assert summary["duration_s"] == pytest.approx(4 * 9 / 16 + 17 / 30)
    assert summary["mean_duration_s"] == pytest.approx(summary["duration_s"] / 5)
    assert summary["frame_sizes"] == {"32x24": 4, "40x18": 1}
    assert summary["fps_histogram"] == {"16": 4, "30": 1}
    assert summary["clips_with_depth"] == 5 and summary["frames_codecs"] == {"mp4": 5}
    assert summary["cameras_rejected"] == {"invalid_poses": 1}
    written = summary["written"]
    assert len(written["trajectories"]) == 2
    for path in [written["contact_sheet"], written["topdown"], *written["trajectories"]]:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 100 and img.height > 100
    assert (tmp_path / "out" / "summary.json").exists()
