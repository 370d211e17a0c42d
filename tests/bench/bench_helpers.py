"""A tiny benchmark folder in the released SANA-WM-Bench layout, built in the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SCENES = ("indoor_001", "game_style_002")
SPLIT_DIR = "benchmark_v2_smooth_60s"


def walk_c2w(frames: int, step: float = 0.05, yaw_deg_per_frame: float = 0.5) -> np.ndarray:
    """``(frames, 4, 4)`` OpenCV c2w: walking forward (+Z) while turning about +Y."""
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        a = np.radians(yaw_deg_per_frame * i)
        c2w[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        c2w[i, :3, 3] = [0.0, 0.0, step * i]
    return c2w


def write_image(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    img = np.stack([xs * 5 % 256, ys * 7 % 256, (xs * ys) % 256], -1).astype(np.uint8)
    img = (img // 2 + rng.integers(0, 96, img.shape)).astype(np.uint8)
    Image.fromarray(img).save(path)


def write_released_bench(root: Path, *, frames: int = 33, image_size: tuple[int, int] = (96, 72),
                         scenes: tuple[str, ...] = SCENES, fps: float = 16.0) -> Path:
    """``root`` laid out as released: images/, <split>/scene_trajectories_v2.json, <split>/sanawm_export_v2/
    {run_manifest.jsonl, <scene>.npz}; intrinsics in pixels of the image (fx = 0.8 W, centred)."""
    root = Path(root)
    export = root / SPLIT_DIR / "sanawm_export_v2"
    export.mkdir(parents=True)
    (root / "images").mkdir()
    w, h = image_size
    K = np.array([[0.8 * w, 0.0, w / 2], [0.0, 0.8 * w, h / 2], [0.0, 0.0, 1.0]])
    rows, metas = [], []
    for i, name in enumerate(scenes):
        write_image(root / "images" / f"{name}.png", image_size, i)
        np.savez(export / f"{name}.npz", c2w=walk_c2w(frames, yaw_deg_per_frame=0.5 + i),
                 intrinsics=np.tile(K, (frames, 1, 1)), fps=np.float64(fps), num_frames=np.int64(frames))
        rows.append({"id": name, "prompt": f"a walk through scene {i}", "image_path": f"images/{name}.png",
                     "camera_path": f"{SPLIT_DIR}/sanawm_export_v2/{name}.npz"})
        metas.append({"scene_id": name, "evaluation_pairs": [
            {"frame_a": 2, "frame_b": frames - 1, "quality_score": 3.0, "distance_m": 0.1, "angle_diff_deg": 2.0},
            {"frame_a": 0, "frame_b": frames - 3, "quality_score": 1.0, "distance_m": 0.0, "angle_diff_deg": 1.0}]})
    (export / "run_manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / SPLIT_DIR / "scene_trajectories_v2.json").write_text(json.dumps({"scenes": metas}))
    (root / "scene_set").mkdir()
    (root / "scene_set" / "kept_scenes.txt").write_text("".join(f"{s}\n" for s in scenes))
    return root
