"""`bench synth`: a benchmark in the released layout from the synthetic world, with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sana_wm.bench import BenchError, ground_truth_depth, ground_truth_video, read_bench
from sana_wm.bench.synth import REVISIT_ANGLE_DEG, REVISIT_DISTANCE, benchmark_paths, build_synth_bench, revisit_pairs
from sana_wm.camera.trajectory import Trajectory
from sana_wm.cli import main
from sana_wm.pipeline.video import read_video
from sana_wm.synth.render import render
from sana_wm.synth.scene import generate_scene

SIZE = (48, 40)  # (W, H)


@pytest.fixture(scope="module")
def synth_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "bench"
    summary = build_synth_bench(out, num_scenes=2, seconds=2.0, size=SIZE, seed=5, progress=False)
    return out, summary


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a[:3, 2] @ b[:3, 2], -1.0, 1.0))))


def test_builds_a_folder_that_read_bench_reads(synth_bench):
    out, summary = synth_bench
    assert summary.scenes == ("room_001", "corridor_001") and summary.num_frames == 33
    for split in ("simple_60s", "hard_60s"):
        scenes = read_bench(out, split)
        assert [s.name for s in scenes] == list(summary.scenes)
        assert [s.category for s in scenes] == ["room", "corridor"]
        for s in scenes:
            assert s.num_frames == 33 and s.fps == 16.0 and s.image_size == SIZE
            np.testing.assert_allclose(s.c2w[0], np.eye(4), atol=1e-12)  # stored relative to the first frame
            assert s.prompt.startswith("A first-person view of")
            assert s.evaluation_pairs, f"{split}/{s.name} has no revisit pair"


def test_ground_truth_is_the_exact_render_of_the_stored_path(synth_bench):
    out, _ = synth_bench
    for i, name in enumerate(("room_001", "corridor_001")):
        scene = generate_scene(5 + i, ("room", "corridor")[i])
        world = benchmark_paths(scene, 5 + i, 33)
        first = np.asarray(Image.open(out / "images" / f"{name}.png"))
        for split in ("simple_60s", "hard_60s"):
            expected = render(scene, Trajectory(world[split], None, 16.0), *SIZE, fov_deg=70.0)
            frames, fps = read_video(ground_truth_video(out, split, name))
            assert fps == 16.0
            np.testing.assert_array_equal(frames, expected.rgb)  # lossless: not one level off
            np.testing.assert_array_equal(frames[0], first)  # both splits start from the image
            with np.load(ground_truth_depth(out, split, name)) as data:
                depth = data["depth"]
            assert depth.dtype == np.float32 and depth.shape == (33, SIZE[1], SIZE[0])
            np.testing.assert_array_equal(depth, np.where(np.isfinite(expected.depth), expected.depth, 0.0))
            stored = read_bench(out, split, [name])[0]
            rel = np.linalg.inv(world[split][0]) @ world[split]
            np.testing.assert_allclose(stored.c2w, rel, atol=1e-9)
            np.testing.assert_allclose(stored.intrinsics[:, 0, 0], 0.5 * SIZE[0] / np.tan(np.radians(35.0)))
            # A revisit pair sees the same place: close cameras looking the same way, hence close images.
            for a, b in stored.evaluation_pairs:
                assert b - a >= 1
                assert np.linalg.norm(stored.c2w[a, :3, 3] - stored.c2w[b, :3, 3]) <= REVISIT_DISTANCE
                assert _angle_deg(stored.c2w[a], stored.c2w[b]) <= REVISIT_ANGLE_DEG
                if np.allclose(stored.c2w[a], stored.c2w[b], atol=1e-9):
                    np.testing.assert_array_equal(frames[a], frames[b])


def _turn_steps(c2w: np.ndarray) -> np.ndarray:
    """(F-1,) degrees between consecutive view directions."""
    return np.array([_angle_deg(c2w[i], c2w[i + 1]) for i in range(len(c2w) - 1)])


def _forward_motion(c2w: np.ndarray) -> np.ndarray:
    """(F-1,) displacement along the camera's level view direction, per frame."""
    level = c2w[:-1, :3, 2] * np.array([1.0, 0.0, 1.0])
    level /= np.linalg.norm(level, axis=1, keepdims=True)
    return np.einsum("fi,fi->f", np.diff(c2w[:, :3, 3], axis=0), level)


@pytest.fixture(scope="module")
def minute_paths():
    out = {}
    for seed, kind in ((3, "room"), (1, "corridor"), (2, "open")):
        out[kind] = benchmark_paths(generate_scene(seed, kind), seed, 961)
    return out


