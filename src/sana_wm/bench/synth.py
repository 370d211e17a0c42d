"""``sana-wm bench synth``: a benchmark in the SANA-WM-Bench layout, built from the synthetic world, where every
frame of every path has an exact ground truth.

Each scene (rooms, corridors and open ground in turn, named ``room_001``, ``corridor_002``, ...) gets one spawn
pose, hence one first-frame image and one prompt shared by both splits, and two paths from it:

* ``simple_60s`` walks a smooth route (forward and gentle curves, 1 deg/frame turns), turns round smoothly,
  walks the route back, turns round again and walks it once more, so its last part retraces its first;
* ``hard_60s`` chains legs of a sharper walk (4 deg/frame turns, glances up and down), each followed by
  backtracking along it (walking backwards through the same poses) and a quick turn on the spot (90-180 deg)
  towards the next leg.

Both stay collision-free (the walk re-plans any segment that would enter geometry; backtracking and turning on
the spot only revisit free poses). ``evaluation_pairs`` are frame pairs at least two seconds apart whose cameras
stand within :data:`REVISIT_DISTANCE` metres and look within :data:`REVISIT_ANGLE_DEG` degrees of each other, so
they see the same place; ``quality_score`` = distance / REVISIT_DISTANCE + angle / REVISIT_ANGLE_DEG (lower is
closer). Paths are stored relative to their first frame (frame 0 = identity), as the model is conditioned; the
ground truth (a lossless render and metric depth per path) is kept under ``ground_truth/`` (docs/benchmark.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sana_wm.bench.layout import (
    EXPORT_FOLDER,
    GROUND_TRUTH_FOLDER,
    IMAGES_FOLDER,
    MANIFEST_FILE,
    SPLITS,
    TRAJECTORIES_FILE,
    BenchError,
)
from sana_wm.errors import LimitError
from sana_wm.limits import check_frames

__all__ = ["DEFAULT_SCENES", "DEFAULT_SECONDS", "FOV_DEG", "MAX_TOTAL_PIXELS", "REVISIT_ANGLE_DEG",
           "REVISIT_DISTANCE", "SynthBench", "benchmark_paths", "build_synth_bench", "revisit_pairs"]

DEFAULT_SCENES = 3
DEFAULT_SECONDS = 60.0
DEFAULT_SIZE = (128, 128)  # (W, H): the bundled model's
FOV_DEG = 70.0  # horizontal field of view of every camera
REVISIT_DISTANCE = 0.25  # metres
REVISIT_ANGLE_DEG = 10.0
MAX_PAIRS = 10
MAX_TOTAL_PIXELS = 2**28  # frames x width x height of one path: bounds the depth kept in memory (1 GiB)

_SIMPLE_TURN_SPEED = 1.0  # deg/frame
_HARD_TURN_SPEED = 4.0
_SIMPLE_WEIGHTS = (0.6, 0.4, 0.0, 0.0, 0.0)  # forward, curve only (synth.paths.WALK_SEGMENTS)
_HARD_WEIGHTS = (0.3, 0.25, 0.2, 0.05, 0.2)


@dataclass(frozen=True)
class SynthBench:
    root: Path
    scenes: tuple[str, ...]
    splits: tuple[str, ...]
    num_frames: int


def _yawed(pose: np.ndarray, degrees: float) -> np.ndarray:
    """``pose`` turned on the spot by ``degrees`` about the world's vertical axis (scene +Y is down)."""
    a = math.radians(degrees)
    turn = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    out = pose.copy()
    out[:3, :3] = turn @ pose[:3, :3]
    return out


def _turn(pose: np.ndarray, degrees: float, frames: int) -> np.ndarray:
    """``frames`` poses turning ``pose`` on the spot by ``degrees``, eased in and out (the last is fully turned)."""
    t = np.arange(1, frames + 1) / frames
    return np.stack([_yawed(pose, degrees * (0.5 - 0.5 * math.cos(math.pi * s))) for s in t])


