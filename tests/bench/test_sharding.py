"""Sharding a benchmark run over processes changes nothing: `bench synth` -> `bench run` once in one process and
once as two shards -> `bench score` of both gives the same videos, byte for byte, and the same report."""

from __future__ import annotations

import json
from pathlib import Path

from sana_wm.bench import read_bench, video_path
from sana_wm.cli import main


def _report_without_its_folder(run: Path) -> dict:
    """report.json with the run's own folder (in run_dir and the videos' paths) written as RUN."""
    return json.loads((run / "scores" / "report.json").read_text().replace(str(run), "RUN"))


def test_two_shards_give_the_same_videos_and_report_as_one_process(tmp_path):
    bench, whole, sharded = tmp_path / "synth", tmp_path / "whole", tmp_path / "sharded"
    # Two 1.5 s scenes at the bundled model's 128x128: 25 frames, its shortest video.
    assert main(["bench", "synth", "--out", str(bench), "--scenes", "2", "--seconds", "1.5", "--quiet"]) == 0
    base = ["bench", "run", "--bench", str(bench), "--split", "simple_60s", "--model", "sana-wm-synth", "--quiet"]
    assert main([*base, "--out", str(whole)]) == 0
    for shard in ("0/2", "1/2"):  # as two processes would run them, one after the other here
        assert main([*base, "--out", str(sharded), "--shard", shard]) == 0
    names = [s.name for s in read_bench(bench, "simple_60s")]
    assert names == ["room_001", "corridor_001"]
    for name in names:
        assert video_path(sharded, name).read_bytes() == video_path(whole, name).read_bytes(), name
    for run in (whole, sharded):
        assert main(["bench", "score", str(run), "--estimator", "opencv"]) == 0
    one, two = _report_without_its_folder(whole), _report_without_its_folder(sharded)
    assert [s["scene"] for s in one["scenes"]] == names and one["missing_videos"] == []
    assert 10.0 < one["aggregate"]["split"]["ground_truth"]["1"]["PSNR"] < 60.0  # numbers were computed
    assert two == one