def test_one_minute_paths_turn_only_while_walking(minute_paths):
    tilt = np.sin(np.radians(10.0))  # every camera looks 10 deg down (+Y is down)
    for kind, paths in minute_paths.items():
        simple, hard = paths["simple_60s"], paths["hard_60s"]
        assert simple.shape == hard.shape == (961, 4, 4)
        np.testing.assert_array_equal(simple[0], hard[0])  # one spawn, one first frame
        turn_s, turn_h = _turn_steps(simple), _turn_steps(hard)
        step_s = np.linalg.norm(np.diff(simple[:, :3, 3], axis=0), axis=1)
        step_h = np.linalg.norm(np.diff(hard[:, :3, 3], axis=0), axis=1)
        # Simple: at most 1 deg a frame (4 deg between the frames the metric samples); every frame walks at least
        # 1.5 cm forward, and at least 1 cm per degree it turns: never a turn on the spot, never backwards.
        assert turn_s.max() <= 1.0 + 1e-6, kind
        assert turn_s.sum() >= 360.0, kind  # a whole loop at least
        assert step_s.min() >= 0.015, kind
        assert (step_s / np.maximum(turn_s, 1e-9)).min() >= 0.01, kind
        assert _forward_motion(simple).min() >= 0.015 - 1e-9, kind
        np.testing.assert_allclose(simple[:, 1, 2], tilt, atol=1e-12)  # no looking up or down
        # Hard: sharper turns and glances (at most 5 deg a frame), still walking at every frame; part of the time
        # backwards along the way it came.
        assert 1.5 < turn_h.max() <= 5.0, kind
        assert step_h.min() >= 0.015, kind
        assert _forward_motion(hard).min() < -0.04, kind
        assert np.abs(np.degrees(np.arcsin(hard[:, 1, 2])) - 10.0).max() > 8.0, kind  # glances


def test_one_minute_paths_come_back(minute_paths):
    for kind, paths in minute_paths.items():
        for split, c2w in paths.items():
            pairs = revisit_pairs(c2w, 16.0)
            assert len(pairs) == 10, (kind, split)
            assert all(p["frame_b"] - p["frame_a"] >= 32 for p in pairs)  # at least 2 s apart
            assert [p["quality_score"] for p in pairs] == sorted(p["quality_score"] for p in pairs)
            for p in pairs:  # the stored distance and angle are the poses' own
                a, b = c2w[p["frame_a"]], c2w[p["frame_b"]]
                assert np.linalg.norm(a[:3, 3] - b[:3, 3]) == pytest.approx(p["distance_m"], abs=1e-6)
                assert _angle_deg(a, b) == pytest.approx(p["angle_diff_deg"], abs=1e-4)


def test_paths_are_deterministic_per_seed_and_short_paths_still_loop():
    scene = generate_scene(4, "corridor")
    a, b = benchmark_paths(scene, 4, 321), benchmark_paths(scene, 4, 321)
    for split in a:
        np.testing.assert_array_equal(a[split], b[split])
        # 20 s is too short to turn a whole loop at 1 deg a frame: the turn rate rises just enough to come round.
        assert revisit_pairs(a[split], 16.0), split
    assert _turn_steps(a["simple_60s"]).max() <= 360.0 / (0.8 * 320) + 1e-6


def test_refuses_a_non_empty_out_unless_overwrite(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BenchError, match="not empty"):
        build_synth_bench(out, num_scenes=1, seconds=0.6, size=(24, 16), progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    build_synth_bench(out, num_scenes=1, seconds=0.6, size=(24, 16), overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and [s.name for s in read_bench(out, "hard_60s")] == ["room_001"]
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_cli(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "synth", "--out", str(out), "--scenes", "1", "--seconds", "0.6", "--size", "24x16",
                 "--quiet"]) == 0
    assert "1 scenes x 2 splits, 11 frames each" in capsys.readouterr().out
    assert read_bench(out, "simple_60s")[0].image_size == (24, 16)
    assert main(["bench", "synth", "--out", str(tmp_path / "c"), "--size", "24by16"]) == 2
    assert "--size '24by16'" in capsys.readouterr().err
    assert main(["bench", "synth", "--out", str(tmp_path / "c"), "--seconds", "nan"]) == 2
    assert main(["bench", "synth", "--out", str(tmp_path / "c"), "--seconds", "60", "--size", "2048x2048"]) == 2
    assert "pixels a path" in capsys.readouterr().err