def _simple(scene, spawn: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    from sana_wm.synth.paths import walk_poses

    turn = int(min(round(180.0 / 1.5), max(4, (n - 1) // 8)))  # a 180-degree turn, 1.5 deg/frame when there is time
    length = max(2, int(0.6 * (n - 1)) // 2 - turn)  # out, turn, back, turn: ~60 % of the path; then out again
    route = walk_poses(scene, spawn, length + 1, rng, turn_speed=_SIMPLE_TURN_SPEED, weights=_SIMPLE_WEIGHTS)
    # Walking the route back facing the way one walks: the same places, each pose turned round.
    back = np.stack([_yawed(p, 180.0) for p in route[::-1]])
    cycle = [route[1:], _turn(route[-1], 180.0, turn), back[1:], _turn(back[-1], 180.0, turn)]
    poses = [route[:1]]
    while sum(len(p) for p in poses) < n:
        poses.extend(cycle)
    return np.concatenate(poses)[:n]


def _hard(scene, spawn: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    from sana_wm.synth.paths import walk_poses

    leg = max(2, (n - 1) // 5)
    poses = [spawn[None]]
    start = spawn
    while sum(len(p) for p in poses) < n:
        out = walk_poses(scene, start, leg + 1, rng, turn_speed=_HARD_TURN_SPEED, weights=_HARD_WEIGHTS)
        degrees = float(rng.uniform(90.0, 180.0)) * float(rng.choice([-1.0, 1.0]))
        quick = max(2, int(round(abs(degrees) / 8.0)))  # 8 deg/frame: a sharp turn
        turned = _turn(start, degrees, quick)
        poses.extend([out[1:], out[::-1][1:], turned])  # the leg, backtracking through the same poses, a turn
        start = turned[-1]
    return np.concatenate(poses)[:n]


def benchmark_paths(scene, seed: int, num_frames: int) -> dict[str, np.ndarray]:
    """``{split: (num_frames, 4, 4) c2w}`` in scene coordinates, both from the scene's spawn pose for ``seed``."""
    from sana_wm.synth.paths import BODY_RADIUS, path_is_free

    spawn = scene.spawn_pose(np.random.default_rng(seed), radius=BODY_RADIUS)
    paths = {"simple_60s": _simple(scene, spawn, num_frames, np.random.default_rng([seed, 1])),
             "hard_60s": _hard(scene, spawn, num_frames, np.random.default_rng([seed, 2]))}
    for split, c2w in paths.items():
        if not path_is_free(scene, c2w).all():  # by construction never; checked because the truth depends on it
            raise BenchError(f"bench synth: the {split} path of scene seed {seed} enters geometry; try --seed")
    return paths


def revisit_pairs(c2w: np.ndarray, fps: float, *, max_pairs: int = MAX_PAIRS, min_gap_s: float = 2.0) -> list[dict]:
    """Frame pairs of ``c2w`` that see the same place (module docstring), best first, spread over the path: a
    pair is kept only if each of its frames is at least half a second, and ``(n - 1) / (4 max_pairs)`` frames,
    from the frames of the pairs kept before."""
    n = len(c2w)
    step = max(1, n // 480)  # candidates on a grid of at most ~480 frames: the pair matrix stays small
    idx = np.arange(0, n, step)
    pos = c2w[idx, :3, 3]
    fwd = c2w[idx, :3, 2]
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    angle = np.degrees(np.arccos(np.clip(fwd @ fwd.T, -1.0, 1.0)))
    gap = max(1, min(int(round(min_gap_s * fps)), (n - 1) // 3))
    ok = (dist <= REVISIT_DISTANCE) & (angle <= REVISIT_ANGLE_DEG) & (idx[None] - idx[:, None] >= gap)
    a, b = np.nonzero(ok)
    score = dist[a, b] / REVISIT_DISTANCE + angle[a, b] / REVISIT_ANGLE_DEG
    order = np.lexsort((idx[b], idx[a], np.round(score, 9)))
    spread = max(1, int(round(0.5 * fps)), (n - 1) // (4 * max_pairs))
    kept: list[dict] = []
    used: list[int] = []
    for k in order:
        fa, fb = int(idx[a[k]]), int(idx[b[k]])
        if any(abs(fa - u) < spread or abs(fb - u) < spread for u in used):
            continue
        kept.append({"frame_a": fa, "frame_b": fb, "distance_m": round(float(dist[a[k], b[k]]), 6),
                     "angle_diff_deg": round(float(angle[a[k], b[k]]), 6), "quality_score": round(float(score[k]), 6)})
        used += [fa, fb]
        if len(kept) == max_pairs:
            break
    return kept


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BenchError(f"--out {out}: the folder is not empty; choose another --out, or --overwrite to replace it")


def _write_depth(path: Path, depth: np.ndarray) -> None:
    from sana_wm.io import atomic_write

    # The sky has no depth: 0 marks it (as in the synthetic clip datasets).
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, depth=depth)


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    from sana_wm.io import atomic_write
    from sana_wm.pipeline.video import VideoWriter

    with atomic_write(path) as tmp, VideoWriter(tmp, fps, lossless=True) as writer:
        writer.write(frames)


def _write_png(path: Path, frame: np.ndarray) -> None:
    from PIL import Image

    from sana_wm.io import atomic_write

    with atomic_write(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")


def build_synth_bench(out: Path, *, num_scenes: int = DEFAULT_SCENES, seconds: float = DEFAULT_SECONDS,
                      fps: float = 16.0, size: tuple[int, int] | None = None, seed: int = 0, overwrite: bool = False,
                      progress: bool = True) -> SynthBench:
    """Write the benchmark (module docstring) to ``out``; ``size = (W, H)`` (default the bundled model's 128x128).

    The folder is built beside ``out`` and moved into place when complete, so a stopped run leaves ``out`` as it
    was. A non-empty ``out`` is refused unless ``overwrite``."""
    from tqdm.auto import tqdm

    from sana_wm.camera.formats import write_trajectory
    from sana_wm.camera.trajectory import Trajectory
    from sana_wm.io import replace_folder, write_json_atomic, write_text_atomic
    from sana_wm.synth.dataset import caption_for
    from sana_wm.synth.render import render
    from sana_wm.synth.scene import SCENE_KINDS, generate_scene

    out = Path(out)
    width, height = size or DEFAULT_SIZE
    if not (isinstance(num_scenes, int) and num_scenes >= 1):
        raise BenchError(f"--scenes {num_scenes}: must be a whole number >= 1")
    if not (math.isfinite(seconds) and seconds > 0 and math.isfinite(fps) and fps > 0):
        raise BenchError(f"--seconds {seconds} / --fps {fps}: must be positive numbers")
    n = int(round(seconds * fps)) + 1
    check_frames(n, f"--seconds {seconds:g}")
    if n < 9:
        raise BenchError(f"--seconds {seconds:g}: {n} frames at {fps:g} fps is too short for a path that comes back; "
                         "use at least half a second")
    if n * width * height > MAX_TOTAL_PIXELS:
        raise LimitError(f"--seconds {seconds:g} at --size {width}x{height}: {n} frames of {width}x{height} is more "
                         f"than {MAX_TOTAL_PIXELS:,} pixels a path; shorten it or lower --size")
    _check_out(out, overwrite)

    build = out.with_name(f".{out.name}.{os.getpid()}.partial")
    if build.exists():
        import shutil

        shutil.rmtree(build)
    names: list[str] = []
    counts: dict[str, int] = {}
    manifests: dict[str, list[dict]] = {split: [] for split in SPLITS}
    pairs: dict[str, list[dict]] = {split: [] for split in SPLITS}
    bar = tqdm(total=num_scenes * len(SPLITS), desc="bench synth", unit="path", disable=not progress)
    try:
        for i in range(num_scenes):
            kind = SCENE_KINDS[i % len(SCENE_KINDS)]
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}_{counts[kind]:03d}"
            names.append(name)
            scene = generate_scene(seed + i, kind)
            image_rel = f"{IMAGES_FOLDER}/{name}.png"
            for split, c2w in benchmark_paths(scene, seed + i, n).items():
                result = render(scene, Trajectory(c2w, None, fps), width, height, fov_deg=FOV_DEG)
                truth = build / GROUND_TRUTH_FOLDER / SPLITS[split]
                _write_video(truth / f"{name}.mp4", result.rgb, fps)
                _write_depth(truth / f"{name}_depth.npz", result.depth)
                if not (build / image_rel).exists():  # both splits start from the same pose: one image
                    _write_png(build / image_rel, result.rgb[0])
                camera_rel = f"{SPLITS[split]}/{EXPORT_FOLDER}/{name}.npz"
                write_trajectory(result.trajectory.relative_to_first(), build / camera_rel, "bench-npz")
                manifests[split].append({"id": name, "prompt": caption_for(scene), "image_path": image_rel,
                                         "camera_path": camera_rel, "scene_type": kind, "scene_seed": seed + i})
                pairs[split].append({"scene_id": name, "evaluation_pairs": revisit_pairs(result.c2w, fps)})
                bar.update(1)
        for split, folder in SPLITS.items():
            rows = "".join(json.dumps(row) + "\n" for row in manifests[split])
            write_text_atomic(build / folder / EXPORT_FOLDER / MANIFEST_FILE, rows)
            write_json_atomic(build / folder / TRAJECTORIES_FILE,
                              {"scenes": pairs[split], "fps": fps, "num_frames": n, "source": "sana-wm bench synth",
                               "revisit": {"max_distance_m": REVISIT_DISTANCE, "max_angle_deg": REVISIT_ANGLE_DEG}})
        write_text_atomic(build / "scene_set" / "kept_scenes.txt", "".join(f"{name}\n" for name in names))
        replace_folder(build, out)
    except BaseException:
        import shutil

        shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        bar.close()
    return SynthBench(out, tuple(names), tuple(SPLITS), n)
