"""Tiny benchmark and run folders in the released layout, written directly (no `bench synth`/`bench run`), and
synthetic renders to fill them: the scorer's tests depend only on the layout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sana_wm.bench.layout import (
    EXPORT_FOLDER,
    GROUND_TRUTH_FOLDER,
    MANIFEST_FILE,
    SPLITS,
    TRAJECTORIES_FILE,
    RunInfo,
    run_info_json,
)
from sana_wm.camera.trajectory import Trajectory
from sana_wm.pipeline.video import VideoWriter
from sana_wm.synth.paths import exploration_path
from sana_wm.synth.render import render
from sana_wm.synth.scene import generate_scene

SPLIT = "simple_60s"


@dataclass
class FixtureScene:
    name: str
    c2w: np.ndarray  # (N, 4, 4) requested path (the bench's)
    K: np.ndarray  # (3, 3) in pixels of `size`
    size: tuple[int, int]  # (w, h) of the first-frame image
    fps: float
    first_frame: np.ndarray  # (h, w, 3) uint8
    pairs: list[tuple[int, int]]
    truth: np.ndarray | None = None  # (N, h, w, 3) ground-truth render, written as bench synth does


def synth_scene(name: str, seed: int, *, seconds: float = 3.0, fps: float = 16.0, size=(128, 96),
                style: str = "walk", pairs=((0, 8),)) -> tuple[FixtureScene, object]:
    """A synthetic scene's path and its exact render; returns ``(scene, synth Scene)``. The path is drawn at
    16 fps (its speeds are per frame) and keeps every ``16 / fps``-th pose."""
    world = generate_scene(seed)
    path = exploration_path(world, seconds=seconds, fps=16.0, style=style, seed=seed)
    c2w = path.c2w[::int(round(16.0 / fps))]
    res = render(world, Trajectory(c2w, None, fps), size[0], size[1])
    K = res.intrinsics.matrices()[0]
    return FixtureScene(name, c2w, K, size, fps, res.rgb[0], list(pairs), truth=res.rgb), world


def render_along(world, c2w: np.ndarray, K: np.ndarray, size, fps: float) -> np.ndarray:
    """The render of ``world`` along ``c2w`` with the lens ``K`` (pixels of ``size`` = (w, h))."""
    from sana_wm.camera.trajectory import Intrinsics

    traj = Trajectory(c2w, Intrinsics.from_matrices(K, *size).broadcast_to(len(c2w)), fps)
    return render(world, traj).rgb


def write_bench(root: Path, scenes: list[FixtureScene], split: str = SPLIT) -> Path:
    root = Path(root)
    split_dir = root / SPLITS[split]
    (split_dir / EXPORT_FOLDER).mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, traj = [], []
    for s in scenes:
        Image.fromarray(s.first_frame).save(root / "images" / f"{s.name}.png")
        cam = f"{SPLITS[split]}/{EXPORT_FOLDER}/{s.name}.npz"
        np.savez(root / cam, c2w=s.c2w, intrinsics=np.repeat(s.K[None], len(s.c2w), 0), fps=np.float64(s.fps),
                 num_frames=np.int64(len(s.c2w)))
        rows.append(json.dumps({"id": s.name, "prompt": "a test scene", "camera_path": cam}))
        traj.append({"scene_id": s.name, "evaluation_pairs": [{"frame_a": a, "frame_b": b, "quality_score": i}
                                                              for i, (a, b) in enumerate(s.pairs)]})
        if s.truth is not None:
            gt = root / GROUND_TRUTH_FOLDER / SPLITS[split]
            gt.mkdir(parents=True, exist_ok=True)
            write_video(gt / f"{s.name}.mp4", s.truth, s.fps)
    (split_dir / EXPORT_FOLDER / MANIFEST_FILE).write_text("\n".join(rows) + "\n")
    (split_dir / TRAJECTORIES_FILE).write_text(json.dumps({"scenes": traj}))
    return root


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    # crf 0: the decoded frames are (nearly) the frames written, so tests compare against known pixels.
    with VideoWriter(path, fps, crf=0) as w:
        w.write(frames)


def write_run(run_dir: Path, bench_root: Path, videos: dict[str, np.ndarray], *, fps: float = 16.0,
              refiner: bool = False, split: str = SPLIT, scenes=None) -> Path:
    run_dir = Path(run_dir)
    (run_dir / "videos").mkdir(parents=True, exist_ok=True)
    info = RunInfo(run_dir=run_dir, bench_root=Path(bench_root).resolve(), split=split,
                   scenes=tuple(scenes or videos), model="test-model", settings={"seconds": None}, refiner=refiner,
                   fps=fps)
    (run_dir / "run.json").write_text(json.dumps(run_info_json(info)))
    for name, frames in videos.items():
        write_video(run_dir / "videos" / f"{name}.mp4", frames, fps)
        (run_dir / "videos" / f"{name}.json").write_text("{}")
    return run_dir
