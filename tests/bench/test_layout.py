"""The SANA-WM-Bench layout reader and the run-folder layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import SCENES, SPLIT_DIR, walk_c2w, write_released_bench
from PIL import Image

from sana_wm.bench import (
    SPLITS,
    BenchError,
    RunInfo,
    ground_truth_depth,
    ground_truth_video,
    read_bench,
    read_run,
    video_path,
)
from sana_wm.bench.layout import RUN_FILE, run_info_json, scene_category
from sana_wm.errors import UserError

EXPORT = Path(SPLIT_DIR) / "sanawm_export_v2"


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return write_released_bench(tmp_path / "SANA-WM-Bench", frames=33)


def _rows(bench: Path) -> list[dict]:
    return [json.loads(line) for line in (bench / EXPORT / "run_manifest.jsonl").read_text().splitlines()]


def _write_rows(bench: Path, rows: list[dict]) -> None:
    (bench / EXPORT / "run_manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rewrite_npz(bench: Path, scene: str, **changes) -> None:
    path = bench / EXPORT / f"{scene}.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def test_reads_the_released_layout_as_stored(bench: Path):
    scenes = read_bench(bench, "simple_60s")
    assert [s.name for s in scenes] == list(SCENES)
    assert [s.category for s in scenes] == ["indoor", "game_style"]
    first = scenes[0]
    assert first.split == "simple_60s" and first.image == bench / "images" / "indoor_001.png"
    assert first.prompt == "a walk through scene 0"
    assert first.c2w.dtype == np.float64 and first.c2w.shape == (33, 4, 4)
    np.testing.assert_array_equal(first.c2w, walk_c2w(33, yaw_deg_per_frame=0.5))
    K = np.array([[76.8, 0.0, 48.0], [0.0, 76.8, 36.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(first.intrinsics, np.tile(K, (33, 1, 1)), rtol=0, atol=1e-12)
    assert first.image_size == (96, 72) and first.fps == 16.0 and first.num_frames == 33
    # Ordered as the released evaluator takes them: ascending quality_score.
    assert first.evaluation_pairs == ((0, 30), (2, 32))
    traj = first.trajectory()
    assert traj.num_frames == 33 and (traj.intrinsics.width, traj.intrinsics.height) == (96, 72)
    np.testing.assert_allclose(traj.intrinsics.values[0], [76.8, 76.8, 48.0, 36.0])


def test_scene_selection_keeps_manifest_order_and_names_unknown_scenes(bench: Path):
    assert [s.name for s in read_bench(bench, "simple_60s", ["game_style_002", "indoor_001"])] == list(SCENES)
    with pytest.raises(BenchError, match="nope_001 not in split simple_60s"):
        read_bench(bench, "simple_60s", ["nope_001"])
    with pytest.raises(BenchError, match="not a plain name"):
        read_bench(bench, "simple_60s", ["../indoor_001"])


def test_category_from_manifest_and_image_found_without_image_path(bench: Path):
    rows = _rows(bench)
    rows[0]["scene_type"] = "kitchen"
    del rows[1]["image_path"]
    _write_rows(bench, rows)
    png = bench / "images" / "game_style_002.png"
    Image.open(png).convert("RGB").save(bench / "images" / "game_style_002.jpg")
    png.unlink()
    scenes = read_bench(bench, "simple_60s")
    assert scenes[0].category == "kitchen"
    assert scenes[1].image.name == "game_style_002.jpg"
    assert scene_category("outdoor_city_017") == "outdoor_city" and scene_category("plain") == "plain"


def _break(bench: Path, how: str) -> str:
    """Damage the folder in one way; returns a fragment the error must contain."""
    rows = _rows(bench)
    if how == "missing prompt":
        del rows[0]["prompt"]
        _write_rows(bench, rows)
        return "'prompt' missing"
    if how == "path scene name":
        rows[0]["id"] = "../x"
        _write_rows(bench, rows)
        return "'../x' is not a plain name"
    if how == "camera outside":
        rows[0]["camera_path"] = "../outside.npz"
        _write_rows(bench, rows)
        return "stay inside"
    if how == "absolute image":
        rows[0]["image_path"] = str(bench / "images" / "indoor_001.png")
        _write_rows(bench, rows)
        return "stay inside"
    if how == "duplicate scene":
        _write_rows(bench, rows + rows[:1])
        return "listed twice"
    if how == "missing c2w":
        _rewrite_npz(bench, "indoor_001", c2w=None)
        return "no 'c2w'"
    if how == "missing intrinsics":
        _rewrite_npz(bench, "indoor_001", intrinsics=None)
        return "no 'intrinsics'"
    if how == "wrong intrinsics shape":
        _rewrite_npz(bench, "indoor_001", intrinsics=np.ones((33, 2, 2)))
        return "intrinsics"
    if how == "non-finite pose":
        c2w = walk_c2w(33)
        c2w[5, 0, 3] = np.nan
        _rewrite_npz(bench, "indoor_001", c2w=c2w)
        return "non-finite"
    if how == "non-finite intrinsics":
        K = np.tile(np.eye(3), (33, 1, 1))
        K[3, 0, 0] = np.inf
        _rewrite_npz(bench, "indoor_001", intrinsics=K)
        return "non-finite"
    if how == "frame count mismatch":
        _rewrite_npz(bench, "indoor_001", num_frames=np.int64(961))
        return "'num_frames' is 961"
    if how == "pair past the end":
        meta = json.loads((bench / SPLIT_DIR / "scene_trajectories_v2.json").read_text())
        meta["scenes"][0]["evaluation_pairs"].append({"frame_a": 0, "frame_b": 33})
        (bench / SPLIT_DIR / "scene_trajectories_v2.json").write_text(json.dumps(meta))
        return "past the camera path's 33 frames"
    if how == "pair not a frame":
        meta = json.loads((bench / SPLIT_DIR / "scene_trajectories_v2.json").read_text())
        meta["scenes"][0]["evaluation_pairs"].append({"frame_a": 1.5, "frame_b": 3})
        (bench / SPLIT_DIR / "scene_trajectories_v2.json").write_text(json.dumps(meta))
        return "frame index"
    if how == "no trajectory metadata":
        (bench / SPLIT_DIR / "scene_trajectories_v2.json").unlink()
        return "scene_trajectories_v2.json"
    if how == "missing image":
        (bench / "images" / "indoor_001.png").unlink()
        return "not found"
    raise AssertionError(how)


@pytest.mark.parametrize("how", [
    "missing prompt", "path scene name", "camera outside", "absolute image", "duplicate scene", "missing c2w",
    "missing intrinsics", "wrong intrinsics shape", "non-finite pose", "non-finite intrinsics",
    "frame count mismatch", "pair past the end", "pair not a frame", "no trajectory metadata", "missing image"])
def test_refuses_bad_input_naming_the_problem(bench: Path, how: str):
    fragment = _break(bench, how)
    with pytest.raises(UserError, match=None) as info:
        read_bench(bench, "simple_60s")
    assert isinstance(info.value, BenchError)
    assert fragment in str(info.value), str(info.value)


def test_refuses_unknown_split_and_missing_folders(bench: Path, tmp_path: Path):
    with pytest.raises(BenchError, match="choose one of simple_60s, hard_60s"):
        read_bench(bench, "medium_60s")
    with pytest.raises(BenchError, match="no benchmark_v2_hard_60s/ folder"):
        read_bench(bench, "hard_60s")
    with pytest.raises(BenchError, match="no such folder"):
        read_bench(tmp_path / "absent", "simple_60s")


def test_run_layout_round_trip(bench: Path, tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    info = RunInfo(run_dir=run, bench_root=bench, split="simple_60s", scenes=SCENES, model="sana-wm-synth",
                   settings={"steps": 3, "seed": 42}, refiner=True, fps=16.0)
    (run / RUN_FILE).write_text(json.dumps(run_info_json(info)))
    assert read_run(run) == info
    assert video_path(run, "indoor_001") == run / "videos" / "indoor_001.mp4"
    with pytest.raises(BenchError):
        video_path(run, "../indoor_001")
    doc = run_info_json(info)
    doc["refiner"] = "yes"
    (run / RUN_FILE).write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="'refiner' missing or of the wrong type"):
        read_run(run)
    with pytest.raises(BenchError, match="no run.json"):
        read_run(tmp_path)
    # The released folders keep no ground truth.
    assert ground_truth_video(bench, "simple_60s", "indoor_001") is None
    assert ground_truth_depth(bench, "simple_60s", "indoor_001") is None
    assert set(SPLITS) == {"simple_60s", "hard_60s"}
