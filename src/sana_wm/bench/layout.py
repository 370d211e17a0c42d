"""The SANA-WM-Bench folder layout, read into typed scenes, and the layout of a benchmark run.

The released benchmark (``Efficient-Large-Model/SANA-WM-Bench``; documented in docs/benchmark.md)::

    ROOT/
      images/<scene>.png                                 first frames (.jpg/.jpeg/.webp also read)
      scene_set/kept_scenes.txt                          the scene list (not needed: the manifest lists them)
      <split folder>/scene_trajectories_v2.json          {"scenes": [{"scene_id", "evaluation_pairs": [...]}]}
      <split folder>/sanawm_export_v2/run_manifest.jsonl one JSON object a line: id, prompt, image_path,
                                                         camera_path (paths relative to ROOT)
      <split folder>/sanawm_export_v2/<scene>.npz        c2w (N,4,4) OpenCV c2w, intrinsics (N,3,3) in pixels
                                                         of the first-frame image, fps, num_frames

``bench synth`` writes the same layout and adds the exact ground truth beside it:
``ROOT/ground_truth/<split folder>/<scene>.mp4`` (lossless RGB) and ``<scene>_depth.npz``.

A run of ``bench run`` is a folder ``RUN/`` with ``run.json`` (:class:`RunInfo`) and ``RUN/videos/<scene>.mp4``,
each with its generation sidecar ``<scene>.json`` beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sana_wm.errors import InputError
from sana_wm.limits import check_frames, check_image_pixels, loads_json

__all__ = [
    "EXPORT_FOLDER", "GROUND_TRUTH_FOLDER", "IMAGE_SUFFIXES", "IMAGES_FOLDER", "MANIFEST_FILE", "MAX_SCENES",
    "RUN_FILE", "RUN_FORMAT", "SPLITS", "TRAJECTORIES_FILE", "VIDEOS_FOLDER", "BenchError", "BenchScene",
    "RunInfo", "check_scene_name", "ground_truth_depth", "ground_truth_video", "read_bench", "read_run",
    "run_info_json", "scene_category", "video_path",
]

SPLITS: dict[str, str] = {"simple_60s": "benchmark_v2_smooth_60s", "hard_60s": "benchmark_v2_hard_60s"}
"""Split name -> its folder under the benchmark root, as released."""

IMAGES_FOLDER = "images"
EXPORT_FOLDER = "sanawm_export_v2"
MANIFEST_FILE = "run_manifest.jsonl"
TRAJECTORIES_FILE = "scene_trajectories_v2.json"
GROUND_TRUTH_FOLDER = "ground_truth"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

RUN_FILE = "run.json"
RUN_FORMAT = "sana-wm-bench-run"
VIDEOS_FOLDER = "videos"

MAX_SCENES = 10_000
"""The most scenes one manifest may list (the release has 80 a split); protects against a runaway file."""

_MAX_MANIFEST_BYTES = 64 * 2**20
_SCENE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NUMBERED = re.compile(r"(.+)_\d+")


class BenchError(InputError):
    """A benchmark folder or a run folder is missing a file or holds one that does not fit the layout."""


@dataclass(frozen=True)
class BenchScene:
    """One scene of one split: what a model is given (first frame, prompt, camera path) and what it is scored on."""

    name: str  # e.g. "indoor_001"; checked: [A-Za-z0-9_.-]+, never a path
    category: str  # e.g. "indoor": the manifest's scene_type/category, else the name without its _NNN
    split: str  # "simple_60s" | "hard_60s"
    image: Path  # first-frame image
    prompt: str
    c2w: np.ndarray  # (N, 4, 4) float64, OpenCV camera-to-world, as stored
    intrinsics: np.ndarray  # (N, 3, 3) float64, in pixels of `image_size`
    image_size: tuple[int, int]  # (width, height) of the source image the intrinsics refer to
    fps: float
    num_frames: int
    # Revisit frame pairs (frame_a, frame_b), in the released evaluator's order (ascending quality_score, so
    # its "first 5 pairs" are the first 5 here); may be empty.
    evaluation_pairs: tuple[tuple[int, int], ...]

    def trajectory(self):
        """The camera path as the package's canonical :class:`~sana_wm.camera.Trajectory`."""
        from sana_wm.camera import Intrinsics, Trajectory

        return Trajectory(self.c2w, Intrinsics.from_matrices(self.intrinsics, *self.image_size), self.fps,
                          {"format": "bench-npz", "source": f"{self.split}/{self.name}"})


