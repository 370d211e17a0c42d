"""`bench run` with the bundled model on a tiny folder in the released layout: end to end, resume, shards."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import SCENES, write_released_bench

from sana_wm.bench import BenchError, read_bench, read_run, video_path
from sana_wm.bench.runner import (
    RunSettings,
    Shard,
    _finished,
    _resolved_settings,
    parse_shard,
    run_bench,
    run_bench_ray,
    scene_trajectory,
    shard_from_env,
)
from sana_wm.cli import main
from sana_wm.pipeline.sidecar import sidecar_path
from sana_wm.pipeline.video import read_video

SECONDS = 1.5  # 25 frames at 16 fps: the bundled streaming model's shortest video (24k + 1)
SETTINGS = RunSettings(seconds=SECONDS)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return write_released_bench(tmp_path_factory.mktemp("bench") / "SANA-WM-Bench", frames=33)


@pytest.fixture(scope="module")
def cli_run(bench, tmp_path_factory) -> Path:
    """One process, every scene, through the command line: the reference the other runs must equal."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["bench", "run", "--bench", str(bench), "--split", "simple_60s", "--out", str(out),
                 "--seconds", str(SECONDS), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def pipe():
    from sana_wm.pipeline import SanaWMPipeline

    return SanaWMPipeline.from_pretrained("sana-wm-synth", device="cpu")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_end_to_end(bench, cli_run):
    info = read_run(cli_run)
    assert info.split == "simple_60s" and info.scenes == SCENES and info.model == "sana-wm-synth"
    assert info.bench_root == bench.resolve() and info.fps == 16.0 and info.refiner is False
    s = info.settings
    # The bundled model's own sampler settings (its config.yaml), the reference seed, no refiner to run.
    assert (s["variant"], s["steps"], s["cfg"], s["shift"], s["seed"]) == ("streaming", 3, 1.0, 3.0, 42)
    assert (s["refine"], s["seconds"], s["image_size"]) == (False, SECONDS, [128, 128])
    for scene in read_bench(bench, "simple_60s"):
        video = video_path(cli_run, scene.name)
        frames, fps = read_video(video)
        assert frames.shape == (25, 128, 128, 3) and fps == 16.0
        record = json.loads(sidecar_path(video).read_text())
        assert record["seed"] == 42 and record["num_frames"] == 25
        # The camera path given to the model: the scene's first 1.5 s, intrinsics in the source image's pixels.
        np.testing.assert_allclose(record["trajectory"]["c2w"], scene.c2w[:25], atol=1e-12)
        intr = record["trajectory"]["intrinsics"]
        assert (intr["width"], intr["height"]) == scene.image_size
        np.testing.assert_allclose(np.asarray(intr["values"])[:, 0], scene.intrinsics[:25, 0, 0])
    assert not list((cli_run / "videos").glob("*.partial.mp4"))


def test_resume_and_torchrun_shards_make_the_same_videos(bench, cli_run, pipe, tmp_path, monkeypatch):
    out = tmp_path / "run"
    # A run stopped after its first scene: simulated by asking for that scene alone.
    first = run_bench(bench, "simple_60s", out, SETTINGS, scenes=["indoor_001"], pipeline=pipe, progress=False)
    assert first.generated == ["indoor_001"]
    video = video_path(out, "indoor_001")
    made = (video.stat().st_mtime_ns, _sha(video))
    # Torchrun's second rank of two takes the second scene only.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    second = run_bench(bench, "simple_60s", out, SETTINGS, pipeline=pipe, progress=False)
    assert second.shard == Shard(1, 2) and second.generated == ["game_style_002"] and second.skipped == []
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    # The whole split again: both scenes are done, nothing is regenerated.
    again = run_bench(bench, "simple_60s", out, SETTINGS, pipeline=pipe, progress=False)
    assert again.generated == [] and again.skipped == list(SCENES)
    assert (video.stat().st_mtime_ns, _sha(video)) == made
    assert read_run(out).scenes == SCENES
    # Seeded per scene: the same bytes as the one-process command line run.
    for name in SCENES:
        assert _sha(video_path(out, name)) == _sha(video_path(cli_run, name)), name