@dataclass(frozen=True)
class RunInfo:
    """``RUN/run.json``: what a ``bench run`` generated, with which model and settings."""

    run_dir: Path
    bench_root: Path
    split: str
    scenes: tuple[str, ...]
    model: str
    settings: dict  # steps, cfg, shift, seed, refine, variant, size, seconds, ... as generated
    refiner: bool  # the released evaluator drops frame 0 when a refiner was used
    fps: float  # of the generated videos


def check_scene_name(name: object, where: str) -> str:
    """A scene name is a file stem, never a path: letters, digits, ``_``, ``.``, ``-`` (and not ``.``/``..``)."""
    if not isinstance(name, str) or not _SCENE_NAME.fullmatch(name) or name in (".", ".."):
        raise BenchError(f"{where}: scene name {name!r} is not a plain name of letters, digits, '_', '.' and '-'; "
                         "fix the file")
    return name


def scene_category(name: str) -> str:
    """The category a released scene id encodes: ``indoor_001`` -> ``indoor`` (the name itself without a number)."""
    m = _NUMBERED.fullmatch(name)
    return m.group(1) if m else name


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise BenchError(f"--split {split!r}: not a benchmark split; choose one of {', '.join(SPLITS)}")
    return split


def _inside(root: Path, relative: object, where: str, what: str) -> Path:
    """A path read from a file, checked to be relative and to stay inside the benchmark root."""
    if not isinstance(relative, str) or not relative:
        raise BenchError(f"{where}: {what} must be a path relative to the benchmark folder, got {relative!r}")
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise BenchError(f"{where}: {what} {relative!r} must be relative to the benchmark folder and stay inside "
                         "it (no absolute path, no '..'); fix the manifest")
    return root / rel


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise BenchError(f"{path}: {what} not found; is --bench the SANA-WM-Bench folder (see docs/benchmark.md)?")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise BenchError(f"{path}: {what} is larger than {_MAX_MANIFEST_BYTES >> 20} MiB; this is not a benchmark "
                         "file")
    return path.read_text(encoding="utf-8")


def _read_manifest(path: Path) -> list[dict]:
    rows: list[dict] = []
    for lineno, line in enumerate(_read_text(path, "the prompt manifest").splitlines(), 1):
        if not line.strip():
            continue
        row = loads_json(line, f"{path}:{lineno}")
        if not isinstance(row, dict):
            raise BenchError(f"{path}:{lineno}: expected a JSON object with id, prompt, camera_path")
        for key in ("id", "prompt", "camera_path"):
            if key not in row:
                raise BenchError(f"{path}:{lineno}: key {key!r} missing; every row needs id, prompt, camera_path")
        if not isinstance(row["prompt"], str):
            raise BenchError(f"{path}:{lineno}: 'prompt' must be a string, got {type(row['prompt']).__name__}")
        check_scene_name(row["id"], f"{path}:{lineno}: 'id'")
        rows.append(row)
        if len(rows) > MAX_SCENES:
            raise BenchError(f"{path}: more than {MAX_SCENES} scenes; this is not a benchmark manifest")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise BenchError(f"{path}: scene {dup!r} is listed twice")
    return rows