def test_a_scene_without_a_matching_sidecar_is_made_again(bench, cli_run, pipe, tmp_path):
    scene = read_bench(bench, "simple_60s", ["indoor_001"])[0]
    resolved = _resolved_settings(pipe, SETTINGS, scene)
    traj, _ = scene_trajectory(scene, pipe.fps, SECONDS, pipe.snap_num_frames)
    video = tmp_path / "videos" / "indoor_001.mp4"
    video.parent.mkdir()
    shutil.copy(video_path(cli_run, "indoor_001"), video)
    shutil.copy(sidecar_path(video_path(cli_run, "indoor_001")), sidecar_path(video))
    assert _finished(video, resolved, traj)
    assert not _finished(video, {**resolved, "seed": 7}, traj)
    whole, asked = scene_trajectory(scene, pipe.fps, None, pipe.snap_num_frames)
    assert (asked, whole.num_frames) == (33, 25)  # the whole path, cut to the streaming model's 24k + 1 frames
    c2w = traj.c2w.copy()
    c2w[3, 0, 3] += 0.01  # the benchmark's path changed since
    assert not _finished(video, resolved, replace(traj, c2w=c2w))
    lens = replace(traj, intrinsics=traj.intrinsics.rescaled(192, 144))  # or its intrinsics
    assert not _finished(video, resolved, lens)
    record = json.loads(sidecar_path(video).read_text())
    sidecar_path(video).write_text(json.dumps({**record, "settings": {}}))
    assert not _finished(video, resolved, traj)
    sidecar_path(video).unlink()
    assert not _finished(video, resolved, traj)


def test_refuses_a_run_folder_made_with_other_settings(bench, cli_run, pipe):
    before = _sha(cli_run / "run.json")
    with pytest.raises(BenchError, match=r"steps \(3 -> 2\).*--overwrite"):
        run_bench(bench, "simple_60s", cli_run, RunSettings(seconds=SECONDS, steps=2), pipeline=pipe, progress=False)
    with pytest.raises(BenchError, match=r"seconds \(1.5 -> 1.75\)"):
        run_bench(bench, "simple_60s", cli_run, RunSettings(seconds=1.75), pipeline=pipe, progress=False)
    assert _sha(cli_run / "run.json") == before


def test_options_that_cannot_act_are_warned_about_once(bench, cli_run, pipe):
    from sana_wm.pipeline.errors import OptionWarning

    with pytest.warns(OptionWarning) as caught:
        done = run_bench(bench, "simple_60s", cli_run, RunSettings(seconds=SECONDS, refiner_seed=3),
                         pipeline=pipe, progress=False)
    assert done.skipped == list(SCENES)  # the same settings take effect: nothing to generate
    messages = [str(w.message) for w in caught]
    assert messages == ["refiner_settings['seed'] is ignored: no refiner is loaded"]
    with pytest.raises(BenchError, match="--refine on: the model sana-wm-synth has no refiner"):
        run_bench(bench, "simple_60s", cli_run, RunSettings(seconds=SECONDS, refine="on"), pipeline=pipe)


def test_a_path_too_short_for_the_model_is_refused_naming_the_scene(bench, pipe, tmp_path):
    with pytest.raises(BenchError, match="scene indoor_001: .*too short.*--seconds"):
        run_bench(bench, "simple_60s", tmp_path / "r", RunSettings(seconds=1.0), pipeline=pipe, progress=False)


def test_runs_on_a_bench_synth_folder_and_overwrite_regenerates(pipe, tmp_path):
    from sana_wm.bench import ground_truth_video
    from sana_wm.bench.synth import build_synth_bench
    from sana_wm.eval.metrics import psnr

    bench = tmp_path / "synth"
    build_synth_bench(bench, num_scenes=1, seconds=SECONDS, progress=False)  # 128x128: the bundled model's size
    out = tmp_path / "run"
    assert run_bench(bench, "hard_60s", out, SETTINGS, pipeline=pipe, progress=False).generated == ["room_001"]
    frames, _ = read_video(video_path(out, "room_001"))
    truth, _ = read_video(ground_truth_video(bench, "hard_60s", "room_001"))
    assert frames.shape == truth.shape == (25, 128, 128, 3)
    assert psnr(frames[0], truth[0]) > 22.0  # the conditioning frame, through the model's codec
    before = _sha(video_path(out, "room_001"))
    other = RunSettings(seconds=SECONDS, seed=7)
    with pytest.raises(BenchError, match=r"seed \(42 -> 7\)"):
        run_bench(bench, "hard_60s", out, other, pipeline=pipe, progress=False)
    again = run_bench(bench, "hard_60s", out, other, pipeline=pipe, progress=False, overwrite=True)
    assert again.generated == ["room_001"] and read_run(out).settings["seed"] == 7
    assert _sha(video_path(out, "room_001")) != before