def _whole_frame(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or value < 0:
        raise BenchError(f"{where}: expected a frame index (a whole number >= 0), got {value!r}")
    return int(value)


def _read_pairs(path: Path) -> dict[str, list[tuple[float, int, int]]]:
    """scene -> [(quality_score, frame_a, frame_b)] from ``scene_trajectories_v2.json``."""
    doc = loads_json(_read_text(path, "the trajectory metadata (scene_trajectories_v2.json)"), path)
    scenes = doc.get("scenes") if isinstance(doc, dict) else None
    if not isinstance(scenes, list):
        raise BenchError(f"{path}: expected an object with a 'scenes' list")
    out: dict[str, list[tuple[float, int, int]]] = {}
    for i, entry in enumerate(scenes):
        where = f"{path}: scenes[{i}]"
        if not isinstance(entry, dict) or "scene_id" not in entry:
            raise BenchError(f"{where}: expected an object with 'scene_id'")
        name = check_scene_name(entry["scene_id"], f"{where}.scene_id")
        pairs = entry.get("evaluation_pairs", [])
        if not isinstance(pairs, list):
            raise BenchError(f"{where}.evaluation_pairs: expected a list")
        parsed = []
        for j, pair in enumerate(pairs):
            pw = f"{where}.evaluation_pairs[{j}]"
            if not isinstance(pair, dict) or "frame_a" not in pair or "frame_b" not in pair:
                raise BenchError(f"{pw}: expected an object with frame_a and frame_b")
            q = pair.get("quality_score", 999)
            q = float(q) if isinstance(q, (int, float)) and not isinstance(q, bool) and math.isfinite(q) else 999.0
            parsed.append((q, _whole_frame(pair["frame_a"], f"{pw}.frame_a"),
                           _whole_frame(pair["frame_b"], f"{pw}.frame_b")))
        out[name] = parsed
    return out


def _find_image(root: Path, row: dict, where: str) -> Path:
    if "image_path" in row:
        image = _inside(root, row["image_path"], where, "image_path")
        if not image.is_file():
            raise BenchError(f"{where}: first-frame image {image} not found")
        return image
    for suffix in IMAGE_SUFFIXES:  # the release names them images/<id>.png; other formats cost nothing to accept
        image = root / IMAGES_FOLDER / f"{row['id']}{suffix}"
        if image.is_file():
            return image
    raise BenchError(f"{where}: no first-frame image {root / IMAGES_FOLDER / row['id']}"
                     f"{{{','.join(IMAGE_SUFFIXES)}}} and no image_path in the manifest")


def _image_size(image: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as im:  # the header only: the size, not the pixels
            check_image_pixels(*im.size, f"first-frame image {image}")
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchError(f"cannot read the first-frame image {image}: {exc}") from None


def _read_scene(root: Path, split: str, row: dict, pairs: list[tuple[float, int, int]], where: str) -> BenchScene:
    from sana_wm.camera.formats import read_trajectory
    from sana_wm.camera.trajectory import TrajectoryError

    name = row["id"]
    image = _find_image(root, row, where)
    size = _image_size(image)
    camera = _inside(root, row["camera_path"], where, "camera_path")
    if not camera.is_file():
        raise BenchError(f"{where}: camera path {camera} not found")
    try:
        traj = read_trajectory(camera, "bench-npz", width=size[0], height=size[1])
        if traj.intrinsics is None:
            raise TrajectoryError(f"{camera}: no 'intrinsics' array; a benchmark camera file needs c2w, intrinsics, "
                                  "fps, num_frames")
        check_frames(traj.num_frames, str(camera))
        traj.validate(min_frames=2, fov_range_deg=None, require_intrinsics=True)
    except TrajectoryError as exc:
        msg = str(exc)
        raise BenchError(msg if str(camera) in msg else f"{camera}: {msg}") from None
    for _, a, b in pairs:
        if a >= traj.num_frames or b >= traj.num_frames:
            raise BenchError(f"{root / SPLITS[split] / TRAJECTORIES_FILE}: scene {name!r}: evaluation pair "
                             f"({a}, {b}) is past the camera path's {traj.num_frames} frames")
    category = row.get("scene_type", row.get("category"))
    if not isinstance(category, str) or not category or category == "unknown":
        category = scene_category(name)
    ordered = sorted(pairs, key=lambda p: p[0])  # stable: equal scores keep the file's order
    return BenchScene(
        name=name, category=category, split=split, image=image, prompt=row["prompt"],
        c2w=traj.c2w.astype(np.float64), intrinsics=traj.intrinsics.matrices().astype(np.float64),
        image_size=size, fps=float(traj.fps), num_frames=traj.num_frames,
        evaluation_pairs=tuple((a, b) for _, a, b in ordered),
    )


def read_bench(root: Path, split: str, scenes: Sequence[str] | None = None) -> list[BenchScene]:
    """The scenes of ``split`` in the benchmark folder ``root``, in the manifest's order (only ``scenes`` when
    given, in the manifest's order). Raises :class:`BenchError` naming the file and what is wrong."""
    root = Path(root)
    _check_split(split)
    if not root.is_dir():
        raise BenchError(f"--bench {root}: no such folder")
    split_dir = root / SPLITS[split]
    if not split_dir.is_dir():
        raise BenchError(f"--bench {root}: no {SPLITS[split]}/ folder for split {split}; is this the "
                         "SANA-WM-Bench folder (see docs/benchmark.md)?")
    rows = _read_manifest(split_dir / EXPORT_FOLDER / MANIFEST_FILE)
    pairs = _read_pairs(split_dir / TRAJECTORIES_FILE)
    if scenes is not None:
        wanted = [check_scene_name(s, "--scenes") for s in scenes]
        known = {r["id"] for r in rows}
        missing = [s for s in wanted if s not in known]
        if missing:
            listed = ", ".join(r["id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise BenchError(f"--scenes: {', '.join(missing)} not in split {split} (its scenes: {listed})")
        rows = [r for r in rows if r["id"] in set(wanted)]
    manifest = split_dir / EXPORT_FOLDER / MANIFEST_FILE
    return [_read_scene(root, split, row, pairs.get(row["id"], []), f"{manifest}: scene {row['id']!r}")
            for row in rows]


# -- runs -------------------------------------------------------------------------------------------------------


def video_path(run_dir: Path, scene: str) -> Path:
    """``RUN/videos/<scene>.mp4``; its generation sidecar is ``<scene>.json`` beside it."""
    return Path(run_dir) / VIDEOS_FOLDER / f"{check_scene_name(scene, 'scene')}.mp4"


def ground_truth_video(root: Path, split: str, scene: str) -> Path | None:
    """The exact render along the scene's path, kept by ``bench synth`` (lossless RGB MP4); None for a folder
    without ground truth (the released benchmark)."""
    path = Path(root) / GROUND_TRUTH_FOLDER / SPLITS[_check_split(split)] / f"{check_scene_name(scene, 'scene')}.mp4"
    return path if path.is_file() else None


def ground_truth_depth(root: Path, split: str, scene: str) -> Path | None:
    """The metric depth of the ground-truth render (``.npz`` with ``depth`` (N, H, W) float32 metres), kept by
    ``bench synth``; None for a folder without ground truth."""
    name = f"{check_scene_name(scene, 'scene')}_depth.npz"
    path = Path(root) / GROUND_TRUTH_FOLDER / SPLITS[_check_split(split)] / name
    return path if path.is_file() else None


def run_info_json(info: RunInfo) -> dict:
    """What ``run.json`` holds for ``info`` (paths as given, so a moved run folder still reads)."""
    return {"format": RUN_FORMAT, "version": 1, "bench_root": str(info.bench_root), "split": info.split,
            "scenes": list(info.scenes), "model": info.model, "settings": info.settings,
            "refiner": bool(info.refiner), "fps": float(info.fps)}


def read_run(run_dir: Path) -> RunInfo:
    """The :class:`RunInfo` of a ``bench run`` folder, checked."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise BenchError(f"{run_dir}: no {RUN_FILE}; is this a folder written by `sana-wm bench run --out`?")
    doc = loads_json(_read_text(path, RUN_FILE), path)
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise BenchError(f"{path}: not a sana-wm bench run file (no \"format\": \"{RUN_FORMAT}\")")
    for key, kind in (("bench_root", str), ("split", str), ("scenes", list), ("model", str), ("settings", dict),
                      ("refiner", bool), ("fps", (int, float))):
        if not isinstance(doc.get(key), kind) or (kind is not bool and isinstance(doc.get(key), bool)):
            raise BenchError(f"{path}: key {key!r} missing or of the wrong type; the file is damaged: rerun "
                             "`sana-wm bench run` with --overwrite")
    _check_split(doc["split"])
    fps = float(doc["fps"])
    if not math.isfinite(fps) or fps <= 0:
        raise BenchError(f"{path}: fps {fps!r} must be a positive number")
    scenes = tuple(check_scene_name(s, f"{path}: scenes") for s in doc["scenes"])
    return RunInfo(run_dir=run_dir, bench_root=Path(doc["bench_root"]), split=doc["split"], scenes=scenes,
                   model=doc["model"], settings=dict(doc["settings"]), refiner=doc["refiner"], fps=fps)