def test_a_model_with_text_and_a_refiner_runs_with_the_reference_settings(bench, tmp_path):
    """The tiny bidirectional model in the released layout, with a text encoder and a refiner: the prompt is
    used, the refiner runs with the seed, and the refined video drops the sink frame as released."""
    from pipeline_helpers import build_repos

    from sana_wm.pipeline import SanaWMPipeline

    repos = build_repos(tmp_path / "models")
    pipe = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"], refiner="auto")
    out = tmp_path / "run"
    settings = RunSettings(model=str(repos["bidirectional"]), seconds=1.0, steps=2)
    done = run_bench(bench, "simple_60s", out, settings, scenes=["indoor_001"], pipeline=pipe, progress=False)
    assert done.generated == ["indoor_001"]
    info = read_run(out)
    assert info.refiner is True and info.settings["refine"] is True and info.settings["refiner_seed"] == 42
    # The released bidirectional settings, except the steps asked for.
    assert (info.settings["steps"], info.settings["cfg"], info.settings["shift"]) == (2, 5.0, 8.0)
    assert info.settings["prompts"] == "used"
    record = json.loads(sidecar_path(video_path(out, "indoor_001")).read_text())
    assert record["prompt"] == "a walk through scene 0" and record["settings"]["refiner"]["seed"] == 42
    assert (record["num_frames"], record["first_pose"], record["video_frames"]) == (17, 1, 16)
    frames, _ = read_video(video_path(out, "indoor_001"))
    assert frames.shape == (16, 64, 96, 3)


def test_shards_partition_the_scenes():
    scenes = [f"s{i}" for i in range(7)]
    parts = [Shard(i, 3).take(scenes) for i in range(3)]
    assert sorted(sum(parts, [])) == scenes and parts[1] == ["s1", "s4"]
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(BenchError, match="--shard"):
            parse_shard(bad)
    assert shard_from_env({}) is None and shard_from_env({"RANK": "0", "WORLD_SIZE": "4"}) == Shard(0, 4)
    with pytest.raises(BenchError, match="RANK"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_cli_refuses_bad_options_before_loading_a_model(bench, tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("sana_wm.pipeline.SanaWMPipeline.from_pretrained", no_model)
    base = ["bench", "run", "--bench", str(bench), "--split", "simple_60s", "--out", str(tmp_path / "r")]
    for extra, message in ((["--shard", "2/2"], "--shard 2/2"), (["--scenes", "nope_001"], "nope_001 not in split"),
                           (["--ray-tasks", "2"], "--ray-tasks is only used with --ray"),
                           (["--seconds", "-1"], "--seconds -1")):
        assert main(base + extra) == 2, extra
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--refine", "maybe"])
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(base + ["--shard", "1/2"]) == 2
    assert "disagrees with torchrun" in capsys.readouterr().err


def test_ray_shards_in_two_processes_make_the_same_videos(bench, cli_run, tmp_path):
    import ray

    out = tmp_path / "run"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=128 * 2**20)
    try:
        results = run_bench_ray(bench, "simple_60s", out, SETTINGS, tasks=2, progress=False)
    finally:
        ray.shutdown()
    assert [(r.shard, r.generated) for r in results] == [(Shard(0, 2), ["indoor_001"]),
                                                         (Shard(1, 2), ["game_style_002"])]
    assert read_run(out).settings == read_run(cli_run).settings
    for name in SCENES:
        assert _sha(video_path(out, name)) == _sha(video_path(cli_run, name)), name
